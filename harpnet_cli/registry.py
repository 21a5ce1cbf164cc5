"""The names behind the choices of the configuration and the CLI, importable without torch.

Config validation (:mod:`harpnet_cli.config`) and ``--help`` (:mod:`harpnet_cli.cli`) need only
the names of what can be chosen, and several of the implementations import torch, which
``harpnet --help`` must not. So the names live here, in the order the CLI lists them:

* :data:`LOSSES` and :data:`LR_SCHEDULES` are the registries themselves:
  :mod:`harpnet_cli.core.training` implements one function per name;
* :data:`PRESETS`, :data:`EXTRA_INPUTS`, :data:`DERIVED_INPUTS` and :data:`SPLITS` mirror the
  registries of the modules that implement them (``core.model.unet.PRESETS``,
  ``workflows.batches.EXTRA_INPUTS``, ``ModelConfig.derived_inputs``, ``splits.SPLIT_NAMES``);
  ``tests/unit/test_registry.py`` checks that each mirror equals its original;
* :data:`REMAP_METHODS` are the ways ``prepare`` remaps observations onto the fine grid.
"""

from __future__ import annotations

from collections.abc import Iterable

#: U-Net size presets (``core.model.unet.PRESETS``), smallest first.
PRESETS: tuple[str, ...] = ("lite", "compact", "harpnet-v1")

#: Loss names and what they compare. ``mse`` (the default) is the seed's plain mean squared error
#: on amounts in mm per 3 h; it weights heavy rain, where errors matter most for hazards.
#: ``mse_log1p`` compares ``log1p`` amounts (balances light and heavy rain, and the dry/wet
#: edge); ``mae`` is the mean absolute error in mm (less sensitive to outliers in the truth).
LOSSES: dict[str, str] = {
    "mse": "mean squared error of amounts (mm per 3 h)",
    "mae": "mean absolute error of amounts (mm per 3 h)",
    "mse_log1p": "mean squared error of log1p(amount)",
}
DEFAULT_LOSS = "mse"

#: Learning-rate schedules over the epochs of a run (``core.training.epoch_lr``).
LR_SCHEDULES: dict[str, str] = {
    "constant": "the same rate in every epoch",
    "cosine": "from the rate of the first epoch towards 0 along half a cosine",
}

#: Extra coarse inputs of ``train --extra-inputs``: the store state columns each one uses
#: (``workflows.batches.EXTRA_INPUTS``).
EXTRA_INPUTS: dict[str, tuple[str, ...]] = {"wind": ("u", "v")}

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
