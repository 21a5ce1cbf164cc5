"""Metadata scans, window planning and window loading on small files written by the project's fixtures."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.windows import WindowUnit, compute_window, plan_windows
from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import FieldRef, SourceGrid
from harpnet_cli.io import grib
from harpnet_cli.io.readers import clear_grid_cache, load_field, scan_file, scan_files
from harpnet_cli.testing import fixtures as fx

H = timedelta(hours=1)
T0 = datetime(2016, 9, 19, 22)  # first CONUS404 file: the hour 21-22Z, two hours before 00Z


def window_amount(unit: WindowUnit) -> tuple[np.ndarray, SourceGrid]:
    """The unit's amount and grid, its fields read from the files."""
    return compute_window(unit, load_field)


def window_sums(hourly: np.ndarray, first_end: datetime, unit: WindowUnit) -> np.ndarray:
    """The expected amount of a unit from hourly data whose entry k ends at ``first_end + k`` hours."""
    first = int((unit.start + H - first_end) / H)
    return hourly[first:first + 3].sum(axis=0)


# -- CONUS404 layout: one file per hour with PREC_ACC_NC ----------------------------------------
def test_conus404_hourly_files_across_00z_with_a_missing_hour(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(9, 10, 12, seed=1)  # hours ending 22Z, 23Z, 00Z, …, 06Z
    paths = fx.write_conus404_hourly(tmp_path, hourly, T0, skip=(4,))  # 02Z is missing
    refs = scan_files(paths)
    assert len(refs) == 8 and all(r.kind == "interval" and r.period == H and r.format == "wrf" for r in refs)
    assert len({r.grid for r in refs}) == 1
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2016-09-20T00", "2016-09-20T06"]
    assert plan.dropped == {"incomplete": 1}  # 00-03Z lacks the hour ending 02Z
    first = plan.units[0]
    assert (first.start, first.end) == (datetime(2016, 9, 19, 21), datetime(2016, 9, 20))
    assert [(r.end, sign) for r, sign in first.terms] == [(T0, 1), (T0 + H, 1), (T0 + 2 * H, 1)]
    for unit in plan.units:
        data, grid = window_amount(unit)
        np.testing.assert_allclose(data, window_sums(hourly, T0, unit), atol=1e-5)
        assert data.dtype == np.float32 and data.shape == (10, 12)
    lat, lon = fx.wrf_lambert_grid(10, 12)
    np.testing.assert_allclose(grid.lat, lat, atol=1e-4)
    np.testing.assert_allclose(grid.lon, lon, atol=1e-4)
    assert grid.description == "WRF Lambert conformal 4 km"


def test_conus404_zarr_store_gives_one_ref_per_step_on_the_same_grid(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(9, 10, 12, seed=2)
    store = fx.write_conus404_zarr(tmp_path / "conus404.zarr", hourly, T0)
    refs = scan_file(store)
    assert len(refs) == 9 and {r.format for r in refs} == {"zarr"}
    assert [r.end for r in refs] == [T0 + k * H for k in range(9)]
    files = fx.write_conus404_hourly(tmp_path / "files", hourly[:1], T0)
    assert scan_file(files[0])[0].grid == refs[0].grid  # same grid, whatever the format
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2016-09-20T00", "2016-09-20T03", "2016-09-20T06"]
    for unit in plan.units:
        np.testing.assert_allclose(window_amount(unit)[0], window_sums(hourly, T0, unit), atol=1e-5)


def test_scan_does_not_decode_grib_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = fx.write_mrms_series(tmp_path, fx.synthetic_hourly(3), datetime(2016, 9, 20, 1))
    eccodes = grib.eccodes

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scan decoded values")

    monkeypatch.setattr(eccodes, "codes_get_values", refuse)
    monkeypatch.setattr(eccodes, "codes_get_array", refuse)
    assert len(scan_files(paths)) == 3


# -- WRF running totals -------------------------------------------------------------------------
def test_wrf_running_totals_become_differences(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(6, 10, 12, seed=3)
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", hourly, spinup_hours=12)  # 00Z … 06Z, totals 1 mm at 00Z
    refs = scan_file(path)
    assert {r.kind for r in refs} == {"running"} and {r.start for r in refs} == {fx.WRF_START - 12 * H}
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2005-09-21T03", "2005-09-21T06"]
    assert plan.dropped == {"incomplete": 1}  # the window ending at the first time
    for unit in plan.units:
        assert [sign for _, sign in unit.terms] == [1, -1] and unit.differenced
        assert [r.end for r, _ in unit.terms] == [unit.end, unit.start]
        np.testing.assert_allclose(window_amount(unit)[0], window_sums(hourly, fx.WRF_START + H, unit), atol=1e-4)


def test_wrf_running_totals_without_simulation_start_are_taken_from_the_first_time(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(6, 10, 12, seed=4)
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", hourly, spinup_hours=6)
    with netCDF4.Dataset(path, "a") as ds:
        ds.delncattr("SIMULATION_START_DATE")
        ds.delncattr("START_DATE")
    refs = scan_file(path)
    assert {r.start for r in refs} == {fx.WRF_START}
    np.testing.assert_allclose(load_field(refs[3])[0], hourly[:3].sum(0), atol=1e-4)  # 1 mm spin-up removed
    (first, second) = plan_windows(refs).units
    np.testing.assert_allclose(window_amount(first)[0], hourly[:3].sum(0), atol=1e-4)
    assert len(first.terms) == 1  # since the first time: no difference needed


@pytest.mark.parametrize("prec_acc", [False, True])
def test_moving_nest_is_refused(tmp_path: Path, prec_acc: bool) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "nest.nc", fx.synthetic_hourly(3, 10, 12), moving=True, prec_acc=prec_acc)
    with pytest.raises(InputDataError, match="moving nest: the grid moves between times") as info:
        scan_file(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize(("swap", "message"), [((1, 2), "not increasing"), ((2, 1), "duplicate time")])
def test_times_must_increase_within_a_wrf_file(tmp_path: Path, swap: tuple[int, int], message: str) -> None:
    path = fx.write_wrf_netcdf(tmp_path / "wrfout.nc", fx.synthetic_hourly(4, 10, 12))
    with netCDF4.Dataset(path, "a") as ds:
        times = ds.variables["Times"][:]
        if message == "duplicate time":
            times[swap[0]] = times[swap[1]]
        else:
            times[[swap[0], swap[1]]] = times[[swap[1], swap[0]]]
        ds.variables["Times"][:] = times
    with pytest.raises(InputDataError, match=message) as info:
        scan_file(path)
    assert str(info.value).startswith(str(path))


# -- GRIB ---------------------------------------------------------------------------------------
def test_mrms_like_hourly_series_masks_no_coverage(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(7, seed=5)
    hourly[:, :5, :] = np.nan  # no coverage in the north: written as -3
    paths = fx.write_mrms_series(tmp_path, hourly, datetime(2016, 9, 20))  # hours ending 00Z … 06Z
    plan = plan_windows(scan_files(paths))
    assert [u.key for u in plan.units] == ["2016-09-20T03", "2016-09-20T06"]
    assert plan.dropped == {"incomplete": 1}  # the 00Z file alone
    data, grid = window_amount(plan.units[0])
    assert np.isnan(data[:5]).all() and np.isfinite(data[5:]).all()
    np.testing.assert_allclose(data[5:], hourly[1:4, 5:].sum(0), atol=1e-3)
    assert grid.lat.ndim == 1 and grid.lat[0] == 40.0 and grid.lon[0] == 260.0


def test_hourly_apcp_grib_messages_are_summed(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(6, seed=6)  # forecast 18Z + 0…6 h, one message per hour
    path = fx.write_gfs_grib(tmp_path / "hourly.grb2", hourly, [(k, k + 1) for k in range(6)])
    refs = scan_file(path)
    assert [r.locator[1] for r in refs] == [1, 2, 3, 4, 5, 6]
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2020-03-25T21", "2020-03-26T00"]
    for k, unit in enumerate(plan.units):
        np.testing.assert_allclose(window_amount(unit)[0], hourly[3 * k:3 * k + 3].sum(0), atol=1e-3)


def test_members_are_planned_apart(tmp_path: Path) -> None:
    hourly = fx.synthetic_hourly(6, members=2, seed=7)
    path = fx.write_gfs_grib(tmp_path / "gefs.grb2", hourly, [(0, 3), (3, 6)], perturbation_numbers=[0, 1])
    plan = plan_windows(scan_file(path))
    assert [u.key for u in plan.units] == ["2020-03-25T21_m0", "2020-03-25T21_m1",
                                           "2020-03-26T00_m0", "2020-03-26T00_m1"]
    for unit in plan.units:
        assert {r.member for r, _ in unit.terms} == {unit.member} and len(unit.terms) == 1
        k = 0 if unit.end.hour == 21 else 1
        np.testing.assert_allclose(window_amount(unit)[0], hourly[unit.member, 3 * k:3 * k + 3].sum(0), atol=1e-3)


def test_six_hour_accumulations_give_a_clear_error(tmp_path: Path) -> None:
    path = fx.write_gfs_grib(tmp_path / "st4.grb2", fx.synthetic_hourly(12), [(0, 6), (6, 12)])
    with pytest.raises(InputDataError, match=r"6-hour accumulations .* cannot be split into 3-hour windows") as info:
        plan_windows(scan_file(path))
    assert str(info.value).startswith(str(path))


def test_six_hour_fields_beside_hourly_ones_are_counted() -> None:
    day = datetime(2002, 3, 1)
    refs = [interval(day + k * H, 1) for k in range(6)] + [interval(day + 6 * H, 6, path="ST4.2002030112.06h")]
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2002-03-01T03", "2002-03-01T06"]
    assert plan.dropped == {"longer_than_window": 2}


def test_two_grids_for_one_member_are_refused_naming_both_files(tmp_path: Path) -> None:
    a = fx.write_mrms_series(tmp_path / "a", fx.synthetic_hourly(3), datetime(2016, 9, 20, 1))
    b = fx.write_mrms_series(tmp_path / "b", fx.synthetic_hourly(3), datetime(2016, 9, 20, 4),
                             box=(30.0, 40.0, -101.0, -91.0))
    with pytest.raises(InputDataError, match="all inputs of one member must share one grid") as info:
        plan_windows(scan_files(a + b))
    assert str(b[0]) in str(info.value) and str(a[0]) in str(info.value)


# -- scanning failures --------------------------------------------------------------------------
def test_scan_failures_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.grb2").write_bytes(b"")
    (tmp_path / "notzarr").mkdir()
    cut = fx.write_mrms_grib(tmp_path / "cut.grib2", fx.synthetic_hourly(1)[0], datetime(2016, 9, 20))
    cut.write_bytes(cut.read_bytes()[:200])
    for path, message in [(tmp_path / "missing.grb2", "file not found"), (tmp_path / "empty.grb2", "empty"),
                          (tmp_path / "notzarr", "not a Zarr store"), (cut, "truncated")]:
        with pytest.raises(InputDataError, match=message) as info:
            scan_file(path)
        assert "\n" not in str(info.value)


# -- loading ------------------------------------------------------------------------------------
def test_grids_are_cached_per_key(tmp_path: Path) -> None:
    paths = fx.write_conus404_hourly(tmp_path, fx.synthetic_hourly(2, 10, 12), T0)
    clear_grid_cache()
    first, second = scan_files(paths)
    assert load_field(first)[1] is load_field(second)[1]


def test_field_refs_and_units_are_small_and_picklable(tmp_path: Path) -> None:
    paths = fx.write_mrms_series(tmp_path, fx.synthetic_hourly(3), datetime(2016, 9, 20, 1))
    (unit,) = plan_windows(scan_files(paths)).units
    blob = pickle.dumps(unit)
    assert pickle.loads(blob) == unit and len(blob) < 2000


REF_GRID = SourceGrid(lat=np.array([1.0, 2.0]), lon=np.array([3.0, 4.0, 5.0]))


def fake_unit(values: dict[str, np.ndarray]) -> tuple[WindowUnit, dict[FieldRef, np.ndarray]]:
    """A running-total difference ``b − a`` whose fields are given in memory."""
    start = datetime(2020, 1, 1)
    refs = {name: FieldRef(Path(f"{name}.nc"), "wrf", (name,), start, start + timedelta(hours=h), "running")
            for name, h in (("a", 3), ("b", 6))}
    unit = WindowUnit("2020-01-01T06", start + 3 * H, start + 6 * H, None, ((refs["b"], 1), (refs["a"], -1)))
    return unit, {refs[n]: v for n, v in values.items()}


def test_compute_window_clips_small_noise_and_propagates_nan() -> None:
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, np.nan]], dtype=np.float32)
    b = a + np.array([[0.5, -0.01, 0.0], [1.0, 2.0, 0.0]], dtype=np.float32)
    unit, fields = fake_unit({"a": a, "b": b})
    data, grid = compute_window(unit, lambda ref: (fields[ref], REF_GRID))
    np.testing.assert_allclose(data, [[0.5, 0.0, 0.0], [1.0, 2.0, np.nan]], atol=1e-6)
    assert grid is REF_GRID and np.isnan(data[1, 2])
    assert np.array_equal(fields[unit.terms[0][0]], b, equal_nan=True)  # the loader's arrays are left alone


def test_compute_window_refuses_strongly_negative_differences() -> None:
    a = np.full((2, 3), 50.0, dtype=np.float32)
    unit, fields = fake_unit({"a": a, "b": a - 30.0})
    with pytest.raises(InputDataError, match=r"inconsistent accumulations: .* below -1 mm in 100.0% of cells"):
        compute_window(unit, lambda ref: (fields[ref], REF_GRID))


# -- planning (pure) ----------------------------------------------------------------------------
def interval(start: datetime, hours: float, *, path: str = "f", member: int | None = None,
             grid: str = "g") -> FieldRef:
    """An interval ref over ``hours`` from ``start``."""
    return FieldRef(Path(path), "grib", (0, 1), start, start + timedelta(hours=hours), "interval", member, grid)


def test_windows_are_aligned_to_00z() -> None:
    day = datetime(2016, 9, 20)
    refs = [interval(day + k * H, 1, path=f"h{k + 1:02d}") for k in range(-1, 7)]  # hours ending 00Z … 07Z
    plan = plan_windows(refs)
    assert [(u.start.hour, u.end.hour) for u in plan.units] == [(0, 3), (3, 6)]
    assert [r.path.name for r, _ in plan.units[0].terms] == ["h01", "h02", "h03"]
    assert plan.dropped == {"incomplete": 2}  # 21-24Z with only 23-24Z; 06-09Z with only 06-07Z


def test_direct_three_hour_fields_and_gfs_buckets() -> None:
    ref = datetime(2020, 3, 25, 18)
    refs = [interval(ref, 3, path="f003"), interval(ref, 6, path="f006"), interval(ref, 6, path="f006"),
            interval(ref + 6 * H, 3, path="f009"), interval(ref, 9, path="f009")]
    plan = plan_windows(refs)
    recipes = [[(r.path.name, r.period / H, s) for r, s in u.terms] for u in plan.units]
    assert recipes == [[("f003", 3, 1)], [("f006", 6, 1), ("f003", 3, -1)], [("f009", 3, 1)]]
    assert plan.dropped == {} and plan.notes and "duplicate" in plan.notes[0]


def test_planning_refuses_bad_input() -> None:
    with pytest.raises(InputDataError, match="no precipitation fields"):
        plan_windows([])
    with pytest.raises(ValueError, match="does not divide 24 hours"):
        plan_windows([interval(datetime(2020, 1, 1), 1)], period=timedelta(hours=5))
    with pytest.raises(InputDataError, match=r"no complete 3-hour window .* \(2 incomplete\)"):
        plan_windows([interval(datetime(2020, 1, 1, 1), 1), interval(datetime(2020, 1, 1, 4), 1)])


def test_misaligned_fields_are_counted() -> None:
    start = datetime(2020, 1, 1, 1, 30)
    plan = plan_windows([interval(start + k * H, 1) for k in range(6)] + [interval(datetime(2020, 1, 2), 3)])
    assert plan.dropped == {"misaligned": 3} and [u.key for u in plan.units] == ["2020-01-02T03"]


def test_one_hour_windows() -> None:
    day = datetime(2020, 1, 1)
    plan = plan_windows([interval(day + k * H, 1) for k in range(4)], period=H)
    assert [u.key for u in plan.units] == [f"2020-01-01T0{k}" for k in range(1, 5)]


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 47), max_size=48))
def test_a_window_is_planned_exactly_when_its_three_hours_are_present(present: set[int]) -> None:
    day = datetime(2020, 1, 1)
    refs = [interval(day + k * H, 1, path=f"h{k}") for k in sorted(present)]
    windows = {w for w in range(16) if {3 * w, 3 * w + 1, 3 * w + 2} <= present}
    partial = {w for w in range(16) if {3 * w, 3 * w + 1, 3 * w + 2} & present} - windows
    if not windows:
        with pytest.raises(InputDataError):
            plan_windows(refs)
        return
    plan = plan_windows(refs)
    assert [u.start for u in plan.units] == [day + 3 * w * H for w in sorted(windows)]
    assert plan.dropped == ({"incomplete": len(partial)} if partial else {})
    for unit in plan.units:
        assert sorted(r.start for r, _ in unit.terms) == [unit.start + k * H for k in range(3)]


def test_pending_units_skip_finished_keys() -> None:
    day = datetime(2020, 1, 1)
    plan = plan_windows([interval(day + k * H, 1) for k in range(9)])
    assert [u.key for u in plan.pending({"2020-01-01T03", "2020-01-01T09"})] == ["2020-01-01T06"]


# -- window lengths, steps and phases ------------------------------------------------------------
def _hourly_refs(first_end: datetime, hours: int) -> list[FieldRef]:
    return [FieldRef(Path("x"), "fake", (k,), first_end + (k - 1) * H, first_end + k * H, "interval", None, "g")
            for k in range(hours)]


def test_overlapping_24_hour_windows_every_3_hours() -> None:
    refs = _hourly_refs(datetime(2016, 9, 20, 1), 48)  # hours ending 20 Sep 01Z ... 22 Sep 00Z
    plan = plan_windows(refs, period=24 * H, step=3 * H)
    ends = [u.end for u in plan.units]
    assert ends[0] == datetime(2016, 9, 21) and ends[-1] == datetime(2016, 9, 22)
    assert [e - s for s, e in zip(ends, ends[1:], strict=False)] == [3 * H] * 8
    assert all(len(u.terms) == 24 and u.end - u.start == 24 * H for u in plan.units)
    assert len({u.key for u in plan.units}) == len(plan.units)


def test_windows_follow_the_minute_of_fields_ending_at_hh50() -> None:
    refs = _hourly_refs(datetime(2022, 10, 18, 0, 50), 24)  # RADOLAN RW hours ending 00:50 ... 23:50
    plan = plan_windows(refs, period=3 * H)
    assert [u.end.strftime("%H:%M") for u in plan.units] == [f"{h:02d}:50" for h in (3, 6, 9, 12, 15, 18, 21)]
    assert plan.units[0].key == "2022-10-18T0350"
    (half,) = plan_windows(refs, period=12 * H).units  # DWD's day runs 00:50 to 00:50, as its SF sums
    assert (half.start, half.end) == (datetime(2022, 10, 18, 0, 50), datetime(2022, 10, 18, 12, 50))


@pytest.mark.parametrize("step", [5 * H, timedelta(minutes=7)])
def test_a_step_that_does_not_divide_the_day_is_refused(step: timedelta) -> None:
    with pytest.raises(ValueError, match="does not divide 24 hours"):
        plan_windows(_hourly_refs(datetime(2016, 9, 20, 1), 6), period=3 * H, step=step)
