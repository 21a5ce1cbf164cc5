"""The default model that ships in the package: present, small, described, and skilful.

The skill check scores the bundled weights with ``harpnet evaluate`` on a small synthetic store
made with a seed the default's corpus did not use, so broken, untrained or mis-bundled weights
fail here (an untrained model equals conservative bilinear exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.io.default_model import DEFAULT_MODEL_DIR, ENV_VAR, default_model_path, read_card
from harpnet_cli.workflows.models import load_model

runner = CliRunner()
BUNDLED = DEFAULT_MODEL_DIR / "model.pt"


@pytest.fixture(autouse=True)
def _bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_the_package_ships_a_small_lite_model_with_its_card() -> None:
    assert default_model_path() == BUNDLED
    assert BUNDLED.stat().st_size < 4 * 2**20
    model, meta = load_model(BUNDLED)
    assert model.config.preset == "lite" and model.config.conserve
    assert "optimizer" not in meta
    card = read_card(BUNDLED)
    assert "MRMS" in card["trained_on"] and "synthetic" in card["trained_on"].lower()
    assert card["built_with"] and all(line.startswith("harpnet ") for line in card["built_with"])
    titles = list(card["scores"])
    assert any("CONUS" in t for t in titles) and any("West" in t for t in titles)
    assert any("24 h" in t for t in titles) and any(t.startswith("NWRFC") for t in titles)
    assert model.config.periods == [1.0, 3.0, 6.0, 12.0, 24.0] and model.config.regions  # Germany beside CONUS
    sto_path = BUNDLED.with_name("stochastic.pt")
    sto, _ = load_model(sto_path)
    assert sto.config.stochastic and sto_path.stat().st_size < 4 * 2**20
    section = card["stochastic"]
    assert section["noise_scales"] == sto.config.noise_scales and "CRPS" in section["trained_on"]
    first = next(iter(section["scores"].values()))
    assert 0.9 <= first["spread/skill"] <= 1.1, first


def test_info_describes_the_bundled_model() -> None:
    res = runner.invoke(app, ["info", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["model"]["path"] == str(BUNDLED) and report["model"]["source"] == "default"


def test_bundled_weights_beat_conservative_bilinear_on_unseen_synthetic_weather(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    res = runner.invoke(app, ["prepare", "synthetic", "-o", str(store), "--samples", "6",
                              "--bbox", "36,44,-124,-104", "--seed", "2027"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "scores.json"
    res = runner.invoke(app, ["evaluate", str(BUNDLED), "--data", str(store), "--split", "test",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(out.read_text())["summary"]
    (model,) = (v for k, v in summary.items() if k not in {"bilinear", "bilinear_conservative", "bicubic", "ratio"})
    assert model["mae"] < 0.9 * summary["bilinear_conservative"]["mae"]
    assert model["mae"] < 0.85 * summary["bilinear"]["mae"]
    assert model["fss_p90_w1"] > summary["bilinear_conservative"]["fss_p90_w1"]
    assert model["mass_error"] < 1e-3
