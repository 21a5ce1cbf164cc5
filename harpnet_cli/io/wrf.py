"""Read precipitation from WRF / CONUS404 output (``wrfout`` layout).

Two kinds of fields:

* ``PREC_ACC_NC`` (+ ``PREC_ACC_C`` when present): the amount over the ``PREC_ACC_DT`` minutes
  (1 hour when the attribute is absent or 0) ending at each time stamp;
* running totals ``RAINNC`` + ``RAINC`` (+ ``RAINSH``; + ``I_RAIN*`` × ``BUCKET_MM`` when buckets
  are on), returned as amounts since the first time in the file (``start`` = first time,
  ``end`` = each time) so :func:`harpnet_cli.core.accumulation.to_interval_series` differences them.
  A file with a single time gives its raw totals since ``SIMULATION_START_DATE`` instead, so that
  several one-time files can be differenced against each other.

A moving nest (``XLAT``/``XLONG`` changing between times) is refused: its running totals cannot
be differenced (the real ``ci_test_file.nc`` would give −201 mm). So are times that repeat or go
back (:func:`check_increasing`) and running totals that decrease between two times by more than
:data:`RESET_MM` in any cell (:func:`check_monotonic`): a bucket that was reset (``BUCKET_MM``
without its ``I_RAIN*`` counters) or a restart, whose differences would be wrong (negative where
it reset, double counted if the reset were clipped away). Fill values
(:func:`harpnet_cli.plausibility.mask_fill`) are missing, never rain.

:func:`read` reads every field at once. :func:`scan` reads only ``Times``/``XTIME``, attributes
and the corners of ``XLAT``/``XLONG`` and returns one :class:`~harpnet_cli.fields.FieldRef` per
time: ``PREC_ACC_NC`` (+ ``PREC_ACC_C``) is an ``interval`` amount over ``PREC_ACC_DT`` (1 hour by
default) ending at each time; otherwise ``RAINNC + RAINC (+ RAINSH)`` are ``running`` totals since
``SIMULATION_START_DATE`` (since the file's first time, subtracted by :func:`load`, when the
attribute is absent). Times that do not increase are refused by :func:`scan`. A file is
recognised (:func:`sniff`) as a NetCDF file with ``XLAT``/``XLONG`` and ``RAINNC`` or
``PREC_ACC_NC``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid, corner_key
from harpnet_cli.io import netcdf
from harpnet_cli.io.gridcache import cached_grid
from harpnet_cli.io.netcdf import check_coordinates, decode_times, open_netcdf
from harpnet_cli.plausibility import clip_noise, mask_fill
from harpnet_cli.units import amount_factor

#: gzip-compressed files are read too (through :func:`~harpnet_cli.io.netcdf.open_netcdf`).
READS_GZIP = True

#: Largest change of XLAT/XLONG between times (degrees) that still counts as a fixed grid.
MOVING_TOLERANCE_DEG = 1e-4
#: Running-total components: (variable, bucket counter) pairs, summed when present.
RUNNING_TOTALS = (("RAINNC", "I_RAINNC"), ("RAINC", "I_RAINC"), ("RAINSH", None))
#: Interval components, summed when present.
INTERVAL_AMOUNTS = ("PREC_ACC_NC", "PREC_ACC_C")
#: A running total that falls by more than this (mm) between two times has been reset.
RESET_MM = 0.5
_MAP_PROJ = {1: "Lambert conformal", 2: "polar stereographic", 3: "Mercator", 6: "lat/lon"}


def is_wrf(dataset: Any) -> bool:
    """True for an open ``netCDF4.Dataset`` with WRF's ``XLAT``/``XLONG`` and a rain variable."""
    names = dataset.variables
    return "XLAT" in names and "XLONG" in names and ("RAINNC" in names or "PREC_ACC_NC" in names)


def sniff(path: Path, head: bytes) -> bool:
    """True for a NetCDF file in the WRF layout (see :func:`is_wrf`).

    Parameters
    ----------
    path : Path
        The file.
    head : bytes
        Its first bytes (``b""`` for a directory).

    Raises
    ------
    InputDataError
        A NetCDF3 file cut short, or a NetCDF file that cannot be opened.
    """
    if not netcdf.sniff(path, head):
        return False
    with open_netcdf(path) as dataset:
        return is_wrf(dataset)


def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read WRF precipitation as interval amounts or running totals.

    Parameters
    ----------
    path : Path
        A ``wrfout``-style NetCDF file.
    variable : str, optional
        One of ``PREC_ACC_NC``, ``PREC_ACC_C`` (interval amounts), ``RAINNC``, ``RAINC``, ``RAINSH``
        (running totals), read alone; default: ``PREC_ACC_NC`` + ``PREC_ACC_C`` when present, else
        the sum of the running totals.
    accumulation : timedelta, optional
        Period of ``PREC_ACC_NC`` when the file has no ``PREC_ACC_DT``; must agree when it has.

    Returns
    -------
    list of Accumulation
        ``data`` ``(south_north, west_east)`` float32 mm on the 2-D ``XLAT``/``XLONG`` grid.

    Raises
    ------
    InputDataError
        A moving nest, unknown times, a missing variable or a single time without a simulation start.
    """
    with open_netcdf(path) as dataset:
        times = _times(path, dataset)
        check_increasing(path, times)
        grid, shift = _grid(dataset)
        check_coordinates(path, grid.lat, grid.lon)
        names = _choose(path, dataset, variable)
        if names[0] in INTERVAL_AMOUNTS:
            return _interval_amounts(path, dataset, names, times, grid, shift, accumulation)
        return _running_totals(path, dataset, names, times, grid, shift)


def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
    """List the fields of a WRF file from ``Times``/``XTIME``, attributes and the corners of ``XLAT``/``XLONG``.

    Parameters
    ----------
    path : Path
        A ``wrfout``-style NetCDF file.
    variable, accumulation
        As for :func:`read`.

    Returns
    -------
    list of FieldRef
        One per time, ``format="wrf"``: ``interval`` amounts (times whose window starts before the
        simulation start are left out) or ``running`` totals since the simulation start (since
        the first time when the file has no start). The locator is ``(names joined by "+", time
        index, base time index or -1)``.

    Raises
    ------
    InputDataError
        A moving nest, times that are not increasing, a time before the simulation start, a
        missing variable or units other than mm.
    """
    with open_netcdf(path) as ds:
        times = _times(path, ds)
        check_increasing(path, times)
        names = _choose(path, ds, variable)
        _units_check(path, ds, names)
        key, shift = _grid_key(ds)
        label = "+".join(names)
        if names[0] in INTERVAL_AMOUNTS:
            if shift > MOVING_TOLERANCE_DEG:
                raise _moving_nest_error(path, shift, "its fields cannot form one series on a fixed grid")
            period = _prec_acc_period(path, ds, accumulation)
            first = _simulation_start_or_none(ds)
            refs = [FieldRef(path, "wrf", (label, k, -1), t - period, t, "interval", None, key)
                    for k, t in enumerate(times) if first is None or t - period >= first]
            if not refs:
                raise InputDataError(path, f"{label} has no complete window after the simulation start")
            return refs
        if shift > MOVING_TOLERANCE_DEG:
            raise _moving_nest_error(path, shift, "running totals cannot be differenced")
        origin, base = _simulation_start_or_none(ds), -1
        if origin is None:
            origin, base = times[0], 0  # totals are made relative to the first time at load
        if times[0] < origin:
            raise InputDataError(path, f"time {times[0]:%Y-%m-%d %H:%M} is before SIMULATION_START_DATE "
                                       f"{origin:%Y-%m-%d %H:%M}")
        return [FieldRef(path, "wrf", (label, k, base), origin, t, "running", None, key)
                for k, t in enumerate(times)]


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Read one time of a WRF file: the interval amount, or the running total (minus the base time's).

    Parameters
    ----------
    ref : FieldRef
        As :func:`scan` returned it.

    Returns
    -------
    data : numpy.ndarray
        ``(south_north, west_east)`` float32 mm, NaN where masked; interval amounts have negative
        noise clipped to 0, running totals are returned as stored (or since the file's first time).
    grid : SourceGrid
        2-D ``XLAT``/``XLONG`` of the first time, shared by the fields with the same grid key.
    """
    label, index, base = str(ref.locator[0]), int(ref.locator[1]), int(ref.locator[2])
    names = label.split("+")
    with open_netcdf(ref.path) as ds:
        data = _sum_at(ds, names, index)
        if base >= 0:
            data -= _sum_at(ds, names, base)
        grid = cached_grid(ref.grid, lambda: _first_grid(ds))
        check_coordinates(ref.path, grid.lat, grid.lon)
    out = data.astype(np.float32)
    if ref.kind == "interval":
        clip_noise(out, ref.path, f"{label} {ref.describe()}")
    return out, grid


def check_increasing(path: Path, times: list[datetime]) -> None:
    """Refuse time stamps that repeat or go back within one file (or store).

    Parameters
    ----------
    path : Path
        The file, named in the error.
    times : list of datetime
        Its valid times in storage order.

    Raises
    ------
    InputDataError
        At the first time that is not after the one before it.
    """
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            what = "a duplicate time" if times[k] == times[k - 1] else "times that are not increasing"
            raise InputDataError(path, f"{what}: {times[k]:%Y-%m-%d %H:%M} (index {k}) follows "
                                       f"{times[k - 1]:%Y-%m-%d %H:%M}")


def check_monotonic(path: Path, label: str, totals: np.ndarray, times: list[datetime]) -> None:
    """Refuse running totals that fall between two consecutive times (a reset bucket or a restart).

    Parameters
    ----------
    path : Path
        The file, named in the error.
    label : str
        The variables summed (``"RAINNC+RAINC"``).
    totals : numpy.ndarray
        ``(T, ny, nx)`` running totals in mm, NaN where missing.
    times : list of datetime
        The ``T`` valid times.

    Raises
    ------
    InputDataError
        When a cell falls by more than :data:`RESET_MM` from one time to the next.
    """
    for k in range(1, len(times)):
        with np.errstate(invalid="ignore"):
            fall = totals[k - 1] - totals[k]
            reset = fall > RESET_MM
        if reset.any():
            raise InputDataError(path, f"running total {label} decreases from {times[k - 1]:%Y-%m-%d %H:%M} to "
                                       f"{times[k]:%Y-%m-%d %H:%M} in {int(reset.sum())} cell(s) (by up to "
                                       f"{float(np.nanmax(fall)):.4g} mm): reset (a bucket without I_RAIN* counters, "
                                       "or a restart); its differences would be wrong. Use PREC_ACC_NC, or the "
                                       "totals of one run")


def describe_grid(attr: Callable[[str, Any], Any]) -> str:
    """``"WRF Lambert conformal 4 km"`` from the ``MAP_PROJ`` and ``DX`` attributes.

    Parameters
    ----------
    attr : callable
        ``attr(name, default)``: a global attribute of the file (or store), or ``default``.
    """
    proj = _MAP_PROJ.get(int(attr("MAP_PROJ", 0)), "WRF")
    dx = float(attr("DX", 0.0)) / 1000
    return f"WRF {proj} {dx:g} km" if dx else f"WRF {proj}"


def _choose(path: Path, dataset: Any, variable: str | None) -> list[str]:
    """Names of the variables to sum: interval amounts, running totals, or the one asked for."""
    known = [n for n in INTERVAL_AMOUNTS + tuple(n for n, _ in RUNNING_TOTALS) if n in dataset.variables]
    if variable is not None:
        if variable not in known:
            raise InputDataError(path, f"{variable!r} is not a WRF precipitation variable of this file; "
                                       f"have {', '.join(known) or 'none'}")
        return [variable]
    intervals = [n for n in INTERVAL_AMOUNTS if n in known]
    return intervals or [n for n in known if n not in INTERVAL_AMOUNTS]


# -- times and grid -----------------------------------------------------------------------------
def _times(path: Path, dataset: Any) -> list[datetime]:
    """Valid times from ``Times`` (``YYYY-MM-DD_HH:MM:SS``), else from ``XTIME``."""
    if "Times" in dataset.variables:
        raw = np.asarray(dataset.variables["Times"][:])
        try:
            return [datetime.strptime(b"".join(row).decode().strip(), "%Y-%m-%d_%H:%M:%S")
                    for row in np.atleast_2d(raw)]
        except (ValueError, UnicodeDecodeError):
            raise InputDataError(path, "cannot parse WRF Times (expected YYYY-MM-DD_HH:MM:SS)") from None
    if "XTIME" in dataset.variables:
        xtime = dataset.variables["XTIME"]
        minutes = np.atleast_1d(np.asarray(xtime[:], dtype=np.float64))
        units = str(getattr(xtime, "units", ""))
        if " since " in units:
            return decode_times(path, minutes, units)
        return [_simulation_start(path, dataset) + timedelta(minutes=float(m)) for m in minutes]
    raise InputDataError(path, "WRF file without Times or XTIME")


def _simulation_start(path: Path, dataset: Any) -> datetime:
    """``SIMULATION_START_DATE`` (or ``START_DATE``) global attribute; refused when absent."""
    start = _simulation_start_or_none(dataset)
    if start is None:
        raise InputDataError(path, "WRF file without a readable SIMULATION_START_DATE")
    return start


def _simulation_start_or_none(dataset: Any) -> datetime | None:
    """``SIMULATION_START_DATE`` (or ``START_DATE``), or None when absent or unreadable."""
    for attr in ("SIMULATION_START_DATE", "START_DATE"):
        if attr in dataset.ncattrs():
            try:
                return datetime.strptime(str(dataset.getncattr(attr)).strip(), "%Y-%m-%d_%H:%M:%S")
            except ValueError:
                return None
    return None


def _grid(dataset: Any) -> tuple[SourceGrid, float]:
    """The grid of the first time and the largest change of XLAT/XLONG from it (degrees)."""
    lat = np.asarray(dataset.variables["XLAT"][:], dtype=np.float64)
    lon = np.asarray(dataset.variables["XLONG"][:], dtype=np.float64)
    shift = 0.0
    if lat.ndim == 3:  # (Time, ny, nx): compare every time with the first
        dlon = (lon - lon[0] + 180.0) % 360.0 - 180.0
        shift = float(max(np.abs(lat - lat[0]).max(initial=0.0), np.abs(dlon).max(initial=0.0)))
        lat, lon = lat[0], lon[0]
    return SourceGrid(lat=lat, lon=lon, description=describe_grid(lambda n, d: _attr(dataset, n, d))), shift


def _grid_key(ds: Any) -> tuple[str, float]:
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
    return corner_key(lat[0], lon[0], (ny, nx)), shift


def _first_grid(ds: Any) -> SourceGrid:
    """2-D ``XLAT``/``XLONG`` of the first time only (what :func:`load` caches)."""
    lat_var, lon_var = ds.variables["XLAT"], ds.variables["XLONG"]
    lat = np.asarray(lat_var[0] if lat_var.ndim == 3 else lat_var[:], dtype=np.float64)
    lon = np.asarray(lon_var[0] if lon_var.ndim == 3 else lon_var[:], dtype=np.float64)
    return SourceGrid(lat=lat, lon=lon, description=describe_grid(lambda n, d: _attr(ds, n, d)))


def _attr(dataset: Any, name: str, default: Any) -> Any:
    """A global attribute or ``default``."""
    return dataset.getncattr(name) if name in dataset.ncattrs() else default


def _moving_nest_error(path: Path, shift: float, what: str) -> InputDataError:
    """The refusal for a grid that moves between times."""
    return InputDataError(path, f"moving nest: the grid moves between times (up to {shift:.2f}°), so {what}")


# -- fields -------------------------------------------------------------------------------------
def _field_sum(dataset: Any, names: list[str],
               pairs: dict[str, str | None] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Sum of the named ``(Time, ny, nx)`` variables (plus bucket counters) as float64, NaN where masked.

    Returns
    -------
    total : numpy.ndarray
        ``(Time, ny, nx)`` float64.
    fill : numpy.ndarray
        ``(Time, ny, nx)`` bool, cells that held a fill value (now NaN).
    values : tuple of float
        Up to three of those fill values.
    """
    total: np.ndarray | None = None
    filled: np.ndarray | None = None
    values: set[float] = set()
    bucket = float(_attr(dataset, "BUCKET_MM", -1.0))
    for name in names:
        part = np.ma.filled(np.ma.asarray(dataset.variables[name][:]).astype(np.float64), np.nan)
        before = np.isnan(part)
        values.update(mask_fill(part).values)
        hit = np.isnan(part) & ~before
        counter = (pairs or {}).get(name)
        if bucket > 0 and counter and counter in dataset.variables:
            part = part + bucket * np.asarray(dataset.variables[counter][:], dtype=np.float64)
        total = part if total is None else total + part
        filled = hit if filled is None else filled | hit
    assert total is not None and filled is not None
    if total.ndim == 2:
        total, filled = total[np.newaxis], filled[np.newaxis]
    return total, filled, tuple(sorted(values)[:3])


def _sum_at(ds: Any, names: list[str], index: int) -> np.ndarray:
    """Sum of the named variables (plus bucket counters × ``BUCKET_MM``) at one time, float64, NaN where masked."""
    counters = dict(RUNNING_TOTALS)
    bucket = float(_attr(ds, "BUCKET_MM", -1.0))
    total = None
    for name in names:
        var = ds.variables[name]
        part = np.ma.filled(np.ma.asarray(var[index] if var.ndim == 3 else var[:]).astype(np.float64), np.nan)
        mask_fill(part)
        counter = counters.get(name)
        if bucket > 0 and counter and counter in ds.variables:
            part += bucket * np.asarray(ds.variables[counter][index], dtype=np.float64)
        total = part if total is None else total + part
    assert total is not None
    return total


def _units_check(path: Path, dataset: Any, names: list[str]) -> None:
    """Refuse components whose units are not mm (:mod:`harpnet_cli.units` spellings of mm or kg m-2)."""
    for name in names:
        units = str(getattr(dataset.variables[name], "units", "mm"))
        if amount_factor(units) != 1.0:
            raise InputDataError(path, f"WRF variable {name} has units {units!r}; expected mm")


def _interval_amounts(path: Path, dataset: Any, names: list[str], times: list[datetime], grid: SourceGrid,
                      shift: float, accumulation: timedelta | None) -> list[Accumulation]:
    """``PREC_ACC_*`` amounts over the period ending at each time."""
    if shift > MOVING_TOLERANCE_DEG:
        raise _moving_nest_error(path, shift, "its fields cannot form one series on a fixed grid")
    _units_check(path, dataset, names)
    period = _prec_acc_period(path, dataset, accumulation)
    data, fill, values = _field_sum(dataset, names)
    label = "+".join(names)
    first = _simulation_start_or_none(dataset)
    accs = [_accumulation(path, data[k], grid, t - period, t, label, int(fill[k].sum()), values)
            for k, t in enumerate(times)
            if first is None or t - period >= first]  # the zero at the simulation start is no window
    for acc in accs:
        clipped = clip_noise(acc.data, path, f"{label} {acc.end:%Y-%m-%d %H:%M}")
        if clipped:
            acc.label += f"; clipped {clipped} negative value(s) to 0"
    if not accs:
        raise InputDataError(path, f"{label} has no complete window after the simulation start")
    return accs


def _prec_acc_period(path: Path, dataset: Any, accumulation: timedelta | None) -> timedelta:
    """``PREC_ACC_DT`` minutes when set (> 0), else ``accumulation``, else 1 hour."""
    minutes = float(_attr(dataset, "PREC_ACC_DT", 0.0))
    if minutes > 0:
        period = timedelta(minutes=minutes)
        if accumulation is not None and accumulation != period:
            raise InputDataError(path, f"--accumulation disagrees with PREC_ACC_DT = {minutes:g} minutes")
        return period
    return accumulation or timedelta(hours=1)


def _running_totals(path: Path, dataset: Any, names: list[str], times: list[datetime], grid: SourceGrid,
                    shift: float) -> list[Accumulation]:
    """Running totals as amounts since the first time (since the simulation start for one time)."""
    if shift > MOVING_TOLERANCE_DEG:
        raise _moving_nest_error(path, shift, "running totals cannot be differenced")
    _units_check(path, dataset, names)
    totals, fill, values = _field_sum(dataset, names, dict(RUNNING_TOTALS))
    label = "+".join(names)
    clip_noise(totals, path, f"running total {label}")  # a total below -0.1 mm is no total
    if len(times) == 1:
        start = _simulation_start(path, dataset)
        return [_accumulation(path, totals[0], grid, start, times[0], f"{label} since simulation start",
                              int(fill[0].sum()), values)]
    check_monotonic(path, label, totals, times)
    since_first = totals - totals[0]
    return [_accumulation(path, since_first[k], grid, times[0], t, f"{label} since {times[0]:%Y-%m-%d %H:%M}",
                          int((fill[k] | fill[0]).sum()), values)
            for k, t in enumerate(times)]


def _accumulation(path: Path, data: np.ndarray, grid: SourceGrid, start: datetime, end: datetime,
                  label: str, masked: int = 0, values: tuple[float, ...] = ()) -> Accumulation:
    """Wrap one ``(ny, nx)`` field (running totals are not clipped: the accumulation logic checks differences)."""
    return Accumulation(data=data.astype(np.float32), grid=grid, start=start, end=end, path=path, label=label,
                        masked=masked, masked_values=values if masked else ())
