"""Turn accumulations as read from files into consecutive interval amounts.

Inputs mix 6-hour buckets, running totals since the forecast start, step-0 zero fields and plain
interval amounts (GFS, ECMWF, WRF, NAM, MRMS). For each member the distinct end times
``t1 < t2 < …`` are sorted and each interval is formed as follows:

* ``[?, t1]``: the shortest accumulation ending at ``t1`` (GFS f012 alone: 6–12 rather than 0–12);
* ``[t(k-1), tk]``: an accumulation over exactly that window, else the difference of two
  accumulations that share a start ``s`` and end at ``tk`` and ``t(k-1)`` (the latest such ``s``).

Zero-length (step-0) fields only mark a start and are dropped. Negative cells from packing noise
are clipped to 0 and counted; a field below −1 mm in more than 1 % of its cells is inconsistent
input (:data:`~harpnet_cli.fields.NEGATIVE_MM`, :data:`~harpnet_cli.fields.NEGATIVE_FRACTION`). Pure
numpy: no xarray, no file access.

:func:`to_interval_series` forms every interval at once from fields in memory.
:func:`plan_lazy_series` applies the same rules to field *references* (a metadata scan) and
computes each interval only when asked (:meth:`LazySeries.amount`), through a loader such as
:func:`harpnet_cli.io.readers.load_field`: ``downscale`` holds only the fields the current and the
next steps need (a GFS bucket is differenced with the previous file's), so its memory does not
grow with the number of steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import (
    NEGATIVE_FRACTION,
    NEGATIVE_MM,
    Accumulation,
    FieldRef,
    IntervalSeries,
    SourceGrid,
    clip_negatives,
)

#: Grid coordinates of one member's inputs must agree this closely (degrees).
GRID_TOLERANCE_DEG = 1e-6
#: Two fields with the same window are the same field when they agree this closely (mm, relative).
DUPLICATE_ATOL_MM = 0.1
DUPLICATE_RTOL = 1e-3

Window = tuple[datetime, datetime]
#: How an interval is formed: the field of the first window, minus the field of the second (if any).
Recipe = tuple[Window, Window | None]
#: Reads one field: ``(data (ny, nx) float32 mm, grid)``, e.g. :func:`harpnet_cli.io.readers.load_field`.
Loader = Callable[[FieldRef], tuple[np.ndarray, SourceGrid]]


@dataclass
class _Interval:
    """One formed interval: its data, window, the fields it used and what was clipped."""

    data: np.ndarray
    start: datetime
    end: datetime
    used: list[Accumulation]
    clipped: int
    lowest: float


def to_interval_series(accs: list[Accumulation]) -> list[IntervalSeries]:
    """Form consecutive interval amounts for each member.

    Parameters
    ----------
    accs : list of Accumulation
        Fields as the readers return them, any order, any mix of buckets, running totals and
        step-0 fields, possibly from several files and members. Each ``data`` is ``(ny, nx)``.

    Returns
    -------
    list of IntervalSeries
        One per member, sorted by member with None (deterministic) first. ``data`` is
        ``(T, ny, nx)`` float32 mm, ``>= 0`` or NaN; intervals may have any length.

    Raises
    ------
    InputDataError
        Mismatched grids, conflicting duplicates, a gap between end times, strongly negative
        differences, or no accumulation over a non-zero window.
    """
    if not accs:
        raise InputDataError(None, "no precipitation fields to combine")
    groups: dict[int | None, list[Accumulation]] = {}
    for acc in accs:
        groups.setdefault(acc.member, []).append(acc)
    members = sorted(groups, key=lambda m: (m is not None, m or 0))
    return [_member_series(groups[m]) for m in members]


def _member_series(accs: list[Accumulation]) -> IntervalSeries:
    """The interval series of one member's fields."""
    _check_same_grid(accs)
    fields, notes = _unique_fields(accs)
    windows = {w: a for w, a in fields.items() if w[1] > w[0]}
    if not windows:
        raise InputDataError(accs[0].path, "only zero-length (step-0) fields; "
                                           "need an accumulation over a non-zero window")
    intervals = [_form(windows, recipe) for recipe in plan_intervals(windows)]
    used = [a for iv in intervals for a in iv.used]
    references = {a.reference_time for a in used}
    return IntervalSeries(
        data=np.stack([iv.data for iv in intervals]).astype(np.float32, copy=False),
        grid=accs[0].grid,
        starts=[iv.start for iv in intervals],
        ends=[iv.end for iv in intervals],
        paths=list(dict.fromkeys(a.path for a in accs)),
        reference_time=references.pop() if len(references) == 1 else None,
        member=accs[0].member,
        notes=notes + _clip_notes(intervals) + _reader_notes(used),
    )


# -- grids ------------------------------------------------------------------------------------
def _check_same_grid(accs: list[Accumulation]) -> None:
    """Raise unless every field sits on the first field's grid."""
    first = accs[0]
    for acc in accs[1:]:
        problem = _grid_difference(first.grid, acc.grid)
        if problem:
            raise InputDataError(acc.path, f"grid differs from {first.path} ({problem}); "
                                           "all inputs of one member must share one grid")


def _grid_difference(a: SourceGrid, b: SourceGrid) -> str:
    """How two grids differ, or ``""`` when they agree within :data:`GRID_TOLERANCE_DEG`."""
    if a is b:
        return ""
    if a.lat.shape != b.lat.shape or a.lon.shape != b.lon.shape:
        return f"shape {a.shape[0]}x{a.shape[1]} vs {b.shape[0]}x{b.shape[1]}"
    dlat = np.abs(a.lat - b.lat)
    dlon = np.abs((a.lon - b.lon + 180.0) % 360.0 - 180.0)
    worst = float(np.nanmax(np.concatenate([dlat.ravel(), dlon.ravel()]), initial=0.0))
    return f"coordinates differ by up to {worst:.3g}°" if worst > GRID_TOLERANCE_DEG else ""


# -- duplicates ---------------------------------------------------------------------------------
def _unique_fields(accs: list[Accumulation]) -> tuple[dict[Window, Accumulation], list[str]]:
    """One field per window; identical duplicates are dropped (noted), conflicting ones refused."""
    fields: dict[Window, Accumulation] = {}
    dropped: list[Accumulation] = []
    for acc in accs:
        window = (acc.start, acc.end)
        kept = fields.get(window)
        if kept is None:
            fields[window] = acc
            continue
        _check_duplicate(kept, acc)
        dropped.append(acc)
    notes = []
    if dropped:
        example = dropped[0]
        notes.append(f"dropped {len(dropped)} duplicate field(s) matching another with the same window "
                     f"(first: {_window_text(example.start, example.end, example.reference_time)} "
                     f"in {example.path.name})")
    return fields, notes


def _check_duplicate(kept: Accumulation, other: Accumulation) -> None:
    """Raise when two fields over the same window disagree beyond tolerance."""
    same = np.allclose(kept.data, other.data, rtol=DUPLICATE_RTOL, atol=DUPLICATE_ATOL_MM, equal_nan=True)
    if same:
        return
    with np.errstate(invalid="ignore"):
        diff = float(np.nanmax(np.abs(kept.data.astype(np.float64) - other.data), initial=0.0))
    window = _window_text(kept.start, kept.end, kept.reference_time)
    raise InputDataError(other.path, f"conflicting duplicate: {window} is also in {kept.path} with "
                                     f"different values (up to {diff:.3g} mm apart, or different NaNs)")


# -- intervals ----------------------------------------------------------------------------------
def plan_intervals(windows: Mapping[Window, Accumulation | FieldRef]) -> list[Recipe]:
    """How each consecutive interval is formed from the fields' windows (no data needed).

    Parameters
    ----------
    windows : mapping
        One field per non-zero window ``(start, end)`` (only its ``path`` and reference time are
        used, for the error message).

    Returns
    -------
    list of (window, window or None)
        One recipe per distinct end time, in time order: the window of the field used, and the
        window of the field subtracted from it (None for a field used as it is).

    Raises
    ------
    InputDataError
        When an interval cannot be formed (a gap), naming the file of its end time.
    """
    ends = sorted({end for _, end in windows})
    first = max(s for s, e in windows if e == ends[0])  # the shortest accumulation ending there
    recipes: list[Recipe] = [((first, ends[0]), None)]
    for previous, end in zip(ends, ends[1:], strict=False):
        if (previous, end) in windows:
            recipes.append(((previous, end), None))
            continue
        starts = [s for s, e in windows if e == end and s < previous and (s, previous) in windows]
        if not starts:
            raise _gap_error(windows, previous, end)
        start = max(starts)
        recipes.append(((start, end), (start, previous)))
    return recipes


def _form(windows: Mapping[Window, Accumulation], recipe: Recipe) -> _Interval:
    """The interval of a recipe from fields in memory."""
    plus, minus = recipe
    return _direct(windows[plus]) if minus is None else _difference(windows[plus], windows[minus])


def _direct(acc: Accumulation) -> _Interval:
    """A field used as it is (negatives clipped)."""
    data, clipped, lowest = _clip(acc.data.astype(np.float32), acc, None)
    return _Interval(data, acc.start, acc.end, [acc], clipped, lowest)


def _difference(later: Accumulation, earlier: Accumulation) -> _Interval:
    """``later - earlier`` for two fields with the same start (NaN propagates)."""
    diff = later.data.astype(np.float64) - earlier.data.astype(np.float64)
    data, clipped, lowest = _clip(diff.astype(np.float32), later, earlier)
    return _Interval(data, earlier.end, later.end, [later, earlier], clipped, lowest)


def _clip(data: np.ndarray, acc: Accumulation, minus: Accumulation | None) -> tuple[np.ndarray, int, float]:
    """Clip negative cells to 0, refusing a field that is strongly negative.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` float32 amounts; modified in place.
    acc, minus : Accumulation
        The field (and the one subtracted from it), for the error message.

    Returns
    -------
    data, clipped, lowest
        The clipped field, the number of clipped cells and the lowest value before clipping.
    """
    with np.errstate(invalid="ignore"):
        strong = int((data < -NEGATIVE_MM).sum())
    valid = int(np.isfinite(data).sum())
    what = _window_text(acc.start, acc.end, acc.reference_time)
    if minus is not None:
        what += f" minus {_window_text(minus.start, minus.end, minus.reference_time)} from {minus.path.name}"
    if valid and strong > NEGATIVE_FRACTION * valid:
        why = ""
        if minus is not None and minus.start == acc.start:  # two running totals from one start
            why = ": the running total decreases, a reset bucket or totals of different runs"
        raise InputDataError(acc.path, f"inconsistent accumulations: {what} is below -{NEGATIVE_MM:g} mm in "
                                       f"{100 * strong / valid:.1f}% of cells (down to "
                                       f"{float(np.nanmin(data)):.1f} mm){why}")
    clipped, lowest = clip_negatives(data)
    return data, clipped, lowest


def _gap_error(windows: Mapping[Window, Accumulation | FieldRef], previous: datetime,
               end: datetime) -> InputDataError:
    """The error for an interval no field can form, naming the file of its end time."""
    at_end = [a for (s, e), a in windows.items() if e == end]
    reference = at_end[0].reference_time
    ordered = sorted(windows, key=lambda w: (w[1], w[0]))
    have = [_window_text(s, e, reference) for s, e in ordered]
    more = f", … {len(have) - 12} more" if len(have) > 12 else ""
    return InputDataError(at_end[0].path, f"gap: no accumulation lets {_time_text(previous)}–"
                                          f"{_time_text(end)} be formed; have {', '.join(have[:12])}{more}")


# -- notes and text -----------------------------------------------------------------------------
def _clip_notes(intervals: list[_Interval]) -> list[str]:
    """One note summing up the clipped negative cells, if any."""
    clipped = [iv for iv in intervals if iv.clipped]
    if not clipped:
        return []
    total = sum(iv.clipped for iv in clipped)
    lowest = min(iv.lowest for iv in clipped)
    return [f"clipped {total} negative cell(s) to 0 in {len(clipped)} interval(s) (down to {lowest:.3g} mm)"]


def _reader_notes(used: list[Accumulation]) -> list[str]:
    """Notes the readers left in the labels of the fields that were used (clipping, duplicates)."""
    notes = [f"{a.path.name}: {a.label}" for a in used if "clipped" in a.label]
    return list(dict.fromkeys(notes))


def _time_text(t: datetime) -> str:
    """``"2020-03-25 21Z"`` (minutes shown only when non-zero)."""
    return f"{t:%Y-%m-%d %H:%M}Z" if t.minute or t.second else f"{t:%Y-%m-%d %H}Z"


def _window_text(start: datetime, end: datetime, reference: datetime | None) -> str:
    """``"0–3h"`` relative to the reference time, else absolute times."""
    if reference is None:
        return f"{_time_text(start)}–{_time_text(end)}"
    hours = timedelta(hours=1)
    return f"{(start - reference) / hours:g}–{(end - reference) / hours:g}h"



# -- one interval at a time ---------------------------------------------------------------------
@dataclass
class LazySeries:
    """One member's consecutive interval amounts, computed one at a time from field references.

    The intervals and their windows are those :func:`to_interval_series` forms from the same
    fields (:func:`plan_intervals`); a field is loaded when an interval first needs it and dropped
    after the last interval that needs it, so a long series holds one or two fields at a time.
    Build with :func:`plan_lazy_series`.

    Attributes
    ----------
    starts, ends : list of datetime
        Window of each step.
    member : int or None
        Ensemble member.
    reference_time : datetime or None
        Forecast reference time shared by the fields used, if any.
    paths : list of Path
        Every file with a field of this member.
    """

    starts: list[datetime]
    ends: list[datetime]
    member: int | None
    reference_time: datetime | None
    paths: list[Path]
    recipes: list[Recipe]
    """How each step is formed (:func:`plan_intervals`)."""
    refs: dict[Window, list[FieldRef]]
    """The fields of each window, duplicates after the first."""
    loader: Loader
    """Reads one field."""
    base_notes: list[str] = field(default_factory=list)
    """Notes known before any step is read (e.g. that the input is synthetic)."""
    _cache: dict[Window, Accumulation] = field(default_factory=dict)
    _grid: SourceGrid | None = None
    _clipped: list[tuple[int, float]] = field(default_factory=list)
    _duplicates: list[FieldRef] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Things the user should hear about so far (dropped duplicates, clipped cells of the steps computed)."""
        notes = list(self.base_notes)
        if self._duplicates:
            first = self._duplicates[0]
            notes.append(f"dropped {len(self._duplicates)} duplicate field(s) matching another with the same window "
                         f"(first: {_window_text(first.start, first.end, first.reference_time)} in "
                         f"{first.path.name})")
        if self._clipped:
            total = sum(c for c, _ in self._clipped)
            lowest = min(low for _, low in self._clipped)
            notes.append(f"clipped {total} negative cell(s) to 0 in {len(self._clipped)} interval(s) "
                         f"(down to {lowest:.3g} mm)")
        return notes

    @property
    def grid(self) -> SourceGrid:
        """The member's grid (read with the first field)."""
        if self._grid is None:
            self._field(self.recipes[0][0])
        assert self._grid is not None
        return self._grid

    def __len__(self) -> int:
        return len(self.recipes)

    @property
    def fields_held(self) -> int:
        """Fields read and kept for a later step (memory does not grow with the steps)."""
        return len(self._cache)

    def amount(self, k: int) -> np.ndarray:
        """The amount of step ``k``.

        Parameters
        ----------
        k : int
            Step index.

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` float32 mm over ``[starts[k], ends[k]]``, ``>= 0`` or NaN.

        Raises
        ------
        InputDataError
            Conflicting duplicates, a grid that differs from the member's, or a strongly negative
            difference.
        """
        plus, minus = self.recipes[k]
        interval = _direct(self._field(plus)) if minus is None else _difference(self._field(plus),
                                                                                 self._field(minus))
        if interval.clipped:
            self._clipped.append((interval.clipped, interval.lowest))
        for window in [w for w in self._cache if self._last_use(w) <= k]:
            del self._cache[window]
        return interval.data

    def _last_use(self, window: Window) -> int:
        """Index of the last step whose recipe uses ``window`` (−1 for none)."""
        return max((k for k, recipe in enumerate(self.recipes) if window in recipe), default=-1)

    def _field(self, window: Window) -> Accumulation:
        """The field of ``window``, loaded (and its duplicates compared) on first use."""
        cached = self._cache.get(window)
        if cached is not None:
            return cached
        first, *others = self.refs[window]
        acc = self._load(first)
        for ref in others:
            other = self._load(ref)
            _check_duplicate(acc, other)
            if ref.path != first.path or not np.array_equal(acc.data, other.data, equal_nan=True):
                self._duplicates.append(ref)  # a reader drops a file's identical copies silently
        self._cache[window] = acc
        return acc

    def _load(self, ref: FieldRef) -> Accumulation:
        """Read one field; its grid must be the member's."""
        data, grid = self.loader(ref)
        if self._grid is None:
            self._grid = grid
        else:
            problem = _grid_difference(self._grid, grid)
            if problem:
                raise InputDataError(ref.path, f"grid differs from {self.paths[0]} ({problem}); "
                                               "all inputs of one member must share one grid")
        return Accumulation(data=data, grid=grid, start=ref.start, end=ref.end, path=ref.path,
                            reference_time=ref.reference_time, member=ref.member, label=ref.describe())


def plan_lazy_series(refs: Sequence[FieldRef], loader: Loader) -> list[LazySeries]:
    """Plan consecutive intervals for each member from field references (see :class:`LazySeries`).

    Parameters
    ----------
    refs : sequence of FieldRef
        Fields as the readers' scans list them, any order, any mix of buckets, running totals and
        step-0 fields, duplicates included, from several files and members.
    loader : callable
        Reads one field, e.g. :func:`harpnet_cli.io.readers.load_field`.

    Returns
    -------
    list of LazySeries
        One per member, sorted with None (deterministic) first.

    Raises
    ------
    InputDataError
        No fields, only step-0 fields, or a gap between end times.
    """
    if not refs:
        raise InputDataError(None, "no precipitation fields to combine")
    groups: dict[int | None, list[FieldRef]] = {}
    for ref in refs:
        groups.setdefault(ref.member, []).append(ref)
    members = sorted(groups, key=lambda m: (m is not None, m or 0))
    return [_lazy_member(groups[m], loader) for m in members]


def _lazy_member(refs: list[FieldRef], loader: Loader) -> LazySeries:
    """The planned series of one member's fields."""
    by_window: dict[Window, list[FieldRef]] = {}
    for ref in refs:
        by_window.setdefault((ref.start, ref.end), []).append(ref)
    windows = {w: rs[0] for w, rs in by_window.items() if w[1] > w[0]}
    if not windows:
        raise InputDataError(refs[0].path, "only zero-length (step-0) fields; "
                                           "need an accumulation over a non-zero window")
    recipes = plan_intervals(windows)
    used = [by_window[w][0] for recipe in recipes for w in recipe if w is not None]
    references = {r.reference_time for r in used}
    series = LazySeries(
        starts=[plus[0] if minus is None else minus[1] for plus, minus in recipes],
        ends=[plus[1] for plus, _ in recipes],
        member=refs[0].member,
        reference_time=references.pop() if len(references) == 1 else None,
        paths=list(dict.fromkeys(r.path for r in refs)),
        recipes=recipes,
        refs={w: by_window[w] for w in windows},
        loader=loader,
    )
    keys = {r.grid: r for r in refs}
    if len(keys) > 1:  # grids of different keys may still agree (rounding, longitude convention)
        for ref in keys.values():
            series._load(ref)
    return series
