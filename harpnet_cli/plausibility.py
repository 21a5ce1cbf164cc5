"""Plausibility of precipitation amounts: the stated rules every input field passes before the model.

A reader hands over numbers; whether they are rain is decided here, once, with rules that are
written down and tested, because a wrong number in a fill value or a unit gives a confident,
wrong forecast (an all-1e20 field downscaled to 7.6e20 mm). Pure numpy, no file access; the
base layer, so the readers (``io/``, on raw values) and the workflows (on amounts in mm) share it.

The rules
---------
1. **Fill values are missing, not rain.** A cell is missing when it is NaN, ±inf, within a relative
   1e-4 of one of :data:`FILL_VALUES` (1e20, 9.999e20, NetCDF's default fill 9.969e36, 9999,
   −9999, −3: the sentinels of GEFS, GRIB1 tools, netCDF, MRMS and many others) or of the file's
   own missing value, or when its magnitude is :data:`FILL_ABOVE` (1e15) or more: no amount of
   water is that deep, and such values are fill values of some producer. Readers apply this on the
   values as stored, before any unit conversion (:func:`mask_fill`).
2. **Negative amounts beyond packing noise are refused.** Values in ``[-NEGATIVE_NOISE_MM, 0)``
   (0.1 mm) are packing noise and become 0; a field with any value below that is refused
   (:func:`clip_noise`): clipping it would turn a broken field into a dry one.
3. **Amounts above the physical bound for their window are masked, or the field refused.** The
   bound is the envelope of the world-record point rainfalls by duration, ``R = 422 D^0.475`` mm
   for a window of ``D`` hours (Jennings 1950, *Mon. Wea. Rev.* 78, 4–5; the curve WMO's Manual
   on Estimation of Probable Maximum Precipitation, WMO-No. 1045, plots the records against):
   218 mm in 15 minutes, 422 mm in 1 hour, 711 mm in 3 hours, 988 mm in 6 hours, 1,910 mm in
   24 hours. A grid cell's mean cannot exceed the wettest point ever measured. Cells above it are
   set missing with a warning naming the file, the count and the largest value, when they are at
   most :data:`EXTREME_FRACTION` (1 %) of the field's valid cells; more than that is not rain in
   mm (a unit or scale error: a NAM file ×1000 reaches 3,820 mm in 3 hours) and the field is
   refused. ``--allow-extreme`` keeps such values for the rare user who means them.
4. **A field with no valid cell is refused**: downscaling it could only give an all-missing
   "success".
5. **A running total never falls.** Two fields of one member that accumulate from the same start
   (GFS ``0-3`` and ``0-6``, ECMWF ``tp`` steps, one-time WRF files) may differ by packing noise,
   :data:`RUNNING_FALL_MM` (0.5 mm), but a later one lower than that is a reset bucket or totals
   of different runs; their difference would be wrong, so they are refused.
6. **Units** are compared as written, never guessed (:mod:`harpnet_cli.units`).

:func:`gate_accumulations` applies rules 1–5 to the fields as read, :func:`gate_series` rules 3–4
to the windows the model will see; ``harpnet downscale`` calls both before the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, IntervalSeries, span_text, time_text

#: Sentinels producers write for "missing", in the units of the file.
FILL_VALUES: tuple[float, ...] = (1e20, 9.999e20, 9.969209968386869e36, 9999.0, -9999.0, -3.0)
#: Relative tolerance of a match with a fill value (a sentinel packed into GRIB moves a little).
FILL_RTOL = 1e-4
#: Any value of this magnitude or more is a fill value (mm or any unit: no water is this deep).
FILL_ABOVE = 1e15
#: Values in ``[-NEGATIVE_NOISE_MM, 0)`` are packing noise (mm).
NEGATIVE_NOISE_MM = 0.1
#: The world-record envelope ``RECORD_COEFFICIENT_MM * hours ** RECORD_EXPONENT`` (Jennings 1950).
RECORD_COEFFICIENT_MM = 422.0
RECORD_EXPONENT = 0.475
#: Above this fraction of a field's valid cells above the bound, the field is refused (not masked).
EXTREME_FRACTION = 0.01
#: A running total may fall by this much (mm) from one of its fields to a later one: packing noise.
RUNNING_FALL_MM = 0.5


def record_mm(period: timedelta) -> float:
    """The world-record envelope for a window: ``422 D^0.475`` mm with ``D`` in hours (0 for none).

    Parameters
    ----------
    period : timedelta
        Length of the accumulation window.

    Returns
    -------
    float
        The bound in mm; 0.0 for a zero-length window.
    """
    hours = period / timedelta(hours=1)
    return RECORD_COEFFICIENT_MM * hours**RECORD_EXPONENT if hours > 0 else 0.0


def fill_mask(values: np.ndarray, own: Iterable[float | None] = ()) -> np.ndarray:
    """Where ``values`` hold a fill value (rule 1 of the module docstring).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape, as stored in the file (before unit conversion).
    own : iterable of float
        The file's own missing values (GRIB ``missingValue``, NetCDF ``_FillValue``/``missing_value``);
        None entries are ignored.

    Returns
    -------
    numpy.ndarray
        Bool of the shape of ``values``, True where the value is a fill value or ±inf. NaN is
        not marked (it is missing already).
    """
    a = np.asarray(values)
    sentinels = [*FILL_VALUES, *(float(v) for v in own if v is not None and np.isfinite(v))]
    # only the cells beyond the sentinels nearest to zero are compared (fast on 25-million-cell grids)
    below = max((s * (1.0 - FILL_RTOL) for s in sentinels if s < 0), default=-np.inf)
    above = min((s * (1.0 - FILL_RTOL) for s in sentinels if s >= 0), default=np.inf)
    mask = np.zeros(a.shape, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        where = np.flatnonzero((a <= below) | (a >= above))
        if where.size:
            sub = a.reshape(-1)[where]
            hit = np.isinf(sub) | (np.abs(sub) >= FILL_ABOVE)
            for sentinel in sentinels:
                hit |= np.abs(sub - sentinel) <= FILL_RTOL * abs(sentinel)
            mask.reshape(-1)[where[hit]] = True
    return mask


@dataclass
class FillCount:
    """Fill values found in one field: how many cells, and which values (a few of them)."""

    cells: int = 0
    values: tuple[float, ...] = ()

    def describe(self) -> str:
        """``"3 cell(s) holding fill value(s) 1e+20"`` (``""`` when none)."""
        if not self.cells:
            return ""
        shown = ", ".join(f"{v:g}" for v in self.values)
        return f"{self.cells} cell(s) holding fill value(s) {shown}"


def mask_fill(values: np.ndarray, own: Iterable[float | None] = ()) -> FillCount:
    """Set the fill values of a float array to NaN, in place (see :func:`fill_mask`).

    Parameters
    ----------
    values : numpy.ndarray
        Float array of any shape, modified in place.
    own : iterable of float
        The file's own missing values.

    Returns
    -------
    FillCount
        Cells set to NaN and up to three of the distinct values they held.
    """
    mask = fill_mask(values, own)
    count = int(mask.sum())
    if not count:
        return FillCount()
    distinct = np.unique(values[mask])
    values[mask] = np.nan
    return FillCount(count, tuple(float(v) for v in distinct[:3]))


def clip_noise(data: np.ndarray, source: str | Path | None = None, what: str = "the field") -> int:
    """Clip negative packing noise to 0 in place; refuse a field with amounts below the noise.

    Parameters
    ----------
    data : numpy.ndarray
        Amounts in mm, any shape, NaN where missing; modified in place.
    source : str or Path, optional
        The file, named in the error.
    what : str
        The field, for the error (``"tp 0-6h"``).

    Returns
    -------
    int
        Cells clipped from ``[-NEGATIVE_NOISE_MM, 0)`` to 0.

    Raises
    ------
    InputDataError
        A value below ``-NEGATIVE_NOISE_MM`` (rule 2).
    """
    with np.errstate(invalid="ignore"):
        negative = data < 0
        strong = data < -NEGATIVE_NOISE_MM
    if strong.any():
        count = int(strong.sum())
        valid = int(np.isfinite(data).sum())
        raise InputDataError(source, f"{what} has negative amounts: {count} of {valid} valid cell(s) below "
                                     f"-{NEGATIVE_NOISE_MM:g} mm (down to {float(data[strong].min()):.4g} mm); "
                                     "precipitation cannot be negative")
    clipped = int(negative.sum())
    data[negative] = 0.0
    return clipped


@dataclass
class FieldCheck:
    """What :func:`check_amounts` did to one field."""

    fill: FillCount = field(default_factory=FillCount)
    """Fill values set missing."""
    extreme: int = 0
    """Cells above the bound (set missing unless kept)."""
    largest: float = 0.0
    """The largest of them (mm)."""
    bound: float = 0.0
    """The bound of the field's window (mm)."""
    kept: bool = False
    """The extreme cells were kept (``allow_extreme``)."""
    clipped: int = 0
    """Negative noise cells set to 0."""

    @property
    def masked(self) -> int:
        """Cells this check set missing."""
        return self.fill.cells + (0 if self.kept else self.extreme)


def check_amounts(data: np.ndarray, period: timedelta, *, source: str | Path | None = None,
                  what: str = "the field", allow_extreme: bool = False, read_as_fill: int = 0) -> FieldCheck:
    """Apply every rule of the module docstring to one field of amounts in mm, in place.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` (or any shape) float amounts in mm over ``period``, NaN where missing;
        fill values become NaN, negative noise 0, extreme values NaN (unless ``allow_extreme``).
    period : timedelta
        The window; a zero-length window (a step-0 marker field) has no bound.
    source : str or Path, optional
        The file, named in errors.
    what : str
        The field, named in errors.
    allow_extreme : bool
        Keep values above the bound, and never refuse the field for them.
    read_as_fill : int
        Cells the reader already set missing as fill values (for the message of an empty field).

    Returns
    -------
    FieldCheck

    Raises
    ------
    InputDataError
        No valid cell; negative amounts beyond noise; more than :data:`EXTREME_FRACTION` of the
        valid cells above the bound (without ``allow_extreme``).
    """
    check = FieldCheck(fill=mask_fill(data))
    valid = int(np.isfinite(data).sum())
    if not valid:
        fill = check.fill.cells + read_as_fill
        why = f" ({fill} of them held fill values)" if fill else ""
        raise InputDataError(source, f"{what} has no valid cell: all {data.size} cells are missing{why}")
    check.clipped = clip_noise(data, source, what)
    check.bound = record_mm(period)
    if period <= timedelta(0):
        return check
    with np.errstate(invalid="ignore"):
        above = data > check.bound
    check.extreme = int(above.sum())
    if not check.extreme:
        return check
    check.largest = float(data[above].max())
    if allow_extreme:
        check.kept = True
        return check
    if check.extreme > EXTREME_FRACTION * valid:
        raise InputDataError(source, f"{what}: {check.extreme} of {valid} valid cell(s) exceed {check.bound:.0f} mm, "
                                     f"the world-record amount for {_hours(period)} (largest {check.largest:.6g} mm): "
                                     "not plausible precipitation in mm (wrong units or scale?); --allow-extreme "
                                     "accepts it")
    data[above] = np.nan
    return check


def _hours(period: timedelta) -> str:
    """``"3 h"``, ``"15 min"``."""
    hours = period / timedelta(hours=1)
    return f"{hours:g} h" if hours >= 1 else f"{period / timedelta(minutes=1):g} min"


@dataclass
class GateReport:
    """What the gate did to a run's inputs: cells masked, and one warning line per file and kind."""

    masked: int = 0
    """Cells set missing: fill values (also those the readers masked) and extreme values."""
    _fill: dict[str, tuple[int, set[float]]] = field(default_factory=dict)
    _extreme: dict[str, tuple[int, float, bool]] = field(default_factory=dict)

    def add(self, source: str, check: FieldCheck, reader_fill: tuple[int, tuple[float, ...]] = (0, ())) -> None:
        """Account for one field's check and the fill values its reader had masked already.

        Parameters
        ----------
        source : str
            The file's name, as the warnings show it.
        check : FieldCheck
            The field's :func:`check_amounts`.
        reader_fill : (int, tuple of float)
            Cells and values the reader read as fill values (:class:`~harpnet_cli.fields.Accumulation`
            ``masked`` and ``masked_values``).
        """
        cells = check.fill.cells + reader_fill[0]
        self.masked += check.masked + reader_fill[0]
        if cells:
            count, values = self._fill.get(source, (0, set()))
            self._fill[source] = (count + cells, values | set(check.fill.values) | set(reader_fill[1]))
        if check.extreme:
            count, largest, _ = self._extreme.get(source, (0, -np.inf, check.kept))
            self._extreme[source] = (count + check.extreme, max(largest, check.largest), check.kept)

    @property
    def warnings(self) -> list[str]:
        """One line per file for fill values, and one per file for amounts above the bound."""
        lines = []
        for source, (count, values) in self._fill.items():
            shown = ", ".join(f"{v:g}" for v in sorted(values)[:3])
            lines.append(f"{source}: {count} cell(s) hold fill value(s) ({shown}); read as missing")
        for source, (count, largest, kept) in self._extreme.items():
            done = "kept (--allow-extreme)" if kept else "masked as missing (--allow-extreme keeps them)"
            lines.append(f"{source}: {count} cell(s) above the world-record amount for their window (largest "
                         f"{largest:.6g} mm): {done}")
        return lines

    def merge(self, other: GateReport) -> GateReport:
        """A report with the counts of both."""
        out = GateReport(self.masked + other.masked, dict(self._fill), dict(self._extreme))
        for source, (count, values) in other._fill.items():
            have = out._fill.get(source, (0, set()))
            out._fill[source] = (have[0] + count, have[1] | values)
        for source, (count, largest, kept) in other._extreme.items():
            have_e = out._extreme.get(source, (0, -np.inf, kept))
            out._extreme[source] = (have_e[0] + count, max(have_e[1], largest), kept)
        return out


def gate_accumulations(accs: Sequence[Accumulation], *, allow_extreme: bool = False) -> GateReport:
    """Check every field as read (before windows are differenced), in place.

    Parameters
    ----------
    accs : sequence of Accumulation
        The readers' fields, ``data`` ``(ny, nx)`` mm over ``[start, end]``.
    allow_extreme : bool
        Keep amounts above the bound (see :func:`check_amounts`).

    Returns
    -------
    GateReport

    Raises
    ------
    InputDataError
        The first field that breaks a rule, naming its file.
    """
    report = GateReport()
    for acc in accs:
        check = check_amounts(acc.data, acc.end - acc.start, source=acc.path, what=acc.label or "a field",
                              allow_extreme=allow_extreme, read_as_fill=acc.masked)
        report.add(acc.path.name, check, (acc.masked, acc.masked_values))
    check_running_totals(accs)
    return report


def check_running_totals(accs: Sequence[Accumulation]) -> None:
    """Refuse a running total that falls (rule 5): fields of one member and start, in order of their end.

    Parameters
    ----------
    accs : sequence of Accumulation
        Fields in any order; only those sharing member, start and grid shape are compared.

    Raises
    ------
    InputDataError
        When a later field is below an earlier one by more than :data:`RUNNING_FALL_MM` in a cell,
        naming both files.
    """
    groups: dict[tuple[object, ...], list[Accumulation]] = {}
    for acc in accs:
        groups.setdefault((acc.member, acc.start, acc.data.shape), []).append(acc)
    for group in groups.values():
        ordered = sorted(group, key=lambda a: a.end)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if later.end == earlier.end:
                continue  # duplicates: compared where windows are formed
            with np.errstate(invalid="ignore"):
                fall = earlier.data.astype(np.float64) - later.data
                reset = fall > RUNNING_FALL_MM
            if reset.any():
                what, before = later.label or "a running total", earlier.label or "an earlier total"
                raise InputDataError(later.path, f"{what} is below {before} from {earlier.path.name} in "
                                                 f"{int(reset.sum())} cell(s) (by up to {float(np.nanmax(fall)):.4g} "
                                                 f"mm), though both accumulate from {time_text(earlier.start)}: "
                                                 "a reset bucket or totals of different runs")


def gate_series(series: Sequence[IntervalSeries], *, allow_extreme: bool = False) -> GateReport:
    """Check every interval the model will see (the bound of each window; no empty field), in place.

    Parameters
    ----------
    series : sequence of IntervalSeries
        ``data`` ``(T, ny, nx)`` mm, one window per step.
    allow_extreme : bool
        Keep amounts above the bound.

    Returns
    -------
    GateReport

    Raises
    ------
    InputDataError
        The first interval that breaks a rule, naming a file of its member.
    """
    report = GateReport()
    for s in series:
        source = str(s.paths[0]) + (f" (and {len(s.paths) - 1} other file(s))" if len(s.paths) > 1 else "")
        for k, (start, end) in enumerate(zip(s.starts, s.ends, strict=True)):
            what = f"window {span_text(start, end)}" + (f" of member {s.member}" if s.member is not None else "")
            check = check_amounts(s.data[k], end - start, source=source, what=what, allow_extreme=allow_extreme)
            report.add(s.paths[0].name if len(s.paths) == 1 else source, check)
    return report
