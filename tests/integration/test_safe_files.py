"""Safe files (issue 21): locks and temporaries never follow a symbolic link, outputs are replaced and
never written through, templates stay in their folder, a killed run's temporaries are removed by the
next run, and a full disk is one line naming the output."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.errors import UsageError
from harpnet_cli.io.atomic import atomic_path, disk_full, remove_stale_temporaries, temporary_pattern
from harpnet_cli.io.pipes import OutputLock, lock_path, output_name
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint

REPO = Path(__file__).resolve().parents[2]
BOX = (32.0, 36.0, -97.0, -93.0)
BBOX = ("--bbox", "33,35,-96,-94")
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", channels=[4, 8], bridge=8)


@pytest.fixture(scope="module")
def gfs(tmp_path_factory):
    return write_gfs_grib(tmp_path_factory.mktemp("in") / "gfs.f006", synthetic_hourly(6, 17, 17, seed=3),
                          [(0, 3), (0, 6)], box=BOX)


def downscale(*args):
    return runner.invoke(app, ["downscale", *map(str, args), "--threads", "1"])


# -- the lock ---------------------------------------------------------------------------------------
def test_a_symlink_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, gfs, checkpoint):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "o.nc"
    lock_path(out).symlink_to(victim)
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 2, res.output
    assert "symbolic link" in res.output and res.output.strip().count("\n") == 0
    assert victim.read_text() == "precious\n" and not out.exists()


def test_a_dangling_symlink_at_the_lock_path_creates_nothing_through_it(tmp_path):
    target = tmp_path / "elsewhere.txt"
    lock_path(tmp_path / "o.nc").symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        OutputLock(tmp_path / "o.nc").acquire()
    assert not target.exists()


def test_a_fifo_at_the_lock_path_is_refused_without_blocking(tmp_path):
    os.mkfifo(lock_path(tmp_path / "o.nc"))
    with pytest.raises(UsageError, match="not a regular file"):
        OutputLock(tmp_path / "o.nc").acquire()


# -- outputs and temporaries ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nc", ".grib2"])
def test_a_symlinked_output_is_replaced_never_written_through(tmp_path, gfs, checkpoint, suffix):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / f"o{suffix}"
    out.symlink_to(victim)
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.output  # a link is an existing output
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX, "--overwrite")
    assert res.exit_code == 0, res.output
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.stat().st_size > 1000


def test_temporaries_live_in_a_private_folder_created_without_following_links(tmp_path):
    final = tmp_path / "o.nc"
    with atomic_path(final) as tmp:
        folder = tmp.parent
        assert temporary_pattern(final).fullmatch(folder.name)
        assert folder.stat().st_mode & 0o777 == 0o700 and tmp.exists() and tmp.stat().st_size == 0
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data" and not folder.exists()
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        folder = tmp.parent
        raise RuntimeError("the writer failed")
    assert not folder.exists() and final.read_bytes() == b"data"


def test_a_template_cannot_leave_the_folder_it_names(tmp_path, gfs, checkpoint):
    from datetime import datetime

    ok = output_name("out/{init:%Y}/h_{lead:03d}.nc", init=datetime(2020, 1, 1), lead_hours=6,
                     valid=datetime(2020, 1, 1, 6), member=None)
    assert ok == Path("out/2020/h_006.nc")
    for template in ("out/{init:..}/x_{lead}.nc", "out/{init:%Y/../..}/x_{lead}.nc", "{init:/etc/x}_{lead}"):
        with pytest.raises(ValueError, match="outside the folder"):
            output_name(template, init=datetime(2020, 1, 1), lead_hours=6, valid=datetime(2020, 1, 1, 6),
                        member=None)
    (tmp_path / "out").mkdir()
    res = downscale(gfs, "-o", str(tmp_path / "out" / "{init:..}" / "x_{lead}.nc"), "-m", checkpoint, *BBOX)
    assert res.exit_code == 2 and "outside the folder" in res.output, res.output
    assert list(tmp_path.rglob("x_*")) == []


def test_the_next_run_removes_a_killed_runs_temporaries_and_nothing_else(tmp_path, gfs, checkpoint):
    out = tmp_path / "o.nc"
    assert downscale(gfs, "-o", out, "-m", checkpoint, *BBOX).exit_code == 0
    stale_file = tmp_path / ".o.nc.abcd1234.part"
    stale_file.write_bytes(b"half")
    stale_dir = tmp_path / ".o.nc.efgh5678.part"
    stale_dir.mkdir()
    (stale_dir / "o.nc").write_bytes(b"half")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (tmp_path / ".o.nc.zzzzzzzz.part").symlink_to(victim)  # not ours: left alone, never followed
    other = tmp_path / ".other.nc.abcd1234.part"  # another output's
    other.write_bytes(b"x")
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX, "--skip-existing")
    assert res.exit_code == 0 and "nothing to do" in res.output, res.output
    assert not stale_file.exists() and not stale_dir.exists()
    assert (victim / "keep.txt").read_text() == "keep" and (tmp_path / ".o.nc.zzzzzzzz.part").is_symlink()
    assert other.exists()


def test_remove_stale_temporaries_counts_what_it_removed(tmp_path):
    (tmp_path / ".x.grib2.aaaaaaaa.part").mkdir()
    (tmp_path / ".x.grib2.bbbbbbbb.part").write_bytes(b"")
    (tmp_path / ".x.grib2.tooshort.partial").write_bytes(b"")
    assert remove_stale_temporaries(tmp_path / "x.grib2") == 2
    assert [p.name for p in tmp_path.iterdir()] == [".x.grib2.tooshort.partial"]


KILLED_WRITE = textwrap.dedent("""
    import os, sys
    from harpnet_cli.io import grib_writer
    real = grib_writer._messages
    def dies(*args, **kwargs):
        for message in real(*args, **kwargs):
            yield message
            print("WRITING", file=sys.stderr, flush=True)
            os.kill(os.getpid(), 9)
    grib_writer._messages = dies
    from harpnet_cli.cli import main
    sys.argv = ["harpnet", *sys.argv[1:]]
    main()
""")


def test_after_kill_9_the_rerun_completes_the_output_and_removes_the_temporaries(tmp_path, gfs, checkpoint):
    out = tmp_path / "o.grib2"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["downscale", str(gfs), "-o", str(out), "-m", str(checkpoint), *BBOX, "--threads", "1"]
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, *args], capture_output=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL and b"WRITING" in proc.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(temporary_pattern(out).fullmatch(name) for name in left), left
    res = downscale(*args[1:-2], "--skip-existing")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.grib2"]


# -- a full disk --------------------------------------------------------------------------------------
class _Full:
    """``open`` whose files opened for writing fail as on a full disk (reading opens real files)."""

    def __new__(cls, file, mode="r", *args, **kwargs):  # noqa: D102
        if "w" not in mode and "a" not in mode and "x" not in mode:
            return open(file, mode, *args, **kwargs)  # noqa: SIM115
        return super().__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self) -> _Full:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_disk_full_writing_grib2_is_one_line_naming_the_output(tmp_path, gfs, checkpoint, monkeypatch):
    from harpnet_cli.io import grib_writer, outputs

    monkeypatch.setattr(grib_writer, "open", _Full, raising=False)  # a file written at once
    monkeypatch.setattr(outputs, "open", _Full, raising=False)  # a file written step by step
    out = tmp_path / "o.grib2"
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1] == (
        f"error: {out}: cannot write: no space left on device"), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_disk_full_writing_netcdf_is_one_line_naming_the_output(tmp_path, gfs, checkpoint, monkeypatch):
    """netCDF/HDF5 loses errno ("NetCDF: HDF error"), so the free space is looked at."""
    from harpnet_cli.io.netcdf_stream import NetcdfStream

    def fails(self, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")  # the file is begun, then its data cannot be written

    class Statvfs:
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(NetcdfStream, "write", fails)
    monkeypatch.setattr(os, "statvfs", lambda path: Statvfs())
    out = tmp_path / "o.nc"
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1] == (
        f"error: {out}: cannot write: no space left on device"), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_disk_full_is_recognised_from_errno_or_free_space(tmp_path, monkeypatch):
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    wrapped = RuntimeError("writer failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert disk_full(wrapped, tmp_path)
    assert not disk_full(RuntimeError("NetCDF: HDF error"), tmp_path)  # this disk has room


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB tmpfs (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        # after ENOSPC, netCDF/HDF5 keeps the (deleted) temporary open in this process: unmount lazily then
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("suffix", [".nc", ".grib2"])
def test_a_really_full_disk_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, checkpoint, suffix):
    big = write_gfs_grib(tmp_path / "big.f006", synthetic_hourly(6, 81, 81, seed=1), [(0, 3), (0, 6)],
                         box=(30.0, 50.0, -110.0, -90.0))
    out = tiny_disk / f"o{suffix}"
    res = downscale(big, "-o", out, "-m", checkpoint)
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == f"error: {out}: cannot write: no space left on device"
    assert list(tiny_disk.iterdir()) == []
