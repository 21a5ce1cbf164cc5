"""CF-1.8 NetCDF output of downscaled precipitation.

:func:`write_forecast` is the ``netcdf`` entry of the writer registry
(:data:`harpnet_cli.formats.OUTPUT_FORMATS`); NetCDF is written to files only, never streamed.

Layout, chosen so that every common reader takes the whole file (measured with cdo, xarray,
cf_xarray, the IOOS compliance checker and ``nccopy -k classic``; see the README):

* time is the first dimension of every gridded variable (cdo refuses others): members are
  ``(time, realization, latitude, longitude)``, probabilities ``(time, threshold, …)`` and
  percentiles ``(time, percentile, …)``;
* only the amount itself (members or ensemble mean) carries the standard name
  ``precipitation_amount`` (or ``lwe_thickness_of_precipitation_amount`` in inches), so
  ``ds.cf["precipitation_amount"]`` finds exactly one variable; spread, probabilities,
  percentiles and the ``threshold`` coordinate are described by ``long_name`` and units;
* ``forecast_reference_time`` and ``forecast_period`` are plain variables with their standard
  names, not listed in a ``coordinates`` attribute (cdo cannot attach a scalar or time-only
  coordinate and warns);
* every attribute is ASCII text or a number, and no variable is 64-bit integer, so ``nccopy -k
  classic`` converts the file to netCDF-3.

The output's variables and attributes are built once, by :func:`forecast_layout` and
:func:`ensemble_layout`, as a :class:`~harpnet_cli.io.netcdf_stream.Layout` (numpy arrays and
attributes, no xarray: importing xarray costs a fresh ``harpnet downscale`` more than its model);
:func:`to_dataset` and :func:`to_ensemble_dataset` give the same as ``xarray.Dataset`` s, and the
files are written with netCDF4 by :mod:`harpnet_cli.io.netcdf_stream`, at once or step by step.
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from harpnet_cli.fields import EnsembleProducts, FineForecast, product_name
from harpnet_cli.formats import AMOUNT_UNITS, AmountUnit
from harpnet_cli.io.atomic import atomic_path
from harpnet_cli.io.netcdf_stream import Layout

if TYPE_CHECKING:
    import xarray as xr

#: Name of the exceedance-probability variable (IMPROVER-style; CF has no standard name for it).
PROBABILITY_VARIABLE = "probability_of_precipitation_amount_above_threshold"
#: Name of the percentile variable.
PERCENTILE_VARIABLE = "precipitation_amount_percentile"
#: Name of the spread variable.
SPREAD_VARIABLE = "precipitation_amount_spread"
#: Name of the amount variable (members, ensemble mean or the deterministic field).
AMOUNT_VARIABLE = "precipitation_amount"
TIME_UNITS = "hours since 1970-01-01 00:00:00"
_EPOCH = datetime(1970, 1, 1)
#: Characters HARPNET writes that have a plain-ASCII spelling (netCDF-3 attributes are ASCII).
_ASCII = {"°": " deg", "–": "-", "—": "-", "→": "->", "×": "x", "’": "'", "‘": "'", "“": '"', "”": '"',
          "…": "...", "±": "+/-", "≤": "<=", "≥": ">=", "µ": "u", "²": "2", "³": "3", "⁻": "-"}


def ascii_text(text: str) -> str:
    """``text`` in plain ASCII: common symbols spelled out, accents dropped, anything else as ``?``.

    Examples
    --------
    >>> ascii_text("Smith–Barstad, 0.25° → 0.0625°, Zürich")
    'Smith-Barstad, 0.25 deg -> 0.0625 deg, Zurich'
    """
    spelled = unicodedata.normalize("NFKD", "".join(_ASCII.get(c, c) for c in str(text)))
    bare = "".join(c for c in spelled if not unicodedata.combining(c))
    return bare.encode("ascii", "replace").decode("ascii")


def _hours(times: list[datetime]) -> np.ndarray:
    """Times as float hours since 1970-01-01 (``TIME_UNITS``), shape ``(T,)``."""
    return np.array([(t - _EPOCH).total_seconds() / 3600.0 for t in times], dtype=np.float64)


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One time step (and one member, threshold or percentile) per chunk, spatial chunks of at most 256 x 512."""
    *lead, h, w = shape
    return (*[1] * len(lead), min(h, 256), min(w, 512))


def _unit(units: str) -> AmountUnit:
    """The registered output unit ``units`` (``mm`` or ``in``)."""
    try:
        return AMOUNT_UNITS[units]
    except KeyError:
        raise ValueError(f"unknown amount unit {units!r}; known: {', '.join(AMOUNT_UNITS)}") from None


def to_dataset(fc: FineForecast, units: str = "mm") -> xr.Dataset:
    """The CF-1.8 ``xarray.Dataset`` of a forecast (:func:`forecast_layout` as xarray)."""
    return forecast_layout(fc, units).to_xarray()


def forecast_layout(fc: FineForecast, units: str = "mm") -> Layout:
    """Build the CF-1.8 layout of a forecast.

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)`` in kg m-2; the member axis is dropped when there is one
        deterministic member, and kept as ``realization`` (after ``time``) otherwise.
    units : {"mm", "in"}
        ``mm``: ``precipitation_amount`` in kg m-2; ``in``: ``lwe_thickness_of_precipitation_amount``
        in inches (the CF way to write a water amount as a depth; 1 kg m-2 = 1 mm = 1/25.4 in).

    Returns
    -------
    Layout
        Data variables first (the amount, bounds, ``crs``, reference time and period), then the
        coordinates, in the order xarray writes them; every text attribute ASCII.
    """
    unit = _unit(units)
    hours = f"{(fc.ends[0] - fc.starts[0]).total_seconds() / 3600:g}"
    uniform = len({e - s for s, e in zip(fc.starts, fc.ends, strict=True)}) == 1
    interval = f" (interval: {hours} hours)" if uniform else ""
    data_attrs = {
        "standard_name": unit.standard_name,
        "long_name": "Precipitation amount downscaled to 0.0625 degrees",
        "units": unit.cf_units,
        "cell_methods": f"time: sum{interval} area: mean",
        "grid_mapping": "crs",
        "coverage_content_type": "modelResult",
    }
    deterministic = fc.members == [None]
    data = (fc.data[0] if deterministic else np.moveaxis(fc.data, 0, 1)) * np.float32(unit.per_mm)
    dims: tuple[str, ...] = ("time", "latitude", "longitude")
    if not deterministic:
        dims = ("time", "realization", "latitude", "longitude")
    layout = Layout(attrs={"Conventions": "CF-1.8", **fc.attrs})
    layout.add(AMOUNT_VARIABLE, dims, data.astype(np.float32), data_attrs)
    layout.add("time_bnds", ("time", "nv"), np.stack([_hours(fc.starts), _hours(fc.ends)], axis=1))
    layout.add("lat_bnds", ("latitude", "nv"), fc.lat_bounds.astype(np.float64))
    layout.add("lon_bnds", ("longitude", "nv"), fc.lon_bounds.astype(np.float64))
    layout.add("crs", (), np.int32(0), {
        "grid_mapping_name": "latitude_longitude",
        "longitude_of_prime_meridian": 0.0, "semi_major_axis": 6371229.0, "inverse_flattening": 0.0,
    })
    if fc.reference_time is not None:
        # plain variables with their standard names: listed in a ``coordinates`` attribute, cdo
        # warns that it cannot attach them ("forecast_reference_time can't be assigned")
        ref = _hours([fc.reference_time])[0]
        layout.add("forecast_reference_time", (), ref, {
            "standard_name": "forecast_reference_time", "long_name": "forecast reference time of the input",
            "units": TIME_UNITS, "calendar": "proleptic_gregorian",
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
                   {"standard_name": "realization", "long_name": "ensemble member number", "units": "1"}, coord=True)
    return _ascii_layout(layout)


def write_netcdf(path: str | Path, fc: FineForecast, overwrite: bool = False, units: str = "mm") -> Path:
    """Write a forecast as compressed, chunked CF-1.8 NetCDF-4, atomically.

    Parameters
    ----------
    path : str or Path
        Output file.
    fc : FineForecast
        What to write.
    overwrite : bool
        Replace an existing file.
    units : {"mm", "in"}
        Amount unit (see :func:`to_dataset`).

    Returns
    -------
    Path
        The written file.
    """
    return _write_dataset(path, forecast_layout(fc, units), overwrite)


def write_forecast(target: Path | BinaryIO, fc: FineForecast, *, overwrite: bool = False,
                   products: EnsembleProducts | None = None, product: str | None = None,
                   units: str = "mm") -> None:
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
    product : str, optional
        Write only this one of ``products.names()`` (one product per file).
    units : {"mm", "in"}
        Amount unit (see :func:`to_dataset`).

    Raises
    ------
    TypeError
        If ``target`` is a stream.
    """
    if not isinstance(target, str | os.PathLike):
        raise TypeError("NetCDF is written to a file, not a stream")
    if products is not None:
        write_ensemble_netcdf(target, fc, products, overwrite=overwrite, product=product, units=units)
    else:
        write_netcdf(target, fc, overwrite=overwrite, units=units)


def to_ensemble_dataset(fc: FineForecast, products: EnsembleProducts, *, product: str | None = None,
                        units: str = "mm") -> xr.Dataset:
    """The CF-1.8 ``xarray.Dataset`` of an ensemble's products (:func:`ensemble_layout` as xarray)."""
    return ensemble_layout(fc, products, product=product, units=units).to_xarray()


def ensemble_layout(fc: FineForecast, products: EnsembleProducts, *, product: str | None = None,
                    units: str = "mm") -> Layout:
    """Build the CF-1.8 layout of an ensemble's products (computed before, written as given).

    Parameters
    ----------
    fc : FineForecast
        ``data`` is ``(M, T, H, W)``: every member of the ensemble (written only with
        ``products.every_member``); its grid, windows and attributes are written.
    products : EnsembleProducts
        With ``every_member`` the members go along ``realization`` (``precipitation_amount``);
        otherwise ``products.mean`` is ``precipitation_amount`` and ``products.spread``
        ``precipitation_amount_spread`` (population standard deviation, no standard name). The
        ``long_name`` and ``comment`` say which statistic over how many members each is.
        ``products.probabilities`` ``(K, T, H, W)``, when given, become
        ``probability_of_precipitation_amount_above_threshold`` ``(time, threshold, latitude,
        longitude)`` in units 1 (fraction of members strictly above), with a ``threshold``
        coordinate in the amount unit; ``products.percentile_fields`` ``(Q, T, H, W)``
        ``precipitation_amount_percentile`` ``(time, percentile, latitude, longitude)`` with a
        ``percentile`` coordinate in percent.
    product : str, optional
        Only this one of ``products.names()``; the mean, spread, one threshold or one percentile
        is then the file's only gridded variable.
    units : {"mm", "in"}
        Amount unit of amounts, spread, percentiles and thresholds.

    Returns
    -------
    Layout

    Raises
    ------
    ValueError
        ``product`` is not one of ``products.names()``.
    """
    names = products.names()
    if product is not None and product not in names:
        raise ValueError(f"unknown ensemble product {product!r}; this output has {', '.join(names)}")
    wanted = set(names if product is None else [product])
    unit = _unit(units)
    n = products.size
    if products.every_member:
        ds = forecast_layout(fc, units)
        if "members" not in wanted:
            ds.drop([AMOUNT_VARIABLE, "realization"])
    else:
        assert products.mean is not None and products.spread is not None
        ds = forecast_layout(dataclasses.replace(fc, data=products.mean[None], members=[None]), units)
        var = ds[AMOUNT_VARIABLE]
        var.attrs["long_name"] = f"Ensemble mean ({n} members) of the precipitation amount downscaled to 0.0625 degrees"
        var.attrs["comment"] = f"unweighted mean over the {n} members (realizations) of the ensemble"
        attrs = {k: v for k, v in var.attrs.items() if k != "standard_name"}
        attrs["long_name"] = f"Ensemble spread (standard deviation over {n} members) of the precipitation amount"
        attrs["comment"] = f"population standard deviation (ddof 0) over the {n} members of the ensemble"
        ds.add(SPREAD_VARIABLE, var.dims, products.spread * np.float32(unit.per_mm), attrs)
        ds.drop([v for v, name in ((AMOUNT_VARIABLE, "mean"), (SPREAD_VARIABLE, "spread")) if name not in wanted])
    base = dict(forecast_layout(dataclasses.replace(fc, data=fc.data[:1], members=[None]),
                                units)[AMOUNT_VARIABLE].attrs)
    common = {"cell_methods": base["cell_methods"], "grid_mapping": "crs", "coverage_content_type": "modelResult"}
    if products.probabilities is not None:
        keep = [k for k, t in enumerate(products.thresholds) if product_name("probability", t) in wanted]
        if keep:
            ds.add("threshold", ("threshold",), np.asarray(products.thresholds, dtype=np.float64)[keep] * unit.per_mm, {
                "long_name": "threshold of the precipitation amount (strictly above)", "units": unit.cf_units,
            }, coord=True)
            ds.add(PROBABILITY_VARIABLE, ("time", "threshold", "latitude", "longitude"),
                   np.moveaxis(products.probabilities[keep], 0, 1), {
                "long_name": "probability_of_precipitation_amount_above_threshold", "units": "1",
                "comment": f"fraction of the {n} ensemble members with an amount strictly above the threshold",
                **common,
            })
    if products.percentile_fields is not None:
        keep = [k for k, q in enumerate(products.percentiles) if product_name("percentile", q) in wanted]
        if keep:
            ds.add("percentile", ("percentile",), np.asarray(products.percentiles, dtype=np.float64)[keep], {
                "long_name": "percentile of the ensemble distribution", "units": "percent",
            }, coord=True)
            ds.add(PERCENTILE_VARIABLE, ("time", "percentile", "latitude", "longitude"),
                   np.moveaxis(products.percentile_fields[keep], 0, 1) * np.float32(unit.per_mm), {
                "long_name": "Percentile over the ensemble members of the precipitation amount",
                "units": unit.cf_units,
                "comment": f"percentile of the {n} members' amounts, linear between order statistics",
                **common,
            })
    ds.attrs["harpnet_ensemble_size"] = np.int32(n)
    if product is not None:
        ds.attrs["harpnet_product"] = product
    return _ascii_layout(ds)


def write_ensemble_netcdf(path: str | Path, fc: FineForecast, products: EnsembleProducts, *,
                          overwrite: bool = False, product: str | None = None, units: str = "mm") -> Path:
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
    product : str, optional
        Only this product (see :func:`to_ensemble_dataset`).
    units : {"mm", "in"}
        Amount unit.

    Returns
    -------
    Path
        The written file.
    """
    return _write_dataset(path, ensemble_layout(fc, products, product=product, units=units), overwrite)


def layout_for(fc: FineForecast, products: EnsembleProducts | None = None, *, product: str | None = None,
               units: str = "mm") -> Layout:
    """What :func:`write_forecast` writes: :func:`ensemble_layout` with products, else :func:`forecast_layout`."""
    if products is None:
        return forecast_layout(fc, units)
    return ensemble_layout(fc, products, product=product, units=units)


def dataset_for(fc: FineForecast, products: EnsembleProducts | None = None, *, product: str | None = None,
                units: str = "mm") -> xr.Dataset:
    """:func:`layout_for` as an ``xarray.Dataset``."""
    return layout_for(fc, products, product=product, units=units).to_xarray()


def _ascii_attrs(attrs: dict[Any, Any]) -> dict[Any, Any]:
    """Text attributes as ASCII (netCDF-3 has no Unicode attribute type); numbers unchanged."""
    return {k: ascii_text(v) if isinstance(v, str) else v for k, v in attrs.items()}


def _ascii_layout(layout: Layout) -> Layout:
    """The layout with every text attribute (global and per variable) in ASCII."""
    layout.attrs = _ascii_attrs(layout.attrs)
    for var in layout.variables.values():
        var.attrs = _ascii_attrs(var.attrs)
    return layout


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
        "crs": {"_FillValue": None},
    }
    for name, var in ds.data_vars.items():
        if var.dims[-2:] == ("latitude", "longitude"):
            encoding[str(name)] = {
                "zlib": True, "complevel": 4, "shuffle": True, "dtype": "float32",
                "chunksizes": _chunks(var.shape), "_FillValue": np.float32(-9999.0),
            }
    for name in ("threshold", "percentile", "realization", "forecast_reference_time", "forecast_period"):
        if name in ds.variables:
            encoding[name] = {"_FillValue": None}
    return encoding
