"""Tests for harpnet_cli.io.plots: quick-look PNGs of samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.core.remap import block_mean
from harpnet_cli.io.plots import plot_samples

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fine (8, 12) mm, coarse (2, 3) mm, terrain (8, 12) m and their fine axes."""
    rng = np.random.default_rng(seed)
    lat = 40.03125 + 0.0625 * np.arange(8)
    lon = -105.96875 + 0.0625 * np.arange(12)
    terrain = np.clip(3000.0 * np.sin(np.linspace(0, np.pi, 12))[None, :] + rng.normal(0, 50, (8, 12)), 0, None)
    fine = (rng.gamma(0.6, 3.0, (8, 12)) * (rng.random((8, 12)) < 0.6)).astype(np.float32)
    return fine, block_mean(fine, 4, lat=lat), terrain, lat, lon


def test_writes_one_valid_png_per_sample(tmp_path: Path) -> None:
    fine, coarse, terrain, lat, lon = tiny_sample(0)
    fine2, coarse2, _, _, _ = tiny_sample(1)
    samples = [("first sample", fine, coarse, terrain), ("second", fine2, coarse2, terrain)]
    states = [{"u": 12.0, "v": 4.0, "moisture": 0.006, "convective": 0.2}, None]
    paths = plot_samples(tmp_path / "png", samples, lat, lon, states=states, dpi=40)
    assert [p.name for p in paths] == ["first_sample.png", "second.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 1000


def test_zoom_and_all_dry_sample(tmp_path: Path) -> None:
    _, _, terrain, lat, lon = tiny_sample(2)
    dry = np.zeros((8, 12), dtype=np.float32)
    paths = plot_samples(
        tmp_path, [("dry", dry, np.zeros((2, 3)), terrain)], lat, lon, zoom=(40.0, 40.3, -106.0, -105.5), dpi=40
    )
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE


def test_rejects_mismatched_shapes(tmp_path: Path) -> None:
    fine, coarse, terrain, lat, lon = tiny_sample(3)
    with pytest.raises(ValueError, match="must be"):
        plot_samples(tmp_path, [("bad", fine[:, :8], coarse, terrain)], lat, lon)


def test_long_and_repeated_names_give_short_unique_files(tmp_path: Path) -> None:
    fine, coarse, terrain, lat, lon = tiny_sample(4)
    name = 'synthetic-0000001 2001-10-01 03Z {"u": 12.5, "v": 3.25, ' + '"x": 1.0, ' * 40 + "}"
    paths = plot_samples(tmp_path, [(name, fine, coarse, terrain)] * 2, lat, lon, dpi=30)
    assert len({p.name for p in paths}) == 2
    assert all(len(p.name) <= 90 and p.read_bytes()[:8] == PNG_SIGNATURE for p in paths)
