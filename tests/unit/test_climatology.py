"""Static ratios from an external climatology (``ratio_prism``) and the ``--bbox`` tile selection."""

import numpy as np
import pytest

from harpnet_cli.core.baselines import RatioClimatology, bilinear
from harpnet_cli.core.climatology import (
    cut_tiles,
    external_ratio,
    fill_nearest,
    tile_climatology,
    valid_block_mean,
)
from harpnet_cli.core.remap import block_mean
from harpnet_cli.core.tiling import Patcher
from harpnet_cli.fields import SourceGrid
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.prism import read_prism
from harpnet_cli.testing.fixtures import write_prism_bil_zip
from harpnet_cli.workflows.evaluate import tile_centres, tiles_in_bbox

SPEC = GridSpec(lat0=36.0, lon0=-112.0, ny=25, nx=33)  # the evaluate tests' synthetic store


def _origins(spec: GridSpec = SPEC) -> np.ndarray:
    return np.array([(t.y0, t.x0) for t in Patcher(spec.coarse_shape).tiles], dtype=np.int32)


def _fine_grid(spec: GridSpec) -> SourceGrid:
    padded = spec.padded(1)
    return SourceGrid(padded.fine_lat(), padded.fine_lon())


def test_valid_block_mean_and_fill():
    rng = np.random.default_rng(0)
    f = rng.gamma(1.0, 2.0, (8, 12))
    lat = np.linspace(30, 31, 8)
    np.testing.assert_allclose(valid_block_mean(f, lat), block_mean(f, 4, lat=lat))
    g = f.copy()
    g[:4, :4] = np.nan
    g[4:, :3] = np.nan
    out = valid_block_mean(g)
    assert np.isnan(out[0, 0]) and out[1, 0] == pytest.approx(np.mean(f[4:, 3]))
    filled = fill_nearest(out)
    assert np.isfinite(filled).all() and filled[0, 0] in (out[0, 1], out[1, 0])
    assert (fill_nearest(np.full((2, 2), np.nan)) == 0).all()


def test_cut_tiles_matches_the_patcher():
    rng = np.random.default_rng(1)
    fine = rng.random(SPEC.fine_shape)
    ring = rng.random((SPEC.ny + 2, SPEC.nx + 2))
    p = Patcher(SPEC.coarse_shape)
    ft, ct = cut_tiles(fine, ring, _origins())
    np.testing.assert_array_equal(ft, p.cut_fine(fine[None])[:, 0])
    np.testing.assert_array_equal(ct, p.cut_coarse(ring[None])[:, 0])


def test_linear_in_longitude_gives_ratio_one():
    """Bilinear interpolation reproduces a linear field, so aligned tiles have ratio 1 exactly.

    A misalignment of one coarse cell between the fine and coarse tiles would be ~2 % off.
    """
    padded = SPEC.padded(1)
    lon = padded.fine_lon()
    field = np.broadcast_to(2.0 + 0.5 * (lon - lon[0]), padded.fine_shape)
    clim, coverage = external_ratio(_fine_grid(SPEC), field, SPEC, _origins())
    assert coverage == 1.0
    np.testing.assert_allclose(clim.ratios(), 1.0, atol=1e-6)


def test_ratio_is_the_ratio_baselines_formula():
    rng = np.random.default_rng(2)
    padded = SPEC.padded(1)
    field = rng.gamma(2.0, 0.5, padded.fine_shape) + 0.05
    clim, _ = external_ratio(_fine_grid(SPEC), field, SPEC, _origins())
    fine_t, coarse_t = tile_climatology(field, SPEC, _origins())
    # by hand: fine / bilinear(coarse), with the coarse tiles being cos-lat block means of the field
    coarse_padded = block_mean(field, 4, lat=padded.fine_lat())
    y0, x0 = _origins()[4]
    np.testing.assert_allclose(coarse_t[4], coarse_padded[y0 // 4 : y0 // 4 + 18, x0 // 4 : x0 // 4 + 18])
    np.testing.assert_allclose(fine_t[4], field[4 + y0 : 4 + y0 + 64, 4 + x0 : 4 + x0 + 64])
    np.testing.assert_allclose(clim.ratios()[4], fine_t[4] / bilinear(coarse_t[4:5])[0], rtol=1e-5)
    ref = RatioClimatology.fit(fine_t, coarse_t, np.ones(len(fine_t)))
    np.testing.assert_allclose(clim.ratios(), ref.ratios(), rtol=1e-6)  # the remap returns float32
    coarse = rng.gamma(1.0, 1.0, (3, 18, 18))
    np.testing.assert_allclose(clim.apply([0, 4, 5], coarse), bilinear(coarse) * clim.ratios()[[0, 4, 5]])


def test_no_data_gives_ratio_one_and_max_ratio_caps():
    padded = SPEC.padded(1)
    rng = np.random.default_rng(3)
    field = rng.gamma(2.0, 0.5, padded.fine_shape) + 0.05
    field[:, : 4 + 64] = np.nan  # no data over the western column of tiles (x0 = 0)
    clim, coverage = external_ratio(_fine_grid(SPEC), field, SPEC, _origins(), max_ratio=1.5)
    org = _origins()
    west = org[:, 1] == 0
    assert (clim.ratios()[west] == 1.0).all()
    assert np.isfinite(clim.ratios()).all() and clim.ratios().max() <= 1.5
    fine_t, _ = tile_climatology(field, SPEC, org)
    assert (clim.ratios()[np.isnan(fine_t)] == 1.0).all()
    assert (clim.ratios()[np.isfinite(fine_t)] != 1.0).mean() > 0.9
    assert coverage == pytest.approx(np.isfinite(fine_t).mean()) and 0 < coverage < 1


def test_from_a_prism_like_bil_file(tmp_path):
    """2.5′ source cells remapped conservatively: a linear field stays (nearly) ratio 1; no data is 1."""
    lat = np.arange(35.0, 44.0, 1 / 24)[::-1]  # north → south, as in the file
    lon = np.arange(-114.0, -101.0, 1 / 24)
    data = np.broadcast_to(20 + 0.3 * (lon - lon[0]), (lat.size, lon.size)).astype(np.float32).copy()
    data[:, lon > -104.5] = np.nan  # "ocean" in the east
    path = write_prism_bil_zip(tmp_path / "p.zip", data, west=float(lon[0]), north=float(lat[0]), step=1 / 24)
    r = read_prism(path)
    clim, coverage = external_ratio(r.grid, r.data / 8, SPEC, _origins())
    ratios = clim.ratios()
    org = _origins()
    east = org[:, 1] * 0.0625 + SPEC.west > -104.5
    assert (ratios[east] == 1.0).all()
    inner = ratios[org[:, 1] == 0]
    np.testing.assert_allclose(inner[:, :, 8:-8], 1.0, atol=2e-3)
    assert 0 < coverage < 1


def test_tile_centres_and_bbox():
    org = _origins()
    lat, lon = tile_centres(org, SPEC)
    assert lat[0] == pytest.approx(SPEC.south + 2.0) and lon[0] == pytest.approx(SPEC.west + 2.0)
    west = tiles_in_bbox(org, SPEC, (36, 42, -112, -108))
    np.testing.assert_array_equal(west, org[:, 1] < 64)
    assert tiles_in_bbox(org, SPEC, (0, 90, -180, 180)).all()
    assert tiles_in_bbox(org, SPEC, (0, 90, 248, 252)).sum() == west.sum()  # 0..360 longitudes
    assert not tiles_in_bbox(org, SPEC, (10, 20, -112, -108)).any()
    edge = tiles_in_bbox(org, SPEC, (float(lat[0]), 42, float(lon[0]), float(lon[0]) + 0.01))  # edges included
    np.testing.assert_array_equal(edge, org[:, 1] == 0)


def test_bbox_across_the_date_line():
    spec = GridSpec(lat0=50.0, lon0=170.0, ny=20, nx=60)  # 170E .. 185E (continuous)
    org = _origins(spec)
    _, lon = tile_centres(org, spec)
    inside = tiles_in_bbox(org, spec, (40, 60, 178, -178))
    np.testing.assert_array_equal(inside, (lon >= 178) & (lon <= 182))
    assert inside.any() and not inside.all()
