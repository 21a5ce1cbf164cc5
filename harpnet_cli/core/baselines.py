"""Reference downscalers that a trained HARPNET must beat: interpolation and static ratios.

All functions are pure numpy/scipy and batched over tiles. A tile is ``64 x 64`` fine cells
(0.0625°) under ``16 x 16`` coarse cells (0.25°); its coarse input is ``18 x 18``: the 16 x 16
cells plus a ring of :data:`BUFFER` = 1 cell used only as interpolation context. Precipitation
is in mm per 3 h throughout; ``(n, 1, H, W)`` arrays (the training store's channel axis) are
accepted wherever ``(n, H, W)`` is, and the output drops the channel axis.

Geometry
--------
Values are cell-centred. Fine cell centre ``i`` (0-based, inside the tile) lies at coarse
coordinate ``(i + 0.5) / 4 - 0.5 + BUFFER``, i.e. ``0.625 ... 16.375`` on the 18-cell axis, so
every fine centre has coarse neighbours on both sides and no extrapolation is needed. This is
what ``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)`` followed
by a crop of ``BUFFER * 4`` fine cells does (the model wrapper's skip input).

Methods
-------
* :func:`bilinear` — separable linear interpolation (the seed's baseline).
* :func:`bicubic` — separable cubic interpolation: the cubic B-spline of ``scipy.ndimage``
  (order 3, mirror boundary; default) or Keys cubic convolution (``kernel="keys"``).
* :class:`RatioClimatology` — static ratio downscaling (the operational method the seed argues
  against, as in PRISM/"climatologically aided interpolation"): per tile a fixed multiplicative
  pattern ``ratio = mean(fine) / bilinear(mean(coarse))`` learned on the training split, applied
  as ``bilinear(coarse) * ratio``.

Both interpolators clip the result at 0. With ``mass_conserving=True`` every method rescales
each 4 x 4 block so that its mean equals the coarse cell above it (:func:`conserve_block_mass`).
NaN in a coarse tile makes the whole fine tile NaN (the interpolation is a dense linear map).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import ndimage

from harpnet_cli.core.remap import conserve_blocks
from harpnet_cli.grids import RATIO

#: Fine cells per tile side.
FINE_TILE = 64
#: Coarse buffer ring (cells) around the tile's 16 x 16 coarse cells.
BUFFER = 1
#: Coarse cells per tile side, buffer included.
COARSE_TILE = FINE_TILE // RATIO + 2 * BUFFER
#: Climatological mean (mm per 3 h) below which a tile's ratio is 1 (no information).
RATIO_EPS = 1e-2


def _as_tiles(x: np.ndarray, size: int, name: str) -> np.ndarray:
    """``(n, size, size)`` float view of ``x`` given as ``(n, size, size)`` or ``(n, 1, size, size)``."""
    a = np.asarray(x)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3 or a.shape[-2:] != (size, size):
        raise ValueError(f"{name} must be (n, {size}, {size}) or (n, 1, {size}, {size}), got {np.shape(x)}")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a


def fine_to_coarse_coordinate(n_fine: int = FINE_TILE, ratio: int = RATIO, buffer: int = BUFFER) -> np.ndarray:
    """Coarse-axis coordinate of each fine cell centre.

    Parameters
    ----------
    n_fine : int
        Fine cells along the axis.
    ratio : int
        Fine cells per coarse cell.
    buffer : int
        Coarse buffer cells before the first fine cell's coarse cell.

    Returns
    -------
    numpy.ndarray
        ``(n_fine,)`` float64: ``(i + 0.5) / ratio - 0.5 + buffer``.
    """
    return (np.arange(n_fine) + 0.5) / ratio - 0.5 + buffer


def _keys_matrix(coords: np.ndarray, n_coarse: int) -> np.ndarray:
    """``(len(coords), n_coarse)`` Keys (1981) cubic convolution weights, ``a = -0.5``.

    Outside the grid the ghost values are Keys' quadratic extrapolation
    ``x[-1] = 3 x[0] - 3 x[1] + x[2]`` (and mirrored at the end), so quadratics are reproduced
    exactly everywhere.
    """

    def kernel(s: np.ndarray) -> np.ndarray:
        s = np.abs(s)
        return np.where(s <= 1, 1.5 * s**3 - 2.5 * s**2 + 1, np.where(s < 2, -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2, 0.0))

    # ghost rows as combinations of real cells: index -1 and n
    ext = np.zeros((n_coarse + 2, n_coarse))
    ext[1:-1] = np.eye(n_coarse)
    ext[0, :3] = (3, -3, 1)
    ext[-1, -3:] = (1, -3, 3)
    base = np.floor(coords).astype(np.int64)
    w = np.zeros((len(coords), n_coarse + 2))
    for off in (-1, 0, 1, 2):
        j = base + off
        if (j < -1).any() or (j > n_coarse).any():
            raise ValueError("fine centres too close to the edge for cubic convolution")
        w[np.arange(len(coords)), j + 1] += kernel(coords - j)
    return w @ ext


@lru_cache(maxsize=8)
def _interp_matrix(order: int, n_coarse: int, n_fine: int, ratio: int, buffer: int) -> np.ndarray:
    """``(n_fine, n_coarse)`` 1-D interpolation matrix (read-only).

    ``order`` 1 and 3 are scipy splines (mirror boundary), ``-3`` Keys cubic convolution.
    Interpolation on a tensor grid is separable, so a 2-D tile is ``W @ X @ W.T``; column
    ``k`` is the interpolant of the unit vector ``e_k``.
    """
    coords = fine_to_coarse_coordinate(n_fine, ratio, buffer)
    if order == -3:
        w = _keys_matrix(coords, n_coarse)
        w.setflags(write=False)
        return w
    eye = np.eye(n_coarse)
    w = np.stack(
        [ndimage.map_coordinates(eye[k], coords[None, :], order=order, mode="mirror") for k in range(n_coarse)],
        axis=1,
    )
    w.setflags(write=False)
    return w


def _interpolate(coarse: np.ndarray, order: int, clip: bool) -> np.ndarray:
    """Separable spline interpolation of ``(n, 18, 18)`` tiles to ``(n, 64, 64)``."""
    c = _as_tiles(coarse, COARSE_TILE, "coarse")
    w = _interp_matrix(order, COARSE_TILE, FINE_TILE, RATIO, BUFFER).astype(c.dtype)
    out = np.einsum("ik,nkl,jl->nij", w, c, w, optimize=True)
    return np.maximum(out, 0.0) if clip else out


def conserve_block_mass(fine: np.ndarray, coarse: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Rescale each ``4 x 4`` block so that its mean equals the coarse cell above it.

    Multiplicative where the block mean exceeds ``eps`` (keeps the pattern and zeros); where
    the block is (nearly) dry but the coarse cell is not, the block is set to the coarse value.

    Parameters
    ----------
    fine : numpy.ndarray
        ``(n, 64, 64)`` non-negative fine field, mm per 3 h.
    coarse : numpy.ndarray
        ``(n, 18, 18)`` coarse tile with its buffer ring, mm per 3 h.
    eps : float
        Block means at or below this are treated as dry.

    Returns
    -------
    numpy.ndarray
        ``(n, 64, 64)`` with ``block_mean(out) == coarse[:, 1:-1, 1:-1]``.
    """
    f = _as_tiles(fine, FINE_TILE, "fine")
    c = _as_tiles(coarse, COARSE_TILE, "coarse")[:, BUFFER:-BUFFER, BUFFER:-BUFFER]
    return conserve_blocks(f, c, RATIO, eps=eps)


def bilinear(coarse: np.ndarray, mass_conserving: bool = False) -> np.ndarray:
    """Bilinear interpolation of cell-centred coarse tiles to fine cell centres.

    Parameters
    ----------
    coarse : numpy.ndarray
        ``(n, 18, 18)`` (or ``(n, 1, 18, 18)``) coarse precipitation with its buffer ring, mm per 3 h.
    mass_conserving : bool
        Rescale each 4 x 4 block to its coarse value (:func:`conserve_block_mass`).

    Returns
    -------
    numpy.ndarray
        ``(n, 64, 64)``, clipped at 0, dtype of ``coarse`` (float64 for integers).
    """
    out = _interpolate(coarse, 1, clip=True)
    return conserve_block_mass(out, coarse) if mass_conserving else out


def bicubic(
    coarse: np.ndarray, mass_conserving: bool = False, kernel: Literal["bspline", "keys"] = "bspline"
) -> np.ndarray:
    """Cubic interpolation of cell-centred coarse tiles to fine cell centres.

    ``kernel="bspline"`` equals, tile by tile, ``scipy.ndimage.map_coordinates(tile, coords,
    order=3, mode="mirror")`` at the coordinates of :func:`fine_to_coarse_coordinate`: a global
    interpolating spline whose mirror boundary costs accuracy within ~2 coarse cells of the
    18 x 18 edge (i.e. in the outer fine ring of the tile). ``kernel="keys"`` is the local
    4-tap cubic convolution of Keys (1981, ``a = -0.5``, "Catmull-Rom") with Keys' quadratic
    boundary extrapolation: it reproduces quadratics exactly. Both overshoot near sharp
    gradients; negative values are clipped to 0.

    Parameters
    ----------
    coarse : numpy.ndarray
        ``(n, 18, 18)`` (or ``(n, 1, 18, 18)``) coarse precipitation with its buffer ring, mm per 3 h.
    mass_conserving : bool
        Rescale each 4 x 4 block to its coarse value (:func:`conserve_block_mass`).
    kernel : {"bspline", "keys"}
        Cubic B-spline (scipy) or Keys cubic convolution.

    Returns
    -------
    numpy.ndarray
        ``(n, 64, 64)``, clipped at 0.
    """
    if kernel not in ("bspline", "keys"):
        raise ValueError(f"kernel must be 'bspline' or 'keys', got {kernel!r}")
    out = _interpolate(coarse, 3 if kernel == "bspline" else -3, clip=True)
    return conserve_block_mass(out, coarse) if mass_conserving else out


class RatioClimatology:
    """Static per-tile ratio downscaling: ``bilinear(coarse) * ratio[tile]``.

    ``ratio[t] = mean_t(fine) / bilinear(mean_t(coarse))`` over the samples of tile ``t`` in the
    training split (bilinear interpolation is linear, so this equals the ratio of the fine
    climatology to the mean interpolated coarse field). Where either climatology is at or
    below ``eps`` mm per 3 h the ratio is 1 (no information); tiles never seen have ratio 1.
    ``max_ratio`` optionally caps the ratios.

    Build it from streamed batches with :meth:`add` (memory: two float64 sums per tile,
    ``T x (64 x 64 + 18 x 18)``) or at once with :meth:`fit` from precomputed sums.

    Parameters
    ----------
    n_tiles : int
        Number of tiles ``T``; tile ids are ``0 .. T-1``.
    eps : float
        Dry-climatology floor, mm per 3 h.
    max_ratio : float or None
        Upper cap on the ratios (None: no cap).
    """

    def __init__(self, n_tiles: int, eps: float = RATIO_EPS, max_ratio: float | None = None) -> None:
        if n_tiles < 1:
            raise ValueError(f"n_tiles must be positive, got {n_tiles}")
        self.n_tiles = int(n_tiles)
        self.eps = float(eps)
        self.max_ratio = max_ratio
        self.fine_sum = np.zeros((self.n_tiles, FINE_TILE, FINE_TILE))
        self.coarse_sum = np.zeros((self.n_tiles, COARSE_TILE, COARSE_TILE))
        self.counts = np.zeros(self.n_tiles, dtype=np.int64)
        self._ratios: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        fine_sum: np.ndarray,
        coarse_sum: np.ndarray,
        counts: np.ndarray,
        eps: float = RATIO_EPS,
        max_ratio: float | None = None,
    ) -> RatioClimatology:
        """Build from per-tile sums over the training split.

        Parameters
        ----------
        fine_sum : numpy.ndarray
            ``(T, 64, 64)`` sum of the fine fields of each tile, mm per 3 h.
        coarse_sum : numpy.ndarray
            ``(T, 18, 18)`` sum of the coarse tiles, mm per 3 h.
        counts : numpy.ndarray
            ``(T,)`` number of samples summed per tile.
        eps, max_ratio
            As in the class.

        Returns
        -------
        RatioClimatology
        """
        fs = _as_tiles(fine_sum, FINE_TILE, "fine_sum")
        cs = _as_tiles(coarse_sum, COARSE_TILE, "coarse_sum")
        cnt = np.asarray(counts).reshape(-1)
        if not (fs.shape[0] == cs.shape[0] == cnt.shape[0]):
            raise ValueError("fine_sum, coarse_sum and counts must have the same number of tiles")
        out = cls(fs.shape[0], eps=eps, max_ratio=max_ratio)
        out.fine_sum[:] = fs
        out.coarse_sum[:] = cs
        out.counts[:] = cnt
        return out

    def add(self, tile_ids: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> None:
        """Accumulate one batch of training samples.

        Parameters
        ----------
        tile_ids : numpy.ndarray
            ``(n,)`` int tile ids in ``[0, T)``.
        fine : numpy.ndarray
            ``(n, 64, 64)`` (or ``(n, 1, 64, 64)``) fine truth, mm per 3 h.
        coarse : numpy.ndarray
            ``(n, 18, 18)`` (or ``(n, 1, 18, 18)``) coarse input, mm per 3 h.
        """
        ids = np.asarray(tile_ids).reshape(-1).astype(np.int64)
        f = _as_tiles(fine, FINE_TILE, "fine")
        c = _as_tiles(coarse, COARSE_TILE, "coarse")
        if not (len(ids) == f.shape[0] == c.shape[0]):
            raise ValueError("tile_ids, fine and coarse must have the same length")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n_tiles):
            raise IndexError(f"tile ids must lie in [0, {self.n_tiles})")
        uniq, inv = np.unique(ids, return_inverse=True)
        onehot = np.zeros((len(uniq), len(ids)))
        onehot[inv, np.arange(len(ids))] = 1.0
        self.fine_sum[uniq] += (onehot @ f.reshape(len(ids), -1).astype(np.float64)).reshape(-1, FINE_TILE, FINE_TILE)
        self.coarse_sum[uniq] += (onehot @ c.reshape(len(ids), -1).astype(np.float64)).reshape(
            -1, COARSE_TILE, COARSE_TILE
        )
        self.counts[uniq] += np.bincount(inv, minlength=len(uniq))
        self._ratios = None

    def ratios(self) -> np.ndarray:
        """Per-tile ratio fields.

        Returns
        -------
        numpy.ndarray
            ``(T, 64, 64)`` float64, non-negative; 1 for unseen tiles and dry climatologies.
        """
        if self._ratios is None:
            seen = self.counts > 0
            n = np.maximum(self.counts, 1)[:, None, None]
            fine_clim = self.fine_sum / n
            interp = _interpolate(self.coarse_sum / n, 1, clip=True)
            ok = seen[:, None, None] & (interp > self.eps) & (fine_clim > self.eps)
            r = np.ones_like(fine_clim)
            np.divide(fine_clim, interp, out=r, where=ok)
            if self.max_ratio is not None:
                r = np.minimum(r, self.max_ratio)
            r.setflags(write=False)
            self._ratios = r
        return self._ratios

    def apply(self, tile_ids: np.ndarray, coarse: np.ndarray, mass_conserving: bool = False) -> np.ndarray:
        """Downscale coarse tiles with the static ratios of their tiles.

        Parameters
        ----------
        tile_ids : numpy.ndarray
            ``(n,)`` int tile ids in ``[0, T)``.
        coarse : numpy.ndarray
            ``(n, 18, 18)`` (or ``(n, 1, 18, 18)``) coarse input, mm per 3 h.
        mass_conserving : bool
            Rescale each 4 x 4 block to its coarse value afterwards; the ratios then only
            redistribute precipitation inside each coarse cell.

        Returns
        -------
        numpy.ndarray
            ``(n, 64, 64)`` ``bilinear(coarse) * ratio[tile_ids]``.
        """
        ids = np.asarray(tile_ids).reshape(-1).astype(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n_tiles):
            raise IndexError(f"tile ids must lie in [0, {self.n_tiles})")
        base = bilinear(coarse)
        if base.shape[0] != len(ids):
            raise ValueError("tile_ids and coarse must have the same length")
        out = base * self.ratios()[ids].astype(base.dtype)
        return conserve_block_mass(out, coarse) if mass_conserving else out
