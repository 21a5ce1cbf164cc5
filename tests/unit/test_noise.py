"""Noise fields of stochastic models (:mod:`harpnet_cli.core.noise`): reproducible members, unit
variance, the smoothing length, no seam round the globe, batch layout, and tiles that agree."""

from __future__ import annotations

import numpy as np
import pytest

from harpnet_cli.core.noise import draw_batch_noise, draw_noise
from harpnet_cli.core.tiling import Patcher, Stitcher

SCALES = (0.0, 1.0, 4.0)


def lag1(x: np.ndarray, axis: int = -1) -> float:
    """Lag-1 autocorrelation of zero-mean fields along ``axis`` (pooled over everything else)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return float((x[..., 1:] * x[..., :-1]).mean() / (x**2).mean())


def expected_lag1(sigma: float) -> float:
    """Lag-1 autocorrelation of white noise smoothed by a Gaussian of ``sigma`` cells, truncated at 3 sigma.

    Smoothing is separable, so along one axis the correlation is the 1-D kernel's autocorrelation at
    lag 1 over its sum of squares (the other axis cancels). For large sigma it tends to
    ``exp(-1 / (4 sigma^2))``.
    """
    if sigma == 0:
        return 0.0
    r = int(3 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return float((k[1:] * k[:-1]).sum() / (k**2).sum())


# -- reproducibility --------------------------------------------------------------------------------
def test_shape_dtype_and_member_major_layout() -> None:
    f = draw_noise((40, 56), 3, SCALES, seed=5)
    assert f.shape == (3 * len(SCALES), 40, 56) and f.dtype == np.float32
    assert np.isfinite(f).all()
    # channel m * S + s has the smoothness of scale s: white, then sigma 1, then sigma 4, per member
    for m in range(3):
        rho = [lag1(f[m * len(SCALES) + s]) for s in range(len(SCALES))]
        assert abs(rho[0]) < 0.1 and 0.6 < rho[1] < 0.9 and rho[2] > 0.95, rho


def test_reproducible_from_seed_and_member() -> None:
    a = draw_noise((32, 48), 2, SCALES, seed=11)
    assert np.array_equal(a, draw_noise((32, 48), 2, SCALES, seed=11))
    assert np.array_equal(a, draw_noise((32, 48), 2, SCALES, seed=[11]))  # an int is a one-element sequence
    assert np.array_equal(a, draw_noise((32, 48), 2, SCALES, seed=np.int64(11)))
    assert not np.array_equal(a, draw_noise((32, 48), 2, SCALES, seed=12))
    assert not np.array_equal(a, draw_noise((32, 48), 2, SCALES, seed=[11, 0]))
    s = len(SCALES)
    assert not np.array_equal(a[:s], a[s:])  # two members are two draws


@pytest.mark.parametrize("periodic", [False, True])
def test_the_noise_does_not_depend_on_the_threads_drawing_it(periodic: bool) -> None:
    one = draw_noise((24, 40), 5, SCALES, seed=[3, 7], first_member=2, periodic=periodic)
    for threads in (2, 3, 8):
        out = np.full_like(one, np.nan)
        assert draw_noise((24, 40), 5, SCALES, seed=[3, 7], first_member=2, periodic=periodic, out=out,
                          threads=threads) is out
        assert np.array_equal(out, one), threads


def test_member_k_is_the_same_however_many_are_drawn() -> None:
    s = len(SCALES)
    many = draw_noise((24, 40), 6, SCALES, seed=[3, 7])
    for k in range(6):
        alone = draw_noise((24, 40), 1, SCALES, seed=[3, 7], first_member=k)
        assert np.array_equal(many[k * s : (k + 1) * s], alone), k
    assert np.array_equal(draw_noise((24, 40), 2, SCALES, seed=[3, 7]), many[: 2 * s])
    assert np.array_equal(draw_noise((24, 40), 3, SCALES, seed=[3, 7], first_member=2), many[2 * s : 5 * s])
    # periodic draws keep the same rule
    wrap = draw_noise((24, 40), 4, SCALES, seed=9, periodic=True)
    assert np.array_equal(wrap[3 * s :], draw_noise((24, 40), 1, SCALES, seed=9, first_member=3, periodic=True))


def test_no_members_is_empty() -> None:
    f = draw_noise((8, 8), 0, SCALES, seed=0)
    assert f.shape == (0, 8, 8)


# -- distribution -----------------------------------------------------------------------------------
@pytest.mark.parametrize("periodic", [False, True], ids=["bounded", "periodic"])
@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.0, 2.5, 4.0, 6.0])
def test_each_field_has_zero_mean_unit_variance_and_its_smoothing_length(sigma: float, periodic: bool) -> None:
    f = draw_noise((192, 192), 4, [sigma], seed=[1, int(10 * sigma)], periodic=periodic).astype(np.float64)
    # a field of smoothing length sigma has ~ H W / (4 pi sigma^2) independent values
    n_eff = f.size / max(1.0, 4 * np.pi * sigma**2)
    assert abs(f.mean()) < 5 / np.sqrt(n_eff)
    assert f.var() == pytest.approx(1.0, abs=max(0.03, 6 * np.sqrt(2 / n_eff)))
    for axis in (-1, -2):
        assert lag1(f, axis) == pytest.approx(expected_lag1(sigma), abs=0.03)


def test_smoothing_length_four_is_smooth_and_zero_is_white() -> None:
    f = draw_noise((128, 128), 2, [0.0, 4.0], seed=2)
    white, smooth = f[0::2], f[1::2]
    assert lag1(smooth) > 0.9 and lag1(smooth, -2) > 0.9
    assert abs(lag1(white)) < 0.05 and abs(lag1(white, -2)) < 0.05
    assert lag1(smooth) == pytest.approx(np.exp(-1 / 64), abs=0.02)  # the continuous limit


def test_edges_are_as_variable_and_as_smooth_as_the_inside() -> None:
    """The margin drawn round the field: its edge pixels are no different from its centre."""
    f = draw_noise((24, 24), 300, [4.0], seed=4).astype(np.float64)  # (300, 24, 24)
    for name, cells in {
        "west": f[:, :, 0],
        "east": f[:, :, -1],
        "north": f[:, 0, :],
        "south": f[:, -1, :],
        "corner": f[:, :1, :1],
        "centre": f[:, 12, :],
    }.items():
        assert cells.var() == pytest.approx(1.0, abs=0.2), name
    rho_edge = float((f[:, :, 0] * f[:, :, 1]).mean() / np.sqrt((f[:, :, 0] ** 2).mean() * (f[:, :, 1] ** 2).mean()))
    assert rho_edge == pytest.approx(expected_lag1(4.0), abs=0.02)


def test_distant_fields_of_one_draw_are_independent() -> None:
    """Bounded (not periodic) fields do not wrap: their first and last columns are unrelated."""
    f = draw_noise((64, 96), 40, [4.0], seed=8).astype(np.float64)
    r = float((f[..., 0] * f[..., -1]).mean())
    assert abs(r) < 0.15


# -- the periodic seam ------------------------------------------------------------------------------
def _wrap_and_inside_jumps(f: np.ndarray) -> tuple[float, float]:
    """Mean absolute jump from the last column to the first, and between neighbouring columns inside."""
    f = f.astype(np.float64)
    return float(np.abs(f[..., 0] - f[..., -1]).mean()), float(np.abs(np.diff(f, axis=-1)).mean())


@pytest.mark.parametrize("sigma", [1.0, 4.0])
def test_periodic_noise_has_no_seam_where_the_last_column_meets_the_first(sigma: float) -> None:
    f = draw_noise((96, 128), 12, [sigma], seed=6, periodic=True)
    wrap, inside = _wrap_and_inside_jumps(f)
    assert wrap == pytest.approx(inside, rel=0.15)
    # the wrap is a neighbour like any other: its correlation is the field's lag-1 correlation
    x = f.astype(np.float64)
    assert float((x[..., 0] * x[..., -1]).mean()) == pytest.approx(expected_lag1(sigma), abs=0.06)
    # rows do not wrap (the globe is not periodic in latitude)
    assert float((x[..., 0, :] * x[..., -1, :]).mean()) == pytest.approx(0.0, abs=0.15)


def test_bounded_noise_jumps_across_the_wrap() -> None:
    """The control: without ``periodic`` the last column does not continue into the first."""
    wrap, inside = _wrap_and_inside_jumps(draw_noise((96, 128), 12, [4.0], seed=6))
    # independent unit normals differ by |N(0, 2)|, on average 2 / sqrt(pi) = 1.13; neighbours of a
    # sigma-4 field by sqrt(2 (1 - rho)) sqrt(2 / pi) = 0.14
    assert wrap == pytest.approx(2 / np.sqrt(np.pi), rel=0.15)
    assert inside == pytest.approx(np.sqrt(2 * (1 - expected_lag1(4.0))) * np.sqrt(2 / np.pi), rel=0.15)
    assert wrap > 5 * inside


# -- training batches ---------------------------------------------------------------------------------
def test_batch_noise_shape_layout_and_reproducibility() -> None:
    scales = (0.0, 4.0)
    b = draw_batch_noise(5, 3, scales, (64, 64), seed=[1, 2, 3])
    assert b.shape == (5, 3 * len(scales), 64, 64) and b.dtype == np.float32
    assert np.array_equal(b, draw_batch_noise(5, 3, scales, (64, 64), seed=[1, 2, 3]))
    assert not np.array_equal(b, draw_batch_noise(5, 3, scales, (64, 64), seed=[1, 2, 4]))
    # member major within each tile: channel m * S + s has the smoothing of scale s
    for tile in range(5):
        for m in range(3):
            assert abs(lag1(b[tile, 2 * m])) < 0.1
            assert lag1(b[tile, 2 * m + 1]) > 0.9
    # every tile and member is its own draw
    flat = b.reshape(15, 2, 64, 64)
    for i in range(15):
        for j in range(i + 1, 15):
            assert not np.array_equal(flat[i], flat[j])
    x = b.astype(np.float64)
    assert abs(x.mean()) < 0.1 and x.var() == pytest.approx(1.0, abs=0.1)
    for s in range(len(scales)):
        assert x[:, s::2].var() == pytest.approx(1.0, abs=0.15)


# -- tiles cut from a domain's noise ------------------------------------------------------------------
@pytest.mark.parametrize("periodic", [False, True], ids=["bounded", "periodic"])
def test_tiles_cut_from_domain_noise_agree_on_their_overlaps(periodic: bool) -> None:
    patcher = Patcher((22, 40), tile=64, ratio=4, buffer=1, overlap=16, periodic=periodic)
    h, w = patcher.fine_shape
    noise = draw_noise((h, w), 2, (1.0, 4.0), seed=[21, 1], periodic=periodic)
    tiles = patcher.cut_fine(noise)
    assert tiles.shape == (len(patcher), 4, 64, 64) and len(patcher) > 2
    pairs = 0
    for a in range(len(patcher)):
        for b in range(a + 1, len(patcher)):
            ta, tb = patcher.tiles[a], patcher.tiles[b]
            # fine rows and columns (of the domain, modulo its width when periodic) both tiles hold
            rows = set(range(ta.y0, ta.y0 + 64)) & set(range(tb.y0, tb.y0 + 64))
            cols_a = {(ta.x0 + i) % w if periodic else ta.x0 + i: i for i in range(64)}
            cols_b = {(tb.x0 + i) % w if periodic else tb.x0 + i: i for i in range(64)}
            cols = sorted(set(cols_a) & set(cols_b))
            rows = sorted(r for r in rows if r < h)
            if not rows or not cols:
                continue
            pairs += 1
            ia, ib = [cols_a[c] for c in cols], [cols_b[c] for c in cols]
            ya, yb = np.array(rows) - ta.y0, np.array(rows) - tb.y0
            assert np.array_equal(tiles[a][:, ya][:, :, ia], tiles[b][:, yb][:, :, ib]), (a, b)
            # and both are the domain's own noise there
            assert np.array_equal(tiles[a][:, ya][:, :, ia], noise[:, rows][:, :, cols])
    assert pairs >= 2


@pytest.mark.parametrize("periodic", [False, True], ids=["bounded", "periodic"])
def test_stitched_noise_is_the_domain_noise(periodic: bool) -> None:
    """Tiles that agree blend into the field they were cut from: a member stitched from tiles has no seam."""
    patcher = Patcher((22, 40), tile=64, ratio=4, buffer=1, overlap=16, periodic=periodic)
    noise = draw_noise(patcher.fine_shape, 2, (0.0, 4.0), seed=3, periodic=periodic)
    stitcher = Stitcher(patcher, channels=noise.shape[0])
    tiles = patcher.cut_fine(noise)
    for sl in patcher.batches(3):
        stitcher.add(sl, tiles[sl])
    np.testing.assert_allclose(stitcher.result(), noise, rtol=0, atol=1e-5)


def test_a_tile_across_the_dateline_has_no_seam_inside() -> None:
    """Periodic noise cut by a periodic patcher: the tile that wraps is smooth where east meets west."""
    patcher = Patcher((16, 48), tile=64, ratio=4, buffer=1, overlap=16, periodic=True)
    w = patcher.fine_shape[1]
    wrapping = [k for k, t in enumerate(patcher.tiles) if t.x0 + 64 > w]
    assert wrapping, "the layout has a tile across the east edge"

    def jumps(noise: np.ndarray) -> tuple[float, float]:
        tiles = patcher.cut_fine(noise).astype(np.float64)
        at_seam, inside = [], []
        for k in wrapping:
            c = w - patcher.tiles[k].x0  # local column of domain column 0
            d = np.abs(np.diff(tiles[k], axis=-1))  # d[..., i] is column i + 1 minus column i
            at_seam.append(d[..., c - 1].mean())
            inside.append(np.delete(d, c - 1, axis=-1).mean())
        return float(np.mean(at_seam)), float(np.mean(inside))

    seam, inside = jumps(draw_noise(patcher.fine_shape, 8, [4.0], seed=1, periodic=True))
    assert seam == pytest.approx(inside, rel=0.3)
    seam, inside = jumps(draw_noise(patcher.fine_shape, 8, [4.0], seed=1, periodic=False))
    assert seam > 4 * inside  # the control: bounded noise has a seam there


def test_noise_drawn_into_a_given_array_is_the_same():
    shape, scales = (24, 40), [1.0, 4.0]
    want = draw_noise(shape, 3, scales, seed=[5, 1])
    static = np.full((1 + 6, *shape), -1.0, dtype=np.float32)  # terrain first, then the members' noise
    got = draw_noise(shape, 3, scales, seed=[5, 1], out=static[1:])
    assert got.base is static or got is static[1:] or np.shares_memory(got, static)
    np.testing.assert_array_equal(static[1:], want)
    assert (static[0] == -1.0).all()
    with pytest.raises(ValueError, match="out must be"):
        draw_noise(shape, 2, scales, seed=1, out=static[1:])
