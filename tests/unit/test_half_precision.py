"""float16 copies of checkpoints and ensembles (save_half_precision) and loading them back as float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harpnet_cli.core.model.wrapper import Downscaler
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.checkpoints import save_checkpoint
from harpnet_cli.io.ensembles import is_ensemble, save_ensemble
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.models import load_ensemble_models, load_model, save_half_precision

SMALL = {"channels": [4, 8], "bridge": 16}


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of plausible tiles: rain up to ~20 mm, terrain up to 3000 m."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(4, 1, 18, 18, generator=g) ** 3 * 20.0
    static = torch.rand(4, 1, 64, 64, generator=g) * 3000.0
    return coarse, static


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def test_half_copy_is_smaller_loads_as_float32_and_agrees_within_1e_2(tmp_path: Path) -> None:
    src = make_random_checkpoint(tmp_path / "full.pt", preset="compact", seed=3)
    dst = save_half_precision(src, tmp_path / "half.pt")
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    raw = torch.load(dst, weights_only=True)
    assert raw["weights_dtype"] == "float16" and "optimizer" not in raw
    full, _ = load_model(src)
    params = {n for n, _ in full.named_parameters()}
    for name, value in raw["model"].items():
        if value.is_floating_point():
            assert value.dtype == (torch.float16 if name in params else torch.float32), name
    half, meta = load_model(dst)
    assert meta["weights_dtype"] == "float16" and meta["seed"] == 3  # metadata kept
    assert all(t.dtype == torch.float32 for t in (*half.parameters(), *half.buffers()) if t.is_floating_point())
    coarse, static = inputs()
    with torch.no_grad():
        assert relative_error(half(coarse, static), full(coarse, static)) < 1e-2


def test_optimizer_state_is_dropped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Downscaler.from_config(SMALL)
    opt = torch.optim.Adam(model.parameters())
    model(*inputs()).mean().backward()
    opt.step()
    src = save_checkpoint(tmp_path / "train.pt", model.eval(), opt, epoch=4)
    assert "optimizer" in torch.load(src, weights_only=True)
    raw = torch.load(save_half_precision(src, tmp_path / "half.pt"), weights_only=True)
    assert "optimizer" not in raw and raw["epoch"] == 4


def test_a_fully_float16_state_dict_loads_as_float32(tmp_path: Path) -> None:
    src = make_random_checkpoint(tmp_path / "full.pt", **SMALL)
    raw = torch.load(src, weights_only=True)
    raw["model"] = {k: v.half() if v.is_floating_point() else v for k, v in raw["model"].items()}
    torch.save(raw, tmp_path / "all16.pt")
    model, _ = load_model(tmp_path / "all16.pt")
    assert {t.dtype for t in model.state_dict().values() if t.is_floating_point()} == {torch.float32}
    full, _ = load_model(src)
    with torch.no_grad():
        assert relative_error(model(*inputs(1)), full(*inputs(1))) < 1e-2


def test_ensemble_members_are_halved_too(tmp_path: Path) -> None:
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = Downscaler.from_config(SMALL).eval()
        members.append({"epoch": seed + 1, "config": m.current_config().model_dump(mode="json"),
                        "model": m.state_dict(), "test_loss": 0.1})
    src = save_ensemble(tmp_path / "e.pt", members)
    dst = save_half_precision(src, tmp_path / "e16.pt")
    assert is_ensemble(dst)
    full, _, _ = load_ensemble_models(src)
    half, _, meta = load_ensemble_models(dst)
    assert meta["weights_dtype"] == "float16" and [m["epoch"] for m in meta["members"]] == [1, 2]
    coarse, static = inputs(2)
    with torch.no_grad():
        for a, b in zip(half, full, strict=True):
            assert next(a.parameters()).dtype == torch.float32
            assert relative_error(a(coarse, static), b(coarse, static)) < 1e-2


def test_refuses_overflow_and_writing_over_the_source(tmp_path: Path) -> None:
    src = make_random_checkpoint(tmp_path / "full.pt", **SMALL)
    with pytest.raises(ValueError, match="another file"):
        save_half_precision(src, src)
    raw = torch.load(src, weights_only=True)
    name = next(k for k, v in raw["model"].items() if k.endswith("weight") and v.is_floating_point())
    raw["model"][name] = raw["model"][name] * 0 + 1e6
    torch.save(raw, tmp_path / "huge.pt")
    with pytest.raises(InputDataError, match="float16"):
        save_half_precision(tmp_path / "huge.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(InputDataError):
        save_half_precision(tmp_path / "missing.pt", tmp_path / "out.pt")
