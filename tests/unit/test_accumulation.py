"""Tests of the accumulation logic: buckets, running totals, duplicates, gaps, members."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, SourceGrid, clip_negatives

REF = datetime(2020, 3, 25, 18)
GRID = SourceGrid(lat=np.array([31.0, 30.75, 30.5]), lon=np.array([260.0, 260.25]), description="test")


def hourly(hours: int = 12, seed: int = 0) -> np.ndarray:
    """``(hours, 3, 2)`` random hourly amounts."""
    rng = np.random.default_rng(seed)
    return rng.gamma(0.7, 2.0, (hours, 3, 2)).astype(np.float32)


def acc(rain: np.ndarray, start: int, end: int, *, path: str = "f.grb", member: int | None = None,
        grid: SourceGrid = GRID, data: np.ndarray | None = None) -> Accumulation:
    """The accumulation over forecast hours ``[start, end]`` of ``rain``."""
    field = rain[start:end].sum(axis=0) if data is None else data
    return Accumulation(data=field.astype(np.float32), grid=grid, start=REF + timedelta(hours=start),
                        end=REF + timedelta(hours=end), path=Path(path), reference_time=REF, member=member,
                        label=f"tp {start}-{end}h")


def hours_of(series_times: list[datetime]) -> list[float]:
    """Forecast hours of datetimes."""
    return [(t - REF) / timedelta(hours=1) for t in series_times]


def test_gfs_buckets_and_running_totals_give_three_hour_intervals() -> None:
    rain = hourly(9)
    accs = [acc(rain, 0, 3, path="f003"), acc(rain, 0, 6, path="f006"), acc(rain, 0, 6, path="f006"),
            acc(rain, 6, 9, path="f009"), acc(rain, 0, 9, path="f009")]
    (series,) = to_interval_series(accs)
    assert hours_of(series.starts) == [0, 3, 6]
    assert hours_of(series.ends) == [3, 6, 9]
    for k, (a, b) in enumerate([(0, 3), (3, 6), (6, 9)]):
        np.testing.assert_allclose(series.data[k], rain[a:b].sum(0), atol=1e-5)
    assert series.data.dtype == np.float32 and series.data.shape == (3, 3, 2)
    assert series.paths == [Path("f003"), Path("f006"), Path("f009")]
    assert series.reference_time == REF
    assert any("duplicate" in note for note in series.notes)


def test_single_file_with_bucket_and_running_total_picks_the_bucket() -> None:
    rain = hourly(12)
    (series,) = to_interval_series([acc(rain, 6, 12), acc(rain, 0, 12)])
    assert hours_of(series.starts) == [6] and hours_of(series.ends) == [12]
    np.testing.assert_allclose(series.data[0], rain[6:12].sum(0), atol=1e-5)


def test_single_six_hour_bucket() -> None:
    rain = hourly(6)
    (series,) = to_interval_series([acc(rain, 0, 6)])
    assert hours_of(series.starts) == [0] and hours_of(series.ends) == [6]


def test_step_zero_field_only_marks_the_start() -> None:
    rain = hourly(120)
    (series,) = to_interval_series([acc(rain, 0, 0), acc(rain, 0, 120)])
    assert hours_of(series.starts) == [0] and hours_of(series.ends) == [120]
    np.testing.assert_allclose(series.data[0], rain.sum(0), rtol=1e-5)


def test_running_totals_are_differenced() -> None:
    rain = hourly(18)
    (series,) = to_interval_series([acc(rain, 0, s) for s in (18, 0, 6, 12)])
    assert hours_of(series.ends) == [6, 12, 18]
    np.testing.assert_allclose(series.data[2], rain[12:18].sum(0), atol=1e-4)


def test_intervals_of_different_lengths_are_allowed() -> None:
    rain = hourly(12)
    (series,) = to_interval_series([acc(rain, 0, 1), acc(rain, 1, 3), acc(rain, 3, 12)])
    lengths = [(e - s) / timedelta(hours=1) for s, e in zip(series.starts, series.ends, strict=True)]
    assert lengths == [1, 2, 9]


def test_gap_names_the_file_and_the_missing_window() -> None:
    rain = hourly(9)
    with pytest.raises(InputDataError) as info:
        to_interval_series([acc(rain, 0, 3, path="f003"), acc(rain, 6, 9, path="f009")])
    message = str(info.value)
    assert message.startswith("f009: gap: no accumulation lets 2020-03-25 21Z–2020-03-26 03Z be formed")
    assert "have 0–3h, 6–9h" in message
    assert "\n" not in message


def test_identical_duplicates_are_dropped_with_a_note() -> None:
    rain = hourly(6)
    (series,) = to_interval_series([acc(rain, 0, 6, path="a"), acc(rain, 0, 6, path="b")])
    assert series.data.shape[0] == 1
    assert series.notes and "dropped 1 duplicate" in series.notes[0]


def test_conflicting_duplicates_name_both_files() -> None:
    rain = hourly(6)
    with pytest.raises(InputDataError, match="conflicting duplicate") as info:
        to_interval_series([acc(rain, 0, 6, path="a.grb"), acc(rain * 2 + 1, 0, 6, path="b.grb")])
    assert info.value.path == Path("b.grb") and "a.grb" in str(info.value)


def test_packing_noise_is_clipped_and_counted() -> None:
    rain = hourly(6)
    later = rain[:6].sum(0)
    earlier = rain[:3].sum(0)
    earlier[0, 0] = later[0, 0] + 0.01  # the difference is -0.01 in one cell
    (series,) = to_interval_series([acc(rain, 0, 3, data=earlier), acc(rain, 0, 6, data=later)])
    assert series.data[1, 0, 0] == 0.0
    assert (series.data >= 0).all()
    assert any("clipped 1 negative" in note for note in series.notes)


def test_strongly_negative_difference_is_inconsistent_input() -> None:
    rain = hourly(6)
    earlier = rain[:6].sum(0) + 5.0  # running total decreasing by 5 mm everywhere
    with pytest.raises(InputDataError, match="inconsistent accumulations"):
        to_interval_series([acc(rain, 0, 3, data=earlier), acc(rain, 0, 6)])


def test_nan_propagates() -> None:
    rain = hourly(6)
    earlier = rain[:3].sum(0)
    earlier[1, 1] = np.nan
    (series,) = to_interval_series([acc(rain, 0, 3, data=earlier), acc(rain, 0, 6)])
    assert np.isnan(series.data[:, 1, 1]).all()
    assert np.isfinite(series.data[:, 0, 0]).all()


def test_members_are_separate_series_sorted_with_none_first() -> None:
    rain = hourly(6)
    accs = [acc(rain * (m or 1), 0, 6, member=m) for m in (2, None, 0, 1)]
    series = to_interval_series(accs)
    assert [s.member for s in series] == [None, 0, 1, 2]
    np.testing.assert_allclose(series[3].data[0], 2 * rain.sum(0), rtol=1e-5)


def test_grid_mismatch_names_both_files() -> None:
    rain = hourly(6)
    other = SourceGrid(lat=GRID.lat + 0.25, lon=GRID.lon)
    with pytest.raises(InputDataError, match="grid differs from a.grb") as info:
        to_interval_series([acc(rain, 0, 3, path="a.grb"), acc(rain, 0, 6, path="b.grb", grid=other)])
    assert info.value.path == Path("b.grb")


def test_longitude_convention_and_tiny_differences_do_not_count() -> None:
    rain = hourly(6)
    same = SourceGrid(lat=GRID.lat + 1e-8, lon=GRID.lon - 360.0)
    (series,) = to_interval_series([acc(rain, 0, 3), acc(rain, 0, 6, grid=same)])
    assert series.data.shape[0] == 2


def test_only_step_zero_fields_is_an_error() -> None:
    with pytest.raises(InputDataError, match="zero-length"):
        to_interval_series([acc(hourly(1), 0, 0)])


def test_no_fields_is_an_error() -> None:
    with pytest.raises(InputDataError, match="no precipitation fields"):
        to_interval_series([])


def test_reference_time_is_none_when_inputs_disagree() -> None:
    rain = hourly(6)
    first, second = acc(rain, 0, 3), acc(rain, 3, 6)
    second.reference_time = REF + timedelta(hours=3)
    (series,) = to_interval_series([first, second])
    assert series.reference_time is None


def test_clip_negatives_counts_and_keeps_nan() -> None:
    data = np.array([[-0.5, 1.0], [np.nan, -0.1]], dtype=np.float32)
    assert clip_negatives(data) == (2, -0.5)
    assert np.isnan(data[1, 0]) and data[0, 0] == 0 and data[1, 1] == 0


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 23), unique=True, max_size=6), running=st.booleans(),
       shuffle_seed=st.integers(0, 1000))
def test_any_partition_is_recovered(cuts: list[int], running: bool, shuffle_seed: int) -> None:
    """Whatever windows tile 0–24 h (as buckets or running totals), the intervals sum to the total."""
    rain = hourly(24, seed=shuffle_seed)
    edges = [0, *sorted(cuts), 24]
    accs = [acc(rain, 0 if running else a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.random.default_rng(shuffle_seed).shuffle(accs)  # type: ignore[arg-type]
    (series,) = to_interval_series(accs)
    assert hours_of(series.ends) == edges[1:]
    assert (series.data >= 0).all()
    np.testing.assert_allclose(series.data.sum(0), rain.sum(0), rtol=1e-4)
