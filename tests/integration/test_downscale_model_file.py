"""``downscale`` opens the model file once: ensemble or not, weights and SHA-256 all come from one read."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harpnet_cli.config import DownscaleConfig
from harpnet_cli.io.default_model import DEFAULT_MODEL_DIR, ENV_VAR
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_ensemble
from harpnet_cli.workflows.downscale import run_downscale

TINY = {"channels": [8, 16], "bridge": 16}
BBOX = (31.0, 33.0, -99.0, -96.0)


@pytest.fixture(scope="module")
def gfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gfs") / "gfs.t18z.pgrb2.0p25.f006"
    return write_gfs_grib(path, synthetic_hourly(6, seed=7), [(0, 3), (3, 6)])


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_ensemble(tmp_path_factory.mktemp("ens") / "ens.pt", **TINY)


def count_opens(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """Record every ``open`` of ``path`` (builtins.open, io.open, which Path.open and zipfile use, and os.open)."""
    target = os.path.realpath(path)
    seen: list[str] = []

    def counting(real: Callable[..., Any], how: str) -> Callable[..., Any]:
        def wrapper(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | bytes | os.PathLike) and os.path.realpath(os.fsdecode(file)) == target:
                seen.append(how)
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", counting(builtins.open, "open"))
    monkeypatch.setattr(io, "open", counting(io.open, "io.open"))
    monkeypatch.setattr(os, "open", counting(os.open, "os.open"))
    return seen


def test_the_default_model_file_is_opened_once(tmp_path: Path, gfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    model = DEFAULT_MODEL_DIR / "model.pt"
    opens = count_opens(monkeypatch, model)
    res = run_downscale(DownscaleConfig(inputs=[gfs], output=tmp_path / "out.nc", bbox=BBOX, device="cpu"))
    assert opens == ["io.open"]  # the card beside it is another, small file
    assert res.model_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".nc", ".grib2"])
def test_an_ensemble_file_is_opened_once(tmp_path: Path, gfs: Path, ensemble: Path, suffix: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opens = count_opens(monkeypatch, ensemble)
    cfg = DownscaleConfig(inputs=[gfs], output=tmp_path / f"out{suffix}", model=ensemble, bbox=BBOX, device="cpu",
                          probabilities="1,5")
    res = run_downscale(cfg)
    assert len(opens) == 1 and res.members == 2
    assert res.model_sha256 == hashlib.sha256(ensemble.read_bytes()).hexdigest()
