"""The registry names that config and CLI offer (``harpnet_cli.registry``) equal what implements them."""

from typing import get_args

import pytest

from harpnet_cli import registry
from harpnet_cli.config import EnsembleConfig, EvaluateConfig, PrepareConfig, TrainConfig, field_choices


def test_the_model_presets_are_the_registry_table():
    from harpnet_cli.core.model.config import DEFAULT_PRESET, PRESETS

    assert tuple(PRESETS) == registry.PRESETS
    assert PRESETS["lite"] == {"channels": (8, 16, 32, 64), "bridge": 128}
    assert TrainConfig.model_fields["preset"].default == DEFAULT_PRESET


def test_losses_and_schedules_are_implemented():
    from harpnet_cli.core.training import epoch_lr, get_loss

    for name in registry.LOSSES:
        assert callable(get_loss(name))
    assert registry.DEFAULT_LOSS in registry.LOSSES
    for name in registry.LR_SCHEDULES:
        assert epoch_lr(1e-3, 1, 3, name) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="known: constant, cosine"):
        epoch_lr(1e-3, 1, 3, "step")


def test_inputs_and_splits_mirror_their_implementations():
    from harpnet_cli.core.model.wrapper import ModelConfig
    from harpnet_cli.splits import SPLIT_NAMES
    from harpnet_cli.workflows.batches import EXTRA_INPUTS

    assert registry.EXTRA_INPUTS is EXTRA_INPUTS
    assert ModelConfig(derived_inputs=list(registry.DERIVED_INPUTS)).derived_inputs == list(registry.DERIVED_INPUTS)
    with pytest.raises(ValueError, match="unknown derived input 'slope'"):
        ModelConfig(derived_inputs=["slope"])
    assert registry.SPLITS == tuple(SPLIT_NAMES.values())
    assert set(registry.SCORED_SPLITS) < set(registry.SPLITS)


def test_config_choices_come_from_the_registries():
    assert field_choices(TrainConfig, "preset") == registry.PRESETS
    assert field_choices(TrainConfig, "loss") == tuple(registry.LOSSES)
    assert field_choices(TrainConfig, "lr_schedule") == tuple(registry.LR_SCHEDULES)
    assert field_choices(PrepareConfig, "remap") == tuple(registry.REMAP_METHODS)
    assert field_choices(EvaluateConfig, "split") == registry.SCORED_SPLITS
    assert field_choices(EnsembleConfig, "split") == (*registry.SCORED_SPLITS, "train")
    (extra,) = get_args(TrainConfig.model_fields["extra_inputs"].annotation)
    assert get_args(extra) == tuple(registry.EXTRA_INPUTS)
    assert registry.one_of(["a"]) == "a" and registry.one_of(registry.PRESETS) == "lite, compact or harpnet-v1"
