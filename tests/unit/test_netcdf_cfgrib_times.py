"""NetCDF written by cfgrib/xarray: ``time`` is the reference, ``valid_time`` the end of the window."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.readers import read_accumulations, scan_files

REF = np.datetime64("2020-03-25T18:00")
LAT = np.arange(40.0, 29.75, -0.25)
LON = np.arange(260.0, 270.25, 0.25)


def cfgrib_like(path: Path, hours: list[int], *, centre: str = "kwbc", units: str = "kg m**-2") -> Path:
    """What ``xr.open_dataset(grib, engine="cfgrib").to_netcdf(path)`` writes for ``tp`` at these leads."""
    rng = np.random.default_rng(0)
    steps = pd.to_timedelta(hours, unit="h")
    data = np.cumsum(rng.gamma(0.5, 2.0, (len(hours), LAT.size, LON.size)), axis=0).astype(np.float32)
    coords = {
        "time": ((), REF, {"standard_name": "forecast_reference_time", "long_name": "initial time of forecast"}),
        "latitude": ("latitude", LAT, {"standard_name": "latitude", "units": "degrees_north"}),
        "longitude": ("longitude", LON, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    attrs = {"units": units, "GRIB_stepType": "accum", "long_name": "Total Precipitation"}
    if len(hours) == 1:
        coords["step"] = ((), steps[0], {"standard_name": "forecast_period"})
        coords["valid_time"] = ((), REF + steps[0], {"standard_name": "time"})
        tp = xr.DataArray(data[0], dims=("latitude", "longitude"), attrs=attrs)
    else:
        coords["step"] = ("step", steps, {"standard_name": "forecast_period"})
        coords["valid_time"] = ("step", REF + steps, {"standard_name": "time"})
        tp = xr.DataArray(data, dims=("step", "latitude", "longitude"), attrs=attrs)
    xr.Dataset({"tp": tp}, coords=coords, attrs={"GRIB_centre": centre}).to_netcdf(path)
    return path


def hours(t: datetime) -> float:
    return (np.datetime64(t) - REF) / np.timedelta64(1, "h")


def test_a_single_step_ends_at_valid_time_and_starts_at_the_reference(tmp_path: Path) -> None:
    (acc,) = read_accumulations([cfgrib_like(tmp_path / "f006.nc", [6])])
    assert (hours(acc.start), hours(acc.end)) == (0, 6)
    assert acc.reference_time == REF.astype(datetime)
    (ref,) = scan_files([tmp_path / "f006.nc"])
    assert (hours(ref.start), hours(ref.end)) == (0, 6) and ref.reference_time == acc.reference_time


def test_an_explicit_window_ends_at_valid_time(tmp_path: Path) -> None:
    (acc,) = read_accumulations([cfgrib_like(tmp_path / "f006.nc", [6])], accumulation=pd.Timedelta("3h"))
    assert (hours(acc.start), hours(acc.end)) == (3, 6)


def test_a_step_axis_of_running_totals_gives_consecutive_windows(tmp_path: Path) -> None:
    path = cfgrib_like(tmp_path / "ecmwf.nc", [0, 6, 12], centre="ecmf", units="m")
    (series,) = to_interval_series(read_accumulations([path]))
    assert [hours(t) for t in series.ends] == [6, 12] and [hours(t) for t in series.starts] == [0, 6]


def test_ncep_past_six_hours_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="NCEP precipitation past 6 hours") as info:
        read_accumulations([cfgrib_like(tmp_path / "f012.nc", [12])])
    assert "\n" not in str(info.value)
