"""Leaving the process: without the interpreter's teardown only when a workflow allows it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harpnet_cli import process


@pytest.fixture(autouse=True)
def _reset() -> None:
    process.allow_fast_exit(False)
    yield
    process.allow_fast_exit(False)


def test_without_permission_it_is_an_ordinary_exit() -> None:
    with pytest.raises(SystemExit) as info:
        process.exit_process(3)
    assert info.value.code == 3


def test_with_permission_and_torch_loaded_it_skips_teardown(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (loaded: teardown would be slow)

    calls: list[int] = []
    monkeypatch.setattr(process.os, "_exit", calls.append)
    process.allow_fast_exit()
    process.exit_process(None)
    process.exit_process(4)
    assert calls == [0, 4]


def test_atexit_handlers_are_skipped_and_output_is_flushed() -> None:
    code = ("import atexit, sys, torch\nfrom harpnet_cli import process\n"
            "atexit.register(lambda: print('teardown ran'))\nprint('done', end='')\n"
            "process.allow_fast_exit()\nprocess.exit_process(5)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 5 and out.stdout == "done"
