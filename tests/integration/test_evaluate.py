"""``harpnet evaluate`` and ``harpnet ensemble`` end to end on a tiny store and a 3-epoch tiny run."""

import csv
import json

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.io.ensembles import is_ensemble
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.workflows.models import load_ensemble_models, load_model

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_store, tiny_config):
    """The shared tiny store and a 3-epoch run of the tiny model on it."""
    d = tmp_path_factory.mktemp("evaluate")
    res = invoke("train", tiny_store, "-o", d / "run", "--epochs", 3, "--config", tiny_config)
    assert res.exit_code == 0, res.output
    return tiny_store, d / "run"


def test_checkpoint_table_json_csv_plots(run, tmp_path):
    store, rd = run
    ckpt = rd / "checkpoints" / "epoch_003.pt"
    res = invoke("evaluate", ckpt, "--data", store, "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv",
                 "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    for row in ("epoch_003", "bilinear", "bilinear_conservative", "bicubic", "ratio"):
        assert row in res.output
    assert "MAE" in res.output and "MSE vs ratio" in res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["schema"] == "harpnet-evaluate/1" and doc["split"] == "test" and doc["n_samples"] > 0
    assert set(doc["rows"]) == {"epoch_003", "bilinear", "bilinear_conservative", "bicubic", "ratio"}
    assert doc["summary"]["bilinear_conservative"]["mass_error"] < 1e-5  # conserves each coarse cell
    for r in doc["rows"].values():
        assert r["schema"] == "harpnet-scores/1" and r["n_samples"] == doc["n_samples"]
        assert r["continuous"]["mae"] >= 0 and r["spectrum"] is not None and "mass" in r
    assert doc["summary"]["bilinear"]["mse_gain_vs_bilinear"] == pytest.approx(0.0)
    assert doc["summary"]["ratio"]["mse_gain_vs_ratio"] == pytest.approx(0.0)
    assert doc["ensemble"] is None
    rows = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert {r["row"] for r in rows} == set(doc["rows"])
    assert all(float(r["mse"]) >= 0 and int(r["n_values"]) > 0 for r in rows)
    pngs = sorted((tmp_path / "plots").iterdir())
    names = {p.name for p in pngs}
    assert {"mse_gain_vs_bilinear.png", "mse_gain_vs_ratio.png", "spectra.png", "performance.png"} <= names
    assert any(n.startswith("case_") for n in names)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_run_dir_scores_every_epoch(run, tmp_path):
    store, rd = run
    res = invoke("evaluate", rd, "--data", store, "--json", tmp_path / "r.json", "--max-samples", 8)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["n_samples"] == 8
    assert {"epoch_001", "epoch_002", "epoch_003"} <= set(doc["rows"])


def test_ensemble_members_greedy_and_all(run, tmp_path):
    store, rd = run
    res = invoke("ensemble", rd, "--data", store, "-o", tmp_path / "greedy.pt", "--select", "greedy")
    assert res.exit_code == 0, res.output
    assert is_ensemble(tmp_path / "greedy.pt") and not is_ensemble(rd / "checkpoints" / "epoch_001.pt")
    members, mode, meta = load_ensemble_models(tmp_path / "greedy.pt")
    assert mode == "members" and len(members) == len(meta["selection"]["epochs"]) >= 1
    raw = torch.load(tmp_path / "greedy.pt", weights_only=True)
    assert raw["format"] == "harpnet-ensemble" and raw["format_version"] == 1
    assert {"epoch", "config", "model", "test_loss"} <= set(raw["members"][0])
    steps = meta["selection"]["steps"]
    assert steps[0]["accepted"] and len(steps) == 3  # every checkpoint was tried
    sel = meta["selection"]
    assert sel["ranked_by"] == "test_mae"
    assert steps[0]["mae"] == pytest.approx(min(sel["member_mae"].values()))  # starts from the best member
    assert sel["ensemble_mae"] <= min(sel["member_mae"].values()) + 1e-12  # never worse than it there

    res = invoke("ensemble", rd, "--data", store, "-o", tmp_path / "all.pt", "--select", "all")
    assert res.exit_code == 0, res.output
    res = invoke("evaluate", tmp_path / "all.pt", "--data", store, "--json", tmp_path / "a.json")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "a.json").read_text())
    member_mae = {k: v["continuous"]["mae"] for k, v in doc["rows"].items() if k.startswith("member_")}
    mean_mae = doc["rows"]["ensemble_mean"]["continuous"]["mae"]
    assert len(member_mae) == 3
    print(f"\nensemble-mean MAE {mean_mae:.6f}; member MAEs {member_mae}; best {min(member_mae.values()):.6f}")
    assert mean_mae <= max(member_mae.values()) + 1e-9  # MAE is convex: never worse than the worst member
    ens = doc["ensemble"]
    assert ens["n_members"] == 3 and ens["crps"] >= 0 and len(ens["rank_histogram"]) == 4
    assert sum(ens["rank_histogram"]) == pytest.approx(1.0)
    assert [b["threshold_mm"] for b in ens["brier"]] == [1.0, 10.0, 25.0]
    first = ens["brier"][0]
    assert first["reference_brier"] is not None and len(first["reliability"]["count"]) == 10
    assert sum(first["reliability"]["count"]) == ens["n_values"]


def test_soup_is_a_checkpoint_downscale_runs(run, tmp_path):
    store, rd = run
    res = invoke("ensemble", rd, "--data", store, "-o", tmp_path / "soup.pt", "--select", "best-2", "--mode", "soup")
    assert res.exit_code == 0, res.output
    model, meta = load_model(tmp_path / "soup.pt")
    assert len(meta["soup_epochs"]) == 2
    a, _ = load_model(rd / "checkpoints" / f"epoch_{meta['soup_epochs'][0]:03d}.pt")
    b, _ = load_model(rd / "checkpoints" / f"epoch_{meta['soup_epochs'][1]:03d}.pt")
    k = next(n for n, v in model.state_dict().items() if v.is_floating_point() and v.ndim == 4)
    torch.testing.assert_close(model.state_dict()[k], (a.state_dict()[k] + b.state_dict()[k]) / 2)
    grib = write_gfs_grib(tmp_path / "gfs.f003", synthetic_hourly(3, seed=2), [(0, 3)])
    res = invoke("downscale", grib, "-o", tmp_path / "out.nc", "-m", tmp_path / "soup.pt",
                 "--bbox", "31,33,-99,-96", "--device", "cpu")
    assert res.exit_code == 0, res.output
    p = xr.open_dataset(tmp_path / "out.nc", engine="netcdf4")["precipitation_amount"]
    assert float(p.min()) >= 0 and np.isfinite(p.values).all()


def test_bad_model_file_is_one_line(run, tmp_path):
    store, _ = run
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    res = invoke("evaluate", bad, "--data", store)
    assert res.exit_code == 3 and len(res.output.strip().splitlines()) == 1
