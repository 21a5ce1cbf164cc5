"""CF-1.8 NetCDF output of downscaled precipitation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli.fields import FineForecast
from harpnet_cli.io.atomic import atomic_path

if TYPE_CHECKING:
    import xarray as xr

TIME_UNITS = "hours since 1970-01-01 00:00:00"
_EPOCH = datetime(1970, 1, 1)


def _hours(times: list[datetime]) -> np.ndarray:
    """Times as float hours since 1970-01-01 (``TIME_UNITS``), shape ``(T,)``."""
    return np.array([(t - _EPOCH).total_seconds() / 3600.0 for t in times], dtype=np.float64)


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One time step per chunk, spatial chunks of at most 256 x 512."""
    *lead, h, w = shape
    return (*[1] * len(lead), min(h, 256), min(w, 512))


def to_dataset(fc: FineForecast) -> xr.Dataset:
    """Build the CF-1.8 ``xarray.Dataset`` of a forecast.

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)``; the member axis is dropped when there is one deterministic
        member, and kept as ``realization`` otherwise.

    Returns
    -------
    xarray.Dataset
    """
    import xarray as xr

    hours = f"{(fc.ends[0] - fc.starts[0]).total_seconds() / 3600:g}"
    uniform = len({e - s for s, e in zip(fc.starts, fc.ends, strict=True)}) == 1
    interval = f" (interval: {hours} hours)" if uniform else ""
    data_attrs = {
        "standard_name": "precipitation_amount",
        "long_name": "Precipitation amount downscaled to 0.0625 degrees",
        "units": "kg m-2",
        "cell_methods": f"time: sum{interval} area: mean",
        "grid_mapping": "crs",
        "coverage_content_type": "modelResult",
    }
    deterministic = fc.members == [None]
    data = fc.data[0] if deterministic else fc.data
    dims: tuple[str, ...] = ("time", "latitude", "longitude")
    if not deterministic:
        dims = ("realization", *dims)
    coords: dict[str, tuple[Any, ...]] = {
        "time": ("time", _hours(fc.ends), {
            "standard_name": "time", "long_name": "end of the accumulation window",
            "units": TIME_UNITS, "calendar": "proleptic_gregorian", "bounds": "time_bnds", "axis": "T",
        }),
        "latitude": ("latitude", fc.lat.astype(np.float64), {
            "standard_name": "latitude", "units": "degrees_north", "bounds": "lat_bnds", "axis": "Y",
        }),
        "longitude": ("longitude", fc.lon.astype(np.float64), {
            "standard_name": "longitude", "units": "degrees_east", "bounds": "lon_bnds", "axis": "X",
        }),
    }
    if not deterministic:
        coords["realization"] = ("realization", np.array([m if m is not None else -1 for m in fc.members],
                                                         dtype=np.int32),
                                 {"standard_name": "realization", "long_name": "ensemble member number"})
    extra: dict[str, tuple[Any, ...]] = {}
    if fc.reference_time is not None:
        # data variables named by the ``coordinates`` attribute (CF auxiliary coordinates), so
        # xarray does not stamp them onto every other variable
        ref = _hours([fc.reference_time])[0]
        extra["forecast_reference_time"] = ((), ref, {
            "standard_name": "forecast_reference_time", "units": TIME_UNITS, "calendar": "proleptic_gregorian",
        })
        extra["forecast_period"] = ("time", _hours(fc.ends) - ref, {
            "standard_name": "forecast_period", "units": "hours", "long_name": "time since the forecast start",
        })
        data_attrs["coordinates"] = "forecast_reference_time forecast_period"
    ds = xr.Dataset(
        {
            "precipitation_amount": (dims, data.astype(np.float32), data_attrs),
            "time_bnds": (("time", "nv"), np.stack([_hours(fc.starts), _hours(fc.ends)], axis=1)),
            "lat_bnds": (("latitude", "nv"), fc.lat_bounds.astype(np.float64)),
            "lon_bnds": (("longitude", "nv"), fc.lon_bounds.astype(np.float64)),
            "crs": ((), np.int32(0), {
                "grid_mapping_name": "latitude_longitude",
                "longitude_of_prime_meridian": 0.0, "semi_major_axis": 6371229.0, "inverse_flattening": 0.0,
            }),
            **extra,
        },
        coords=coords,
        attrs={"Conventions": "CF-1.8", **fc.attrs},
    )
    return ds


def write_netcdf(path: str | Path, fc: FineForecast, overwrite: bool = False) -> Path:
    """Write a forecast as compressed, chunked CF-1.8 NetCDF-4, atomically.

    Parameters
    ----------
    path : str or Path
        Output file.
    fc : FineForecast
        What to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    ds = to_dataset(fc)
    var = ds["precipitation_amount"]
    encoding = {
        "precipitation_amount": {
            "zlib": True, "complevel": 4, "shuffle": True, "dtype": "float32",
            "chunksizes": _chunks(var.shape), "_FillValue": np.float32(-9999.0),
        },
        "time": {"dtype": "float64", "_FillValue": None},
        "time_bnds": {"dtype": "float64", "_FillValue": None},
        "latitude": {"_FillValue": None},
        "longitude": {"_FillValue": None},
        "lat_bnds": {"_FillValue": None},
        "lon_bnds": {"_FillValue": None},
    }
    if "forecast_reference_time" in ds:
        encoding["forecast_reference_time"] = {"_FillValue": None}
        encoding["forecast_period"] = {"_FillValue": None}
    with atomic_path(path, overwrite=overwrite) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=encoding)
    return Path(path)
