"""The attention-gated residual U-Net and its named size presets (architecture only).

The network maps ``(B, C_in, H, W)`` to ``(B, C_out, H, W)`` for ``H`` and ``W`` divisible by
``2 ** len(channels)``. Units, normalisation and the mass constraint live in
:mod:`harpnet_cli.core.model.wrapper`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from harpnet_cli.core.model.blocks import ResidualBlock, UpBlock
from harpnet_cli.core.model.config import DEFAULT_PRESET, PRESETS, NormKind  # the sizes live without torch


def decoder_dropout(levels: int, bottom: float, top: float) -> list[float]:
    """Dropout rate per decoder level, falling linearly from the deepest level to the finest.

    Parameters
    ----------
    levels : int
        Number of decoder levels ``L``.
    bottom, top : float
        Rates at the deepest and the finest level.

    Returns
    -------
    list of float, length L
        Ordered deepest first, e.g. ``[0.5, 0.3667, 0.2333, 0.1]`` for 4 levels.
    """
    if levels == 1:
        return [bottom]
    return [bottom + (top - bottom) * k / (levels - 1) for k in range(levels)]


class AttentionResUNet(nn.Module):
    """U-Net with residual blocks, max-pool encoder and attention-gated transposed-conv decoder.

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in``.
    out_channels : int
        Output channels ``C_out``.
    channels : sequence of int
        Encoder channels per level, finest first; ``len(channels)`` levels, each followed by a
        2×2 max pool.
    bridge : int
        Channels of the bridge (the residual block at the coarsest resolution).
    dropout_bottom, dropout_top : float
        Decoder dropout at the deepest and finest level (linear in between).
    norm : {"batch", "group"}
        Normalisation layer of every residual block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        channels: Sequence[int] = PRESETS[DEFAULT_PRESET]["channels"],
        bridge: int = PRESETS[DEFAULT_PRESET]["bridge"],
        dropout_bottom: float = 0.5,
        dropout_top: float = 0.1,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("the U-Net needs at least one level")
        self.channels = tuple(int(c) for c in channels)
        self.encoder = nn.ModuleList()
        prev = in_channels
        for ch in self.channels:
            self.encoder.append(ResidualBlock(prev, ch, norm))
            prev = ch
        self.bridge = ResidualBlock(prev, bridge, norm)
        rates = decoder_dropout(len(self.channels), dropout_bottom, dropout_top)
        self.decoder = nn.ModuleList()
        prev = bridge
        for ch, rate in zip(reversed(self.channels), rates, strict=True):
            self.decoder.append(UpBlock(prev, ch, ch, rate, norm))
            prev = ch
        self.head = nn.Conv2d(prev, out_channels, 1)

    @property
    def downsampling(self) -> int:
        """Total downsampling factor ``2 ** levels``; ``H`` and ``W`` must be multiples of it."""
        return 2 ** len(self.channels)

    def features(self, x: Tensor) -> Tensor:
        """The last decoder level's features, before the 1x1 head.

        Parameters
        ----------
        x : Tensor, shape (B, C_in, H, W)
            ``H`` and ``W`` multiples of :attr:`downsampling`.

        Returns
        -------
        Tensor, shape (B, channels[0], H, W)
        """
        skips: list[Tensor] = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bridge(x)
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            x = up(x, skip)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Run the network.

        Parameters
        ----------
        x : Tensor, shape (B, C_in, H, W)
            ``H`` and ``W`` multiples of :attr:`downsampling`.

        Returns
        -------
        Tensor, shape (B, C_out, H, W)
            Unbounded real values (the wrapper maps them to intensities).
        """
        return self.head(self.features(x))
