"""Metadata-only scans of precipitation files, and loading one field or one window at a time.

``prepare`` must stream: :func:`scan_file` reads only headers, times and attributes (GRIB keys
without decoding values, WRF ``Times``/``XTIME`` and the corners of ``XLAT``/``XLONG``, the time
coordinate of a CF NetCDF file or a Zarr store) and returns one small :class:`FieldRef` per
field. :func:`~harpnet_cli.core.windows.plan_windows` turns the refs into units, and a worker
computes a unit with :func:`~harpnet_cli.core.windows.compute_window`, which reads just the
fields of that window with :func:`load_field`. Memory is then bounded by one window, whatever the
number of files.

Formats (told from the content, as :func:`harpnet_cli.io.readers.detect_format` does):

* ``grib``: GRIB1/GRIB2 precipitation messages as :mod:`harpnet_cli.io.grib` selects them (APCP,
  ECMWF ``tp``, MRMS QPE with −3 and 9999 → NaN); the locator is the message's byte offset.
* ``wrf``: WRF/CONUS404 ``wrfout`` files. ``PREC_ACC_NC`` (+ ``PREC_ACC_C``) is an ``interval``
  amount over ``PREC_ACC_DT`` (1 hour by default) ending at each time; otherwise
  ``RAINNC + RAINC (+ RAINSH)`` are ``running`` totals since ``SIMULATION_START_DATE`` (since the
  file's first time, subtracted at load, when the attribute is absent). Moving nests and times
  that do not increase are refused.
* ``netcdf``: CF NetCDF (AORC-like, Stage IV converted, NAM): windows from time bounds,
  ``cell_methods`` or ``accumulation=``.
* ``zarr``: a local CONUS404-like Zarr store (a directory with ``PREC_ACC_NC``, ``XLAT``,
  ``XLONG`` and a time coordinate), opened lazily with xarray: one ref per time step.

Grids are cached per grid key in the process (:data:`GRID_CACHE_SIZE` of them), so 2-D lat/lon
are read once per worker, not once per field. Every failure is an
:class:`~harpnet_cli.errors.InputDataError` naming the file, in one line.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import FieldRef, SourceGrid, clip_negatives, grid_key

if TYPE_CHECKING:
    from harpnet_cli.io.grib import _Kind

__all__ = ["FieldRef", "GRID_CACHE_SIZE", "clear_grid_cache", "load_field", "scan_file", "scan_files"]

#: Grids kept per process (a CONUS404 grid is 2 × 1367 × 1015 float64 = 22 MB).
GRID_CACHE_SIZE = 4
#: Names of a Zarr store's metadata files (v3, then v2).
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zmetadata", ".zattrs")
_WRF_NAMES = ("Times", "XTIME")

_GRIDS: OrderedDict[str, SourceGrid] = OrderedDict()
_GRIDS_LOCK = threading.Lock()


# -- public API ---------------------------------------------------------------------------------
def scan_file(path: Path | str, *, variable: str | None = None,
              accumulation: timedelta | None = None) -> list[FieldRef]:
    """List the precipitation fields of one file without reading their values.

    Parameters
    ----------
    path : Path or str
        A GRIB1/GRIB2 file, a CF or WRF NetCDF file, or a Zarr store directory.
    variable : str, optional
        Precipitation variable (NetCDF/WRF/Zarr variable name, GRIB ``shortName``).
    accumulation : timedelta, optional
        Window length for fields that do not state one (MRMS products of unknown period, CF
        files without bounds, WRF files without ``PREC_ACC_DT``).

    Returns
    -------
    list of FieldRef
        One per field (per time step, message and member), in file order.

    Raises
    ------
    InputDataError
        Missing, unreadable or truncated file; no precipitation; a moving nest; times that are
        not increasing within a WRF file.
    """
    path = Path(path)
    kind = _detect(path)
    with _one_line(path, kind):
        return _SCANNERS[kind](path, variable, accumulation)


def scan_files(paths: Sequence[Path | str], *, variable: str | None = None,
               accumulation: timedelta | None = None) -> list[FieldRef]:
    """:func:`scan_file` for every path, concatenated in the given order."""
    refs: list[FieldRef] = []
    for path in paths:
        refs += scan_file(path, variable=variable, accumulation=accumulation)
    return refs


def load_field(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Read exactly one field.

    Parameters
    ----------
    ref : FieldRef
        As :func:`scan_file` returned it.

    Returns
    -------
    data : numpy.ndarray
        ``(ny, nx)`` float32 mm, NaN where missing. Interval amounts have negative packing noise
        clipped to 0; running totals are returned as stored (or since the file's first time).
    grid : SourceGrid
        1-D axes for regular lat/lon grids, 2-D ``(ny, nx)`` lat/lon otherwise; shared between
        fields with the same grid key.

    Raises
    ------
    InputDataError
        The file changed or cannot be read.
    """
    with _one_line(ref.path, ref.format):
        data, grid = _LOADERS[ref.format](ref)
    if data.shape != grid.shape:
        raise InputDataError(ref.path, f"field {ref.describe()} is {data.shape[0]}x{data.shape[1]} but its grid "
                                       f"{ref.grid!r} is {grid.shape[0]}x{grid.shape[1]}")
    return data, grid


def clear_grid_cache() -> None:
    """Forget the cached grids (tests; or a worker that moves on to another data set)."""
    with _GRIDS_LOCK:
        _GRIDS.clear()


# -- dispatch and errors ------------------------------------------------------------------------
def _detect(path: Path) -> str:
    """``"zarr"`` for a store directory, else the format :func:`detect_format` tells from the content."""
    from harpnet_cli.io.readers import detect_format

    if path.is_dir():
        if any((path / marker).exists() for marker in _ZARR_MARKERS):
            return "zarr"
        raise InputDataError(path, "is a directory but not a Zarr store (no zarr.json or .zgroup)")
    return detect_format(path)


@contextmanager
def _one_line(path: Path, kind: str) -> Iterator[None]:
    """Turn any failure of a reader library into a one-line :class:`InputDataError`."""
    try:
        yield
    except InputDataError:
        raise
    except Exception as exc:  # ecCodes, netCDF4, zarr and xarray raise many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputDataError(path, f"unreadable {kind} file: {first}") from None


def _cached_grid(key: str, build: Callable[[], SourceGrid]) -> SourceGrid:
    """The grid cached under ``key``, built (and cached, least recently used first out) when absent."""
    with _GRIDS_LOCK:
        grid = _GRIDS.get(key)
        if grid is not None:
            _GRIDS.move_to_end(key)
            return grid
    grid = build()
    with _GRIDS_LOCK:
        _GRIDS[key] = grid
        while len(_GRIDS) > GRID_CACHE_SIZE:
            _GRIDS.popitem(last=False)
    return grid


def _corner_key(lat: np.ndarray, lon: np.ndarray, shape: tuple[int, int]) -> str:
    """Grid key of a 2-D lat/lon grid from its corner coordinates ``(2, 2)`` each."""
    lon360 = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    return grid_key("2d", shape, [*np.asarray(lat, dtype=np.float64).ravel(), *lon360.ravel()])


def _check_increasing(path: Path, times: list[datetime]) -> None:
    """Refuse time stamps that repeat or go back within one file."""
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            what = "a duplicate time" if times[k] == times[k - 1] else "times that are not increasing"
            raise InputDataError(path, f"{what}: {times[k]:%Y-%m-%d %H:%M} (index {k}) follows "
                                       f"{times[k - 1]:%Y-%m-%d %H:%M}")


def _int(value: str | int | float | None) -> int:
    """A locator entry as an int (they are ints by construction)."""
    assert value is not None
    return int(value)


# -- GRIB ---------------------------------------------------------------------------------------
def _eccodes() -> Any:
    """ecCodes, imported after pyproj (see :mod:`harpnet_cli.io`)."""
    import pyproj  # noqa: F401

    # isort: split
    import eccodes

    return eccodes


def _grib_headers(path: Path, handle: BinaryIO) -> Iterator[tuple[int, int]]:
    """Yield ``(number, handle id)`` of each message, its header only (no data section)."""
    eccodes = _eccodes()
    number = 0
    while True:
        number += 1
        try:
            gid = eccodes.codes_grib_new_from_file(handle, headers_only=True)
        except eccodes.PrematureEndOfFileError:
            raise InputDataError(path, f"truncated GRIB file: message #{number} is cut short") from None
        if gid is None:
            return
        try:
            yield number, gid
        finally:
            eccodes.codes_release(gid)


def _scan_grib(path: Path, variable: str | None, accumulation: timedelta | None) -> list[FieldRef]:
    """Refs of the precipitation messages of a GRIB file, from header keys only."""
    from harpnet_cli.io import grib

    refs: list[FieldRef] = []
    seen: list[str] = []
    with open(path, "rb") as handle:
        for number, gid in _grib_headers(path, handle):
            kind = grib._precip_kind(gid)
            seen.append(grib._describe_param(gid))
            if kind is None or (variable is not None and grib._get(gid, "shortName") != variable):
                continue
            grib._units_factor(path, gid, number, kind)  # refuse unknown units now, not in a worker
            refs.append(_grib_ref(path, gid, number, kind, accumulation))
    grib.check_found(path, seen, len(refs), variable)
    return refs


def _grib_ref(path: Path, gid: int, number: int, kind: _Kind, accumulation: timedelta | None) -> FieldRef:
    """The ref of one precipitation message."""
    from harpnet_cli.io import grib

    reference = grib._reference_time(gid)
    first, last = grib._steps_minutes(gid)
    start, end = grib._window(path, gid, kind, reference, accumulation)
    running = kind.name != "mrms" and first == last > 0  # ECMWF tp: accumulated since the forecast start
    offset = int(grib._get(gid, "offset"))
    return FieldRef(path=path, format="grib", locator=(offset, number), start=start, end=end,
                    kind="running" if running else "interval", member=grib._member(gid),
                    grid=_grib_grid_key(path, gid))


def _grib_grid_key(path: Path, gid: int) -> str:
    """Grid key from the grid's type, size and geometry keys (no coordinates are computed)."""
    from harpnet_cli.io import grib

    grid_type = str(grib._get(gid, "gridType", "unknown"))
    if grid_type.startswith("reduced") or grid_type in grib._UNSUPPORTED_GRIDS or grib._get(
            gid, "alternativeRowScanning"):
        raise InputDataError(path, f"unsupported GRIB grid {grid_type!r}; regrid to a regular grid first")
    ni, nj = grib._ni_nj(gid)
    names = ("latitudeOfFirstGridPointInDegrees", "longitudeOfFirstGridPointInDegrees",
             "latitudeOfLastGridPointInDegrees", "longitudeOfLastGridPointInDegrees", "DxInMetres", "DyInMetres",
             "LaDInDegrees", "LoVInDegrees", "Latin1InDegrees", "Latin2InDegrees", "iScansNegatively",
             "jScansPositively", "jPointsAreConsecutive", "N")
    values = [grib._get(gid, name) for name in names]
    for k in (1, 3, 7):  # longitudes: one convention
        if isinstance(values[k], float):
            values[k] = values[k] % 360.0
    return grid_key(grid_type, (nj, ni), values)


def _load_grib(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Decode the one message at the ref's byte offset."""
    from harpnet_cli.io import grib

    eccodes = _eccodes()
    offset, number = _int(ref.locator[0]), _int(ref.locator[1])
    with open(ref.path, "rb") as handle:
        handle.seek(offset)
        gid = eccodes.codes_grib_new_from_file(handle)
        if gid is None:
            raise InputDataError(ref.path, f"no GRIB message #{number} at byte {offset}; has the file changed?")
        try:
            kind = grib._precip_kind(gid)
            if kind is None:
                raise InputDataError(ref.path, f"GRIB message #{number} is not precipitation; has the file changed?")
            grid = _cached_grid(ref.grid, lambda: grib._grid(ref.path, gid, {}))
            data = grib._values_2d(ref.path, gid, number, kind)
        finally:
            eccodes.codes_release(gid)
    clip_negatives(data)
    return data, grid


# -- WRF / CONUS404 NetCDF ----------------------------------------------------------------------
def _scan_wrf(path: Path, variable: str | None, accumulation: timedelta | None) -> list[FieldRef]:
    """Refs of a WRF file from ``Times``/``XTIME``, attributes and the corners of ``XLAT``/``XLONG``."""
    from harpnet_cli.io import wrf
    from harpnet_cli.io.netcdf import open_netcdf

    with open_netcdf(path) as ds:
        times = wrf._times(path, ds)
        _check_increasing(path, times)
        names = wrf._choose(path, ds, variable)
        wrf._units_check(path, ds, names)
        key, shift = _wrf_grid_key(ds)
        label = "+".join(names)
        if names[0] in wrf.INTERVAL_AMOUNTS:
            if shift > wrf.MOVING_TOLERANCE_DEG:
                raise wrf._moving_nest_error(path, shift, "its fields cannot form one series on a fixed grid")
            period = wrf._prec_acc_period(path, ds, accumulation)
            first = wrf._simulation_start_or_none(ds)
            refs = [FieldRef(path, "wrf", (label, k, -1), t - period, t, "interval", None, key)
                    for k, t in enumerate(times) if first is None or t - period >= first]
            if not refs:
                raise InputDataError(path, f"{label} has no complete window after the simulation start")
            return refs
        if shift > wrf.MOVING_TOLERANCE_DEG:
            raise wrf._moving_nest_error(path, shift, "running totals cannot be differenced")
        origin, base = wrf._simulation_start_or_none(ds), -1
        if origin is None:
            origin, base = times[0], 0  # totals are made relative to the first time at load
        if times[0] < origin:
            raise InputDataError(path, f"time {times[0]:%Y-%m-%d %H:%M} is before SIMULATION_START_DATE "
                                       f"{origin:%Y-%m-%d %H:%M}")
        return [FieldRef(path, "wrf", (label, k, base), origin, t, "running", None, key)
                for k, t in enumerate(times)]


def _wrf_grid_key(ds: Any) -> tuple[str, float]:
    """Grid key from the corners of ``XLAT``/``XLONG`` at the first time, and how far they move (degrees)."""
    lat_var, lon_var = ds.variables["XLAT"], ds.variables["XLONG"]
    ny, nx = lat_var.shape[-2:]
    rows, cols = [0, ny - 1], [0, nx - 1]
    if lat_var.ndim == 3:
        lat = np.asarray(lat_var[:, rows, cols], dtype=np.float64)
        lon = np.asarray(lon_var[:, rows, cols], dtype=np.float64)
    else:
        lat = np.asarray(lat_var[rows, cols], dtype=np.float64)[np.newaxis]
        lon = np.asarray(lon_var[rows, cols], dtype=np.float64)[np.newaxis]
    dlon = (lon - lon[0] + 180.0) % 360.0 - 180.0
    shift = float(max(np.abs(lat - lat[0]).max(initial=0.0), np.abs(dlon).max(initial=0.0)))
    return _corner_key(lat[0], lon[0], (ny, nx)), shift


def _load_wrf(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """One time of a WRF file: the interval amount, or the running total (minus the base time's)."""
    from harpnet_cli.io.netcdf import open_netcdf

    label, index, base = str(ref.locator[0]), _int(ref.locator[1]), _int(ref.locator[2])
    names = label.split("+")
    with open_netcdf(ref.path) as ds:
        data = _wrf_sum(ds, names, index)
        if base >= 0:
            data -= _wrf_sum(ds, names, base)
        grid = _cached_grid(ref.grid, lambda: _wrf_grid(ds))
    out = data.astype(np.float32)
    if ref.kind == "interval":
        clip_negatives(out)
    return out, grid


def _wrf_sum(ds: Any, names: list[str], index: int) -> np.ndarray:
    """Sum of the named variables (plus bucket counters × ``BUCKET_MM``) at one time, float64, NaN where masked."""
    from harpnet_cli.io import wrf

    counters = dict(wrf.RUNNING_TOTALS)
    bucket = float(wrf._attr(ds, "BUCKET_MM", -1.0))
    total = None
    for name in names:
        var = ds.variables[name]
        part = np.ma.filled(np.ma.asarray(var[index] if var.ndim == 3 else var[:]).astype(np.float64), np.nan)
        counter = counters.get(name)
        if bucket > 0 and counter and counter in ds.variables:
            part += bucket * np.asarray(ds.variables[counter][index], dtype=np.float64)
        total = part if total is None else total + part
    assert total is not None
    return total


def _wrf_grid(ds: Any) -> SourceGrid:
    """2-D ``XLAT``/``XLONG`` of the first time, described as :mod:`harpnet_cli.io.wrf` does."""
    from harpnet_cli.io import wrf

    lat_var, lon_var = ds.variables["XLAT"], ds.variables["XLONG"]
    lat = np.asarray(lat_var[0] if lat_var.ndim == 3 else lat_var[:], dtype=np.float64)
    lon = np.asarray(lon_var[0] if lon_var.ndim == 3 else lon_var[:], dtype=np.float64)
    return SourceGrid(lat=lat, lon=lon, description=_wrf_description(lambda n, d: wrf._attr(ds, n, d)))


def _wrf_description(attr: Callable[[str, Any], Any]) -> str:
    """``"WRF Lambert conformal 4 km"`` from the ``MAP_PROJ`` and ``DX`` attributes."""
    from harpnet_cli.io import wrf

    proj = wrf._MAP_PROJ.get(int(attr("MAP_PROJ", 0)), "WRF")
    dx = float(attr("DX", 0.0)) / 1000
    return f"WRF {proj} {dx:g} km" if dx else f"WRF {proj}"


# -- CF NetCDF ----------------------------------------------------------------------------------
def _scan_netcdf(path: Path, variable: str | None, accumulation: timedelta | None) -> list[FieldRef]:
    """Refs of a CF NetCDF file from its time coordinate, bounds and attributes."""
    from harpnet_cli.io import netcdf

    with netcdf.open_netcdf(path) as ds:
        var = netcdf._find_precip_variable(path, ds, variable)
        factor = netcdf._units_factor(path, var)
        layout = netcdf._layout(path, ds, var)
        times, bounds = netcdf._times(path, ds, var, layout)
        windows = netcdf._windows(path, var, times, bounds, accumulation)
        members = netcdf._members(ds, layout)
        key = _cf_grid_key(ds, var, layout)
        name = var.name
    time_index = [-1] if layout.time is None else list(range(len(windows)))
    return [FieldRef(path, "netcdf", (name, t, m if layout.member else -1, factor), start, end, "interval", member,
                     key)
            for t, (start, end) in zip(time_index, windows, strict=True) for m, member in enumerate(members)]


def _cf_grid_key(ds: Any, var: Any, layout: Any) -> str:
    """Grid key of a CF variable: its 1-D axes, the corners of 2-D lat/lon, or projected x/y."""
    from harpnet_cli.io import netcdf

    shape = (len(ds.dimensions[layout.y]), len(ds.dimensions[layout.x]))
    y, x = netcdf._coordinate(ds, layout.y), netcdf._coordinate(ds, layout.x)
    if y is not None and x is not None and netcdf._is_lat(y) and netcdf._is_lon(x):
        lat, lon = np.asarray(y[:], dtype=np.float64), np.mod(np.asarray(x[:], dtype=np.float64), 360.0)
        return grid_key("ll", shape, [*lat, *lon])
    aux = netcdf._aux_lat_lon(ds, var)
    if aux is not None:
        lat_var, lon_var = aux
        rows, cols = [0, lat_var.shape[0] - 1], [0, lat_var.shape[1] - 1]
        lat, lon = np.asarray(lat_var[rows, cols]), np.asarray(lon_var[rows, cols])
        if lat_var.dimensions != (layout.y, layout.x):
            lat, lon = lat.T, lon.T
        return _corner_key(lat, lon, shape)
    mapping = ds.variables.get(str(getattr(var, "grid_mapping", "")))
    attrs = [] if mapping is None else [f"{k}={mapping.getncattr(k)}" for k in sorted(mapping.ncattrs())]
    coords = [np.asarray(c[:], dtype=np.float64) for c in (y, x) if c is not None]
    return grid_key("xy", shape, [*attrs, *(v for c in coords for v in c)])


def _load_netcdf(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """One time step (and member) of a CF NetCDF variable, in mm, negatives clipped."""
    from harpnet_cli.io import netcdf

    name, t, m, factor = str(ref.locator[0]), _int(ref.locator[1]), _int(ref.locator[2]), ref.locator[3]
    with netcdf.open_netcdf(ref.path) as ds:
        var = ds.variables[name]
        layout = netcdf._layout(ref.path, ds, var)
        index = tuple(t if d == layout.time else m if d == layout.member else slice(None)
                      if d in (layout.y, layout.x) else 0 for d in var.dimensions)
        data = np.ma.filled(np.ma.asarray(var[index]).astype(np.float32), np.nan)
        if [d for d in var.dimensions if d in (layout.y, layout.x)] != [layout.y, layout.x]:
            data = np.ascontiguousarray(data.T)
        grid = _cached_grid(ref.grid, lambda: netcdf._grid(ref.path, ds, var, layout))
    data *= np.float32(factor if isinstance(factor, float) else 1.0)
    clip_negatives(data)
    return data, grid


# -- Zarr (CONUS404-like store) -----------------------------------------------------------------
#: Interval variables of a CONUS404 store, summed when present (default).
_ZARR_INTERVALS = ("PREC_ACC_NC", "PREC_ACC_C")


def _open_zarr(path: Path) -> Any:
    """The store as a lazy xarray Dataset (no dask; indexing reads only the chunks it needs)."""
    import xarray as xr

    with warnings.catch_warnings():  # a store without consolidated metadata is fine locally
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata", RuntimeWarning)
        return xr.open_dataset(path, engine="zarr", chunks=None)


def _scan_zarr(path: Path, variable: str | None, accumulation: timedelta | None) -> list[FieldRef]:
    """One ref per time step of a CONUS404-like store, from its time coordinate and attributes."""
    with _open_zarr(path) as ds:
        names = _zarr_names(path, ds, variable)
        var = ds[names[0]]
        time_dim = str(var.dims[0])
        times = _zarr_times(path, ds, time_dim)
        _check_increasing(path, times)
        period = _zarr_period(path, ds, var, accumulation)
        lat, lon = _zarr_lat_lon(path, ds)
        ny, nx = lat.shape[-2:]
        key = _corner_key(_zarr_corners(lat), _zarr_corners(lon), (ny, nx))
        if var.shape[-2:] != (ny, nx):
            raise InputDataError(path, f"{names[0]} is {var.shape[-2]}x{var.shape[-1]} but XLAT is {ny}x{nx}")
    label = "+".join(names)
    return [FieldRef(path, "zarr", (label, k, time_dim), t - period, t, "interval", None, key)
            for k, t in enumerate(times)]


def _zarr_names(path: Path, ds: Any, variable: str | None) -> list[str]:
    """The interval variables to sum, or the one asked for."""
    have = [n for n in _ZARR_INTERVALS if n in ds.data_vars]
    if variable is not None:
        if variable not in ds.data_vars:
            raise InputDataError(path, f"no variable {variable!r} in the Zarr store")
        return [variable]
    if not have:
        raise InputDataError(path, f"Zarr store without {' or '.join(_ZARR_INTERVALS)}; "
                                   f"variables: {', '.join(list(map(str, ds.data_vars))[:20])}")
    for name in have:
        units = str(ds[name].attrs.get("units", "mm")).strip().lower()
        if units not in ("mm", "kg m-2", "kg m**-2"):
            raise InputDataError(path, f"{name} has units {units!r}; expected mm")
    return have


def _zarr_times(path: Path, ds: Any, time_dim: str) -> list[datetime]:
    """Valid times along the variable's first dimension, as naive UTC datetimes."""
    coord = ds.coords.get(time_dim)
    if coord is None or not np.issubdtype(coord.dtype, np.datetime64):
        coord = next((ds[n] for n in ("time", "Time", "XTIME") if n in ds.variables and ds[n].dims == (time_dim,)
                      and np.issubdtype(ds[n].dtype, np.datetime64)), None)
    if coord is None:
        raise InputDataError(path, f"no decodable time coordinate along {time_dim!r}")
    return [v.astype("datetime64[us]").item() for v in np.asarray(coord.values)]


def _zarr_period(path: Path, ds: Any, var: Any, accumulation: timedelta | None) -> timedelta:
    """``PREC_ACC_DT`` minutes (variable or store attribute) when set, else ``accumulation``, else 1 hour."""
    minutes = float(var.attrs.get("PREC_ACC_DT", ds.attrs.get("PREC_ACC_DT", 0.0)))
    if minutes > 0:
        period = timedelta(minutes=minutes)
        if accumulation is not None and accumulation != period:
            raise InputDataError(path, f"--accumulation disagrees with PREC_ACC_DT = {minutes:g} minutes")
        return period
    return accumulation or timedelta(hours=1)


def _zarr_lat_lon(path: Path, ds: Any) -> tuple[Any, Any]:
    """The lazy ``XLAT``/``XLONG`` arrays of the store."""
    if "XLAT" not in ds.variables or "XLONG" not in ds.variables:
        raise InputDataError(path, "Zarr store without XLAT/XLONG")
    return ds["XLAT"].variable, ds["XLONG"].variable


def _zarr_corners(coord: Any) -> np.ndarray:
    """``(2, 2)`` corner values of a lazy 2-D coordinate (of its first time when it has one)."""
    first = coord[0] if coord.ndim == 3 else coord
    ny, nx = first.shape
    return np.asarray(first[[0, ny - 1], :][:, [0, nx - 1]].values, dtype=np.float64)


def _load_zarr(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """One time step of a CONUS404-like store (reads only the chunks holding it)."""
    label, index, time_dim = str(ref.locator[0]), _int(ref.locator[1]), str(ref.locator[2])
    with _open_zarr(ref.path) as ds:
        total: np.ndarray | None = None
        for name in label.split("+"):
            part = np.asarray(ds[name].isel({time_dim: index}).values, dtype=np.float32)
            total = part if total is None else total + part
        assert total is not None
        grid = _cached_grid(ref.grid, lambda: _zarr_grid(ref.path, ds))
    clip_negatives(total)
    return total, grid


def _zarr_grid(path: Path, ds: Any) -> SourceGrid:
    """2-D ``XLAT``/``XLONG`` (of the first time when they have one)."""
    lat, lon = _zarr_lat_lon(path, ds)
    lat2 = np.asarray(lat.values if lat.ndim == 2 else lat[0].values, dtype=np.float64)
    lon2 = np.asarray(lon.values if lon.ndim == 2 else lon[0].values, dtype=np.float64)
    return SourceGrid(lat=lat2, lon=lon2, description=_wrf_description(lambda n, d: ds.attrs.get(n, d)))


_SCANNERS: dict[str, Callable[[Path, str | None, timedelta | None], list[FieldRef]]] = {
    "grib": _scan_grib, "wrf": _scan_wrf, "netcdf": _scan_netcdf, "zarr": _scan_zarr}
_LOADERS: dict[str, Callable[[FieldRef], tuple[np.ndarray, SourceGrid]]] = {
    "grib": _load_grib, "wrf": _load_wrf, "netcdf": _load_netcdf, "zarr": _load_zarr}
