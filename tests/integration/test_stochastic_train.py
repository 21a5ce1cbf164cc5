"""A stochastic model end to end on the tiny store: ``train --noise-scales --loss crps`` (seeded, and
from a deterministic ``--init``), then ``evaluate --samples`` and its ensemble scores, checked by hand."""

import json
import math

import numpy as np
import pytest
import tomllib
import torch
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.core.model.wrapper import AMPLITUDE_BIAS, GATE_BIAS
from harpnet_cli.workflows.models import load_model

runner = CliRunner()
STOCHASTIC = ("--noise-scales", "1,4", "--loss", "crps", "--members", 2)


def invoke(*args):
    return runner.invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


def weights(path):
    model, meta = load_model(path)
    return model.state_dict(), meta


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_store, tiny_config):
    """The shared tiny store and one epoch of a stochastic tiny model trained on it."""
    d = tmp_path_factory.mktemp("stochastic") / "run"
    res = invoke("train", tiny_store, "-o", d, "--config", tiny_config, "--epochs", 1, *STOCHASTIC)
    assert res.exit_code == 0, res.output
    return tiny_store, d


@pytest.fixture(scope="module")
def deterministic(tmp_path_factory, tiny_store, tiny_config):
    """A deterministic tiny checkpoint (one epoch, MSE)."""
    d = tmp_path_factory.mktemp("deterministic") / "run"
    res = invoke("train", tiny_store, "-o", d, "--config", tiny_config, "--epochs", 1)
    assert res.exit_code == 0, res.output
    return d / "checkpoints" / "epoch_001.pt"


def test_train_writes_a_stochastic_checkpoint_whose_amplitude_head_learned(run):
    _, rd = run
    state, meta = weights(rd / "checkpoints" / "epoch_001.pt")
    assert meta["config"]["noise_scales"] == [1.0, 4.0] and meta["config"]["noise_gate"] is True
    assert meta["config"]["channels"] == [8, 16]
    assert state["amplitude.weight"].shape == (3, 8, 1, 1)  # two amplitudes and the dry gate
    # the training step reached the amplitude head (the members' noise went in): it left its initial bias
    start = torch.tensor([AMPLITUDE_BIAS, AMPLITUDE_BIAS, GATE_BIAS])
    assert (state["amplitude.bias"] - start).abs().min() > 1e-6
    cfg = tomllib.loads((rd / "config.toml").read_text())
    assert cfg["loss"] == "crps" and cfg["members"] == 2 and cfg["noise_scales"] == [1.0, 4.0]
    history = [json.loads(line) for line in (rd / "history.jsonl").read_text().splitlines()]
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]) and history[0]["test_loss"] > 0


def test_two_identical_runs_give_identical_weights(run, tiny_config, tmp_path):
    store, rd = run
    res = invoke("train", store, "-o", tmp_path / "again", "--config", tiny_config, "--epochs", 1, *STOCHASTIC)
    assert res.exit_code == 0, res.output
    a, _ = weights(rd / "checkpoints" / "epoch_001.pt")
    b, _ = weights(tmp_path / "again" / "checkpoints" / "epoch_001.pt")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_usage_errors_of_stochastic_training(run, deterministic, tiny_config, tmp_path):
    store, rd = run
    res = invoke("train", store, "-o", tmp_path / "a", "--config", tiny_config, "--epochs", 1, "--noise-scales", "1,4")
    assert res.exit_code == 2 and "crps" in res.output  # a stochastic model trains with the CRPS only
    res = invoke("train", store, "-o", tmp_path / "b", "--config", tiny_config, "--epochs", 1, "--loss", "crps")
    assert res.exit_code == 2 and "noise" in res.output  # and only it does
    # continuing a stochastic model needs its noise scales
    res = invoke(
        "train",
        store,
        "-o",
        tmp_path / "c",
        "--config",
        tiny_config,
        "--epochs",
        1,
        "--init",
        rd / "checkpoints" / "epoch_001.pt",
    )
    assert res.exit_code == 2 and "--noise-scales 1,4" in res.output
    assert not (tmp_path / "c" / "checkpoints").exists()


def test_init_from_a_deterministic_checkpoint(run, deterministic, tiny_config, tmp_path):
    """The network starts from the deterministic weights; the amplitude head is new (its initial bias).

    A learning rate of 1e-12 keeps every Adam step below 1e-12, so after the epoch the weights are still
    (to float precision) the ones the run started from.
    """
    store, _ = run
    res = invoke(
        "train",
        store,
        "-o",
        tmp_path / "init",
        "--config",
        tiny_config,
        "--epochs",
        1,
        *STOCHASTIC,
        "--init",
        deterministic,
        "--lr",
        1e-12,
    )
    assert res.exit_code == 0, res.output
    model, meta = load_model(tmp_path / "init" / "checkpoints" / "epoch_001.pt")
    init, init_meta = load_model(deterministic)
    assert meta["config"]["noise_scales"] == [1.0, 4.0] and init_meta["config"]["noise_scales"] == []
    assert model.amplitude is not None and init.amplitude is None
    params = dict(model.named_parameters())
    old = dict(init.named_parameters())
    assert set(params) - set(old) == {"amplitude.weight", "amplitude.bias"}
    for name, p in old.items():
        torch.testing.assert_close(params[name], p, rtol=0, atol=1e-9, msg=name)
    assert any(
        float(p.detach().abs().max()) > 0 for name, p in old.items() if name.startswith("net.head")
    )  # it trained
    # a fresh amplitude head: the documented initial bias, and weights a tenth of a fresh 1x1 conv's
    bias = params["amplitude.bias"].detach()
    torch.testing.assert_close(bias, torch.tensor([AMPLITUDE_BIAS, AMPLITUDE_BIAS, GATE_BIAS]), rtol=0, atol=1e-9)
    w = params["amplitude.weight"].detach()
    bound = 1 / math.sqrt(w.shape[1])  # kaiming-uniform bound of a 1x1 conv over 8 channels
    assert 0 < float(w.abs().max()) <= 0.1 * bound + 1e-9
    # the input statistics are the init's
    assert meta["config"]["coarse_mean"] == init_meta["config"]["coarse_mean"]
    assert meta["config"]["static_std"] == init_meta["config"]["static_std"]


def test_interrupted_then_resumed_equals_a_straight_run(run, tiny_config, tmp_path):
    """The members' noise of an epoch depends on the seed and the epoch only, so --resume continues exactly."""
    import shutil

    store, rd = run
    resumed = tmp_path / "resumed"
    shutil.copytree(rd, resumed)  # one epoch done
    res = invoke("train", store, "-o", resumed, "--config", tiny_config, "--epochs", 2, *STOCHASTIC, "--resume")
    assert res.exit_code == 0, res.output
    res = invoke("train", store, "-o", tmp_path / "straight", "--config", tiny_config, "--epochs", 2, *STOCHASTIC)
    assert res.exit_code == 0, res.output
    a, _ = weights(resumed / "checkpoints" / "epoch_002.pt")
    b, _ = weights(tmp_path / "straight" / "checkpoints" / "epoch_002.pt")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    one, _ = weights(rd / "checkpoints" / "epoch_001.pt")
    assert not torch.equal(one["amplitude.weight"], a["amplitude.weight"])  # the second epoch trained it


def test_train_with_bfloat16_autocast(run, tiny_config, tmp_path):
    store, _ = run
    res = invoke("train", store, "-o", tmp_path / "amp", "--config", tiny_config, "--epochs", 1, *STOCHASTIC, "--amp")
    assert res.exit_code == 0, res.output


# -- evaluate -------------------------------------------------------------------------------------
def _members_by_hand(ckpt, store_path, samples, seed):
    """The stochastic model's members on the validation split, its truth and the conservative bilinear."""
    from harpnet_cli.core.baselines import bilinear
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.evaluate import load_models

    store = TrainingStore.open(store_path)
    idx = store.indices("validation")
    sample = store.read(idx)
    noise = load_models(ckpt, store, torch.device("cpu"), samples, seed)[0].noise  # the draws evaluate makes
    assert noise is not None and noise.members == samples and noise.scales == (1.0, 4.0)
    model, _ = load_model(ckpt)
    model.for_inference()
    coarse = torch.from_numpy(np.asarray(sample["coarse"][:, :1], dtype=np.float32))
    terrain = torch.from_numpy(np.asarray(sample["terrain"], dtype=np.float32))
    with torch.no_grad():
        members = model(coarse, torch.cat([terrain, noise.for_rows(idx, (64, 64))], dim=1))
    truth = np.asarray(sample["fine"][:, 0], dtype=np.float64)
    reference = bilinear(np.asarray(sample["coarse"][:, 0], dtype=np.float32), mass_conserving=True)
    return members[:, :, 0].double().numpy(), truth, np.asarray(reference, dtype=np.float64)


def test_evaluate_scores_the_members_as_an_ensemble(run, tmp_path):
    store, rd = run
    ckpt = rd / "checkpoints" / "epoch_001.pt"
    samples = 3
    res = invoke(
        "evaluate", ckpt, "--data", store, "--split", "validation", "--samples", samples, "--json", tmp_path / "e.json"
    )
    assert res.exit_code == 0, res.output
    assert "fair CRPS" in res.output and "spread/skill" in res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["split"] == "validation"
    assert {"epoch_001", "epoch_001_sample"} <= set(doc["rows"])
    ens = doc["ensemble"]
    assert ens is not None and ens["n_members"] == samples

    x, y, ref = _members_by_hand(ckpt, store, samples, seed=0)
    m = x.shape[0]
    assert ens["n_values"] == y.size == doc["n_samples"] * 64 * 64
    assert not np.allclose(x[0], x[1])  # the samples are different members
    # continuous rows: the first sample, and the mean of the samples
    assert doc["rows"]["epoch_001_sample"]["continuous"]["mae"] == pytest.approx(np.abs(x[0] - y).mean(), rel=1e-4)
    assert doc["rows"]["epoch_001"]["continuous"]["mae"] == pytest.approx(np.abs(x.mean(0) - y).mean(), rel=1e-4)
    # CRPS: mean |x_k - y| - sum_{k,l} |x_k - x_l| / (2 K^2), fair with 2 K (K - 1)
    skill = np.abs(x - y).mean(axis=0)
    pairs = np.abs(x[:, None] - x[None]).sum(axis=(0, 1))
    assert ens["crps"] == pytest.approx((skill - pairs / (2 * m * m)).mean(), rel=1e-4)
    assert ens["crps_fair"] == pytest.approx((skill - pairs / (2 * m * (m - 1))).mean(), rel=1e-4)
    assert ens["crps_fair"] < ens["crps"]
    # spread (unbiased member variance) and the skill of the mean; the ratio with sqrt((m + 1) / m)
    spread = math.sqrt(x.var(axis=0, ddof=1).mean())
    rmse = math.sqrt(((x.mean(axis=0) - y) ** 2).mean())
    assert ens["spread"] == pytest.approx(spread, rel=1e-4) and spread > 0
    assert ens["rmse_mean"] == pytest.approx(rmse, rel=1e-4)
    assert ens["spread_skill_ratio"] == pytest.approx(math.sqrt((m + 1) / m) * spread / rmse, rel=1e-4)
    # rank histogram: samples + 1 bins, ties with members shared equally
    below, ties = (x < y).sum(axis=0), (x == y).sum(axis=0)
    want = np.array([((below <= r) & (r <= below + ties)) / (ties + 1.0) for r in range(m + 1)]).sum(axis=(1, 2, 3))
    assert len(ens["rank_histogram"]) == samples + 1
    np.testing.assert_allclose(ens["rank_histogram"], want / y.size, atol=1e-3)
    assert sum(ens["rank_histogram"]) == pytest.approx(1.0)
    # Brier scores and their skill against the conservative bilinear's 0/1 forecast
    assert [b["threshold_mm"] for b in ens["brier"]] == [1.0, 10.0, 25.0]
    for b in ens["brier"]:
        t = b["threshold_mm"]
        o = (y >= t).astype(float)
        bs = (((x >= t).mean(axis=0) - o) ** 2).mean()
        bs_ref = (((ref >= t).astype(float) - o) ** 2).mean()
        assert b["base_rate"] == pytest.approx(o.mean())
        assert b["brier_score"] == pytest.approx(bs, abs=2e-4)
        assert b["reference_brier"] == pytest.approx(bs_ref, abs=1e-6)
        if bs_ref > 0:
            assert b["brier_skill"] == pytest.approx(1 - b["brier_score"] / b["reference_brier"], rel=1e-9)
            assert b["brier_skill"] == pytest.approx(1 - bs / bs_ref, abs=5e-2)
        assert sum(b["reliability"]["count"]) == ens["n_values"]
