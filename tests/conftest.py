"""Shared test setup: the ``../shared/data`` folder and the tiny synthetic store, built once per run."""

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pyproj  # noqa: F401  (before anything loads ecCodes; see harpnet_cli/io/__init__.py)
import pytest

#: The run's own cache folder (terrain), never the user's ~/.cache; subprocesses inherit it.
os.environ["HARPNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="harpnet-test-cache-")
atexit.register(shutil.rmtree, os.environ["HARPNET_CACHE_DIR"], ignore_errors=True)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: ``harpnet prepare`` options of the tiny store: a box over the Colorado Rockies (25 x 33 coarse
#: cells, 6 tiles), 12 synthetic samples (27 train, 12 test and some validation tiles).
TINY_STORE_OPTIONS = ("synthetic", "--samples", "12", "--bbox", "36,42,-112,-104", "--seed", "3")
#: ``train --config`` of a tiny U-Net on one CPU thread.
TINY_MODEL = 'channels = [8, 16]\nbridge = 16\ndevice = "cpu"\nthreads = 1\n'


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test is skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


def _digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of every file under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory):
    """The tiny synthetic training store (:data:`TINY_STORE_OPTIONS`), built once for every test that uses it.

    Shared, so read-only: a test that changes a store copies it first (``shutil.copytree``).
    The store's bytes are checked at the end of the run; a change fails the run.
    """
    from typer.testing import CliRunner

    from harpnet_cli.cli import app

    path = tmp_path_factory.mktemp("tiny_store") / "s.zarr"
    res = CliRunner().invoke(app, ["prepare", *TINY_STORE_OPTIONS, "-o", str(path)])
    assert res.exit_code == 0, res.output
    before = _digest(path)
    yield path
    assert _digest(path) == before, f"a test changed the shared store {path}; copy it before changing it"


@pytest.fixture(scope="session")
def tiny_store_options() -> tuple[str, ...]:
    """The ``harpnet prepare`` arguments of ``tiny_store`` (for variants of it)."""
    return TINY_STORE_OPTIONS


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``train --config`` TOML file of a tiny U-Net (:data:`TINY_MODEL`)."""
    path = tmp_path_factory.mktemp("tiny_config") / "tiny.toml"
    path.write_text(TINY_MODEL)
    return path
