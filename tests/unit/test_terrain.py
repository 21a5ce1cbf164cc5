"""Tests for harpnet_cli.io.terrain: the packaged ETOPO5 land-elevation asset and its loader."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harpnet_cli.core.remap import block_mean
from harpnet_cli.errors import HarpnetError
from harpnet_cli.grids import GridSpec
from harpnet_cli.io import terrain
from harpnet_cli.io.cache import CACHE_ENV
from harpnet_cli.io.terrain import decode_asset, global_terrain, load_terrain, terrain_provenance


def value_near(spec: GridSpec, field: np.ndarray, lat: float, lon: float) -> float:
    """Fine-grid value at the cell nearest to (lat, lon)."""
    j = int(np.argmin(np.abs(spec.fine_lat() - lat)))
    i = int(np.argmin(np.abs((spec.fine_lon() - lon + 180) % 360 - 180)))
    return float(field[j, i])


def box_max(south: float, north: float, west: float, east: float) -> float:
    """Highest fine-grid value in a box."""
    return float(load_terrain(GridSpec.from_bbox(south, north, west, east)).max())


def test_shape_and_dtype() -> None:
    spec = GridSpec.from_domain("conus")
    fine = load_terrain(spec)
    assert fine.shape == spec.fine_shape == (416, 960) and fine.dtype == np.float32
    assert np.isfinite(fine).all() and (fine >= 0).all()
    assert block_mean(fine, lat=spec.fine_lat()).shape == spec.coarse_shape


def test_conus_landmarks() -> None:
    spec = GridSpec.from_domain("conus")
    fine = load_terrain(spec)
    assert box_max(39, 40, -106, -105) > 2500  # Colorado Front Range
    assert value_near(spec, fine, 35.0, -125.0) == 0.0  # Pacific off California
    assert value_near(spec, fine, 36.25, -116.8) >= 0.0  # Death Valley: below sea level -> >= 0
    assert 1300 < value_near(spec, fine, 39.74, -104.99) < 2000  # Denver, ~1600 m
    assert value_near(spec, fine, 30.0, -88.0) == 0.0  # Gulf of Mexico


def test_longitude_conventions_agree() -> None:
    east = load_terrain(GridSpec.from_bbox(30, 35, 250, 260))
    west = load_terrain(GridSpec.from_bbox(30, 35, -110, -100))
    np.testing.assert_array_equal(east, west)


def test_date_line_box_is_continuous() -> None:
    # Chukotka has land on both sides of 180°
    whole = GridSpec(lat0=64.0, lon0=170.0, ny=20, nx=80)
    assert whole.east > 180
    field = load_terrain(whole)
    west = load_terrain(GridSpec(lat0=64.0, lon0=170.0, ny=20, nx=40))
    east = load_terrain(GridSpec(lat0=64.0, lon0=-180.0, ny=20, nx=40))
    np.testing.assert_array_equal(field, np.hstack([west, east]))
    assert field[:, :160].max() > 500 and field[:, 160:].max() > 500


def test_global_spot_checks() -> None:
    assert box_max(27.5, 28.5, 86.5, 87.5) > 4000  # Himalaya near Everest
    assert box_max(-16.5, -15.5, -69.5, -68.5) > 3000  # Andes near Lake Titicaca
    assert box_max(-10, -5, -30, -25) == 0.0  # mid-Atlantic


def test_near_the_poles() -> None:
    south_spec = GridSpec.from_bbox(-90, -88, -180, 180)
    south = block_mean(load_terrain(south_spec), lat=south_spec.fine_lat())
    north = load_terrain(GridSpec.from_bbox(85, 90, 0, 30))
    assert south.shape == (8, 1440)
    assert south.min() > 2000  # the polar plateau (the Ross Ice Shelf further out counts as sea)
    assert north.max() == 0.0  # the Arctic Ocean


def test_cached_and_fast_after_first_call() -> None:
    load_terrain(GridSpec.from_domain("conus"))
    start = time.perf_counter()
    load_terrain(GridSpec.from_domain("conus"))
    assert time.perf_counter() - start < 0.5
    elevation, _ = global_terrain()
    assert elevation is global_terrain()[0]
    assert not elevation.flags.writeable


def test_provenance() -> None:
    meta = terrain_provenance()
    assert "ETOPO5" in str(meta["source"]) and "max(ROSE, 0)" in str(meta["rule"])
    assert meta["script"].startswith("tools/make_terrain.py")  # type: ignore[union-attr]


def test_corrupt_asset_is_a_harpnet_error() -> None:
    with pytest.raises(HarpnetError, match="corrupt"):
        decode_asset(b"not a zip file")
    with pytest.raises(HarpnetError, match="corrupt"):
        decode_asset(b"")


def test_missing_asset_is_a_harpnet_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terrain, "ASSET_NAME", "no_such_terrain.npz")
    global_terrain.cache_clear()
    try:
        with pytest.raises(HarpnetError, match="missing"):
            load_terrain(GridSpec.from_bbox(0, 1, 0, 1))
    finally:
        monkeypatch.undo()
        global_terrain.cache_clear()
    assert load_terrain(GridSpec(lat0=0.0, lon0=0.0, ny=2, nx=2)).shape == (8, 8)



# -- the terrain cache ---------------------------------------------------------------------------------
def test_terrain_is_cached_per_box_and_read_back_identical(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    spec = GridSpec.from_bbox(39, 41, -107, -104)
    first = load_terrain(spec)
    files = list((tmp_path / "terrain").glob("terrain_*.npy"))
    assert len(files) == 1
    monkeypatch.setattr(terrain, "global_terrain", lambda: pytest.fail("decoded the asset again"))
    again = load_terrain(spec)
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.float32


def test_a_damaged_cache_file_is_recomputed(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    spec = GridSpec.from_bbox(0, 1, 10, 11)
    expected = load_terrain(spec)
    (path,) = (tmp_path / "terrain").glob("*.npy")
    path.write_bytes(b"not an npy file")
    np.testing.assert_array_equal(load_terrain(spec), expected)


def test_cache_off_and_unwritable_cache_are_fine(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    assert terrain.cache_dir() is None
    spec = GridSpec.from_bbox(10, 11, 10, 11)
    expected = load_terrain(spec)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    np.testing.assert_array_equal(load_terrain(spec), expected)
