"""Nested coarse/fine grids: shapes, nesting, longitude conventions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.grids import COARSE_RES, FINE_RES, GridSpec, parse_bbox, wrap_lon


def test_conus_is_416_by_960_fine_cells():
    g = GridSpec.from_domain("conus")
    assert g.fine_shape == (416, 960)
    assert g.coarse_shape == (104, 240)
    assert 23.5 < g.south < 24.5 and 49.5 < g.north < 50.5
    assert -126.5 < g.west < -125.5 and -66.5 < g.east < -65.5


def test_coarse_centres_are_on_the_gfs_grid():
    g = GridSpec.from_domain("conus")
    np.testing.assert_allclose(g.coarse_lat() / COARSE_RES, np.round(g.coarse_lat() / COARSE_RES), atol=1e-9)
    np.testing.assert_allclose(g.coarse_lon() / COARSE_RES, np.round(g.coarse_lon() / COARSE_RES), atol=1e-9)


def test_fine_cells_nest_four_by_four_in_coarse_cells():
    g = GridSpec.from_bbox(30, 32, -100, -97)
    cb, fb = g.coarse_lat_bounds(), g.fine_lat_bounds()
    np.testing.assert_allclose(fb[::4, 0], cb[:, 0])
    np.testing.assert_allclose(fb[3::4, 1], cb[:, 1])
    np.testing.assert_allclose(g.fine_lat().reshape(-1, 4).mean(axis=1), g.coarse_lat())
    np.testing.assert_allclose(g.fine_lon().reshape(-1, 4).mean(axis=1), g.coarse_lon())
    assert np.allclose(np.diff(g.fine_lon()), FINE_RES)


def test_both_longitude_conventions_give_the_same_grid():
    assert GridSpec.from_bbox(30, 40, -100, -90) == GridSpec.from_bbox(30, 40, 260, 270)


def test_box_across_the_date_line():
    g = GridSpec.from_bbox(-20, -10, 170, -170)
    assert g.nx == 81
    lon = g.coarse_lon()
    assert lon[0] == 170.0 and lon[-1] == 190.0
    assert np.all(np.diff(lon) > 0)


def test_padded_grows_by_one_cell_and_stops_at_the_pole():
    g = GridSpec.from_domain("conus").padded(1)
    assert g.coarse_shape == (106, 242)
    polar = GridSpec.from_bbox(89, 90, 0, 10).padded(1)
    assert polar.coarse_lat()[-1] == 90.0


@settings(max_examples=50, deadline=None)
@given(s=st.floats(-89, 80), h=st.floats(0.01, 9), w=st.floats(-540, 540), width=st.floats(0.01, 90))
def test_from_bbox_covers_the_box(s, h, w, width):
    g = GridSpec.from_bbox(s, s + h, w, w + width)
    assert g.south <= s + 1e-9 and g.north >= s + h - 1e-9
    west = float(wrap_lon(w))
    assert g.west <= west + 1e-9 or g.west <= west - 360 + 1e-9
    assert g.east - g.west >= width - 1e-9
    assert g.east - g.west <= width + 2 * COARSE_RES + 1e-9


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "40,30,0,10", "-95,0,0,10"])
def test_parse_bbox_rejects(text):
    with pytest.raises(ValueError):
        parse_bbox(text)


def test_parse_bbox_accepts_spaces():
    assert parse_bbox(" 24, 50, -126, -66 ") == (24.0, 50.0, -126.0, -66.0)


def test_unknown_domain_lists_known_ones():
    with pytest.raises(ValueError, match="conus"):
        GridSpec.from_domain("atlantis")


@pytest.mark.parametrize("box", [(30, 40, -180, 180), (30, 40, 0, 360), (30, 40, -179.8, 179.8)])
def test_a_box_over_all_longitudes_is_periodic(box):
    g = GridSpec.from_bbox(*box)
    assert g.periodic and g.nx == 1440 and g.fine_shape[1] == 5760
    padded = g.padded(1)
    assert padded.nx == 1440 and padded.lon0 == g.lon0 and padded.ny == g.ny + 2  # latitude only
    assert "all longitudes" in g.describe()


def test_global_domain_stops_at_the_cells_beside_the_poles():
    g = GridSpec.from_domain("global")
    assert g.periodic and g.coarse_shape == (719, 1440) and g.fine_shape == (2876, 5760)
    assert g.coarse_lat()[0] == -89.75 and g.coarse_lat()[-1] == 89.75
    assert g.south == -89.875 and g.north == 89.875
    padded = g.padded(1)  # the rows centred on the poles are the buffer
    assert padded.lat0 == -90.0 and padded.ny == 721


def test_regional_boxes_are_not_periodic():
    g = GridSpec.from_bbox(30, 40, 100, -100)  # across the date line, 260° wide
    assert not g.periodic and g.padded(1).nx == g.nx + 2
    with pytest.raises(ValueError, match="wrap onto itself"):
        GridSpec(lat0=0.0, lon0=0.0, ny=4, nx=1439).padded(1)


@pytest.mark.parametrize(("name", "shape", "centre"), [
    ("west", (73, 93), (40.0, -113.5)),
    ("alps", (25, 53), (46.0, 10.5)),
    ("alaska", (85, 165), (61.5, -149.5)),
    ("japan", (89, 97), (35.0, 134.0)),
    ("europe", (153, 281), (53.0, 10.0)),
])
def test_named_domains_are_the_regions_they_name(name, shape, centre):
    from harpnet_cli.grids import DOMAINS

    spec = GridSpec.from_domain(name)
    assert spec.coarse_shape == shape and not spec.periodic
    assert (spec.south + spec.north) / 2 == pytest.approx(centre[0])
    assert (spec.west + spec.east) / 2 == pytest.approx(centre[1])
    assert GridSpec.from_bbox(*DOMAINS[name]) == spec  # edges on the 0.25° cell edges: nothing snapped


def test_covered_fraction_of_training_regions():
    from harpnet_cli.grids import covered_fraction

    conus = GridSpec.from_domain("conus")
    germany = GridSpec.from_bbox(47.25, 55.0, 5.75, 15.0)
    assert covered_fraction(GridSpec.from_domain("west"), [conus]) == 1.0
    assert covered_fraction(GridSpec.from_domain("japan"), [conus, germany]) == 0.0
    alps = GridSpec.from_domain("alps")
    inside = (np.add.outer(alps.coarse_lat(), 0 * alps.coarse_lon()) >= 47.125)
    inside &= np.add.outer(0 * alps.coarse_lat(), alps.coarse_lon()) >= 5.625
    inside &= np.add.outer(0 * alps.coarse_lat(), alps.coarse_lon()) <= 15.125
    assert covered_fraction(alps, [conus, germany]) == pytest.approx(inside.mean())
    across = GridSpec.from_bbox(50.0, 60.0, 170.0, -170.0)  # a region across the date line
    assert covered_fraction(GridSpec.from_bbox(52.0, 54.0, 175.0, 179.0), [across]) == 1.0
    assert covered_fraction(GridSpec.from_bbox(52.0, 54.0, -175.0, -172.0), [across]) == 1.0
    assert covered_fraction(GridSpec.from_bbox(52.0, 54.0, -160.0, -150.0), [across]) == 0.0
    assert covered_fraction(conus, [GridSpec.from_domain("global")]) == 1.0
    assert GridSpec.from_dict(conus.to_dict() | {"other": 1}) == conus
