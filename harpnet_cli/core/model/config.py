"""A model's configuration, without torch: sizes, inputs, tile geometry and statistics.

:class:`ModelConfig` is everything needed to rebuild a
:class:`~harpnet_cli.core.model.wrapper.Downscaler` (it is stored in every checkpoint), and the
named sizes (:data:`PRESETS`) it takes its channels from. Nothing here imports torch, so a run on
the ONNX Runtime backend (:mod:`harpnet_cli.core.model.onnx`) reads a model's config and runs it
without paying torch's import.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harpnet_cli.registry import DERIVED_INPUTS, PRESET_SIZES

#: Normalisation in the residual blocks: ``"batch"`` (folds into convs at inference) or ``"group"``.
NormKind = Literal["batch", "group"]

#: Default normalisation statistics by input name: (mean, std), of log1p(x) for log1p inputs.
DEFAULT_STATS: dict[str, tuple[float, float]] = {
    "precip": (0.3, 0.8),
    "terrain": (500.0, 700.0),
}

#: The window length (hours) of a model that does not take the length as an input.
NATIVE_HOURS = 3.0

class Preset(TypedDict):
    """Sizes of one named U-Net: encoder channels per level (finest first) and the bridge."""

    channels: tuple[int, ...]
    bridge: int


#: Named sizes (the table :data:`harpnet_cli.registry.PRESET_SIZES`, where the measured speeds are
#: noted): ``lite`` is the default and the bundled model; the cost is the finest level, so a fifth
#: level (8..128 + 256, 2.1 M) is as fast while ``compact`` (2.1 M, widths doubled) is not.
PRESETS: dict[str, Preset] = {
    name: {"channels": tuple(size["channels"]), "bridge": int(size["bridge"])}  # type: ignore[arg-type,call-overload]
    for name, size in PRESET_SIZES.items()
}

#: Preset of a model built without one (``harpnet train`` without ``--preset``).
DEFAULT_PRESET = "lite"


def get_preset(name: str) -> Preset:
    """Look up a preset by name.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`.

    Returns
    -------
    Preset

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown model preset {name!r}; known presets: {known}") from None


class ModelConfig(BaseModel):
    """Everything needed to rebuild a :class:`~harpnet_cli.core.model.wrapper.Downscaler` (saved in every checkpoint).

    ``channels`` and ``bridge`` are filled in from ``preset`` when left out, and the statistics
    from :data:`DEFAULT_STATS` (``(0, 1)`` for unknown names), so a dumped config is complete.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str = DEFAULT_PRESET
    """Named U-Net size (``"lite"``, ``"compact"`` or ``"harpnet-v1"``); supplies ``channels``/``bridge``."""

    channels: list[int] | None = None
    """Encoder channels per level, finest first; ``None`` takes them from ``preset``."""

    bridge: int | None = Field(default=None, ge=1)
    """Channels of the bridge block; ``None`` takes it from ``preset``."""

    norm: NormKind = "batch"
    """Normalisation in the residual blocks: ``"batch"`` (folds into convs at inference) or
    ``"group"`` (per-sample, for very small training batches)."""

    dropout_bottom: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Decoder dropout at the deepest level."""

    dropout_top: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Decoder dropout at the finest level (linear in between)."""

    coarse_inputs: list[str] = Field(default_factory=lambda: ["precip"], min_length=1)
    """Names of the coarse input channels; channel 0 is the precipitation amount (mm per step)
    that the output downscales and, with ``conserve``, conserves."""

    static_inputs: list[str] = Field(default_factory=lambda: ["terrain"])
    """Names of the static fine-resolution input channels (e.g. terrain height in metres)."""

    derived_inputs: list[str] = Field(default_factory=list)
    """Channels computed inside the model from the others: ``precip_nearest``, the coarse
    precipitation (log1p, standardised) repeated over each 4×4 block (so the network sees the
    cell edges), and ``terrain_anomaly``, the terrain minus its coarse-cell mean (over the terrain
    standard deviation), the sub-grid relief that shapes orographic rain."""

    log1p_inputs: list[str] = Field(default_factory=lambda: ["precip"])
    """Coarse inputs transformed with ``log1p`` before standardisation."""

    tile: int = Field(default=64, ge=1)
    """Side of the fine output tile in fine cells."""

    buffer: int = Field(default=1, ge=0)
    """Coarse cells of context on every side of the coarse input tile."""

    ratio: int = Field(default=4, ge=1)
    """Fine cells per coarse cell along each axis."""

    conserve: bool = True
    """Rescale each 4×4 block so its mean equals the coarse amount (dry cells stay dry)."""

    output: Literal["bilinear-residual", "softplus"] = "bilinear-residual"
    """How the network's output becomes fine weights before conservation. ``bilinear-residual``:
    the bilinear interpolation of the coarse amount times ``exp(net)``, with the last layer
    initialised to zero, so an untrained model is exactly conservative bilinear interpolation and
    training learns a multiplicative correction to it. ``softplus``: ``softplus(net)`` alone
    (an untrained model spreads each coarse cell evenly over its block)."""

    coarse_mean: list[float] | None = None
    """Per coarse channel mean (of log1p(x) for ``log1p_inputs``); ``None`` for the defaults."""

    coarse_std: list[float] | None = None
    """Per coarse channel standard deviation (same transform as ``coarse_mean``)."""

    static_mean: list[float] | None = None
    """Per static channel mean; ``None`` for the defaults."""

    static_std: list[float] | None = None
    """Per static channel standard deviation."""

    grid: dict[str, float | int] | None = None
    """Domain the model was trained on (:meth:`harpnet_cli.grids.GridSpec.to_dict`), if any."""

    regions: list[dict[str, float | int]] = Field(default_factory=list)
    """Further domains the model was trained on besides ``grid`` (a store mixed in with ``--mix``,
    the domains of the model it was initialised from), as ``grid``. ``downscale`` warns when its
    domain lies mostly outside ``grid`` and these."""

    noise_scales: list[float] = Field(default_factory=list)
    """Smoothing lengths (fine cells, 0 = white) of the noise fields a **stochastic** model turns into
    members; empty for a deterministic model. Each member's log-correction gets
    ``sum_j a_j(x) z_j``: noise field ``z_j`` (one per scale, drawn on the whole domain, see
    :mod:`harpnet_cli.core.noise`) times an amplitude ``a_j >= 0`` the network predicts at every
    cell, so one network pass serves any number of members."""

    noise_gate: bool = True
    """With ``noise_scales``: a learned threshold (a fraction of the bilinear amount) below which a
    member's cell is dry, so members can be exactly zero where the rain does not reach."""

    periods: list[float] | None = None
    """Window lengths (hours) the model was trained on, when it takes the window length as an input
    (the coarse input ``log_period_hours``); ``downscale`` gives such a model each window's true
    amount and length when the length is one of these, and the 3-hour equivalent otherwise."""

    @model_validator(mode="after")
    def _complete(self) -> ModelConfig:
        """Fill sizes and statistics from the preset and defaults, then check consistency."""
        unknown = [name for name in self.derived_inputs if name not in DERIVED_INPUTS]
        if unknown:
            raise ValueError(f"unknown derived input {unknown[0]!r}; known: {', '.join(DERIVED_INPUTS)}")
        if self.channels is None or self.bridge is None:
            preset = get_preset(self.preset)
            if self.channels is None:
                self.channels = list(preset["channels"])
            if self.bridge is None:
                self.bridge = preset["bridge"]
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive and non-empty, got {self.channels}")
        if self.tile % self.ratio:
            raise ValueError(f"tile ({self.tile}) must be a multiple of ratio ({self.ratio})")
        if self.tile % 2 ** len(self.channels):
            raise ValueError(f"tile ({self.tile}) must be a multiple of 2**levels ({2 ** len(self.channels)})")
        for group in ("coarse", "static"):
            names: list[str] = getattr(self, f"{group}_inputs")
            if len(set(names)) != len(names):
                raise ValueError(f"{group}_inputs has duplicate names: {names}")
            for k, stat in enumerate(("mean", "std")):
                key = f"{group}_{stat}"
                values = getattr(self, key)
                if values is None:
                    values = [DEFAULT_STATS.get(n, (0.0, 1.0))[k] for n in names]
                    setattr(self, key, [float(v) for v in values])
                elif len(values) != len(names):
                    raise ValueError(f"{key} has {len(values)} values for {len(names)} {group} inputs")
            if min(getattr(self, f"{group}_std"), default=1.0) <= 0:
                raise ValueError(f"{group}_std must be positive")
        return self

    @property
    def stochastic(self) -> bool:
        """True for a model that turns noise into members (:attr:`noise_scales`)."""
        return bool(self.noise_scales)

    def knows_period(self, hours: float) -> bool:
        """Whether the model takes windows of ``hours`` as they are (it was trained on that length)."""
        return self.periods is not None and any(abs(hours - p) < 1e-6 for p in self.periods)

    def window_input(self, hours: float) -> tuple[float, float]:
        """How a window of ``hours`` enters the model: ``(scale, model_hours)``.

        A period-aware model (:attr:`periods`) takes an amount over a length it was trained on as it
        is (``scale = 1``, its true length). Any other window goes through the native 3-hour
        equivalent (``scale = 3 / hours``, length 3), the output being scaled back by ``1 / scale``.
        """
        if self.knows_period(hours):
            return 1.0, hours
        return NATIVE_HOURS / hours, NATIVE_HOURS

    @property
    def input_names(self) -> list[str]:
        """The network's input channels in order: coarse, static, then derived inputs."""
        return [*self.coarse_inputs, *self.static_inputs, *self.derived_inputs]

    @property
    def coarse_size(self) -> int:
        """Side of the coarse input tile in coarse cells, ``tile / ratio + 2 buffer`` (18)."""
        return self.tile // self.ratio + 2 * self.buffer
