"""Interpolation and static-ratio baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from harpnet_cli.core import baselines as B
from harpnet_cli.core.remap import block_mean

CO = B.fine_to_coarse_coordinate()
YY, XX = np.meshgrid(np.arange(18.0), np.arange(18.0), indexing="ij")
FY, FX = np.meshgrid(CO, CO, indexing="ij")


def test_fine_centres_map_to_coarse_coordinates() -> None:
    assert CO[0] == pytest.approx(0.625) and CO[-1] == pytest.approx(16.375)
    assert CO[:4].mean() == pytest.approx(1.0)  # first 4x4 block is centred on coarse cell 1


def test_bilinear_reproduces_linear_field() -> None:
    lin = (2.0 + 0.3 * YY - 0.1 * XX)[None]
    out = B.bilinear(lin)
    assert out.shape == (1, 64, 64)
    np.testing.assert_allclose(out[0], 2.0 + 0.3 * FY - 0.1 * FX, atol=1e-12)


def test_bicubic_reproduces_quadratic_field() -> None:
    q = lambda y, x: 1 + 0.05 * (y - 8) ** 2 + 0.03 * (x - 9) ** 2 + 0.02 * y * x  # noqa: E731
    exact = q(FY, FX)
    np.testing.assert_allclose(B.bicubic(q(YY, XX)[None], kernel="keys")[0], exact, atol=1e-12)
    spline = B.bicubic(q(YY, XX)[None])[0]  # mirror boundary: approximate near the edge only
    assert np.abs(spline - exact)[12:-12, 12:-12].max() < 5e-3
    assert np.abs(spline - exact).max() < 0.3


@pytest.mark.parametrize("order,fn", [(1, B.bilinear), (3, B.bicubic)])
def test_matches_scipy_map_coordinates(order: int, fn) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    coarse = rng.gamma(0.5, 2.0, (3, 1, 18, 18)).astype(np.float32)
    ref = np.stack(
        [
            np.maximum(ndimage.map_coordinates(c[0].astype(np.float64), [FY, FX], order=order, mode="mirror"), 0)
            for c in coarse
        ]
    )
    out = fn(coarse)
    assert out.dtype == np.float32 and out.min() >= 0
    np.testing.assert_allclose(out, ref, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.floats(0, 50, allow_nan=False), st.sampled_from(["bl", "bspline", "keys"]))
def test_constant_stays_constant(value: float, which: str) -> None:
    coarse = np.full((2, 18, 18), value)
    out = B.bilinear(coarse) if which == "bl" else B.bicubic(coarse, kernel=which)  # type: ignore[arg-type]
    np.testing.assert_allclose(out, value, rtol=1e-12, atol=1e-12)


def test_mass_conserving_flag() -> None:
    rng = np.random.default_rng(1)
    coarse = rng.gamma(0.5, 2.0, (4, 18, 18))
    coarse[0, 5, 5] = 0.0
    for fn in (B.bilinear, B.bicubic):
        out = fn(coarse, mass_conserving=True)
        np.testing.assert_allclose(block_mean(out), coarse[:, 1:-1, 1:-1], atol=1e-12)
        assert out.min() >= 0
    # a dry interpolated block under a wet cell is filled uniformly
    fine = np.zeros((1, 64, 64))
    c = np.zeros((1, 18, 18))
    c[0, 1, 1] = 3.0
    np.testing.assert_allclose(B.conserve_block_mass(fine, c)[0, :4, :4], 3.0)


def test_ratio_climatology_doubles() -> None:
    rng = np.random.default_rng(2)
    n_tiles, n = 3, 12
    tiles = np.arange(n) % n_tiles
    coarse = rng.gamma(1.0, 2.0, (n, 1, 18, 18)) + 0.5
    fine = 2.0 * B.bilinear(coarse)[:, None]  # truth is 2x the interpolated coarse field
    clim = B.RatioClimatology(n_tiles + 1)  # tile 3 is never seen: ratio 1
    for sl in (slice(0, 5), slice(5, 12)):
        clim.add(tiles[sl], fine[sl], coarse[sl])
    r = clim.ratios()
    np.testing.assert_allclose(r[:n_tiles], 2.0, rtol=1e-12)
    np.testing.assert_allclose(r[n_tiles], 1.0)
    test = rng.gamma(1.0, 2.0, (4, 18, 18))
    ids = np.array([0, 1, 2, 3])
    out = clim.apply(ids, test)
    np.testing.assert_allclose(out[:3], 2.0 * B.bilinear(test[:3]), rtol=1e-12)
    np.testing.assert_allclose(out[3], B.bilinear(test[3:])[0], rtol=1e-12)
    # fit from sums gives the same ratios
    sums_f = np.stack([fine[tiles == t, 0].sum(0) for t in range(n_tiles)])
    sums_c = np.stack([coarse[tiles == t, 0].sum(0) for t in range(n_tiles)])
    again = B.RatioClimatology.fit(sums_f, sums_c, np.bincount(tiles))
    np.testing.assert_allclose(again.ratios(), r[:n_tiles])
    np.testing.assert_allclose(block_mean(clim.apply(ids, test, mass_conserving=True)), test[:, 1:-1, 1:-1])


def test_ratio_dry_climatology_is_one() -> None:
    clim = B.RatioClimatology(1)
    fine = np.zeros((2, 64, 64))
    fine[:, 0, 0] = 5.0  # wet fine pixel under a dry coarse climatology
    clim.add(np.zeros(2, dtype=int), fine, np.zeros((2, 18, 18)))
    r = clim.ratios()
    assert np.all(r == 1.0) and np.isfinite(r).all()
    with pytest.raises(IndexError):
        clim.apply(np.array([1]), np.zeros((1, 18, 18)))
