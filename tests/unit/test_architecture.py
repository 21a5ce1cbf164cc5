"""The import contract of the package: the walls between its layers, checked on the source (AST).

The layers (README "How it works", CONTRIBUTING.md):

* the base layer — ``fields``, ``grids``, ``errors``, ``devices``, ``config``, ``registry`` … —
  imports neither ``core`` nor ``io`` nor ``workflows``;
* ``core/`` (pure compute) and ``io/`` (file formats) are siblings that never import each other;
  ``core/`` never imports a file-format or UI library;
* ``workflows/`` wire ``io`` and ``core`` and never import ``cli``;
* nothing reaches another module's private names (``from m import _x`` or ``m._x``).

Every import counts, also one inside a function; only imports under ``if TYPE_CHECKING:`` are
left out (they never run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harpnet_cli"
#: Libraries that only ``io/`` (files) or the CLI (terminal) may import; ``core/`` never does.
CORE_FORBIDDEN = ("xarray", "cfgrib", "eccodes", "netCDF4", "zarr", "h5py", "rich", "typer", "matplotlib", "dask")
#: Sub-packages that are layers; everything else directly under ``harpnet_cli`` is the base layer.
LAYERS = ("core", "io", "workflows", "testing", "assets")
#: Who may import whom (besides the base layer, which everyone may import).
ALLOWED = {
    "base": set(),
    "core": {"core"},
    "io": {"io"},
    "workflows": {"core", "io", "workflows"},
    "testing": {"core", "io", "workflows", "testing"},
    "cli": {"core", "io", "workflows", "cli"},
    "assets": set(),
}


@dataclass(frozen=True)
class Import:
    """One import statement (or private attribute use) found in a module."""

    module: str
    """Importing module, dotted."""
    target: str
    """Imported module, dotted."""
    names: tuple[str, ...]
    """Names taken from it (``from target import names``); empty for ``import target``."""
    line: int

    def __str__(self) -> str:
        what = f"{self.target}" + (f" ({', '.join(self.names)})" if self.names else "")
        return f"{self.module}:{self.line} -> {what}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of every node under ``if TYPE_CHECKING:``."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out.update(id(n) for n in ast.walk(child))
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan_package() -> list[Import]:
    """Every runtime import of every module of the package, and every ``alias._private`` use."""
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        aliases: dict[str, str] = {}  # local name -> harpnet module it names
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(module, alias.name, (), node.lineno))
                    if alias.name.startswith("harpnet_cli") and alias.asname:
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                names = tuple(a.name for a in node.names)
                found.append(Import(module, target, names, node.lineno))
                if target.startswith("harpnet_cli"):
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                                PACKAGE.parent / Path(*sub.split("."))).is_dir():
                            aliases[alias.asname or alias.name] = sub
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(Import(module, aliases[node.value.id], (node.attr,), node.lineno))
    return found


def layer(module: str) -> str:
    """``core``, ``io``, ``workflows``, ``testing``, ``cli`` or ``base`` for a dotted module name."""
    parts = module.split(".")
    if len(parts) < 2:
        return "base"
    if parts[1] in LAYERS:
        return parts[1]
    if parts[1] == "cli" or parts[1] == "__main__":
        return "cli"
    return "base"


def broken_walls(imports: list[Import]) -> list[str]:
    """Imports that cross a wall of :data:`ALLOWED`."""
    out = []
    for imp in imports:
        if not imp.target.startswith("harpnet_cli.") or imp.target == "harpnet_cli":
            continue
        src, dst = layer(imp.module), layer(imp.target)
        if dst == "base" or dst == src or dst in ALLOWED[src]:
            continue
        out.append(f"{src} imports {dst}: {imp}")
    return out


def private_reaches(imports: list[Import]) -> list[str]:
    """Uses of another module's private names."""
    out = []
    for imp in imports:
        if not imp.target.startswith("harpnet_cli") or imp.target == imp.module:
            continue
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private:
            out.append(f"private {', '.join(private)}: {imp}")
    return out


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan_package()


def test_core_and_io_never_import_each_other_and_the_base_imports_neither(imports):
    assert broken_walls(imports) == []


def test_no_module_reaches_another_modules_private_names(imports):
    assert private_reaches(imports) == []


def test_core_imports_no_file_format_or_ui_library(imports):
    bad = [str(i) for i in imports if layer(i.module) == "core" and i.target.split(".")[0] in CORE_FORBIDDEN]
    assert bad == []


def test_the_checker_sees_a_broken_wall_and_a_private_reach(tmp_path):
    """The contract test itself can fail: feed it imports that break each rule."""
    bad = [Import("harpnet_cli.core.remap", "harpnet_cli.io.grib", ("read",), 1),
           Import("harpnet_cli.io.grib", "harpnet_cli.core.remap", ("block_mean",), 2),
           Import("harpnet_cli.fields", "harpnet_cli.core.remap", ("x",), 3),
           Import("harpnet_cli.io.scan", "harpnet_cli.io.grib", ("_get",), 4)]
    assert len(broken_walls(bad)) == 3
    assert len(private_reaches(bad)) == 1
    good = [Import("harpnet_cli.workflows.downscale", "harpnet_cli.io.readers", ("read_file",), 1),
            Import("harpnet_cli.core.remap", "harpnet_cli.fields", ("SourceGrid",), 2)]
    assert broken_walls(good) == [] and private_reaches(good) == []
