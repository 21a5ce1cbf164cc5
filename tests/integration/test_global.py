"""Any box and the globe (issue 19/22): a box over all longitudes is periodic, with no seam at the
date line, and the rows beside the poles are downscaled with the pole rows as their context."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", seed=1)


@pytest.fixture(scope="module")
def band(tmp_path_factory):
    """A GFS-like f006 over 30-36 N, every longitude (0..359.75, as GFS stores them)."""
    hourly = synthetic_hourly(6, 25, 1440, seed=5)
    return write_gfs_grib(tmp_path_factory.mktemp("band") / "gfs.t18z.pgrb2.0p25.f006", hourly, [(0, 6)],
                          box=(30.0, 36.0, 0.0, 359.75))


def run(*args):
    res = runner.invoke(app, ["downscale", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def both(tmp_path_factory, band, checkpoint):
    """The band downscaled from 180° W and from 0° E."""
    out = tmp_path_factory.mktemp("out")
    res = run(band, "-m", checkpoint, "--bbox", "31,35,-180,180", "-o", out / "west.nc")
    run(band, "-m", checkpoint, "--bbox", "31,35,0,360", "-o", out / "zero.nc")
    return (xr.open_dataset(out / "west.nc")["precipitation_amount"][0],
            xr.open_dataset(out / "zero.nc")["precipitation_amount"][0], res.output)


def test_a_box_over_all_longitudes_downscales_every_longitude(both):
    west, zero, output = both
    assert west.shape == zero.shape == (68, 5760)
    assert float(west.longitude[0]) == pytest.approx(-180.125 + 0.03125)
    assert float(zero.longitude[0]) == pytest.approx(-0.125 + 0.03125)
    assert np.isfinite(west.values).all() and (west.values >= 0).all()
    assert "all longitudes" in output and "mass ratio 1.0000" in output


def test_no_seam_at_the_date_line(both):
    """From 0° E the date line is inside the domain; from 180° W it is the wrap. Both runs must agree
    there as well as they agree anywhere (they differ only where their tiles are cut differently)."""
    west, zero, _ = both
    shifted = np.roll(zero.values, -2880, axis=1)  # the 0° E run, starting at 180° W
    diff = np.abs(west.values - shifted)
    near = np.concatenate([diff[:, :16], diff[:, -16:]], axis=1)
    assert near.mean() <= 3 * diff.mean() + 1e-3
    # the jump across the date line is like the jumps across other coarse-cell boundaries
    field = west.values
    wrap = np.abs(field[:, 0] - field[:, -1]).mean()
    others = np.abs(field[:, 4::4] - field[:, 3:-1:4]).mean()
    assert wrap <= 2 * others


def test_the_rows_beside_the_pole(tmp_path, checkpoint):
    hourly = synthetic_hourly(6, 25, 1440, seed=6)
    grib = write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", hourly, [(0, 6)], box=(84.0, 90.0, 0.0, 359.75))
    run(grib, "-m", checkpoint, "--bbox", "85,90,-180,180", "-o", tmp_path / "pole.nc")
    p = xr.open_dataset(tmp_path / "pole.nc")["precipitation_amount"][0]
    assert float(p.latitude.max()) == pytest.approx(89.875 - 0.03125)  # stops at the cells beside the pole
    assert np.isfinite(p.values).all()
    block = p.values.reshape(p.shape[0] // 4, 4, p.shape[1] // 4, 4).mean(axis=(1, 3))
    top = hourly.sum(0)[1, :]  # the row centred on 89.75 N (row 0 is the pole, north -> south)
    np.testing.assert_allclose(block[-1], np.roll(top, 720), rtol=1e-4, atol=1e-3)


def test_the_tiles_of_a_periodic_domain_wrap(tmp_path, band, checkpoint):
    import contextlib

    from harpnet_cli.config import DownscaleConfig
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.workflows import downscale as workflow
    from harpnet_cli.workflows.reporting import NullReporter

    cfg = DownscaleConfig(inputs=[band], output=tmp_path / "o.nc", model=checkpoint, bbox=(31, 35, -180, 180))
    with contextlib.ExitStack() as stack:
        series, _ = workflow._read_series(cfg, stack)
        engine = workflow.StepDownscaler.prepare(cfg, ModelFile(checkpoint), series, NullReporter())
    p = engine.patcher
    assert engine.spec.periodic and p.periodic
    assert any(t.x0 + p.tile > p.fine_shape[1] for t in p.tiles)  # a tile crosses the date line
    coarse = engine.coarse(series[0].amount(0))
    np.testing.assert_array_equal(coarse[:, 0], coarse[:, -2])  # the west buffer is the east edge
    np.testing.assert_array_equal(coarse[:, -1], coarse[:, 1])
