"""Write CF datasets to NetCDF-4 with netCDF4 directly: at once, or step by step along ``time``.

The layout of an output (variables, dimensions, attributes) is built by
:mod:`harpnet_cli.io.netcdf_writer` as a :class:`Layout`: plain numpy arrays and attributes,
which :meth:`Layout.to_xarray` turns into the ``xarray.Dataset`` users see. This module writes a
layout (or any ``xarray.Dataset``) with the encoding that module gives (compression, chunks, fill
values, dtypes), through netCDF4 itself: building an ``xarray.Dataset`` imports xarray, pandas and
dask (about 1.4 s of a fresh process on 2 cores, more than the model takes), and
``Dataset.to_netcdf`` also holds a whole variable in memory to replace its NaN by the fill value.

:class:`NetcdfStream` creates the file from a *structure* dataset (the whole output's variables
and attributes, its spatial size taken from the first step) and then writes each step's slice
as soon as the step is computed, so a long series never holds more than one step in memory.
:func:`write_dataset` writes a dataset in one go (a stream of one step).

What xarray adds when it writes, this module adds the same way: a float variable without a
``_FillValue`` in its encoding gets NaN as its fill value, and NaN values of a variable with
another fill value are written as that value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

#: The dimension written step by step.
TIME = "time"
_ENCODING_KEYS = ("zlib", "complevel", "shuffle", "chunksizes")


@dataclass
class Variable:
    """One variable of a :class:`Layout`: its dimensions, values and attributes."""

    dims: tuple[str, ...]
    values: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """The values' shape."""
        return tuple(self.values.shape)


@dataclass
class Layout:
    """A CF dataset without xarray: variables in order, which of them are coordinates, attributes.

    Offers what :class:`NetcdfStream` and the encoding read of an ``xarray.Dataset`` (``sizes``,
    ``variables``, ``data_vars``, ``coords``, ``attrs``, ``layout[name].values``, ``name in
    layout``); :meth:`to_xarray` gives the same dataset as xarray.
    """

    variables: dict[str, Variable] = field(default_factory=dict)
    coord_names: list[str] = field(default_factory=list)
    """Names of the variables that are coordinates (xarray ``coords``), in order."""
    attrs: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, dims: tuple[str, ...], values: Any, attrs: Mapping[str, Any] | None = None, *,
            coord: bool = False) -> None:
        """Add (or replace) a variable; ``coord`` makes it a coordinate."""
        self.variables[name] = Variable(tuple(dims), np.asarray(values), dict(attrs or {}))
        if coord and name not in self.coord_names:
            self.coord_names.append(name)

    def drop(self, names: list[str]) -> None:
        """Remove variables (and their coordinate status); names not present are ignored."""
        for name in names:
            self.variables.pop(name, None)
            if name in self.coord_names:
                self.coord_names.remove(name)

    def __getitem__(self, name: str) -> Variable:
        return self.variables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __iter__(self) -> Iterator[str]:
        return iter(self.data_vars)

    @property
    def coords(self) -> dict[str, Variable]:
        """The coordinate variables."""
        return {n: self.variables[n] for n in self.coord_names}

    @property
    def data_vars(self) -> dict[str, Variable]:
        """The variables that are not coordinates."""
        return {n: v for n, v in self.variables.items() if n not in self.coord_names}

    @property
    def sizes(self) -> dict[str, int]:
        """Length of every dimension, in order of first use."""
        sizes: dict[str, int] = {}
        for var in self.variables.values():
            for dim, size in zip(var.dims, var.shape, strict=True):
                sizes.setdefault(dim, size)
        return sizes

    def to_xarray(self) -> xr.Dataset:
        """The same dataset as an ``xarray.Dataset`` (imports xarray)."""
        import xarray as xr

        data = {n: (v.dims, v.values, v.attrs) for n, v in self.data_vars.items()}
        coords = {n: (v.dims, v.values, v.attrs) for n, v in self.coords.items()}
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))


#: What :class:`NetcdfStream` writes: a :class:`Layout` or an ``xarray.Dataset``.
Dataset = Union[Layout, "xr.Dataset"]


class NetcdfStream:
    """A NetCDF-4 file written one time step (or a few) at a time.

    Parameters
    ----------
    path : Path
        The file to create (normally a temporary file, renamed when complete).
    structure : Layout or xarray.Dataset
        Every variable, dimension and attribute of the whole output. Its ``time`` dimension has
        the output's full length; other dimensions may be smaller than the output's (only their
        names matter): their sizes come from ``first``.
    first : Layout or xarray.Dataset
        A step of the output: the sizes of the other dimensions, and the values of every variable
        without a ``time`` dimension (coordinates, bounds, grid mapping), written now.
    encoding : mapping
        Per-variable encoding (``dtype``, ``_FillValue`` (None: no fill value), ``zlib``,
        ``complevel``, ``shuffle``, ``chunksizes``), as for ``Dataset.to_netcdf``.
    """

    def __init__(self, path: str | Path, structure: Dataset, first: Dataset,
                 encoding: Mapping[str, Mapping[str, Any]]) -> None:
        import netCDF4

        self.path = Path(path)
        self._fill: dict[str, Any] = {}
        self._time_axis: dict[str, int] = {}
        self._written = np.zeros(structure.sizes.get(TIME, 0), dtype=bool)
        self._nc = netCDF4.Dataset(self.path, "w", format="NETCDF4")
        try:
            self._define(structure, first, encoding)
        except BaseException:
            self._nc.close()
            raise

    def _define(self, structure: Dataset, first: Dataset, encoding: Mapping[str, Mapping[str, Any]]) -> None:
        """Dimensions, variables and attributes; the values without a time dimension."""
        nc = self._nc
        for dim, size in structure.sizes.items():
            nc.createDimension(str(dim), size if dim == TIME else first.sizes[str(dim)])
        for name, var in structure.variables.items():
            key = str(name)
            enc = dict(encoding.get(key, {}))
            values = np.asarray(first[key].values)
            dtype = np.dtype(enc.get("dtype", values.dtype))
            fill = enc.get("_FillValue", np.nan if dtype.kind == "f" else None)
            kwargs = {k: enc[k] for k in _ENCODING_KEYS if k in enc}
            if "chunksizes" in kwargs and kwargs["chunksizes"] is not None:
                sizes = [len(nc.dimensions[str(d)]) for d in var.dims]
                kwargs["chunksizes"] = tuple(max(1, min(c, s)) for c, s in zip(kwargs["chunksizes"], sizes,
                                                                                strict=True))
            out = nc.createVariable(key, dtype, tuple(str(d) for d in var.dims),
                                    fill_value=fill, **kwargs)
            out.set_auto_maskandscale(False)
            out.setncatts({k: _attribute(v) for k, v in var.attrs.items() if k != "_FillValue"})
            self._fill[key] = fill
            if TIME in var.dims:
                self._time_axis[key] = var.dims.index(TIME)
            else:
                out[...] = self._encoded(key, values, dtype)
        nc.setncatts({k: _attribute(v) for k, v in structure.attrs.items()})

    def _encoded(self, name: str, values: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        """``values`` in the variable's type, NaN replaced by its fill value."""
        fill = self._fill[name]
        if values.dtype.kind == "f" and fill is not None and not np.isnan(fill):
            values = np.where(np.isnan(values), np.asarray(fill, dtype=values.dtype), values)
        return np.asarray(values).astype(dtype, copy=False)

    def write(self, index: int, step: Dataset) -> None:
        """Write the time-dependent variables of ``step`` at ``index`` along ``time``.

        Parameters
        ----------
        index : int
            Position of the step's first time in the file.
        step : Layout or xarray.Dataset
            The output over ``n`` consecutive times (usually 1); its other dimensions are the file's.
        """
        n = step.sizes[TIME]
        for name, axis in self._time_axis.items():
            out = self._nc.variables[name]
            where: list[slice] = [slice(None)] * out.ndim
            where[axis] = slice(index, index + n)
            out[tuple(where)] = self._encoded(name, np.asarray(step[name].values), out.dtype)
        self._written[index:index + n] = True

    @property
    def complete(self) -> bool:
        """Whether every time has been written."""
        return bool(self._written.all())

    def close(self, attrs: Mapping[str, Any] | None = None) -> None:
        """Set the final global attributes (if given) and close the file.

        Raises
        ------
        RuntimeError
            If some time steps were never written (the file would hold fill values there).
        """
        try:
            if not self.complete:
                missing = int((~self._written).sum())
                raise RuntimeError(f"{self.path}: {missing} of {self._written.size} time steps were never written")
            if attrs:
                self._nc.setncatts({k: _attribute(v) for k, v in attrs.items()})
        finally:
            self._nc.close()

    def abort(self) -> None:
        """Close the file without completing it (the caller removes it)."""
        self._nc.close()


def _attribute(value: Any) -> Any:
    """An attribute value netCDF4 accepts (numpy scalars and strings as they are; lists as arrays)."""
    if isinstance(value, list | tuple):
        return np.asarray(value)
    return value


def write_dataset(path: str | Path, ds: Dataset, encoding: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a whole dataset (see :class:`NetcdfStream`); a dataset without ``time`` works too.

    Parameters
    ----------
    path : str or Path
        The file to create.
    ds : Layout or xarray.Dataset
        What to write.
    encoding : mapping
        Per-variable encoding.

    Returns
    -------
    Path
    """
    stream = NetcdfStream(path, ds, ds, encoding)
    try:
        if TIME in ds.sizes:
            stream.write(0, ds)
    except BaseException:
        stream.abort()
        raise
    stream.close()
    return stream.path
