"""Fuzzing ``harpnet downscale`` with seeded mutants of files the tests write themselves.

Every mutant (:mod:`harpnet_cli.testing.mutants`: truncation, byte flips in each GRIB section and
in NetCDF/HDF5 files, fill values, NaN/inf, units, scaled and negative amounts, duplicated and
conflicting messages, WRF resets, …) must end in exit 0 with an output that passes the
plausibility rules, or in exit 2/3 with one line: no traceback, no Python warning, no ecCodes
chatter on file descriptor 2, no hang (an alarm bounds each run), no file left beside the output.

The default run takes :data:`SUBSET` seeds (every kind several times); the full run of
:data:`FULL` seeds is marked ``slow`` and runs when ``HARPNET_FUZZ=full`` is set.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.testing.mutants import MutantFactory, check_outcome

#: Seeds of the default run, and of the full one.
SUBSET = 48
FULL = 560
#: Seconds one mutant may take before it counts as a hang.
ALARM_S = 60

runner = CliRunner()


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> MutantFactory:
    return MutantFactory(tmp_path_factory.mktemp("mutants"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("fuzz_model") / "tiny.pt", channels=[4, 8], bridge=8)


class Hang(Exception):
    """A mutant ran past :data:`ALARM_S`."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def run_mutant(factory: MutantFactory, checkpoint: Path, seed: int, capfd: pytest.CaptureFixture[str]) -> list[str]:
    """Run one mutant in-process; return its problems (see :func:`check_outcome`)."""
    mutant = factory.make(seed)
    out_dir = factory.folder / f"out{seed}"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / ("out.grib2" if seed % 5 == 4 else "out.nc")
    args = ["downscale", *map(str, mutant.inputs), "-o", str(out), "-m", str(checkpoint), "--threads", "1",
            *mutant.args]
    capfd.readouterr()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(ALARM_S)
    try:
        res = runner.invoke(app, args, catch_exceptions=False)
    except Hang:
        return [f"{mutant.describe()}: no result after {ALARM_S} s"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    problems = check_outcome(res.exit_code, res.output, out_dir, out)
    chatter = capfd.readouterr().err  # the C libraries write to file descriptor 2 behind Python's back
    if chatter.strip():
        problems.append(f"written to file descriptor 2: {chatter.strip()[:200]!r}")
    return [f"{mutant.describe()}: {p} (exit {res.exit_code}: {res.output.strip()[-300:]!r})" for p in problems]


@pytest.mark.parametrize("seed", range(SUBSET))
def test_mutant_ends_in_a_plausible_output_or_one_line(factory, checkpoint, seed, capfd):
    assert run_mutant(factory, checkpoint, seed, capfd) == []


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HARPNET_FUZZ") != "full", reason="the full fuzz run: set HARPNET_FUZZ=full")
def test_full_fuzz_run(factory, checkpoint, capfd):
    problems = []
    for seed in range(SUBSET, FULL):
        problems += run_mutant(factory, checkpoint, seed, capfd)
    assert problems == []


def test_the_checker_sees_each_kind_of_failure(tmp_path):
    """check_outcome can fail: a traceback, exit 1, a two-line error, a file left, an implausible output."""
    out = tmp_path / "out.nc"
    assert check_outcome(1, "error: internal error", tmp_path, out)
    assert check_outcome(3, "Traceback (most recent call last):\nerror: x", tmp_path, out)
    assert check_outcome(3, "error: a\nerror: b", tmp_path, out)
    (tmp_path / ".out.nc.abcdefgh.part").mkdir()
    assert check_outcome(3, "error: x", tmp_path, out)
    (tmp_path / ".out.nc.abcdefgh.part").rmdir()
    assert check_outcome(3, "warning: w\nerror: x", tmp_path, out) == []
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(out, "w") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("nv", 2)
        ds.createDimension("y", 2)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "hours since 2020-01-01"
        time[:] = [3]
        ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = [[0, 3]]
        ds.createVariable("precipitation_amount", "f4", ("time", "y", "y"))[:] = np.array([[[1, 2], [900, 0]]])
    assert any("above the record" in p for p in check_outcome(0, "ok", tmp_path, out))
