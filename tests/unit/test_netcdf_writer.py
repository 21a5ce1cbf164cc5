"""CF-1.8 NetCDF output and the atomic write."""

import shutil
import subprocess
from datetime import datetime, timedelta

import netCDF4
import numpy as np
import pytest
import xarray as xr

from harpnet_cli.errors import UsageError
from harpnet_cli.fields import EnsembleProducts, FineForecast
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.atomic import atomic_path
from harpnet_cli.io.netcdf_writer import write_ensemble_netcdf, write_netcdf


def forecast(members=(None,), steps=2, hours=3) -> FineForecast:
    g = GridSpec.from_bbox(30, 31, -100, -99)
    ref = datetime(2020, 3, 25, 18)
    starts = [ref + timedelta(hours=hours * k) for k in range(steps)]
    data = np.random.default_rng(0).gamma(0.5, 2, size=(len(members), steps, *g.fine_shape)).astype(np.float32)
    data[..., 0, 0] = np.nan
    return FineForecast(
        data=data, lat=g.fine_lat(), lon=g.fine_lon(), lat_bounds=g.fine_lat_bounds(),
        lon_bounds=g.fine_lon_bounds(), starts=starts, ends=[s + timedelta(hours=hours) for s in starts],
        members=list(members), reference_time=ref, attrs={"input_files": "a.grib2", "harpnet_model": "compact"},
    )


def test_cf_file_reads_back_with_xarray_and_netcdf4(tmp_path):
    fc = forecast()
    out = write_netcdf(tmp_path / "o.nc", fc)
    ds = xr.open_dataset(out, engine="netcdf4")
    v = ds["precipitation_amount"]
    assert v.dims == ("time", "latitude", "longitude")
    assert v.attrs["units"] == "kg m-2"
    assert v.attrs["cell_methods"].startswith("time: sum (interval: 3 hours)")
    np.testing.assert_allclose(v.values, fc.data[0], rtol=0, atol=0, equal_nan=True)
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert ds.attrs["input_files"] == "a.grib2"
    assert ds["time"].values[0] == np.datetime64("2020-03-25T21:00")
    assert ds["forecast_reference_time"].values == np.datetime64("2020-03-25T18:00")
    assert (ds["time_bnds"].values[:, 1] - ds["time_bnds"].values[:, 0] == np.timedelta64(3, "h")).all()
    assert ds["latitude"].attrs["units"] == "degrees_north"
    nc = netCDF4.Dataset(out)
    p = nc["precipitation_amount"]
    assert p.filters()["zlib"] and p.chunking() != "contiguous"
    assert nc["time"].bounds == "time_bnds"
    nc.close()


def test_members_become_a_realization_axis_after_time(tmp_path):
    fc = forecast(members=(0, 1, 2))
    ds = xr.open_dataset(write_netcdf(tmp_path / "o.nc", fc), engine="netcdf4")
    assert ds["precipitation_amount"].dims == ("time", "realization", "latitude", "longitude")  # cdo: time first
    assert list(ds["realization"].values) == [0, 1, 2]
    assert ds["realization"].attrs["units"] == "1" and ds["realization"].attrs["standard_name"] == "realization"
    np.testing.assert_array_equal(ds["precipitation_amount"].values, np.moveaxis(fc.data, 0, 1))


def test_period_other_than_three_hours_is_stated(tmp_path):
    ds = xr.open_dataset(write_netcdf(tmp_path / "o.nc", forecast(hours=6, steps=1)), engine="netcdf4")
    assert "interval: 6 hours" in ds["precipitation_amount"].attrs["cell_methods"]


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.nc"
    out.write_bytes(b"old")
    with pytest.raises(UsageError, match="--overwrite"):
        write_netcdf(out, forecast())
    assert out.read_bytes() == b"old"
    write_netcdf(out, forecast(), overwrite=True)
    assert xr.open_dataset(out, engine="netcdf4")["precipitation_amount"].shape[0] == 2


def test_interrupted_write_leaves_nothing(tmp_path):
    out = tmp_path / "o.nc"
    with pytest.raises(KeyboardInterrupt), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_output_folder_must_exist(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        write_netcdf(tmp_path / "nope" / "o.nc", forecast())


@pytest.mark.skipif(shutil.which("ncdump") is None, reason="ncdump not installed")
def test_ncdump_reads_the_header(tmp_path):
    out = write_netcdf(tmp_path / "o.nc", forecast())
    text = subprocess.run(["ncdump", "-h", str(out)], capture_output=True, text=True, check=True).stdout
    assert 'precipitation_amount:standard_name = "precipitation_amount"' in text


def test_ensemble_products_are_written_as_given(tmp_path):
    """The writer computes nothing: the mean, spread and probabilities in the file are the ones passed."""
    fc = forecast(members=(0, 1, 2))
    shape = fc.data.shape[1:]
    mean, spread = np.full(shape, 7.0, np.float32), np.full(shape, 0.5, np.float32)
    probabilities = np.full((1, *shape), 0.25, np.float32)
    products = EnsembleProducts(size=3, mean=mean, spread=spread, thresholds=(1.0,), probabilities=probabilities)
    ds = xr.open_dataset(write_ensemble_netcdf(tmp_path / "e.nc", fc, products), engine="netcdf4")
    np.testing.assert_array_equal(ds["precipitation_amount"].values, mean)
    np.testing.assert_array_equal(ds["precipitation_amount_spread"].values, spread)
    np.testing.assert_array_equal(ds["probability_of_precipitation_amount_above_threshold"].values,
                                  np.moveaxis(probabilities, 0, 1))
    assert int(ds.attrs["harpnet_ensemble_size"]) == 3 and "realization" not in ds.dims
