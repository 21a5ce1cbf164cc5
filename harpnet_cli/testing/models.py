"""Stand-in models and random checkpoints for tests (no training, no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from harpnet_cli.core.model.unet import DEFAULT_PRESET
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
