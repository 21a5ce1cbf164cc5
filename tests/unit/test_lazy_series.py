"""Interval series computed one step at a time from field references (what ``downscale`` reads)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.accumulation import plan_lazy_series, to_interval_series
from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid

REF = datetime(2020, 3, 25, 18)
GRID = SourceGrid(lat=np.array([31.0, 30.75, 30.5]), lon=np.array([260.0, 260.25]), description="test")


class Store:
    """Fields by locator, a loader over them, and a record of what was loaded and is alive."""

    def __init__(self) -> None:
        self.fields: dict[int, tuple[np.ndarray, SourceGrid]] = {}
        self.loads: list[int] = []

    def add(self, data: np.ndarray, start: int, end: int, *, path: str = "f.grb", member: int | None = None,
            grid: SourceGrid = GRID, key: str = "g") -> FieldRef:
        locator = len(self.fields)
        self.fields[locator] = (data.astype(np.float32), grid)
        return FieldRef(Path(path), "test", (locator,), REF + timedelta(hours=start), REF + timedelta(hours=end),
                        member=member, grid=key, reference_time=REF)

    def load(self, ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
        self.loads.append(int(ref.locator[0]))
        data, grid = self.fields[int(ref.locator[0])]
        return data.copy(), grid


def hourly(hours: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(0.7, 2.0, (hours, 3, 2)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 23), unique=True, max_size=6), running=st.booleans(),
       seed=st.integers(0, 1000))
def test_lazy_steps_equal_the_series_formed_at_once(cuts: list[int], running: bool, seed: int) -> None:
    rain = hourly(24, seed=seed)
    edges = [0, *sorted(cuts), 24]
    store = Store()
    refs, accs = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        start = 0 if running else a
        field = rain[start:b].sum(0)
        refs.append(store.add(field, start, b))
        accs.append(Accumulation(field, GRID, REF + timedelta(hours=start), REF + timedelta(hours=b), Path("f.grb"),
                                 REF))
    order = np.random.default_rng(seed).permutation(len(refs))
    (lazy,) = plan_lazy_series([refs[i] for i in order], store.load)
    (eager,) = to_interval_series(accs)
    assert lazy.starts == eager.starts and lazy.ends == eager.ends and lazy.reference_time == REF
    for k in range(len(lazy)):
        np.testing.assert_array_equal(lazy.amount(k), eager.data[k])


def test_fields_are_read_when_needed_and_dropped_after_their_last_use() -> None:
    """A GFS run: 6-hour buckets differenced with the previous file's; at most two fields held."""
    rain = hourly(48)
    store = Store()
    refs = []
    for h in range(3, 49, 3):  # f003..f048: buckets 0-3, 0-6, 6-9, 6-12, ... and running totals from f009
        start = h - 3 if h % 6 == 3 else h - 6
        refs.append(store.add(rain[start:h].sum(0), start, h, path=f"f{h:03d}"))
        if h > 6:
            refs.append(store.add(rain[:h].sum(0), 0, h, path=f"f{h:03d}"))
    (series,) = plan_lazy_series(refs, store.load)
    assert store.loads == []  # planning reads nothing
    held = []
    for k in range(len(series)):
        np.testing.assert_allclose(series.amount(k), rain[3 * k:3 * k + 3].sum(0), atol=1e-4)
        held.append(series.fields_held)
    assert max(held) <= 1  # the bucket kept for the next step's difference, nothing else
    assert len(store.loads) == len(set(store.loads)) == 16  # each bucket read once, no running total read


def test_duplicates_are_compared_when_first_needed() -> None:
    rain = hourly(6)
    store = Store()
    refs = [store.add(rain.sum(0), 0, 6, path="a.grb"), store.add(rain.sum(0) * 2 + 1, 0, 6, path="b.grb")]
    (series,) = plan_lazy_series(refs, store.load)
    with pytest.raises(InputDataError, match="conflicting duplicate"):
        series.amount(0)
    refs = [store.add(rain.sum(0), 0, 6, path="a.grb"), store.add(rain.sum(0), 0, 6, path="c.grb")]
    (series,) = plan_lazy_series(refs, store.load)
    series.amount(0)
    assert any("dropped 1 duplicate" in note for note in series.notes)


def test_grids_of_one_member_must_agree() -> None:
    rain = hourly(6)
    store = Store()
    other = SourceGrid(lat=GRID.lat + 0.25, lon=GRID.lon)
    refs = [store.add(rain[:3].sum(0), 0, 3, path="a.grb"),
            store.add(rain.sum(0), 0, 6, path="b.grb", grid=other, key="other")]
    with pytest.raises(InputDataError, match="grid differs from a.grb"):
        plan_lazy_series(refs, store.load)
    same = SourceGrid(lat=GRID.lat + 1e-8, lon=GRID.lon - 360.0)  # other key, same grid
    refs = [store.add(rain[:3].sum(0), 0, 3, path="a.grb"), store.add(rain.sum(0), 0, 6, grid=same, key="x")]
    (series,) = plan_lazy_series(refs, store.load)
    assert len(series) == 2


def test_members_gaps_and_step_zero() -> None:
    rain = hourly(9)
    store = Store()
    refs = [store.add(rain[:3].sum(0) * (m + 1), 0, 3, member=m) for m in (1, 0)]
    assert [s.member for s in plan_lazy_series(refs, store.load)] == [0, 1]
    with pytest.raises(InputDataError, match="gap"):
        plan_lazy_series([store.add(rain[:3].sum(0), 0, 3), store.add(rain[6:9].sum(0), 6, 9, path="f009")],
                         store.load)
    with pytest.raises(InputDataError, match="zero-length"):
        plan_lazy_series([store.add(rain[0] * 0, 0, 0)], store.load)


def test_clipped_differences_are_noted() -> None:
    rain = hourly(6)
    store = Store()
    later, earlier = rain.sum(0), rain[:3].sum(0)
    earlier[0, 0] = later[0, 0] + 0.01
    (series,) = plan_lazy_series([store.add(earlier, 0, 3), store.add(later, 0, 6)], store.load)
    assert series.amount(1)[0, 0] == 0.0
    assert any("clipped 1 negative" in note for note in series.notes)
