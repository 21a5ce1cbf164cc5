"""Static ratio downscaling from an *external* fine climatology (e.g. a PRISM normal).

The store's own ``ratio`` baseline (:class:`~harpnet_cli.core.baselines.RatioClimatology`)
learns ``mean(fine) / bilinear(mean(coarse))`` per tile from the training split. Here the fine
climatology comes from elsewhere instead, on any regular or curvilinear source grid:

1. remap it conservatively onto the fine 0.0625° grid of the store's domain grown by one coarse
   cell on every side (the tiles' 18 x 18 coarse inputs reach one cell past the domain);
2. its coarse climatology is the area-weighted (cos-latitude) mean of the *valid* fine cells of
   each 4 x 4 block; blocks without any are filled from the nearest valid coarse cell, so the
   interpolation next to a coast or the edge of the source stays defined;
3. both are cut into tiles at the store's tile origins (the same edge padding as
   :class:`~harpnet_cli.core.tiling.Patcher` for domains smaller than a tile) and handed to
   :meth:`RatioClimatology.fit` with a count of 1 per tile, so the ratio is exactly the
   ``ratio`` baseline's: ``fine / bilinear(coarse)``, 1 where either is at or below ``eps`` or
   the fine climatology is missing (no data in the source: ocean, outside its domain), capped by
   ``max_ratio``.

Units cancel in the ratio except through ``eps``; give the climatology in mm per 3 h (a daily
normal divided by 8) so that ``eps`` means what it does for the store's ratio baseline.
Pure numpy/scipy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from harpnet_cli.core.baselines import BUFFER, COARSE_TILE, FINE_TILE, RATIO_EPS, RatioClimatology
from harpnet_cli.core.remap import Regridder, block_mean
from harpnet_cli.fields import SourceGrid
from harpnet_cli.grids import COARSE_RES, RATIO, GridSpec


def valid_block_mean(fine: np.ndarray, lat: np.ndarray | None = None, ratio: int = RATIO) -> np.ndarray:
    """Area-weighted mean of the non-NaN fine cells of each ``ratio x ratio`` block.

    Parameters
    ----------
    fine : numpy.ndarray
        ``(ratio ny, ratio nx)`` field; NaN = missing.
    lat : numpy.ndarray or None
        ``(ratio ny,)`` fine cell-centre latitudes for cos-latitude weights (None: equal weights).
    ratio : int
        Block size.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64; NaN where a block has no valid cell. Equals
        :func:`~harpnet_cli.core.remap.block_mean` where the block is complete.
    """
    f = np.asarray(fine, dtype=np.float64)
    ok = np.isfinite(f)
    num = block_mean(np.where(ok, f, 0.0), ratio, lat=lat)
    den = block_mean(ok.astype(np.float64), ratio, lat=lat)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def fill_nearest(field: np.ndarray) -> np.ndarray:
    """Replace NaN cells by the value of the nearest valid cell (in index space).

    Parameters
    ----------
    field : numpy.ndarray
        ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` without NaN; all zeros when no cell is valid.
    """
    a = np.asarray(field, dtype=np.float64)
    bad = ~np.isfinite(a)
    if not bad.any():
        return a.copy()
    if bad.all():
        return np.zeros_like(a)
    _, (iy, ix) = ndimage.distance_transform_edt(bad, return_distances=True, return_indices=True)
    return a[iy, ix]


def _offset(spec: GridSpec, padded: GridSpec) -> tuple[int, int]:
    """Coarse cells between the padded grid's (south, west) corner and the domain's."""
    return (round((spec.lat0 - padded.lat0) / COARSE_RES), round((spec.lon0 - padded.lon0) % 360 / COARSE_RES))


def _ring(coarse_padded: np.ndarray, spec: GridSpec, offset: tuple[int, int]) -> np.ndarray:
    """The domain's coarse field with one buffer cell per side, ``(ny + 2, nx + 2)``.

    Where the padded grid lacks a side (the poles, round the globe) the buffer repeats the edge,
    as in ``harpnet prepare``.
    """
    oy, ox = offset
    ny, nx = spec.coarse_shape
    ring = coarse_padded[max(oy - BUFFER, 0) : oy + ny + BUFFER, max(ox - BUFFER, 0) : ox + nx + BUFFER]
    if ring.shape == (ny + 2 * BUFFER, nx + 2 * BUFFER):
        return ring
    return np.pad(coarse_padded[oy : oy + ny, ox : ox + nx], BUFFER, mode="edge")


def _edge_pad(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Edge-pad ``a`` at the end so it has at least ``rows x cols`` cells."""
    need = (max(rows - a.shape[0], 0), max(cols - a.shape[1], 0))
    return np.pad(a, ((0, need[0]), (0, need[1])), mode="edge") if any(need) else a


def cut_tiles(fine: np.ndarray, ring: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fine and coarse tiles of domain fields at the store's tile origins.

    Parameters
    ----------
    fine : numpy.ndarray
        ``(4 ny, 4 nx)`` fine field on the domain.
    ring : numpy.ndarray
        ``(ny + 2, nx + 2)`` coarse field with its one-cell buffer ring.
    origins : numpy.ndarray
        ``(T, 2)`` int ``(y0, x0)`` fine offsets of the tiles, multiples of 4.

    Returns
    -------
    fine_tiles : numpy.ndarray
        ``(T, 64, 64)``.
    coarse_tiles : numpy.ndarray
        ``(T, 18, 18)``; tile ``t`` covers coarse rows ``y0 / 4 .. y0 / 4 + 17`` of ``ring``.
    """
    org = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    if len(org) and (org % RATIO).any():
        raise ValueError(f"tile origins must be multiples of {RATIO}")
    top = org.max(axis=0) if len(org) else np.zeros(2, dtype=np.int64)
    f = _edge_pad(fine, int(top[0]) + FINE_TILE, int(top[1]) + FINE_TILE)
    c = _edge_pad(ring, int(top[0]) // RATIO + COARSE_TILE, int(top[1]) // RATIO + COARSE_TILE)
    ft = np.stack([f[y : y + FINE_TILE, x : x + FINE_TILE] for y, x in org]) if len(org) else \
        np.zeros((0, FINE_TILE, FINE_TILE))
    ct = np.stack([c[y // RATIO : y // RATIO + COARSE_TILE, x // RATIO : x // RATIO + COARSE_TILE]
                   for y, x in org]) if len(org) else np.zeros((0, COARSE_TILE, COARSE_TILE))
    return ft, ct


def tile_climatology(
    fine_padded: np.ndarray, spec: GridSpec, origins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile fine and coarse climatologies from a fine field on the padded domain.

    Parameters
    ----------
    fine_padded : numpy.ndarray
        ``spec.padded(1).fine_shape`` fine climatology, NaN where unknown.
    spec : GridSpec
        The store's domain.
    origins : numpy.ndarray
        ``(T, 2)`` tile origins on the domain's fine grid.

    Returns
    -------
    fine_tiles : numpy.ndarray
        ``(T, 64, 64)``, NaN kept.
    coarse_tiles : numpy.ndarray
        ``(T, 18, 18)`` without NaN (see the module docstring, step 2).
    """
    padded = spec.padded(1)
    if fine_padded.shape != padded.fine_shape:
        raise ValueError(f"fine_padded must be {padded.fine_shape}, got {fine_padded.shape}")
    oy, ox = _offset(spec, padded)
    h, w = spec.fine_shape
    fine = fine_padded[oy * RATIO : oy * RATIO + h, ox * RATIO : ox * RATIO + w]
    coarse = fill_nearest(valid_block_mean(fine_padded, padded.fine_lat()))
    return cut_tiles(fine, _ring(coarse, spec, (oy, ox)), origins)


def external_ratio(
    grid: SourceGrid,
    data: np.ndarray,
    spec: GridSpec,
    origins: np.ndarray,
    *,
    eps: float = RATIO_EPS,
    max_ratio: float | None = None,
    min_coverage: float = 0.5,
) -> tuple[RatioClimatology, float]:
    """Static per-tile ratios from an external fine climatology (see the module docstring).

    Parameters
    ----------
    grid : SourceGrid
        Where ``data`` lies (e.g. PRISM's regular 2.5′ grid).
    data : numpy.ndarray
        ``(ny_src, nx_src)`` climatology, mm per 3 h; NaN = no data.
    spec : GridSpec
        The store's domain.
    origins : numpy.ndarray
        ``(T, 2)`` the store's tile origins (``tile_origin``); tile ids index them.
    eps, max_ratio
        As in :class:`RatioClimatology`.
    min_coverage : float
        Fine cells less covered than this by valid source cells have no climatology (ratio 1).

    Returns
    -------
    ratio : RatioClimatology
        Apply with ``ratio.apply(tile_ids, coarse)``.
    coverage : float
        Fraction of the tiles' fine cells that have a climatology value (ratio from data).
    """
    padded = spec.padded(1)
    regrid = Regridder.to_grid(grid, padded, "fine", "conservative", min_coverage=min_coverage)
    fine_tiles, coarse_tiles = tile_climatology(regrid(np.asarray(data, dtype=np.float64)), spec, origins)
    coverage = float(np.isfinite(fine_tiles).mean()) if fine_tiles.size else 0.0
    counts = np.ones(len(fine_tiles), dtype=np.int64)
    return RatioClimatology.fit(fine_tiles, coarse_tiles, counts, eps=eps, max_ratio=max_ratio), coverage
