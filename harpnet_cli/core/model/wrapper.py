"""The HARPNET downscaler: units, normalisation, tile geometry and the mass constraint.

:class:`ModelConfig` (in :mod:`harpnet_cli.core.model.config`, without torch) is everything needed
to rebuild a model (it is stored in checkpoints);
:class:`Downscaler` wraps an :class:`~harpnet_cli.core.model.unet.AttentionResUNet` with the
input normalisation (as buffers), the coarse→fine interpolation of the buffered coarse tile,
the positive output map and the optional conservation layer. :meth:`Downscaler.from_state` builds a
model from the plain config dict and state dict a checkpoint holds (files are read and written in
:mod:`harpnet_cli.io.checkpoints`; :mod:`harpnet_cli.workflows.models` joins the two).

Tile geometry (``tile=64, buffer=1, ratio=4``): the coarse input is ``(tile/ratio + 2 buffer)``
cells square (18×18); coarse cell ``(j, i)`` with ``1 <= j, i <= 16`` covers fine pixels
``[4(j-1):4j, 4(i-1):4i]`` of the 64×64 output tile.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import Tensor, nn

from harpnet_cli.core.model.blocks import fold_batchnorm
from harpnet_cli.core.model.config import ModelConfig  # defined without torch, used and re-exported here
from harpnet_cli.core.model.unet import AttentionResUNet

#: Added to the block mean of the weights in the conservation layer.
CONSERVE_EPS = 1e-12
#: Floor added to the fine weights (conserve only) so a 4×4 block never sums to zero.
WEIGHT_FLOOR = 1e-6

#: Added to the block mean of the weights in the conservation layer.
CONSERVE_EPS = 1e-12
#: Floor added to the fine weights (conserve only) so a 4×4 block never sums to zero.
WEIGHT_FLOOR = 1e-6
#: Initial bias of the noise amplitudes (softplus(-2) = 0.13 in log-correction units).
AMPLITUDE_BIAS = -2.0
#: Initial bias of the dry gate (softplus(-2.5) = 0.079: fine cells below 8 % of the bilinear amount are dry).
GATE_BIAS = -2.5
#: Bound on the log-correction of ``bilinear-residual`` models (exp(±20) cannot overflow float32).
MAX_LOG_CORRECTION = 20.0
#: State-dict keys named in a mismatch message before "(+N more)".
MAX_KEYS_SHOWN = 5


class ModelStateError(ValueError):
    """A saved config or state dict that does not make a :class:`Downscaler`.

    The message names no file; the caller (which knows the file) words the one-line error.

    Parameters
    ----------
    part : {"config", "weights"}
        What is wrong: the config does not validate, or the weights do not fit the config.
    reason : str
        The problem, in one line (the first validation error, or the mismatching keys).
    where : str
        The config field at fault, dotted (``"config"`` for the config as a whole); ``""`` for weights.
    """

    def __init__(self, part: Literal["config", "weights"], reason: str, where: str = "") -> None:
        self.part = part
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


def _keys(keys: list[str]) -> str:
    """A short comma-separated list of state-dict keys."""
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    return shown + (f" (+{len(keys) - MAX_KEYS_SHOWN} more)" if len(keys) > MAX_KEYS_SHOWN else "")


def state_dict_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str | None:
    """Describe missing, unexpected and wrongly shaped keys of a state dict.

    Parameters
    ----------
    expected : mapping
        The model's own state dict (name -> tensor).
    found : mapping
        The state dict to load (name -> tensor of any shape).

    Returns
    -------
    str or None
        ``"missing a, b; unexpected c; wrong shape d (1, 2) != (2, 2)"`` (at most
        :data:`MAX_KEYS_SHOWN` keys of each kind), or None when the dicts match.
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} {tuple(found[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and getattr(found[k], "shape", None) != v.shape
    ]
    parts = []
    if missing:
        parts.append(f"missing {_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected {_keys(unexpected)}")
    if shapes:
        parts.append(f"wrong shape {_keys(shapes)}")
    return "; ".join(parts) or None


def widen_inputs(state: Mapping[str, Tensor], old: list[str], new: list[str],
                 target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict for a model with more input channels, the same function of the old ones.

    Every weight whose input dimension (dim 1) counts the ``old`` channels is rebuilt for ``new``:
    the old channels' weights moved to their new places, the added channels' set to zero, so the
    widened model computes exactly what the old one did until training moves them. The coarse
    normalisation buffers are taken from ``target`` (the new model's, built from its config).

    Parameters
    ----------
    state : mapping
        The old model's state dict.
    old, new : list of str
        Input channel names of the old and the new model (:attr:`ModelConfig.input_names`); every
        old name must be in ``new``.
    target : mapping
        The new model's state dict (for shapes and the normalisation buffers).

    Returns
    -------
    dict
        The state dict to load into the new model.
    """
    index = [new.index(name) for name in old]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        want = target.get(key)
        if key in ("coarse_mean", "coarse_std") and want is not None:
            out[key] = want.clone()
        elif (want is not None and value.ndim >= 2 and value.shape != want.shape and value.shape[1] == len(old)
              and want.shape[1] == len(new) and value.shape[:1] + value.shape[2:] == want.shape[:1] + want.shape[2:]):
            wide = torch.zeros_like(want)
            wide[:, index] = value.to(wide.dtype)
            out[key] = wide
        else:
            out[key] = value
    return out


def _stat_buffer(values: list[float] | None) -> Tensor:
    """Statistics as a float32 tensor of shape (1, C, 1, 1) that broadcasts over (B, C, H, W)."""
    return torch.tensor(values or [], dtype=torch.float32).view(1, -1, 1, 1)


def _autocast_off(device_type: str) -> AbstractContextManager[object]:
    """Run the output layers in float32 even inside an autocast region (meta: no autocast)."""
    if device_type == "meta":
        return nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def _floor_dry_blocks(weights: Tensor, ratio: int) -> Tensor:
    """Add :data:`WEIGHT_FLOOR` to the cells of blocks whose weights are all zero (and only there).

    A block with no weight anywhere would share its coarse amount out as 0/0; a floor everywhere
    would instead turn a member's exactly dry cells into tiny amounts. Shape ``(B, 1, H, W)``.
    """
    empty = F.max_pool2d(weights, ratio) <= 0
    floor = empty.to(weights.dtype).repeat_interleave(ratio, dim=-2).repeat_interleave(ratio, dim=-1)
    return weights + WEIGHT_FLOOR * floor


def conserve_mass(weights: Tensor, coarse: Tensor, ratio: int, eps: float = CONSERVE_EPS) -> Tensor:
    """Rescale fine values so every ``ratio × ratio`` block averages to its coarse value.

    ``fine = w * up(c) / (up(avgpool(w)) + eps)``; a coarse value of 0 gives exactly 0 in all its
    fine cells.

    Parameters
    ----------
    weights : Tensor, shape (B, 1, r h, r w)
        Positive fine-resolution weights.
    coarse : Tensor, shape (B, 1, h, w)
        Non-negative coarse amounts.
    ratio : int
        Block size ``r``.
    eps : float
        Guards the division.

    Returns
    -------
    Tensor, shape (B, 1, r h, r w)
        Non-negative; ``avgpool(fine, r) == coarse`` to float precision.
    """
    block_mean = F.avg_pool2d(weights, ratio)
    scale = coarse / (block_mean + eps)
    return weights * scale.repeat_interleave(ratio, dim=-2).repeat_interleave(ratio, dim=-1)


class Downscaler(nn.Module):
    """Downscale one buffered coarse tile of precipitation to a fine tile.

    Parameters
    ----------
    config : ModelConfig
        Architecture, inputs, tile geometry and normalisation statistics.

    Attributes
    ----------
    coarse_mean, coarse_std : Tensor, shape (1, Cc, 1, 1)
        Buffers with the coarse input statistics (saved in the state dict).
    static_mean, static_std : Tensor, shape (1, Cs, 1, 1)
        Buffers with the static input statistics.
    """

    coarse_mean: Tensor
    coarse_std: Tensor
    static_mean: Tensor
    static_std: Tensor
    coarse_log1p: Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        assert config.channels is not None and config.bridge is not None  # filled by the validator
        self.net = AttentionResUNet(
            in_channels=len(config.coarse_inputs) + len(config.static_inputs) + len(config.derived_inputs),
            out_channels=1,
            channels=config.channels,
            bridge=config.bridge,
            dropout_bottom=config.dropout_bottom,
            dropout_top=config.dropout_top,
            norm=config.norm,
        )
        if config.output == "bilinear-residual":
            nn.init.zeros_(self.net.head.weight)  # an untrained model is conservative bilinear
            assert self.net.head.bias is not None
            nn.init.zeros_(self.net.head.bias)
        self.amplitude: nn.Conv2d | None = None
        if config.noise_scales:
            outputs = len(config.noise_scales) + int(config.noise_gate)
            head = nn.Conv2d(config.channels[0], outputs, 1)
            assert head.bias is not None
            with torch.no_grad():  # small amplitudes at first (softplus(-2) = 0.13), a low dry threshold
                head.weight.mul_(0.1)
                head.bias.fill_(AMPLITUDE_BIAS)
                if config.noise_gate:
                    head.bias[-1] = GATE_BIAS
            self.amplitude = head
        self.register_buffer("coarse_mean", _stat_buffer(config.coarse_mean))
        self.register_buffer("coarse_std", _stat_buffer(config.coarse_std))
        self.register_buffer("static_mean", _stat_buffer(config.static_mean))
        self.register_buffer("static_std", _stat_buffer(config.static_std))
        log_mask = [name in config.log1p_inputs for name in config.coarse_inputs]
        self.register_buffer("coarse_log1p", torch.tensor(log_mask).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: ModelConfig | dict[str, Any]) -> Downscaler:
        """Build a model with fresh weights from a config (or its ``model_dump()``).

        Parameters
        ----------
        config : ModelConfig or dict
            A config or the plain dict stored in a checkpoint.

        Returns
        -------
        Downscaler
        """
        if not isinstance(config, ModelConfig):
            config = ModelConfig.model_validate(config)
        return cls(config)

    @classmethod
    def from_state(cls, config: Mapping[str, Any], state: Mapping[str, Tensor]) -> Downscaler:
        """Build a model from a saved config dict and load a saved state dict into it, strictly.

        Parameters
        ----------
        config : mapping
            The plain config a checkpoint stores (``ModelConfig.model_dump(mode="json")``).
        state : mapping
            The state dict (name -> tensor, on any device, float16 weights allowed: they are copied
            into the float32 model).

        Returns
        -------
        Downscaler
            On the CPU, in training mode (as constructed); move it and call ``eval()`` as needed.

        Raises
        ------
        ModelStateError
            ``part="config"`` when the config does not validate (``where`` names the field, the
            reason is pydantic's first message), ``part="weights"`` when keys are missing,
            unexpected or of the wrong shape.
        RuntimeError
            From ``load_state_dict`` for any other mismatch.
        """
        try:
            validated = ModelConfig.model_validate(config)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            raise ModelStateError("config", str(err["msg"]), where) from None
        model = cls(validated)
        problem = state_dict_mismatch(model.state_dict(), state)
        if problem:
            raise ModelStateError("weights", problem)
        model.load_state_dict(state, strict=True)
        return model

    @classmethod
    def parameter_names(cls, config: Mapping[str, Any]) -> set[str]:
        """Names of the trainable parameters (not the buffers) of a model built from ``config``.

        Parameters
        ----------
        config : mapping
            A saved config dict.

        Returns
        -------
        set of str
            State-dict keys that are parameters (weights and biases of the network).
        """
        return {name for name, _ in cls(ModelConfig.model_validate(config)).named_parameters()}

    def param_count(self, trainable_only: bool = False) -> int:
        """Number of parameters (buffers excluded).

        Parameters
        ----------
        trainable_only : bool
            Count only parameters with ``requires_grad``.

        Returns
        -------
        int
        """
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def inference_only(self) -> bool:
        """True after :meth:`for_inference` (BatchNorm folded: no training, no saving)."""
        return bool(getattr(self, "_inference_only", False))

    def for_inference(self, channels_last: bool = True) -> Downscaler:
        """Prepare for fast inference, in place: ``eval()``, fold BatchNorm, channels-last.

        Folding BatchNorm into the convolutions and the channels-last layout make CPU inference
        faster (see ``benchmarks/bench_model.py``); outputs match to float rounding. Irreversible:
        the model can no longer be trained or saved.

        Parameters
        ----------
        channels_last : bool
            Also convert the weights (and hence the activations) to the channels-last layout.

        Returns
        -------
        Downscaler
            ``self``.
        """
        self.eval()
        fold_batchnorm(self.net)
        if channels_last:
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._inference_only = True
        return self

    def current_config(self) -> ModelConfig:
        """The config with the statistics replaced by the current buffer values.

        Returns
        -------
        ModelConfig
            What :func:`harpnet_cli.io.checkpoints.save_checkpoint` stores (as ``model_dump(mode="json")``).
        """
        stats = {}
        for name in ("coarse_mean", "coarse_std", "static_mean", "static_std"):
            current = getattr(self, name).detach().flatten().cpu()
            if not torch.equal(current, _stat_buffer(getattr(self.config, name)).flatten()):
                stats[name] = [float(v) for v in current.tolist()]  # changed since construction
        return self.config.model_copy(update=stats)

    def _check_shapes(self, coarse: Tensor, static: Tensor | None) -> None:
        """Raise ValueError unless the inputs have the tile geometry of the config."""
        cfg = self.config
        n = cfg.coarse_size
        want = (len(cfg.coarse_inputs), n, n)
        if coarse.ndim != 4 or tuple(coarse.shape[1:]) != want:
            raise ValueError(f"coarse input must be (B, {want[0]}, {n}, {n}), got {tuple(coarse.shape)}")
        n_static = len(cfg.static_inputs)
        if n_static == 0 and static is None:
            return
        want = (n_static, cfg.tile, cfg.tile)
        got = None if static is None else tuple(static.shape)
        noise = 0 if static is None or static.ndim != 4 else static.shape[1] - n_static
        if static is None or static.ndim != 4 or tuple(static.shape[2:]) != want[1:] or noise < 0 or (
                noise and (not cfg.stochastic or noise % len(cfg.noise_scales))):
            more = f" + K x {len(cfg.noise_scales)} noise" if cfg.stochastic else ""
            raise ValueError(f"static input must be (B, {n_static}{more}, {cfg.tile}, {cfg.tile}), got {got}")
        if static.shape[0] != coarse.shape[0]:
            raise ValueError(f"batch sizes differ: coarse {coarse.shape[0]}, static {static.shape[0]}")

    def normalise_inputs(self, coarse: Tensor, static: Tensor | None) -> Tensor:
        """Standardise the inputs and bring the coarse channels to the fine tile.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, n, n)
            Buffered coarse tile, ``n = tile / ratio + 2 buffer`` (18).
        static : Tensor or None, shape (B, Cs, tile, tile)
            Static fine inputs (``None`` only when the config has none).

        Returns
        -------
        Tensor, shape (B, Cc + Cs + Cd, tile, tile)
            Coarse channels interpolated bilinearly ×ratio and cropped by ``buffer × ratio``
            fine cells on every side, the static channels, then the ``derived_inputs``.
        """
        cfg = self.config
        x = torch.where(self.coarse_log1p, torch.log1p(coarse.clamp_min(0.0)), coarse)
        x = (x - self.coarse_mean) / self.coarse_std
        crop = cfg.buffer * cfg.ratio
        inner = (..., slice(crop, x.shape[-2] * cfg.ratio - crop), slice(crop, x.shape[-1] * cfg.ratio - crop))
        parts = [F.interpolate(x, scale_factor=cfg.ratio, mode="bilinear", align_corners=False)[inner]]
        if static is not None and static.shape[1]:
            static = static[:, : len(cfg.static_inputs)]  # noise channels (stochastic models) go elsewhere
            parts.append((static - self.static_mean) / self.static_std)
        if "precip_nearest" in cfg.derived_inputs:
            parts.append(F.interpolate(x[:, :1], scale_factor=cfg.ratio, mode="nearest")[inner])
        if "terrain_anomaly" in cfg.derived_inputs:
            if static is None or not static.shape[1]:
                raise ValueError("the terrain_anomaly input needs a static terrain channel")
            block = F.avg_pool2d(static[:, :1], cfg.ratio)
            anomaly = static[:, :1] - F.interpolate(block, scale_factor=cfg.ratio, mode="nearest")
            parts.append(anomaly / self.static_std[:, :1])
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward(self, coarse: Tensor, static: Tensor | None) -> Tensor:
        """Downscale a batch of buffered coarse tiles.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, 18, 18)
            Coarse inputs per ``config.coarse_inputs``; channel 0 is precipitation in mm per step
            (3 h). Side ``tile / ratio + 2 buffer``.
        static : Tensor or None, shape (B, Cs [+ K J], 64, 64)
            Static fine inputs per ``config.static_inputs`` (channel 0: terrain height in m). A
            stochastic model (``config.noise_scales``, J of them) takes after them the noise of K
            members, member major (channel ``Cs + k J + j``; :func:`harpnet_cli.core.noise.draw_noise`).

        Returns
        -------
        Tensor, float32
            Precipitation in mm per step, non-negative, ``(B, 1, 64, 64)``; for a stochastic model
            given the noise of K members, ``(K, B, 1, 64, 64)`` (the members, as an ensemble's;
            without noise, its zero-noise member ``(B, 1, 64, 64)``). With ``config.conserve`` each
            4×4 block averages to the coarse amount of its cell, and dry cells give exactly 0.
        """
        self._check_shapes(coarse, static)
        x = self.normalise_inputs(coarse, static)
        first_conv = next(self.net.parameters())  # (C, Cc + Cs, 3, 3): follow its memory format
        if first_conv.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.net.features(x)
        raw = self.net.head(features)
        noise = None
        if self.amplitude is not None and static is not None and static.shape[1] > len(self.config.static_inputs):
            noise = static[:, len(self.config.static_inputs):]
        with _autocast_off(raw.device.type):
            if self.amplitude is not None:
                return self._members(coarse, raw.float(), self.amplitude(features.float()), noise)
            if self.config.output == "bilinear-residual":
                correction = torch.exp(raw.float().clamp(-MAX_LOG_CORRECTION, MAX_LOG_CORRECTION))
                weights = self.bilinear(coarse) * correction
            else:
                weights = F.softplus(raw.float())
            return self._finish(coarse, weights)

    def _finish(self, coarse: Tensor, weights: Tensor) -> Tensor:
        """Conserve each coarse cell's amount over its 4x4 block (unless ``conserve`` is off)."""
        if not self.config.conserve:
            return weights
        b, r = self.config.buffer, self.config.ratio
        ny, nx = coarse.shape[-2], coarse.shape[-1]  # from the tensor: an exported graph takes any tile size
        centre = coarse[:, :1, b : ny - b, b : nx - b].float().clamp_min(0.0)
        if weights.ndim == 5:  # (K, B, 1, H, W): the same coarse cells for every member
            k = weights.shape[0]
            out = conserve_mass(_floor_dry_blocks(weights.flatten(0, 1), r), centre.repeat(k, 1, 1, 1), r)
            return out.view(weights.shape)
        return conserve_mass(_floor_dry_blocks(weights, r), centre, r)

    def _members(self, coarse: Tensor, raw: Tensor, amplitudes: Tensor, noise: Tensor | None) -> Tensor:
        """The members of a stochastic model: ``bilinear * exp(raw + sum_j a_j z_j)``, gated, conserved.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, 18, 18)
        raw : Tensor, shape (B, 1, 64, 64)
            The network's log-correction.
        amplitudes : Tensor, shape (B, J [+ 1], 64, 64)
            Before softplus: one amplitude per noise scale, then the dry gate's threshold.
        noise : Tensor or None, shape (B, K J, 64, 64)
            The members' noise; None gives the zero-noise member ``(B, 1, 64, 64)``.

        Returns
        -------
        Tensor
            ``(K, B, 1, 64, 64)``, or ``(B, 1, 64, 64)`` without noise.
        """
        j = len(self.config.noise_scales)
        positive = F.softplus(amplitudes)
        bilinear = self.bilinear(coarse)
        if noise is None:
            log_w = raw[None]
        else:
            b, h, w = noise.shape[0], noise.shape[-2], noise.shape[-1]
            k = noise.shape[1] // j  # from the tensor (not -1): an exported graph takes any K
            z = noise.float().reshape(b, k, j, h, w).transpose(0, 1)  # (K, B, J, H, W)
            log_w = raw[None] + (positive[None, :, :j] * z).sum(dim=2, keepdim=True)
        weights = bilinear[None] * torch.exp(log_w.clamp(-MAX_LOG_CORRECTION, MAX_LOG_CORRECTION))
        if self.config.noise_gate:
            weights = F.relu(weights - positive[None, :, j:] * bilinear[None])
        out = self._finish(coarse, weights)
        return out if noise is not None else out[0]

    def bilinear(self, coarse: Tensor) -> Tensor:
        """Bilinear interpolation of the coarse amount (channel 0) to the fine tile, in float32.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, n, n)
            Buffered coarse tile.

        Returns
        -------
        Tensor, shape (B, 1, tile, tile)
            Non-negative; the same interpolation as the ``bilinear`` baseline.
        """
        cfg = self.config
        up = F.interpolate(coarse[:, :1].float().clamp_min(0.0), scale_factor=cfg.ratio, mode="bilinear",
                           align_corners=False)
        crop = cfg.buffer * cfg.ratio
        return up[..., crop:-crop, crop:-crop] if crop else up
