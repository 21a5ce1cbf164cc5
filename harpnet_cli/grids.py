"""The nested coarse (0.25°) and fine (0.0625°) lat/lon grids HARPNET works on.

Conventions
-----------
* Coarse cell *centres* lie on multiples of 0.25° — the native GFS/GEFS/ECMWF 0.25° grid — so an
  operational file needs no remapping. Coarse cell ``(j, i)`` spans
  ``[lat_c - 0.125, lat_c + 0.125] x [lon_c - 0.125, lon_c + 0.125]``.
* Every coarse cell holds exactly 4 x 4 fine cells whose edges nest in it; fine cell centres sit at
  ``edge + 0.03125 + k * 0.0625``.
* Arrays are ordered south → north (row 0 is the southernmost) and west → east.
* Longitudes are kept in −180…180 when the box allows, else continuous past 180 (a box across the
  date line); inputs in 0…360 or −180…180 are both accepted (see :func:`wrap_lon`).
* A box that spans all longitudes (``--bbox 30,40,-180,180``, ``0,360``, ``--domain global``) is
  **periodic**: 1440 coarse cells from 180° W, whose last column neighbours its first
  (:attr:`GridSpec.periodic`); the model's tiles wrap across the date line.
* Latitudes stop at the cells centred on ±89.75° (edges ±89.875°): the GFS/ECMWF rows centred on
  the poles are half cells, and 4 x 4 fine cells nested in them would pass the pole. Those rows
  are still read as the buffer (context) of the last rows (:meth:`GridSpec.padded`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

COARSE_RES = 0.25
RATIO = 4
FINE_RES = COARSE_RES / RATIO

#: Named domains as (south, north, west, east) in degrees; snapped outwards to coarse cells.
DOMAINS: dict[str, tuple[float, float, float, float]] = {
    # 416 x 960 fine cells (104 x 240 coarse): centres 24.0..49.75 N, 126.0..66.25 W.
    "conus": (23.875, 49.875, -126.125, -66.125),
    # 2876 x 5760 fine cells (719 x 1440 coarse): every longitude, centres 89.75 S..89.75 N.
    "global": (-90.0, 90.0, -180.0, 180.0),
    # The western mountains of the US (centres 31..49 N, 125..102 W), the box the scores call "West".
    "west": (30.875, 49.125, -125.125, -101.875),
    # The Alps and their northern rim (centres 43..49 N, 4..17 E).
    "alps": (42.875, 49.125, 3.875, 17.125),
    # Alaska from the Aleutians east of 170 W to the panhandle (centres 51..72 N, 170..129 W).
    "alaska": (50.875, 72.125, -170.125, -128.875),
    # Japan from the Ryukyu Islands to Hokkaido (centres 24..46 N, 122..146 E).
    "japan": (23.875, 46.125, 121.875, 146.125),
    # Europe from the Azores' longitude to the Urals' foothills (centres 34..72 N, 25 W..45 E).
    "europe": (33.875, 72.125, -25.125, 45.125),
}
#: Coarse cells round a latitude circle.
CIRCLE = round(360 / COARSE_RES)
#: A box leaving out at most this many coarse cells of a latitude circle on each side is the
#: whole circle (so that its buffer never overlaps itself).
PERIODIC_SNAP = 1

_EPS = 1e-6


def wrap_lon(lon: np.ndarray | float, west: float = -180.0) -> np.ndarray:
    """Wrap longitudes into ``[west, west + 360)``.

    Parameters
    ----------
    lon : array_like
        Longitudes in any convention (0…360, −180…180, …).
    west : float
        Lower end of the target range.

    Returns
    -------
    numpy.ndarray
        Same shape as ``lon``.
    """
    return (np.asarray(lon, dtype=np.float64) - west) % 360.0 + west


@dataclass(frozen=True)
class GridSpec:
    """A coarse 0.25° box and the fine 0.0625° grid nested in it.

    Attributes
    ----------
    lat0 : float
        Latitude of the southernmost coarse cell centre (a multiple of 0.25).
    lon0 : float
        Longitude of the westernmost coarse cell centre (a multiple of 0.25, in −180…180).
    ny, nx : int
        Number of coarse cells south→north and west→east.
    """

    lat0: float
    lon0: float
    ny: int
    nx: int

    def __post_init__(self) -> None:
        """Check alignment and extent."""
        if self.ny < 1 or self.nx < 1:
            raise ValueError(f"grid needs at least one cell, got {self.ny} x {self.nx}")
        for name, value in (("lat0", self.lat0), ("lon0", self.lon0)):
            if abs(value / COARSE_RES - round(value / COARSE_RES)) > _EPS:
                raise ValueError(f"{name}={value} is not a multiple of {COARSE_RES}")
        if self.lat0 < -90 - _EPS or self.lat0 + (self.ny - 1) * COARSE_RES > 90 + _EPS:
            raise ValueError(f"cell centres {self.lat0}..{self.lat0 + (self.ny - 1) * COARSE_RES} leave -90..90")
        if self.nx * COARSE_RES > 360 + _EPS:
            raise ValueError("a grid cannot span more than 360° of longitude")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_bbox(cls, south: float, north: float, west: float, east: float) -> GridSpec:
        """Smallest grid of whole coarse cells that covers a lat/lon box.

        Parameters
        ----------
        south, north : float
            Latitude bounds in degrees, ``south < north``.
        west, east : float
            Longitude bounds in degrees, either convention; a box with ``east < west`` after
            wrapping crosses the date line.

        Returns
        -------
        GridSpec
        """
        if not south < north:
            raise ValueError(f"south ({south}) must be less than north ({north})")
        if south < -90 or north > 90:
            raise ValueError(f"latitudes {south}..{north} leave -90..90")
        west_w = float(wrap_lon(west))
        east_w = float(wrap_lon(east, west=west_w))
        if east_w <= west_w:  # east == west after wrapping: the full circle
            east_w += 360.0
        if abs(east - west) >= 360 - _EPS:
            east_w = west_w + 360.0
        # coarse cell k covers [k*0.25 - 0.125, k*0.25 + 0.125]
        j0 = math.floor((south + 0.125) / COARSE_RES + _EPS)
        j1 = math.ceil((north - 0.125) / COARSE_RES - _EPS)
        i0 = math.floor((west_w + 0.125) / COARSE_RES + _EPS)
        i1 = math.ceil((east_w - 0.125) / COARSE_RES - _EPS)
        j0 = max(j0, -359)  # the cells centred on the poles would put fine cells past ±90
        j1 = min(j1, 359)
        nx = i1 - i0 + 1
        if nx > CIRCLE - 2 * PERIODIC_SNAP:  # (almost) all longitudes: the periodic circle
            nx = CIRCLE
        lon0 = float(wrap_lon(i0 * COARSE_RES))
        return cls(lat0=j0 * COARSE_RES, lon0=lon0, ny=j1 - j0 + 1, nx=nx)

    @classmethod
    def from_domain(cls, name: str) -> GridSpec:
        """The grid of a named domain (see :data:`DOMAINS`)."""
        try:
            box = DOMAINS[name.lower()]
        except KeyError:
            raise ValueError(f"unknown domain {name!r}; known: {', '.join(sorted(DOMAINS))}") from None
        return cls.from_bbox(*box)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def south(self) -> float:
        """Southern edge of the box (degrees)."""
        return self.lat0 - COARSE_RES / 2

    @property
    def north(self) -> float:
        """Northern edge of the box (degrees)."""
        return self.lat0 + (self.ny - 0.5) * COARSE_RES

    @property
    def west(self) -> float:
        """Western edge of the box (degrees)."""
        return self.lon0 - COARSE_RES / 2

    @property
    def east(self) -> float:
        """Eastern edge of the box (degrees, may exceed 180 across the date line)."""
        return self.lon0 + (self.nx - 0.5) * COARSE_RES

    @property
    def periodic(self) -> bool:
        """True when the grid goes round the globe: its last column neighbours its first."""
        return self.nx == CIRCLE

    @property
    def coarse_shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the coarse grid."""
        return (self.ny, self.nx)

    @property
    def fine_shape(self) -> tuple[int, int]:
        """``(4 ny, 4 nx)`` of the fine grid."""
        return (self.ny * RATIO, self.nx * RATIO)

    def coarse_lat(self) -> np.ndarray:
        """Coarse cell-centre latitudes, shape ``(ny,)``, south → north."""
        return self.lat0 + COARSE_RES * np.arange(self.ny)

    def coarse_lon(self) -> np.ndarray:
        """Coarse cell-centre longitudes, shape ``(nx,)``, west → east (continuous)."""
        return self.lon0 + COARSE_RES * np.arange(self.nx)

    def fine_lat(self) -> np.ndarray:
        """Fine cell-centre latitudes, shape ``(4 ny,)``."""
        return self.south + FINE_RES * (np.arange(self.ny * RATIO) + 0.5)

    def fine_lon(self) -> np.ndarray:
        """Fine cell-centre longitudes, shape ``(4 nx,)`` (continuous)."""
        return self.west + FINE_RES * (np.arange(self.nx * RATIO) + 0.5)

    def coarse_lat_bounds(self) -> np.ndarray:
        """Coarse cell edges in latitude, shape ``(ny, 2)``."""
        c = self.coarse_lat()
        return np.stack([c - COARSE_RES / 2, c + COARSE_RES / 2], axis=1)

    def coarse_lon_bounds(self) -> np.ndarray:
        """Coarse cell edges in longitude, shape ``(nx, 2)``."""
        c = self.coarse_lon()
        return np.stack([c - COARSE_RES / 2, c + COARSE_RES / 2], axis=1)

    def fine_lat_bounds(self) -> np.ndarray:
        """Fine cell edges in latitude, shape ``(4 ny, 2)``."""
        c = self.fine_lat()
        return np.stack([c - FINE_RES / 2, c + FINE_RES / 2], axis=1)

    def fine_lon_bounds(self) -> np.ndarray:
        """Fine cell edges in longitude, shape ``(4 nx, 2)``."""
        c = self.fine_lon()
        return np.stack([c - FINE_RES / 2, c + FINE_RES / 2], axis=1)

    def padded(self, cells: int) -> GridSpec:
        """The same grid grown by ``cells`` coarse cells on every side (clipped at the poles).

        A periodic grid grows in latitude only: its side columns are its own other edge (see
        :func:`harpnet_cli.core.tiling.wrap_columns`).
        """
        last = self.lat0 + (self.ny - 1) * COARSE_RES
        south_pad = min(cells, int(round((self.lat0 + 90) / COARSE_RES)))
        north_pad = min(cells, int(round((90 - last) / COARSE_RES)))
        if self.periodic:
            nx, lon0 = self.nx, self.lon0
        elif self.nx + 2 * cells > CIRCLE:
            raise ValueError(f"a {self.nx}-cell grid padded by {cells} would wrap onto itself; use all "
                             f"{CIRCLE} cells (a periodic grid)")
        else:
            nx, lon0 = self.nx + 2 * cells, self.lon0 - cells * COARSE_RES
        return GridSpec(
            lat0=self.lat0 - south_pad * COARSE_RES,
            lon0=float(wrap_lon(lon0)),
            ny=self.ny + south_pad + north_pad,
            nx=nx,
        )

    def describe(self) -> str:
        """Short human description, e.g. ``'23.875..49.875N 126.125W..66.125W (104x240 -> 416x960)'``."""

        def lat(v: float) -> str:
            return f"{abs(v):g}{'N' if v >= 0 else 'S'}"

        def lon(v: float) -> str:
            v = float(wrap_lon(v))
            return f"{abs(v):g}{'E' if v >= 0 else 'W'}"

        fy, fx = self.fine_shape
        lons = "all longitudes" if self.periodic else f"{lon(self.west)}..{lon(self.east)}"
        return f"{lat(self.south)}..{lat(self.north)} {lons} ({self.ny}x{self.nx} coarse -> {fy}x{fx} fine)"

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for checkpoints and output metadata."""
        return {"lat0": self.lat0, "lon0": self.lon0, "ny": self.ny, "nx": self.nx}

    @classmethod
    def from_dict(cls, d: Mapping[str, float | int]) -> GridSpec:
        """The grid of a :meth:`to_dict` dict (other keys ignored)."""
        return cls(float(d["lat0"]), float(d["lon0"]), int(d["ny"]), int(d["nx"]))

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Whether points (any longitude convention) lie within the box's cells; broadcasts."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        inside_lat = (lat >= self.south - _EPS) & (lat <= self.north + _EPS)
        if self.periodic:
            return inside_lat & np.ones_like(lon, dtype=bool)
        east_of_west = wrap_lon(lon - self.west, 0.0)  # 0..360 east of the western edge
        return inside_lat & (east_of_west <= self.east - self.west + _EPS)


def covered_fraction(spec: GridSpec, regions: Sequence[GridSpec]) -> float:
    """Fraction of ``spec``'s coarse cells whose centres lie in any of ``regions``."""
    lat, lon = np.meshgrid(spec.coarse_lat(), spec.coarse_lon(), indexing="ij")
    inside = np.zeros(lat.shape, dtype=bool)
    for region in regions:
        inside |= region.contains(lat, lon)
    return float(inside.mean())


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``"S,N,W,E"`` (degrees) into a tuple, with a clear error.

    Raises
    ------
    ValueError
        If the text is not four comma-separated numbers with ``S < N``.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"--bbox wants S,N,W,E (four numbers), got {text!r}")
    try:
        s, n, w, e = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--bbox wants S,N,W,E (four numbers), got {text!r}") from None
    if not s < n:
        raise ValueError(f"--bbox south ({s}) must be less than north ({n})")
    if s < -90 or n > 90:
        raise ValueError(f"--bbox latitudes {s}..{n} leave -90..90")
    return s, n, w, e
