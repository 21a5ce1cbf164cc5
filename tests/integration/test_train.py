"""``harpnet train`` end to end: tiny store -> 2 epochs -> checkpoints that downscale runs; resume
equality; extra inputs; DDP with two gloo processes."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tomllib
import torch
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.core.training import state_dict_digest
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.models import load_model

runner = CliRunner()
BOX = "36,42,-112,-104"


def invoke(*args):
    return runner.invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def store(tiny_store, tiny_config):
    """The shared tiny store (read-only) and the tiny model's config."""
    return tiny_store, tiny_config


def weights(path):
    model, meta = load_model(path)
    return model.state_dict(), meta


def test_two_epochs_history_config_and_downscale(store, tmp_path):
    s, tiny = store
    run = tmp_path / "run"
    res = invoke("train", s, "-o", run, "--epochs", 2, "--config", tiny)
    assert res.exit_code == 0, res.output
    assert "epoch 2/2: train loss" in res.output and "test loss" in res.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert {"epoch", "train_loss", "test_loss", "lr", "samples_per_s", "seconds"} <= set(r)
        assert r["lr"] == 1e-3 and r["samples_per_s"] > 0 and np.isfinite(r["test_loss"])
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert cfg["epochs"] == 2 and cfg["channels"] == [8, 16] and cfg["loss"] == "mse"
    assert cfg["resolved"]["world_size"] == 1 and cfg["model"]["coarse_inputs"] == ["precip"]
    assert cfg["grid"]["ny"] == 25
    state, meta = weights(run / "checkpoints" / "epoch_002.pt")
    assert meta["epoch"] == 2 and meta["test_loss"] == lines[1]["test_loss"] and "optimizer" in meta
    assert meta["config"]["coarse_std"][0] > 0
    # the checkpoint runs in harpnet downscale
    grib = write_gfs_grib(tmp_path / "gfs.f003", synthetic_hourly(3, seed=2), [(0, 3)])
    res = invoke("downscale", grib, "-o", tmp_path / "out.nc", "-m", run / "checkpoints" / "epoch_002.pt",
                 "--bbox", "31,33,-99,-96", "--device", "cpu")
    assert res.exit_code == 0, res.output
    p = xr.open_dataset(tmp_path / "out.nc", engine="netcdf4")["precipitation_amount"]
    assert float(p.min()) >= 0 and np.isfinite(p.values).all()
    # a second run into the same folder without --resume is refused in one line
    res = invoke("train", s, "-o", run, "--epochs", 2, "--config", tiny)
    assert res.exit_code == 2 and "--resume" in res.output


@pytest.mark.parametrize("extra", [[], ["--augment"], ["--lr-schedule", "cosine"],
                                   ["--noise-scales", "1,4", "--loss", "crps", "--members", "2"]],
                         ids=["plain", "augment", "cosine", "stochastic"])
def test_interrupt_then_resume_equals_straight_run(store, tmp_path, monkeypatch, extra):
    s, tiny = store
    straight = tmp_path / "straight"
    assert invoke("train", s, "-o", straight, "--epochs", 3, "--config", tiny, *extra).exit_code == 0

    import harpnet_cli.core.training as training

    real = training.rank_share
    calls = {"n": 0}

    def interrupt_in_epoch_2(order, rank, world):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(order, rank, world)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr("harpnet_cli.core.training.rank_share", interrupt_in_epoch_2)
    res = invoke("train", s, "-o", resumed, "--epochs", 3, "--config", tiny, *extra)
    assert res.exit_code == 130, res.output
    assert "--resume" in res.output and "epochs up to 1 are saved" in res.output
    assert [p.name for p in (resumed / "checkpoints").iterdir()] == ["epoch_001.pt"]
    monkeypatch.undo()

    res = invoke("train", s, "-o", resumed, "--epochs", 3, "--config", tiny, "--resume", *extra)
    assert res.exit_code == 0, res.output
    a, _ = weights(straight / "checkpoints" / "epoch_003.pt")
    b, _ = weights(resumed / "checkpoints" / "epoch_003.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    hist = [json.loads(line)["epoch"] for line in (resumed / "history.jsonl").read_text().splitlines()]
    assert hist == [1, 2, 3]


def test_cosine_schedule_sets_each_epochs_rate(store, tmp_path):
    from harpnet_cli.core.training import epoch_lr

    s, tiny = store
    run = tmp_path / "cosine"
    res = invoke("train", s, "-o", run, "--epochs", 3, "--config", tiny, "--lr", 2e-3, "--lr-schedule", "cosine")
    assert res.exit_code == 0, res.output
    rates = [json.loads(line)["lr"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert rates == pytest.approx([epoch_lr(2e-3, e, 3, "cosine") for e in (1, 2, 3)])
    assert rates[0] == pytest.approx(2e-3) and rates[0] > rates[1] > rates[2] > 0
    assert tomllib.loads((run / "config.toml").read_text())["lr_schedule"] == "cosine"


def test_extra_inputs_wind(store, tmp_path):
    s, tiny = store
    run = tmp_path / "wind"
    res = invoke("train", s, "-o", run, "--epochs", 1, "--config", tiny, "--extra-inputs", "wind")
    assert res.exit_code == 0, res.output
    _, meta = weights(run / "checkpoints" / "epoch_001.pt")
    assert meta["config"]["coarse_inputs"] == ["precip", "u", "v"]
    assert len(meta["config"]["coarse_mean"]) == 3


def test_augment_is_recorded_reproducible_and_changes_the_weights(store, tmp_path):
    s, tiny = store
    runs = {}
    for name, extra in {"a": ["--augment"], "b": ["--augment"], "plain": []}.items():
        res = invoke("train", s, "-o", tmp_path / name, "--epochs", 1, "--config", tiny, "--extra-inputs", "wind",
                     "--batch-size", 8, *extra)
        assert res.exit_code == 0, res.output
        runs[name], _ = weights(tmp_path / name / "checkpoints" / "epoch_001.pt")
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["plain"][k]) for k in runs["a"])
    assert tomllib.loads((tmp_path / "a" / "config.toml").read_text())["augment"] is True
    assert tomllib.loads((tmp_path / "plain" / "config.toml").read_text())["augment"] is False


def test_extra_inputs_refused_without_wind(store, tmp_path):
    s, tiny = store
    import shutil

    calm = tmp_path / "calm.zarr"  # the same store with its state columns renamed: no u, no v
    shutil.copytree(s, calm)
    attrs = json.loads((calm / ".zattrs").read_text())
    attrs["state_names"] = [f"x{i}" for i in range(len(attrs["state_names"]))]
    (calm / ".zattrs").write_text(json.dumps(attrs))
    res = invoke("train", calm, "-o", tmp_path / "r", "--epochs", 1, "--config", tiny, "--extra-inputs", "wind")
    assert res.exit_code == 3
    assert "needs state 'u'" in res.output and len(res.output.strip().splitlines()) == 1


def test_init_fine_tunes_from_checkpoint_weights(store, tmp_path):
    s, tiny = store
    base = tmp_path / "base"
    assert invoke("train", s, "-o", base, "--epochs", 1, "--config", tiny,
                  "--derived-inputs", "precip_nearest", "--derived-inputs", "terrain_anomaly").exit_code == 0
    init = base / "checkpoints" / "epoch_001.pt"
    start, start_meta = weights(init)
    assert start_meta["config"]["derived_inputs"] == ["precip_nearest", "terrain_anomaly"]
    ft = tmp_path / "ft"  # a learning rate too small to move float32 weights: the run starts where init ended
    res = invoke("train", s, "-o", ft, "--epochs", 1, "--config", tiny, "--init", init, "--lr", 1e-30)
    assert res.exit_code == 0, res.output
    after, meta = weights(ft / "checkpoints" / "epoch_001.pt")
    assert meta["config"]["derived_inputs"] == ["precip_nearest", "terrain_anomaly"]
    assert meta["config"]["coarse_mean"] == start_meta["config"]["coarse_mean"]
    learned = [k for k in after if "running" not in k and "num_batches" not in k]
    assert learned and all(torch.allclose(after[k], start[k], rtol=1e-6, atol=1e-20) for k in learned)
    fresh = tmp_path / "fresh"
    assert invoke("train", s, "-o", fresh, "--epochs", 1, "--config", tiny, "--lr", 1e-30,
                  "--derived-inputs", "precip_nearest", "--derived-inputs", "terrain_anomaly").exit_code == 0
    other, _ = weights(fresh / "checkpoints" / "epoch_001.pt")
    assert not all(torch.allclose(other[k], start[k], rtol=1e-6, atol=1e-20) for k in learned)


def test_init_refused_with_other_inputs(store, tmp_path):
    s, tiny = store
    assert invoke("train", s, "-o", tmp_path / "w", "--epochs", 1, "--config", tiny,
                  "--extra-inputs", "wind").exit_code == 0
    res = invoke("train", s, "-o", tmp_path / "ft", "--epochs", 1, "--config", tiny,
                 "--init", tmp_path / "w" / "checkpoints" / "epoch_001.pt")
    assert res.exit_code == 2 and "coarse inputs" in res.output


def test_mix_draws_the_second_store_into_every_epoch(store, tmp_path):
    s, tiny = store
    other = tmp_path / "other.zarr"
    res = invoke("prepare", "synthetic", "-o", other, "--samples", 6, "--bbox", "30,36,-98,-90", "--seed", 11)
    assert res.exit_code == 0, res.output
    run = tmp_path / "mixed"
    res = invoke("train", s, "-o", run, "--epochs", 1, "--config", tiny, "--mix", other, "--mix-ratio", 0.5,
                 "--batch-size", 8)
    assert res.exit_code == 0, res.output
    record = json.loads((run / "history.jsonl").read_text())
    plain = tmp_path / "plain"
    assert invoke("train", s, "-o", plain, "--epochs", 1, "--config", tiny, "--batch-size", 8).exit_code == 0
    own = json.loads((plain / "history.jsonl").read_text())["train_samples"]
    assert record["train_samples"] == own + round(0.5 * own)
    _, meta = weights(run / "checkpoints" / "epoch_001.pt")
    assert meta["mix"] == str(other)
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.train import store_grid

    main_grid, mixed = store_grid(TrainingStore.open(s)), store_grid(TrainingStore.open(other))
    assert mixed != main_grid  # the mixed store's region is recorded beside the main store's
    assert meta["config"]["grid"] == main_grid and meta["config"]["regions"] == [mixed]
    assert tomllib.loads((run / "config.toml").read_text())["mix_ratio"] == 0.5


def test_mix_refuses_a_store_without_the_extra_inputs(store, tmp_path):
    s, tiny = store
    import shutil

    calm = tmp_path / "calm.zarr"
    shutil.copytree(s, calm)
    attrs = json.loads((calm / ".zattrs").read_text())
    attrs["state_names"] = [f"x{i}" for i in range(len(attrs["state_names"]))]
    (calm / ".zattrs").write_text(json.dumps(attrs))
    res = invoke("train", s, "-o", tmp_path / "r", "--epochs", 1, "--config", tiny, "--extra-inputs", "wind",
                 "--mix", calm)
    assert res.exit_code == 3 and "calm.zarr" in res.output and "needs state 'u'" in res.output
    res = invoke("train", s, "-o", tmp_path / "r2", "--epochs", 1, "--config", tiny, "--mix", tmp_path / "none")
    assert res.exit_code == 3 and "none" in res.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_gloo(store, tmp_path):
    s, tiny = store
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "harpnet_cli", "train", str(s), "-o", str(run), "--epochs", "2", "--config", str(tiny)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(r["world_size"] == 2 and r["ranks_in_sync"] for r in lines)
    assert lines[0]["train_samples"] == 2 * -(-lines[0]["train_samples"] // 2)  # padded like DistributedSampler
    model, _ = load_model(run / "checkpoints" / "epoch_002.pt")
    assert state_dict_digest(model) == lines[-1]["weights_sha256"]  # rank 0's file = the weights all ranks hold
    assert proc.stdout.count("epochs 1-2") == 1  # only rank 0 prints


def test_period_aware_model_from_a_store_of_several_window_lengths(store, tmp_path):
    """prepare --periods 3,6,24 -> train --extra-inputs period -> the model knows its lengths; evaluate
    --period picks one length; downscale gives a 6-hour window to the model as it is (no warning) and a
    2-hour one through the 3-hour equivalent (with a warning); both keep every coarse cell's mass."""
    _, tiny = store
    multi = tmp_path / "multi.zarr"
    res = invoke("prepare", "synthetic", "-o", multi, "--samples", 8, "--bbox", BOX, "--keep-dry", 1.0,
                 "--periods", "3,6,24", "--seed", 4)
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    res = invoke("train", multi, "-o", run, "--epochs", 1, "--config", tiny, "--extra-inputs", "period")
    assert res.exit_code == 0, res.output
    model, _ = load_model(run / "checkpoints" / "epoch_001.pt")
    assert model.config.coarse_inputs == ["precip", "log_period_hours"]
    assert set(model.config.periods) <= {3.0, 6.0, 24.0} and len(model.config.periods) >= 2
    assert model.config.window_input(6.0) == ((1.0, 6.0) if model.config.knows_period(6.0) else (0.5, 3.0))
    assert model.config.window_input(2.0) == (1.5, 3.0)
    ckpt = run / "checkpoints" / "epoch_001.pt"
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.splits import SPLIT_NAMES

    s = TrainingStore.open(multi)
    hours = np.rint(np.exp(np.asarray(s.state[: len(s)])[:, -1]))
    split_of = np.asarray(s.split[: len(s)])
    code = next(k for k in (1, 2) if (split_of == k).any())  # test or validation, whichever has samples
    length = float(hours[split_of == code][0])
    res = invoke("evaluate", ckpt, "--data", multi, "--split", SPLIT_NAMES[code], "--period", length,
                 "--json", tmp_path / "e.json")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["period_hours"] == length and doc["n_samples"] == int(((split_of == code) & (hours == length)).sum())
    res = invoke("evaluate", ckpt, "--data", multi, "--split", SPLIT_NAMES[code], "--period", 12)
    assert res.exit_code == 2 and "no 12-hour window" in res.output
    # a 3-hour model sees a longer window through its 3-hour equivalent; the baselines do not depend on the model
    longer = float(max(hours[split_of == code]))
    assert longer > 3
    plain = make_random_checkpoint(tmp_path / "plain.pt", seed=1, channels=[8, 16], bridge=16)
    rows = {}
    for name, model_file in (("aware", ckpt), ("plain", plain)):
        res = invoke("evaluate", model_file, "--data", multi, "--split", SPLIT_NAMES[code], "--period", longer,
                     "--json", tmp_path / f"{name}.json")
        assert res.exit_code == 0, res.output
        rows[name] = json.loads((tmp_path / f"{name}.json").read_text())["summary"]
    for base in ("bilinear", "bilinear_conservative", "bicubic"):
        assert rows["plain"][base] == rows["aware"][base]
    assert rows["plain"]["bilinear_conservative"]["mass_error"] < 1e-4  # on the window's own amounts
    assert rows["plain"]["plain"]["mass_error"] < 1e-4
    # a store of 3-hour windows that does not record their length: the period-aware model is told 3 hours
    three, _ = store
    res = invoke("evaluate", ckpt, "--data", three, "--split", "validation", "--json", tmp_path / "three.json")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "three.json").read_text())["summary"]
    assert summary["epoch_001"]["mass_error"] < 1e-4
    from harpnet_cli.testing.fixtures import write_cf_netcdf

    hourly = synthetic_hourly(6, seed=3)
    for hours, warned in ((6, not model.config.knows_period(6.0)), (2, True)):
        nc = write_cf_netcdf(tmp_path / f"in{hours}.nc", hourly[: hours * (6 // hours)], hours)
        res = invoke("downscale", nc, "-o", tmp_path / f"out{hours}.nc", "-m", ckpt, "--bbox", "31,33,-99,-96")
        assert res.exit_code == 0, res.output
        assert ("windows were downscaled through" in res.output) == warned, res.output
        out = xr.open_dataset(tmp_path / f"out{hours}.nc", engine="netcdf4")["precipitation_amount"]
        assert np.isfinite(out.values).all() and float(out.min()) >= 0
