"""Run a downscaling model over a whole domain: cut tiles, batch them, stitch the outputs.

The model is a torch module, or any :class:`TileModel` (an object with a numpy ``predict``, such
as :class:`harpnet_cli.core.model.onnx.GraphModel`), so the ONNX Runtime path never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from harpnet_cli.core.tiling import Patcher, Stitcher

if TYPE_CHECKING:
    import torch


@runtime_checkable
class TileModel(Protocol):
    """A tile model that takes and returns numpy arrays (no torch)."""

    def predict(self, coarse: np.ndarray, static: np.ndarray) -> np.ndarray:
        """``(B, Cc, n, n)`` and ``(B, Cs, t, t)`` float32 to ``(B, 1, t, t)`` or ``(M, B, 1, t, t)``."""
        ...


def downscale_domain(
    model: torch.nn.Module | TileModel,
    coarse: np.ndarray,
    static: np.ndarray,
    patcher: Patcher,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Downscale one field over a domain with one model.

    Parameters
    ----------
    model : torch.nn.Module or TileModel
        Maps ``coarse (B, Cc, 18, 18)`` and ``static (B, Cs, 64, 64)`` to ``(B, 1, 64, 64)``,
        in eval mode (a :class:`TileModel` runs on numpy arrays; ``device`` is then unused).
    coarse : numpy.ndarray
        ``(Cc, ny + 2b, nx + 2b)`` finite coarse inputs with the buffer ring.
    static : numpy.ndarray
        ``(Cs, 4 ny, 4 nx)`` finite static fine inputs.
    patcher : Patcher
        Tile layout of the domain.
    batch_size : int
        Tiles per model call.
    device : torch.device or str
        Where the model runs.
    advance : callable, optional
        Called with the number of tiles finished after each batch (progress).

    Returns
    -------
    numpy.ndarray
        ``(4 ny, 4 nx)`` float32 stitched output.
    """
    return _run_tiles(model, 1, coarse, static, patcher, batch_size, device, advance)[0]


def downscale_domain_members(
    ensemble: torch.nn.Module | TileModel,
    n_members: int,
    coarse: np.ndarray,
    static: np.ndarray,
    patcher: Patcher,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Downscale one field with every member of an ensemble; tiles are cut and moved once.

    Parameters
    ----------
    ensemble : torch.nn.Module or TileModel
        Maps the inputs of :func:`downscale_domain` to ``(M, B, 1, 64, 64)`` (an
        :class:`~harpnet_cli.core.model.ensemble.EnsembleDownscaler`, a stochastic model given
        noise, or either exported), in eval mode.
    n_members : int
        ``M``.
    coarse, static, patcher, batch_size, device, advance
        As for :func:`downscale_domain` (each model call runs all members).

    Returns
    -------
    numpy.ndarray
        ``(M, 4 ny, 4 nx)`` float32, member ``i`` at index ``i``, blended like one model.
    """
    return _run_tiles(ensemble, n_members, coarse, static, patcher, batch_size, device, advance)


def _run_tiles(model: torch.nn.Module | TileModel, channels: int, coarse: np.ndarray, static: np.ndarray,
               patcher: Patcher, batch_size: int, device: torch.device | str,
               advance: Callable[[int], None] | None) -> np.ndarray:
    """Cut, run in batches and stitch; ``(channels, 4 ny, 4 nx)``. A 5-D model output
    ``(M, B, 1, 64, 64)`` is read as ``M`` channels."""
    coarse_tiles = patcher.cut_coarse(coarse.astype(np.float32, copy=False))
    static_tiles = patcher.fine_cutter(static.astype(np.float32, copy=False))  # cut a batch at a time
    stitcher = Stitcher(patcher, channels=channels)
    predict = model.predict if isinstance(model, TileModel) else _torch_predict(model, device)
    for sl in patcher.batches(batch_size):
        out = predict(coarse_tiles[sl], static_tiles(sl))
        if out.ndim == 5:
            out = out[:, :, 0].swapaxes(0, 1)  # (M, B, 1, H, W) -> (B, M, H, W)
        stitcher.add(sl, out)
        if advance is not None:
            advance(out.shape[0])
    return stitcher.result()


def _torch_predict(model: torch.nn.Module,
                   device: torch.device | str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A torch module as a numpy tile model on ``device`` (no gradients; float32 out)."""
    import torch

    def predict(coarse: np.ndarray, static: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(coarse).to(device), torch.from_numpy(static).to(device))
            return out.float().cpu().numpy()

    return predict
