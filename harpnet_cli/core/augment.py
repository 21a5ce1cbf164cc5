"""Training-time augmentation: the eight symmetries of the square tile (the dihedral group D4).

A tile's coarse patch (18 x 18, one buffer cell each side), its fine target and its terrain
(64 x 64) are nested exactly: fine cell ``j`` lies in coarse cell ``1 + j // 4``. Flipping or
transposing all three about the tile centre keeps that nesting (``63 - j`` lies in coarse cell
``1 + (63 - j) // 4 = 17 - (1 + j // 4)``), so every transformed sample is again a consistent
coarse/fine pair over a (mirrored) landscape: eight times the terrain-precipitation examples
from the same hours. Rows run south to north and columns west to east (the grid's order), so a
column flip turns eastward wind ``u`` round, a row flip northward wind ``v``, and a transpose
swaps them; wind channels given as ``vectors`` are turned with the field.

Codes ``0..7``: bit 0 transposes, bit 1 flips rows, bit 2 flips columns (applied in that order);
code 0 is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: Number of distinct transforms.
N_TRANSFORMS = 8


def draw_codes(n: int, seed: Sequence[int] | int) -> np.ndarray:
    """``n`` transform codes drawn uniformly from ``0..7`` by a generator seeded with ``seed``."""
    return np.random.default_rng(seed).integers(0, N_TRANSFORMS, size=n)


def transform(x: Tensor, code: int) -> Tensor:
    """Apply transform ``code`` to the last two (row, column) axes of ``x``."""
    if code & 1:
        x = x.transpose(-1, -2)
    if code & 2:
        x = x.flip(-2)
    if code & 4:
        x = x.flip(-1)
    return x


def _turn_vectors(coarse: Tensor, code: int, vectors: Sequence[tuple[int, int]]) -> Tensor:
    """Turn the (eastward, northward) channel pairs of ``coarse`` (already moved) by ``code``."""
    if not vectors:
        return coarse
    out = coarse.clone()
    for iu, iv in vectors:
        u, v = coarse[:, iu], coarse[:, iv]
        if code & 1:
            u, v = v, u
        if code & 2:
            v = -v
        if code & 4:
            u = -u
        out[:, iu], out[:, iv] = u, v
    return out


def augment_batch(
    coarse: Tensor,
    static: Tensor,
    target: Tensor,
    codes: np.ndarray,
    vectors: Sequence[tuple[int, int]] = (),
) -> tuple[Tensor, Tensor, Tensor]:
    """Transform each sample of a batch by its own code.

    Parameters
    ----------
    coarse : Tensor, shape (B, Cc, 18, 18)
    static : Tensor, shape (B, Cs, 64, 64)
    target : Tensor, shape (B, 1, 64, 64)
    codes : (B,) array of int in 0..7
    vectors : sequence of (int, int)
        Coarse channels holding the (eastward, northward) components of a vector, e.g. wind.

    Returns
    -------
    coarse, static, target : Tensor
        New tensors of the same shapes.
    """
    codes = np.asarray(codes)
    if codes.shape != (coarse.shape[0],):
        raise ValueError(f"{codes.shape[0] if codes.ndim else 'scalar'} codes for a batch of {coarse.shape[0]}")
    outs = [torch.empty_like(t) for t in (coarse, static, target)]
    for code in np.unique(codes):
        rows = torch.from_numpy(np.flatnonzero(codes == code))
        c = _turn_vectors(transform(coarse[rows], int(code)), int(code), vectors)
        outs[0][rows] = c
        outs[1][rows] = transform(static[rows], int(code))
        outs[2][rows] = transform(target[rows], int(code))
    return outs[0], outs[1], outs[2]
