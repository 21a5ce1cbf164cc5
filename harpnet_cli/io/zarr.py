"""Read precipitation from a local CONUS404-like Zarr store: :func:`read`, :func:`scan`, :func:`load`.

A store is a directory with Zarr metadata (``zarr.json``, ``.zgroup``, ``.zmetadata`` or
``.zattrs``; :func:`sniff`) holding WRF's ``PREC_ACC_NC`` (+ ``PREC_ACC_C``, summed when present),
2-D ``XLAT``/``XLONG`` (optionally with a time dimension) and a time coordinate. Each time step is
an interval amount over ``PREC_ACC_DT`` minutes (a variable or store attribute; else
``accumulation=``, else 1 hour) ending at its time. The store is opened lazily with xarray (no
dask): :func:`scan` reads the time coordinate, attributes and the corners of ``XLAT``/``XLONG``,
and :func:`load` only the chunks holding one time step.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid, clip_negatives, corner_key
from harpnet_cli.io.gridcache import cached_grid
from harpnet_cli.io.wrf import INTERVAL_AMOUNTS, check_increasing, describe_grid

#: Names of a Zarr store's metadata files (v3, then v2).
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zmetadata", ".zattrs")


def sniff(path: Path, head: bytes) -> bool:
    """True for a directory holding one of :data:`ZARR_MARKERS` (``head`` is ``b""`` for a directory)."""
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read every time step of the store.

    Parameters
    ----------
    path : Path
        The store directory.
    variable : str, optional
        The variable to read alone; default ``PREC_ACC_NC`` + ``PREC_ACC_C`` (those present).
    accumulation : timedelta, optional
        Period of each step when the store has no ``PREC_ACC_DT``; must agree when it has.

    Returns
    -------
    list of Accumulation
        One per time step, ``data`` ``(ny, nx)`` float32 mm on the 2-D ``XLAT``/``XLONG`` grid, NaN
        where missing; negative noise is clipped to 0 and counted in the label.

    Raises
    ------
    InputDataError
        As :func:`scan`.
    """
    refs = scan(path, variable=variable, accumulation=accumulation)
    accs = []
    with _open(path) as ds:
        grid = _grid(path, ds)
        for ref in refs:
            label, index, time_dim = str(ref.locator[0]), int(ref.locator[1]), str(ref.locator[2])
            data = _sum_at(ds, label, time_dim, index)
            clipped, lowest = clip_negatives(data)
            text = f"{label} {(ref.end - ref.start) / timedelta(hours=1):g}h ending {ref.end:%Y-%m-%d %H:%M}"
            if clipped:
                text += f"; clipped {clipped} negative value(s) down to {lowest:.3g} mm"
            accs.append(Accumulation(data=data, grid=grid, start=ref.start, end=ref.end, path=path, label=text))
    return accs


def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
    """One ref per time step, from the store's time coordinate and attributes.

    Parameters
    ----------
    path : Path
        The store directory.
    variable, accumulation
        As for :func:`read`.

    Returns
    -------
    list of FieldRef
        ``format="zarr"``, ``kind="interval"``; the locator is ``(names joined by "+", time index,
        time dimension)``.

    Raises
    ------
    InputDataError
        No precipitation variable, units other than mm, no decodable time coordinate, times that
        are not increasing, no ``XLAT``/``XLONG`` or a variable of another shape, an
        ``accumulation`` that disagrees with ``PREC_ACC_DT``.
    """
    with _open(path) as ds:
        names = _names(path, ds, variable)
        var = ds[names[0]]
        time_dim = str(var.dims[0])
        times = _times(path, ds, time_dim)
        check_increasing(path, times)
        period = _period(path, ds, var, accumulation)
        lat, lon = _lat_lon(path, ds)
        ny, nx = lat.shape[-2:]
        key = corner_key(_corners(lat), _corners(lon), (ny, nx))
        if var.shape[-2:] != (ny, nx):
            raise InputDataError(path, f"{names[0]} is {var.shape[-2]}x{var.shape[-1]} but XLAT is {ny}x{nx}")
    label = "+".join(names)
    return [FieldRef(path, "zarr", (label, k, time_dim), t - period, t, "interval", None, key)
            for k, t in enumerate(times)]


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Read one time step (only the chunks holding it).

    Parameters
    ----------
    ref : FieldRef
        As :func:`scan` returned it.

    Returns
    -------
    data : numpy.ndarray
        ``(ny, nx)`` float32 mm, ``>= 0`` (negative noise clipped), NaN where missing.
    grid : SourceGrid
        2-D ``XLAT``/``XLONG``, shared by the fields with the same grid key.
    """
    label, index, time_dim = str(ref.locator[0]), int(ref.locator[1]), str(ref.locator[2])
    with _open(ref.path) as ds:
        total = _sum_at(ds, label, time_dim, index)
        grid = cached_grid(ref.grid, lambda: _grid(ref.path, ds))
    clip_negatives(total)
    return total, grid


def _open(path: Path) -> Any:
    """The store as a lazy xarray Dataset (no dask; indexing reads only the chunks it needs)."""
    import xarray as xr

    with warnings.catch_warnings():  # a store without consolidated metadata is fine locally
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata", RuntimeWarning)
        return xr.open_dataset(path, engine="zarr", chunks=None)


def _sum_at(ds: Any, label: str, time_dim: str, index: int) -> np.ndarray:
    """Sum of the ``+``-joined variables of ``label`` at one time index, ``(ny, nx)`` float32."""
    total: np.ndarray | None = None
    for name in label.split("+"):
        part = np.asarray(ds[name].isel({time_dim: index}).values, dtype=np.float32)
        total = part if total is None else total + part
    assert total is not None
    return total


def _names(path: Path, ds: Any, variable: str | None) -> list[str]:
    """The interval variables to sum, or the one asked for."""
    have = [n for n in INTERVAL_AMOUNTS if n in ds.data_vars]
    if variable is not None:
        if variable not in ds.data_vars:
            raise InputDataError(path, f"no variable {variable!r} in the Zarr store")
        return [variable]
    if not have:
        raise InputDataError(path, f"Zarr store without {' or '.join(INTERVAL_AMOUNTS)}; "
                                   f"variables: {', '.join(list(map(str, ds.data_vars))[:20])}")
    for name in have:
        units = str(ds[name].attrs.get("units", "mm")).strip().lower()
        if units not in ("mm", "kg m-2", "kg m**-2"):
            raise InputDataError(path, f"{name} has units {units!r}; expected mm")
    return have


def _times(path: Path, ds: Any, time_dim: str) -> list[datetime]:
    """Valid times along the variable's first dimension, as naive UTC datetimes."""
    coord = ds.coords.get(time_dim)
    if coord is None or not np.issubdtype(coord.dtype, np.datetime64):
        coord = next((ds[n] for n in ("time", "Time", "XTIME") if n in ds.variables and ds[n].dims == (time_dim,)
                      and np.issubdtype(ds[n].dtype, np.datetime64)), None)
    if coord is None:
        raise InputDataError(path, f"no decodable time coordinate along {time_dim!r}")
    return [v.astype("datetime64[us]").item() for v in np.asarray(coord.values)]


def _period(path: Path, ds: Any, var: Any, accumulation: timedelta | None) -> timedelta:
    """``PREC_ACC_DT`` minutes (variable or store attribute) when set, else ``accumulation``, else 1 hour."""
    minutes = float(var.attrs.get("PREC_ACC_DT", ds.attrs.get("PREC_ACC_DT", 0.0)))
    if minutes > 0:
        period = timedelta(minutes=minutes)
        if accumulation is not None and accumulation != period:
            raise InputDataError(path, f"--accumulation disagrees with PREC_ACC_DT = {minutes:g} minutes")
        return period
    return accumulation or timedelta(hours=1)


def _lat_lon(path: Path, ds: Any) -> tuple[Any, Any]:
    """The lazy ``XLAT``/``XLONG`` arrays of the store."""
    if "XLAT" not in ds.variables or "XLONG" not in ds.variables:
        raise InputDataError(path, "Zarr store without XLAT/XLONG")
    return ds["XLAT"].variable, ds["XLONG"].variable


def _corners(coord: Any) -> np.ndarray:
    """``(2, 2)`` corner values of a lazy 2-D coordinate (of its first time when it has one)."""
    first = coord[0] if coord.ndim == 3 else coord
    ny, nx = first.shape
    return np.asarray(first[[0, ny - 1], :][:, [0, nx - 1]].values, dtype=np.float64)


def _grid(path: Path, ds: Any) -> SourceGrid:
    """2-D ``XLAT``/``XLONG`` (of the first time when they have one)."""
    lat, lon = _lat_lon(path, ds)
    lat2 = np.asarray(lat.values if lat.ndim == 2 else lat[0].values, dtype=np.float64)
    lon2 = np.asarray(lon.values if lon.ndim == 2 else lon[0].values, dtype=np.float64)
    return SourceGrid(lat=lat2, lon=lon2, description=describe_grid(lambda n, d: ds.attrs.get(n, d)))
