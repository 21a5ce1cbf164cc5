"""``harpnet downscale`` on implausible and odd inputs (issue 21): a plausible output or one line, exit 3.

Each case was seen on real or mutated files: fill values downscaled as rain, missing cells lost,
damaged messages skipped for another product, WRF resets double counted, an RDPA analysis
crashing, ecCodes and numpy chatter on the terminal, a FIFO blocking forever.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.testing import fixtures as fx
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.testing.mutants import grib2_sections, grib_messages

REPO = Path(__file__).resolve().parents[2]
BOX = (32.0, 36.0, -97.0, -93.0)  # 17 x 17 cells of 0.25°
BBOX = ("--bbox", "32.5,35.5,-96.5,-93.5")  # 13 x 13 coarse cells inside it, 52 x 52 fine
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", channels=[4, 8], bridge=8)


@pytest.fixture(scope="module")
def rain() -> np.ndarray:
    """``(17, 17)`` 6-hour amounts on :data:`BOX`, rows north → south, all wet."""
    return fx.synthetic_hourly(6, 17, 17, seed=21).sum(0) + 0.5


def downscale(*args, **kwargs):
    return runner.invoke(app, ["downscale", *map(str, args), "--threads", "1"], **kwargs)


def one_line_error(res, *fragments: str) -> str:
    """The run failed with exit 3 and one last ``error:`` line holding every fragment; that line."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert res.exit_code == 3, res.output
    assert errors == [lines[-1]] and "Traceback" not in res.output, res.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fine_values(path: Path) -> np.ndarray:
    """The output's ``precipitation_amount`` (NaN where missing)."""
    with netCDF4.Dataset(path) as ds:
        return np.ma.filled(ds["precipitation_amount"][:].astype(np.float64), np.nan)


def coarse_missing(fine: np.ndarray) -> np.ndarray:
    """Which 4 x 4 blocks of a ``(..., H, W)`` output (rows south → north) are missing in all 16 cells."""
    *lead, h, w = fine.shape
    return np.isnan(fine.reshape(*lead, h // 4, 4, w // 4, 4)).all(axis=(-3, -1))


# -- fill values ------------------------------------------------------------------------------------
def test_an_all_fill_gefs_field_is_refused_not_downscaled_to_1e20(tmp_path, checkpoint, rain):
    path = fx.write_apcp_fields(tmp_path / "gefs.pgrb2a", [((0, 6), np.full_like(rain, 1e20))], box=BOX, member=3,
                                packing="grid_ieee", bitmap=False)
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX)
    one_line_error(res, str(path), "no valid cell", "held fill values")
    assert not (tmp_path / "o.nc").exists()


def test_some_fill_values_are_missing_in_the_output_and_counted(tmp_path, checkpoint, rain):
    field = rain.copy()
    field[4:6, 4:6] = 1e20  # rows north -> south: latitudes 35.0 and 34.75, longitudes -96.0 and -95.75
    path = fx.write_apcp_fields(tmp_path / "gfs.f006", [((0, 6), field)], box=BOX, packing="grid_ieee", bitmap=False)
    out = tmp_path / "o.nc"
    res = downscale(path, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert "gfs.f006: 4 cell(s) hold fill value(s) (1e+20); read as missing" in res.output
    assert "4 input cell(s) masked" in res.output
    missing = coarse_missing(fine_values(out))[0]
    assert missing.sum() == 4 and np.nanmax(fine_values(out)) < 100.0


def test_fill_values_that_took_the_packing_range_are_refused(tmp_path, checkpoint, rain):
    """1e20 among 24-bit simple-packed values leaves steps of 6e12: the amounts are lost, not zero."""
    field = rain.copy()
    field[0, 0] = 1e20
    path = fx.write_apcp_fields(tmp_path / "gefs.f006", [((0, 6), field)], box=BOX, bitmap=False)
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX)
    one_line_error(res, "packing step", "amounts, which are lost")


@pytest.mark.parametrize("sentinel", [9999.0, -9999.0, -3.0, 9.999e20])
def test_sentinels_in_grib_values_are_missing(tmp_path, checkpoint, rain, sentinel):
    field = rain.copy()
    field[8, 8] = sentinel
    path = fx.write_apcp_fields(tmp_path / "mrms.grib2", [((0, 6), field)], box=BOX, packing="grid_ieee",
                                bitmap=False)
    out = tmp_path / "o.nc"
    res = downscale(path, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert coarse_missing(fine_values(out))[0].sum() == 1
    assert np.nanmax(fine_values(out)) < 100.0


def test_netcdf_default_fill_without_fill_value_attribute_is_missing(tmp_path, checkpoint):
    path = fx.write_cf_netcdf(tmp_path / "nam.nc", fx.synthetic_hourly(3, 17, 17, seed=2), box=BOX)
    with netCDF4.Dataset(path, "a") as ds:
        var = ds["precip"]
        var.set_auto_mask(False)
        values = np.asarray(var[:])
        values[0, 2:4, 2:4] = 9.97e36  # the default fill, as some writers round it
        var[:] = values
        var.delncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
    out = tmp_path / "o.nc"
    res = downscale(path, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert coarse_missing(fine_values(out))[0].sum() == 4 and np.nanmax(fine_values(out)) < 100.0


# -- the physical bound ---------------------------------------------------------------------------
def test_a_few_amounts_above_the_record_are_masked_with_a_warning(tmp_path, checkpoint, rain):
    field = rain.copy()
    field[8, 8] = 5000.0  # mm in 6 h; the record envelope is 988 mm
    path = fx.write_apcp_fields(tmp_path / "gfs.f006", [((0, 6), field)], box=BOX)
    out = tmp_path / "o.nc"
    res = downscale(path, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert "gfs.f006: 1 cell(s) above the world-record amount for their window (largest 5000 mm)" in res.output
    assert "1 input cell(s) masked" in res.output
    assert coarse_missing(fine_values(out))[0].sum() == 1 and np.nanmax(fine_values(out)) < 988.0


def test_a_field_far_above_the_record_is_refused_and_allow_extreme_keeps_it(tmp_path, checkpoint, rain):
    path = fx.write_apcp_fields(tmp_path / "gfs.f006", [((0, 6), rain * 1000.0)], box=BOX)
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX)
    one_line_error(res, "gfs.f006", "exceed 988 mm", "wrong units or scale", "--allow-extreme")
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX, "--allow-extreme")
    assert res.exit_code == 0, res.output
    assert np.nanmax(fine_values(tmp_path / "o.nc")) > 988.0


def test_a_nam_file_scaled_by_1000_is_refused(tmp_path, checkpoint):
    hourly = fx.synthetic_hourly(3, 17, 17, seed=5) + 0.5
    path = fx.write_cf_netcdf(tmp_path / "nam.nc", hourly * 1000.0, box=BOX)
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX), "wrong units or scale")


# -- negative and empty fields --------------------------------------------------------------------
def test_an_all_negative_field_is_refused_not_zeroed(tmp_path, checkpoint, rain):
    path = fx.write_apcp_fields(tmp_path / "gfs.f006", [((0, 6), -rain)], box=BOX)
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX), "negative amounts")


def test_an_all_missing_input_is_refused_not_an_all_missing_success(tmp_path, checkpoint, rain):
    path = fx.write_apcp_fields(tmp_path / "gfs.f006", [((0, 6), np.full_like(rain, np.nan))], box=BOX)
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX)
    one_line_error(res, "no valid cell")
    assert not (tmp_path / "o.nc").exists()


# -- missing stays missing, per reader and per writer ---------------------------------------------
def _missing_input(kind: str, tmp_path: Path, rain: np.ndarray) -> Path:
    """An input whose coarse cells (rows 4-5, columns 6-7 of BOX) are missing as ``kind`` says."""
    field = rain.copy()
    hole = (slice(4, 6), slice(6, 8))
    if kind.startswith("grib"):
        value = {"grib-bitmap": np.nan, "grib-nan": np.nan, "grib-1e20": 1e20, "grib-9999": 9999.0,
                 "grib--9999": -9999.0, "grib--3": -3.0}[kind]
        field[hole] = value
        ieee = kind != "grib-bitmap"
        return fx.write_apcp_fields(tmp_path / "in.grib2", [((0, 6), field)], box=BOX,
                                    packing="grid_ieee" if ieee else "grid_simple", bitmap=not ieee)
    path = fx.write_cf_netcdf(tmp_path / "in.nc", np.repeat(field[None] / 6.0, 6, axis=0), 6, box=BOX)
    with netCDF4.Dataset(path, "a") as ds:
        var = ds["precip"]
        lat_rows = slice(17 - 6, 17 - 4)  # the file's latitudes run south -> north
        if kind == "netcdf-fillvalue":
            values = np.ma.asarray(var[:])
            values[0, lat_rows, 6:8] = np.ma.masked
            var[:] = values
        else:
            var.set_auto_mask(False)
            values = np.asarray(var[:])
            values[0, lat_rows, 6:8] = {"netcdf-default-fill": netCDF4.default_fillvals["f4"], "netcdf-1e20": 1e20,
                                        "netcdf--9999": -9999.0}[kind]
            var[:] = values
    return path


READERS_MISSING = ["grib-bitmap", "grib-nan", "grib-1e20", "grib-9999", "grib--9999", "grib--3", "netcdf-fillvalue",
                   "netcdf-default-fill", "netcdf-1e20", "netcdf--9999"]


@pytest.mark.parametrize("kind", READERS_MISSING)
@pytest.mark.parametrize("suffix", [".nc", ".grib2"])
def test_missing_input_cells_are_missing_in_every_output(tmp_path, checkpoint, rain, kind, suffix):
    path = _missing_input(kind, tmp_path, rain)
    out = tmp_path / f"o{suffix}"
    res = downscale(path, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    if suffix == ".nc":
        fine = fine_values(out)[0]
    else:
        from harpnet_cli.io.ecc import eccodes

        with open(out, "rb") as handle:
            gid = eccodes.codes_grib_new_from_file(handle)
            assert eccodes.codes_get(gid, "bitmapPresent") == 1
            values = eccodes.codes_get_values(gid)
            values[values == eccodes.codes_get(gid, "missingValue")] = np.nan
            fine = values.reshape(52, 52)
            if not eccodes.codes_get(gid, "jScansPositively"):
                fine = fine[::-1]
            eccodes.codes_release(gid)
    missing = coarse_missing(fine)
    # rows 4-5 of BOX (north -> south from 36 N) are 35.0 and 34.75 N; the domain starts at 32.5 N (row 0 south)
    expected = np.zeros((13, 13), dtype=bool)
    expected[9:11, 4:6] = True
    assert (missing == expected).all(), np.argwhere(missing)
    assert np.isnan(fine).sum() == 16 * 4 and np.nanmax(fine) < 100.0


# -- GRIB oddities ----------------------------------------------------------------------------------
def test_a_damaged_precipitation_message_is_an_error_not_skipped_for_another(tmp_path, checkpoint):
    """A GFS f012 with its 6-12 h message damaged must not be downscaled from its 0-12 h total."""
    hourly = fx.synthetic_hourly(12, 17, 17, seed=4)
    path = fx.write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f012", hourly, [(6, 12), (0, 12)], box=BOX)
    data = bytearray(path.read_bytes())
    offset, length = grib_messages(bytes(data))[0]
    section1 = [s for s in grib2_sections(bytes(data), offset, length) if s[0] == 1][0]
    data[section1[1] + 3] ^= 0x01  # section 1's length: ecCodes opens a message that says nothing
    path.write_bytes(bytes(data))
    res = downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX)
    one_line_error(res, str(path), "corrupt GRIB message #1")


def test_rdpa_negative_time_range_is_the_24_hour_analysis(tmp_path, checkpoint):
    amount = fx.synthetic_hourly(24, 30, 30, seed=6).sum(0)
    path = fx.write_rdpa_grib(tmp_path / "CMC_RDPA_APCP-024-0100cutoff_SFC_0_ps10km_2024010112_000.grib2", amount,
                              datetime(2024, 1, 1, 12))
    for out in (tmp_path / "o.nc", tmp_path / "o.grib2"):
        res = downscale(path, "-o", out, "-m", checkpoint, "--bbox", "43.5,45.5,-76,-73")
        assert res.exit_code == 0, res.output
    with netCDF4.Dataset(tmp_path / "o.nc") as ds:
        bounds = netCDF4.num2date(ds["time_bnds"][:], ds["time"].units)[0]
    assert [b.strftime("%Y-%m-%d %H") for b in bounds] == ["2023-12-31 12", "2024-01-01 12"]


def test_a_geotiff_is_not_a_corrupt_grib_message(tmp_path, checkpoint):
    path = fx.write_geotiff_like(tmp_path / "apcp.tif")
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint), "not a GRIB or NetCDF file",
                   "TIFF image")


# -- NetCDF and WRF oddities ----------------------------------------------------------------------
def test_nan_coordinates_are_one_line(tmp_path, checkpoint):
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", fx.synthetic_hourly(3, 17, 17), box=BOX)
    with netCDF4.Dataset(path, "a") as ds:
        lat = np.asarray(ds["lat"][:])
        lat[5] = np.nan
        ds["lat"][:] = lat
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint), "latitude coordinate value(s)")


def test_a_library_failure_while_reading_is_one_line(tmp_path, checkpoint, monkeypatch):
    """Whatever a damaged attribute makes netCDF4/HDF5 raise, the reader names the file in one line."""
    import harpnet_cli.io.netcdf as nc

    path = fx.write_cf_netcdf(tmp_path / "cf.nc", fx.synthetic_hourly(3, 17, 17), box=BOX)

    def damaged(*args, **kwargs):
        raise AttributeError("NetCDF: HDF error (damaged attribute 'units')")

    monkeypatch.setattr(nc, "_units_factor", damaged)
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX), "cf.nc: unreadable netcdf file",
                   "HDF error")


def test_a_wrf_running_total_that_resets_is_refused_not_double_counted(tmp_path, checkpoint):
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", fx.synthetic_hourly(6, 10, 12, seed=2) * 0.2)
    with netCDF4.Dataset(path, "a") as ds:
        for name in ("RAINNC", "RAINC"):
            v = np.asarray(ds[name][:])
            v[4:] -= v[3]  # the bucket restarts from zero after hour 3
            ds[name][:] = v
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint), "decreases", "reset")


def test_running_totals_of_two_runs_are_refused(tmp_path, checkpoint):
    """One-time WRF files (totals since the simulation start) whose totals fall: a reset between files."""
    a = fx.write_wrf_netcdf(tmp_path / "wrfout_03", np.full((3, 10, 12), 2.0, np.float32))
    b = fx.write_wrf_netcdf(tmp_path / "wrfout_06", np.full((6, 10, 12), 2.0, np.float32))
    for path, keep, total in ((a, 3, 6.0), (b, 6, 3.0)):  # 6 mm at 03Z, only 3 mm at 06Z
        single = tmp_path / f"{path.name}_single"
        with netCDF4.Dataset(path) as src, netCDF4.Dataset(single, "w") as dst:
            dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
            for dim, size in src.dimensions.items():
                dst.createDimension(dim, None if size.isunlimited() else len(size))
            for name, var in src.variables.items():
                out = dst.createVariable(name, var.dtype, var.dimensions)
                out.setncatts({k: var.getncattr(k) for k in var.ncattrs()})
                values = np.asarray(var[keep:keep + 1] if var.dimensions[0] == "Time" else var[:])
                if name == "RAINNC":
                    values = np.full_like(values, total)
                elif name == "RAINC":
                    values = np.zeros_like(values)
                out[:] = values
        path.unlink()
        single.rename(path)
    res = downscale(a, b, "-o", tmp_path / "o.nc", "-m", checkpoint)
    one_line_error(res, "a reset bucket or totals of different runs")


def test_duplicate_wrf_times_are_refused_not_merged(tmp_path, checkpoint):
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", np.zeros((4, 10, 12), np.float32))
    with netCDF4.Dataset(path, "a") as ds:
        times = np.asarray(ds["Times"][:])
        times[2] = times[1]
        ds["Times"][:] = times
    one_line_error(downscale(path, "-o", tmp_path / "o.nc", "-m", checkpoint), "a duplicate time")


# -- streams and odd files ----------------------------------------------------------------------------
def test_a_fifo_is_refused_without_blocking(tmp_path, checkpoint):
    fifo = tmp_path / "pipe.grib2"
    os.mkfifo(fifo)

    def hang(signum, frame):
        raise TimeoutError("blocked on the FIFO")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(30)
    try:
        res = downscale(fifo, "-o", tmp_path / "o.nc", "-m", checkpoint)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    one_line_error(res, "named pipe", "'-'")


def test_a_stdin_error_names_the_stream_not_its_spool_file(tmp_path, checkpoint, rain):
    path = fx.write_apcp_fields(tmp_path / "fill.grib2", [((0, 6), np.full_like(rain, 1e20))], box=BOX,
                                packing="grid_ieee", bitmap=False)
    res = downscale("-", "-o", tmp_path / "o.nc", "-m", checkpoint, *BBOX, input=path.read_bytes())
    error = one_line_error(res, "no valid cell")
    assert error.startswith("error: -: ") and "harpnet-stdin" not in error


# -- what reaches the terminal ----------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m harpnet_cli`` in a fresh process: what the C libraries write to fd 2 is seen too."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harpnet_cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_eccodes_and_numpy_chatter_never_reach_the_terminal(tmp_path, checkpoint, rain):
    hourly = fx.synthetic_hourly(12, 17, 17, seed=4)
    damaged = fx.write_gfs_grib(tmp_path / "damaged.f012", hourly, [(6, 12), (0, 12)], box=BOX)
    data = bytearray(damaged.read_bytes())
    offset, length = grib_messages(bytes(data))[0]
    section4 = [s for s in grib2_sections(bytes(data), offset, length) if s[0] == 4][0]
    data[section4[1]:section4[1] + 4] = struct.pack(">I", section4[2] - 3)  # "ECCODES ERROR: Invalid size ..."
    damaged.write_bytes(bytes(data))
    date = fx.write_apcp_fields(tmp_path / "date.grib2", [((0, 6), rain)], box=BOX)
    data = bytearray(date.read_bytes())
    data[16 + 15] ^= 0xD0  # the day of the reference date: "ECCODES WARNING : Date is not valid" (fprintf)
    date.write_bytes(bytes(data))
    default_fill = fx.write_apcp_fields(tmp_path / "fill.grib2", [((0, 6), np.full_like(rain, 9.97e36))], box=BOX,
                                        packing="grid_ieee", bitmap=False)  # numpy overflow warnings in sums
    for path in (damaged, date, default_fill):
        res = run_cli("downscale", str(path), "-o", str(tmp_path / "o.nc"), "-m", str(checkpoint), *BBOX)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 3 and len(lines) == 1 and lines[0].startswith("error:"), res.stderr
