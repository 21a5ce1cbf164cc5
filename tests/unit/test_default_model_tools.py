"""The tools that build the bundled default model: ``compare_variants.py`` and ``bundle_default.py``."""

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.core.model.onnx import GraphModel
from harpnet_cli.io.onnx_graphs import graph_matches
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.models import load_model

ROOT = Path(__file__).resolve().parents[2]


def summary(mae: float, fss: float) -> dict:
    """An ``evaluate --json`` summary with one model row and the baselines."""
    row = {"mae": mae, "rmse": 2 * mae, "fss_p90_w1": fss, "mass_error": 0.0, "csi_2p54": 0.5,
           "spectral_ratio_high": 0.3}
    base = {"bilinear": {**row, "mae": 0.2, "fss_p90_w1": 0.80, "mass_error": 0.1},
            "bilinear_conservative": {**row, "mae": 0.16, "fss_p90_w1": 0.84},
            "bicubic": {**row, "mae": 0.18, "fss_p90_w1": 0.82, "mass_error": 0.05}}
    return {"schema": "harpnet-evaluate/1", "summary": {"epoch_010": row, **base}}


@pytest.fixture
def evals(tmp_path):
    d = tmp_path / "eval"
    d.mkdir()
    for name, mae, fss in [("real_s1", 0.15, 0.85), ("real_s2", 0.13, 0.87), ("syn", 0.14, 0.86)]:
        (d / f"{name}.conus.json").write_text(json.dumps(summary(mae, fss)))
    (d / "syn.west.json").write_text(json.dumps(summary(0.12, 0.9)))
    (d / "notes.txt").write_text("not an evaluate file")
    return d


def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=False)


def test_compare_variants_averages_seeds_and_scores_against_baselines(evals, tmp_path):
    out, md = tmp_path / "variants.json", tmp_path / "variants.md"
    res = run_tool(ROOT / "tools" / "compare_variants.py", evals, "-o", out, "--markdown", md)
    assert res.returncode == 0, res.stderr
    tables = json.loads(out.read_text())
    conus = tables["held-out real day 2016-09-22, CONUS: training variants"]
    real = conus["real (seeds)"]
    assert real["seeds"] == 2 and real["MAE (mm)"] == pytest.approx(0.14)
    assert real["MAE seed spread (mm)"] == pytest.approx(0.01)
    assert real["MAE / bilinear"] == pytest.approx(0.7) and real["MAE / cons. bilinear"] == pytest.approx(0.875)
    assert real["FSS - cons. bilinear"] == pytest.approx(0.02)
    assert conus["bilinear_conservative"]["MAE / cons. bilinear"] == pytest.approx(1.0)
    assert list(conus)[:2] == ["real (seeds)", "syn"]
    west = tables["held-out real day 2016-09-22, West (31-49N, 125-102W): training variants"]
    assert west["syn"]["MAE / cons. bilinear"] == pytest.approx(0.75)
    assert "| real (seeds) | 0.1400 ± 0.0100 | 0.700 | 0.875 | 0.8600 | +0.0200 |" in md.read_text()


def test_compare_variants_refuses_an_empty_folder(tmp_path):
    res = run_tool(ROOT / "tools" / "compare_variants.py", tmp_path, "-o", tmp_path / "v.json")
    assert res.returncode != 0 and "no NAME.REGION.json" in res.stderr


def test_bundle_default_writes_fp16_weights_and_a_card(evals, tmp_path):
    ckpt = make_random_checkpoint(tmp_path / "best.pt", preset="lite", seed=3)
    out = tmp_path / "assets"
    variants = tmp_path / "variants.json"
    variants.write_text(json.dumps({"variants table": {"syn": {"MAE (mm)": 0.14}}}))
    res = run_tool(ROOT / "tools" / "bundle_default.py", ckpt, "--eval", f"real day, CONUS={evals / 'syn.conus.json'}",
                   "--variants", variants, "-o", out, "--trained-on", "random weights, for a test")
    assert res.returncode == 0, res.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["trained_on"] == "random weights, for a test"
    assert card["preset"] == "lite" and card["fp16_max_relative_change"] < 0.01
    table = card["scores"]["real day, CONUS"]
    assert table["harpnet (this model)"]["MAE (mm)"] == pytest.approx(0.14)
    assert table["bilinear_conservative"]["MAE (mm)"] == pytest.approx(0.16)
    assert card["scores"]["variants table"] == {"syn": {"MAE (mm)": 0.14}}
    model, _ = load_model(out / "model.pt")
    assert model.config.preset == "lite"
    assert (out / "model.pt").stat().st_size < 0.6 * ckpt.stat().st_size  # half precision, no optimizer
    graph = GraphModel((out / "model.onnx").read_bytes())  # its graph, for ONNX Runtime without torch
    assert graph_matches(graph.metadata, hashlib.sha256((out / "model.pt").read_bytes()).hexdigest())
    assert not (out / "stochastic.onnx").exists()


def test_bundle_default_wants_to_know_what_a_loose_checkpoint_was_trained_on(tmp_path):
    ckpt = make_random_checkpoint(tmp_path / "loose.pt", preset="lite", seed=1)
    res = run_tool(ROOT / "tools" / "bundle_default.py", ckpt, "-o", tmp_path / "assets")
    assert res.returncode != 0 and "--trained-on" in res.stderr and "loose.pt" in res.stderr


@pytest.fixture(scope="module")
def bundle_tool():
    spec = importlib.util.spec_from_file_location("bundle_default", ROOT / "tools" / "bundle_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trained_on_is_read_from_the_runs_and_their_stores(bundle_tool, tmp_path):
    """Pre-training, then two fine-tuned seeds averaged: the card text follows the runs' own settings."""
    from typer.testing import CliRunner

    from harpnet_cli.cli import app

    def harpnet(*args):
        res = CliRunner().invoke(app, ["--quiet", *map(str, args)])
        assert res.exit_code == 0, res.output

    store = tmp_path / "syn.zarr"
    harpnet("prepare", "synthetic", "-o", store, "--samples", 3, "--bbox", "36,42,-112,-104", "--keep-dry", 1.0)
    tiny = ("--preset", "lite", "--batch-size", 4, "--max-batches", 1, "--device", "cpu")
    harpnet("train", store, "-o", tmp_path / "pre", "--epochs", 1, *tiny)
    pre = tmp_path / "pre" / "checkpoints" / "epoch_001.pt"
    for seed in (1, 2):
        harpnet("train", store, "-o", tmp_path / f"ft{seed}", "--init", pre,
                "--epochs", 2, "--lr", 5e-4, "--lr-schedule", "cosine", "--augment", "--seed", seed, *tiny)
    soup = tmp_path / "soup.pt"
    harpnet("ensemble", tmp_path / "ft1", tmp_path / "ft2", "--data", store, "--epochs", "last", "--select", "all",
            "--mode", "soup", "-o", soup)

    facts = bundle_tool.training_facts(soup, load_model(soup)[1])
    assert facts["seeds"] == 2 and facts["soup"] and facts["epochs"] == 2 and facts["lr_schedule"] == "cosine"
    assert facts["init"]["epoch"] == 1 and facts["init"]["units"] == 3 and facts["real"]["kind"] == "synthetic"
    text = bundle_tool.describe_training(facts)
    assert text.startswith("Synthetic pre-training (1 epoch) on 3 full-domain 3-hour fields")
    assert "2 epochs, batch 4, learning rate 0.0005 on a cosine schedule, 2 seeds whose weights are averaged" in text
    assert "randomly flipped or transposed" in text
    single = tmp_path / "ft1" / "checkpoints" / "epoch_002.pt"  # a plain checkpoint: its own run
    facts = bundle_tool.training_facts(single, load_model(single)[1])
    assert facts["seeds"] == 1 and not facts["soup"] and "1 seed" in bundle_tool.describe_training(facts)


def test_bundle_records_the_mixed_store_of_a_checkpoint_that_did_not(bundle_tool, tmp_path):
    """A checkpoint from before models recorded their regions: the bundle adds its run's --mix store's."""
    from typer.testing import CliRunner

    from harpnet_cli.cli import app
    from harpnet_cli.io.checkpoints import read_checkpoint, write_payload
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.models import save_half_precision
    from harpnet_cli.workflows.train import store_grid

    def harpnet(*args):
        res = CliRunner().invoke(app, ["--quiet", *map(str, args)])
        assert res.exit_code == 0, res.output

    main, other = tmp_path / "a.zarr", tmp_path / "b.zarr"
    harpnet("prepare", "synthetic", "-o", main, "--samples", 2, "--bbox", "36,42,-112,-104", "--keep-dry", 1.0)
    harpnet("prepare", "synthetic", "-o", other, "--samples", 2, "--bbox", "30,34,-98,-92", "--keep-dry", 1.0)
    harpnet("train", main, "-o", tmp_path / "run", "--epochs", 1, "--mix", other, "--preset", "lite",
            "--batch-size", 4, "--max-batches", 1, "--device", "cpu")
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_001.pt"
    payload = read_checkpoint(ckpt)
    mixed = store_grid(TrainingStore.open(other))
    assert payload["config"]["regions"] == [mixed]  # recorded by train itself now
    write_payload(ckpt, {**payload, "config": {**payload["config"], "regions": []}})  # as an older checkpoint
    bundled = save_half_precision(ckpt, tmp_path / "model.pt")
    assert bundle_tool.record_regions(ckpt, bundled) == [mixed]
    assert load_model(bundled)[0].config.regions == [mixed]
    assert bundle_tool.record_regions(ckpt, bundled) == [mixed]  # once only
    averaged = {**read_checkpoint(ckpt), "wise_ft": {"start": "a.pt", "fine_tuned": str(ckpt), "alpha": 0.5}}
    write_payload(tmp_path / "det.pt", averaged)  # weights averaged by tools/wise_ft.py: the fine-tuned run's
    assert bundle_tool.record_regions(tmp_path / "det.pt", tmp_path / "det.pt") == [mixed]


def test_wise_ft_interpolates_a_model_and_its_widened_fine_tune(tmp_path):
    spec = importlib.util.spec_from_file_location("wise_ft", ROOT / "tools" / "wise_ft.py")
    wise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wise)
    import torch

    from harpnet_cli.io.checkpoints import write_payload
    from harpnet_cli.testing.models import random_tile_inputs

    small = {"channels": [4, 8], "bridge": 16}
    start = make_random_checkpoint(tmp_path / "start.pt", seed=1, **small)
    tuned = make_random_checkpoint(tmp_path / "tuned.pt", seed=2, coarse_inputs=["precip", "log_period_hours"],
                                   coarse_mean=[0.3, 1.5], coarse_std=[0.8, 0.9], **small)
    a, _ = load_model(start)
    b, _ = load_model(tuned)
    coarse, terrain = random_tile_inputs(a.config, 4, seed=0, terrain_max=2000.0)
    with_length = torch.cat([coarse, torch.full_like(coarse, 2.2)], dim=1)
    outputs = {}
    for alpha in (0.0, 0.5, 1.0):
        path = write_payload(tmp_path / f"w{alpha}.pt", wise.interpolate(start, tuned, alpha))
        model, meta = load_model(path)
        assert meta["wise_ft"]["alpha"] == alpha and "optimizer" not in meta
        with torch.no_grad():
            outputs[alpha] = model(with_length, terrain)
        if alpha == 0.5:
            w = model.state_dict()["net.head.weight"]
            torch.testing.assert_close(w, 0.5 * (a.state_dict()["net.head.weight"] + b.state_dict()["net.head.weight"]))
    with torch.no_grad():
        torch.testing.assert_close(outputs[0.0], a(coarse, terrain), rtol=1e-5, atol=1e-6)  # the start, exactly
        torch.testing.assert_close(outputs[1.0], b(with_length, terrain), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outputs[0.5], outputs[0.0]) and not torch.allclose(outputs[0.5], outputs[1.0])
    with pytest.raises(SystemExit, match="every input"):
        wise.interpolate(tuned, start, 0.5)
    with pytest.raises(SystemExit, match="alpha"):
        wise.interpolate(start, tuned, 1.5)


def test_terrain_lock_of_one_window_length(tmp_path):
    from typer.testing import CliRunner

    from harpnet_cli.cli import app
    from harpnet_cli.core.metrics import TerrainLock
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.registry import PERIOD_INPUT
    from harpnet_cli.splits import TRAIN

    spec = importlib.util.spec_from_file_location("terrain_lock", ROOT / "tools" / "terrain_lock.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    store = tmp_path / "multi.zarr"
    res = CliRunner().invoke(app, ["--quiet", "prepare", "synthetic", "-o", str(store), "--samples", "6", "--bbox",
                                   "36,42,-112,-104", "--periods", "3,24", "--seed", 4])
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(store)
    rows = s.indices(TRAIN)
    hours = np.rint(np.exp(np.asarray(s.state[: len(s)])[rows, s.state_names.index(PERIOD_INPUT)]))
    counted = 0
    for period in (3.0, 24.0):
        chosen = rows[hours == period]
        assert len(chosen)
        sample = s.read(chosen)
        want = TerrainLock()
        want.add(sample["fine"][:, 0], sample["terrain"][:, 0])
        got, cells = tool.store_terrain_lock(str(store), "train", 10_000, period=period)
        assert cells == want.cells and (got == want.result() or (np.isnan(got) and np.isnan(want.result())))
        counted += cells
    assert tool.store_terrain_lock(str(store), "train", 10_000)[1] == counted > 0  # the lengths split the cells
