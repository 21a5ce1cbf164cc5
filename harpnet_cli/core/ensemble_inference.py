"""Run every member of an ensemble over a domain in one pass: one model call per tile batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from harpnet_cli.core.tiling import Patcher, Stitcher

if TYPE_CHECKING:
    import torch


def downscale_domain_members(
    ensemble: torch.nn.Module,
    n_members: int,
    coarse: np.ndarray,
    static: np.ndarray,
    patcher: Patcher,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Downscale one field with every member; tiles are cut and moved to the device once.

    Parameters
    ----------
    ensemble : torch.nn.Module
        Maps ``coarse (B, Cc, 18, 18)`` and ``static (B, Cs, 64, 64)`` to ``(M, B, 1, 64, 64)``
        (an :class:`~harpnet_cli.core.model.ensemble.EnsembleDownscaler`), in eval mode.
    n_members : int
        ``M``.
    coarse : numpy.ndarray
        ``(Cc, ny + 2b, nx + 2b)`` finite coarse inputs with the buffer ring.
    static : numpy.ndarray
        ``(Cs, 4 ny, 4 nx)`` finite static fine inputs.
    patcher : Patcher
        Tile layout of the domain.
    batch_size : int
        Tiles per model call (each call runs all members).
    device : torch.device or str
        Where the ensemble runs.
    advance : callable, optional
        Called with the number of tiles finished after each batch (progress).

    Returns
    -------
    numpy.ndarray
        ``(M, 4 ny, 4 nx)`` float32, member ``i`` at index ``i``, blended exactly as
        :func:`~harpnet_cli.core.inference.downscale_domain` blends one model.
    """
    import torch

    coarse_tiles = patcher.cut_coarse(coarse.astype(np.float32, copy=False))
    static_tiles = patcher.cut_fine(static.astype(np.float32, copy=False))
    stitcher = Stitcher(patcher, channels=n_members)
    with torch.inference_mode():
        for sl in patcher.batches(batch_size):
            c = torch.from_numpy(coarse_tiles[sl]).to(device)
            s = torch.from_numpy(static_tiles[sl]).to(device)
            out = ensemble(c, s)[:, :, 0].transpose(0, 1).float().cpu().numpy()  # (B, M, 64, 64)
            stitcher.add(sl, out)
            if advance is not None:
                advance(out.shape[0])
    return stitcher.result()
