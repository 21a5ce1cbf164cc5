"""``harpnet downscale`` on every real file in ../shared/data/real (skipped when absent)."""

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.terrain import load_terrain
from harpnet_cli.testing.models import make_random_checkpoint

pytestmark = [pytest.mark.shared, pytest.mark.slow]
runner = CliRunner()

#: file -> expected exit code (0: a valid CF file; 3: a one-line refusal)
REAL = {
    "gfs.20200325.t18z.pgrb2.0p25.f006": 0,
    "gfs.20200330.t18z.pgrb2.0p25.f012": 0,
    "tp_sfc.grib": 0,
    "wrf_d01_allvars_cropped.nc": 0,
    "ci_test_file.nc": 3,  # moving nest: refused
    "NAM.nc": 0,
    "MultiSensor_QPE_01H_Pass2_00.00_20210706-000000.grib2": 0,
    "ST4.2002030112.06h.grb": 0,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "compact.pt", seed=2)


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_real_file_downscales_or_fails_in_one_line(shared_data, checkpoint, tmp_path, name):
    out = tmp_path / "out.nc"
    res = runner.invoke(app, ["downscale", str(shared_data / "real" / name), "-o", str(out), "-m", str(checkpoint)])
    assert res.exit_code == REAL[name], res.output
    assert "Traceback" not in res.output
    if REAL[name]:
        assert not out.exists() and list(tmp_path.iterdir()) == []
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and name in errors[0]
        return
    ds = xr.open_dataset(out, engine="netcdf4")
    p = ds["precipitation_amount"]
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert p.attrs["units"] == "kg m-2" and p.attrs["standard_name"] == "precipitation_amount"
    assert float(p.min()) >= 0.0
    assert np.isfinite(p.values).any()
    assert ds.attrs["input_files"] == name


def test_gfs_f006_over_conus(shared_data, checkpoint, tmp_path):
    """The acceptance case: 416x960 cells, block means equal the input, no NaN over land."""
    from harpnet_cli.core.accumulation import to_interval_series
    from harpnet_cli.io.readers import read_accumulations

    src = shared_data / "real" / "gfs.20200325.t18z.pgrb2.0p25.f006"
    out = tmp_path / "conus.nc"
    res = runner.invoke(app, ["downscale", str(src), "-o", str(out), "-m", str(checkpoint), "--domain", "conus"])
    assert res.exit_code == 0, res.output
    p = xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].values[0]
    assert p.shape == (416, 960)
    spec = GridSpec.from_domain("conus")
    land = load_terrain(spec) > 0
    assert np.isfinite(p[land]).all() and (p >= 0).all()
    # the coarse input over conus, south -> north
    series = to_interval_series(read_accumulations([src]))[0]
    lat, lon = series.grid.lat, series.grid.lon
    rows = [int(np.argmin(np.abs(lat - v))) for v in spec.coarse_lat()]
    cols = [int(np.argmin(np.abs(lon - v % 360))) for v in spec.coarse_lon()]
    coarse = series.data[0][np.ix_(rows, cols)]
    block = p.reshape(104, 4, 240, 4).mean(axis=(1, 3))
    wet = coarse > 0.1
    ratio = block[wet] / coarse[wet]
    assert np.median(ratio) == pytest.approx(1.0, abs=1e-4)
    assert np.abs(ratio - 1).max() < 1e-5
    np.testing.assert_array_equal(block[coarse == 0], 0.0)  # dry stays dry
    assert "mass ratio 1.000" in res.output
