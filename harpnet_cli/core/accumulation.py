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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import NEGATIVE_FRACTION, NEGATIVE_MM, Accumulation, IntervalSeries, SourceGrid, clip_negatives

#: Grid coordinates of one member's inputs must agree this closely (degrees).
GRID_TOLERANCE_DEG = 1e-6
#: Two fields with the same window are the same field when they agree this closely (mm, relative).
DUPLICATE_ATOL_MM = 0.1
DUPLICATE_RTOL = 1e-3

Window = tuple[datetime, datetime]


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
    ends = sorted({end for _, end in windows})
    intervals = [_first_interval(windows, ends[0])]
    intervals += [_next_interval(windows, ends[k - 1], ends[k]) for k in range(1, len(ends))]
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
def _first_interval(windows: dict[Window, Accumulation], end: datetime) -> _Interval:
    """The shortest accumulation ending at the first end time."""
    start = max(s for s, e in windows if e == end)
    return _direct(windows[(start, end)])


def _next_interval(windows: dict[Window, Accumulation], previous: datetime, end: datetime) -> _Interval:
    """``[previous, end]`` as a direct accumulation or a difference of two with one start."""
    direct = windows.get((previous, end))
    if direct is not None:
        return _direct(direct)
    starts = [s for s, e in windows if e == end and s < previous and (s, previous) in windows]
    if starts:
        start = max(starts)
        return _difference(windows[(start, end)], windows[(start, previous)])
    raise _gap_error(windows, previous, end)


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
        raise InputDataError(acc.path, f"inconsistent accumulations: {what} is below -{NEGATIVE_MM:g} mm in "
                                       f"{100 * strong / valid:.1f}% of cells (down to "
                                       f"{float(np.nanmin(data)):.1f} mm)")
    clipped, lowest = clip_negatives(data)
    return data, clipped, lowest


def _gap_error(windows: dict[Window, Accumulation], previous: datetime, end: datetime) -> InputDataError:
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

