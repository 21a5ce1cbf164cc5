"""Stand-in models and random checkpoints for tests (no training, no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from harpnet_cli.core.model.config import DEFAULT_PRESET
from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
from harpnet_cli.io.checkpoints import save_checkpoint


def make_random_checkpoint(
    path: str | Path, preset: str = DEFAULT_PRESET, seed: int = 0, **config_overrides: Any
) -> Path:
    """Write a checkpoint of a :class:`Downscaler` with random (untrained) weights.

    The BatchNorm running statistics and the (otherwise zero-initialised) last layer are perturbed
    too, so ``eval()`` outputs are not trivially those of a freshly initialised network.

    Parameters
    ----------
    path : str or Path
        Destination file.
    preset : str
        Model preset.
    seed : int
        Seed of the weights; equal seeds give equal weights.
    **config_overrides
        Further :class:`ModelConfig` fields (e.g. ``channels=[4, 8], bridge=16``).

    Returns
    -------
    Path
        ``path``.
    """
    config = ModelConfig(preset=preset, **config_overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Downscaler(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                shape = module.running_mean.shape
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(1.0 + 0.1 * torch.rand(shape, generator=generator))
        head = model.net.head
        head.weight.copy_(0.3 * torch.randn(head.weight.shape, generator=generator))
    return save_checkpoint(path, model.eval(), epoch=0, note="random weights for tests", seed=seed)


def make_random_ensemble(path: str | Path, members: int = 2, first_seed: int = 0, **config_overrides: Any) -> Path:
    """Write a HARPNET-E ensemble of random checkpoints (:func:`make_random_checkpoint`).

    Member ``i`` has seed ``first_seed + i`` and epoch ``i + 1``; each is also left as
    ``m{i}.pt`` beside ``path``.

    Parameters
    ----------
    path : str or Path
        Destination of the ensemble file.
    members : int
        How many members.
    first_seed : int
        Seed of the first member.
    **config_overrides
        As for :func:`make_random_checkpoint`.

    Returns
    -------
    Path
        ``path``.
    """
    from harpnet_cli.io.ensembles import save_ensemble

    path = Path(path)
    entries = []
    for i in range(members):
        checkpoint = make_random_checkpoint(path.parent / f"m{i}.pt", seed=first_seed + i, **config_overrides)
        payload = torch.load(checkpoint, weights_only=True)
        entries.append({"epoch": i + 1, "config": payload["config"], "model": payload["model"], "test_loss": None})
    return save_ensemble(path, entries)


class IdentityDownscaler(nn.Module):
    """Spoof downscaler: each fine cell gets the amount of its coarse cell (nearest upsampling).

    Same call signature as :class:`Downscaler`, for testing patching and stitching: a stitched
    output must equal the coarse field repeated 4×4.

    Parameters
    ----------
    config : ModelConfig, optional
        Supplies ``tile``, ``buffer`` and ``ratio`` (defaults 64, 1, 4).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig()

    def forward(self, coarse: Tensor, static: Tensor | None = None) -> Tensor:
        """Nearest-upsample the centre of the precipitation channel.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, 18, 18)
            Channel 0 is precipitation.
        static : Tensor or None, shape (B, Cs, 64, 64)
            Ignored.

        Returns
        -------
        Tensor, shape (B, 1, 64, 64)
        """
        b, r = self.config.buffer, self.config.ratio
        n = coarse.shape[-1]
        centre = coarse[:, :1, b : n - b, b : n - b]
        return centre.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1)


def random_tile_inputs(config: ModelConfig, batch: int, seed: int = 0,
                       terrain_max: float = 2000.0) -> tuple[Tensor, Tensor]:
    """Rain-like coarse tiles (mostly light, some heavy: ``10 u**3`` mm) and random terrain.

    Parameters
    ----------
    config : ModelConfig
        Gives the channels and the tile and coarse sizes.
    batch : int
        Samples.
    seed : int
        Seed of the generator (the global torch RNG is not touched).
    terrain_max : float
        Terrain is uniform in ``[0, terrain_max)`` metres.

    Returns
    -------
    (coarse, static) tensors of shapes ``(batch, Cc, n, n)`` and ``(batch, Cs, tile, tile)``
    """
    g = torch.Generator().manual_seed(seed)
    n = config.coarse_size
    coarse = 10 * torch.rand(batch, len(config.coarse_inputs), n, n, generator=g) ** 3
    static = terrain_max * torch.rand(batch, len(config.static_inputs), config.tile, config.tile, generator=g)
    return coarse, static


def tile_flops(model: Downscaler) -> int:
    """Convolution and matmul FLOPs of one tile through ``model`` (a multiply-add counts as 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    coarse, static = random_tile_inputs(model.config, 1)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(coarse, static)
    return int(counter.get_total_flops())
