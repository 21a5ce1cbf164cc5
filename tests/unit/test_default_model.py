"""Resolution of the default model (bundled file or $HARPNET_DEFAULT_MODEL) and its model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harpnet_cli.errors import InputDataError
from harpnet_cli.io import default_model
from harpnet_cli.io.default_model import (
    DEFAULT_MODEL_DIR,
    ENV_VAR,
    default_model_location,
    default_model_path,
    read_card,
)


def test_bundled_location_is_inside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert DEFAULT_MODEL_DIR.parent.name == "assets" and DEFAULT_MODEL_DIR.parent.parent.name == "harpnet_cli"
    assert default_model_location() == DEFAULT_MODEL_DIR / "model.pt"


def test_missing_bundled_file_gives_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path)
    assert default_model_path() is None
    (tmp_path / "model.pt").write_bytes(b"x")
    assert default_model_path() == tmp_path / "model.pt"


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "mine.pt"
    monkeypatch.setenv(ENV_VAR, str(model))
    assert default_model_location() == model
    assert default_model_path() is None  # not there yet
    model.write_bytes(b"x")
    assert default_model_path() == model
    monkeypatch.setenv(ENV_VAR, "  ")  # blank: ignored
    assert default_model_location() == default_model.DEFAULT_MODEL_DIR / "model.pt"


def test_read_card(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    assert read_card(model) == {}
    card = {"name": "harpnet-test", "scores": {"validation": {"harpnet": {"mae": 0.12}}}, "built_with": ["a", "b"]}
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert read_card(model) == card


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_bad_card_is_one_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "card.json").write_text(text)
    with pytest.raises(InputDataError, match="card.json"):
        read_card(tmp_path / "model.pt")
