"""Tests for harpnet_cli.core.synthetic: Smith–Barstad physics, the random parts, the world."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harpnet_cli.core.remap import block_mean
from harpnet_cli.core.synthetic import (
    Cells,
    SyntheticState,
    SyntheticWorld,
    advection_blur,
    gaussian_field,
    large_scale_rain,
    orographic_linear,
    orographic_rate,
    power_law_amplitude,
    render_cells,
    sample_state,
    uplift_sensitivity,
    vapour_scale_height,
    wavenumbers,
)
from harpnet_cli.grids import GridSpec

DX = 2000.0  # m


def gaussian_hill(n: int, dx: float, half_width: float, height: float = 1000.0) -> np.ndarray:
    """``(n, n)`` circular Gaussian hill centred on the array (symmetric under flips and transposes)."""
    x = (np.arange(n) - (n - 1) / 2) * dx
    return height * np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * half_width**2))


def upslope(h: np.ndarray, dx: float, state: SyntheticState) -> np.ndarray:
    """The upslope model ``Cw U . grad h`` in mm/h, by centred finite differences."""
    gy, gx = np.gradient(h.astype(np.float64), dx)
    return state.moisture * 3600.0 * (state.u * gx + state.v * gy)


def small_world(hr_factor: int = 2, lat0: float = 39.0, ny: int = 4, nx: int = 6) -> SyntheticWorld:
    """A world on ``ny x nx`` coarse cells with a N–S ridge in the middle."""
    spec = GridSpec(lat0=lat0, lon0=-110.0, ny=ny, nx=nx)
    step = 0.0625 / hr_factor
    lat = spec.south + step * (np.arange(spec.fine_shape[0] * hr_factor) + 0.5)
    lon = spec.west + step * (np.arange(spec.fine_shape[1] * hr_factor) + 0.5)
    ridge = 1500.0 * np.exp(-(((lon - lon.mean()) / 0.25) ** 2))
    terrain = np.broadcast_to(ridge, (lat.size, lon.size)).copy()
    return SyntheticWorld(terrain, lat, lon, hr_factor)


# -- (a) Gaussian mountain in uniform flow -------------------------------------------------------
def test_windward_maximum_and_rain_shadow() -> None:
    n, a = 160, 20e3
    h = gaussian_hill(n, DX, a)
    state = SyntheticState(u=10.0, v=0.0)
    background = 1.0
    p = orographic_rate(h, DX, DX, state, background=background)
    x = (np.arange(n) - (n - 1) / 2) * DX
    row = p[n // 2]
    x_max = x[np.argmax(row)]
    assert -2 * a < x_max < 0, "maximum over the windward (western) slope"
    upwind, lee = row[np.argmin(np.abs(x + a))], row[np.argmin(np.abs(x - a))]
    assert lee < upwind
    assert lee < background, "rain shadow: the lee falls below the background rate"
    assert row.max() > 2 * background


def test_flipping_the_wind_flips_the_pattern() -> None:
    h = gaussian_hill(128, DX, 15e3)
    east = orographic_linear(h, DX, DX, SyntheticState(u=12.0, v=0.0))
    west = orographic_linear(h, DX, DX, SyntheticState(u=-12.0, v=0.0))
    north = orographic_linear(h, DX, DX, SyntheticState(u=0.0, v=12.0))
    scale = float(np.abs(east).max())
    np.testing.assert_allclose(west, east[:, ::-1], atol=1e-4 * scale)
    np.testing.assert_allclose(north, east.T, atol=1e-4 * scale)


# -- (b) no airflow dynamics: the upslope model --------------------------------------------------
def test_reduces_to_upslope_model_without_dynamics() -> None:
    h = gaussian_hill(160, DX, 20e3)
    state = SyntheticState(u=10.0, v=4.0, stability=0.0, tau_c=0.0, tau_f=0.0, vapour_scale_height=0.0)
    expected = np.maximum(upslope(h, DX, state), 0)
    # exact up to the finite differences' O((dx / a)^2) error
    np.testing.assert_allclose(orographic_rate(h, DX, DX, state), expected, atol=0.01 * expected.max())


def test_upslope_limit_with_vapour_scale_height_on_a_broad_hill() -> None:
    dx = 10_000.0
    h = gaussian_hill(200, dx, 250e3)
    state = SyntheticState(u=10.0, v=4.0, stability=1e-6, tau_c=1.0, tau_f=1.0)  # N_m, tau -> 0
    expected = np.maximum(upslope(h, dx, state), 0)
    # what remains of the airflow term, 1 / (1 + K Hw), is ~1 % for a 250 km hill and Hw = 2.5 km
    np.testing.assert_allclose(orographic_rate(h, dx, dx, state), expected, atol=0.03 * expected.max())


# -- (c) flat terrain ----------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0.0, 1500.0])
def test_flat_terrain_has_no_orographic_signal(level: float) -> None:
    flat = np.full((48, 64), level, dtype=np.float32)
    state = SyntheticState(u=15.0, v=-5.0, stability=0.008)
    assert np.abs(orographic_linear(flat, DX, DX, state)).max() < 1e-6
    assert np.abs(orographic_linear(flat, DX, DX, state, coriolis=1e-4)).max() < 1e-6


def test_flat_world_without_synoptic_rain_is_dry() -> None:
    spec = GridSpec(lat0=40.0, lon0=-100.0, ny=2, nx=3)
    lat = spec.south + 0.03125 * (np.arange(16) + 0.5)
    lon = spec.west + 0.03125 * (np.arange(24) + 0.5)
    world = SyntheticWorld(np.full((16, 24), 800.0), lat, lon, 2)
    state = SyntheticState(u=10.0, v=3.0, moisture=0.008)
    assert not world.render_hr(state, np.random.default_rng(0)).any()


# -- (d) determinism -----------------------------------------------------------------------------
def test_same_seed_and_index_give_identical_samples() -> None:
    world = small_world()
    wet = [i for i in range(40) if world.sample(i, 7)[0].any()][:2]
    a1, s1 = world.sample(wet[0], 7)
    a2, s2 = world.sample(wet[0], 7)
    np.testing.assert_array_equal(a1, a2)
    assert s1 == s2
    b, s3 = world.sample(wet[1], 7)
    assert s3 != s1 and not np.array_equal(a1, b)
    c, _ = world.sample(wet[0], 8)
    assert not np.array_equal(a1, c)


# -- (e) plausible amounts -----------------------------------------------------------------------
def test_many_samples_are_plausible() -> None:
    world = small_world(ny=4, nx=8)
    amounts = np.stack([world.sample(i, 3)[0] for i in range(40)])
    assert amounts.dtype == np.float32 and amounts.shape == (40, *world.fine_shape)
    assert np.isfinite(amounts).all() and (amounts >= 0).all()
    wet_fraction = float((amounts > 0.1).mean())
    mean = float(amounts.mean())
    assert 0.1 <= wet_fraction <= 0.7, wet_fraction
    assert 0.1 <= mean <= 10.0, mean
    assert amounts.max() < 500.0
    assert (amounts.reshape(40, -1).max(axis=1) == 0).sum() >= 1, "some dry situations"


def test_sampled_states_are_in_range() -> None:
    states = [sample_state(np.random.default_rng([1, i])) for i in range(300)]
    speed = np.array([s.speed for s in states])
    assert 3 <= speed.min() and speed.max() <= 40 and 8 < np.median(speed) < 16
    westerly = np.mean([s.u > 0 for s in states])
    assert westerly > 0.7
    assert all(0.002 <= s.stability <= 0.012 for s in states)
    assert all(500 <= s.tau_c <= 2000 and 500 <= s.tau_f <= 2500 for s in states)
    assert all(0.0 <= s.convective <= 1.0 and 0 < s.wet_fraction < 1 for s in states)
    dry = np.mean([s.is_dry for s in states])
    assert 0.03 < dry < 0.2


def test_state_vector_round_trip() -> None:
    state = sample_state(np.random.default_rng(5))
    names = SyntheticState.names()
    assert names[:2] == ("u", "v") and len(names) == state.as_vector().size
    vector = state.as_vector()
    assert vector.dtype == np.float32
    back = SyntheticState.from_vector(vector)
    np.testing.assert_allclose(back.as_vector(), vector)
    with pytest.raises(ValueError):
        SyntheticState.from_vector(vector[:-1])


# -- (f) HR truth -> fine -> coarse --------------------------------------------------------------
def test_fine_output_is_the_area_mean_of_the_hr_truth() -> None:
    world = small_world(hr_factor=2)
    index = next(i for i in range(30) if not sample_state(np.random.default_rng([2, i])).is_dry)
    hr, _ = world.sample_hr(index, 2)
    fine, _ = world.sample(index, 2)
    assert hr.shape == (2 * fine.shape[0], 2 * fine.shape[1]) and fine.shape == world.fine_shape
    np.testing.assert_array_equal(fine, world.to_fine(hr))
    fine_lat = world.lat_hr.reshape(-1, 2).mean(axis=1)
    coarse = block_mean(fine, 4, lat=fine_lat)
    assert coarse.shape == (fine.shape[0] // 4, fine.shape[1] // 4)
    # cos-latitude weights nest: HR -> fine -> coarse equals HR -> coarse
    np.testing.assert_allclose(coarse, block_mean(hr, 8, lat=world.lat_hr), rtol=1e-5, atol=1e-6)
    assert math.isclose(float(coarse.mean()), float(fine.mean()), rel_tol=1e-3, abs_tol=1e-6)


def test_world_rejects_bad_grids() -> None:
    lat, lon = np.arange(8) * 0.03125, np.arange(12) * 0.03125
    with pytest.raises(ValueError, match="multiple"):
        SyntheticWorld(np.zeros((8, 12)), lat, lon, 3)
    with pytest.raises(ValueError, match="match"):
        SyntheticWorld(np.zeros((8, 10)), lat, lon, 2)
    with pytest.raises(ValueError, match="regular"):
        SyntheticWorld(np.zeros((8, 12)), lat[::-1], lon, 2)


# -- building blocks -----------------------------------------------------------------------------
def test_thermodynamic_coefficients() -> None:
    assert 0.005 < uplift_sensitivity(10.0) < 0.009  # SB04-type values, kg m-3
    assert uplift_sensitivity(20.0) > uplift_sensitivity(0.0)
    assert 2100 < vapour_scale_height(10.0) < 2500  # m


def test_gaussian_field_has_unit_variance() -> None:
    shape = (128, 256)
    k, l_ = wavenumbers(shape, 5000.0, 5000.0)
    state = SyntheticState(u=10.0, v=5.0, spectral_slope=3.5, elongation=2.0)
    amplitude = power_law_amplitude(k, l_, state, outer_scale_m=200e3)
    rng = np.random.default_rng(0)
    variance = np.mean([gaussian_field(rng, amplitude, shape).var() for _ in range(20)])
    assert 0.8 < variance < 1.2


def test_large_scale_rain_matches_wet_fraction_and_conditional_mean() -> None:
    g = np.random.default_rng(1).standard_normal(1_000_000).astype(np.float32)
    state = SyntheticState(u=10.0, v=0.0, large_scale_rate=1.5, wet_fraction=0.25)
    rate, envelope = large_scale_rain(g, state)
    wet = rate > 0
    assert abs(wet.mean() - 0.25) < 0.005
    assert abs(rate[wet].mean() - 1.5) < 0.05
    assert (envelope[wet] == 1).all() and 0.25 < (envelope > 0).mean() < 0.5


def test_advection_blur_keeps_the_mean_and_calm_is_identity() -> None:
    k, l_ = wavenumbers((32, 64), 3000.0, 3000.0)
    assert advection_blur(k, l_, 15.0, 5.0)[0, 0] == 1.0
    assert (advection_blur(k, l_, 0.0, 0.0) == 1.0).all()


@pytest.mark.parametrize("u, v", [(0.0, 0.0), (15.0, 0.0), (-8.0, 11.0)])
def test_cell_swath_conserves_the_cell_total(u: float, v: float) -> None:
    peak, radius, hours = 20.0, 4000.0, 0.8
    cells = Cells(np.array([100e3]), np.array([80e3]), np.array([peak]), np.array([radius]), np.array([hours]), u, v)
    amount = render_cells(cells, (80, 100), DX, DX)
    total = amount.sum() * DX * DX
    np.testing.assert_allclose(total, peak * hours * 2 * np.pi * radius**2, rtol=1e-3)
    if u == v == 0:
        assert math.isclose(float(amount.max()), peak * hours, rel_tol=1e-3)


def test_orographic_response_scales_with_moisture() -> None:
    h = gaussian_hill(96, DX, 15e3)
    state = SyntheticState(u=10.0, v=0.0)
    base = orographic_linear(h, DX, DX, state)
    double = orographic_linear(h, DX, DX, replace(state, moisture=2 * state.moisture))
    np.testing.assert_allclose(double, 2 * base, rtol=1e-4, atol=1e-6)
