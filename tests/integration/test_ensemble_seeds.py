"""``harpnet ensemble`` over several runs (seed ensembles) on a tiny store and tiny 1-2 epoch runs."""

import json

import pytest
import torch
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.config import EnsembleConfig
from harpnet_cli.io.store import TrainingStore
from harpnet_cli.workflows.models import load_ensemble_models, load_model

runner = CliRunner()
OTHER = 'channels = [4, 8]\nbridge = 8\ndevice = "cpu"\nthreads = 1\n'


def invoke(*args):
    return runner.invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, tiny_store, tiny_store_options, tiny_config):
    """The same store as ``tiny_store`` without a test split, and on ``tiny_store`` two seeds of one
    architecture and a third of another."""
    d = tmp_path_factory.mktemp("seeds")
    res = invoke("prepare", *tiny_store_options, "-o", d / "no_test.zarr", "--test-fraction", 0)
    assert res.exit_code == 0, res.output
    (d / "other.toml").write_text(OTHER)
    other = d / "other.toml"
    for run, seed, epochs, config in (("a", 1, 2, tiny_config), ("b", 2, 2, tiny_config), ("c", 3, 1, other)):
        res = invoke("train", tiny_store, "-o", d / run, "--epochs", epochs, "--seed", seed, "--config", config)
        assert res.exit_code == 0, res.output
    return d


def test_several_runs_make_one_members_file(seeds, tiny_store, tmp_path):
    d = seeds
    res = invoke("ensemble", d / "a", d / "b", "--data", tiny_store, "-o", tmp_path / "e.pt", "--select", "all")
    assert res.exit_code == 0, res.output
    models, mode, meta = load_ensemble_models(tmp_path / "e.pt")
    sel = meta["selection"]
    assert mode == "members" and len(models) == 4 == len(sel["members"])
    assert {(m["run"], m["epoch"]) for m in sel["members"]} == {(str(d / r), e) for r in "ab" for e in (1, 2)}
    assert sel["runs"] == [str(d / "a"), str(d / "b")] and sel["run_dir"] is None
    assert len(sel["member_mae"]) == 4  # keyed by run and epoch, so no epoch hides another
    assert f"{d / 'a'}@e1" in res.output and f"{d / 'b'}@e2" in res.output and "test MAE" in res.output


def test_epochs_last_with_a_checkpoint_file(seeds, tiny_store, tmp_path):
    d = seeds
    ckpt = d / "c" / "checkpoints" / "epoch_001.pt"
    res = invoke("ensemble", d / "a", d / "b", ckpt, d / "a", "--data", tiny_store, "-o", tmp_path / "last.pt",
                 "--epochs", "last", "--select", "all")
    assert res.exit_code == 0, res.output
    models, _, meta = load_ensemble_models(tmp_path / "last.pt")
    sel = meta["selection"]
    assert len(models) == 3  # the repeated run folder counts once
    assert sorted((m["run"], m["epoch"]) for m in sel["members"]) == sorted(
        [(str(d / "a"), 2), (str(d / "b"), 2), (str(ckpt), 1)])
    assert sel["candidate_epochs"] == "last"
    res = invoke("evaluate", tmp_path / "last.pt", "--data", tiny_store, "--json", tmp_path / "ev.json",
                 "--max-samples", 4)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ev.json").read_text())["ensemble"]["n_members"] == 3


def test_greedy_on_the_validation_split_never_worse_than_its_best_member(seeds, tiny_store, tmp_path):
    d = seeds
    res = invoke("ensemble", d / "a", d / "b", "--data", tiny_store, "-o", tmp_path / "g.pt",
                 "--select", "greedy", "--split", "validation")
    assert res.exit_code == 0, res.output
    _, _, meta = load_ensemble_models(tmp_path / "g.pt")
    sel = meta["selection"]
    assert sel["split"] == "validation" and sel["ranked_by"] == "validation_mae"
    assert sel["n_samples"] == len(TrainingStore.open(tiny_store).indices("validation")) > 0
    steps = sel["steps"]
    assert len(steps) == 4 and steps[0]["accepted"]
    assert all({"run", "epoch", "mae", "accepted"} <= set(s) for s in steps)
    assert steps[0]["mae"] == pytest.approx(min(sel["member_mae"].values()))  # starts from the best member
    assert sel["ensemble_mae"] <= min(sel["member_mae"].values()) + 1e-12  # never worse than it there
    assert [(m["run"], m["epoch"]) for m in sel["members"]] == [(s["run"], s["epoch"]) for s in steps
                                                                if s["accepted"]]
    assert "validation MAE" in res.output


def test_empty_split_needs_select_all(seeds, tmp_path):
    d = seeds
    store = d / "no_test.zarr"
    res = invoke("ensemble", d / "a", d / "b", "--data", store, "-o", tmp_path / "u.pt", "--epochs", "last",
                 "--select", "all")
    assert res.exit_code == 0, res.output
    models, _, meta = load_ensemble_models(tmp_path / "u.pt")
    sel = meta["selection"]
    assert len(models) == 2 and sel["ensemble_mae"] is None and sel["member_mae"] == {} and sel["n_samples"] == 0
    assert all(m["mae"] is None for m in sel["members"])
    assert "not scored" in res.output

    res = invoke("ensemble", d / "a", d / "b", "--data", store, "-o", tmp_path / "g.pt", "--select", "greedy")
    assert res.exit_code == 3 and len(res.output.strip().splitlines()) == 1
    assert "test split is empty" in res.output and not (tmp_path / "g.pt").exists()


def test_soup_of_runs_needs_one_architecture(seeds, tiny_store, tmp_path):
    d = seeds
    res = invoke("ensemble", d / "a", d / "c", "--data", tiny_store, "-o", tmp_path / "bad.pt", "--mode", "soup",
                 "--select", "all")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "architecture" in res.output and "channels" in res.output and not (tmp_path / "bad.pt").exists()

    res = invoke("ensemble", d / "a", d / "b", "--data", tiny_store, "-o", tmp_path / "soup.pt", "--mode", "soup",
                 "--epochs", "last", "--select", "all")
    assert res.exit_code == 0, res.output
    model, meta = load_model(tmp_path / "soup.pt")
    assert meta["soup_members"] == [{"run": m["run"], "epoch": 2} for m in meta["selection"]["members"]]
    a, _ = load_model(d / "a" / "checkpoints" / "epoch_002.pt")
    b, _ = load_model(d / "b" / "checkpoints" / "epoch_002.pt")
    k = next(n for n, v in model.state_dict().items() if v.is_floating_point() and v.ndim == 4)
    torch.testing.assert_close(model.state_dict()[k], (a.state_dict()[k] + b.state_dict()[k]) / 2)


def test_bad_choices_and_legacy_config(tmp_path):
    for opt, value in (("--epochs", "first"), ("--split", "dev")):
        res = invoke("ensemble", tmp_path, "--data", tmp_path, "-o", tmp_path / "o.pt", opt, value)
        assert res.exit_code == 2 and opt in res.output
    cfg = EnsembleConfig.model_validate({"run_dir": tmp_path / "r", "data": tmp_path, "output": tmp_path / "o.pt"})
    assert cfg.runs == [tmp_path / "r"] and cfg.run_dir == tmp_path / "r"
    res = invoke("ensemble", tmp_path / "missing", "--data", tmp_path, "-o", tmp_path / "o.pt")
    assert res.exit_code == 3 and "no such run folder" in res.output
