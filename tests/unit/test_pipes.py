"""stdin spooling, output name templates and output locks."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from harpnet_cli.errors import HarpnetError, InputDataError
from harpnet_cli.io.pipes import EXIT_LOCKED, LockedError, OutputLock, lock_path, output_name, spool_stdin

INIT = datetime(2020, 3, 25, 18)
VALID = datetime(2020, 3, 26, 0)


# -- output_name ------------------------------------------------------------------------------------
def test_template_fields() -> None:
    name = output_name("out/harpnet_{init:%Y%m%d%H}_f{lead:03d}.grib2", init=INIT, lead_hours=6.0, valid=VALID,
                       member=None)
    assert name == Path("out/harpnet_2020032518_f006.grib2")
    name = output_name("{valid:%Y%m%dT%H}_m{member:02d}.grib2", init=None, lead_hours=6, valid=VALID, member=3)
    assert name == Path("20200326T00_m03.grib2")
    assert output_name("x_{lead}.nc", init=INIT, lead_hours=1.5, valid=VALID, member=None) == Path("x_1.5.nc")
    assert output_name("x{member}.nc", init=INIT, lead_hours=1, valid=VALID, member=None) == Path("x.nc")


@pytest.mark.parametrize(("template", "match"), [
    ("out_{init:%Y}_{step}.grib2", r"unknown field\(s\) \{step\}"),
    ("out_{}.grib2", "positional"),
    ("out_{init:%Y.grib2", "bad output template"),
    ("out_{lead:03d}.grib2", "bad output template"),  # 1.5 h is not an int
])
def test_template_errors(template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        output_name(template, init=INIT, lead_hours=1.5, valid=VALID, member=None)
    assert "\n" not in str(info.value)


def test_template_init_without_reference_time() -> None:
    with pytest.raises(ValueError, match="no reference time"):
        output_name("{init:%Y}.grib2", init=None, lead_hours=1, valid=VALID, member=None)


# -- spool_stdin --------------------------------------------------------------------------------------
def test_spool_grib(tmp_path: Path) -> None:
    payload = b"GRIB" + b"\x00" * 3_000_000 + b"7777"
    path = spool_stdin(stream=io.BytesIO(payload), directory=tmp_path)
    try:
        assert path.read_bytes() == payload and path.parent == tmp_path
    finally:
        path.unlink()


@pytest.mark.parametrize(("payload", "match"), [
    (b"", "empty"),
    (b"CDF\x01rest", "NetCDF"),
    (b"\x89HDF\r\n\x1a\nrest", "NetCDF"),
    (b"hello world", "not a GRIB"),
])
def test_spool_refusals(tmp_path: Path, payload: bytes, match: str) -> None:
    with pytest.raises(InputDataError, match=match):
        spool_stdin(stream=io.BytesIO(payload), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_spool_max_bytes(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="longer than 10 bytes"):
        spool_stdin(10, stream=io.BytesIO(b"GRIB" + b"x" * 20), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_spool_real_stdin(tmp_path: Path) -> None:
    code = ("import sys; from harpnet_cli.io.pipes import spool_stdin; p = spool_stdin(); "
            "print(p.read_bytes() == b'GRIBxx7777'); p.unlink()")
    out = subprocess.run([sys.executable, "-c", code], input=b"GRIBxx7777", capture_output=True, check=True)
    assert out.stdout.strip() == b"True"


# -- OutputLock ---------------------------------------------------------------------------------------
def test_second_lock_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.grib2"
    with OutputLock(target) as first:
        assert first.locked and lock_path(target) == tmp_path / ".out.grib2.lock"
        with pytest.raises(LockedError, match="being written by another harpnet process") as info:
            OutputLock(target).acquire()
        assert isinstance(info.value, HarpnetError) and info.value.exit_code == EXIT_LOCKED == 4
        assert "\n" not in str(info.value)
    assert not first.locked
    with OutputLock(target):  # free again
        pass


def test_wait_blocks_until_released(tmp_path: Path) -> None:
    target = tmp_path / "out.grib2"
    first = OutputLock(target).acquire()
    got: list[float] = []

    def second() -> None:
        with OutputLock(target, wait=True):
            got.append(time.monotonic())

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert not got  # still waiting
    released = time.monotonic()
    first.release()
    thread.join(5)
    assert got and got[0] >= released


def test_lock_across_processes_and_stale_lock(tmp_path: Path) -> None:
    target = tmp_path / "out.grib2"
    code = ("import sys, time; from harpnet_cli.io.pipes import OutputLock; "
            f"lock = OutputLock({str(target)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"locked"
        with pytest.raises(LockedError):
            OutputLock(target).acquire()
    finally:
        child.kill()  # dies holding the lock: the kernel drops it
        child.wait()
    assert lock_path(target).exists()  # a stale lock file is left behind …
    with OutputLock(target):  # … and does not block
        pass


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(HarpnetError, match="does not exist"):
        OutputLock(tmp_path / "nope" / "out.grib2").acquire()


def test_lock_file_is_removed_on_release_and_a_new_holder_gets_a_fresh_one(tmp_path):
    out = tmp_path / "o.grib2"
    with OutputLock(out) as first:
        assert lock_path(out).exists() and first.locked
    assert not lock_path(out).exists()
    with OutputLock(out):
        assert lock_path(out).exists()
    assert list(tmp_path.iterdir()) == []
