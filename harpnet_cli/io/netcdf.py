"""Read precipitation from CF NetCDF files (reader only): :func:`read`, :func:`scan`, :func:`load`.

The precipitation variable is the one named with ``variable=``, else the one whose
``standard_name`` is an amount (``precipitation_amount``, ``lwe_thickness_of_precipitation_amount``,
``thickness_of_rainfall_amount``, …), else one with a usual name (``tp``, ``APCP``,
``Total_precipitation_*``, …). Rates (``kg m-2 s-1``, ``mm/h``, ``precipitation_flux``) are refused:
HARPNET needs amounts over a known window.

The window of each time step comes from the time bounds (``bounds`` attribute of the time
coordinate), else from ``cell_methods`` (``time: sum (interval: 3 hours)``), else from
``accumulation=``; the time stamp is the end of the window. Coordinates: 1-D CF ``lat``/``lon``,
2-D auxiliary ``lat``/``lon``, or projected ``x``/``y`` with a ``grid_mapping`` (2-D lat/lon from
pyproj).

:func:`read` reads every field at once; :func:`scan` reads only the time coordinate, bounds and
attributes and returns one :class:`~harpnet_cli.fields.FieldRef` per time step (and member), whose
field :func:`load` reads alone (AORC-like files, Stage IV converted, NAM). A file is recognised by
its NetCDF3/NetCDF4 magic (:func:`sniff`), which :mod:`harpnet_cli.io.wrf` shares.

Values: netCDF4 masks ``_FillValue``, ``missing_value`` and the default fill; the fill values of
:mod:`harpnet_cli.plausibility` (1e20, 9999, −9999, …, on the values as stored, before the unit
conversion) are missing too and counted. Negative packing noise is clipped to 0, anything below
it refused. Coordinates that are not finite, or latitudes beyond ±90°, are refused in one line.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid, corner_key, grid_key
from harpnet_cli.io.gridcache import cached_grid
from harpnet_cli.plausibility import FillCount, clip_noise, mask_fill
from harpnet_cli.units import ACCEPTED_TEXT, amount_factor

#: gzip-compressed files are read too (decompressed in memory; see :func:`open_netcdf`).
READS_GZIP = True

#: First bytes of NetCDF3 (classic, 64-bit offset, 64-bit data) and NetCDF4/HDF5 files.
NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
_CLASSIC_MAGIC = (b"CDF\x01", b"CDF\x02")

#: CF standard names of total precipitation amounts, preferred when several variables qualify.
AMOUNT_STANDARD_NAMES = ("precipitation_amount", "lwe_thickness_of_precipitation_amount",
                         "thickness_of_rainfall_amount")
_AMOUNT_STANDARD_NAME = re.compile(
    r"^(lwe_)?(thickness_of_)?\w*(precipitation|rainfall)_amount$|^lwe_thickness_of_\w*precipitation\w*$")
_RATE_STANDARD_NAME = re.compile(r"(precipitation|rainfall)\w*_(flux|rate)$")
_USUAL_NAMES = ("tp", "apcp", "precip", "precipitation", "prcp", "rain", "rainfall", "qpe", "tot_prec")
_USUAL_PREFIXES = ("total_precipitation", "apcp_", "precipitation_amount")
_MEMBER_DIMS = ("member", "members", "realization", "number", "ensemble", "ens")

_RATE_UNITS = re.compile(r"(s|h|hr|hour|d|day)-1\b|/\s*(s|h|hr|hour|d|day)\b")
_INTERVAL = re.compile(r"time\s*:\s*sum\s*\(\s*interval\s*:\s*([\d.]+)\s*([a-z]+)", re.IGNORECASE)
_SECONDS_PER = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60,
                "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}


@dataclass
class _Layout:
    """Where the axes of the precipitation variable are: dimension names (None when absent)."""

    y: str
    x: str
    time: str | None
    member: str | None


def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read every time step of the precipitation variable of a CF NetCDF file.

    Parameters
    ----------
    path : Path
        NetCDF3 or NetCDF4 file.
    variable : str, optional
        Name of the precipitation variable; found by ``standard_name`` or usual names otherwise.
    accumulation : timedelta, optional
        Window length ending at each time stamp, for files without time bounds or a
        ``cell_methods`` interval. Must agree with the file when it has them.

    Returns
    -------
    list of Accumulation
        One per time step (and member), ``data`` ``(ny, nx)`` float32 mm, NaN where missing.

    Raises
    ------
    InputDataError
        No or several precipitation variables, a rate, unknown units, no coordinates or no
        accumulation period.
    """
    with open_netcdf(path) as dataset:
        var = _find_precip_variable(path, dataset, variable)
        factor = _units_factor(path, var)
        layout = _layout(path, dataset, var)
        grid = _grid(path, dataset, var, layout)
        times, bounds = _times(path, dataset, var, layout)
        references = _reference_times(path, dataset, var, layout, len(times))
        windows = _windows(path, var, times, bounds, accumulation, references)
        members = _members(dataset, layout)
        data = _data(var, layout)
        own = _own_fill_values(var)
        name = var.name
    return _accumulations(path, name, data, factor, own, grid, windows, references, members)


def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
    """List the fields of the precipitation variable from its time coordinate, bounds and attributes.

    Parameters
    ----------
    path : Path
        NetCDF3 or NetCDF4 file.
    variable, accumulation
        As for :func:`read`.

    Returns
    -------
    list of FieldRef
        One per time step and member, ``format="netcdf"``, ``kind="interval"``; the locator is
        ``(variable, time index, member index or -1, factor to mm)``.

    Raises
    ------
    InputDataError
        As :func:`read`.
    """
    with open_netcdf(path) as ds:
        var = _find_precip_variable(path, ds, variable)
        factor = _units_factor(path, var)
        layout = _layout(path, ds, var)
        times, bounds = _times(path, ds, var, layout)
        references = _reference_times(path, ds, var, layout, len(times))
        windows = _windows(path, var, times, bounds, accumulation, references)
        members = _members(ds, layout)
        key = _grid_key(ds, var, layout)
        name = var.name
    time_index = [-1] if layout.time is None else list(range(len(windows)))
    return [FieldRef(path, "netcdf", (name, t, m if layout.member else -1, factor), start, end, "interval", member,
                     key, reference)
            for t, (start, end), reference in zip(time_index, windows, references, strict=True)
            for m, member in enumerate(members)]


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Read one time step (and member) of a CF NetCDF variable (see :func:`load_counted`)."""
    data, grid, _ = load_counted(ref)
    return data, grid


def load_counted(ref: FieldRef) -> tuple[np.ndarray, SourceGrid, FillCount]:
    """Read one time step (and member) of a CF NetCDF variable, in mm, negatives clipped.

    Parameters
    ----------
    ref : FieldRef
        As :func:`scan` returned it.

    Returns
    -------
    data : numpy.ndarray
        ``(ny, nx)`` float32 mm, NaN where missing, ``>= 0``.
    grid : SourceGrid
        Shared by the fields with the same grid key (:mod:`harpnet_cli.io.gridcache`).
    fill : FillCount
        The cells set missing because they held fill values (before the unit conversion).
    """
    name, t, m, factor = str(ref.locator[0]), int(ref.locator[1]), int(ref.locator[2]), ref.locator[3]
    with open_netcdf(ref.path) as ds:
        var = ds.variables[name]
        layout = _layout(ref.path, ds, var)
        index = tuple(t if d == layout.time else m if d == layout.member else slice(None)
                      if d in (layout.y, layout.x) else 0 for d in var.dimensions)
        data = np.ma.filled(np.ma.asarray(var[index]).astype(np.float32), np.nan)
        if [d for d in var.dimensions if d in (layout.y, layout.x)] != [layout.y, layout.x]:
            data = np.ascontiguousarray(data.T)
        fill = mask_fill(data, _own_fill_values(var))
        grid = cached_grid(ref.grid, lambda: _grid(ref.path, ds, var, layout))
    data *= np.float32(factor if isinstance(factor, float) else 1.0)
    clip_noise(data, ref.path, f"{name} {ref.describe()}")
    return data, grid, fill


def sniff(path: Path, head: bytes) -> bool:
    """True for a NetCDF3 or NetCDF4 file (WRF files too: the registry asks :mod:`~harpnet_cli.io.wrf` first).

    Parameters
    ----------
    path : Path
        The file.
    head : bytes
        Its first bytes (``b""`` for a directory).

    Raises
    ------
    InputDataError
        A NetCDF3 file cut short (see :func:`check_complete`).
    """
    if not head.startswith(NETCDF_MAGIC):
        return False
    check_complete(path, head)
    return True


def check_complete(path: Path, head: bytes) -> None:
    """Refuse a truncated NetCDF3 file (the netCDF C library reads missing data as zeros).

    Parameters
    ----------
    path : Path
        The file.
    head : bytes
        Its first bytes; files that are not NetCDF3 pass unchecked.

    Raises
    ------
    InputDataError
        When the data end before the header says they should.
    """
    if not head.startswith(_CLASSIC_MAGIC):
        return
    import io

    import scipy.io

    from harpnet_cli.io.compression import gunzip, is_gzip

    with open(path, "rb") as raw:
        compressed = is_gzip(raw.read(2))
    with warnings.catch_warnings(), (io.BytesIO(gunzip(path)) if compressed else open(path, "rb")) as handle:
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's complaint about mapped arrays on close
        try:
            # maps (or, decompressed, reads) every variable: fails when the data are cut short
            mapped = scipy.io.netcdf_file(handle, mmap=not compressed)
            mapped.variables.clear()
            mapped.close()
            complete = True
        except (ValueError, TypeError, OSError):
            complete = False
    if not complete:
        raise InputDataError(path, "truncated or corrupt NetCDF3 file: its data ends before the header "
                                   "says it should")


def open_netcdf(path: Path) -> Any:
    """Open a file with netCDF4 (a context manager), turning failures into one line.

    A gzip-compressed file (``.nc.gz``, as Delft-FEWS exports are shipped) is decompressed into
    memory and opened from there.
    """
    import netCDF4

    from harpnet_cli.io.compression import gunzip, is_gzip

    try:
        with open(path, "rb") as handle:
            compressed = is_gzip(handle.read(2))
        if compressed:
            return netCDF4.Dataset(str(path), memory=gunzip(path))
        return netCDF4.Dataset(path)
    except InputDataError:
        raise
    except (OSError, RuntimeError, ValueError, UnicodeError) as exc:  # netCDF/HDF5 errors, damaged attributes
        reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputDataError(path, f"cannot open as NetCDF ({reason}); truncated or corrupt?") from None


# -- the variable -------------------------------------------------------------------------------
def _find_precip_variable(path: Path, dataset: Any, variable: str | None) -> Any:
    """The precipitation variable of an open ``netCDF4.Dataset``.

    Raises
    ------
    InputDataError
        When ``variable`` is absent, or no single amount variable can be found.
    """
    names = ", ".join(list(dataset.variables)[:20])
    if variable is not None:
        if variable not in dataset.variables:
            raise InputDataError(path, f"no variable {variable!r}; variables: {names}")
        return dataset.variables[variable]
    candidates = [v for v in dataset.variables.values() if v.ndim >= 2 and _looks_like_precip(v)]
    amounts = [v for v in candidates if not _is_rate(v)]
    canonical = [v for v in amounts if getattr(v, "standard_name", "") in AMOUNT_STANDARD_NAMES]
    if len(amounts) > 1 and len(canonical) == 1:
        return canonical[0]
    if len(amounts) == 1:
        return amounts[0]
    if len(amounts) > 1:
        listed = ", ".join(v.name for v in amounts)
        raise InputDataError(path, f"several precipitation variables ({listed}); choose one with --variable")
    if candidates:
        return candidates[0]  # a rate: units_factor refuses it with the reason
    raise InputDataError(path, f"no precipitation variable (no standard_name precipitation_amount or "
                               f"similar); variables: {names}; name one with --variable")


def _looks_like_precip(var: Any) -> bool:
    """True for a variable that names or describes precipitation (amount or rate)."""
    standard = str(getattr(var, "standard_name", ""))
    if _AMOUNT_STANDARD_NAME.search(standard) or _RATE_STANDARD_NAME.search(standard):
        return True
    name = var.name.lower()
    if name in _USUAL_NAMES or name.startswith(_USUAL_PREFIXES):
        return True
    grib = getattr(var, "Grib2_Parameter", None)
    return grib is not None and list(np.atleast_1d(grib)) == [0, 1, 8]


def _normalise_units(units: str) -> str:
    """``"kg.m**-2"`` → ``"kg m-2"``: lower case, exponent markers and dots dropped."""
    text = units.strip().lower().replace("**", "").replace("^", "").replace(".", " ")
    return re.sub(r"\s+", " ", text)


def _is_rate(var: Any) -> bool:
    """True for a precipitation rate (per-time units or a flux/rate standard name)."""
    units = _normalise_units(str(getattr(var, "units", "")))
    standard = str(getattr(var, "standard_name", ""))
    return bool(_RATE_UNITS.search(units) or _RATE_STANDARD_NAME.search(standard))


def _units_factor(path: Path, var: Any) -> float:
    """Factor turning the variable's values into mm; rates and unknown units are refused."""
    units = getattr(var, "units", None)
    if units is None:
        raise InputDataError(path, f"variable {var.name!r} has no units; expected {ACCEPTED_TEXT}")
    if _is_rate(var):
        raise InputDataError(path, f"variable {var.name!r} is a precipitation rate (units {units!r}), "
                                   "not an accumulated amount; convert it to amounts first")
    dataset = var.group()
    producer = " ".join(str(getattr(dataset, name, "")) for name in ("institution", "source"))
    factor = amount_factor(str(units), producer)
    if factor is None:
        raise InputDataError(path, f"variable {var.name!r} has units {units!r}; expected {ACCEPTED_TEXT}")
    return factor


# -- axes ---------------------------------------------------------------------------------------
def _is_lat(var: Any) -> bool:
    """True for a latitude coordinate (by standard_name, units or name)."""
    return (getattr(var, "standard_name", "") == "latitude"
            or str(getattr(var, "units", "")).lower() in ("degrees_north", "degree_north", "degrees_n")
            or var.name.lower() in ("lat", "latitude"))


def _is_lon(var: Any) -> bool:
    """True for a longitude coordinate (by standard_name, units or name)."""
    return (getattr(var, "standard_name", "") == "longitude"
            or str(getattr(var, "units", "")).lower() in ("degrees_east", "degree_east", "degrees_e")
            or var.name.lower() in ("lon", "longitude"))


def _is_time(var: Any) -> bool:
    """True for a time coordinate (``units`` of the form ``"<unit> since <date>"``)."""
    return " since " in str(getattr(var, "units", "")).lower() or getattr(var, "axis", "") == "T"


def _coordinate(dataset: Any, dim: str) -> Any | None:
    """The coordinate variable of a dimension, if there is one."""
    var = dataset.variables.get(dim)
    return var if var is not None and var.dimensions == (dim,) else None


def _layout(path: Path, dataset: Any, var: Any) -> _Layout:
    """Name the y, x, time and member dimensions of the variable."""
    y, x = _horizontal_dims(path, dataset, var)
    time = member = None
    for dim in var.dimensions:
        coord = _coordinate(dataset, dim)
        if dim in (y, x):
            continue
        if coord is not None and (_is_time(coord) or getattr(coord, "standard_name", "") == "forecast_period"):
            time = dim  # a cfgrib/xarray 'step' (forecast_period) axis is the time axis
        elif dim.lower() in _MEMBER_DIMS or getattr(coord, "standard_name", "") == "realization":
            member = dim
        elif len(dataset.dimensions[dim]) != 1:
            raise InputDataError(path, f"variable {var.name!r} has an unexpected dimension {dim!r} "
                                       f"of size {len(dataset.dimensions[dim])}")
    return _Layout(y=y, x=x, time=time, member=member)


def _horizontal_dims(path: Path, dataset: Any, var: Any) -> tuple[str, str]:
    """``(y, x)`` dimension names: of 1-D lat/lon, of 2-D auxiliary lat/lon, or of projected x/y."""
    coords = {dim: _coordinate(dataset, dim) for dim in var.dimensions}
    lat = [d for d, c in coords.items() if c is not None and _is_lat(c)]
    lon = [d for d, c in coords.items() if c is not None and _is_lon(c)]
    if lat and lon:
        return lat[0], lon[0]
    aux = _aux_lat_lon(dataset, var)
    if aux is not None:
        return aux[0].dimensions[0], aux[0].dimensions[1]
    ydim = [d for d, c in coords.items() if c is not None and _axis(c) == "Y"]
    xdim = [d for d, c in coords.items() if c is not None and _axis(c) == "X"]
    if ydim and xdim:
        return ydim[0], xdim[0]
    raise InputDataError(path, f"variable {var.name!r} has no lat/lon or projected x/y coordinates")


def _axis(var: Any) -> str:
    """``"X"``/``"Y"`` for projection coordinates, else ``""``."""
    standard = getattr(var, "standard_name", "")
    if standard in ("projection_x_coordinate", "grid_longitude") or getattr(var, "axis", "") == "X":
        return "X"
    if standard in ("projection_y_coordinate", "grid_latitude") or getattr(var, "axis", "") == "Y":
        return "Y"
    return ""


def _coordinates_first(dataset: Any, var: Any) -> list[Any]:
    """All variables, those named in the ``coordinates`` attribute of ``var`` first."""
    names = [n for n in str(getattr(var, "coordinates", "")).split() if n in dataset.variables]
    return [dataset.variables[n] for n in names] + [
        v for name, v in dataset.variables.items() if name not in names]


def _aux_lat_lon(dataset: Any, var: Any) -> tuple[Any, Any] | None:
    """2-D auxiliary latitude/longitude variables over the variable's last two dimensions."""
    dims = set(var.dimensions)
    two_d = [v for v in _coordinates_first(dataset, var) if v.ndim == 2 and set(v.dimensions) <= dims]
    lat = next((v for v in two_d if _is_lat(v)), None)
    lon = next((v for v in two_d if _is_lon(v) and lat is not None and v.dimensions == lat.dimensions), None)
    return None if lat is None or lon is None else (lat, lon)


# -- grid ---------------------------------------------------------------------------------------
def _grid_key(ds: Any, var: Any, layout: _Layout) -> str:
    """Grid key of a CF variable: its 1-D axes, the corners of 2-D lat/lon, or projected x/y."""
    shape = (len(ds.dimensions[layout.y]), len(ds.dimensions[layout.x]))
    y, x = _coordinate(ds, layout.y), _coordinate(ds, layout.x)
    if y is not None and x is not None and _is_lat(y) and _is_lon(x):
        lat, lon = _coordinate_values(y), _coordinate_values(x)
        check_coordinates(Path(ds.filepath()), lat, lon)
        return grid_key("ll", shape, [*lat, *np.mod(lon, 360.0)])
    aux = _aux_lat_lon(ds, var)
    if aux is not None:
        lat_var, lon_var = aux
        rows, cols = [0, lat_var.shape[0] - 1], [0, lat_var.shape[1] - 1]
        lat, lon = np.asarray(lat_var[rows, cols]), np.asarray(lon_var[rows, cols])
        if lat_var.dimensions != (layout.y, layout.x):
            lat, lon = lat.T, lon.T
        return corner_key(lat, lon, shape)
    mapping = ds.variables.get(str(getattr(var, "grid_mapping", "")))
    attrs = [] if mapping is None else [f"{k}={mapping.getncattr(k)}" for k in sorted(mapping.ncattrs())]
    coords = [np.asarray(c[:], dtype=np.float64) for c in (y, x) if c is not None]
    return grid_key("xy", shape, [*attrs, *(v for c in coords for v in c)])


def _grid(path: Path, dataset: Any, var: Any, layout: _Layout) -> SourceGrid:
    """The variable's grid: 1-D axes, 2-D auxiliary coordinates or projected x/y."""
    y, x = _coordinate(dataset, layout.y), _coordinate(dataset, layout.x)
    if y is not None and x is not None and _is_lat(y) and _is_lon(x):
        lat, lon = _coordinate_values(y), _coordinate_values(x)
        check_coordinates(path, lat, lon)
        step = float(np.abs(np.diff(lat)).mean()) if lat.size > 1 else 0.0
        return SourceGrid(lat=lat, lon=lon, description=f"regular {step:.4g}° lat/lon")
    aux = _aux_lat_lon(dataset, var)
    if aux is not None:
        lat2, lon2 = (_coordinate_values(v) for v in aux)
        check_coordinates(path, lat2, lon2)
        if aux[0].dimensions != (layout.y, layout.x):
            lat2, lon2 = lat2.T, lon2.T
        return SourceGrid(lat=lat2, lon=lon2, description="curvilinear (2-D lat/lon)")
    grid = _projected_grid(path, dataset, var, x, y)
    check_coordinates(path, grid.lat, grid.lon)
    return grid


def _coordinate_values(var: Any) -> np.ndarray:
    """A coordinate variable as float64, NaN where masked."""
    return np.ma.filled(np.ma.asarray(var[:]).astype(np.float64), np.nan)


def check_coordinates(path: Path, lat: np.ndarray, lon: np.ndarray) -> None:
    """Refuse latitudes or longitudes that are NaN, masked or infinite, or latitudes beyond ±90°.

    Parameters
    ----------
    path : Path
        The file, named in the error.
    lat, lon : numpy.ndarray
        Coordinates in degrees (any shape).

    Raises
    ------
    InputDataError
        When one is not a position on the globe.
    """
    for name, values in (("latitude", lat), ("longitude", lon)):
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise InputDataError(path, f"{bad} {name} coordinate value(s) are missing, NaN or infinite")
    with np.errstate(invalid="ignore"):
        beyond = int((np.abs(lat) > 90.0 + 1e-6).sum())
    if beyond:
        raise InputDataError(path, f"{beyond} latitude value(s) beyond ±90° (largest {float(np.abs(lat).max()):g})")


def _projected_grid(path: Path, dataset: Any, var: Any, x: Any, y: Any) -> SourceGrid:
    """2-D lat/lon of a projected grid, from its ``grid_mapping`` with pyproj."""
    import pyproj

    mapping_name = getattr(var, "grid_mapping", None)
    if mapping_name is None or mapping_name not in dataset.variables:
        raise InputDataError(path, f"variable {var.name!r} is on projected x/y without a grid_mapping")
    mapping = dataset.variables[mapping_name]
    attrs = {k: mapping.getncattr(k) for k in mapping.ncattrs()}
    try:
        crs = pyproj.CRS.from_cf(attrs)
    except pyproj.exceptions.CRSError as exc:
        raise InputDataError(path, f"grid_mapping {mapping_name!r} not understood ({exc})") from None
    xs = np.asarray(x[:], dtype=np.float64) * _metres(path, x)
    ys = np.asarray(y[:], dtype=np.float64) * _metres(path, y)
    xx, yy = np.meshgrid(xs, ys)
    to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    spacing = abs(xs[1] - xs[0]) / 1000 if xs.size > 1 else 0.0
    name = str(attrs.get("grid_mapping_name", "projected")).replace("_", " ")
    return SourceGrid(lat=np.asarray(lat), lon=np.asarray(lon), description=f"{name} {spacing:.4g} km")


def _metres(path: Path, coord: Any) -> float:
    """Factor from the projection coordinate's units to metres."""
    units = str(getattr(coord, "units", "m")).strip().lower()
    factors = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "km": 1000.0,
               "kilometer": 1000.0, "kilometers": 1000.0}
    if units not in factors:
        raise InputDataError(path, f"projection coordinate {coord.name!r} has units {units!r}; want m or km")
    return factors[units]


# -- time ---------------------------------------------------------------------------------------
def decode_times(path: Path, values: Any, units: str, calendar: str = "standard") -> list[datetime]:
    """Numbers in CF ``"<unit> since <date>"`` units as naive UTC datetimes."""
    import cftime

    try:
        decoded = cftime.num2date(np.asarray(values, dtype=np.float64), units, calendar,
                                  only_use_cftime_datetimes=False, only_use_python_datetimes=True)
    except (ValueError, TypeError) as exc:
        raise InputDataError(path, f"cannot decode times in units {units!r} ({exc})") from None
    return [datetime(*d.timetuple()[:6]) for d in np.atleast_1d(decoded).ravel()]


def _time_variable(dataset: Any, var: Any, layout: _Layout) -> Any | None:
    """The time coordinate: of the time dimension, else a scalar one named in ``coordinates``.

    Never the forecast reference time: cfgrib and xarray write ``time`` as the reference
    (``standard_name = forecast_reference_time``), ``step`` as the lead (``forecast_period``) and
    ``valid_time`` (``standard_name = time``) as the end of the window, which is the one used.
    """
    coord = None if layout.time is None else _coordinate(dataset, layout.time)
    if coord is not None and getattr(coord, "standard_name", "") != "forecast_period":
        return coord
    dims = () if layout.time is None else (layout.time,)
    names = str(getattr(var, "coordinates", "")).split() + ["valid_time", "time"]
    for cand in (dataset.variables.get(name) for name in dict.fromkeys(names)):
        if (cand is not None and cand.dimensions == dims and _is_time(cand)
                and getattr(cand, "standard_name", "") != "forecast_reference_time"):
            return cand
    return None


def _times(path: Path, dataset: Any, var: Any,
           layout: _Layout) -> tuple[list[datetime], list[tuple[datetime, datetime]] | None]:
    """Time stamps of the steps and, when the file has them, their bounds."""
    tvar = _time_variable(dataset, var, layout)
    if tvar is None:
        raise InputDataError(path, f"variable {var.name!r} has no time coordinate")
    calendar = str(getattr(tvar, "calendar", "standard"))
    times = decode_times(path, tvar[:], str(tvar.units), calendar)
    bounds_name = getattr(tvar, "bounds", None)
    if bounds_name is None or bounds_name not in dataset.variables:
        return times, None
    bvar = dataset.variables[bounds_name]
    units = str(getattr(bvar, "units", tvar.units))
    flat = decode_times(path, np.asarray(bvar[:]).reshape(-1), units, calendar)
    return times, list(zip(flat[0::2], flat[1::2], strict=True))


def _cell_methods_period(var: Any) -> timedelta | None:
    """The ``interval`` of ``cell_methods = "time: sum (interval: 3 hours)"``, if any."""
    match = _INTERVAL.search(str(getattr(var, "cell_methods", "")))
    if not match or match.group(2).lower() not in _SECONDS_PER:
        return None
    return timedelta(seconds=float(match.group(1)) * _SECONDS_PER[match.group(2).lower()])


def _windows(path: Path, var: Any, times: list[datetime], bounds: list[tuple[datetime, datetime]] | None,
             accumulation: timedelta | None,
             references: list[datetime | None] | None = None) -> list[tuple[datetime, datetime]]:
    """``(start, end)`` of each step from bounds, cell_methods or the explicit period.

    Without any of them, a GRIB field written by cfgrib/xarray (``GRIB_stepType`` with a forecast
    reference time) is the amount accumulated since the reference time, as cfgrib decodes GRIB
    accumulations (ECMWF ``tp``; GFS ``APCP`` up to 6 hours). NCEP's ``APCP`` past 6 hours is a
    6-hour bucket or a running total that cfgrib does not tell apart: refused.
    """
    if bounds is not None:
        periods = {end - start for start, end in bounds}
        _check_agrees(path, accumulation, periods, "time bounds")
        return bounds
    period = _cell_methods_period(var)
    if period is not None:
        _check_agrees(path, accumulation, {period}, "cell_methods interval")
    period = period or accumulation
    grib = getattr(var, "GRIB_stepType", None) is not None
    if period is None and grib and references and all(r is not None for r in references):
        starts = [r for r in references if r is not None]
        ncep = str(getattr(var.group(), "GRIB_centre", "")) == "kwbc"
        if ncep and any(t - r > timedelta(hours=6) for r, t in zip(starts, times, strict=True)):
            raise InputDataError(path, f"{var.name!r} is NCEP precipitation past 6 hours, written by cfgrib without "
                                       "its window (a 6-hour bucket or a running total); pass --accumulation, or "
                                       "give the GRIB file itself")
        return list(zip(starts, times, strict=True))
    if period is None:
        raise InputDataError(path, f"no accumulation period for {var.name!r} (no time bounds and no "
                                   "cell_methods interval); pass --accumulation")
    return [(t - period, t) for t in times]


def _check_agrees(path: Path, accumulation: timedelta | None, periods: set[timedelta], source: str) -> None:
    """Refuse an explicit period that contradicts the file's own."""
    if accumulation is not None and periods != {accumulation}:
        have = ", ".join(sorted(_hours(p) for p in periods))
        raise InputDataError(path, f"--accumulation {_hours(accumulation)} disagrees with the file's "
                                   f"{source} ({have})")


def _hours(period: timedelta) -> str:
    """``"3h"``."""
    return f"{period / timedelta(hours=1):g}h"


def _reference_times(path: Path, dataset: Any, var: Any, layout: _Layout,
                     count: int) -> list[datetime | None]:
    """Forecast reference time of each step (``standard_name = forecast_reference_time``), if any."""
    for cand in _coordinates_first(dataset, var):
        if getattr(cand, "standard_name", "") != "forecast_reference_time":
            continue
        if cand.size == 1 or cand.dimensions == (layout.time,):
            values: list[datetime | None] = list(decode_times(path, cand[:], str(cand.units),
                                                              str(getattr(cand, "calendar", "standard"))))
            return values * count if len(values) == 1 else values
    return [None] * count


def _members(dataset: Any, layout: _Layout) -> list[int | None]:
    """Member numbers along the member dimension, or ``[None]``."""
    if layout.member is None:
        return [None]
    coord = _coordinate(dataset, layout.member)
    size = len(dataset.dimensions[layout.member])
    values = np.asarray(coord[:]) if coord is not None else np.arange(size)
    return [int(v) for v in values]


# -- data ---------------------------------------------------------------------------------------
def _data(var: Any, layout: _Layout) -> np.ndarray:
    """The variable as ``(T, M, ny, nx)`` float32 with NaN where masked."""
    raw = np.ma.filled(np.ma.asarray(var[:]).astype(np.float32), np.nan)
    dims = list(var.dimensions)
    for dim in list(reversed(dims)):  # drop singleton dimensions that are none of ours
        if dim not in (layout.y, layout.x, layout.time, layout.member):
            raw = raw.squeeze(axis=dims.index(dim))
            dims.remove(dim)
    for name, placeholder in ((layout.member, "_member"), (layout.time, "_time")):
        if name is None:
            raw = raw[np.newaxis]
            dims.insert(0, placeholder)
    order = [dims.index(d) for d in (layout.time or "_time", layout.member or "_member", layout.y, layout.x)]
    return np.ascontiguousarray(raw.transpose(order))


def _own_fill_values(var: Any) -> tuple[float, ...]:
    """The variable's ``_FillValue`` and ``missing_value`` attributes (numbers only)."""
    out: list[float] = []
    for attr in ("_FillValue", "missing_value"):
        value = getattr(var, attr, None)
        with contextlib.suppress(TypeError, ValueError):  # an attribute that is no number is ignored
            out += [float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64))]
    return tuple(out)


def _accumulations(path: Path, name: str, data: np.ndarray, factor: float, own: tuple[float, ...],
                   grid: SourceGrid, windows: list[tuple[datetime, datetime]], references: list[datetime | None],
                   members: list[int | None]) -> list[Accumulation]:
    """One :class:`Accumulation` per step and member: fill values missing (counted), mm, noise clipped.

    ``data`` is ``(T, M, ny, nx)`` as stored; ``factor`` turns it into mm.
    """
    accs = []
    for t, (start, end) in enumerate(windows):
        for m, member in enumerate(members):
            field = data[t, m].copy()
            fill = mask_fill(field, own)
            field *= np.float32(factor)
            label = f"{name} {_hours(end - start)} ending {end:%Y-%m-%d %H:%M}"
            clipped = clip_noise(field, path, label)
            if clipped:
                label += f"; clipped {clipped} negative value(s) to 0"
            accs.append(Accumulation(data=field, grid=grid, start=start, end=end, path=path,
                                     reference_time=references[t], member=member, label=label,
                                     masked=fill.cells, masked_values=fill.values))
    return accs
