"""Operational runs (issue 8): GRIB2 output, pipes, per-step templates, locks, SIGTERM and --json."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.io.pipes import OutputLock
from harpnet_cli.io.readers import read_accumulations
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib, write_gfs_sequence
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()
BBOX = ("--bbox", "31,35,-99,-95")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "compact.pt", seed=1)


@pytest.fixture
def gfs(tmp_path):
    return write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", synthetic_hourly(6, seed=7), [(0, 6)])


def downscale(*args):
    return runner.invoke(app, ["downscale", *map(str, args)])


def grib_messages(data: bytes) -> list[dict]:
    """Keys and north→south values of every message of a GRIB byte string."""
    import eccodes

    out = []
    while data:
        gid = eccodes.codes_new_from_message(data)
        try:
            keys = {k: eccodes.codes_get(gid, k) for k in (
                "discipline", "parameterCategory", "parameterNumber", "productDefinitionTemplateNumber",
                "iDirectionIncrementInDegrees", "stepRange", "Ni", "Nj", "totalLength")}
            keys["values"] = eccodes.codes_get_array(gid, "values").reshape(keys["Nj"], keys["Ni"])
            if eccodes.codes_get(gid, "bitmapPresent"):
                keys["values"][keys["values"] == eccodes.codes_get(gid, "missingValue")] = np.nan
        finally:
            eccodes.codes_release(gid)
        out.append(keys)
        data = data[keys["totalLength"]:]
    return out


def python_cli(*args, **kwargs):
    """``python -m harpnet_cli`` in a subprocess (real stdin/stdout and signal handling)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harpnet_cli", *map(str, args)], capture_output=True, env=env,
                          timeout=300, **kwargs)


def test_grib2_output_matches_netcdf(tmp_path, gfs, checkpoint):
    nc, grb = tmp_path / "out.nc", tmp_path / "out.grib2"
    assert downscale(gfs, "-o", nc, "-m", checkpoint, *BBOX).exit_code == 0
    res = downscale(gfs, "-o", grb, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    ref = xr.open_dataset(nc, engine="netcdf4")["precipitation_amount"].values  # (T, H, W) south -> north
    (msg,) = grib_messages(grb.read_bytes())
    assert (msg["discipline"], msg["parameterCategory"], msg["parameterNumber"]) == (0, 1, 8)
    assert msg["productDefinitionTemplateNumber"] == 8
    assert msg["iDirectionIncrementInDegrees"] == 0.0625
    assert msg["stepRange"] == "0-6"
    np.testing.assert_allclose(msg["values"][::-1], ref[0], atol=0.005)
    (acc,) = read_accumulations([grb])  # HARPNET's own reader reads it back
    assert acc.end - acc.start == np.timedelta64(6, "h").astype(object)


@pytest.mark.parametrize("packing", ["simple", "ccsds"])
def test_format_and_packing_options(tmp_path, gfs, checkpoint, packing):
    out = tmp_path / "out.bin"
    res = downscale(gfs, "-o", out, "--format", "grib2", "--grib-packing", packing, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"GRIB"


def test_grib2_to_stdout_keeps_logs_off_it(tmp_path, gfs, checkpoint):
    res = runner.invoke(app, ["downscale", str(gfs), "-o", "-", "-m", str(checkpoint), *BBOX],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    data = res.stdout_bytes
    assert data.startswith(b"GRIB") and data.endswith(b"7777")
    assert len(grib_messages(data)) == 1
    assert "mass ratio" in res.stderr  # the summary goes to stderr with the data on stdout


def test_netcdf_to_stdout_is_refused(gfs, checkpoint):
    res = runner.invoke(app, ["downscale", str(gfs), "-o", "-", "--format", "netcdf", "-m", str(checkpoint)])
    assert res.exit_code == 2
    assert res.stdout_bytes == b""
    assert len(res.stderr.strip().splitlines()) == 1
    assert "NetCDF cannot be written to standard output" in res.stderr


def test_stdin_input_to_stdout_in_a_pipe(tmp_path, gfs, checkpoint):
    with open(gfs, "rb") as stdin:
        res = python_cli("downscale", "-", "-o", "-", "-m", checkpoint, *BBOX, stdin=stdin)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.startswith(b"GRIB") and res.stdout.endswith(b"7777")
    assert b"GRIB" not in res.stderr
    with open(gfs, "rb") as stdin:
        res = python_cli("downscale", "-", "-o", tmp_path / "x.grib2", "-m", checkpoint, *BBOX, stdin=stdin)
    assert res.returncode == 0, res.stderr.decode()
    assert (tmp_path / "x.grib2").read_bytes().startswith(b"GRIB")


def test_template_writes_one_file_per_step_and_skip_existing_is_idempotent(tmp_path, checkpoint):
    files = write_gfs_sequence(tmp_path / "in", synthetic_hourly(6, seed=4), (3, 6))
    out = tmp_path / "out"
    out.mkdir()
    template = str(out / "harpnet_{init:%Y%m%d%H}_f{lead:03d}.grib2")
    res = downscale(*files, "-o", template, "-m", checkpoint, *BBOX, "--json")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.glob("*.grib2"))
    assert names == ["harpnet_2020032518_f003.grib2", "harpnet_2020032518_f006.grib2"]
    assert [m["stepRange"] for m in grib_messages((out / names[1]).read_bytes())] == ["3-6"]
    assert json.loads(res.stdout)["steps"] == 2

    before = {p: p.stat().st_mtime_ns for p in out.glob("*.grib2")}
    res = downscale(*files, "-o", template, "-m", checkpoint, *BBOX, "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "nothing to do: all 2 outputs exist" in res.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.grib2")} == before

    (out / names[0]).unlink()
    res = downscale(*files, "-o", template, "-m", checkpoint, *BBOX, "--skip-existing", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["files"] == [str(out / names[0])] and summary["steps"] == 1
    assert summary["skipped"] == [str(out / names[1])]

    res = downscale(*files, "-o", template, "-m", checkpoint, *BBOX)  # no flag: refused, nothing touched
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_netcdf_template(tmp_path, checkpoint):
    files = write_gfs_sequence(tmp_path / "in", synthetic_hourly(6, seed=4), (3, 6))
    res = downscale(*files, "-o", tmp_path / "h_f{lead:02d}.nc", "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "h_f06.nc", engine="netcdf4")
    assert ds["precipitation_amount"].shape[0] == 1


def test_held_lock_exits_4_in_one_line(tmp_path, gfs, checkpoint):
    out = tmp_path / "out.grib2"
    with OutputLock(out):
        res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 4
    assert len(res.output.strip().splitlines()) == 1
    assert "being written by another harpnet process" in res.output
    assert not out.exists()
    assert downscale(gfs, "-o", out, "-m", checkpoint, *BBOX).exit_code == 0  # released


def test_json_summary(tmp_path, gfs, checkpoint):
    out = tmp_path / "out.nc"
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["files"] == [str(out)]
    assert summary["steps"] == 1 and summary["members"] == 1
    assert isinstance(summary["domain"], str) and summary["domain"]
    assert len(summary["model_sha256"]) == 64
    assert summary["seconds"] > 0
    assert summary["mass_ratio"] == pytest.approx(1.0, abs=0.01)

    res = runner.invoke(app, ["downscale", str(gfs), "-o", "-", "-m", str(checkpoint), *BBOX, "--json"])
    assert res.stdout_bytes.startswith(b"GRIB")
    assert json.loads(res.stderr.strip().splitlines()[-1])["files"] == ["-"]  # after the warnings


SLOW_WRITE = textwrap.dedent("""
    import sys, time
    from harpnet_cli.io import grib_writer
    real = grib_writer._messages
    def slow(*args, **kwargs):
        for message in real(*args, **kwargs):
            yield message
            print("WRITING", file=sys.stderr, flush=True)
            time.sleep(60)
    grib_writer._messages = slow
    from harpnet_cli.cli import main
    sys.argv = ["harpnet", *sys.argv[1:]]
    main()
""")


def test_sigterm_leaves_nothing_half_written(tmp_path, checkpoint):
    files = write_gfs_sequence(tmp_path / "in", synthetic_hourly(6, seed=4), (3, 6))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, "downscale", *map(str, files), "-o",
                             str(out_dir / "out.grib2"), "-m", str(checkpoint), *BBOX],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        line = b""
        while b"WRITING" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        assert b"WRITING" in line, "the run never reached the writer"
        assert any(p.name.endswith(".part") for p in out_dir.iterdir())  # half-written temporary file
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "SIGTERM" in lines[0]
    assert [p.name for p in out_dir.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.shared
@pytest.mark.slow
def test_real_gfs_over_conus_grib2_matches_netcdf(shared_data, tmp_path, checkpoint):
    src = shared_data / "real" / "gfs.20200325.t18z.pgrb2.0p25.f006"
    if not src.exists():
        pytest.skip(f"{src} is not present")
    nc, grb = tmp_path / "out.nc", tmp_path / "out.grib2"
    for out in (nc, grb):
        res = downscale(src, "-o", out, "-m", checkpoint, "--domain", "conus")
        assert res.exit_code == 0, res.output
    ref = xr.open_dataset(nc, engine="netcdf4")["precipitation_amount"].values
    msgs = grib_messages(grb.read_bytes())
    assert len(msgs) == ref.shape[0]
    for k, msg in enumerate(msgs):
        assert msg["iDirectionIncrementInDegrees"] == 0.0625
        np.testing.assert_allclose(msg["values"][::-1], ref[k], atol=0.005, equal_nan=True)
