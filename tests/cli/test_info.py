"""``harpnet info``: the model downscale would run, its card and scores, the device, versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.io.checkpoints import checkpoint_sha256
from harpnet_cli.io.default_model import ENV_VAR
from harpnet_cli.io.ensembles import save_ensemble
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.info import score_tables
from harpnet_cli.workflows.models import save_half_precision

runner = CliRunner()
SMALL = {"channels": [4, 8], "bridge": 16}
CARD = {
    "name": "harpnet-test-model",
    "trained_on": "50 synthetic CONUS samples",
    "preset": "lite",
    "scores": {"validation, mm per 3 h": {"harpnet": {"mae": 0.12581, "rmse": 0.4566},
                                          "bilinear": {"mae": 0.1505, "csi_2p54": 0.817}}},
    "built_with": ["harpnet prepare synthetic -o s.zarr", "harpnet train s.zarr -o run"],
    "created": "2025-01-01T00:00:00Z",
}


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    model = make_random_checkpoint(tmp_path / "model.pt", **SMALL)
    (tmp_path / "card.json").write_text(json.dumps(CARD))
    monkeypatch.setenv(ENV_VAR, str(model))
    return model


def test_no_default_model_is_reported_and_exit_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "none.pt"))
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0, res.output
    assert "no default model is installed" in res.output and "none.pt" in res.output
    assert "device" in res.output and "torch" in res.output
    res = runner.invoke(app, ["info", "--json"])
    assert res.exit_code == 0
    report = json.loads(res.output)
    assert report["schema"] == "harpnet-info/1" and report["model"] is None
    assert report["default_location"] == str(tmp_path / "none.pt")


def test_default_model_with_its_card(installed: Path) -> None:
    res = runner.invoke(app, ["info", "--full"])
    assert res.exit_code == 0, res.output
    for text in ("harpnet-test-model", checkpoint_sha256(installed), "$HARPNET_DEFAULT_MODEL", "checkpoint",
                 "float32 weights", "50 synthetic CONUS samples", "harpnet train s.zarr -o run",
                 "validation, mm per 3 h", "0.1258", "0.817", "bilinear"):
        assert text in res.output, text


def test_json_report(installed: Path) -> None:
    res = runner.invoke(app, ["info", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    model = report["model"]
    assert model["path"] == str(installed) and model["sha256"] == checkpoint_sha256(installed)
    assert model["kind"] == "checkpoint" and model["members"] is None and model["preset"] == "lite"
    assert isinstance(model["parameters"], int) and model["parameters"] > 0
    assert model["scores"] == CARD["scores"] and model["built_with"] == CARD["built_with"]
    assert model["card"] == CARD
    assert {"harpnet", "python", "torch", "eccodes", "eccodes-python", "onnxruntime"} <= set(report["versions"])
    assert report["device"].startswith(("cpu", "cuda", "mps"))
    if report["device"].startswith("cpu"):  # what runs the network there
        assert report["device"].endswith("the network on ONNX Runtime)")
        assert report["versions"]["onnxruntime"][0].isdigit()


def test_given_ensemble_and_half_precision_models(tmp_path: Path, installed: Path) -> None:
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = Downscaler.from_config(SMALL).eval()
        members.append({"epoch": seed, "config": m.current_config().model_dump(mode="json"),
                        "model": m.state_dict(), "test_loss": None})
    ens = save_ensemble(tmp_path / "ens" / "e.pt", members)
    report = json.loads(runner.invoke(app, ["info", "--json", "--model", str(ens)]).output)
    assert report["model"]["kind"] == "ensemble" and report["model"]["members"] == 2
    assert report["model"]["source"] == "--model" and report["model"]["card"] == {}
    half = save_half_precision(installed, tmp_path / "half" / "h.pt")
    res = runner.invoke(app, ["info", "--model", str(half)])
    assert res.exit_code == 0 and "float16 weights" in res.output


def test_broken_model_or_card_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: Path) -> None:
    (installed.parent / "card.json").write_text("{oops")
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 3 and "card.json" in res.output
    bad = tmp_path / "bad" / "model.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv(ENV_VAR, str(bad))
    assert runner.invoke(app, ["info"]).exit_code == 3


def test_score_tables_accept_several_layouts() -> None:
    rows = score_tables({"t": {"a": {"x": 1.234567, "y": None}, "b": {"z": "n/a"}}})
    assert rows[0].columns == ["x", "y", "z"]
    assert rows[0].rows == [("a", ["1.235", "-", "-"]), ("b", ["-", "-", "n/a"])]
    flat = score_tables({"mae": 0.1, "rmse": 0.2})
    assert flat[0].title == "scores" and flat[0].rows == [("mae", ["0.1"]), ("rmse", ["0.2"])]
    listed = score_tables({"t": [{"name": "harpnet", "mae": 0.1}, {"mae": 0.2}]})
    assert listed[0].rows == [("harpnet", ["0.1"]), ("2", ["0.2"])]
    assert score_tables({}) == []


def test_info_fits_a_screen_and_states_the_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled default's report: at most 30 lines, no shell variables, one line on region and limits."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    res = runner.invoke(app, ["info"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) <= 30, res.output
    assert "$" not in res.output and "--full" in res.output
    (scope,) = [line for line in lines if line.startswith("trained for")]
    assert "CONUS" in scope and "not verified" in res.output
    full = runner.invoke(app, ["info", "--full"], env={"COLUMNS": "100"})
    assert full.exit_code == 0 and len(full.output.splitlines()) > 30 and "training variants" in full.output


def test_scope_line_from_the_card() -> None:
    from harpnet_cli.workflows.info import scope_line

    assert scope_line({"trained_region": "CONUS", "limits": "2 days"}) == "CONUS: 2 days"
    assert scope_line({"trained_on": "Synthetic world. Then more."}) == "Synthetic world"
    assert scope_line({}) is None
    assert len(scope_line({"trained_region": "x" * 500}) or "") == 160


def test_the_stochastic_model_beside_the_default_is_named(installed: Path) -> None:
    res = runner.invoke(app, ["info", "--json"])
    assert json.loads(res.output)["stochastic"] is None
    sto = make_random_checkpoint(installed.parent / "stochastic.pt", noise_scales=[1.0, 4.0], **SMALL)
    res = runner.invoke(app, ["info"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "samples" in res.output and "stochastic.pt (stochastic: --samples" in res.output
    assert json.loads(runner.invoke(app, ["info", "--json"]).output)["stochastic"] == str(sto)
    res = runner.invoke(app, ["info", "--model", str(sto), "--json"])
    assert json.loads(res.output)["model"]["kind"] == "stochastic checkpoint"
