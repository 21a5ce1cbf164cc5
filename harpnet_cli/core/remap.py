"""Remap source fields onto the HARPNET coarse (0.25°) or fine (0.0625°) grid.

A :class:`Regridder` is built once per (source grid, target grid) and applied to many fields; its
weights are a linear operator, so applying it is one or two sparse matrix products per field.

Methods
-------
* **exact** — a regular lat/lon source whose cell centres and spacing coincide with the target
  (GFS/GEFS/ECMWF 0.25° onto the coarse grid, any longitude convention, any row order): apply is
  pure index selection, so values come back bit for bit.
* **conservative**, regular source — exact first-order conservative weights. They are separable:
  the overlap of source and target cells in longitude (radians, periodic) times their overlap in
  ``sin(latitude)``, which together are the true spherical area of the intersection. Source edges
  are midpoints between centres, extrapolated half a step at the ends and clipped at ±90°.
* **conservative**, curvilinear source (2-D lat/lon: Lambert, polar stereographic, Mercator) —
  approximate: each source cell is split into ``k x k`` sub-points (bilinear between its corners
  on the unit sphere), each carrying ``area / k²``, and the sub-points are binned into target
  cells. Corners are midpoints of the 2-D centres, extrapolated at the borders.
* **bilinear** — separable linear weights along each axis for regular sources; for curvilinear
  sources, bilinear within the quad of four source centres around each target, found with a
  KD-tree and inverted by Newton's method on a gnomonic plane about the target.

Every method yields a target value as the weighted mean of the *valid* (non-NaN) source values,
``sum(w x) / sum(w)``, so a constant field stays constant; a target is NaN where the valid
weight is below ``min_coverage`` of the cell's area (conservative) or of 1 (bilinear).

Pure numpy/scipy: arrays in, arrays out.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from harpnet_cli.fields import SourceGrid
from harpnet_cli.grids import COARSE_RES, FINE_RES, RATIO, GridSpec


class _LazyModule:
    """A module imported on first attribute access (scipy.sparse costs ~0.2 s to import, and the
    exact remap of a GFS file onto the coarse grid never needs it)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


if TYPE_CHECKING:
    from scipy import sparse
else:
    sparse = _LazyModule("scipy.sparse")

Level = Literal["coarse", "fine"]
Method = Literal["conservative", "bilinear"]

#: Coordinates closer than this (degrees) are the same point.
COORD_TOL = 1e-4
#: Largest number of sub-points per side of a curvilinear source cell.
MAX_SUBSAMPLE = 8
#: Sub-points per (smaller) target side that the automatic ``k`` aims for.
SUBPOINTS_PER_TARGET = 4
#: Sub-points processed at once when building curvilinear weights (a few hundred MB at most).
CHUNK_POINTS = 2_000_000


# -- target geometry --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """Cell edges and centres of one level of a :class:`GridSpec` (continuous longitudes)."""

    south: float
    west: float
    res: float
    ny: int
    nx: int

    @classmethod
    def of(cls, spec: GridSpec, level: Level) -> _Target:
        """Geometry of ``level`` of ``spec``."""
        if level not in ("coarse", "fine"):
            raise ValueError(f"level must be 'coarse' or 'fine', got {level!r}")
        ratio = 1 if level == "coarse" else RATIO
        res = COARSE_RES if level == "coarse" else FINE_RES
        return cls(spec.south, spec.west, res, spec.ny * ratio, spec.nx * ratio)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return (self.ny, self.nx)

    def lat_edges(self) -> np.ndarray:
        """``(ny + 1,)`` degrees, south → north."""
        return self.south + self.res * np.arange(self.ny + 1)

    def lon_edges(self) -> np.ndarray:
        """``(nx + 1,)`` degrees, west → east, continuous (may pass 180)."""
        return self.west + self.res * np.arange(self.nx + 1)

    def lat(self) -> np.ndarray:
        """``(ny,)`` cell-centre latitudes."""
        return self.south + self.res * (np.arange(self.ny) + 0.5)

    def lon(self) -> np.ndarray:
        """``(nx,)`` cell-centre longitudes (continuous)."""
        return self.west + self.res * (np.arange(self.nx) + 0.5)

    def area(self) -> np.ndarray:
        """``(ny, nx)`` cell areas on the unit sphere (steradians)."""
        dsin = np.diff(np.sin(np.deg2rad(self.lat_edges())))
        return np.outer(dsin, np.full(self.nx, np.deg2rad(self.res)))


# -- 1-D axes of a regular source -------------------------------------------------------------
@dataclass(frozen=True)
class _Axis:
    """One sorted axis of a regular source grid.

    Attributes
    ----------
    centres : (n,) ascending cell centres (degrees).
    index : (n,) position of each sorted centre in the source array.
    edges : (n + 1,) ascending cell edges (degrees).
    step : median spacing (degrees).
    periodic : True for a longitude axis that closes the circle.
    """

    centres: np.ndarray
    index: np.ndarray
    edges: np.ndarray
    step: float
    periodic: bool

    @property
    def uniform(self) -> bool:
        """True when every spacing equals ``step``."""
        return bool(np.all(np.abs(np.diff(self.centres) - self.step) < COORD_TOL))


def _sorted_centres(values: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sort a 1-D coordinate and check it has distinct values.

    Returns
    -------
    centres : (n,) ascending values; index : (n,) their source positions.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"a regular source needs at least 2 {name} values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"source {name} has non-finite values")
    index = np.argsort(values, kind="stable")
    centres = values[index]
    if np.any(np.diff(centres) <= COORD_TOL):
        raise ValueError(f"source {name} has repeated values")
    return centres, index


def _midpoint_edges(centres: np.ndarray) -> np.ndarray:
    """``(n + 1,)`` edges: midpoints, extrapolated half a step at both ends."""
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate(
        [[centres[0] - (mid[0] - centres[0])], mid, [centres[-1] + (centres[-1] - mid[-1])]]
    )


def _lat_axis(lat: np.ndarray) -> _Axis:
    """Latitude axis; edges clipped at ±90°."""
    centres, index = _sorted_centres(lat, "latitude")
    if centres[0] < -90 - COORD_TOL or centres[-1] > 90 + COORD_TOL:
        raise ValueError(f"source latitudes {centres[0]}..{centres[-1]} leave -90..90")
    edges = np.clip(_midpoint_edges(centres), -90.0, 90.0)
    return _Axis(centres, index, edges, float(np.median(np.diff(centres))), periodic=False)


def _lon_axis(lon: np.ndarray) -> _Axis:
    """Longitude axis, continuous and ascending.

    A repeated cyclic column (0 and 360) is dropped, and a regional grid that the file's
    convention splits in two (0…2, 358…359.75) is made continuous (358…362).
    """
    centres, index = _sorted_centres(lon, "longitude")
    if centres[-1] - centres[0] >= 360 - COORD_TOL:  # the last column repeats the first
        centres, index = centres[:-1], index[:-1]
    if centres[-1] - centres[0] >= 360 - COORD_TOL:
        raise ValueError("source longitudes span more than 360°")
    step = float(np.median(np.diff(centres)))
    periodic = abs(step * centres.size - 360.0) < 0.5 * step
    gap = int(np.argmax(np.diff(np.append(centres, centres[0] + 360.0))))
    if not periodic and gap < centres.size - 1:  # the widest gap is inside: start after it
        centres = np.concatenate([centres[gap + 1 :], centres[: gap + 1] + 360.0])
        index = np.concatenate([index[gap + 1 :], index[: gap + 1]])
    if periodic:
        first = 0.5 * (centres[0] + centres[-1] - 360.0)
        edges = np.concatenate([[first], 0.5 * (centres[1:] + centres[:-1]), [first + 360.0]])
    else:
        edges = _midpoint_edges(centres)
    return _Axis(centres, index, edges, step, periodic)


# -- 1-D weight matrices ----------------------------------------------------------------------
def _overlap_matrix(src_edges: np.ndarray, dst_edges: np.ndarray) -> sparse.csr_matrix:
    """Overlap lengths between two partitions of a line.

    Parameters
    ----------
    src_edges : (n + 1,) ascending source edges.
    dst_edges : (m + 1,) ascending target edges, same units.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(m, n)``; entry ``(i, j)`` is the length of ``[dst_i, dst_i+1] ∩ [src_j, src_j+1]``.
    """
    n, m = src_edges.size - 1, dst_edges.size - 1
    lo = np.clip(np.searchsorted(src_edges, dst_edges[:-1], side="right") - 1, 0, n)
    hi = np.clip(np.searchsorted(src_edges, dst_edges[1:], side="left"), 0, n)
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(m), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    cols = starts + np.arange(rows.size)
    length = np.minimum(src_edges[cols + 1], dst_edges[rows + 1]) - np.maximum(
        src_edges[cols], dst_edges[rows]
    )
    keep = length > 0
    return sparse.csr_matrix((length[keep], (rows[keep], cols[keep])), shape=(m, n))


def _lon_overlap_matrix(axis: _Axis, dst_edges: np.ndarray) -> sparse.csr_matrix:
    """Longitude overlaps in radians, summed over every 360° copy of the source.

    Parameters
    ----------
    axis : sorted source longitude axis (any convention).
    dst_edges : (m + 1,) continuous target edges (degrees).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(m, n)`` overlap lengths in radians.
    """
    first = math.floor((dst_edges[0] - axis.edges[-1]) / 360.0)
    last = math.ceil((dst_edges[-1] - axis.edges[0]) / 360.0)
    total = sparse.csr_matrix((dst_edges.size - 1, axis.centres.size))
    for shift in range(first, last + 1):
        total = total + _overlap_matrix(axis.edges + 360.0 * shift, dst_edges)
    return (total * (np.pi / 180.0)).tocsr()


def _lat_overlap_matrix(axis: _Axis, dst_edges: np.ndarray) -> sparse.csr_matrix:
    """Latitude overlaps measured in ``sin(latitude)``, ``(m, n)``."""
    return _overlap_matrix(np.sin(np.deg2rad(axis.edges)), np.sin(np.deg2rad(dst_edges)))


def _linear_matrix(centres: np.ndarray, edges: np.ndarray, points: np.ndarray) -> sparse.csr_matrix:
    """Linear interpolation weights along one non-periodic axis.

    Points between the outer centre and the outer edge take the outer value; points beyond the
    edges get no weight.

    Parameters
    ----------
    centres : (n,) ascending source centres.
    edges : (n + 1,) ascending source edges.
    points : (m,) target coordinates.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(m, n)``, at most two entries per row, rows summing to 1 or 0.
    """
    n = centres.size
    x = np.clip(points, centres[0], centres[-1])
    j = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, n - 2)
    w = (x - centres[j]) / (centres[j + 1] - centres[j])
    inside = (points >= edges[0]) & (points <= edges[-1])
    rows = np.flatnonzero(inside)
    return sparse.csr_matrix(
        (
            np.concatenate([1.0 - w[rows], w[rows]]),
            (np.tile(rows, 2), np.concatenate([j[rows], j[rows] + 1])),
        ),
        shape=(points.size, n),
    )


def _lon_linear_matrix(axis: _Axis, points: np.ndarray) -> sparse.csr_matrix:
    """Linear interpolation weights along a longitude axis, ``(m, n)``; periodic when global."""
    if not axis.periodic:
        middle = 0.5 * (axis.edges[0] + axis.edges[-1])
        return _linear_matrix(axis.centres, axis.edges, (points - middle + 180.0) % 360.0 + middle - 180.0)
    n = axis.centres.size
    centres = np.concatenate([axis.centres, [axis.centres[0] + 360.0]])
    x = (points - axis.centres[0]) % 360.0 + axis.centres[0]
    j = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, n - 1)
    w = (x - centres[j]) / (centres[j + 1] - centres[j])
    rows = np.arange(points.size)
    cols = np.concatenate([j, (j + 1) % n])
    matrix = sparse.csr_matrix(
        (np.concatenate([1.0 - w, w]), (np.tile(rows, 2), cols)), shape=(points.size, n)
    )
    matrix.sum_duplicates()
    return matrix


def _unsort_columns(matrix: sparse.csr_matrix, index: np.ndarray, size: int) -> sparse.csr_matrix:
    """Re-index the columns of a matrix built on a sorted axis back to source positions."""
    coo = matrix.tocoo()
    return sparse.csr_matrix((coo.data, (coo.row, index[coo.col])), shape=(matrix.shape[0], size))


# -- kernels: linear maps (B, ny_src, nx_src) -> (B, ny, nx) -----------------------------------
class Kernel(Protocol):
    """A linear map from source fields to target fields."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to ``x`` of shape ``(B, ny_src, nx_src)``; returns ``(B, ny, nx)``."""
        ...

    def total(self) -> np.ndarray:
        """``(ny, nx)`` image of a field of ones: each target's total weight."""
        ...


@dataclass(frozen=True)
class _SelectKernel:
    """Index selection: target ``(j, i)`` takes source ``(rows[j], cols[i])``.

    Targets whose row or column lies outside the source (``row_ok``/``col_ok`` False) are NaN,
    so a regional source on the target grid stays exact where it has data.
    """

    rows: np.ndarray
    cols: np.ndarray
    row_ok: np.ndarray
    col_ok: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Select target cells: ``(B, ny_src, nx_src) -> (B, ny, nx)``."""
        out = x[:, self.rows[:, None], self.cols[None, :]]
        if not (self.row_ok.all() and self.col_ok.all()):
            out = np.where(self.total()[None] > 0, out, np.nan)
        return out

    def total(self) -> np.ndarray:
        """``(ny, nx)``: 1 where the target lies in the source, else 0."""
        return np.outer(self.row_ok, self.col_ok).astype(np.float64)


@dataclass(frozen=True)
class _SeparableKernel:
    """``wlat @ x[rows][:, cols] @ wlon.T`` on the source rows and columns that carry weight.

    Attributes
    ----------
    rows, cols : source rows / columns used, ``(r,)`` and ``(c,)``.
    wlat : ``(ny, r)`` sparse.
    wlon : ``(nx, c)`` sparse.
    """

    rows: np.ndarray
    cols: np.ndarray
    wlat: sparse.csr_matrix
    wlon: sparse.csr_matrix

    @classmethod
    def build(cls, wlat: sparse.csr_matrix, wlon: sparse.csr_matrix) -> _SeparableKernel:
        """Drop source rows and columns without weight from full ``(ny, ny_src)``, ``(nx, nx_src)``."""
        rows = np.flatnonzero(np.diff(wlat.tocsc().indptr))
        cols = np.flatnonzero(np.diff(wlon.tocsc().indptr))
        return cls(rows, cols, wlat[:, rows].tocsr(), wlon[:, cols].tocsr())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Two sparse products: ``(B, ny_src, nx_src) -> (B, ny, nx)``."""
        batch, ny, nx = x.shape[0], self.wlat.shape[0], self.wlon.shape[0]
        sub = x[:, self.rows[:, None], self.cols[None, :]]  # (B, r, c)
        r, c = sub.shape[1:]
        y = self.wlat @ sub.transpose(1, 0, 2).reshape(r, batch * c)  # (ny, B c)
        y = y.reshape(ny, batch, c).transpose(2, 1, 0).reshape(c, batch * ny)  # (c, B ny)
        z = self.wlon @ y  # (nx, B ny)
        return z.reshape(nx, batch, ny).transpose(1, 2, 0)

    def total(self) -> np.ndarray:
        """Outer product of the row sums, ``(ny, nx)``."""
        return np.outer(np.asarray(self.wlat.sum(axis=1)).ravel(), np.asarray(self.wlon.sum(axis=1)).ravel())


@dataclass(frozen=True)
class _SparseKernel:
    """A full ``(ny nx, ny_src nx_src)`` sparse weight matrix."""

    matrix: sparse.csr_matrix
    shape: tuple[int, int]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """One sparse product: ``(B, ny_src, nx_src) -> (B, ny, nx)``."""
        batch = x.shape[0]
        y = self.matrix @ x.reshape(batch, -1).T  # (ny nx, B)
        return np.ascontiguousarray(y.T).reshape(batch, *self.shape)

    def total(self) -> np.ndarray:
        """Row sums, ``(ny, nx)``."""
        return np.asarray(self.matrix.sum(axis=1)).reshape(self.shape)


# -- regular sources --------------------------------------------------------------------------
def _regular_select(lat: _Axis, lon: _Axis, target: _Target) -> _SelectKernel | None:
    """Index-selection kernel when the source cells are the target cells, else None."""
    if not (lat.uniform and lon.uniform):
        return None
    if abs(lat.step - target.res) > COORD_TOL or abs(lon.step - target.res) > COORD_TOL:
        return None
    j = np.rint((target.lat() - lat.centres[0]) / lat.step).astype(np.int64)
    i = np.rint(((target.lon() - lon.centres[0]) % 360.0) / lon.step).astype(np.int64)
    if lon.periodic:
        i %= lon.centres.size
    j_ok = (j >= 0) & (j < lat.centres.size)
    i_ok = i < lon.centres.size
    if not (j_ok.any() and i_ok.any()):
        return None
    j, i = np.where(j_ok, j, 0), np.where(i_ok, i, 0)
    if np.any(np.abs(lat.centres[j] - target.lat())[j_ok] > COORD_TOL):
        return None
    dlon = (lon.centres[i] - target.lon() + 180.0) % 360.0 - 180.0
    if np.any(np.abs(dlon)[i_ok] > COORD_TOL):
        return None
    return _SelectKernel(lat.index[j], lon.index[i], j_ok, i_ok)


def _regular_conservative(
    lat: _Axis, lon: _Axis, target: _Target, shape: tuple[int, int]
) -> _SeparableKernel:
    """Separable exact conservative weights (areas in steradians)."""
    wlat = _unsort_columns(_lat_overlap_matrix(lat, target.lat_edges()), lat.index, shape[0])
    wlon = _unsort_columns(_lon_overlap_matrix(lon, target.lon_edges()), lon.index, shape[1])
    return _SeparableKernel.build(wlat, wlon)


def _regular_bilinear(lat: _Axis, lon: _Axis, target: _Target, shape: tuple[int, int]) -> _SeparableKernel:
    """Separable bilinear weights (rows sum to 1 inside the source)."""
    wlat = _unsort_columns(_linear_matrix(lat.centres, lat.edges, target.lat()), lat.index, shape[0])
    wlon = _unsort_columns(_lon_linear_matrix(lon, target.lon()), lon.index, shape[1])
    return _SeparableKernel.build(wlat, wlon)


def _format_step(lat: _Axis, lon: _Axis) -> str:
    """``'0.25°'`` or ``'0.1°x0.125°'`` (latitude x longitude)."""
    a, b = round(lat.step, 6), round(lon.step, 6)
    return f"{a:g}°" if a == b else f"{a:g}°x{b:g}°"


# -- curvilinear sources ----------------------------------------------------------------------
def _to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit vectors ``(..., 3)`` of points given in degrees."""
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def _normalise(xyz: np.ndarray) -> np.ndarray:
    """Scale vectors ``(..., 3)`` to unit length."""
    return xyz / np.sqrt(np.einsum("...k,...k->...", xyz, xyz))[..., None]


def _corners(xyz: np.ndarray) -> np.ndarray:
    """Cell corners ``(ny + 1, nx + 1, 3)`` from centres ``(ny, nx, 3)``.

    The centre array is padded by linear extrapolation; each corner is the normalised mean of the
    four padded centres around it.
    """
    pad = np.empty((xyz.shape[0] + 2, xyz.shape[1] + 2, 3))
    pad[1:-1, 1:-1] = xyz
    pad[0, 1:-1] = 2 * xyz[0] - xyz[1]
    pad[-1, 1:-1] = 2 * xyz[-1] - xyz[-2]
    pad[:, 0] = 2 * pad[:, 1] - pad[:, 2]
    pad[:, -1] = 2 * pad[:, -2] - pad[:, -3]
    return _normalise(0.25 * (pad[:-1, :-1] + pad[1:, :-1] + pad[:-1, 1:] + pad[1:, 1:]))


def _triangle_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Spherical excess of unit-vector triangles ``(..., 3)`` (Van Oosterom–Strackee), steradians."""
    triple = np.abs(np.einsum("...k,...k->...", a, np.cross(b, c)))
    dots = 1.0 + np.einsum("...k,...k->...", a, b) + np.einsum("...k,...k->...", b, c)
    dots += np.einsum("...k,...k->...", c, a)
    return 2.0 * np.arctan2(triple, dots)


def _cell_areas(corners: np.ndarray) -> np.ndarray:
    """Spherical areas ``(ny, nx)`` (steradians) of quadrilateral cells with corners ``(ny+1, nx+1, 3)``."""
    c00, c10, c01, c11 = corners[:-1, :-1], corners[1:, :-1], corners[:-1, 1:], corners[1:, 1:]
    return _triangle_area(c00, c10, c11) + _triangle_area(c00, c11, c01)


def _choose_subsample(areas: np.ndarray, target: _Target) -> int:
    """Sub-points per side so that sub-points are ~``SUBPOINTS_PER_TARGET`` x finer than the target."""
    src_size = math.sqrt(float(np.nanmedian(areas)))
    max_abs_lat = min(max(abs(target.south), abs(target.south + target.ny * target.res)), 89.0)
    tgt_size = math.radians(target.res) * math.cos(math.radians(max_abs_lat))
    return int(np.clip(math.ceil(SUBPOINTS_PER_TARGET * src_size / tgt_size), 2, MAX_SUBSAMPLE))


def _bin_points(lat: np.ndarray, lon: np.ndarray, target: _Target) -> np.ndarray:
    """Flat target cell index of each point (any shape; lon in −180…180), −1 outside the target."""
    j = np.floor((lat - target.south) / target.res).astype(np.int64)
    dlon = lon - target.west  # in (-360, 360.125]
    dlon += (dlon < 0) * np.float32(360.0)
    i = np.floor(dlon / target.res).astype(np.int64)
    inside = (j >= 0) & (j < target.ny) & (i < target.nx)
    return np.where(inside, j * target.nx + i, -1)


def _subpoints(corners: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of sub-points placed bilinearly between each cell's corners.

    Parameters
    ----------
    corners : (r + 1, n + 1, 3) corner vectors of ``r x n`` cells.
    k : sub-points per side.

    Returns
    -------
    lat, lon : numpy.ndarray
        ``(k*k, r, n)`` degrees; sub-point ``a*k + b`` sits at fraction ``(a + 0.5) / k`` along
        rows and ``(b + 0.5) / k`` along columns of its cell.
    """
    f = (np.arange(k) + 0.5) / k
    u, v = np.repeat(f, k), np.tile(f, k)
    coeff = np.stack([(1 - u) * (1 - v), (1 - u) * v, u * (1 - v), u * v], axis=1).astype(np.float32)
    quads = np.stack([corners[:-1, :-1], corners[:-1, 1:], corners[1:, :-1], corners[1:, 1:]])
    quads = np.moveaxis(quads, -1, 1).astype(np.float32)  # (4, 3, r, n); float32 is ~1 m here
    r, n = quads.shape[2:]
    x, y, z = (coeff @ quads.reshape(4, -1)).reshape(k * k, 3, r, n).transpose(1, 0, 2, 3)
    return np.rad2deg(np.arctan2(z, np.hypot(x, y))), np.rad2deg(np.arctan2(y, x))


def _count_runs(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count how many sub-points of each cell fall in each target.

    Parameters
    ----------
    targets : (cells, k*k) target index per sub-point (−1 outside).

    Returns
    -------
    cell, target, count : 1-D arrays, one entry per (cell, target) pair with target ≥ 0.
    """
    kk = targets.shape[1]
    ts = np.sort(targets, axis=1)
    start = np.ones(ts.shape, dtype=bool)
    start[:, 1:] = ts[:, 1:] != ts[:, :-1]
    first = np.flatnonzero(start.ravel())
    count = np.diff(np.append(first, ts.size))
    target = ts.ravel()[first]
    keep = target >= 0
    return first[keep] // kk, target[keep], count[keep]


def _crop_rows_cols(lat: np.ndarray, lon: np.ndarray, target: _Target, margin: float) -> tuple[slice, slice]:
    """Index ranges of a 2-D source whose centres lie within ``margin`` degrees of the target box."""
    lat_hi = target.south + target.ny * target.res
    cos_edge = math.cos(math.radians(min(89.0, max(abs(target.south), abs(lat_hi)) + margin)))
    lon_margin = min(margin / cos_edge, 360.0)
    dlon = (lon - target.west + lon_margin) % 360.0
    near = (lat >= target.south - margin) & (lat <= lat_hi + margin)
    near &= dlon <= target.nx * target.res + 2 * lon_margin
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _curvilinear_conservative(
    lat: np.ndarray, lon: np.ndarray, target: _Target, subsample: int | None
) -> tuple[_SparseKernel, int]:
    """Sub-sampled conservative weights for a 2-D source.

    Parameters
    ----------
    lat, lon : (ny_src, nx_src) cell centres in degrees.
    target : target level geometry.
    subsample : sub-points per side, or None to choose.

    Returns
    -------
    kernel : ``(ny nx, ny_src nx_src)`` weights in steradians.
    k : sub-points per side used.
    """
    ny_s, nx_s = lat.shape
    if ny_s < 2 or nx_s < 2:
        raise ValueError(f"a curvilinear source needs at least 2 x 2 points, got {ny_s} x {nx_s}")
    corners = _corners(_to_xyz(lat, lon))
    areas = _cell_areas(corners)
    k = subsample or _choose_subsample(areas, target)
    margin = 2.0 * math.degrees(math.sqrt(float(np.nanmax(areas))))
    rsl, csl = _crop_rows_cols(lat, lon, target, margin)
    cols_all = np.arange(nx_s)[csl]
    n_cols = cols_all.size
    rows_per_chunk = max(1, CHUNK_POINTS // max(1, n_cols * k * k))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for r0 in range(rsl.start, rsl.stop, rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, rsl.stop)
        plat, plon = _subpoints(corners[r0 : r1 + 1, csl.start : csl.stop + 1], k)
        cell, tgt, count = _count_runs(_bin_points(plat, plon, target).reshape(k * k, -1).T)
        src = (r0 + cell // n_cols) * nx_s + cols_all[cell % n_cols]
        parts.append((tgt, src, count * areas.ravel()[src] / (k * k)))
    if parts:
        tgt, src, w = (np.concatenate(p) for p in zip(*parts, strict=True))
    else:
        tgt, src, w = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    finite = np.isfinite(w)
    matrix = sparse.csr_matrix(
        (w[finite], (tgt[finite], src[finite])), shape=(target.ny * target.nx, ny_s * nx_s)
    )
    return _SparseKernel(matrix, target.shape), k


def _local_plane(xyz: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Gnomonic coordinates of vectors about points, each point the origin of its own plane.

    Parameters
    ----------
    xyz : (m, q, 3) unit vectors.
    lat, lon : (m,) plane origins in degrees.

    Returns
    -------
    numpy.ndarray
        ``(m, q, 2)`` (east, north) coordinates; NaN for vectors more than 90° away. Being local,
        the map is accurate next to each point whatever the grid, the pole or the date line.
    """
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=-1)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], axis=-1)
    depth = np.einsum("mqk,mk->mq", xyz, _to_xyz(lat, lon))
    depth = np.where(depth > 0, depth, np.nan)
    x = np.einsum("mqk,mk->mq", xyz, east) / depth
    y = np.einsum("mqk,mk->mq", xyz, north) / depth
    return np.stack([x, y], axis=-1)


def _invert_bilinear(quad: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Parameters ``(u, v)`` with ``P(u, v) = 0`` for bilinear quads, by Newton's method.

    Parameters
    ----------
    quad : (m, 4, 2) plane corners ``P00, P01, P10, P11`` (``u`` along rows, ``v`` along columns).
    iterations : Newton steps from the cell middle.

    Returns
    -------
    numpy.ndarray
        ``(m, 2)``; NaN where the quad is degenerate.
    """
    p00, p01, p10, p11 = (quad[:, c] for c in range(4))
    a, b, c = p10 - p00, p01 - p00, p11 - p10 - p01 + p00
    uv = np.full((quad.shape[0], 2), 0.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(iterations):
            u, v = uv[:, :1], uv[:, 1:]
            res = p00 + a * u + b * v + c * u * v
            du, dv = a + c * v, b + c * u  # columns of the Jacobian
            det = du[:, 0] * dv[:, 1] - du[:, 1] * dv[:, 0]
            step_u = (dv[:, 1] * res[:, 0] - dv[:, 0] * res[:, 1]) / det
            step_v = (du[:, 0] * res[:, 1] - du[:, 1] * res[:, 0]) / det
            uv = uv - np.stack([step_u, step_v], axis=1)
    return uv


def _curvilinear_bilinear(lat: np.ndarray, lon: np.ndarray, target: _Target) -> _SparseKernel:
    """Bilinear weights for a 2-D source, ``(ny nx, ny_src nx_src)``.

    Each target centre is located by its nearest source centre (KD-tree on unit vectors), then in
    one of the four source quads around it by inverting the bilinear map on the gnomonic plane
    about the target. Targets outside every quad but within ~¾ of a grid step of a border centre
    take that centre's value; the rest get no weight.
    """
    from scipy.spatial import cKDTree  # only this path needs it; it costs ~0.15 s to import

    ny_s, nx_s = lat.shape
    xyz = _to_xyz(lat, lon).reshape(-1, 3)
    finite = np.flatnonzero(np.all(np.isfinite(xyz), axis=1))
    spacing = float(np.nanmedian(np.linalg.norm(np.diff(xyz.reshape(ny_s, nx_s, 3), axis=1), axis=-1)))
    tlat, tlon = (g.ravel() for g in np.meshgrid(target.lat(), target.lon(), indexing="ij"))
    dist, near = cKDTree(xyz[finite]).query(_to_xyz(tlat, tlon))
    near = finite[np.minimum(near, finite.size - 1)]
    jn, in_ = np.divmod(near, nx_s)
    found = np.zeros(tlat.size, dtype=bool)
    rows_out, cols_out, vals_out = [], [], []
    for dj, di in ((-1, -1), (-1, 0), (0, -1), (0, 0)):
        j0, i0 = jn + dj, in_ + di
        todo = np.flatnonzero(~found & (j0 >= 0) & (j0 < ny_s - 1) & (i0 >= 0) & (i0 < nx_s - 1))
        corner = np.stack([j0[todo] * nx_s + i0[todo] + off for off in (0, 1, nx_s, nx_s + 1)], axis=1)
        uv = _invert_bilinear(_local_plane(xyz[corner], tlat[todo], tlon[todo]))
        inside = np.all((uv >= -1e-9) & (uv <= 1 + 1e-9), axis=1)
        hit, u, v = todo[inside], uv[inside, 0], uv[inside, 1]
        found[hit] = True
        rows_out.append(np.repeat(hit, 4))
        cols_out.append(corner[inside].ravel())
        vals_out.append(np.stack([(1 - u) * (1 - v), (1 - u) * v, u * (1 - v), u * v], axis=1).ravel())
    edge = np.flatnonzero(~found & (dist <= 0.75 * spacing))
    rows = np.concatenate([*rows_out, edge])
    cols = np.concatenate([*cols_out, near[edge]])
    vals = np.concatenate([*vals_out, np.ones(edge.size)])
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(target.ny * target.nx, ny_s * nx_s))
    return _SparseKernel(matrix, target.shape)


# -- the regridder ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Weights:
    """What a builder hands the :class:`Regridder`.

    Attributes
    ----------
    kernel : linear map ``(B, ny_src, nx_src) -> (B, ny, nx)``.
    norm : ``(ny, nx)`` full weight of a target (cell area in steradians, or 1 for bilinear).
    exact : True for index selection.
    description : for messages.
    """

    kernel: Kernel
    norm: np.ndarray
    exact: bool
    description: str


def _regular_weights(src: SourceGrid, target: _Target, method: Method) -> _Weights:
    """Exact, separable conservative or separable bilinear weights of a regular source."""
    lat, lon = _lat_axis(src.lat), _lon_axis(src.lon)
    shape = src.shape
    what = f"regular {_format_step(lat, lon)} ({shape[1]}x{shape[0]})"
    if method == "bilinear":
        kernel = _regular_bilinear(lat, lon, target, shape)
        return _Weights(kernel, np.ones(target.shape), False, f"bilinear from {what}")
    select = _regular_select(lat, lon, target)
    if select is not None:
        return _Weights(select, np.ones(target.shape), True, f"exact from {what}")
    kernel = _regular_conservative(lat, lon, target, shape)
    return _Weights(kernel, target.area(), False, f"conservative from {what}")


def _curvilinear_weights(src: SourceGrid, target: _Target, method: Method, subsample: int | None) -> _Weights:
    """Sub-sampled conservative or bilinear weights of a 2-D source."""
    if src.lat.shape != src.lon.shape or src.lat.ndim != 2:
        raise ValueError(f"curvilinear lat/lon must be 2-D and alike, got {src.lat.shape}, {src.lon.shape}")
    lat = np.asarray(src.lat, dtype=np.float64)
    lon = np.asarray(src.lon, dtype=np.float64)
    what = f"{src.description or 'curvilinear grid'} ({lat.shape[1]}x{lat.shape[0]})"
    if method == "bilinear":
        kernel = _curvilinear_bilinear(lat, lon, target)
        return _Weights(kernel, np.ones(target.shape), False, f"bilinear from {what}")
    kernel, k = _curvilinear_conservative(lat, lon, target, subsample)
    return _Weights(kernel, target.area(), False, f"conservative ({k}x{k} sub-sampled) from {what}")


class Regridder:
    """Weights from one source grid to one HARPNET grid level, applied to many fields.

    Build with :meth:`to_grid`; call on arrays ``(..., ny_src, nx_src)``.

    Attributes
    ----------
    exact : bool
        True when the source cells are the target cells (apply is index selection).
    coverage : numpy.ndarray
        ``(ny, nx)`` fraction of each target cell covered by source cells, in ``[0, 1]``
        (for bilinear: 1 inside the source, 0 outside). For curvilinear sources it is
        estimated from sub-points on a regular lattice, so it can be off by about one lattice
        row per side (a few % at the fine level, up to ~10 % at k = 2).
    description : str
        E.g. ``"conservative from regular 0.5° (720x361)"`` (source ``nx x ny``).
    min_coverage : float
        Targets whose valid (non-NaN) covered fraction is below this come back NaN.
    src_shape, shape : tuple of int
        ``(ny_src, nx_src)`` and ``(ny, nx)``.
    """

    def __init__(self, weights: _Weights, src_shape: tuple[int, int], min_coverage: float = 0.5) -> None:
        """Wrap built weights; use :meth:`to_grid` rather than calling this directly."""
        self._kernel = weights.kernel
        self._norm = weights.norm
        self.src_shape = src_shape
        self.shape = (int(weights.norm.shape[0]), int(weights.norm.shape[1]))
        self.exact = weights.exact
        self.description = weights.description
        self.min_coverage = min_coverage
        self._weight = weights.kernel.total()

    @classmethod
    def to_grid(
        cls,
        src: SourceGrid,
        dst: GridSpec,
        level: Level = "coarse",
        method: Method = "conservative",
        *,
        min_coverage: float = 0.5,
        subsample: int | None = None,
    ) -> Regridder:
        """Weights from ``src`` onto the coarse or fine grid of ``dst``.

        Parameters
        ----------
        src : SourceGrid
            1-D ``lat (ny_src,)``, ``lon (nx_src,)`` (regular, any order and longitude
            convention) or 2-D ``(ny_src, nx_src)`` centres (curvilinear).
        dst : GridSpec
            Target box.
        level : {"coarse", "fine"}
            Target grid: ``dst.coarse_shape`` or ``dst.fine_shape``.
        method : {"conservative", "bilinear"}
            Area-weighted means (index selection when the grids coincide) or interpolation.
        min_coverage : float
            Valid covered fraction below which a target is NaN, in ``[0, 1]``.
        subsample : int or None
            Sub-points per side of a curvilinear cell (conservative only); None picks one
            (2…8) so that sub-points are about 4 x finer than the target cells.

        Returns
        -------
        Regridder

        Raises
        ------
        ValueError
            Unknown level or method, or coordinates that do not describe a grid.
        """
        if method not in ("conservative", "bilinear"):
            raise ValueError(f"method must be 'conservative' or 'bilinear', got {method!r}")
        if not 0.0 <= min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage}")
        if subsample is not None and subsample < 1:
            raise ValueError(f"subsample must be a positive integer, got {subsample}")
        target = _Target.of(dst, level)
        if src.is_regular:
            weights = _regular_weights(src, target, method)
        else:
            weights = _curvilinear_weights(src, target, method, subsample)
        return cls(weights, src.shape, min_coverage)

    # -- use ----------------------------------------------------------------------------------
    @property
    def coverage(self) -> np.ndarray:
        """``(ny, nx)`` covered fraction of each target cell, clipped to ``[0, 1]``."""
        return np.clip(self._weight / self._norm, 0.0, 1.0)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Remap one or many fields.

        Parameters
        ----------
        data : numpy.ndarray
            ``(..., ny_src, nx_src)``; NaN marks missing values.

        Returns
        -------
        numpy.ndarray
            ``(..., ny, nx)`` float32: area-weighted (or interpolated) mean of the valid source
            values, NaN where their covered fraction is below :attr:`min_coverage`.
        """
        x = np.asarray(data)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        if x.ndim < 2 or x.shape[-2:] != self.src_shape:
            raise ValueError(f"expected data (..., {self.src_shape[0]}, {self.src_shape[1]}), got {x.shape}")
        lead = x.shape[:-2]
        x = x.reshape(-1, *self.src_shape)
        if self.exact:
            out = self._kernel(x)
        else:
            out = self._weighted_mean(x)
        return out.astype(np.float32, copy=False).reshape(*lead, *self.shape)

    def _weighted_mean(self, x: np.ndarray) -> np.ndarray:
        """``sum(w x) / sum(w)`` over valid values, NaN below the coverage threshold; ``(B, ny, nx)``."""
        missing = np.isnan(x)
        if missing.any():
            num = self._kernel(np.where(missing, 0.0, x).astype(np.float64))
            den = self._kernel((~missing).astype(np.float64))
        else:
            num = self._kernel(x.astype(np.float64, copy=False))
            den = np.broadcast_to(self._weight, num.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[(den <= 0) | (den < self.min_coverage * self._norm)] = np.nan
        return out

    def __repr__(self) -> str:
        """Short summary for logs."""
        return f"Regridder({self.description} -> {self.shape[0]}x{self.shape[1]})"


# -- small helpers ----------------------------------------------------------------------------
def block_mean(fine: np.ndarray, ratio: int = RATIO, lat: np.ndarray | None = None) -> np.ndarray:
    """Mean over ``ratio x ratio`` blocks (fine → coarse).

    Parameters
    ----------
    fine : numpy.ndarray
        ``(..., ratio ny, ratio nx)``.
    ratio : int
        Block size.
    lat : numpy.ndarray or None
        ``(ratio ny,)`` fine cell-centre latitudes; when given, rows are weighted by
        ``cos(lat)`` — the exact area weights of equal-height lat/lon cells — which makes this
        equal to conservative remapping of the fine grid onto the coarse one.

    Returns
    -------
    numpy.ndarray
        ``(..., ny, nx)``; NaN in a block gives NaN.
    """
    fine = np.asarray(fine)
    *lead, fy, fx = fine.shape
    if fy % ratio or fx % ratio:
        raise ValueError(f"shape {fine.shape[-2:]} is not a multiple of {ratio}")
    blocks = fine.reshape(*lead, fy // ratio, ratio, fx // ratio, ratio)
    if lat is None:
        return blocks.mean(axis=(-3, -1))
    w = np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64))).reshape(fy // ratio, ratio)
    w = w / w.sum(axis=1, keepdims=True)
    return np.einsum("...jrks,jr->...jk", blocks, w) / ratio


def upsample_nearest(coarse: np.ndarray, ratio: int = RATIO) -> np.ndarray:
    """Repeat each cell into a ``ratio x ratio`` block (coarse → fine).

    Parameters
    ----------
    coarse : numpy.ndarray
        ``(..., ny, nx)``.
    ratio : int
        Block size.

    Returns
    -------
    numpy.ndarray
        ``(..., ratio ny, ratio nx)``, same dtype.
    """
    return np.repeat(np.repeat(np.asarray(coarse), ratio, axis=-2), ratio, axis=-1)


def conserve_blocks(fine: np.ndarray, coarse: np.ndarray, ratio: int = RATIO, eps: float = 0.0) -> np.ndarray:
    """Rescale every ``ratio x ratio`` block of ``fine`` so its mean equals its coarse cell.

    Multiplicative where the block mean exceeds ``eps`` (the pattern and its zeros are kept);
    where the block is (nearly) dry under a wet coarse cell, the block gets the coarse value
    uniformly. Used after stitching (blending overlapping tiles with weights that vary inside a
    coarse cell breaks each tile's conservation by about 1e-3) and by the mass-conserving baselines.

    Parameters
    ----------
    fine : numpy.ndarray
        ``(..., ratio ny, ratio nx)`` non-negative fine field.
    coarse : numpy.ndarray
        ``(..., ny, nx)`` non-negative coarse amounts (same leading axes).
    ratio : int
        Fine cells per coarse cell along one axis.
    eps : float
        Block means at or below this count as dry.

    Returns
    -------
    numpy.ndarray
        Same shape as ``fine``, float32 (or ``fine``'s floating dtype), with exact block means.
    """
    *lead, ny, nx = coarse.shape
    if fine.shape != (*lead, ny * ratio, nx * ratio):
        raise ValueError(f"fine {fine.shape} does not nest in coarse {coarse.shape} with ratio {ratio}")
    blocks = fine.reshape(*lead, ny, ratio, nx, ratio).astype(np.float64)
    mean = blocks.mean(axis=(-3, -1), keepdims=True)
    c = coarse.astype(np.float64)[..., :, None, :, None]
    wet = mean > eps
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(wet, blocks * (c / np.where(wet, mean, 1.0)), np.broadcast_to(c, blocks.shape))
    dtype = fine.dtype if np.issubdtype(fine.dtype, np.floating) else np.float32
    return out.reshape(fine.shape).astype(dtype)
