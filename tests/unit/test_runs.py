"""The files of a training run folder (``harpnet_cli.io.runs``) and the process-group helpers outside torchrun."""

import math

import pytest
import tomllib
import torch

from harpnet_cli.io import runs
from harpnet_cli.workflows.distributed import DistEnv, all_sum, rank_digests, sync_buffers, wrap_model


def test_epoch_checkpoints_are_sorted_by_epoch_and_skip_other_names(tmp_path):
    assert runs.epoch_checkpoints(tmp_path) == [] and runs.last_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    for name in ("epoch_010.pt", "epoch_002.pt", "epoch_best.pt", "other.pt"):
        (tmp_path / "checkpoints" / name).touch()
    assert runs.checkpoint_path(tmp_path, 2) == tmp_path / "checkpoints" / "epoch_002.pt"
    assert runs.epoch_checkpoints(tmp_path) == [(2, runs.checkpoint_path(tmp_path, 2)),
                                                (10, runs.checkpoint_path(tmp_path, 10))]
    assert runs.last_checkpoint(tmp_path) == (10, runs.checkpoint_path(tmp_path, 10))


def test_history_is_appended_read_truncated_and_cleared(tmp_path):
    for epoch, loss in ((1, 0.5), (2, None), (3, 0.25)):
        runs.append_history(tmp_path, {"epoch": epoch, "test_loss": loss})
    with (tmp_path / runs.HISTORY).open("a") as f:
        f.write('not json\n["a list"]\n{"epoch": "4"}\n')
    assert [r["epoch"] for r in runs.read_history(tmp_path)] == [1, 2, 3]
    assert runs.history_losses(tmp_path) == {1: 0.5, 3: 0.25}
    runs.truncate_history(tmp_path, 2)
    assert [r["epoch"] for r in runs.read_history(tmp_path)] == [1, 2]
    runs.truncate_history(tmp_path, 1, {"epoch": 1, "test_loss": 9.0})  # epoch 1 is there: kept as it was
    runs.truncate_history(tmp_path, 2, {"epoch": 2, "test_loss": 0.75})  # epoch 2 is missing: completed
    assert runs.history_losses(tmp_path) == {1: 0.5, 2: 0.75}
    runs.clear_history(tmp_path)
    assert runs.read_history(tmp_path) == [] and not (tmp_path / runs.HISTORY).exists()
    runs.clear_history(tmp_path)  # nothing to remove


def test_config_toml_round_trips(tmp_path):
    data = {"name": 'a "quoted" é', "n": 3, "lr": 1e-3, "flag": True, "none": None, "list": [1, 2, None],
            "nan": math.nan, "resolved": {"device": "cpu", "inf": -math.inf}, "grid": {"ny": 25}}
    path = runs.write_config(tmp_path, data)
    back = tomllib.loads(path.read_text())
    assert back["name"] == data["name"] and back["lr"] == 1e-3 and back["list"] == [1, 2] and "none" not in back
    assert math.isnan(back["nan"]) and back["resolved"] == {"device": "cpu", "inf": -math.inf}
    assert back["grid"] == {"ny": 25} and back["flag"] is True
    with pytest.raises(TypeError):
        runs.to_toml({"x": object()})


def test_outside_torchrun_one_process_and_no_collectives():
    env = DistEnv.from_env({})
    assert env == DistEnv() and env.main and not env.distributed
    ddp = DistEnv.from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ddp.rank, ddp.world_size, ddp.local_rank, ddp.local_world_size) == (1, 4, 1, 4)
    assert ddp.distributed and not ddp.main
    model = torch.nn.BatchNorm2d(2)
    assert all_sum([1.5, 2.0], env) == [1.5, 2.0]
    sync_buffers(model, env)
    assert len(rank_digests(model, env)) == 1
    assert wrap_model(model, env, torch.device("cpu")) is model
