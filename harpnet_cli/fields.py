"""Plain data containers passed between readers (``io/``), the core and the writers.

No xarray, no torch: numpy arrays plus metadata, so ``core/`` can work on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np


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
    """

    data: np.ndarray
    grid: SourceGrid
    start: datetime
    end: datetime
    path: Path
    reference_time: datetime | None = None
    member: int | None = None
    label: str = ""

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


@dataclass
class EnsembleProducts:
    """What a writer writes of a model ensemble, computed before the writer is called.

    The forecast handed to the writer with these holds the ensemble's ``M`` members as its rows
    (``(M, T, H, W)``); the writer writes either those members or :attr:`mean` and
    :attr:`spread`, and then :attr:`probabilities`, without computing anything.

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
    """

    size: int
    every_member: bool = False
    mean: np.ndarray | None = None
    spread: np.ndarray | None = None
    thresholds: tuple[float, ...] = ()
    probabilities: np.ndarray | None = None
