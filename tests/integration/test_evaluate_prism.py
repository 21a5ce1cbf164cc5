"""``harpnet evaluate --climatology / --bbox`` and the relative-threshold FSS, end to end on CPU.

A tiny synthetic store and a random-weight checkpoint (no training), a synthetic PRISM-like BIL
zip, and the real PRISM normal when ``../shared/data`` is present.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.core import metrics as M
from harpnet_cli.core.baselines import bilinear
from harpnet_cli.io.store import TrainingStore
from harpnet_cli.testing.fixtures import write_prism_bil_zip

runner = CliRunner()
PRISM = Path("train") / "prism-normal" / "PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip"


def invoke(*args):
    return runner.invoke(app, [*map(str, args)], env={"COLUMNS": "220"})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_store):
    from harpnet_cli.testing.models import make_random_checkpoint

    d = tmp_path_factory.mktemp("evaluate_prism")
    ckpt = make_random_checkpoint(d / "m.pt", channels=[4, 8], bridge=8)
    lat = np.arange(34.0, 44.0, 1 / 24)[::-1]
    lon = np.arange(-114.0, -102.0, 1 / 24)
    data = (1.0 + 0.5 * np.cos(np.radians(40 * (lon - lon[0])))[None, :] + 0.02 * (lat[:, None] - 34)).astype(
        np.float32)
    data[:, lon > -108.2] = np.nan  # no data over the eastern tiles (x0 = 68: 107.875 W .. 103.875 W)
    clim = write_prism_bil_zip(d / "clim.zip", data, west=float(lon[0]), north=float(lat[0]), step=1 / 24)
    return tiny_store, ckpt, clim


def test_climatology_row_and_p90_fss(setup, tmp_path):
    store_path, ckpt, clim = setup
    res = invoke("evaluate", ckpt, "--data", store_path, "--climatology", clim, "--json", tmp_path / "e.json",
                 "--csv", tmp_path / "e.csv")
    assert res.exit_code == 0, res.output
    assert "ratio_prism" in res.output and "FSS@p90/1" in res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert set(doc["rows"]) == {"m", "bilinear", "bilinear_conservative", "bicubic", "ratio", "ratio_prism"}
    assert doc["climatology"] == str(clim) and 0 < doc["climatology_coverage"] < 1 and doc["bbox"] is None
    assert {r["row"] for r in csv.DictReader((tmp_path / "e.csv").open())} == set(doc["rows"])

    # the threshold and the score, recomputed here from the store
    store = TrainingStore.open(store_path)
    idx = store.indices("test")
    s = store.read(idx)
    truth, coarse = s["fine"][:, 0], s["coarse"][:, 0]
    wet = truth[np.isfinite(truth) & (truth > 0.1)]
    thr = doc["fss_p90_threshold_mm"]
    assert doc["wet_threshold_mm"] == 0.1
    assert thr == pytest.approx(float(np.percentile(wet.astype(np.float64), 90)), rel=1e-9)
    expect = M.fss(bilinear(coarse), truth, thr, 1)
    assert doc["rows"]["bilinear"]["fss_p90_w1"] == pytest.approx(expect)
    for name, row in doc["rows"].items():
        assert doc["summary"][name]["fss_p90_w1"] == row["fss_p90_w1"]
        assert 0 <= row["fss_p90_w1"] <= 1
    assert doc["rows"]["ratio_prism"]["n_samples"] == doc["n_samples"] == len(idx)
    # where the climatology has no data (eastern tiles) the ratio is 1: ratio_prism equals bilinear there
    east = [t for t in np.flatnonzero(np.asarray(store.tile_origin[:])[:, 1] >= 68) if t in set(s["tile"])]
    pt_p, pt_b = doc["rows"]["ratio_prism"]["per_tile"], doc["rows"]["bilinear"]["per_tile"]
    assert east
    for t in east:
        assert pt_p["mse"][pt_p["tile"].index(t)] == pytest.approx(pt_b["mse"][pt_b["tile"].index(t)])
    west = pt_p["tile"].index(int(s["tile"][np.asarray(store.tile_origin[:])[s["tile"], 1] == 0][0]))
    assert pt_p["mse"][west] != pytest.approx(pt_b["mse"][west])


def test_bbox_scores_only_tiles_in_the_box(setup, tmp_path):
    store_path, ckpt, _ = setup
    res = invoke("evaluate", ckpt, "--data", store_path, "--bbox", "36,42,-112,-108", "--json", tmp_path / "b.json")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "b.json").read_text())
    store = TrainingStore.open(store_path)
    origins = np.asarray(store.tile_origin[:])
    inside = set(np.flatnonzero(origins[:, 1] < 64).tolist())  # centres west of -108
    seen = set(doc["rows"]["bilinear"]["per_tile"]["tile"])
    assert seen and seen <= inside
    idx = store.indices("test")
    tiles = np.asarray(store.tile[idx])
    assert doc["n_samples"] == int(np.isin(tiles, list(inside)).sum()) and doc["bbox"] == [36, 42, -112, -108]
    assert "ratio_prism" not in doc["rows"] and doc["climatology"] is None


@pytest.mark.parametrize(("args", "code", "text"), [
    (("--bbox", "10,20,-112,-108"), 2, "no tile"),
    (("--bbox", "10,20,-112"), 2, "S,N,W,E"),
    (("--bbox", "20,10,-112,-108"), 2, "south"),
    (("--climatology", "missing.zip"), 3, "missing.zip: no such file"),
])
def test_errors_are_one_line(setup, tmp_path, args, code, text):
    store_path, ckpt, _ = setup
    res = invoke("evaluate", ckpt, "--data", store_path, *args)
    assert res.exit_code == code, res.output
    assert text in res.output and len(res.output.strip().splitlines()) == 1


def test_real_prism_normal(setup, shared_data, tmp_path):
    path = shared_data / PRISM
    if not path.is_file():
        pytest.skip(f"{PRISM} is not present")
    store_path, ckpt, _ = setup
    res = invoke("evaluate", ckpt, "--data", store_path, "--climatology", path, "--json", tmp_path / "r.json",
                 "--max-samples", 6)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["climatology_coverage"] == 1.0  # 36-42 N, 112-104 W is all land
    assert doc["rows"]["ratio_prism"]["continuous"]["mae"] >= 0
