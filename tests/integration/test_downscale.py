"""End to end: fixture files written by our own code -> ``harpnet downscale`` -> CF NetCDF."""

from datetime import datetime

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.testing.fixtures import (
    synthetic_hourly,
    write_ecmwf_grib,
    write_gfs_grib,
    write_gfs_sequence,
    write_wrf_netcdf,
)
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "compact.pt", seed=1)


def downscale(*args):
    res = runner.invoke(app, ["downscale", *map(str, args)])
    return res


def block_mean(a: np.ndarray) -> np.ndarray:
    *lead, h, w = a.shape
    return a.reshape(*lead, h // 4, 4, w // 4, 4).mean(axis=(-3, -1))


def test_gfs_bucket_and_running_total_sequence(tmp_path, checkpoint):
    hourly = synthetic_hourly(9, seed=3)
    files = write_gfs_sequence(tmp_path / "in", hourly, (3, 6, 9))
    out = tmp_path / "out.nc"
    res = downscale(*files, "-o", out, "--model", checkpoint, "--bbox", "30,40,-100,-90")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    p = ds["precipitation_amount"]
    assert p.shape == (3, 41 * 4, 41 * 4)
    bounds = ds["time_bnds"].values
    assert [(b[1] - b[0]) / np.timedelta64(1, "h") for b in bounds] == [3, 3, 3]
    assert ds["time"].values[0] == np.datetime64("2020-03-25T21:00")
    assert float(p.min()) >= 0.0
    # the coarse input of each step: hours 0-3, 3-6, 6-9, rows south -> north
    expected = np.stack([hourly[a:b].sum(0)[::-1] for a, b in ((0, 3), (3, 6), (6, 9))])
    np.testing.assert_allclose(block_mean(p.values), expected, atol=2e-3, rtol=1e-4)
    assert "gfs.20200325.t18z.pgrb2.0p25.f009" in ds.attrs["input_files"]
    assert len(ds.attrs["harpnet_checkpoint_sha256"]) == 64
    assert "mass ratio 1.00" in res.output


def test_two_file_gfs_differencing(tmp_path, checkpoint):
    hourly = synthetic_hourly(6, seed=4)
    files = write_gfs_sequence(tmp_path / "in", hourly, (3, 6))
    out = tmp_path / "out.nc"
    res = downscale(files[1], files[0], "-o", out, "-m", checkpoint, "--bbox", "31,33,-99,-96")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    assert ds["precipitation_amount"].shape[0] == 2
    assert ds["time_bnds"].values[1, 0] == np.datetime64("2020-03-25T21:00")


def test_ecmwf_metres_with_step_zero(tmp_path, checkpoint):
    hourly = synthetic_hourly(6, seed=5)
    f = write_ecmwf_grib(tmp_path / "tp.grib", hourly, steps=(0, 6))
    out = tmp_path / "out.nc"
    res = downscale(f, "-o", out, "-m", checkpoint)
    assert res.exit_code == 0, res.output
    assert "3-hour rate" in res.output  # 6-hour window, downscaled through the 3-hour rate
    ds = xr.open_dataset(out, engine="netcdf4")
    p = ds["precipitation_amount"]
    assert p.shape[0] == 1
    assert "interval: 6 hours" in p.attrs["cell_methods"]
    total = hourly.sum(0)[::-1]  # mm, not metres
    np.testing.assert_allclose(block_mean(p.values[0]), total, atol=2e-3, rtol=1e-3)


def test_gefs_members_become_realizations(tmp_path, checkpoint):
    hourly = synthetic_hourly(3, members=3, seed=6)
    f = write_gfs_grib(tmp_path / "gep.grib2", hourly, [(0, 3)], perturbation_numbers=[1, 2, 3])
    out = tmp_path / "out.nc"
    res = downscale(f, "-o", out, "-m", checkpoint, "--bbox", "34,36,-95,-93")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    assert list(ds["realization"].values) == [1, 2, 3]
    assert ds["precipitation_amount"].dims[:2] == ("time", "realization")  # cdo needs time first


def test_moving_nest_is_refused_in_one_line(tmp_path, checkpoint):
    f = write_wrf_netcdf(tmp_path / "wrfout_d02.nc", synthetic_hourly(3, 10, 12, seed=7), moving=True)
    out = tmp_path / "out.nc"
    res = downscale(f, "-o", out, "-m", checkpoint)
    assert res.exit_code == 3, res.output
    assert "moving nest" in res.output and "wrfout_d02.nc" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert list(tmp_path.glob(".out.nc*")) == []


def test_fixed_wrf_running_totals_downscale_non_negative(tmp_path, checkpoint):
    f = write_wrf_netcdf(tmp_path / "wrfout_d01.nc", synthetic_hourly(6, 10, 12, seed=8), step_hours=3)
    out = tmp_path / "out.nc"
    res = downscale(f, "-o", out, "-m", checkpoint)
    assert res.exit_code == 0, res.output
    p = xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].values
    assert np.nanmin(p) >= 0


def test_gap_in_a_series_names_the_file(tmp_path, checkpoint):
    hourly = synthetic_hourly(12, seed=9)
    f003 = write_gfs_grib(tmp_path / "gfs.f003", hourly, [(0, 3)])
    f012 = write_gfs_grib(tmp_path / "gfs.f012", hourly, [(6, 12)])  # bucket only: 3-6 cannot be formed
    res = downscale(f003, f012, "-o", tmp_path / "out.nc", "-m", checkpoint)
    assert res.exit_code == 3, res.output
    assert "f012" in res.output


@pytest.mark.parametrize("content", [b"", b"hello, I am not a GRIB file\n", b"GRIB\x00\x00\x01"])
def test_bad_input_files_exit_3_without_traceback(tmp_path, checkpoint, content):
    bad = tmp_path / "bad.grib2"
    bad.write_bytes(content)
    res = downscale(bad, "-o", tmp_path / "out.nc", "-m", checkpoint)
    assert res.exit_code == 3, res.output
    assert "bad.grib2" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_missing_input_file(tmp_path, checkpoint):
    res = downscale(tmp_path / "nope.grib2", "-o", tmp_path / "out.nc", "-m", checkpoint)
    assert res.exit_code == 3
    assert "nope.grib2" in res.output


def test_bad_checkpoint(tmp_path):
    ck = tmp_path / "model.pt"
    ck.write_bytes(b"not a checkpoint")
    f = write_gfs_sequence(tmp_path / "in", synthetic_hourly(3), (3,))[0]
    res = downscale(f, "-o", tmp_path / "out.nc", "-m", ck)
    assert res.exit_code == 3
    assert "model.pt" in res.output and "Traceback" not in res.output


def test_bbox_outside_the_input(tmp_path, checkpoint):
    f = write_gfs_sequence(tmp_path / "in", synthetic_hourly(3), (3,))[0]
    res = downscale(f, "-o", tmp_path / "out.nc", "-m", checkpoint, "--bbox", "-10,-5,10,20")
    assert res.exit_code == 3
    assert "does not cover" in res.output


def test_reference_time_is_written(tmp_path, checkpoint):
    f = write_gfs_sequence(tmp_path / "in", synthetic_hourly(3), (3,))[0]
    out = tmp_path / "out.nc"
    assert downscale(f, "-o", out, "-m", checkpoint, "--bbox", "30,31,-100,-99").exit_code == 0
    ds = xr.open_dataset(out, engine="netcdf4")
    assert ds["forecast_reference_time"].values == np.datetime64(datetime(2020, 3, 25, 18))


def test_bf16_keeps_mass_and_stays_close_to_fp32(tmp_path, checkpoint):
    hourly = synthetic_hourly(3, seed=10)
    f = write_gfs_grib(tmp_path / "gfs.f003", hourly, [(0, 3)])
    outs = {}
    for flag in ([], ["--bf16"]):
        out = tmp_path / f"out{len(flag)}.nc"
        assert downscale(f, "-o", out, "-m", checkpoint, *flag).exit_code == 0
        outs[len(flag)] = xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].values[0]
    np.testing.assert_allclose(block_mean(outs[1]), hourly.sum(0)[::-1], atol=2e-3, rtol=1e-3)
    assert np.abs(outs[1] - outs[0]).max() <= 0.05 * max(outs[0].max(), 1.0)


def test_missing_input_cells_stay_missing(tmp_path, checkpoint):
    hourly = synthetic_hourly(3, seed=11)
    hourly[:, 10:14, 20:25] = np.nan  # bitmap-missing in the GRIB file
    f = write_gfs_grib(tmp_path / "gfs.f003", hourly, [(0, 3)])
    out = tmp_path / "out.nc"
    assert downscale(f, "-o", out, "-m", checkpoint).exit_code == 0
    p = xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].values[0]
    missing = np.isnan(block_mean(p))
    assert missing.sum() == 4 * 5
    assert missing[::-1][10:14, 20:25].all()
    assert np.nanmin(p) >= 0


def test_gefs_half_degree_is_remapped_conservatively_with_a_warning(tmp_path, checkpoint):
    hourly = synthetic_hourly(3, 21, 21, members=2, seed=12)
    f = write_gfs_grib(tmp_path / "gep.pgrb2a.0p50.f003", hourly, [(0, 3)], perturbation_numbers=[1, 2], step=0.5)
    out = tmp_path / "out.nc"
    res = downscale(f, "-o", out, "-m", checkpoint)
    assert res.exit_code == 0, res.output
    assert "not on the 0.25° grid" in res.output and "0.5°" in res.output
    p = xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].transpose("realization", ...)
    assert p.shape[0] == 2 and float(p.min()) >= 0
    # area-weighted mass inside the 0.5° box's interior is kept (cells at 30-40N have similar areas)
    interior = p.values[:, :, 8:-8, 8:-8]  # away from the half-covered edge cells
    src = hourly.sum(1)[:, ::-1][:, 1:-1, 1:-1]
    np.testing.assert_allclose(interior.mean(axis=(1, 2, 3)), src.mean(axis=(1, 2)), rtol=0.03)


def test_file_names_are_printed_literally(tmp_path, checkpoint):
    bad = tmp_path / "[bold]root:x:0.grib2"
    bad.write_text("root:x:0:0\n")
    res = downscale(bad, "-o", tmp_path / "out.nc", "-m", checkpoint)
    assert res.exit_code == 3
    assert "[bold]root:x:0.grib2" in res.output


def test_run_interrupted_while_writing_leaves_no_output(tmp_path, checkpoint, monkeypatch):
    from harpnet_cli.io.netcdf_stream import NetcdfStream

    def half_written(self, index, step):
        with open(self.path, "ab") as fh:
            fh.write(b"CDF\x01 half of a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(NetcdfStream, "write", half_written)
    f = write_gfs_grib(tmp_path / "gfs.f003", synthetic_hourly(3), [(0, 3)])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = downscale(f, "-o", out_dir / "out.nc", "-m", checkpoint)
    assert res.exit_code == 130
    assert "interrupted" in res.output
    assert list(out_dir.iterdir()) == []


def test_a_domain_outside_the_trained_regions_is_warned_about(tmp_path):
    from harpnet_cli.grids import GridSpec

    conus = GridSpec.from_domain("conus").to_dict()
    germany = GridSpec.from_bbox(47.25, 55.0, 5.75, 15.0).to_dict()
    trained = make_random_checkpoint(tmp_path / "t.pt", seed=2, channels=[8, 16], bridge=16, grid=conus,
                                     regions=[germany])
    alps = write_gfs_grib(tmp_path / "alps.grib2", synthetic_hourly(3, 33, 61, seed=1), [(0, 3)],
                          box=(41.0, 49.0, 2.0, 17.0))
    res = downscale(alps, "-o", tmp_path / "a.nc", "-m", trained, "--domain", "alps")
    assert res.exit_code == 0, res.output
    assert "outside the regions the model was trained on" in res.output and "23% inside" in res.output
    assert "47.125N..55.125N 5.625E..15.125E" in res.output
    res = downscale(alps, "-o", tmp_path / "g.nc", "-m", trained, "--bbox", "48,54,6,14")  # inside Germany
    assert res.exit_code == 0 and "outside the regions" not in res.output, res.output
