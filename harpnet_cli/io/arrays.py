"""Precipitation arrays in memory (an ``xarray.DataArray``, e.g. from cfgrib, or numpy) as fields.

The Python API (:mod:`harpnet`) hands a DataArray here; :func:`dataarray_fields` turns it into
:class:`~harpnet_cli.fields.Accumulation` s exactly as the readers turn a file into them, so the
same interval rules (:func:`harpnet_cli.core.accumulation.to_interval_series`) and the same
downscaling follow.

What a DataArray's axes mean
----------------------------
* **Space**: 1-D ``latitude``/``longitude`` (or ``lat``/``lon``) coordinates, any order and
  longitude convention, or 2-D ones over the last two dimensions.
* **Members**: a dimension ``number`` (cfgrib), ``member``, ``realization`` or ``ensemble``.
* **Time** as cfgrib writes it: ``time`` the forecast reference time (``standard_name =
  forecast_reference_time``, or any ``time`` beside a ``step``), ``step`` the lead and
  ``valid_time`` the end of the window, each a scalar or a dimension. Without a reference time,
  ``time`` (or ``valid_time``) is the end of the window.
* **Windows**: ``accumulation=`` gives their length (ending at each valid time). Without it, a
  field with a reference time is accumulated since that time, as cfgrib decodes GRIB
  accumulations (ECMWF ``tp``, GFS ``APCP`` up to 6 hours); consecutive steps are differenced.
  NCEP ``APCP`` past 6 hours is a 6-hour bucket or a running total that cfgrib does not tell
  apart, so it needs ``accumulation=``.
* **Units**: the ``units`` attribute (``kg m**-2``, ``mm``, ``m``, …, see
  :func:`harpnet_cli.units.amount_factor`), else ``units=``; never guessed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, SourceGrid
from harpnet_cli.units import ACCEPTED_TEXT, amount_factor

if TYPE_CHECKING:
    import xarray as xr

_LAT = ("latitude", "lat")
_LON = ("longitude", "lon")
_MEMBER_DIMS = ("number", "member", "realization", "ensemble")
#: GRIB paramId of precipitation in kg m-2 (GRIB2 0/1/8), what cfgrib calls GFS/GEFS ``APCP``.
_NCEP_APCP_PARAM = 228228


def dataarray_fields(da: xr.DataArray, *, accumulation: timedelta | None = None,
                     units: str | None = None) -> list[Accumulation]:
    """The precipitation fields of a DataArray (see the module docstring).

    Parameters
    ----------
    da : xarray.DataArray
        Coarse amounts: 2-D ``(y, x)`` plus optional member and time dimensions.
    accumulation : timedelta, optional
        Window length ending at each valid time.
    units : str, optional
        Units of the values when ``da`` has no ``units`` attribute.

    Returns
    -------
    list of Accumulation
        One per time step and member, ``data`` ``(ny, nx)`` float32 mm, NaN where missing.

    Raises
    ------
    InputDataError
        No coordinates, unknown units, no window, or NCEP precipitation past 6 hours without
        ``accumulation``.
    """
    where = _source(da)
    lat, lon, ydim, xdim = _space(da, where)
    factor = _factor(da, units, where)
    member_dim = next((d for d in da.dims if str(d) in _MEMBER_DIMS), None)
    others = [d for d in da.dims if d not in (ydim, xdim, member_dim)]
    if len(others) > 1:
        stacked = da.stack(_time=others)
        time_dim: Any = "_time"
    else:
        stacked = da
        time_dim = others[0] if others else None
    order = [d for d in (time_dim, member_dim, ydim, xdim) if d is not None]
    values = np.asarray(stacked.transpose(*order).values, dtype=np.float32) * np.float32(factor)
    if time_dim is None:
        values = values[None]
    if member_dim is None:
        values = values[:, None]
    ends, references = _times(stacked, time_dim, where)
    windows = _windows(da, ends, references, accumulation, where)
    members: list[int | None] = [None]
    if member_dim is not None:
        members = [int(m) for m in np.asarray(da[member_dim].values)] if member_dim in da.coords else list(
            range(da.sizes[member_dim]))
    grid = SourceGrid(lat=lat, lon=lon, description="array" if lat.ndim == 1 else "curvilinear array")
    label = str(da.name or "array")
    return [Accumulation(data=np.ascontiguousarray(values[t, m]), grid=grid, start=start, end=end, path=where,
                         reference_time=references[t], member=member, label=label)
            for t, (start, end) in enumerate(windows) for m, member in enumerate(members)]


def _source(da: xr.DataArray) -> Path:
    """What to call the array in messages and provenance: its source file's name, else its name."""
    source = da.encoding.get("source")
    return Path(Path(str(source)).name) if source else Path(str(da.name or "array"))


def _space(da: xr.DataArray, where: Path) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """Latitudes, longitudes and the ``(y, x)`` dimensions."""
    lat_name = next((n for n in _LAT if n in da.coords), None)
    lon_name = next((n for n in _LON if n in da.coords), None)
    if lat_name is None or lon_name is None:
        raise InputDataError(where, f"no latitude/longitude coordinates (have {', '.join(map(str, da.coords))})")
    lat, lon = da[lat_name], da[lon_name]
    if lat.ndim == 1 and lon.ndim == 1:
        return (np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64), lat.dims[0],
                lon.dims[0])
    if lat.ndim == 2 and lat.dims == lon.dims:
        return (np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64), lat.dims[0],
                lat.dims[1])
    raise InputDataError(where, f"latitude {lat.dims} and longitude {lon.dims} are not 1-D axes or one 2-D grid")


def _factor(da: xr.DataArray, units: str | None, where: Path) -> float:
    """Factor to mm from the ``units`` attribute (or ``units=``)."""
    text = da.attrs.get("units", units)
    if text is None:
        raise InputDataError(where, f"no units attribute; pass units= ({ACCEPTED_TEXT})")
    factor = amount_factor(str(text))
    if factor is None:
        raise InputDataError(where, f"units {text!r}; expected {ACCEPTED_TEXT}")
    return factor


def _datetimes(values: Any) -> list[datetime]:
    """numpy datetime64 values as naive datetimes (to the second)."""
    seconds = np.atleast_1d(np.asarray(values, dtype="datetime64[s]")).astype(np.int64)
    return [datetime(1970, 1, 1) + timedelta(seconds=int(s)) for s in seconds]


def _times(da: xr.DataArray, time_dim: Any, where: Path) -> tuple[list[datetime], list[datetime | None]]:
    """Window ends and reference times of each step along ``time_dim`` (one step when None)."""
    n = 1 if time_dim is None else da.sizes[time_dim]

    def along(name: str) -> list[datetime] | None:
        if name not in da.coords:
            return None
        coord = da[name]
        if coord.ndim == 0:
            return _datetimes(coord.values) * n
        if time_dim is not None and coord.dims == (time_dim,):
            return _datetimes(coord.values)
        return None

    time = da.coords.get("time")
    is_reference = "step" in da.coords or (time is not None and
                                            time.attrs.get("standard_name") == "forecast_reference_time")
    references: list[datetime | None] = [None] * n
    if is_reference and along("time") is not None:
        references = list(along("time") or [])
    ends = along("valid_time")
    steps = da.coords.get("step")
    if ends is None and steps is not None and all(r is not None for r in references):
        seconds = np.atleast_1d(np.asarray(steps.values, dtype="timedelta64[s]").astype(np.int64))
        if seconds.size in (1, n):
            seconds = np.broadcast_to(seconds, (n,))
            ends = [r + timedelta(seconds=int(s)) for r, s in zip(references, seconds, strict=True) if r is not None]
    if ends is None and not is_reference:
        ends = along("time")
    if ends is None or len(ends) != n:
        raise InputDataError(where, "no valid time: give the array a 'valid_time' coordinate, or 'time' as the "
                                    "end of each window")
    return ends, references


def _windows(da: xr.DataArray, ends: list[datetime], references: list[datetime | None],
             accumulation: timedelta | None, where: Path) -> list[tuple[datetime, datetime]]:
    """``(start, end)`` of each step (see the module docstring)."""
    if accumulation is not None:
        return [(end - accumulation, end) for end in ends]
    if all(r is not None for r in references):
        starts = [r for r in references if r is not None]
        ncep = da.attrs.get("GRIB_paramId") == _NCEP_APCP_PARAM or da.attrs.get("GRIB_centre") == "kwbc"
        if ncep and any(end - start > timedelta(hours=6) for start, end in zip(starts, ends, strict=True)):
            raise InputDataError(where, "NCEP precipitation past 6 hours: cfgrib does not say whether it is a "
                                        "6-hour bucket or a running total; pass accumulation= (the window length)")
        return list(zip(starts, ends, strict=True))
    raise InputDataError(where, "no accumulation window: pass accumulation= (e.g. '3h'), or give the array its "
                                "forecast reference time ('time' with a 'step')")


def array_dataarray(values: np.ndarray, *, lat: np.ndarray, lon: np.ndarray, time: Any,
                    reference_time: datetime | None = None, units: str = "kg m-2",
                    name: str = "precipitation") -> xr.DataArray:
    """A numpy array of amounts with an explicit grid, as a DataArray :func:`dataarray_fields` reads.

    Parameters
    ----------
    values : numpy.ndarray
        ``(ny, nx)``, ``(T, ny, nx)`` or ``(M, T, ny, nx)`` amounts in ``units``.
    lat, lon : numpy.ndarray
        ``(ny,)`` and ``(nx,)`` axes, or both ``(ny, nx)``.
    time : datetime or sequence of datetime
        End of each window (``T`` of them; one for a 2-D array).
    reference_time : datetime, optional
        Forecast reference time; without ``accumulation=`` the windows start there.
    units : str
        Units of ``values``.
    name : str
        The array's name in messages.

    Returns
    -------
    xarray.DataArray
    """
    import xarray as xr

    arr = np.asarray(values)
    times = [time] if isinstance(time, datetime) else list(time)
    lat, lon = np.asarray(lat), np.asarray(lon)
    space: tuple[str, str] = ("y", "x") if lat.ndim == 2 else ("latitude", "longitude")
    dims: tuple[str, ...] = {2: space, 3: ("valid_time", *space), 4: ("number", "valid_time", *space)}.get(
        arr.ndim, ())
    if not dims:
        raise InputDataError(Path(name), f"array of {arr.ndim} dimensions; want (ny, nx), (T, ny, nx) or "
                                         "(M, T, ny, nx)")
    coords: dict[str, Any] = {}
    if lat.ndim == 2:
        coords["latitude"], coords["longitude"] = (space, lat), (space, lon)
    else:
        coords["latitude"], coords["longitude"] = lat, lon
    stamps = np.array(times, dtype="datetime64[s]")
    coords["valid_time"] = ("valid_time", stamps) if arr.ndim > 2 else stamps[0]
    if reference_time is not None:
        coords["time"] = ((), np.datetime64(reference_time, "s"), {"standard_name": "forecast_reference_time"})
    return xr.DataArray(arr, dims=dims, coords=coords, name=name, attrs={"units": units})


def as_dataarray(data: Any, *, lat: Any = None, lon: Any = None, time: Any = None,
                 reference_time: datetime | None = None, units: str | None = None) -> xr.DataArray:
    """``data`` itself when it is a DataArray, else a numpy array with its grid (:func:`array_dataarray`).

    Raises
    ------
    TypeError
        Neither a DataArray nor a numpy array, or a numpy array without ``lat``, ``lon`` and ``time``.
    """
    import xarray as xr

    if isinstance(data, xr.DataArray):
        return data
    if isinstance(data, np.ndarray):
        if lat is None or lon is None or time is None:
            raise TypeError("a numpy array needs lat=, lon= and time= (the end of each window)")
        return array_dataarray(data, lat=lat, lon=lon, time=time, reference_time=reference_time,
                               units=units or "kg m-2")
    raise TypeError(f"data must be an xarray.DataArray or a numpy array, not {type(data).__name__}")


def output_variable(ds: xr.Dataset, name: str) -> xr.DataArray:
    """One variable of an output dataset as ``xr.open_dataset`` shows the file: times decoded,
    with the file's global attributes and its auxiliary coordinates (forecast reference time and
    period) attached.

    Parameters
    ----------
    ds : xarray.Dataset
        What the NetCDF writer writes (:func:`harpnet_cli.io.netcdf_writer.dataset_for`).
    name : str
        The variable.

    Returns
    -------
    xarray.DataArray
    """
    import xarray as xr

    auxiliary = [c for c in ("forecast_reference_time", "forecast_period") if c in ds]
    decoded = xr.decode_cf(ds.set_coords(auxiliary))  # times as xr.open_dataset shows the file's
    out = decoded[name]
    attrs = {**ds.attrs, **out.attrs}
    attrs.pop("coordinates", None)  # they are coordinates of the DataArray now
    out.attrs = attrs
    return out
