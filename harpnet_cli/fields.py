"""Plain data containers passed between readers (``io/``), the core and the writers.

No xarray, no torch: numpy arrays plus metadata, so ``core/`` can work on them. Besides the
containers, the small rules both sides apply to fields: :class:`FieldRef` (where one field is, as
a metadata scan found it) with :func:`grid_key`/:func:`corner_key` naming its grid, and
:func:`clip_negatives` with the thresholds of :data:`NEGATIVE_MM` and :data:`NEGATIVE_FRACTION`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

#: Kinds of field a :class:`FieldRef` points to: an amount over ``[start, end]``, or a running total since ``start``.
KINDS = ("interval", "running")
#: A field with more than ``NEGATIVE_FRACTION`` of its cells below ``-NEGATIVE_MM`` is inconsistent.
NEGATIVE_MM = 1.0
NEGATIVE_FRACTION = 0.01

#: What a format's loader needs to find one field in its file (opaque outside that format's module).
Locator = tuple[str | int | float, ...]


@dataclass
class SourceGrid:
    """Where a field's values sit.

    Attributes
    ----------
    lat, lon : numpy.ndarray
        Cell-centre coordinates in degrees: both 1-D ``(ny,)`` and ``(nx,)`` for a regular
        lat/lon grid (any order, any longitude convention), or both 2-D ``(ny, nx)`` for a
        projected or rotated grid.
    description : str
        What the grid is, for messages (``"regular 0.25°"``, ``"Lambert conformal 12 km"``).
    """

    lat: np.ndarray
    lon: np.ndarray
    description: str = ""

    @property
    def is_regular(self) -> bool:
        """True when ``lat`` and ``lon`` are 1-D axes."""
        return self.lat.ndim == 1 and self.lon.ndim == 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the data on this grid."""
        if self.is_regular:
            return (self.lat.size, self.lon.size)
        return tuple(self.lat.shape)  # type: ignore[return-value]


@dataclass
class Accumulation:
    """Precipitation accumulated over ``[start, end]`` on a source grid, as read from a file.

    Attributes
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` float32 amounts in kg m⁻² (= mm); NaN where missing.
    grid : SourceGrid
        Coordinates of ``data``.
    start, end : datetime
        Accumulation window (naive UTC). ``start == end`` for a step-0 field.
    reference_time : datetime or None
        Forecast reference (initialisation) time, when the file has one.
    member : int or None
        Ensemble member (GRIB ``perturbationNumber``); None for deterministic files.
    path : Path
        The file it came from.
    label : str
        Short provenance, e.g. ``"tp stepRange=6-12"``.
    masked : int
        Cells the reader read as missing because they held a fill value
        (:func:`harpnet_cli.plausibility.mask_fill`), counted for the run's summary.
    masked_values : tuple of float
        Up to three of those fill values, as stored.
    """

    data: np.ndarray
    grid: SourceGrid
    start: datetime
    end: datetime
    path: Path
    reference_time: datetime | None = None
    member: int | None = None
    label: str = ""
    masked: int = 0
    masked_values: tuple[float, ...] = ()

    @property
    def period(self) -> timedelta:
        """Length of the accumulation window."""
        return self.end - self.start


@dataclass
class IntervalSeries:
    """Consecutive interval amounts on one source grid for one member.

    Attributes
    ----------
    data : numpy.ndarray
        ``(T, ny, nx)`` float32 kg m⁻², non-negative or NaN.
    grid : SourceGrid
        Coordinates of ``data``.
    starts, ends : list of datetime
        Window of each step; ``ends[k] <= starts[k+1]``.
    reference_time : datetime or None
        Forecast reference time shared by the inputs, if any.
    member : int or None
        Ensemble member or None.
    paths : list of Path
        Every file that contributed.
    notes : list of str
        Things the user should hear about (clipped negatives, dropped duplicates, …).
    """

    data: np.ndarray
    grid: SourceGrid
    starts: list[datetime]
    ends: list[datetime]
    paths: list[Path]
    reference_time: datetime | None = None
    member: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class FineForecast:
    """Downscaled amounts on a fine grid, ready for a writer.

    Attributes
    ----------
    data : numpy.ndarray
        ``(M, T, H, W)`` float32 kg m⁻² (M members, T windows), NaN where the input was missing.
    lat, lon : numpy.ndarray
        Fine cell-centre axes ``(H,)`` south → north and ``(W,)`` west → east.
    lat_bounds, lon_bounds : numpy.ndarray
        Cell edges ``(H, 2)`` and ``(W, 2)``.
    starts, ends : list of datetime
        Accumulation window of each of the T steps.
    members : list of int or None
        Member number of each of the M members (``[None]`` for a deterministic input).
    reference_time : datetime or None
        Forecast reference time of the input.
    attrs : dict
        Global attributes (inputs, model, checkpoint hash, …).
    """

    data: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    lat_bounds: np.ndarray
    lon_bounds: np.ndarray
    starts: list[datetime]
    ends: list[datetime]
    members: list[int | None]
    reference_time: datetime | None = None
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldRef:
    """Where one precipitation field is and what it holds; small, hashable and picklable.

    Attributes
    ----------
    path : Path
        The file (or Zarr store directory).
    format : str
        Name of the format in :data:`harpnet_cli.io.readers.READERS` whose ``load`` reads it
        (``"grib"``, ``"netcdf"``, ``"wrf"``, ``"zarr"``).
    locator : tuple
        What the loader needs to find the field (GRIB byte offset, NetCDF variable and time
        index, …); opaque outside the format's module.
    start, end : datetime
        Naive UTC. For ``kind == "interval"`` the accumulation window; for ``"running"`` the
        total's origin (simulation or forecast start) and its valid time.
    kind : str
        ``"interval"`` or ``"running"`` (see :data:`KINDS`).
    member : int or None
        Ensemble member, None for deterministic data.
    grid : str
        Key identifying the grid (shape plus a hash of a few coordinates, see :func:`grid_key`);
        fields with equal keys share one grid.
    reference_time : datetime or None
        Forecast reference (initialisation) time, when the file states one (GRIB, CF
        ``forecast_reference_time``); as :attr:`Accumulation.reference_time`.
    """

    path: Path
    format: str
    locator: Locator
    start: datetime
    end: datetime
    kind: str = "interval"
    member: int | None = None
    grid: str = ""
    reference_time: datetime | None = None

    @property
    def period(self) -> timedelta:
        """``end - start``."""
        return self.end - self.start

    def describe(self) -> str:
        """``"file.nc 2016-09-20 00Z–01Z"``, or ``"file.nc total at 2005-09-21 03Z"`` for a running total."""
        if self.kind == "running":
            return f"{self.path.name} total at {time_text(self.end)}"
        return f"{self.path.name} {span_text(self.start, self.end)}"


def clip_negatives(data: np.ndarray) -> tuple[int, float]:
    """Set the negative cells of ``data`` to 0 in place (NaN stays NaN).

    Parameters
    ----------
    data : numpy.ndarray
        Amounts of any shape, modified in place.

    Returns
    -------
    clipped : int
        Number of cells that were negative.
    lowest : float
        The lowest value before clipping (0.0 when nothing was clipped).
    """
    with np.errstate(invalid="ignore"):
        negative = data < 0
    clipped = int(negative.sum())
    lowest = float(data[negative].min()) if clipped else 0.0
    data[negative] = 0.0
    return clipped, lowest


def grid_key(prefix: str, shape: tuple[int, int], values: Iterable[float | int | str | None]) -> str:
    """``"ll 3500x7000 3f2a9c01d2"``: a grid key from its shape and a few rounded coordinates.

    Parameters
    ----------
    prefix : str
        Kind of grid (``"ll"`` for 1-D lat/lon axes, ``"2d"`` for 2-D lat/lon, a GRIB grid type).
    shape : (int, int)
        ``(ny, nx)``.
    values : iterable
        Coordinates or parameters that pin the grid down (floats are rounded to 1e-3 degrees).
    """
    parts = [f"{round(float(v), 3) + 0.0:.3f}" if isinstance(v, float | np.floating) else str(v) for v in values]
    digest = hashlib.sha1(" ".join(parts).encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{prefix} {shape[0]}x{shape[1]} {digest}"


def corner_key(lat: np.ndarray, lon: np.ndarray, shape: tuple[int, int]) -> str:
    """Grid key of a 2-D lat/lon grid from its corner coordinates.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        ``(2, 2)`` latitudes and longitudes (degrees, any longitude convention) of the corners.
    shape : (int, int)
        ``(ny, nx)`` of the whole grid.
    """
    lon360 = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    return grid_key("2d", shape, [*np.asarray(lat, dtype=np.float64).ravel(), *lon360.ravel()])


def time_text(t: datetime) -> str:
    """``"2016-09-20 03Z"`` (minutes shown only when non-zero)."""
    return f"{t:%Y-%m-%d %H:%M}Z" if t.minute or t.second else f"{t:%Y-%m-%d %H}Z"


def span_text(start: datetime, end: datetime) -> str:
    """``"2016-09-20 00Z–03Z"``, or both dates when they differ."""
    if start.date() == end.date() and not (end.minute or end.second or start.minute or start.second):
        return f"{start:%Y-%m-%d %H}Z–{end:%H}Z"
    return f"{time_text(start)}–{time_text(end)}"


@dataclass
class EnsembleProducts:
    """What a writer writes of a model ensemble, computed before the writer is called.

    The forecast handed to the writer with these holds the ensemble's ``M`` members as its rows
    (``(M, T, H, W)``); the writer writes either those members or :attr:`mean` and
    :attr:`spread`, and then :attr:`probabilities` and :attr:`percentile_fields`, without
    computing anything. :meth:`names` lists the products; a writer asked for one of them
    (``product=``) writes that one alone (GRIB2: one product per file, what cdo and cfgrib read).

    Attributes
    ----------
    size : int
        ``M``, the members the products summarise (the ensemble size written into the file).
    every_member : bool
        Write every member (the forecast's rows: NetCDF ``realization``, GRIB2 template 4.11)
        instead of the mean and spread.
    mean, spread : numpy.ndarray or None
        ``(T, H, W)`` float32 ensemble mean and spread (population standard deviation), NaN
        where any member is missing; None with :attr:`every_member`.
    thresholds : tuple of float
        ``K`` increasing thresholds in kg m-2; empty for none.
    probabilities : numpy.ndarray or None
        ``(K, T, H, W)`` float32 fraction (0…1) of the members strictly above each threshold, NaN
        where any member is missing; None without thresholds.
    percentiles : tuple of float
        ``Q`` increasing percentiles (0…100) of the members' distribution; empty for none.
    percentile_fields : numpy.ndarray or None
        ``(Q, T, H, W)`` float32 amounts in kg m-2 at each percentile over the members (linear
        interpolation between order statistics), NaN where any member is missing; None without
        percentiles.
    """

    size: int
    every_member: bool = False
    mean: np.ndarray | None = None
    spread: np.ndarray | None = None
    thresholds: tuple[float, ...] = ()
    probabilities: np.ndarray | None = None
    percentiles: tuple[float, ...] = ()
    percentile_fields: np.ndarray | None = None

    def names(self) -> list[str]:
        """The products, in the order writers write them (see :func:`product_name`).

        Returns
        -------
        list of str
            ``["members"]`` or ``["mean", "spread"]``, then ``prob_gt_<T>mm`` per threshold and
            ``p<Q>`` per percentile, e.g. ``["mean", "spread", "prob_gt_1mm", "p90"]``.
        """
        return product_names(self.every_member, self.thresholds if self.probabilities is not None else (),
                             self.percentiles if self.percentile_fields is not None else ())


def product_names(every_member: bool, thresholds: Iterable[float] = (), percentiles: Iterable[float] = ()) -> list[str]:
    """The products an ensemble output holds, in the order writers write them (before they are computed).

    Parameters
    ----------
    every_member : bool
        Every member instead of mean and spread.
    thresholds : iterable of float
        Exceedance thresholds in kg m-2.
    percentiles : iterable of float
        Percentiles (0…100).

    Returns
    -------
    list of str
        e.g. ``["mean", "spread", "prob_gt_1mm", "p90"]`` (see :func:`product_name`).
    """
    names = ["members"] if every_member else ["mean", "spread"]
    names += [product_name("probability", t) for t in thresholds]
    names += [product_name("percentile", q) for q in percentiles]
    return names


#: Kinds of ensemble product, as :func:`product_name` spells them.
PRODUCT_KINDS = ("members", "mean", "spread", "probability", "percentile")


def product_name(kind: str, value: float | None = None) -> str:
    """The name of one ensemble product, as output file names and ``product=`` spell it.

    Parameters
    ----------
    kind : str
        One of :data:`PRODUCT_KINDS`.
    value : float, optional
        The threshold in kg m-2 (``probability``) or the percentile (``percentile``).

    Returns
    -------
    str
        ``members``, ``mean``, ``spread``, ``prob_gt_<value>mm`` or ``p<value>`` (``%g``).

    Examples
    --------
    >>> product_name("probability", 0.5), product_name("percentile", 90.0)
    ('prob_gt_0.5mm', 'p90')
    """
    if kind == "probability":
        return f"prob_gt_{value:g}mm"
    if kind == "percentile":
        return f"p{value:g}"
    if kind not in PRODUCT_KINDS:
        raise ValueError(f"unknown ensemble product {kind!r}; known: {', '.join(PRODUCT_KINDS)}")
    return kind
