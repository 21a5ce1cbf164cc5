"""The names behind the choices of the configuration and the CLI, importable without torch.

Config validation (:mod:`harpnet_cli.config`) and ``--help`` (:mod:`harpnet_cli.cli`) need only
the names of what can be chosen, and several of the implementations import torch, which
``harpnet --help`` must not. So the names live here, in the order the CLI lists them:

* :data:`LOSSES` and :data:`LR_SCHEDULES` are the registries themselves:
  :mod:`harpnet_cli.core.training` implements one function per name;
* :data:`PRESET_SIZES`, :data:`EXTRA_INPUTS` and :data:`DERIVED_INPUTS` are the tables the
  implementations read (``core.model.config.PRESETS``, ``workflows.batches``, ``ModelConfig``);
  :data:`SPLITS` names the codes of :data:`harpnet_cli.splits.SPLIT_NAMES`;
* :data:`REMAP_METHODS` are the ways ``prepare`` remaps observations onto the fine grid.
"""

from __future__ import annotations

from collections.abc import Iterable

#: U-Net sizes by preset name, smallest first: encoder channels per level (finest first) and the
#: bridge. ``core.model.config.PRESETS`` builds on this table; measured on 2 AVX-512 cores at batch 32
#: (``benchmarks/bench_inference.py``): ``lite`` (0.52 M parameters, the default and the bundled
#: model) runs ~850 tiles/s fp32, ``compact`` (2.1 M) ~380, ``harpnet-v1`` (the seed model, 134 M
#: parameters, 8.0 GFLOP per 64x64 tile) ~19.
PRESET_SIZES: dict[str, dict[str, tuple[int, ...] | int]] = {
    "lite": {"channels": (8, 16, 32, 64), "bridge": 128},
    "compact": {"channels": (16, 32, 64, 128), "bridge": 256},
    "harpnet-v1": {"channels": (64, 128, 256, 512, 1024), "bridge": 2048},
}
#: Preset names, smallest first.
PRESETS: tuple[str, ...] = tuple(PRESET_SIZES)

#: Loss names and what they compare. ``mse`` (the default) is the seed's plain mean squared error
#: on amounts in mm per 3 h; it weights heavy rain, where errors matter most for hazards.
#: ``mse_log1p`` compares ``log1p`` amounts (balances light and heavy rain, and the dry/wet
#: edge); ``mae`` is the mean absolute error in mm (less sensitive to outliers in the truth).
LOSSES: dict[str, str] = {
    "mse": "mean squared error of amounts (mm per 3 h)",
    "mae": "mean absolute error of amounts (mm per 3 h)",
    "mse_log1p": "mean squared error of log1p(amount)",
    "crps": "fair CRPS of the members of a stochastic model (--noise-scales, --members)",
}
DEFAULT_LOSS = "mse"

#: Learning-rate schedules over the epochs of a run (``core.training.epoch_lr``).
LR_SCHEDULES: dict[str, str] = {
    "constant": "the same rate in every epoch",
    "cosine": "from the rate of the first epoch towards 0 along half a cosine",
}

#: Extra coarse inputs of ``train --extra-inputs``: the store state columns each one uses.
EXTRA_INPUTS: dict[str, tuple[str, ...]] = {"wind": ("u", "v"), "period": ("log_period_hours",)}
#: The extra input holding each sample's window length, ``ln(hours)``: the one extra input that
#: ``downscale`` supplies itself (from each window's true length).
PERIOD_INPUT = "log_period_hours"
#: Extra inputs that are vectors (east, north): turned with the field by ``train --augment``.
VECTOR_INPUTS = frozenset({"wind"})

#: Channels a model can derive from its inputs (``ModelConfig.derived_inputs``).
DERIVED_INPUTS: dict[str, str] = {
    "precip_nearest": "the coarse precipitation repeated over each 4x4 block",
    "terrain_anomaly": "the terrain minus its coarse-cell mean",
}

#: How ``prepare`` puts observations onto the fine grid.
REMAP_METHODS: dict[str, str] = {
    "conservative": "area-weighted",
    "interpolate": "bilinear, as the seed",
}

#: The splits of a store (``splits.SPLIT_NAMES``).
SPLITS: tuple[str, ...] = ("train", "test", "validation")
#: The held-out splits a model is scored on (``evaluate --split``).
SCORED_SPLITS: tuple[str, ...] = ("test", "validation")


def one_of(names: Iterable[str]) -> str:
    """``"a, b or c"``: the names of a registry as a choice in prose (help text, messages)."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
