"""Patcher/stitcher invariants: coverage, alignment, and identity round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.tiling import (
    Patcher,
    Stitcher,
    choose_tile,
    periodic_tile_starts,
    seam_statistic,
    taper,
    tile_starts,
    wrap_columns,
)


def upsample(coarse: np.ndarray, r: int = 4) -> np.ndarray:
    return np.repeat(np.repeat(coarse, r, axis=-2), r, axis=-1)


def identity_model(coarse_tiles: np.ndarray, b: int = 1, r: int = 4) -> np.ndarray:
    """Spoof model: nearest upsampling of the tile's coarse centre (no buffer)."""
    return upsample(coarse_tiles[:, :, b:-b, b:-b], r)


def run_identity(ny: int, nx: int, batch: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Patcher]:
    rng = np.random.default_rng(seed)
    padded = rng.gamma(0.5, 4.0, size=(1, ny + 2, nx + 2)).astype(np.float32)
    p = Patcher((ny, nx))
    tiles = p.cut_coarse(padded)
    s = Stitcher(p)
    for sl in p.batches(batch):
        s.add(sl, identity_model(tiles[sl]))
    return s.result(), upsample(padded[:, 1:-1, 1:-1]), p


def test_conus_identity_round_trip():
    out, direct, p = run_identity(104, 240)
    assert out.shape == (1, 416, 960)
    np.testing.assert_allclose(out, direct, atol=1e-6, rtol=0)
    assert len(p) == 9 * 20


def test_tile_coarse_input_is_18_by_18_and_aligned():
    p = Patcher((40, 40))
    coarse = np.arange(42 * 42, dtype=np.float32).reshape(1, 42, 42)
    tiles = p.cut_coarse(coarse)
    assert tiles.shape[1:] == (1, 18, 18)
    for k, t in enumerate(p.tiles):
        assert t.y0 % 4 == 0 and t.x0 % 4 == 0
        j, i = t.y0 // 4, t.x0 // 4
        # buffer cell (0, 0) of the tile is the coarse cell diagonally outside its corner
        assert tiles[k, 0, 0, 0] == coarse[0, j, i]
        assert tiles[k, 0, 1, 1] == coarse[0, j + 1, i + 1]


def test_fine_tiles_match_offsets():
    p = Patcher((20, 30))
    fine = np.random.default_rng(1).normal(size=(2, 80, 120)).astype(np.float32)
    tiles = p.cut_fine(fine)
    assert tiles.shape == (len(p), 2, 64, 64)
    for k, t in enumerate(p.tiles):
        np.testing.assert_array_equal(tiles[k], fine[:, t.y0 : t.y0 + 64, t.x0 : t.x0 + 64])


@pytest.mark.parametrize("periodic", [False, True])
def test_fine_tiles_cut_a_batch_at_a_time_equal_the_whole_cut(periodic):
    p = Patcher((20, 40), periodic=periodic) if periodic else Patcher((20, 30))
    fine = np.random.default_rng(2).normal(size=(3, *p.fine_shape)).astype(np.float32)
    whole = p.cut_fine(fine)
    cut = p.fine_cutter(fine)
    parts = [cut(sl) for sl in p.batches(3)]
    assert all(len(part) <= 3 for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_domain_smaller_than_a_tile_is_padded_and_cropped():
    out, direct, p = run_identity(5, 9)
    assert len(p) == 1
    assert out.shape == (1, 20, 36)
    np.testing.assert_allclose(out, direct, atol=1e-6)


def test_starts_cover_axis_with_overlap():
    starts = tile_starts(416, 64, 16, 4)
    assert starts[0] == 0 and starts[-1] == 416 - 64
    assert all(s % 4 == 0 for s in starts)
    gaps = np.diff(starts)
    assert (gaps <= 48).all() and (gaps > 0).all()


def test_taper_is_positive_and_flat_without_neighbours():
    w = taper(64, 16, left=True, right=True)
    assert (w > 0).all() and w.max() == 1.0 and w[0] < 0.01
    np.testing.assert_array_equal(taper(64, 16, left=False, right=False), np.ones(64))


def test_missing_tile_is_an_error():
    p = Patcher((30, 30))
    s = Stitcher(p)
    s.add([0], np.zeros((1, 1, 64, 64)))
    with pytest.raises(RuntimeError, match="never added"):
        s.result()


def test_wrong_input_shape_is_rejected():
    with pytest.raises(ValueError, match="coarse input"):
        Patcher((30, 30)).cut_coarse(np.zeros((1, 30, 30)))


@settings(max_examples=25, deadline=None)
@given(ny=st.integers(1, 60), nx=st.integers(1, 60), batch=st.integers(1, 16), seed=st.integers(0, 99))
def test_identity_round_trip_any_shape(ny, nx, batch, seed):
    out, direct, _ = run_identity(ny, nx, batch, seed)
    np.testing.assert_allclose(out, direct, atol=1e-6, rtol=0)


@settings(max_examples=20, deadline=None)
@given(ny=st.integers(16, 60), nx=st.integers(16, 60))
def test_blend_weights_cover_every_pixel(ny, nx):
    p = Patcher((ny, nx))
    wsum = np.zeros(p.work_shape)
    for k, t in enumerate(p.tiles):
        wsum[t.y0 : t.y0 + 64, t.x0 : t.x0 + 64] += p.weight(k)
    assert (wsum > 0.05).all()


def test_seam_statistic_is_one_without_seams_and_large_with_them():
    p = Patcher((40, 40))
    noise = np.random.default_rng(3).normal(size=(160, 160))
    assert seam_statistic(noise, p)["ratio"] == pytest.approx(1.0, abs=0.1)
    seamy = noise.copy()
    for t in p.tiles:  # a different offset per tile, as a bad stitcher would leave
        seamy[t.y0 : t.y0 + 64, t.x0 : t.x0 + 64] = noise[t.y0 : t.y0 + 64, t.x0 : t.x0 + 64] + t.y0 + t.x0
    assert seam_statistic(seamy, p)["ratio"] > 2.0


def test_seam_statistic_is_not_fooled_by_coarse_cell_blocks():
    """A blocky field (one value per coarse cell) jumps at every coarse boundary, tile edge or not."""
    out, _, p = run_identity(40, 40, seed=5)
    assert seam_statistic(out[0], p)["ratio"] == pytest.approx(1.0, abs=0.15)


# -- periodic domains (all longitudes) ------------------------------------------------------------
def run_periodic(ny: int, nx: int, tile: int = 64, overlap: int = 16, seed: int = 0,
                 model=identity_model) -> tuple[np.ndarray, np.ndarray, Patcher]:
    """Stitch a periodic domain whose buffer columns are the other edge's columns."""
    rng = np.random.default_rng(seed)
    domain = rng.gamma(0.5, 4.0, size=(1, ny, nx)).astype(np.float32)
    padded = wrap_columns(np.pad(domain, ((0, 0), (1, 1), (0, 0)), mode="edge"), 1)
    p = Patcher((ny, nx), tile=tile, overlap=overlap, periodic=True)
    tiles = p.cut_coarse(padded)
    s = Stitcher(p)
    for sl in p.batches(5):
        s.add(sl, model(tiles[sl]))
    return s.result(), upsample(domain), p


@settings(max_examples=20, deadline=None)
@given(ny=st.integers(1, 40), nx=st.integers(16, 90), big=st.booleans(), seed=st.integers(0, 99))
def test_periodic_identity_round_trip(ny, nx, big, seed):
    tile, overlap = (128, 32) if big and nx >= 32 else (64, 16)
    out, direct, p = run_periodic(ny, nx, tile, overlap, seed)
    np.testing.assert_allclose(out, direct, atol=1e-6, rtol=0)
    assert all(0 <= t.x0 < 4 * nx for t in p.tiles)


def test_periodic_tiles_wrap_and_see_the_other_edge():
    """A tile crossing the east edge gets the west edge's coarse cells, its buffer too."""
    ny, nx = 17, 33
    domain = np.arange(ny * nx, dtype=np.float32).reshape(1, ny, nx)
    padded = wrap_columns(np.pad(domain, ((0, 0), (1, 1), (0, 0)), mode="edge"), 1)
    p = Patcher((ny, nx), periodic=True)
    tiles = p.cut_coarse(padded)
    assert any(t.x0 + 64 > 4 * nx for t in p.tiles)  # some tile wraps
    for k, t in enumerate(p.tiles):
        cols = (t.x0 // 4 + np.arange(18) - 1) % nx
        rows = np.clip(t.y0 // 4 + np.arange(18) - 1, 0, ny - 1)
        np.testing.assert_array_equal(tiles[k, 0], domain[0][rows][:, cols])


def test_periodic_blend_has_no_seam_at_the_date_line():
    """Tiles that disagree (an offset per tile) are blended across the wrap as across any tile edge."""
    def offset_model(tiles):
        return identity_model(tiles) * 0 + np.arange(len(tiles), dtype=np.float32)[:, None, None, None]

    out, _, p = run_periodic(20, 60, model=offset_model)
    field = out[0]
    wrap = np.abs(field[:, 0] - field[:, -1]).mean()
    inside = np.abs(np.diff(field, axis=1)).max()
    assert wrap <= inside + 1e-6
    assert p.weight(0)[32, 0] < 0.5  # the first tile tapers toward its western (wrapped) neighbour


def test_wrap_columns():
    a = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(wrap_columns(a, 1), np.concatenate([a[:, -1:], a, a[:, :1]], axis=1))
    assert wrap_columns(a, 0) is a


def test_periodic_starts_cover_the_circle_with_overlap():
    starts = periodic_tile_starts(5760, 512, 32, 4)
    assert starts[0] == 0 and all(s % 4 == 0 for s in starts)
    gaps = np.diff(starts + [starts[0] + 5760])
    assert gaps.max() <= 512 - 28  # every neighbour overlaps (up to the alignment)


def test_choose_tile_keeps_the_native_tile_where_larger_saves_nothing():
    assert choose_tile((64, 64), native=64, multiple=16) == (64, 16)
    assert choose_tile((24, 24), native=64, multiple=16) == (64, 16)


@pytest.mark.parametrize(("shape", "periodic"), [((416, 960), False), ((2876, 5760), True), ((164, 5760), True),
                                                 ((100, 100), False)])
def test_choose_tile_computes_fewer_pixels(shape, periodic):
    tile, overlap = choose_tile(shape, native=64, multiple=16, periodic=periodic)
    assert tile % 16 == 0 and 64 <= tile <= 512

    def pixels(p: Patcher) -> int:
        return len(p) * p.tile**2

    coarse = (shape[0] // 4, shape[1] // 4)
    chosen = Patcher(coarse, tile=tile, overlap=overlap, periodic=periodic)
    native = Patcher(coarse, tile=64, overlap=16, periodic=periodic)
    assert pixels(chosen) <= pixels(native)
    if shape == (416, 960):
        assert tile > 64 and pixels(chosen) < 0.8 * pixels(native)
