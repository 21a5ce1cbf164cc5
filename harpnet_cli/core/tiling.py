"""Cut a domain into overlapping model tiles and blend the tiles back without seams.

The **patcher** cuts 64 x 64 fine tiles (0.0625°) and, for each, the 16 x 16 coarse cells
(0.25°) under it plus a buffer of one coarse cell on every side (18 x 18), and the matching
static fine fields (terrain). Tile offsets are multiples of the nesting ratio, so every tile is
aligned with whole coarse cells. Domains smaller than one tile are padded by edge replication.

The **stitcher** blends overlapping tile outputs with smooth weights: a raised-cosine taper over
the overlap on every side that has a neighbour, flat elsewhere, so weights are positive
everywhere, sum to one after normalisation, and a field that is the same in every tile comes back
exactly.

Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


def tile_starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    """Evenly spaced tile starts covering ``[0, length)``.

    Parameters
    ----------
    length : int
        Axis length in fine pixels (``>= tile`` and a multiple of ``align``).
    tile : int
        Tile size in fine pixels.
    overlap : int
        Minimum overlap wanted between neighbouring tiles (before alignment).
    align : int
        Starts are multiples of this (the nesting ratio).

    Returns
    -------
    list of int
        Increasing starts; the first is 0 and the last is ``length - tile``.
    """
    if length < tile:
        raise ValueError(f"axis of {length} pixels is shorter than one tile ({tile})")
    if length == tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    starts = [int(round(p / align)) * align for p in np.linspace(0, length - tile, n)]
    return sorted(set(starts))


def taper(tile: int, ramp: int, left: bool, right: bool) -> np.ndarray:
    """1-D blend weight of one tile: raised-cosine ramps on the sides that overlap a neighbour.

    Parameters
    ----------
    tile : int
        Tile length in pixels.
    ramp : int
        Ramp length in pixels (the nominal overlap).
    left, right : bool
        Whether to taper the start and the end.

    Returns
    -------
    numpy.ndarray
        ``(tile,)`` float64 weights in ``(0, 1]``.
    """
    w = np.ones(tile)
    if ramp > 0:
        x = (np.arange(ramp) + 0.5) / ramp  # (0, 1), never exactly 0
        up = np.sin(0.5 * np.pi * x) ** 2
        if left:
            w[:ramp] = np.minimum(w[:ramp], up)
        if right:
            w[tile - ramp :] = np.minimum(w[tile - ramp :], up[::-1])
    return w


@dataclass(frozen=True)
class Tile:
    """One tile: its fine-pixel offset ``(y0, x0)`` in the (padded) domain."""

    y0: int
    x0: int


@dataclass
class Patcher:
    """Tile layout over a coarse domain of ``coarse_shape`` cells.

    Parameters
    ----------
    coarse_shape : tuple of int
        ``(ny, nx)`` coarse cells of the domain (without buffer).
    tile : int
        Fine tile size (64).
    ratio : int
        Fine cells per coarse cell along one axis (4).
    buffer : int
        Coarse buffer cells on every side of a tile's coarse input (1 → 18 x 18).
    overlap : int
        Nominal overlap of neighbouring tiles in fine pixels (also the blend ramp).
    """

    coarse_shape: tuple[int, int]
    tile: int = 64
    ratio: int = 4
    buffer: int = 1
    overlap: int = 16
    tiles: list[Tile] = field(init=False)

    def __post_init__(self) -> None:
        if self.tile % self.ratio:
            raise ValueError(f"tile {self.tile} is not a multiple of the ratio {self.ratio}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be in [0, {self.tile})")
        ys = tile_starts(self.work_shape[0], self.tile, self.overlap, self.ratio)
        xs = tile_starts(self.work_shape[1], self.tile, self.overlap, self.ratio)
        self.tiles = [Tile(y, x) for y in ys for x in xs]

    # -- shapes -----------------------------------------------------------------------------
    @property
    def fine_shape(self) -> tuple[int, int]:
        """``(H, W)`` fine pixels of the domain."""
        return (self.coarse_shape[0] * self.ratio, self.coarse_shape[1] * self.ratio)

    @property
    def work_shape(self) -> tuple[int, int]:
        """Fine shape after padding the domain up to at least one tile."""
        h, w = self.fine_shape
        return (max(h, self.tile), max(w, self.tile))

    @property
    def coarse_tile(self) -> int:
        """Coarse input size of one tile including the buffer (18)."""
        return self.tile // self.ratio + 2 * self.buffer

    def __len__(self) -> int:
        return len(self.tiles)

    # -- cutting ----------------------------------------------------------------------------
    def _pad_to_work(self, a: np.ndarray, scale: int, extra: int) -> np.ndarray:
        """Edge-pad the last two axes so the domain part reaches ``work_shape``."""
        need_y = self.work_shape[0] // scale + extra - a.shape[-2]
        need_x = self.work_shape[1] // scale + extra - a.shape[-1]
        if need_y <= 0 and need_x <= 0:
            return a
        pad = [(0, 0)] * (a.ndim - 2) + [(0, max(need_y, 0)), (0, max(need_x, 0))]
        return np.pad(a, pad, mode="edge")

    def cut_coarse(self, coarse: np.ndarray) -> np.ndarray:
        """Coarse inputs of every tile.

        Parameters
        ----------
        coarse : numpy.ndarray
            ``(C, ny + 2b, nx + 2b)``: the domain's coarse fields with ``buffer`` cells on every
            side (fill them by edge replication where the source has no data).

        Returns
        -------
        numpy.ndarray
            ``(N, C, 16 + 2b, 16 + 2b)``, one per tile, in ``self.tiles`` order.
        """
        ny, nx = self.coarse_shape
        b = self.buffer
        if coarse.ndim != 3 or coarse.shape[-2:] != (ny + 2 * b, nx + 2 * b):
            raise ValueError(f"coarse input must be (C, {ny + 2 * b}, {nx + 2 * b}), got {coarse.shape}")
        coarse = self._pad_to_work(coarse, self.ratio, 2 * b)
        n = self.coarse_tile
        out = np.empty((len(self.tiles), coarse.shape[0], n, n), dtype=coarse.dtype)
        for k, t in enumerate(self.tiles):
            j, i = t.y0 // self.ratio, t.x0 // self.ratio
            out[k] = coarse[:, j : j + n, i : i + n]
        return out

    def cut_fine(self, fine: np.ndarray) -> np.ndarray:
        """Fine (static) fields of every tile.

        Parameters
        ----------
        fine : numpy.ndarray
            ``(C, H, W)`` fine fields over the domain (no buffer).

        Returns
        -------
        numpy.ndarray
            ``(N, C, tile, tile)``.
        """
        if fine.ndim != 3 or fine.shape[-2:] != self.fine_shape:
            raise ValueError(f"fine input must be (C, {self.fine_shape[0]}, {self.fine_shape[1]}), got {fine.shape}")
        fine = self._pad_to_work(fine, 1, 0)
        t = self.tile
        out = np.empty((len(self.tiles), fine.shape[0], t, t), dtype=fine.dtype)
        for k, tl in enumerate(self.tiles):
            out[k] = fine[:, tl.y0 : tl.y0 + t, tl.x0 : tl.x0 + t]
        return out

    def batches(self, batch_size: int) -> Iterator[slice]:
        """Slices of tile indices, ``batch_size`` at a time."""
        for s in range(0, len(self.tiles), batch_size):
            yield slice(s, min(s + batch_size, len(self.tiles)))

    def weight(self, k: int) -> np.ndarray:
        """Blend weight of tile ``k``, ``(tile, tile)`` float64, tapered only toward neighbours."""
        t = self.tiles[k]
        h, w = self.work_shape
        wy = taper(self.tile, self.overlap, left=t.y0 > 0, right=t.y0 + self.tile < h)
        wx = taper(self.tile, self.overlap, left=t.x0 > 0, right=t.x0 + self.tile < w)
        return np.outer(wy, wx)


class Stitcher:
    """Accumulate weighted tile outputs and normalise them into one field.

    Parameters
    ----------
    patcher : Patcher
        The layout the tiles were cut with.
    channels : int
        Channels per tile output.
    """

    def __init__(self, patcher: Patcher, channels: int = 1) -> None:
        self.patcher = patcher
        h, w = patcher.work_shape
        self._sum = np.zeros((channels, h, w))
        self._wsum = np.zeros((h, w))
        self._seen = np.zeros(len(patcher), dtype=bool)

    def add(self, index: slice | range | list[int], tiles: np.ndarray) -> None:
        """Add the outputs of some tiles.

        Parameters
        ----------
        index : slice or sequence of int
            Tile indices (as yielded by :meth:`Patcher.batches`).
        tiles : numpy.ndarray
            ``(n, C, tile, tile)`` outputs of those tiles.
        """
        ids = range(len(self.patcher))[index] if isinstance(index, slice) else index
        if len(ids) != tiles.shape[0]:
            raise ValueError(f"{len(ids)} tile indices for {tiles.shape[0]} tiles")
        t = self.patcher.tile
        for k, out in zip(ids, tiles, strict=True):
            tl = self.patcher.tiles[k]
            wk = self.patcher.weight(k)
            self._sum[:, tl.y0 : tl.y0 + t, tl.x0 : tl.x0 + t] += out * wk
            self._wsum[tl.y0 : tl.y0 + t, tl.x0 : tl.x0 + t] += wk
            self._seen[k] = True

    def result(self) -> np.ndarray:
        """The blended field over the domain.

        Returns
        -------
        numpy.ndarray
            ``(C, H, W)`` float32, cropped to the domain.

        Raises
        ------
        RuntimeError
            If some tiles were never added.
        """
        if not self._seen.all():
            missing = int((~self._seen).sum())
            raise RuntimeError(f"{missing} of {len(self.patcher)} tiles were never added")
        h, w = self.patcher.fine_shape
        out = self._sum[:, :h, :w] / self._wsum[:h, :w]
        return out.astype(np.float32)


def seam_statistic(field: np.ndarray, patcher: Patcher) -> dict[str, float]:
    """How much a stitched field jumps across tile edges compared with elsewhere.

    Tile edges always fall on coarse-cell boundaries, where a downscaled field may legitimately
    jump more than inside a coarse cell (each 4 x 4 block carries its own coarse amount). So the
    reference is the same kind of pixel pair: the mean absolute difference across coarse-cell
    boundaries that are *not* tile edges. A seamless field gives a ratio close to 1.

    Parameters
    ----------
    field : numpy.ndarray
        ``(H, W)`` stitched field.
    patcher : Patcher
        The layout it was made with.

    Returns
    -------
    dict
        ``edge_jump`` (across tile edges), ``interior_jump`` (across other coarse-cell
        boundaries), both mean absolute neighbour differences, and ``ratio``.
    """
    h, w = field.shape
    dy = np.abs(np.diff(field, axis=0))  # (H-1, W): row r+1 minus row r
    dx = np.abs(np.diff(field, axis=1))

    def boundaries(starts: set[int], n: int) -> tuple[list[int], list[int]]:
        edges = {s + e for s in starts for e in (0, patcher.tile)}
        on_edge = sorted(b - 1 for b in edges if 0 < b < n)
        other = [b - 1 for b in range(patcher.ratio, n, patcher.ratio) if b not in edges]
        return on_edge, other

    rows_edge, rows_other = boundaries({t.y0 for t in patcher.tiles}, h)
    cols_edge, cols_other = boundaries({t.x0 for t in patcher.tiles}, w)

    def mean(rows: list[int], cols: list[int]) -> float:
        vals = np.concatenate([dy[rows].ravel(), dx[:, cols].ravel()])
        return float(np.nanmean(vals)) if vals.size else float("nan")

    edge, interior = mean(rows_edge, cols_edge), mean(rows_other, cols_other)
    ratio = edge / interior if interior > 0 else 1.0
    return {"edge_jump": edge, "interior_jump": interior, "ratio": ratio}
