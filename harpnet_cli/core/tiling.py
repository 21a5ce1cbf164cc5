"""Cut a domain into overlapping model tiles and blend the tiles back without seams.

The **patcher** cuts 64 x 64 fine tiles (0.0625°) and, for each, the 16 x 16 coarse cells
(0.25°) under it plus a buffer of one coarse cell on every side (18 x 18), and the matching
static fine fields (terrain). Tile offsets are multiples of the nesting ratio, so every tile is
aligned with whole coarse cells. Domains smaller than one tile are padded by edge replication. A
domain that goes round the globe is **periodic** in longitude: tiles wrap past the last column to
the first, so the date line is blended like any other tile edge.

The **stitcher** blends overlapping tile outputs with smooth weights: a raised-cosine taper over
the overlap on every side that has a neighbour, flat elsewhere, so weights are positive
everywhere, sum to one after normalisation, and a field that is the same in every tile comes back
exactly.

The model is fully convolutional, so tiles larger than the 64 it was trained on run the same
weights with less of the work spent on overlaps; :func:`choose_tile` picks the size for a domain.

Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
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


def periodic_tile_starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    """Evenly spaced tile starts round a periodic axis (a latitude circle).

    Parameters
    ----------
    length : int
        Circumference in fine pixels (a multiple of ``align``, at least ``tile``).
    tile, overlap, align : int
        As for :func:`tile_starts`.

    Returns
    -------
    list of int
        Increasing starts in ``[0, length)``; tile ``k`` covers ``[s_k, s_k + tile)`` modulo
        ``length`` and overlaps both neighbours (the last wraps onto the first) by at least
        ``overlap - align`` pixels.
    """
    if length < tile:
        raise ValueError(f"periodic axis of {length} pixels is shorter than one tile ({tile})")
    n = math.ceil(length / (tile - overlap))
    starts = [int(round(k * length / n / align)) * align for k in range(n)]
    return sorted({s % length for s in starts})


def choose_tile(fine_shape: tuple[int, int], *, native: int, multiple: int, ratio: int = 4, periodic: bool = False,
                largest: int = 512, overlap: int = 32, native_overlap: int = 16) -> tuple[int, int]:
    """The square inference tile that computes the fewest pixels over a domain.

    Overlaps are computed twice, so small tiles on a large domain spend much of their work on them
    (64-pixel tiles overlapping by 16 compute 1.8 times the pixels of CONUS). The model is fully
    convolutional; measured with the bundled model on the real GFS f006, the tiles chosen change the
    6-hour output by 0.004 mm on average over CONUS and 0.0045 mm over the globe (field means 0.82
    and 0.64 mm), within the ~0.01 mm accepted for bfloat16, so any size from ``native`` to
    ``largest`` is allowed.

    Parameters
    ----------
    fine_shape : (int, int)
        ``(H, W)`` fine pixels of the domain.
    native : int
        The model's own tile (64): chosen when nothing larger saves work.
    multiple : int
        Tile sizes are multiples of this (the model's total downsampling and the nesting ratio).
    ratio : int
        Tile starts are multiples of this (the nesting ratio, as in :class:`Patcher`).
    periodic : bool
        The domain wraps in longitude (see :class:`Patcher`).
    largest : int
        Largest tile (bounds the memory of one model call).
    overlap, native_overlap : int
        Overlap of larger tiles and of ``native`` ones.

    Returns
    -------
    tile, overlap : int
    """
    h, w = fine_shape

    def cost(tile: int, ov: int) -> float:
        ny = len(tile_starts(max(h, tile), tile, ov, ratio))
        if periodic and w >= tile:
            nx = len(periodic_tile_starts(w, tile, ov, ratio))
        else:
            nx = len(tile_starts(max(w, tile), tile, ov, ratio))
        return ny * nx * (tile * tile + native * native)  # pixels, plus a fixed cost per tile

    best = (cost(native, native_overlap), native, native_overlap)
    step = max(multiple, 32)
    for tile in range(native + step - native % step, largest + 1, step):
        if tile % multiple or tile <= overlap:
            continue
        candidate = (cost(tile, overlap), tile, overlap)
        if candidate[0] < best[0]:
            best = candidate
    return best[1], best[2]


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


def wrap_columns(a: np.ndarray, cells: int) -> np.ndarray:
    """Pad the last axis of a periodic field with its own other edge (``cells`` columns each side).

    Parameters
    ----------
    a : numpy.ndarray
        ``(..., ny, nx)`` field round a latitude circle.
    cells : int
        Columns to add on each side.

    Returns
    -------
    numpy.ndarray
        ``(..., ny, nx + 2 cells)``: the last ``cells`` columns, ``a``, the first ``cells``.
    """
    if cells == 0:
        return a
    return np.concatenate([a[..., -cells:], a, a[..., :cells]], axis=-1)


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
    periodic : bool
        The domain goes round a latitude circle: its last column neighbours its first. Tiles
        then wrap (a tile starting near the east edge continues at the west edge), every tile
        tapers toward both sides, and the coarse input's buffer columns must be the wrapped
        neighbours (see :meth:`cut_coarse`).
    """

    coarse_shape: tuple[int, int]
    tile: int = 64
    ratio: int = 4
    buffer: int = 1
    overlap: int = 16
    periodic: bool = False
    tiles: list[Tile] = field(init=False)

    def __post_init__(self) -> None:
        if self.tile % self.ratio:
            raise ValueError(f"tile {self.tile} is not a multiple of the ratio {self.ratio}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be in [0, {self.tile})")
        ys = tile_starts(self.work_shape[0], self.tile, self.overlap, self.ratio)
        if self.periodic:
            xs = periodic_tile_starts(self.work_shape[1], self.tile, self.overlap, self.ratio)
        else:
            xs = tile_starts(self.work_shape[1], self.tile, self.overlap, self.ratio)
        self.tiles = [Tile(y, x) for y in ys for x in xs]
        self._wrap = self.periodic and len(xs) > 1

    # -- shapes -----------------------------------------------------------------------------
    @property
    def fine_shape(self) -> tuple[int, int]:
        """``(H, W)`` fine pixels of the domain."""
        return (self.coarse_shape[0] * self.ratio, self.coarse_shape[1] * self.ratio)

    @property
    def work_shape(self) -> tuple[int, int]:
        """Fine shape after padding the domain up to at least one tile (never along a periodic axis)."""
        h, w = self.fine_shape
        if self.periodic:
            if w < self.tile:
                raise ValueError(f"periodic domain of {w} pixels is narrower than one tile ({self.tile})")
            return (max(h, self.tile), w)
        return (max(h, self.tile), max(w, self.tile))

    @property
    def coarse_tile(self) -> int:
        """Coarse input size of one tile including the buffer (18)."""
        return self.tile // self.ratio + 2 * self.buffer

    def __len__(self) -> int:
        return len(self.tiles)

    # -- cutting ----------------------------------------------------------------------------
    def _pad_to_work(self, a: np.ndarray, scale: int, extra: int) -> np.ndarray:
        """Edge-pad the last two axes so the domain part reaches ``work_shape``; wrap a periodic
        axis by one more tile (``extra`` is the buffer on both sides, in units of ``scale``)."""
        need_y = self.work_shape[0] // scale + extra - a.shape[-2]
        need_x = self.work_shape[1] // scale + extra - a.shape[-1]
        if need_y > 0 or (need_x > 0 and not self.periodic):
            pad = [(0, 0)] * (a.ndim - 2) + [(0, max(need_y, 0)), (0, 0 if self.periodic else max(need_x, 0))]
            a = np.pad(a, pad, mode="edge")
        if self.periodic:
            # columns past the east edge continue at the west edge: padded column nx + 2b + q is
            # domain column q + b, i.e. padded column 2b + q (b = extra / 2 buffer columns)
            a = np.concatenate([a, a[..., extra : extra + self.tile // scale]], axis=-1)
        return a

    def cut_coarse(self, coarse: np.ndarray) -> np.ndarray:
        """Coarse inputs of every tile.

        Parameters
        ----------
        coarse : numpy.ndarray
            ``(C, ny + 2b, nx + 2b)``: the domain's coarse fields with ``buffer`` cells on every
            side (fill them by edge replication where the source has no data; for a periodic
            domain the side columns are the other edge's columns).

        Returns
        -------
        numpy.ndarray
            ``(N, C, tile/ratio + 2b, tile/ratio + 2b)``, one per tile, in ``self.tiles`` order.
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
        return self.fine_cutter(fine)(slice(0, len(self.tiles)))

    def fine_cutter(self, fine: np.ndarray) -> Callable[[slice], np.ndarray]:
        """Cut fine fields a batch of tiles at a time: the field is padded once, and only the
        tiles asked for are copied (a stochastic model's noise over the globe does not fit twice).

        Parameters
        ----------
        fine : numpy.ndarray
            ``(C, H, W)`` fine fields over the domain (no buffer).

        Returns
        -------
        callable
            ``cut(tiles)``: ``(n, C, tile, tile)`` for the slice ``tiles`` of ``self.tiles``.
        """
        if fine.ndim != 3 or fine.shape[-2:] != self.fine_shape:
            raise ValueError(f"fine input must be (C, {self.fine_shape[0]}, {self.fine_shape[1]}), got {fine.shape}")
        padded = self._pad_to_work(fine, 1, 0)
        t = self.tile

        def cut(tiles: slice) -> np.ndarray:
            chosen = self.tiles[tiles]
            out = np.empty((len(chosen), padded.shape[0], t, t), dtype=padded.dtype)
            for k, tl in enumerate(chosen):
                out[k] = padded[:, tl.y0 : tl.y0 + t, tl.x0 : tl.x0 + t]
            return out

        return cut

    def batches(self, batch_size: int) -> Iterator[slice]:
        """Slices of tile indices, ``batch_size`` at a time."""
        for s in range(0, len(self.tiles), batch_size):
            yield slice(s, min(s + batch_size, len(self.tiles)))

    def weight(self, k: int) -> np.ndarray:
        """Blend weight of tile ``k``, ``(tile, tile)`` float64, tapered only toward neighbours."""
        t = self.tiles[k]
        h, w = self.work_shape
        wy = taper(self.tile, self.overlap, left=t.y0 > 0, right=t.y0 + self.tile < h)
        if self._wrap:
            wx = taper(self.tile, self.overlap, left=True, right=True)
        else:
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
        if patcher.periodic:
            w += patcher.tile  # a wrapping tile is added past the east edge, folded back in result()
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
        total, weight = self._sum, self._wsum
        if self.patcher.periodic:  # fold what wrapped past the east edge back onto the west
            total, weight = total[..., :w].copy(), weight[..., :w].copy()
            tail = self._sum.shape[-1] - w
            total[..., :tail] += self._sum[..., w:]
            weight[..., :tail] += self._wsum[..., w:]
        out = total[:, :h, :w] / weight[:h, :w]
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
