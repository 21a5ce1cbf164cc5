"""Plan fixed windows (3-hour by default, aligned to 00Z) from references to fields in files.

``prepare`` must stream over decades of hourly fields, so it never holds the fields themselves:
a metadata scan (:func:`harpnet_cli.io.readers.scan_file`) gives one small
:class:`~harpnet_cli.fields.FieldRef` per field and :func:`plan_windows` turns them into
independent :class:`WindowUnit` s. A unit is a recipe, a list of ``(ref, sign)`` terms whose sum
is the window's amount, so a worker process can compute it from the unit alone
(:func:`compute_window`, given a loader such as :func:`harpnet_cli.io.readers.load_field`), and a
resumed run can skip units whose key is already stored.

How a window ``[a, b]`` is formed
---------------------------------
Every field is an edge ``start → end`` between time points (an interval amount over its window,
or a running total from its origin to its time). A window is a path from ``a`` to ``b``: an
edge followed forwards adds the field, one followed backwards subtracts it. The path with the
fewest terms is used (ties: fewest subtractions), so

* an amount over exactly ``[a, b]`` (3-hourly input) is used as it is;
* hourly amounts ending ``a+1h, a+2h, b`` are summed;
* running totals (WRF ``RAINNC``, ECMWF ``tp``) give ``total(b) − total(a)``;
* a 6-hour bucket minus the 3-hour bucket with the same start gives the last 3 hours (GFS).

Only edges with an end point in ``[a, b]`` are searched, so planning stays linear in the number
of fields. Members are planned apart; each member's fields must share one grid. Pure: no file
access, no xarray (:func:`compute_window` reads fields only through the loader it is given).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import NEGATIVE_FRACTION, NEGATIVE_MM, FieldRef, SourceGrid, clip_negatives, span_text

#: Default window length.
PERIOD = timedelta(hours=3)
#: Reasons a window is dropped (keys of :attr:`WindowPlan.dropped`).
INCOMPLETE = "incomplete"
LONGER_THAN_WINDOW = "longer_than_window"
MISALIGNED = "misaligned"

Term = tuple[FieldRef, int]
#: Reads one field: ``(data (ny, nx) float32 mm, grid)``, e.g. :func:`harpnet_cli.io.readers.load_field`.
Loader = Callable[[FieldRef], tuple[np.ndarray, SourceGrid]]


@dataclass(frozen=True)
class WindowUnit:
    """One independent unit of work: a window's amount as a signed sum of fields.

    Attributes
    ----------
    key : str
        ``"2016-09-20T03"`` (the window's end, UTC) plus ``"_m<member>"`` for ensemble members;
        unique within a plan, stable across runs (a resume key).
    start, end : datetime
        The window (naive UTC).
    member : int or None
        Ensemble member.
    terms : tuple of (FieldRef, int)
        Fields and signs (+1 or −1) whose sum is the amount over ``[start, end]``.
    """

    key: str
    start: datetime
    end: datetime
    member: int | None
    terms: tuple[Term, ...]

    @property
    def grid(self) -> str:
        """Grid key shared by all terms."""
        return self.terms[0][0].grid

    @property
    def differenced(self) -> bool:
        """True when a term is subtracted (the sum may carry negative noise)."""
        return any(sign < 0 for _, sign in self.terms)

    def describe(self) -> str:
        """``"2016-09-20 00Z–03Z = a.grib2 + b.grib2 + c.grib2"`` for messages."""
        parts = [("− " if sign < 0 else "+ ") + ref.describe() for ref, sign in self.terms]
        return f"{span_text(self.start, self.end)} = {' '.join(parts).removeprefix('+ ')}"


@dataclass
class WindowPlan:
    """Every window that can be formed, and a count of those that cannot.

    Attributes
    ----------
    units : list of WindowUnit
        Sorted by window end, then member (None first).
    dropped : dict of str to int
        Windows left out, by reason: ``"incomplete"`` (fields missing), ``"longer_than_window"``
        (only accumulations longer than the window cover it, e.g. 6-hour Stage IV),
        ``"misaligned"`` (fields cross the window's boundaries).
    period : timedelta
        Window length.
    notes : list of str
        Things the user should hear about (duplicate fields ignored).
    """

    units: list[WindowUnit]
    dropped: dict[str, int]
    period: timedelta = PERIOD
    notes: list[str] = field(default_factory=list)

    def pending(self, done: Container[str]) -> list[WindowUnit]:
        """The units whose key is not in ``done`` (the keys a killed run already stored)."""
        return [unit for unit in self.units if unit.key not in done]


def plan_windows(refs: Sequence[FieldRef], period: timedelta = PERIOD, step: timedelta | None = None) -> WindowPlan:
    """Plan every window of ``period`` (ending on a grid of ``step`` aligned to 00Z) that the fields can form.

    Parameters
    ----------
    refs : sequence of FieldRef
        Fields from any number of files, any order; several members are planned apart.
    period : timedelta
        Window length; must divide 24 hours. Windows end at ``step``, ``2 × step``, … after
        00Z (3 hours: 03, 06, …, 24 UTC; the window 00–03 sums the hours ending 01, 02 and 03).
        When every field ends at the same minute past the hour (DWD's RADOLAN hours end at
        HH:50), the boundaries are shifted by that minute (02:50, 05:50, …).
    step : timedelta, optional
        Spacing of window ends; must divide 24 hours. Default ``period`` (windows side by side);
        a shorter step gives overlapping windows (24-hour windows every 3 hours).

    Returns
    -------
    WindowPlan
        The units, sorted by end then member, and the dropped windows by reason.

    Raises
    ------
    InputDataError
        No fields; two grids for one member (naming both files); or no window at all can be
        formed (naming a file, e.g. for 6-hour accumulations that cannot be split).
    ValueError
        ``period`` or ``step`` does not divide 24 hours.
    """
    step = period if step is None else step
    _check_period(period)
    _check_period(step)
    if not refs:
        raise InputDataError(None, "no precipitation fields to plan windows from")
    phase = _phase(refs)
    groups: dict[int | None, list[FieldRef]] = {}
    for ref in refs:
        groups.setdefault(ref.member, []).append(ref)
    units: list[WindowUnit] = []
    dropped: dict[str, int] = {}
    notes: list[str] = []
    for member in sorted(groups, key=lambda m: (m is not None, m or 0)):
        _check_single_grid(groups[member])
        edges, duplicates = _unique_edges(groups[member])
        notes += _duplicate_notes(duplicates, member)
        units += _member_units(edges, member, period, step, phase, dropped)
    if not units:
        raise _nothing_formed(refs, dropped, period)
    units.sort(key=lambda u: (u.end, u.member is not None, u.member or 0))
    return WindowPlan(units=units, dropped=dropped, period=period, notes=notes)


def _phase(refs: Sequence[FieldRef]) -> timedelta:
    """The common offset of every field's end past the whole hour (0 unless all share one, e.g. :50)."""
    offsets = {timedelta(minutes=r.end.minute, seconds=r.end.second, microseconds=r.end.microsecond) for r in refs}
    return offsets.pop() if len(offsets) == 1 else timedelta(0)


def _check_period(period: timedelta) -> None:
    """Refuse a window length that does not tile the day."""
    day = timedelta(days=1)
    if period <= timedelta(0) or day % period:
        raise ValueError(f"window period {period} does not divide 24 hours")


# -- grids and duplicates ------------------------------------------------------------------------
def _check_single_grid(refs: list[FieldRef]) -> None:
    """Raise unless all fields of one member share a grid key, naming two files that differ."""
    first = refs[0]
    for ref in refs[1:]:
        if ref.grid != first.grid:
            raise InputDataError(ref.path, f"grid {ref.grid!r} differs from {first.path} (grid {first.grid!r}); "
                                           "all inputs of one member must share one grid")


def _unique_edges(refs: list[FieldRef]) -> tuple[list[FieldRef], list[FieldRef]]:
    """Non-zero-length fields, one per ``(start, end, kind)``, sorted; and the duplicates left out.

    Values are not compared (no data is read): the first field in input order is kept.
    """
    kept: dict[tuple[datetime, datetime, str], FieldRef] = {}
    duplicates = []
    for ref in refs:
        if ref.end <= ref.start:
            continue  # a step-0 field or a running total at its origin: a time point, not an amount
        slot = (ref.start, ref.end, ref.kind)
        if slot in kept:
            duplicates.append(ref)
        else:
            kept[slot] = ref
    return [kept[slot] for slot in sorted(kept)], duplicates


def _duplicate_notes(duplicates: list[FieldRef], member: int | None) -> list[str]:
    """One note for the duplicates ignored, if any."""
    if not duplicates:
        return []
    who = "" if member is None else f" of member {member}"
    return [f"ignored {len(duplicates)} duplicate field(s){who} with the window of another "
            f"(first: {duplicates[0].describe()})"]


# -- planning one member -------------------------------------------------------------------------
class _Graph:
    """Fields as edges between time points, indexed for local searches."""

    def __init__(self, edges: list[FieldRef]) -> None:
        self.touching: dict[datetime, list[FieldRef]] = {}
        for ref in edges:
            self.touching.setdefault(ref.start, []).append(ref)
            self.touching.setdefault(ref.end, []).append(ref)
        self.times = sorted(self.touching)

    def local_edges(self, a: datetime, b: datetime) -> list[FieldRef]:
        """Edges with an end point in ``[a, b]``, each once, in a stable order."""
        lo, hi = bisect_left(self.times, a), bisect_right(self.times, b)
        seen: dict[FieldRef, None] = {}
        for t in self.times[lo:hi]:
            seen.update(dict.fromkeys(self.touching[t]))
        return list(seen)


def _member_units(edges: list[FieldRef], member: int | None, period: timedelta, step: timedelta,
                  phase: timedelta, dropped: dict[str, int]) -> list[WindowUnit]:
    """Units of one member's fields; unformable windows are counted into ``dropped``."""
    graph = _Graph(edges)
    units = []
    for a, b in _candidate_windows(edges, period, step, phase):
        local = graph.local_edges(a, b)
        terms = _shortest_recipe(local, a, b)
        if terms is None:
            reason = _why_not(local, a, b, period)
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        terms = tuple(sorted(terms, key=lambda term: -term[1]))  # additions first
        units.append(WindowUnit(key=window_key(b, member), start=a, end=b, member=member, terms=terms))
    return units


def window_key(end: datetime, member: int | None = None) -> str:
    """``"2016-09-20T03"`` (the window's end) plus ``"_m<member>"`` for an ensemble member."""
    return f"{end:%Y-%m-%dT%H}" + ("" if end.minute == 0 else f"{end:%M}") + (
        "" if member is None else f"_m{member}")


def _window_end(t: datetime, step: timedelta, phase: timedelta = timedelta(0)) -> datetime:
    """The first window boundary at or after ``t`` (boundaries: 00Z + phase + k × step)."""
    origin = t.replace(hour=0, minute=0, second=0, microsecond=0) + phase
    if origin > t:
        origin -= timedelta(days=1)
    steps = -(-(t - origin) // step)  # ceiling division of timedeltas
    return origin + steps * step


def _candidate_windows(edges: Iterable[FieldRef], period: timedelta, step: timedelta,
                       phase: timedelta = timedelta(0)) -> list[tuple[datetime, datetime]]:
    """Windows the fields touch: those overlapping an interval, and those holding a running total's time."""
    ends: set[datetime] = set()
    for ref in edges:
        if ref.kind == "running":
            ends.add(_window_end(ref.end, step, phase))
            continue
        end = _window_end(ref.start + timedelta(microseconds=1), step, phase)
        while end - period < ref.end:
            ends.add(end)
            end += step
    return [(end - period, end) for end in sorted(ends)]


def _shortest_recipe(local: list[FieldRef], a: datetime, b: datetime) -> tuple[Term, ...] | None:
    """Fewest signed terms whose sum is the amount over ``[a, b]`` (ties: fewest subtractions)."""
    adjacency: dict[datetime, list[tuple[datetime, int, FieldRef]]] = {}
    for ref in local:
        adjacency.setdefault(ref.start, []).append((ref.end, +1, ref))
        adjacency.setdefault(ref.end, []).append((ref.start, -1, ref))
    queue: list[tuple[int, int, int, datetime, tuple[Term, ...]]] = [(0, 0, 0, a, ())]
    done: set[datetime] = set()
    counter = 0
    while queue:
        cost, backwards, _, node, terms = heapq.heappop(queue)
        if node == b:
            return terms
        if node in done:
            continue
        done.add(node)
        for other, sign, ref in adjacency.get(node, []):
            if other not in done:
                counter += 1
                heapq.heappush(queue, (cost + 1, backwards + (sign < 0), counter, other, terms + ((ref, sign),)))
    return None


def _why_not(local: list[FieldRef], a: datetime, b: datetime, period: timedelta) -> str:
    """Why ``[a, b]`` cannot be formed: a field crosses its boundaries, or fields are missing."""
    crossing = [r for r in local if r.kind == "interval" and r.start < b and r.end > a
                and (r.start < a or r.end > b)]
    if any(r.period > period for r in crossing):
        return LONGER_THAN_WINDOW
    return MISALIGNED if crossing else INCOMPLETE


def _nothing_formed(refs: Sequence[FieldRef], dropped: dict[str, int], period: timedelta) -> InputDataError:
    """The error when no window at all can be formed, naming a file."""
    hours = f"{period / timedelta(hours=1):g}"
    if dropped.get(LONGER_THAN_WINDOW):
        long = next(r for r in refs if r.kind == "interval" and r.period > period)
        return InputDataError(long.path, f"its {long.period / timedelta(hours=1):g}-hour accumulations "
                                         f"({span_text(long.start, long.end)}) cannot be split into {hours}-hour "
                                         f"windows aligned to 00Z; give hourly or {hours}-hourly amounts")
    ordered = sorted(refs, key=lambda r: (r.end, r.start))
    span = span_text(min(r.start for r in refs), ordered[-1].end)
    summary = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) or "only zero-length fields"
    return InputDataError(ordered[0].path, f"no complete {hours}-hour window aligned to 00Z can be formed from "
                                           f"{len(refs)} field(s) over {span} ({summary})")


# -- computing a window --------------------------------------------------------------------------
def compute_window(unit: WindowUnit, loader: Loader) -> tuple[np.ndarray, SourceGrid]:
    """Compute one window's amount from its recipe, one field at a time.

    Parameters
    ----------
    unit : WindowUnit
        From :func:`plan_windows`.
    loader : callable
        Reads one :class:`~harpnet_cli.fields.FieldRef` as ``(data, grid)``
        (:func:`harpnet_cli.io.readers.load_field`; tests pass fakes).

    Returns
    -------
    data : numpy.ndarray
        ``(ny, nx)`` float32 mm over ``[unit.start, unit.end]``, ``>= 0``; NaN where any term is NaN.
    grid : SourceGrid
        The fields' grid (the first term's).

    Raises
    ------
    InputDataError
        Fields of different shapes, or a strongly negative difference (see :func:`finish_window`).
    """
    total: np.ndarray | None = None
    grid: SourceGrid | None = None
    for ref, sign in unit.terms:
        data, field_grid = loader(ref)
        if total is None:
            total, grid = np.array(data, dtype=np.float32), field_grid
            if sign < 0:
                np.negative(total, out=total)
            continue
        if data.shape != total.shape:
            raise InputDataError(ref.path, f"field {ref.describe()} is {data.shape[0]}x{data.shape[1]}, the "
                                           f"other terms of window {unit.key} are {total.shape[0]}x{total.shape[1]}")
        (np.add if sign > 0 else np.subtract)(total, data, out=total)
    assert total is not None and grid is not None, "a unit has at least one term"
    return finish_window(total, unit), grid


def finish_window(total: np.ndarray, unit: WindowUnit) -> np.ndarray:
    """Clip the negative noise of a summed window in place, refusing a strongly negative one.

    Parameters
    ----------
    total : numpy.ndarray
        ``(ny, nx)`` float32 signed sum of the unit's terms in mm; NaN where any term is missing.
    unit : WindowUnit
        The unit, for the message.

    Returns
    -------
    numpy.ndarray
        ``total``, ``>= 0`` or NaN.

    Raises
    ------
    InputDataError
        More than :data:`~harpnet_cli.fields.NEGATIVE_FRACTION` of the valid cells are
        below ``-NEGATIVE_MM`` (e.g. running totals of different runs, or a reset bucket).
    """
    with np.errstate(invalid="ignore"):
        strong = int((total < -NEGATIVE_MM).sum())
    valid = int(np.isfinite(total).sum())
    if valid and strong > NEGATIVE_FRACTION * valid:
        raise InputDataError(unit.terms[0][0].path, f"inconsistent accumulations: {unit.describe()} is below "
                                                    f"-{NEGATIVE_MM:g} mm in {100 * strong / valid:.1f}% of cells "
                                                    f"(down to {float(np.nanmin(total)):.1f} mm)")
    clip_negatives(total)
    return total
