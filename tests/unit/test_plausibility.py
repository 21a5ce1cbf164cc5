"""The input checks of harpnet_cli.plausibility: fill values, negatives, the world-record bound, empty fields,
falling running totals, and the report the downscale summary uses."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, IntervalSeries, SourceGrid
from harpnet_cli.plausibility import (
    FILL_VALUES,
    check_amounts,
    check_running_totals,
    clip_noise,
    fill_mask,
    gate_accumulations,
    gate_series,
    mask_fill,
    record_mm,
)

H = timedelta(hours=1)
T0 = datetime(2020, 3, 25, 18)
GRID = SourceGrid(lat=np.arange(10.0), lon=np.arange(20.0))


def rain(value: float = 2.0) -> np.ndarray:
    """A (10, 20) field: one extreme cell is 0.5 % of it, masked rather than refused."""
    return np.full((10, 20), value, dtype=np.float32)


def acc(data: np.ndarray, hours: tuple[int, int], name: str = "f.grib2", **kw) -> Accumulation:
    return Accumulation(data=data, grid=GRID, start=T0 + hours[0] * H, end=T0 + hours[1] * H, path=Path(name),
                        label=f"tp {hours[0]}-{hours[1]}h", **kw)


# -- rule 1: fill values --------------------------------------------------------------------------
@pytest.mark.parametrize("value", [*FILL_VALUES, 9.97e36, 3.4e38, -1e30, np.inf, -np.inf])
def test_every_sentinel_and_huge_or_infinite_value_is_fill(value):
    data = np.array([1.0, 0.0, value, 3.0])
    assert fill_mask(data).tolist() == [False, False, True, False]


def test_sentinels_match_within_packing_tolerance_and_sign():
    data = np.array([9999.4, 9998.0, -3.0002, 3.0, -2.9, 1e20 * (1 + 5e-5), 0.0])
    assert fill_mask(data).tolist() == [True, False, True, False, False, True, False]


def test_the_files_own_missing_value_counts():
    assert fill_mask(np.array([1.0, -99.0, 2.0]), own=[-99.0, None]).tolist() == [False, True, False]


def test_mask_fill_sets_nan_and_counts_the_values():
    data = np.array([[1.0, 1e20], [9999.0, np.nan]])
    count = mask_fill(data)
    assert count.cells == 2 and set(count.values) == {1e20, 9999.0}
    assert np.isnan(data).tolist() == [[False, True], [True, True]]
    assert "2 cell(s) holding fill value(s)" in count.describe()


# -- rule 2: negatives ----------------------------------------------------------------------------
def test_packing_noise_is_clipped_and_counted():
    data = np.array([1.0, -0.05, -0.1, np.nan])
    assert clip_noise(data) == 2
    np.testing.assert_array_equal(data, [1.0, 0.0, 0.0, np.nan])


@pytest.mark.parametrize("values", [[1.0, -0.11, 2.0], [-5.0, -5.0, -5.0]])
def test_negative_amounts_beyond_noise_are_refused(values):
    with pytest.raises(InputDataError, match="negative amounts.*below -0.1 mm"):
        clip_noise(np.array(values), "x.grib2", "tp 0-6h")


# -- rule 3: the bound ----------------------------------------------------------------------------
@pytest.mark.parametrize(("hours", "mm"), [(0.25, 218), (1, 422), (3, 711), (6, 988), (24, 1910), (0, 0)])
def test_the_bound_is_the_world_record_envelope(hours, mm):
    assert record_mm(timedelta(hours=hours)) == pytest.approx(mm, abs=1)


def test_a_few_extreme_cells_are_masked_and_reported():
    data = np.full((20, 10), 3.0)
    data[0, 0] = 5000.0
    check = check_amounts(data, 6 * H)
    assert np.isnan(data[0, 0]) and np.isfinite(data).sum() == 199
    assert (check.extreme, check.largest, check.masked) == (1, 5000.0, 1)


def test_many_extreme_cells_refuse_the_field_as_wrong_units():
    data = np.full((20, 10), 3.82) * 1000.0  # a NAM field x1000: 3,820 mm in 3 h
    with pytest.raises(InputDataError, match=r"200 of 200 valid cell\(s\) exceed 711 mm.*wrong units or scale"):
        check_amounts(data, 3 * H, source="nam.nc")


def test_allow_extreme_keeps_them():
    data = np.full((2, 2), 5000.0)
    check = check_amounts(data, 6 * H, allow_extreme=True)
    assert check.kept and check.extreme == 4 and check.masked == 0 and (data == 5000.0).all()


def test_a_step_zero_field_has_no_bound():
    data = rain(3.0)
    assert check_amounts(data, timedelta(0)).extreme == 0


# -- rule 4: empty fields -------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, 1e20])
def test_a_field_without_a_valid_cell_is_refused(value):
    with pytest.raises(InputDataError, match="has no valid cell"):
        check_amounts(np.full((3, 3), value), 3 * H, source="gefs.grib2")


# -- rule 5: running totals -----------------------------------------------------------------------
def test_a_falling_running_total_is_refused_naming_both_files():
    early, late = acc(rain(5.0), (0, 3), "f003"), acc(rain(5.0), (0, 6), "f006")
    late.data[1, 1] = 4.0
    with pytest.raises(InputDataError, match=r"f006: tp 0-6h is below tp 0-3h from f003 in 1 cell"):
        check_running_totals([late, early])


def test_running_totals_may_differ_by_packing_noise_and_other_starts_are_not_compared():
    early, late = acc(rain(5.0), (0, 3)), acc(rain(4.7), (0, 6))
    other = acc(rain(0.0), (3, 6))
    check_running_totals([early, late, other])


# -- the gate and its report ----------------------------------------------------------------------
def test_gate_counts_reader_and_gate_fill_values_and_extremes_per_file():
    a = acc(rain(), (0, 3), masked=4, masked_values=(9999.0,))
    a.data[0, 0] = 1e20
    b = acc(rain(), (3, 6), "g.grib2")
    b.data[1, 1] = 900.0
    report = gate_accumulations([a, b])
    assert report.masked == 4 + 1 + 1
    lines = report.warnings
    assert any(line.startswith("f.grib2: 5 cell(s) hold fill value(s) (9999, 1e+20)") for line in lines), lines
    assert any(line.startswith("g.grib2: 1 cell(s) above the world-record") and "largest 900 mm" in line
               for line in lines), lines


def test_gate_series_checks_each_window_the_model_sees():
    data = np.stack([rain(), rain()])
    data[1, 0, 0] = 800.0  # above 711 mm in the 3 h window
    s = IntervalSeries(data=data, grid=GRID, starts=[T0, T0 + 3 * H], ends=[T0 + 3 * H, T0 + 6 * H],
                       paths=[Path("a.grib2"), Path("b.grib2")])
    report = gate_series([s])
    assert report.masked == 1 and np.isnan(s.data[1, 0, 0])
    s.data[0] = np.nan
    with pytest.raises(InputDataError, match="a.grib2 \\(and 1 other file\\(s\\)\\): window .* has no valid cell"):
        gate_series([s])
