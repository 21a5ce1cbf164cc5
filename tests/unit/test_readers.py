"""Tests of the GRIB, NetCDF, WRF and Zarr readers on small files written by harpnet_cli.testing, and of
the format registry."""

from __future__ import annotations

import inspect
import sys
import types
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyproj  # noqa: F401  # load PROJ before anything loads ecCodes (e.g. xarray's cfgrib plugin)
import pytest

from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.core.windows import compute_window, plan_windows
from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid
from harpnet_cli.io import readers
from harpnet_cli.io.readers import (
    READERS,
    detect_format,
    get_reader,
    load_field,
    read_accumulations,
    scan_file,
    scan_files,
)
from harpnet_cli.testing import fixtures as fx

H = timedelta(hours=1)


@pytest.fixture(scope="module")
def rain() -> np.ndarray:
    """``(12, 41, 41)`` hourly amounts on the default box (rows north → south)."""
    return fx.synthetic_hourly(12)


def window_hours(series_starts: list[datetime], series_ends: list[datetime], ref: datetime) -> list[tuple]:
    """``[(start_h, end_h), …]`` relative to ``ref``."""
    return [((s - ref) / H, (e - ref) / H) for s, e in zip(series_starts, series_ends, strict=True)]


def assert_one_line_error(info: pytest.ExceptionInfo[InputDataError], path: Path, *fragments: str) -> None:
    """The error names the path first, is one line and contains every fragment."""
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


# -- GRIB ---------------------------------------------------------------------------------------
def test_gfs_sequence_gives_three_hour_intervals(tmp_path: Path, rain: np.ndarray) -> None:
    paths = fx.write_gfs_sequence(tmp_path, rain, (3, 6, 9))
    (series,) = to_interval_series(read_accumulations(paths))
    assert window_hours(series.starts, series.ends, fx.GFS_REFERENCE) == [(0, 3), (3, 6), (6, 9)]
    for k, (a, b) in enumerate([(0, 3), (3, 6), (6, 9)]):
        np.testing.assert_allclose(series.data[k], rain[a:b].sum(0), atol=1e-3)
    assert series.grid.lat[0] == 40.0 and series.grid.lon[0] == 260.0 and series.grid.shape == (41, 41)
    assert (series.data >= 0).all()


def test_two_gfs_files_are_differenced(tmp_path: Path, rain: np.ndarray) -> None:
    paths = fx.write_gfs_sequence(tmp_path, rain, (3, 6))
    (series,) = to_interval_series(read_accumulations(paths))
    np.testing.assert_allclose(series.data[1], rain[3:6].sum(0), atol=1e-3)


def test_gfs_f006_duplicate_messages_read_once(tmp_path: Path, rain: np.ndarray) -> None:
    (path,) = fx.write_gfs_sequence(tmp_path, rain, (6,))
    accs = read_accumulations([path])
    assert len(accs) == 1 and "duplicate" in accs[0].label
    assert (accs[0].start, accs[0].end) == (fx.GFS_REFERENCE, fx.GFS_REFERENCE + 6 * H)


def test_gfs_f012_keeps_bucket_and_running_total(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_gfs_grib(tmp_path / "f012", rain, fx.gfs_windows(12))
    accs = read_accumulations([path])
    assert sorted((a.start - fx.GFS_REFERENCE) / H for a in accs) == [0, 6]
    (series,) = to_interval_series(accs)
    assert window_hours(series.starts, series.ends, fx.GFS_REFERENCE) == [(6, 12)]


def test_gefs_members(tmp_path: Path) -> None:
    rain = fx.synthetic_hourly(6, members=3, seed=3)
    path = fx.write_gfs_grib(tmp_path / "gefs", rain, [(0, 3), (0, 6)], perturbation_numbers=[0, 1, 2])
    series = to_interval_series(read_accumulations([path]))
    assert [s.member for s in series] == [0, 1, 2]
    for m, s in enumerate(series):
        np.testing.assert_allclose(s.data[1], rain[m, 3:6].sum(0), atol=1e-3)


@pytest.mark.parametrize("edition", [1, 2])
def test_ecmwf_metres_and_step_zero(tmp_path: Path, rain: np.ndarray, edition: int) -> None:
    path = fx.write_ecmwf_grib(tmp_path / "tp.grib", rain, steps=(0, 6, 12), edition=edition)
    accs = read_accumulations([path])
    assert [(a.start, a.end) for a in accs][0] == (fx.ECMWF_REFERENCE, fx.ECMWF_REFERENCE)
    assert all(a.member is None for a in accs)
    (series,) = to_interval_series(accs)
    assert window_hours(series.starts, series.ends, fx.ECMWF_REFERENCE) == [(0, 6), (6, 12)]
    np.testing.assert_allclose(series.data[1], rain[6:12].sum(0), atol=1e-3)  # metres -> mm
    assert series.grid.lon[0] == (-100.0 if edition == 1 else 260.0)  # GRIB2 longitudes are unsigned


def test_negative_packing_noise_is_clipped(tmp_path: Path, rain: np.ndarray) -> None:
    noisy = rain.copy()
    noisy[0, :2, :2] = -0.02
    noisy[1:3, :2, :2] = 0.0
    path = fx.write_gfs_grib(tmp_path / "f003", noisy, [(0, 3)])
    (acc,) = read_accumulations([path])
    assert acc.data.min() == 0.0 and "clipped 4 negative" in acc.label
    (series,) = to_interval_series([acc])
    assert any("clipped" in note for note in series.notes)


def test_bitmap_missing_becomes_nan(tmp_path: Path, rain: np.ndarray) -> None:
    holes = rain.copy()
    holes[:, 5, 7] = np.nan
    (acc,) = read_accumulations([fx.write_gfs_grib(tmp_path / "f003", holes, [(0, 3)])])
    assert np.isnan(acc.data[5, 7]) and np.isnan(acc.data).sum() == 1


def test_same_file_twice_is_a_dropped_duplicate(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_gfs_grib(tmp_path / "f003", rain, [(0, 3)])
    (series,) = to_interval_series(read_accumulations([path, path]))
    assert series.data.shape[0] == 1 and "dropped 1 duplicate" in series.notes[0]


def test_gap_error_names_the_file(tmp_path: Path, rain: np.ndarray) -> None:
    first = fx.write_gfs_grib(tmp_path / "f003", rain, [(0, 3)])
    later = fx.write_gfs_grib(tmp_path / "f009", rain, [(6, 9)])
    with pytest.raises(InputDataError) as info:
        to_interval_series(read_accumulations([first, later]))
    assert_one_line_error(info, later, "gap", "2020-03-25 21Z–2020-03-26 03Z", "have 0–3h, 6–9h")


def test_grib_without_precipitation_lists_what_is_there(tmp_path: Path) -> None:
    import eccodes  # after pyproj, imported above

    path = tmp_path / "t2m.grib"
    gid = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    with open(path, "wb") as out:
        eccodes.codes_write(gid, out)
    eccodes.codes_release(gid)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "no precipitation message", "found t")
    with pytest.raises(InputDataError) as info:  # the header scan downscale runs names them only for the error
        scan_file(path)
    assert_one_line_error(info, path, "no precipitation message", "found t")


def test_truncated_grib(tmp_path: Path, rain: np.ndarray) -> None:
    full = fx.write_gfs_grib(tmp_path / "full", rain, [(0, 3)])
    path = tmp_path / "cut.grib2"
    path.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "truncated GRIB")


# -- WRF ----------------------------------------------------------------------------------------
def test_fixed_wrf_running_totals(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", rain[:, :8, :9], step_hours=3, spinup_hours=12)
    assert detect_format(path) == "wrf"
    (series,) = to_interval_series(read_accumulations([path]))
    assert window_hours(series.starts, series.ends, fx.WRF_START) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert (series.data >= 0).all()
    np.testing.assert_allclose(series.data[3], rain[9:12, :8, :9].sum(0), atol=1e-3)
    assert series.grid.lat.shape == (8, 9) and 35 < series.grid.lat.mean() < 42


def test_moving_nest_is_refused(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "nest.nc", rain[:, :8, :9], step_hours=3, moving=True)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "moving nest", "running totals cannot be differenced")


def test_wrf_prec_acc_nc_is_hourly(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "conus404.nc", rain[:6, :8, :9], prec_acc=True)
    (series,) = to_interval_series(read_accumulations([path]))
    assert window_hours(series.starts, series.ends, fx.WRF_START) == [(k, k + 1) for k in range(6)]
    np.testing.assert_allclose(series.data[4], rain[4, :8, :9], atol=1e-4)


def test_wrf_unknown_variable(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", rain[:3, :8, :9])
    with pytest.raises(InputDataError) as info:
        read_accumulations([path], variable="T2")
    assert_one_line_error(info, path, "'T2' is not a WRF precipitation variable", "RAINNC")


# -- CF NetCDF ----------------------------------------------------------------------------------
def test_cf_netcdf_with_time_bounds(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3)
    assert detect_format(path) == "netcdf"
    (series,) = to_interval_series(read_accumulations([path]))
    assert window_hours(series.starts, series.ends, fx.GFS_REFERENCE) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert series.grid.lat[0] == 30.0  # stored south -> north
    np.testing.assert_allclose(series.data[2], rain[6:9].sum(0)[::-1], atol=1e-4)


def test_cf_netcdf_with_cell_methods_only(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 6, bounds=False, cell_methods=True)
    (series,) = to_interval_series(read_accumulations([path]))
    assert window_hours(series.starts, series.ends, fx.GFS_REFERENCE) == [(0, 6), (6, 12)]


def test_cf_netcdf_needs_an_accumulation_period(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3, bounds=False)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "pass --accumulation")
    (series,) = to_interval_series(read_accumulations([path], accumulation=3 * H))
    assert window_hours(series.starts, series.ends, fx.GFS_REFERENCE)[0] == (0, 3)


def test_explicit_accumulation_must_agree_with_bounds(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3)
    with pytest.raises(InputDataError, match="disagrees with the file's time bounds"):
        read_accumulations([path], accumulation=6 * H)


def test_cf_netcdf_metres_and_lwe_standard_name(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3, units="m", name="tp",
                              standard_name="lwe_thickness_of_precipitation_amount")
    (series,) = to_interval_series(read_accumulations([path]))
    np.testing.assert_allclose(series.data[0], rain[:3].sum(0)[::-1], atol=1e-3)


@pytest.mark.parametrize(("units", "fragment"), [("furlongs", "has units 'furlongs'"),
                                                 ("kg m-2 s-1", "is a precipitation rate"),
                                                 ("mm/h", "is a precipitation rate")])
def test_cf_netcdf_bad_units(tmp_path: Path, rain: np.ndarray, units: str, fragment: str) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3, units=units)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, fragment)


def test_netcdf_without_precipitation(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "t.nc", rain, 3, standard_name="air_temperature", name="t2m")
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "no precipitation variable", "t2m", "--variable")
    (series,) = to_interval_series(read_accumulations([path], variable="t2m"))
    assert series.data.shape == (4, 41, 41)


def test_netcdf_named_variable_missing(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path], variable="nope")
    assert_one_line_error(info, path, "no variable 'nope'", "precip")


def test_netcdf_projected_grid_with_grid_mapping(tmp_path: Path) -> None:
    import netCDF4

    path = tmp_path / "lcc.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for dim, size in (("time", 2), ("y", 4), ("x", 5), ("nv", 2)):
            ds.createDimension(dim, size)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.bounds = "hours since 2024-01-01 00:00", "time_bnds"
        time[:] = [3, 6]
        ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = [[0, 3], [3, 6]]
        for name, values in (("x", 1300 + 12 * np.arange(5)), ("y", 1750 + 12 * np.arange(4))):
            coord = ds.createVariable(name, "f4", (name,))
            coord.units, coord.standard_name = "km", f"projection_{name}_coordinate"
            coord[:] = values
        mapping = ds.createVariable("lcc", "i4", ())
        mapping.setncatts({"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": 25.0,
                           "longitude_of_central_meridian": 265.0, "latitude_of_projection_origin": 25.0,
                           "earth_radius": 6371229.0})
        apcp = ds.createVariable("Total_precipitation_surface_3_Hour_Accumulation", "f4", ("time", "y", "x"))
        apcp.units, apcp.grid_mapping = "kg.m-2", "lcc"
        apcp[:] = np.ones((2, 4, 5))
    accs = read_accumulations([path])
    assert len(accs) == 2 and accs[0].grid.lat.shape == (4, 5)
    assert 35 < accs[0].grid.lat.mean() < 45 and -85 < accs[0].grid.lon.mean() < -70


# -- bad files and the registry -----------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.grib2"
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "file not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.grib2"
    path.touch()
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "empty file")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.nc"
    path.write_text("hello, this is not a forecast\n")
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, "not a GRIB or NetCDF file", "'hello, this is not")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputDataError) as info:
        read_accumulations([tmp_path])
    assert_one_line_error(info, tmp_path, "is a directory")


def test_truncated_netcdf(tmp_path: Path, rain: np.ndarray) -> None:
    full = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3)
    path = tmp_path / "cut.nc"
    path.write_bytes(full.read_bytes()[:3000])
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_truncated_netcdf3_is_not_read_as_zeros(tmp_path: Path, rain: np.ndarray) -> None:
    import netCDF4

    full = tmp_path / "classic.nc"
    with netCDF4.Dataset(full, "w", format="NETCDF3_CLASSIC") as ds:
        for dim, size in (("time", 4), ("lat", 41), ("lon", 41)):
            ds.createDimension(dim, size)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "hours since 2020-01-01"
        time[:] = [3, 6, 9, 12]
        ds.createVariable("lat", "f8", ("lat",))[:] = np.arange(41) * 0.25
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(41) * 0.25
        precip = ds.createVariable("precip", "f4", ("time", "lat", "lon"))
        precip.units, precip.standard_name = "mm", "precipitation_amount"
        precip[:] = rain[:4]
    assert len(read_accumulations([full], accumulation=3 * H)) == 4
    path = tmp_path / "cut.nc"
    path.write_bytes(full.read_bytes()[:10000])
    with pytest.raises(InputDataError) as info:
        read_accumulations([path], accumulation=3 * H)
    assert_one_line_error(info, path, "truncated or corrupt NetCDF3 file")


def test_non_zarr_directory_is_refused_by_read_and_scan_alike(tmp_path: Path) -> None:
    for call in (lambda: read_accumulations([tmp_path]), lambda: scan_file(tmp_path)):
        with pytest.raises(InputDataError) as info:
            call()
        assert_one_line_error(info, tmp_path, "is a directory but not a Zarr store")


# -- Zarr ---------------------------------------------------------------------------------------
def test_zarr_store_is_read_like_its_scan_and_loads(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(5, 10, 12, seed=8)
    hourly[2, 0, :3] = -0.01  # packing noise
    store = fx.write_conus404_zarr(tmp_path / "conus404.zarr", hourly, datetime(2016, 9, 20, 1))
    assert detect_format(store) == "zarr"
    accs = read_accumulations([store])
    refs = scan_file(store)
    assert [(a.start, a.end) for a in accs] == [(r.start, r.end) for r in refs]
    assert accs[0].label == "PREC_ACC_NC 1h ending 2016-09-20 01:00" and "clipped 3 negative" in accs[2].label
    for acc, ref in zip(accs, refs, strict=True):
        data, grid = load_field(ref)
        np.testing.assert_array_equal(acc.data, data)
        np.testing.assert_array_equal(acc.grid.lat, grid.lat)
        assert acc.grid.description == grid.description == "WRF Lambert conformal 4 km"
    np.testing.assert_allclose(accs[4].data, hourly[4], atol=1e-6)
    (series,) = to_interval_series(accs)
    assert series.data.shape == (5, 10, 12) and (series.data >= 0).all()


# -- the registry -------------------------------------------------------------------------------
def test_unknown_reader_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: " + ", ".join(sorted(READERS))):
        get_reader("hdf4")


@pytest.mark.parametrize("name", list(READERS))
def test_every_registered_module_offers_sniff_read_scan_and_load(name: str) -> None:
    module = get_reader(name)
    for function in ("sniff", "read", "scan", "load"):
        assert callable(getattr(module, function, None)), f"{READERS[name]} has no {function}()"
    for function in ("read", "scan"):
        params = inspect.signature(getattr(module, function)).parameters
        assert list(params) == ["path", "variable", "accumulation"]
        assert params["variable"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(module.sniff).parameters) == ["path", "head"]


def test_wrf_is_asked_before_cf_netcdf(tmp_path: Path, rain: np.ndarray) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", rain[:3, :8, :9])
    head = path.read_bytes()[:4096]
    assert get_reader("netcdf").sniff(path, head) and get_reader("wrf").sniff(path, head)
    assert list(READERS).index("wrf") < list(READERS).index("netcdf") and detect_format(path) == "wrf"


FAKE_GRID = SourceGrid(lat=np.array([10.0, 10.25]), lon=np.array([20.0, 20.25, 20.5]), description="fake")


def _fake_format_module() -> types.ModuleType:
    """A format module kept in memory: files starting ``FAKE`` hold one 1-hour field per further line."""
    module = types.ModuleType("harpnet_fake_format")
    t0 = datetime(2020, 1, 1)

    def sniff(path: Path, head: bytes) -> bool:
        return head.startswith(b"FAKE")

    def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
        lines = path.read_text().splitlines()[1:]
        if "boom" in lines:
            raise RuntimeError("boom\nsecond line")
        return [FieldRef(path, "fake", (k,), t0 + k * H, t0 + (k + 1) * H, "interval", None, "fake-grid")
                for k in range(len(lines))]

    def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
        value = float(ref.path.read_text().splitlines()[1 + int(ref.locator[0])])
        return np.full(FAKE_GRID.shape, value, dtype=np.float32), FAKE_GRID

    def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
        return [Accumulation(load(ref)[0], FAKE_GRID, ref.start, ref.end, path) for ref in scan(path)]

    module.sniff, module.scan, module.load, module.read = sniff, scan, load, read  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fake_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake format, first in the registry."""
    monkeypatch.setitem(sys.modules, "harpnet_fake_format", _fake_format_module())
    monkeypatch.setattr(readers, "READERS", {"fake": "harpnet_fake_format", **READERS})


@pytest.mark.usefixtures("fake_format")
def test_a_format_registered_once_is_detected_read_scanned_and_loaded(tmp_path: Path) -> None:
    path = tmp_path / "rain.fake"
    path.write_text("FAKE\n1.0\n2.0\n3.0\n")
    assert detect_format(path) == "fake"
    assert [float(a.data[0, 0]) for a in read_accumulations([path])] == [1.0, 2.0, 3.0]
    refs = scan_files([path])
    assert [r.format for r in refs] == ["fake"] * 3
    (unit,) = plan_windows(refs).units
    data, grid = compute_window(unit, load_field)
    assert grid is FAKE_GRID and np.allclose(data, 6.0)
    with pytest.raises(ValueError, match="known: fake, " + ", ".join(sorted(READERS))):
        get_reader("nope")
    path.write_text("FAKE\nboom\n")
    with pytest.raises(InputDataError) as info:
        scan_file(path)
    assert_one_line_error(info, path, "unreadable fake file: boom")


@pytest.mark.usefixtures("fake_format")
def test_the_first_registered_format_that_accepts_a_file_wins(tmp_path: Path, rain: np.ndarray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = fx.write_gfs_grib(tmp_path / "f003", rain, [(0, 3)])
    fake = sys.modules["harpnet_fake_format"]
    monkeypatch.setattr(fake, "sniff", lambda path, head: b"GRIB" in head)
    assert detect_format(path) == "fake"
    monkeypatch.setattr(readers, "READERS", {**{k: v for k, v in readers.READERS.items() if k != "fake"},
                                             "fake": "harpnet_fake_format"})
    assert detect_format(path) == "grib"


def test_io_modules_are_imported_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, harpnet_cli.io.readers, harpnet_cli.core.accumulation; "
            "print(any(m in sys.modules for m in ('eccodes', 'netCDF4', 'xarray')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("units", "factor"), [("mm", 1.0), ("kg m-2", 1.0), ("kg.m-2", 1.0), ("m", 1000.0),
                                               ("metres", 1000.0), ("in", 25.4), ("inches", 25.4)])
def test_cf_netcdf_accepted_unit_spellings(tmp_path: Path, rain: np.ndarray, units: str, factor: float) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3, units=units)  # the writer divides by 1000 for "m"
    (series,) = to_interval_series(read_accumulations([path]))
    expected = rain[:3].sum(0)[::-1] * (1.0 if units == "m" else factor)
    np.testing.assert_allclose(series.data[0], expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("units", ["M", "MM", "Mm", "KG M-2", "IN", "millimetres per window"])
def test_cf_netcdf_units_are_case_sensitive_and_never_guessed(tmp_path: Path, rain: np.ndarray, units: str) -> None:
    path = fx.write_cf_netcdf(tmp_path / "cf.nc", rain, 3, units=units)
    with pytest.raises(InputDataError) as info:
        read_accumulations([path])
    assert_one_line_error(info, path, f"has units {units!r}", "case-sensitive")


def test_gzip_netcdf_from_delft_fews_in_inches(tmp_path: Path, rain: np.ndarray) -> None:
    """NWRFC's QPE: a Delft-FEWS export, gzip-compressed, units "IN" (that producer's spelling of inches)."""
    import gzip

    import netCDF4

    path = fx.write_cf_netcdf(tmp_path / "qpe.nc", rain / 25.4, 3, units="IN")
    with netCDF4.Dataset(path, "a") as ds:
        ds.institution, ds.source = "Deltares", "Export NETCDF-CF_GRID from Delft-FEWS"
    packed = tmp_path / "qpe.nc.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert detect_format(packed) == "netcdf"
    (series,) = to_interval_series(read_accumulations([packed]))
    np.testing.assert_allclose(series.data[0], rain[:3].sum(0)[::-1], rtol=1e-5, atol=1e-3)


def test_a_gfs_file_is_scanned_and_loaded_without_ecCodes_concept_lookups(tmp_path: Path, rain: np.ndarray,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``units`` and ``shortName`` each load ecCodes concept tables (~0.1 s a process): WMO 0/1/8 needs neither."""
    import eccodes

    from harpnet_cli.io import grib

    path = fx.write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", rain, fx.gfs_windows(6))
    asked: list[str] = []
    real_get = grib._get

    def recording(gid: int, key: str, default: object = None) -> object:
        asked.append(key)
        return real_get(gid, key, default)

    monkeypatch.setattr(grib, "_get", recording)
    refs = scan_file(path)
    values = [load_field(ref)[0] for ref in refs]
    assert refs and all(np.isfinite(v).any() for v in values)
    assert not {"units", "shortName", "name", "paramId"} & set(asked)
    # and what it assumes is what ecCodes says of such a message
    with open(path, "rb") as handle:
        gid = eccodes.codes_grib_new_from_file(handle)
        try:
            assert eccodes.codes_get(gid, "units") in ("kg m**-2", "unknown")
            assert eccodes.codes_get(gid, "shortName") == "tp"
        finally:
            eccodes.codes_release(gid)
