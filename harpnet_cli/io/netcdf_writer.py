"""CF-1.8 NetCDF output of downscaled precipitation.

:func:`write_forecast` is the ``netcdf`` entry of the writer registry
(:data:`harpnet_cli.formats.OUTPUT_FORMATS`); NetCDF is written to files only, never streamed.

The output's variables and attributes are built once, by :func:`forecast_layout` and
:func:`ensemble_layout`, as a :class:`~harpnet_cli.io.netcdf_stream.Layout` (numpy arrays and
attributes, no xarray: importing xarray costs a fresh ``harpnet downscale`` more than its model);
:func:`to_dataset` and :func:`to_ensemble_dataset` give the same as ``xarray.Dataset`` s, and the
files are written with netCDF4 by :mod:`harpnet_cli.io.netcdf_stream`.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from harpnet_cli.fields import EnsembleProducts, FineForecast
from harpnet_cli.io.atomic import atomic_path
from harpnet_cli.io.netcdf_stream import Layout

if TYPE_CHECKING:
    import xarray as xr

#: Name of the exceedance-probability variable (IMPROVER-style; CF has no standard name for it).
PROBABILITY_VARIABLE = "probability_of_precipitation_amount_above_threshold"
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
    """The CF-1.8 ``xarray.Dataset`` of a forecast (:func:`forecast_layout` as xarray).

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)``; the member axis is dropped when there is one deterministic
        member, and kept as ``realization`` otherwise.

    Returns
    -------
    xarray.Dataset
    """
    return forecast_layout(fc).to_xarray()


def forecast_layout(fc: FineForecast) -> Layout:
    """Build the CF-1.8 layout of a forecast.

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)``; the member axis is dropped when there is one deterministic
        member, and kept as ``realization`` otherwise.

    Returns
    -------
    Layout
        Data variables first (``precipitation_amount``, bounds, ``crs``, reference time and
        period), then the coordinates, in the order xarray writes them.
    """
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
    if fc.reference_time is not None:
        data_attrs["coordinates"] = "forecast_reference_time forecast_period"
    layout = Layout(attrs={"Conventions": "CF-1.8", **fc.attrs})
    layout.add("precipitation_amount", dims, data.astype(np.float32), data_attrs)
    layout.add("time_bnds", ("time", "nv"), np.stack([_hours(fc.starts), _hours(fc.ends)], axis=1))
    layout.add("lat_bnds", ("latitude", "nv"), fc.lat_bounds.astype(np.float64))
    layout.add("lon_bnds", ("longitude", "nv"), fc.lon_bounds.astype(np.float64))
    layout.add("crs", (), np.int32(0), {
        "grid_mapping_name": "latitude_longitude",
        "longitude_of_prime_meridian": 0.0, "semi_major_axis": 6371229.0, "inverse_flattening": 0.0,
    })
    if fc.reference_time is not None:
        # data variables named by the ``coordinates`` attribute (CF auxiliary coordinates), so
        # xarray does not stamp them onto every other variable
        ref = _hours([fc.reference_time])[0]
        layout.add("forecast_reference_time", (), ref, {
            "standard_name": "forecast_reference_time", "units": TIME_UNITS, "calendar": "proleptic_gregorian",
        })
        layout.add("forecast_period", ("time",), _hours(fc.ends) - ref, {
            "standard_name": "forecast_period", "units": "hours", "long_name": "time since the forecast start",
        })
    layout.add("time", ("time",), _hours(fc.ends), {
        "standard_name": "time", "long_name": "end of the accumulation window",
        "units": TIME_UNITS, "calendar": "proleptic_gregorian", "bounds": "time_bnds", "axis": "T",
    }, coord=True)
    layout.add("latitude", ("latitude",), fc.lat.astype(np.float64), {
        "standard_name": "latitude", "units": "degrees_north", "bounds": "lat_bnds", "axis": "Y",
    }, coord=True)
    layout.add("longitude", ("longitude",), fc.lon.astype(np.float64), {
        "standard_name": "longitude", "units": "degrees_east", "bounds": "lon_bnds", "axis": "X",
    }, coord=True)
    if not deterministic:
        layout.add("realization", ("realization",),
                   np.array([m if m is not None else -1 for m in fc.members], dtype=np.int32),
                   {"standard_name": "realization", "long_name": "ensemble member number"}, coord=True)
    return layout


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
    return _write_dataset(path, forecast_layout(fc), overwrite)


def write_forecast(target: Path | BinaryIO, fc: FineForecast, *, overwrite: bool = False,
                   products: EnsembleProducts | None = None) -> None:
    """Write a forecast, or an ensemble's products, as CF-1.8 NetCDF-4 (the registry's ``netcdf`` writer).

    Parameters
    ----------
    target : Path
        Output file, written atomically (NetCDF cannot go to a stream).
    fc : FineForecast
        ``(M, T, H, W)``; with ``products`` the ensemble's members.
    overwrite : bool
        Replace an existing file.
    products : EnsembleProducts, optional
        Write these (:func:`write_ensemble_netcdf`) instead of ``fc``'s rows (:func:`write_netcdf`).

    Raises
    ------
    TypeError
        If ``target`` is a stream.
    """
    if not isinstance(target, str | os.PathLike):
        raise TypeError("NetCDF is written to a file, not a stream")
    if products is not None:
        write_ensemble_netcdf(target, fc, products, overwrite=overwrite)
    else:
        write_netcdf(target, fc, overwrite=overwrite)


def to_ensemble_dataset(fc: FineForecast, products: EnsembleProducts) -> xr.Dataset:
    """The CF-1.8 ``xarray.Dataset`` of an ensemble's products (:func:`ensemble_layout` as xarray)."""
    return ensemble_layout(fc, products).to_xarray()


def ensemble_layout(fc: FineForecast, products: EnsembleProducts) -> Layout:
    """Build the CF-1.8 layout of an ensemble's products (computed before, written as given).

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)``: every member of the ensemble (written only with
        ``products.every_member``); its grid, windows and attributes are written.
    products : EnsembleProducts
        With ``every_member`` the members go along ``realization`` (``precipitation_amount``);
        otherwise ``products.mean`` is ``precipitation_amount`` (``cell_methods`` ``realization:
        mean``) and ``products.spread`` ``precipitation_amount_spread`` (``realization:
        standard_deviation``, population). ``products.probabilities`` ``(K, T, H, W)``, when
        given, become ``probability_of_precipitation_amount_above_threshold`` ``(threshold, time,
        latitude, longitude)`` in units 1 (fraction of members strictly above), with a
        ``threshold`` coordinate whose ``standard_name`` is ``precipitation_amount``.

    Returns
    -------
    Layout
    """
    n = products.size
    if products.every_member:
        ds = forecast_layout(fc)
    else:
        assert products.mean is not None and products.spread is not None
        ds = forecast_layout(dataclasses.replace(fc, data=products.mean[None], members=[None]))
        var = ds["precipitation_amount"]
        var.attrs["cell_methods"] += " realization: mean"
        var.attrs["long_name"] = f"Ensemble mean ({n} members) of the precipitation amount downscaled to 0.0625 degrees"
        attrs = {k: v for k, v in var.attrs.items() if k != "standard_name"}
        attrs["long_name"] = f"Ensemble spread (standard deviation over {n} members) of the precipitation amount"
        attrs["cell_methods"] = attrs["cell_methods"].replace("realization: mean", "realization: standard_deviation")
        ds.add("precipitation_amount_spread", var.dims, products.spread, attrs)
    if products.thresholds and products.probabilities is not None:
        base = ds["precipitation_amount"].attrs
        ds.add("threshold", ("threshold",), np.asarray(products.thresholds, dtype=np.float64), {
            "standard_name": "precipitation_amount", "units": "kg m-2", "long_name": "precipitation amount threshold",
            "spp__relative_to_threshold": "greater_than",
        }, coord=True)
        attrs = {
            "long_name": "probability_of_precipitation_amount_above_threshold", "units": "1",
            "comment": f"fraction of the {n} ensemble members with precipitation_amount > threshold",
            "cell_methods": base["cell_methods"].replace(" realization: mean", ""),
            "grid_mapping": "crs", "coverage_content_type": "modelResult",
        }
        if "coordinates" in base:
            attrs["coordinates"] = base["coordinates"]
        ds.add(PROBABILITY_VARIABLE, ("threshold", "time", "latitude", "longitude"), products.probabilities, attrs)
    ds.attrs["harpnet_ensemble_size"] = np.int32(n)
    return ds


def write_ensemble_netcdf(path: str | Path, fc: FineForecast, products: EnsembleProducts, *,
                          overwrite: bool = False) -> Path:
    """Write an ensemble's products (see :func:`to_ensemble_dataset`) as CF-1.8 NetCDF-4, atomically.

    Parameters
    ----------
    path : str or Path
        Output file.
    fc : FineForecast
        Every member, ``(M, T, H, W)``.
    products : EnsembleProducts
        As for :func:`to_ensemble_dataset`.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    return _write_dataset(path, ensemble_layout(fc, products), overwrite)


def layout_for(fc: FineForecast, products: EnsembleProducts | None = None) -> Layout:
    """What :func:`write_forecast` writes: :func:`ensemble_layout` with products, else :func:`forecast_layout`."""
    return forecast_layout(fc) if products is None else ensemble_layout(fc, products)


def dataset_for(fc: FineForecast, products: EnsembleProducts | None = None) -> xr.Dataset:
    """:func:`layout_for` as an ``xarray.Dataset``."""
    return layout_for(fc, products).to_xarray()


def _write_dataset(path: str | Path, ds: Layout, overwrite: bool) -> Path:
    """Write ``ds`` with HARPNET's encoding (:func:`encoding_for`), through netCDF4 directly."""
    from harpnet_cli.io.netcdf_stream import write_dataset

    with atomic_path(path, overwrite=overwrite) as tmp:
        write_dataset(tmp, ds, encoding_for(ds))
    return Path(path)


def encoding_for(ds: Layout | xr.Dataset) -> dict[str, dict[str, Any]]:
    """HARPNET's encoding of a dataset: gridded variables compressed, one step per chunk."""
    encoding: dict[str, dict[str, Any]] = {
        "time": {"dtype": "float64", "_FillValue": None},
        "time_bnds": {"dtype": "float64", "_FillValue": None},
        "latitude": {"_FillValue": None},
        "longitude": {"_FillValue": None},
        "lat_bnds": {"_FillValue": None},
        "lon_bnds": {"_FillValue": None},
    }
    for name, var in ds.data_vars.items():
        if var.dims[-2:] == ("latitude", "longitude"):
            encoding[str(name)] = {
                "zlib": True, "complevel": 4, "shuffle": True, "dtype": "float32",
                "chunksizes": _chunks(var.shape), "_FillValue": np.float32(-9999.0),
            }
    if "threshold" in ds.coords:
        encoding["threshold"] = {"_FillValue": None}
    if "forecast_reference_time" in ds:
        encoding["forecast_reference_time"] = {"_FillValue": None}
        encoding["forecast_period"] = {"_FillValue": None}
    return encoding
