"""The Python API (issue 19): ``harpnet.downscale`` gives the numbers the CLI writes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import harpnet
from harpnet_cli.cli import app
from harpnet_cli.errors import HarpnetError, InputDataError, UsageError
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()
BBOX = "31,39,-99,-91"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", seed=1)


def cli_output(tmp_path, grib, checkpoint, *extra) -> xr.DataArray:
    out = tmp_path / "cli.nc"
    res = runner.invoke(app, ["downscale", str(grib), "-o", str(out), "-m", str(checkpoint), *extra])
    assert res.exit_code == 0, res.output
    return xr.open_dataset(out)["precipitation_amount"]


def cfgrib(path) -> xr.DataArray:
    return xr.open_dataarray(path, engine="cfgrib", backend_kwargs={"indexpath": ""})


def same(api: xr.DataArray, cli: xr.DataArray) -> None:
    """Same numbers, coordinates and variable attributes."""
    assert api.dims == cli.dims
    np.testing.assert_array_equal(api.values, cli.values)
    for name in cli.coords:
        np.testing.assert_array_equal(api[name].values, cli[name].values)
    assert {k: v for k, v in api.attrs.items() if k in cli.attrs} == cli.attrs


def test_a_cfgrib_dataarray_gives_the_cli_numbers(tmp_path, checkpoint):
    grib = write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", synthetic_hourly(6, seed=3), [(0, 6)])
    api = harpnet.downscale(cfgrib(grib), model=checkpoint, bbox=BBOX)
    same(api, cli_output(tmp_path, grib, checkpoint, "--bbox", BBOX))
    assert api.attrs["input_files"] == grib.name and "harpnet_checkpoint_sha256" in api.attrs


def test_gefs_members_along_number_become_realizations(tmp_path, checkpoint):
    hourly = synthetic_hourly(6, seed=4, members=3)
    grib = write_gfs_grib(tmp_path / "gefs.t18z.pgrb2.0p25.f006", hourly, [(0, 6)], perturbation_numbers=[1, 2, 3])
    da = cfgrib(grib)
    assert "number" in da.dims
    api = harpnet.downscale(da, model=checkpoint, bbox=BBOX)
    same(api, cli_output(tmp_path, grib, checkpoint, "--bbox", BBOX))
    assert list(api.realization.values) == [1, 2, 3]


def test_a_numpy_array_with_its_grid(tmp_path, checkpoint):
    grib = write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", synthetic_hourly(6, seed=3), [(0, 6)])
    da = cfgrib(grib)
    api = harpnet.downscale(da.values, lat=da.latitude.values, lon=da.longitude.values,
                            time=datetime(2020, 3, 26, 0), reference_time=datetime(2020, 3, 25, 18),
                            model=checkpoint, bbox=BBOX)
    np.testing.assert_array_equal(api.values, harpnet.downscale(da, model=checkpoint, bbox=BBOX).values)
    three_hours = harpnet.downscale(da.values, lat=da.latitude.values, lon=da.longitude.values,
                                    time=datetime(2020, 3, 26, 0), accumulation="6h", model=checkpoint, bbox=BBOX)
    np.testing.assert_array_equal(three_hours.values, api.values)
    assert "forecast_reference_time" not in three_hours.coords


def test_what_the_api_refuses(tmp_path, checkpoint):
    values = np.ones((8, 8), np.float32)
    lat, lon = np.arange(30, 32, 0.25), np.arange(-100, -98, 0.25)
    with pytest.raises(UsageError, match="needs a stochastic model"):
        harpnet.downscale(values, lat=lat, lon=lon, time=datetime(2020, 1, 1), accumulation="3h", samples=10,
                          model=checkpoint)
    with pytest.raises(InputDataError, match="no accumulation window"):
        harpnet.downscale(values, lat=lat, lon=lon, time=datetime(2020, 1, 1), model=checkpoint)
    with pytest.raises(TypeError, match="lat=, lon= and time="):
        harpnet.downscale(values)
    with pytest.raises(InputDataError, match="units"):
        harpnet.downscale(xr.DataArray(values, dims=("latitude", "longitude"),
                                       coords={"latitude": lat, "longitude": lon}), accumulation="3h")


def test_importing_harpnet_is_light():
    code = "import sys, harpnet; print(sorted(m for m in ('torch', 'xarray', 'eccodes') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.shared
def test_the_real_gfs_file_through_cfgrib_and_the_cli(shared_data, tmp_path):
    """The bundled model on the real GFS f006 over CONUS: the API and the CLI agree exactly."""
    grib = shared_data / "real" / "gfs.20200325.t18z.pgrb2.0p25.f006"
    tp = xr.open_dataarray(grib, engine="cfgrib", backend_kwargs={"indexpath": ""},
                           filter_by_keys={"stepType": "accum"})
    api = harpnet.downscale(tp, domain="conus")
    out = tmp_path / "cli.nc"
    res = runner.invoke(app, ["downscale", str(grib), "-o", str(out), "--domain", "conus"])
    assert res.exit_code == 0, res.output
    same(api, xr.open_dataset(out)["precipitation_amount"])


def test_the_backend_is_chosen_as_on_the_command_line(tmp_path, checkpoint):
    grib = write_gfs_grib(tmp_path / "gfs.t18z.pgrb2.0p25.f006", synthetic_hourly(6, seed=8), [(0, 6)])
    da = cfgrib(grib)
    default = harpnet.downscale(da, model=checkpoint, bbox=BBOX)
    on_torch = harpnet.downscale(da, model=checkpoint, bbox=BBOX, backend="torch")
    assert default.attrs["harpnet_runtime"].startswith("onnxruntime")
    assert on_torch.attrs["harpnet_runtime"].startswith("torch")
    scale = float(on_torch.max())
    np.testing.assert_allclose(default.values, on_torch.values, rtol=1e-4, atol=1e-4 * scale)
    with pytest.raises(HarpnetError, match="backend"):
        harpnet.downscale(da, model=checkpoint, bbox=BBOX, backend="tpu")
