"""Every output HARPNET writes, read by the tools forecasters use on it: grib_ls, cdo, cfgrib, xarray,
cf_xarray, the IOOS compliance checker (CF-1.8) and ``nccopy -k classic``.

Each product type (deterministic, members, mean, spread, probabilities, percentiles) is written by
the registered writers with the products :func:`ensemble_products` computes, exactly as
``harpnet downscale`` writes them; a test is skipped when its tool is not installed.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from harpnet_cli.core.ensemble_stats import ensemble_products
from harpnet_cli.fields import FineForecast
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.writers import get_writer

GFS = "centre 7, subCentre 0, generatingProcessIdentifier 96"
THRESHOLDS = (1.0, 5.0)
PERCENTILES = (10.0, 50.0, 90.0)
PRODUCTS = ["mean", "spread", "prob_gt_1mm", "prob_gt_5mm", "p10", "p50", "p90"]


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


def needs_module(name: str):
    return pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} is not installed")


def forecast(members=(None,), origin: str | None = GFS) -> FineForecast:
    g = GridSpec.from_bbox(30, 31, -100, -99)
    ref = datetime(2020, 3, 25, 18)
    starts = [ref + timedelta(hours=3 * k) for k in range(2)]
    rng = np.random.default_rng(1)
    data = rng.gamma(0.6, 3.0, size=(len(members), 2, *g.fine_shape)).astype(np.float32)
    data[..., :2, :3] = np.nan
    attrs = {"title": "Precipitation downscaled to 0.0625 degrees by HARPNET", "institution": "HARPNET",
             "history": "2026-12-06T00:00:00Z harpnet downscale", "source": "HARPNET test",
             "comment": "Smith–Barstad synthetic world, 0.25° → 0.0625°", "harpnet_checkpoint_sha256": "ab" * 32}
    if origin is not None:
        attrs["input_grib_origin"] = origin
    return FineForecast(data=data, lat=g.fine_lat(), lon=g.fine_lon(), lat_bounds=g.fine_lat_bounds(),
                        lon_bounds=g.fine_lon_bounds(), starts=starts, ends=[s + timedelta(hours=3) for s in starts],
                        members=list(members), reference_time=ref, attrs=attrs)


def write(fmt: str, path: Path, kind: str, product: str | None = None, **options) -> Path:
    """Write one output: ``deterministic``, ``members`` (every member and its products) or ``statistics``."""
    if kind == "deterministic":
        get_writer(fmt)(path, forecast(), **options)
        return path
    fc = forecast(members=(0, 1, 2, 3))
    products = ensemble_products(fc.data, every_member=kind == "members", thresholds=THRESHOLDS,
                                 percentiles=PERCENTILES)
    get_writer(fmt)(path, fc, products=products, product=product, **options)
    return path


@pytest.fixture(scope="module")
def netcdf_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nc")
    files = {"deterministic": write("netcdf", d / "det.nc", "deterministic"),
             "members": write("netcdf", d / "members.nc", "members", "members"),
             "all": write("netcdf", d / "all.nc", "statistics"),
             "inches": write("netcdf", d / "inches.nc", "statistics", units="in")}
    for name in PRODUCTS:
        files[name] = write("netcdf", d / f"{name}.nc", "statistics", name)
    return files


@pytest.fixture(scope="module")
def grib_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("grib")
    files = {"deterministic": write("grib2", d / "det.grib2", "deterministic"),
             "members": write("grib2", d / "members.grib2", "members", "members")}
    for name in PRODUCTS:
        files[name] = write("grib2", d / f"{name}.grib2", "statistics", name)
    return files


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


# -- NetCDF -----------------------------------------------------------------------------------------
@needs("cdo")
@pytest.mark.parametrize("name", ["deterministic", "members", "all", "inches", *PRODUCTS])
def test_cdo_reads_every_netcdf_variable_without_a_warning(netcdf_files, name):
    res = run("cdo", "sinfon", str(netcdf_files[name]))
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "Time must be the first dimension" not in res.stderr, res.stderr
    assert "ForecastRefTime =  2020-03-25T18:00:00" in res.stdout  # from forecast_reference_time
    ds = xr.open_dataset(netcdf_files[name])
    gridded = [v for v in ds.data_vars if ds[v].ndim >= 3]
    assert gridded and all(f": {v}" in res.stdout for v in gridded)  # no variable skipped


@needs("nccopy")
@pytest.mark.parametrize("name", ["deterministic", "members", "all"])
def test_nccopy_converts_to_netcdf3_classic(netcdf_files, name, tmp_path):
    res = run("nccopy", "-k", "classic", str(netcdf_files[name]), str(tmp_path / "classic.nc"))
    assert res.returncode == 0, res.stderr
    comment = xr.open_dataset(tmp_path / "classic.nc").attrs["comment"]
    assert comment == "Smith-Barstad synthetic world, 0.25 deg -> 0.0625 deg"


@needs("compliance-checker")
@pytest.mark.parametrize("name", ["deterministic", "members", "all", "inches", *PRODUCTS])
def test_compliance_checker_cf_1_8(netcdf_files, name):
    """No error and no warning, except CF's recommendation (§2.4) to put extra dimensions left of time,
    which cdo's rule (time first) overrules for members, thresholds and percentiles."""
    res = run("compliance-checker", "--test=cf:1.8", "--format=text", str(netcdf_files[name]))
    report = res.stdout
    assert "Errors" not in report, report
    remarks = [line for line in report.splitlines() if line.startswith("* ")]
    allowed = "spatio-temporal dimensions are not in the recommended order T, Z, Y, X"
    assert all(allowed in line for line in remarks), report
    extra = {"members": "realization", "prob_gt_1mm": "threshold", "p90": "percentile"}.get(name)
    if name in ("deterministic", "mean", "spread"):
        assert not remarks, report
    elif extra is not None:
        assert all(f"time (T), {extra} (U)" in line for line in remarks), report


@needs_module("cf_xarray")
@pytest.mark.parametrize("name", ["deterministic", "members", "all"])
def test_cf_xarray_finds_exactly_one_precipitation_amount(netcdf_files, name):
    import cf_xarray  # noqa: F401

    ds = xr.open_dataset(netcdf_files[name])
    assert ds.cf.standard_names["precipitation_amount"] == ["precipitation_amount"]
    assert ds.cf["precipitation_amount"].name == "precipitation_amount"
    assert ds.cf["realization"].attrs["units"] == "1" if name == "members" else True


def test_netcdf_products_one_per_file_and_all_in_one(netcdf_files):
    all_ = xr.open_dataset(netcdf_files["all"])
    assert all_["probability_of_precipitation_amount_above_threshold"].dims == ("time", "threshold", "latitude",
                                                                                 "longitude")
    assert all_["precipitation_amount_percentile"].dims == ("time", "percentile", "latitude", "longitude")
    assert list(all_["percentile"].values) == list(PERCENTILES) and all_["percentile"].attrs["units"] == "percent"
    assert "standard_name" not in all_["threshold"].attrs and all_["threshold"].attrs["units"] == "kg m-2"
    q = all_["precipitation_amount_percentile"].values
    wet = np.isfinite(q).all(axis=(0, 1))
    assert (np.diff(q[:, :, wet], axis=1) >= 0).all() and np.isnan(q[:, :, ~wet]).all()
    p90 = xr.open_dataset(netcdf_files["p90"])
    gridded = [v for v in p90.data_vars if p90[v].ndim >= 3]
    assert gridded == ["precipitation_amount_percentile"] and list(p90["percentile"].values) == [90]
    np.testing.assert_array_equal(p90["precipitation_amount_percentile"].values[:, 0], q[:, 2])
    spread = xr.open_dataset(netcdf_files["spread"])
    assert "precipitation_amount" not in spread and p90.attrs["harpnet_product"] == "p90"


def test_inches_are_cf_liquid_water_thickness(netcdf_files):
    mm, inches = xr.open_dataset(netcdf_files["all"]), xr.open_dataset(netcdf_files["inches"])
    v = inches["precipitation_amount"]
    assert v.attrs["units"] == "in" and v.attrs["standard_name"] == "lwe_thickness_of_precipitation_amount"
    np.testing.assert_allclose(v.values * 25.4, mm["precipitation_amount"].values, rtol=1e-6)
    np.testing.assert_allclose(inches["threshold"].values * 25.4, THRESHOLDS)
    assert inches["threshold"].attrs["units"] == "in"
    np.testing.assert_array_equal(inches["probability_of_precipitation_amount_above_threshold"].values,
                                  mm["probability_of_precipitation_amount_above_threshold"].values)


# -- GRIB2 ------------------------------------------------------------------------------------------
@needs("grib_ls")
@pytest.mark.parametrize("name", ["deterministic", "members", *PRODUCTS])
def test_grib_ls_names_total_precipitation_of_the_input_centre(grib_files, name):
    res = run("grib_ls", "-p", "centre,shortName,name,units,shapeOfTheEarth,productionStatusOfProcessedData",
              str(grib_files[name]))
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith("kwbc")]
    assert rows, res.stdout
    assert all(r == ["kwbc", "tp", "Total", "Precipitation", "kg", "m**-2", "6", "2"] for r in rows), res.stdout


@needs("cdo")
@pytest.mark.parametrize("name", ["deterministic", "members", *PRODUCTS])
def test_cdo_reads_each_grib_product_file_as_one_series(grib_files, name):
    res = run("cdo", "sinfon", str(grib_files[name]))
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "Unsupported" not in res.stderr, res.stderr
    assert "NCEP" in res.stdout and ": tp" in res.stdout and "time : 2 steps" in res.stdout, res.stdout


@pytest.mark.parametrize("name", ["deterministic", "members", *PRODUCTS])
def test_cfgrib_reads_all_of_each_grib_product_file(grib_files, name):
    import cfgrib

    datasets = cfgrib.open_datasets(str(grib_files[name]), backend_kwargs={"indexpath": ""})
    assert len(datasets) == 1
    ds = xr.open_dataset(grib_files[name], engine="cfgrib", backend_kwargs={"indexpath": ""})
    assert list(ds.data_vars) == ["tp"] and ds["tp"].attrs["GRIB_units"] == "kg m**-2"
    n_messages = grib_files[name].read_bytes().count(b"7777")
    assert ds["tp"].size // (ds.sizes["latitude"] * ds.sizes["longitude"]) == n_messages  # nothing dropped
    if name == "members":
        assert ds.sizes["number"] == 4


def test_grib_percentiles_are_template_4_10_and_agree_with_netcdf(grib_files, netcdf_files):
    from harpnet_cli.io.grib_writer import _eccodes

    eccodes = _eccodes()
    with open(grib_files["p90"], "rb") as f:
        gid = eccodes.codes_grib_new_from_file(f)
        try:
            assert eccodes.codes_get(gid, "productDefinitionTemplateNumber") == 10
            assert eccodes.codes_get(gid, "percentileValue") == 90
            values = eccodes.codes_get_values(gid)
        finally:
            eccodes.codes_release(gid)
    nc = xr.open_dataset(netcdf_files["p90"])["precipitation_amount_percentile"].values[0, 0][::-1].ravel()
    ok = np.isfinite(nc)
    np.testing.assert_allclose(values[ok], nc[ok], atol=0.005)


@needs("gdalinfo")
def test_gdal_names_apcp(grib_files):
    res = run("gdalinfo", str(grib_files["deterministic"]))
    assert "GRIB_ELEMENT=APCP03" in res.stdout and "Total precipitation" in res.stdout, res.stdout
