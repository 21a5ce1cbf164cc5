"""Generate the shell completion scripts in ``completions/`` from the Typer app.

Usage::

    python tools/gen_completions.py          # (re)write completions/
    python tools/gen_completions.py --check  # exit 1 if completions/ is out of date

The scripts call back into ``harpnet`` (Click's completion protocol through the
``_HARPNET_COMPLETE`` variable), so they complete every command and option of the installed version.
Install: bash ``source completions/harpnet.bash``; zsh: copy ``completions/_harpnet`` into a
folder on ``$fpath``; fish: copy ``completions/harpnet.fish`` to ``~/.config/fish/completions/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer._completion_shared import get_completion_script

ROOT = Path(__file__).resolve().parents[1]
FILES = {"bash": "harpnet.bash", "zsh": "_harpnet", "fish": "harpnet.fish"}


def scripts() -> dict[Path, str]:
    """The completion script of each shell, keyed by its path in the repository."""
    return {
        ROOT / "completions" / name: get_completion_script(
            prog_name="harpnet", complete_var="_HARPNET_COMPLETE", shell=shell
        ).rstrip("\n") + "\n"
        for shell, name in FILES.items()
    }


def main(argv: list[str]) -> int:
    stale = [p for p, text in scripts().items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run python tools/gen_completions.py")
        return 1 if stale else 0
    for p, text in scripts().items():
        p.parent.mkdir(exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
