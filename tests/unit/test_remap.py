"""Tests for harpnet_cli.core.remap: conservation, exactness, NaN handling, curvilinear sources."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.remap import Regridder, block_mean, upsample_nearest
from harpnet_cli.fields import SourceGrid
from harpnet_cli.grids import COARSE_RES, FINE_RES, GridSpec

R_EARTH = 6_370_000.0  # the WRF sphere, used for both source and target areas below


# -- independent geometry helpers --------------------------------------------------------------
def target_areas(spec: GridSpec, level: str = "coarse") -> np.ndarray:
    """Cell areas (m²) of a target level, from the GridSpec bounds."""
    if level == "coarse":
        lat_b, res = spec.coarse_lat_bounds(), COARSE_RES
        nx = spec.nx
    else:
        lat_b, res = spec.fine_lat_bounds(), FINE_RES
        nx = 4 * spec.nx
    dsin = np.sin(np.deg2rad(lat_b[:, 1])) - np.sin(np.deg2rad(lat_b[:, 0]))
    return R_EARTH**2 * np.outer(dsin, np.full(nx, np.deg2rad(res)))


def target_total(values: np.ndarray, spec: GridSpec, level: str = "coarse") -> float:
    """Area-weighted total of a target field (NaN counts as nothing)."""
    return float(np.nansum(target_areas(spec, level) * values))


def regular_cell_areas(lat_c: np.ndarray, lon_c: np.ndarray, dlat: float, dlon: float) -> np.ndarray:
    """Areas (m²) of uniform lat/lon cells ``(ny, nx)`` centred on ``lat_c`` x ``lon_c``."""
    s = np.clip(lat_c - dlat / 2, -90, 90)
    n = np.clip(lat_c + dlat / 2, -90, 90)
    dsin = np.sin(np.deg2rad(n)) - np.sin(np.deg2rad(s))
    return R_EARTH**2 * np.outer(dsin, np.full(lon_c.size, np.deg2rad(dlon)))


def bump(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float, width: float) -> np.ndarray:
    """Smooth positive field that is exactly zero beyond ``width`` degrees of (lat0, lon0)."""
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
    r2 = ((lat - lat0) ** 2 + dlon**2) / width**2
    return np.where(r2 < 1, (1 - r2) ** 2 * (1.5 + np.sin(3 * lat) * np.cos(2 * lon)), 0.0)


def lambert_grid(
    ny: int = 150, nx: int = 200, dx: float = 4000.0
) -> tuple[SourceGrid, np.ndarray, pyproj.Proj]:
    """A CONUS404-like Lambert conformal grid (truelats 30/50, stand_lon -97, 4 km) and cell areas (m²)."""
    proj = pyproj.Proj(f"+proj=lcc +lat_1=30 +lat_2=50 +lat_0=39 +lon_0=-97 +R={R_EARTH} +units=m")
    x = (np.arange(nx) - (nx - 1) / 2) * dx
    y = (np.arange(ny) - (ny - 1) / 2) * dx
    xx, yy = np.meshgrid(x, y)
    lon, lat = proj(xx, yy, inverse=True)
    areas = dx * dx / proj.get_factors(lon, lat).areal_scale
    return SourceGrid(lat, lon, "Lambert conformal 4 km"), areas, proj


def box_of(src: SourceGrid) -> GridSpec:
    """Target box that covers a 2-D source."""
    return GridSpec.from_bbox(src.lat.min(), src.lat.max(), src.lon.min(), src.lon.max())


# -- regular sources ---------------------------------------------------------------------------
def test_half_degree_to_coarse_conserves_total() -> None:
    lat = np.arange(-90, 90.01, 0.5)
    lon = np.arange(-180, 180, 0.5)
    spec = GridSpec.from_domain("conus")
    field = bump(lat[:, None], lon[None, :], 37.0, -96.0, 8.0)
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    out = rg(field)
    assert out.shape == spec.coarse_shape and out.dtype == np.float32
    assert not rg.exact
    assert rg.description == "conservative from regular 0.5° (720x361)"
    src_total = np.sum(regular_cell_areas(lat, lon, 0.5, 0.5) * field)
    assert target_total(out, spec) == pytest.approx(src_total, rel=1e-6)
    np.testing.assert_allclose(rg.coverage, 1.0)


def test_hundredth_degree_to_coarse_conserves_total() -> None:
    lat = 34.005 + 0.01 * np.arange(700)
    lon = -105.995 + 0.01 * np.arange(700)
    spec = GridSpec.from_bbox(35, 40, -105, -100)
    field = bump(lat[:, None], lon[None, :], 37.5, -102.5, 2.0) * np.random.default_rng(0).random((700, 700))
    out = Regridder.to_grid(SourceGrid(lat, lon), spec)(field)
    src_total = np.sum(regular_cell_areas(lat, lon, 0.01, 0.01) * field)
    assert target_total(out, spec) == pytest.approx(src_total, rel=1e-6)


def test_0_360_north_to_south_source_onto_minus180_target() -> None:
    lat_ns = np.arange(90, -90.01, -0.5)
    lon_360 = np.arange(0, 360, 0.5)
    spec = GridSpec.from_bbox(-20, 20, -30, 30)  # straddles Greenwich
    field = bump(lat_ns[:, None], lon_360[None, :], 2.0, -5.0, 12.0)
    out = Regridder.to_grid(SourceGrid(lat_ns, lon_360), spec)(field)
    src_total = np.sum(regular_cell_areas(lat_ns, lon_360, 0.5, 0.5) * field)
    assert target_total(out, spec) == pytest.approx(src_total, rel=1e-6)
    # the same field laid out south -> north in -180..180 gives the same answer
    lon_180 = np.arange(-180, 180, 0.5)
    order = np.argsort((lon_360 + 180) % 360)
    same = Regridder.to_grid(SourceGrid(lat_ns[::-1], lon_180), spec)(field[::-1][:, order])
    np.testing.assert_allclose(out, same, rtol=1e-6, atol=1e-7)


def test_regional_source_split_by_the_convention_seam() -> None:
    lon = np.arange(-3, 3, 0.5) % 360.0  # 357..359.5 then 0..2.5
    lat = np.arange(-3, 3, 0.5)
    spec = GridSpec.from_bbox(-2, 2, -2, 2)
    field = bump(lat[:, None], lon[None, :], 0.0, 0.0, 1.5)
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    assert target_total(rg(field), spec) == pytest.approx(
        np.sum(regular_cell_areas(lat, lon, 0.5, 0.5) * field), rel=1e-6
    )
    np.testing.assert_allclose(rg.coverage, 1.0)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (np.arange(90, -90.01, -0.25), np.arange(0, 360, 0.25)),  # GFS layout
        (np.arange(-90, 90.01, 0.25), np.arange(-180, 180, 0.25)),
        (np.arange(20, 55.01, 0.25), np.arange(-130, -60, 0.25)),  # regional, on the grid
    ],
)
def test_source_on_the_grid_is_exact(lat: np.ndarray, lon: np.ndarray) -> None:
    spec = GridSpec.from_domain("conus")
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    assert rg.exact
    assert rg.description.startswith("exact from regular 0.25°")
    data = np.random.default_rng(1).random((3, lat.size, lon.size)).astype(np.float32)
    data[0, 100, 100] = np.nan
    rows = [int(np.argmin(np.abs(lat - v))) for v in spec.coarse_lat()]
    cols = [int(np.argmin(np.abs((lon - v) % 360))) for v in spec.coarse_lon()]
    np.testing.assert_array_equal(rg(data), data[:, rows][:, :, cols])
    np.testing.assert_array_equal(rg.coverage, 1.0)


def test_exact_across_the_date_line() -> None:
    lat = np.arange(90, -90.01, -0.25)
    lon = np.arange(0, 360, 0.25)
    spec = GridSpec.from_bbox(-10, 10, 170, -170)
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    assert rg.exact
    data = np.broadcast_to(lon, (lat.size, lon.size))
    np.testing.assert_array_equal(rg(data)[0], np.float32(spec.coarse_lon() % 360))


def test_offset_grid_is_not_exact() -> None:
    lat = np.arange(-89.875, 90, 0.25)
    lon = np.arange(0.125, 360, 0.25)
    rg = Regridder.to_grid(SourceGrid(lat, lon), GridSpec.from_domain("conus"))
    assert not rg.exact


def test_fine_source_onto_fine_level_is_exact() -> None:
    spec = GridSpec.from_bbox(30, 32, -100, -97)
    rg = Regridder.to_grid(SourceGrid(spec.fine_lat(), spec.fine_lon()), spec, level="fine")
    assert rg.exact
    data = np.random.default_rng(2).random(spec.fine_shape)
    np.testing.assert_array_equal(rg(data), data.astype(np.float32))


def test_fine_to_coarse_equals_block_mean() -> None:
    spec = GridSpec.from_bbox(40, 45, -110, -100)
    fine = np.random.default_rng(3).gamma(0.5, 2.0, (2, *spec.fine_shape))
    rg = Regridder.to_grid(SourceGrid(spec.fine_lat(), spec.fine_lon()), spec, level="coarse")
    out = rg(fine)
    np.testing.assert_allclose(out, block_mean(fine, lat=spec.fine_lat()), rtol=1e-6)
    # the plain mean differs only by the cos(latitude) weighting inside a 0.25° cell
    np.testing.assert_allclose(out, block_mean(fine), rtol=2e-3)


def test_bilinear_regular_reproduces_linear_fields_and_wraps() -> None:
    lat = np.arange(-90, 90.01, 1.0)
    lon = np.arange(0, 360, 1.0)
    spec = GridSpec.from_bbox(-10, 10, 175, -175)  # across the date line and the source seam
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec, level="fine", method="bilinear")
    assert rg.description == "bilinear from regular 1° (360x181)"
    field = np.broadcast_to(2.0 * lat[:, None], (lat.size, lon.size))
    np.testing.assert_allclose(
        rg(field), np.broadcast_to(2.0 * spec.fine_lat()[:, None], spec.fine_shape), atol=1e-5
    )
    # a field periodic in longitude: linear between 359 and 0 (=360)
    lon_field = np.broadcast_to(np.where(lon > 180, lon - 360, lon), (lat.size, lon.size))
    out = rg(lon_field)[0]
    expected = (spec.fine_lon() + 180) % 360 - 180
    inner = np.abs(expected) < 179  # away from the 179 -> -179 jump of the test field itself
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-4)


# -- NaN handling and coverage -------------------------------------------------------------------
def test_nan_is_excluded_and_thresholded() -> None:
    spec = GridSpec.from_bbox(10, 11, 10, 11)
    # 0.25° cells offset by half a cell: every target cell is four quarter-cells
    lat = np.arange(9.625, 12, 0.25)
    lon = np.arange(9.625, 12, 0.25)
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    data = np.ones((lat.size, lon.size))
    j = int(np.searchsorted(lat, spec.coarse_lat()[2]))  # source row just north of target row 2
    i = int(np.searchsorted(lon, spec.coarse_lon()[2]))
    data[j, i] = np.nan
    data[j - 1, i] = 5.0
    out = rg(data)
    # target (2, 2) sees sources (j-1, i-1), (j-1, i), (j, i-1), (j, i): one NaN of four, equal areas
    assert out[2, 2] == pytest.approx((1.0 + 5.0 + 1.0) / 3, rel=1e-4)
    data[j - 1, i - 1] = np.nan
    assert np.isfinite(rg(data)[2, 2])  # half valid: kept at min_coverage = 0.5
    data[j, i - 1] = np.nan
    assert np.isnan(rg(data)[2, 2])  # a quarter valid: dropped
    everything_missing = np.full_like(data, np.nan)
    assert np.isnan(rg(everything_missing)).all()


def test_partial_coverage() -> None:
    spec = GridSpec.from_bbox(0, 2, 0, 2)
    lat = np.arange(-0.5, 3, 0.25)
    lon = np.arange(-0.375, 0.2, 0.25)  # source edges -0.5..0.25: column 0 full, column 1 half
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    cov = rg.coverage
    np.testing.assert_allclose(cov[:, 0], 1.0)
    np.testing.assert_allclose(cov[:, 1], 0.5, rtol=1e-9)
    np.testing.assert_allclose(cov[:, 2:], 0.0)
    out = rg(np.full((lat.size, lon.size), 2.0))
    np.testing.assert_allclose(out[:, :2], 2.0)
    assert np.isnan(out[:, 2:]).all()
    strict = Regridder.to_grid(SourceGrid(lat, lon), spec, min_coverage=0.6)
    assert np.isnan(strict(np.ones((lat.size, lon.size)))[:, 1]).all()


def test_source_outside_the_target_gives_nan() -> None:
    rg = Regridder.to_grid(
        SourceGrid(np.arange(-10, 10.0), np.arange(0, 20.0)), GridSpec.from_bbox(40, 41, 40, 41)
    )
    assert np.isnan(rg(np.ones((20, 20)))).all()
    np.testing.assert_array_equal(rg.coverage, 0.0)


# -- the date line --------------------------------------------------------------------------
@pytest.mark.parametrize("west", [0.0, -180.0])
def test_date_line_box_conserves(west: float) -> None:
    spec = GridSpec.from_bbox(-10, 10, 170, -170)
    assert spec.east > 180
    lat = np.arange(-89.75, 90, 0.5)
    lon = west + 0.25 + 0.5 * np.arange(720)
    field = bump(lat[:, None], lon[None, :], 1.0, 179.0, 6.0)
    rg = Regridder.to_grid(SourceGrid(lat, lon), spec)
    np.testing.assert_allclose(rg.coverage, 1.0)
    src_total = np.sum(regular_cell_areas(lat, lon, 0.5, 0.5) * field)
    assert target_total(rg(field), spec) == pytest.approx(src_total, rel=1e-6)


# -- curvilinear sources ----------------------------------------------------------------------
@pytest.mark.parametrize("level", ["coarse", "fine"])
def test_lambert_conserves_total(level: str) -> None:
    src, areas, proj = lambert_grid()
    spec = box_of(src)
    xx, yy = proj(src.lon, src.lat)
    r2 = (xx**2 + yy**2) / 250e3**2  # a bump well inside the 800 x 600 km grid
    field = np.where(r2 < 1, (1 - r2) ** 2 * (1 + 0.5 * np.sin(xx / 40e3)), 0.0)
    rg = Regridder.to_grid(src, spec, level=level)
    assert "sub-sampled" in rg.description
    out = rg(field)
    rel = target_total(out, spec, level) / np.sum(areas * field) - 1
    assert abs(rel) < 0.01


@pytest.mark.parametrize("level", ["coarse", "fine"])
def test_lambert_constant_stays_constant(level: str) -> None:
    src, _, _ = lambert_grid(ny=60, nx=80)
    rg = Regridder.to_grid(src, box_of(src), level=level)
    out = rg(np.full(src.shape, 3.7))
    assert np.isfinite(out).sum() > 0.3 * out.size
    np.testing.assert_allclose(out[np.isfinite(out)], 3.7, rtol=1e-6)
    assert rg.coverage.max() == 1.0 and rg.coverage.min() == 0.0


def test_lambert_coverage_is_near_one_inside() -> None:
    # sub-points sit on a regular lattice, so a target's weight is off by up to one lattice row
    # per side: with 4 km cells at k=2 onto 0.25° cells that is about ±10 %
    src, _, _ = lambert_grid(ny=60, nx=80)
    rg = Regridder.to_grid(src, box_of(src), level="coarse")
    lat, lon = np.meshgrid(box_of(src).coarse_lat(), box_of(src).coarse_lon(), indexing="ij")
    inner = (np.abs(lat - 39) < 0.6) & (np.abs(lon + 97) < 0.8)
    assert inner.sum() > 10
    np.testing.assert_allclose(rg.coverage[inner], 1.0, atol=0.15)
    assert np.mean(rg.coverage[inner]) == pytest.approx(1.0, abs=0.03)


def test_lambert_nan_holes() -> None:
    src, _, _ = lambert_grid(ny=60, nx=80)
    spec = box_of(src)
    rg = Regridder.to_grid(src, spec, level="coarse")
    data = np.full(src.shape, 1.0)
    data[:, :40] = np.nan  # the western half is missing
    out = rg(data)
    finite = np.isfinite(out)
    np.testing.assert_allclose(out[finite], 1.0, rtol=1e-6)
    assert finite.sum() < np.isfinite(rg(np.ones(src.shape))).sum() * 0.7


def test_lambert_bilinear_reproduces_linear_fields() -> None:
    src, _, proj = lambert_grid(ny=60, nx=80)
    spec = box_of(src)
    xx, yy = proj(src.lon, src.lat)
    rg = Regridder.to_grid(src, spec, level="fine", method="bilinear")
    out = rg(xx / 1e3 + 2 * yy / 1e3)  # km
    lat, lon = np.meshgrid(spec.fine_lat(), spec.fine_lon(), indexing="ij")
    tx, ty = proj(lon, lat)
    expected = tx / 1e3 + 2 * ty / 1e3
    inside = (np.abs(tx) < 150e3) & (np.abs(ty) < 110e3)
    np.testing.assert_allclose(out[inside], expected[inside], atol=0.01)  # 10 m of 4 km cells
    assert np.isnan(out[~np.isfinite(expected) | (np.abs(tx) > 200e3)]).all()


def test_polar_stereographic_across_the_date_line() -> None:
    proj = pyproj.Proj("+proj=stere +lat_0=90 +lat_ts=60 +lon_0=180 +R=6371200 +units=m")
    xx, yy = np.meshgrid(np.arange(-30, 30) * 10e3, -2500e3 + np.arange(-20, 20) * 10e3)
    lon, lat = proj(xx, yy, inverse=True)
    src = SourceGrid(lat, lon, "polar stereographic 10 km")
    spec = GridSpec.from_bbox(65, 67, 178, -178)
    rg = Regridder.to_grid(src, spec, level="fine")
    out = rg(np.full(src.shape, 2.0))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 2.0, rtol=1e-6)


# -- hypothesis ---------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(
    dlat=st.floats(0.05, 1.3),
    dlon=st.floats(0.05, 1.3),
    lat_off=st.floats(0.5, 3.0),
    lon_off=st.floats(0.5, 3.0),
    j0=st.integers(-200, 200),
    i0=st.integers(-720, 719),
    ny=st.integers(1, 12),
    nx=st.integers(1, 12),
    convention=st.sampled_from([-180.0, 0.0]),
    flip=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_regular_grids_conserve(
    dlat: float,
    dlon: float,
    lat_off: float,
    lon_off: float,
    j0: int,
    i0: int,
    ny: int,
    nx: int,
    convention: float,
    flip: bool,
    seed: int,
) -> None:
    spec = GridSpec(lat0=j0 * 0.25, lon0=float((i0 * 0.25 + 180) % 360 - 180), ny=ny, nx=nx)
    # a source covering the box, in continuous longitudes first
    lat = (
        spec.south
        - lat_off * dlat
        + dlat * np.arange(int((spec.north - spec.south) / dlat + 2 * lat_off + 1))
    )
    lon = spec.west - lon_off * dlon + dlon * np.arange(int((spec.east - spec.west) / dlon + 2 * lon_off + 1))
    values = np.random.default_rng(seed).random((lat.size, lon.size))
    # exact integral over the box, from plain interval clipping
    dsin = np.clip(
        np.sin(np.deg2rad(np.minimum(lat + dlat / 2, spec.north)))
        - np.sin(np.deg2rad(np.maximum(lat - dlat / 2, spec.south))),
        0,
        None,
    )
    dlam = np.deg2rad(
        np.clip(np.minimum(lon + dlon / 2, spec.east) - np.maximum(lon - dlon / 2, spec.west), 0, None)
    )
    expected = R_EARTH**2 * np.sum(np.outer(dsin, dlam) * values)
    # then written in a file convention, maybe north -> south
    lon_file = (lon - convention) % 360 + convention
    lat_file, data = (lat[::-1], values[::-1]) if flip else (lat, values)
    rg = Regridder.to_grid(SourceGrid(lat_file, lon_file), spec)
    out = rg(data)
    np.testing.assert_allclose(rg.coverage, 1.0, atol=1e-9)
    assert target_total(out, spec) == pytest.approx(expected, rel=1e-6)
    assert np.all(out >= values.min() - 1e-6) and np.all(out <= values.max() + 1e-6)
    np.testing.assert_allclose(rg(np.full_like(data, 0.7)), 0.7, rtol=1e-6)


# -- API edges and helpers ---------------------------------------------------------------------------
def test_batched_apply_matches_single() -> None:
    lat, lon = np.arange(-90, 90.01, 1.0), np.arange(0, 360, 1.0)
    rg = Regridder.to_grid(SourceGrid(lat, lon), GridSpec.from_bbox(10, 20, 10, 30), level="fine")
    data = np.random.default_rng(4).random((2, 3, lat.size, lon.size))
    data[1, 2, 100:105, 10:20] = np.nan
    out = rg(data)
    assert out.shape == (2, 3, *rg.shape) and rg.shape == (164, 324)
    np.testing.assert_allclose(out[1, 2], rg(data[1, 2]), rtol=1e-6)


def test_bad_inputs_raise() -> None:
    src = SourceGrid(np.arange(-90, 90.01, 1.0), np.arange(0, 360, 1.0))
    spec = GridSpec.from_bbox(10, 20, 10, 30)
    with pytest.raises(ValueError, match="method"):
        Regridder.to_grid(src, spec, method="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        Regridder.to_grid(src, spec, level="medium")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected data"):
        Regridder.to_grid(src, spec)(np.ones((10, 10)))
    with pytest.raises(ValueError, match="repeated"):
        Regridder.to_grid(SourceGrid(np.array([1.0, 1.0, 2.0]), np.arange(3.0)), spec)


def test_block_mean_and_upsample() -> None:
    coarse = np.random.default_rng(5).random((2, 3, 5))
    fine = upsample_nearest(coarse)
    assert fine.shape == (2, 12, 20)
    np.testing.assert_allclose(block_mean(fine), coarse)
    np.testing.assert_allclose(block_mean(fine, lat=np.linspace(10, 13, 12)), coarse)
    with pytest.raises(ValueError, match="multiple"):
        block_mean(np.ones((5, 8)))


def test_regional_source_on_the_grid_stays_exact_with_a_buffer_outside_it():
    """A regional 0.25° subset onto a box one cell larger: exact inside, NaN in the ring outside."""
    from harpnet_cli.fields import SourceGrid
    from harpnet_cli.grids import GridSpec

    lat = np.arange(40.0, 29.99, -0.25)  # north -> south, like GFS
    lon = np.arange(260.0, 270.01, 0.25)  # 0..360
    data = np.random.default_rng(0).random((lat.size, lon.size)).astype(np.float32)
    spec = GridSpec.from_bbox(30, 40, -100, -90).padded(1)
    r = Regridder.to_grid(SourceGrid(lat, lon), spec)
    assert r.exact
    out = r(data)
    np.testing.assert_array_equal(out[1:-1, 1:-1], data[::-1])
    assert np.isnan(out[0]).all() and np.isnan(out[:, -1]).all()
    assert r.coverage[1:-1, 1:-1].min() == 1.0 and r.coverage[0].max() == 0.0
