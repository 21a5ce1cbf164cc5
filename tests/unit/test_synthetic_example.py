"""The moving-weather renderer (SyntheticWorld.render_steps) and the example input's fields."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harpnet_cli.core.synthetic import (
    ACCUMULATION_HOURS,
    EXAMPLE_STATE,
    SyntheticState,
    SyntheticWorld,
    example_amounts,
)
from harpnet_cli.grids import FINE_RES


def small_world(ny: int = 96, nx: int = 128) -> tuple[SyntheticWorld, np.ndarray, np.ndarray, np.ndarray]:
    """A 0.0625° world over a ridge at 40 N."""
    lat = 40.0 + FINE_RES * (np.arange(ny) + 0.5)
    lon = -110.0 + FINE_RES * (np.arange(nx) + 0.5)
    ridge = 2000.0 * np.exp(-(((np.arange(nx) - nx / 2) / 6.0) ** 2))
    terrain = np.broadcast_to(ridge, (ny, nx)).astype(np.float32)
    return SyntheticWorld(terrain, lat, lon, hr_factor=1), terrain, lat, lon


def test_large_scale_rain_moves_exactly_with_the_wind() -> None:
    world, *_ = small_world()
    cells = 5  # the wind carries the field 5 cells east and 2 north in 3 hours
    seconds = ACCUMULATION_HOURS * 3600.0
    state = SyntheticState(u=cells * world.dx_m / seconds, v=2 * world.dy_m / seconds, moisture=0.0,
                           large_scale_rate=2.0, wet_fraction=0.4)
    steps = world.render_steps(state, np.random.default_rng(7), 3)  # rain over about half
    assert steps.shape == (3, *world.shape) and steps.dtype == np.float32
    assert (steps >= 0).all() and 0.2 < (steps[0] > 0).mean() < 0.8
    for k in (1, 2):
        moved = steps[k][2 * k:, cells * k:]
        np.testing.assert_allclose(moved, steps[0][: moved.shape[0], : moved.shape[1]], atol=1e-3 * steps.max())
    assert not np.allclose(steps[1], steps[0])


def test_render_steps_edge_cases() -> None:
    world, *_ = small_world(32, 32)
    dry = SyntheticState(u=10.0, v=0.0, moisture=0.0)
    assert not world.render_steps(dry, np.random.default_rng(0), 2).any()
    oro = SyntheticState(u=10.0, v=0.0)  # pure SB04: the same orographic rain every step, no cells
    steps = world.render_steps(oro, np.random.default_rng(0), 2)
    np.testing.assert_array_equal(steps[0], steps[1])
    assert steps.max() > 0
    with pytest.raises(ValueError, match="steps"):
        world.render_steps(oro, np.random.default_rng(0), 0)


def test_example_amounts_are_deterministic_wet_and_orographic() -> None:
    _, terrain, lat, lon = small_world()
    a = example_amounts(terrain, lat, lon, 2)
    b = example_amounts(terrain, lat, lon, 2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, lat.size, lon.size) and (a >= 0).all() and np.isfinite(a).all()
    other = example_amounts(terrain, lat, lon, 2, seed=1)
    assert not np.array_equal(a, other)
    # the windward (west) slope of the ridge gets more than the lee (east) side, with only orographic rain
    oro = example_amounts(terrain, lat, lon, 1, state=replace(EXAMPLE_STATE, large_scale_rate=0.0, convective=0.0))
    half = lon.size // 2
    assert oro[0][:, half - 8 : half].mean() > 2 * oro[0][:, half : half + 8].mean()
