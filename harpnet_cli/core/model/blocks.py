"""Layers of the attention-gated residual U-Net: residual block, attention gate, up block.

Architecture only: no normalisation statistics, no checkpoints, no units (see
:mod:`harpnet_cli.core.model.wrapper`). All tensors are ``(B, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from harpnet_cli.core.model.config import NormKind

#: Largest number of groups GroupNorm uses (fewer when the channel count does not divide).
_MAX_GROUPS = 8


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """A normalisation layer that does not depend on the batch size at inference.

    Parameters
    ----------
    kind : {"batch", "group"}
        ``"batch"``: :class:`torch.nn.BatchNorm2d` (running statistics in ``eval()``, so it folds
        into the preceding convolution). ``"group"``: :class:`torch.nn.GroupNorm` with up to 8
        groups (per-sample statistics; for training with very small batches).
    channels : int
        Number of channels ``C`` normalised.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, C, H, W)`` to ``(B, C, H, W)``.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in range(min(_MAX_GROUPS, channels), 0, -1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {kind!r}; use 'batch' or 'group'")


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with normalisation and ReLU, plus a shortcut.

    ``y = relu(norm(conv3(relu(norm(conv3(x))))) + shortcut(x))`` where the shortcut is the
    identity when the channel count is unchanged and a 1×1 convolution with normalisation
    otherwise (He et al. 2016, projection shortcut).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels ``C_in`` of the input and ``C_out`` of the output.
    norm : {"batch", "group"}
        Normalisation layer, see :func:`make_norm`.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_channels)
        self.shortcut: nn.Module
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), make_norm(norm, out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Parameters
        ----------
        x : Tensor, shape (B, C_in, H, W)

        Returns
        -------
        Tensor, shape (B, C_out, H, W)
        """
        y = F.relu(self.norm1(self.conv1(x)), inplace=True)
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al. 2018, Attention U-Net).

    The skip features ``x`` (fine level, ``H × W``) are projected with a 2×2 stride-2 convolution
    to the resolution of the gating signal ``g`` (the coarser decoder level, ``H/2 × W/2``);
    ``g`` is projected with a 1×1 convolution; the sum goes through ReLU, a 1×1 convolution to one
    channel and a sigmoid, giving attention coefficients ``alpha`` in (0, 1) that are upsampled
    bilinearly to ``H × W`` and multiply ``x``.

    Parameters
    ----------
    skip_channels : int
        Channels ``C_x`` of the skip connection.
    gate_channels : int
        Channels ``C_g`` of the gating signal.
    inter_channels : int
        Channels of the intermediate additive space.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, 1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, 1, bias=True)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """Gate the skip features.

        Parameters
        ----------
        x : Tensor, shape (B, C_x, H, W)
            Skip features from the encoder (``H`` and ``W`` even).
        g : Tensor, shape (B, C_g, H/2, W/2)
            Gating signal from the coarser decoder level.

        Returns
        -------
        Tensor, shape (B, C_x, H, W)
            ``x * alpha`` with ``alpha`` broadcast over channels.
        """
        a = F.relu(self.theta_x(x) + self.phi_g(g), inplace=True)
        alpha = torch.sigmoid(self.psi(a))
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * alpha


class UpBlock(nn.Module):
    """One decoder level: transposed conv ×2, attention-gated skip, concat, residual block, dropout.

    Parameters
    ----------
    in_channels : int
        Channels ``C_in`` of the coarser decoder features (also the gating signal).
    skip_channels : int
        Channels ``C_s`` of the encoder skip connection at this level.
    out_channels : int
        Channels ``C_out`` of the output.
    dropout : float
        Dropout probability applied to the block output (active in ``train()`` only).
    norm : {"batch", "group"}
        Normalisation layer, see :func:`make_norm`.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        dropout: float,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.gate = AttentionGate(skip_channels, in_channels, max(skip_channels // 2, 1))
        self.block = ResidualBlock(out_channels + skip_channels, out_channels, norm)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x`` and merge it with the gated skip connection.

        Parameters
        ----------
        x : Tensor, shape (B, C_in, H/2, W/2)
            Features from the coarser decoder level (or the bridge).
        skip : Tensor, shape (B, C_s, H, W)
            Encoder features at this level.

        Returns
        -------
        Tensor, shape (B, C_out, H, W)
        """
        gated = self.gate(skip, x)
        y = torch.cat([self.up(x), gated], dim=1)
        return self.dropout(self.block(y))


def fold_batchnorm(module: nn.Module) -> int:
    """Fold eval-mode BatchNorm layers of every :class:`ResidualBlock` into the preceding conv.

    ``conv -> BatchNorm`` becomes one convolution with a bias (same output to float rounding),
    saving a full pass over each activation at inference. The module changes in place and can no
    longer be trained or loaded from a state dict of the unfolded model.

    Parameters
    ----------
    module : torch.nn.Module
        Any module containing residual blocks, in ``eval()`` mode.

    Returns
    -------
    int
        Number of BatchNorm layers folded (0 for GroupNorm models).

    Raises
    ------
    RuntimeError
        If the module is in training mode.
    """
    if module.training:
        raise RuntimeError("fold_batchnorm needs eval() mode: running statistics are folded")
    folded = 0
    for block in module.modules():
        if not isinstance(block, ResidualBlock):
            continue
        for conv_name, norm_name in (("conv1", "norm1"), ("conv2", "norm2")):
            conv, norm = getattr(block, conv_name), getattr(block, norm_name)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(block, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(block, norm_name, nn.Identity())
                folded += 1
        shortcut = block.shortcut
        if (
            isinstance(shortcut, nn.Sequential)
            and isinstance(shortcut[0], nn.Conv2d)
            and isinstance(shortcut[1], nn.BatchNorm2d)
        ):
            block.shortcut = nn.Sequential(fuse_conv_bn_eval(shortcut[0], shortcut[1]), nn.Identity())
            folded += 1
    return folded
