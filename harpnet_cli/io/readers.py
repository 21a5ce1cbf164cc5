"""Read precipitation from any supported file: the one entry point for workflows, and the format registry.

Every format is one module registered in :data:`READERS` that offers the same four functions
(:class:`ReaderModule`):

* ``sniff(path, head)``: whether a file (whose first bytes are ``head``) or directory is of this
  format, told from the content, not the name;
* ``read(path, *, variable, accumulation)``: every field at once, as
  :class:`~harpnet_cli.fields.Accumulation` s (``downscale``, ``evaluate``);
* ``scan(path, *, variable, accumulation)``: a metadata-only pass giving one small
  :class:`~harpnet_cli.fields.FieldRef` per field (``prepare`` plans windows from these);
* ``load(ref)``: one field, as ``(data, grid)``.

:func:`detect_format` asks the modules in registry order and takes the first that accepts the
file, so the order settles ties: WRF before CF NetCDF (a WRF file is a NetCDF file). GRIB is
told by the ``GRIB`` magic near the start, NetCDF/HDF5 by ``CDF\\x01``/``CDF\\x02``/``CDF\\x05``/
``\\x89HDF``, WRF among NetCDF files by ``XLAT``/``XLONG`` plus ``RAINNC`` or ``PREC_ACC_NC``, a
Zarr store by its metadata files. Adding a format is one new module and one line in
:data:`READERS`.

The modules are imported only when used, so ``import harpnet_cli.io.readers`` pulls in neither
ecCodes nor netCDF4 nor xarray. Every failure becomes a one-line
:class:`~harpnet_cli.errors.InputDataError` naming the file (``-`` for a stream spooled from
standard input by :func:`harpnet_cli.io.pipes.spool_stdin`). Only regular files and directories
are read: a named pipe would block forever, so it is refused (``-`` reads standard input).
:func:`load_field` keeps the grids of recent grid keys (:mod:`harpnet_cli.io.gridcache`), so 2-D
lat/lon are read once per worker.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid
from harpnet_cli.io.gridcache import GRID_CACHE_SIZE, clear_grid_cache
from harpnet_cli.plausibility import FillCount

__all__ = ["GRID_CACHE_SIZE", "READERS", "ReaderModule", "clear_grid_cache", "detect_format", "get_reader",
           "load_field", "read_accumulations", "read_file", "scan_file", "scan_files"]


class ReaderModule(Protocol):
    """What a format module offers (see the module docstring)."""

    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether ``path`` is of this format; ``head`` holds its first bytes (``b""`` for a directory)."""
        ...

    def read(self, path: Path, *, variable: str | None = None,
             accumulation: timedelta | None = None) -> list[Accumulation]:
        """Every precipitation field of the file, each ``data`` ``(ny, nx)`` float32 mm."""
        ...

    def scan(self, path: Path, *, variable: str | None = None,
             accumulation: timedelta | None = None) -> list[FieldRef]:
        """One ref per precipitation field, without reading the values."""
        ...

    def load(self, ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
        """The one field of ``ref``: ``(ny, nx)`` float32 mm and its grid."""
        ...


#: Format name -> module offering :class:`ReaderModule`, imported on first use. The order decides
#: ties in :func:`detect_format`: the first module whose ``sniff`` accepts a file names its format.
READERS: dict[str, str] = {
    "wrf": "harpnet_cli.io.wrf",
    "netcdf": "harpnet_cli.io.netcdf",
    "zarr": "harpnet_cli.io.zarr",
    "grib": "harpnet_cli.io.grib",
    "radolan": "harpnet_cli.io.radolan",
}

_HEAD_BYTES = 4096


def get_reader(name: str) -> ReaderModule:
    """The module registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    try:
        module = READERS[name]
    except KeyError:
        raise ValueError(f"unknown reader {name!r}; known: {', '.join(sorted(READERS))}") from None
    return cast(ReaderModule, importlib.import_module(module))


def detect_format(path: Path) -> str:
    """The name in :data:`READERS` of the format of a file or directory, from its content.

    Raises
    ------
    InputDataError
        Missing, empty or unreadable; a directory that is no Zarr store; of no known format.
    """
    path = Path(path)
    is_dir = path.is_dir()
    head = b"" if is_dir else _head(path)
    for name in READERS:
        module = get_reader(name)
        with _one_line(path, name):
            accepted = module.sniff(path, head)
        if accepted:
            if not is_dir and not getattr(module, "READS_GZIP", False) and _is_gzip_file(path):
                raise InputDataError(path, f"gzip-compressed {name} file: decompress it first (gunzip)")
            return name
    if is_dir:
        raise InputDataError(path, "is a directory but not a Zarr store (no zarr.json or .zgroup)")
    raise InputDataError(path, f"not a GRIB or NetCDF file: {_describe_start(head)}")


def read_accumulations(paths: Sequence[Path | str], *, variable: str | None = None,
                       accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read every precipitation field of every file.

    Parameters
    ----------
    paths : sequence of Path
        GRIB1/GRIB2, CF NetCDF or WRF files or Zarr stores, in any mix.
    variable : str, optional
        Name of the precipitation variable (NetCDF/WRF/Zarr variable, GRIB ``shortName``).
    accumulation : timedelta, optional
        Window length for files that do not state one (``--accumulation``).

    Returns
    -------
    list of Accumulation
        All fields, file by file in the given order; each ``data`` is ``(ny, nx)`` float32 mm.

    Raises
    ------
    InputDataError
        For the first file that is missing, empty, of an unknown format, truncated, without
        precipitation or otherwise unreadable.
    """
    accs: list[Accumulation] = []
    for path in paths:
        accs.extend(read_file(Path(path), variable=variable, accumulation=accumulation))
    return accs


def read_file(path: Path, *, variable: str | None = None,
              accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read one file with the reader its content calls for (see :func:`read_accumulations`).

    A file spooled from standard input is named ``-`` in errors and in the fields' ``path``.
    """
    from harpnet_cli.io.pipes import STDIN_NAME, is_spooled

    shown = Path(STDIN_NAME) if is_spooled(path) else path
    try:
        name = detect_format(path)
        with _one_line(path, name):
            accs = get_reader(name).read(path, variable=variable, accumulation=accumulation)
    except InputDataError as exc:
        if shown == path:
            raise
        raise InputDataError(shown, exc.reason) from None
    for acc in accs:
        acc.path = shown
    return accs


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
    with _named_as_shown(path):
        name = detect_format(path)
        with _one_line(path, name):
            return get_reader(name).scan(path, variable=variable, accumulation=accumulation)


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
    with _named_as_shown(ref.path), _one_line(ref.path, ref.format):
        data, grid = get_reader(ref.format).load(ref)
    if data.shape != grid.shape:
        raise InputDataError(ref.path, f"field {ref.describe()} is {data.shape[0]}x{data.shape[1]} but its grid "
                                       f"{ref.grid!r} is {grid.shape[0]}x{grid.shape[1]}")
    return data, grid


def load_field_counted(ref: FieldRef) -> tuple[np.ndarray, SourceGrid, FillCount]:
    """:func:`load_field`, with the fill values the reader set missing (formats whose module offers
    ``load_counted``: GRIB and CF NetCDF; none counted for the others)."""
    module = get_reader(ref.format)
    counted = getattr(module, "load_counted", None)
    if counted is None:
        data, grid = load_field(ref)
        return data, grid, FillCount()
    with _named_as_shown(ref.path), _one_line(ref.path, ref.format):
        data, grid, fill = counted(ref)
    if data.shape != grid.shape:
        raise InputDataError(ref.path, f"field {ref.describe()} is {data.shape[0]}x{data.shape[1]} but its grid "
                                       f"{ref.grid!r} is {grid.shape[0]}x{grid.shape[1]}")
    return data, grid, fill


@contextmanager
def _named_as_shown(path: Path) -> Iterator[None]:
    """Errors about a file spooled from standard input name ``-`` (see :func:`harpnet_cli.io.pipes.shown_path`)."""
    from harpnet_cli.io.pipes import shown_path

    try:
        yield
    except InputDataError as exc:
        shown = shown_path(path)
        if shown == path:
            raise
        raise InputDataError(shown, exc.reason) from None


@contextmanager
def _one_line(path: Path, name: str) -> Iterator[None]:
    """Turn any failure of a reader library into a one-line :class:`InputDataError`."""
    try:
        yield
    except (InputDataError, MemoryError):
        raise
    except Exception as exc:  # ecCodes, netCDF4/HDF5, zarr, xarray and numpy raise many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputDataError(path, f"unreadable {name} file: {first}") from None


def _head(path: Path) -> bytes:
    """The first bytes of a file (decompressed when it is gzip), with one-line errors for missing,
    empty or unreadable files."""
    from harpnet_cli.io.compression import gunzip_head, is_gzip

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputDataError(path, "file not found") from None
    except OSError as exc:
        raise InputDataError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise InputDataError(path, f"is {kind}, not a regular file; to read a GRIB stream, pipe it to "
                                   "standard input and pass '-'")
    try:
        with open(path, "rb", opener=_nonblocking) as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputDataError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise InputDataError(path, "empty file (0 bytes)")
    if is_gzip(head):
        head = gunzip_head(path, _HEAD_BYTES)
        if not head:
            raise InputDataError(path, "empty gzip file (nothing inside)")
    return head


def _nonblocking(path: str, flags: int) -> int:
    """``os.open`` that never waits (a file swapped for a FIFO after the check must not hang the run)."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def _is_gzip_file(path: Path) -> bool:
    """Whether the file itself (not its content) is gzip-compressed."""
    from harpnet_cli.io.compression import is_gzip

    with open(path, "rb") as handle:
        return is_gzip(handle.read(2))


#: Magic numbers of formats people hand to a precipitation tool by mistake, for the error message.
_KNOWN_STARTS = {
    b"II*\x00": "a TIFF image (GeoTIFF is not read: convert it, e.g. gdal_translate -of netCDF)",
    b"MM\x00*": "a TIFF image (GeoTIFF is not read: convert it, e.g. gdal_translate -of netCDF)",
    b"II+\x00": "a BigTIFF image (GeoTIFF is not read: convert it, e.g. gdal_translate -of netCDF)",
    b"MM\x00+": "a BigTIFF image (GeoTIFF is not read: convert it, e.g. gdal_translate -of netCDF)",
    b"\x0e\x03\x13\x01": "an HDF4 file (convert it to NetCDF-4 first)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (unzip it first)",
    b"BZh": "a bzip2 archive (decompress it first)",
    b"\xfd7zXZ": "an xz archive (decompress it first)",
    b"\x28\xb5\x2f\xfd": "a zstd archive (decompress it first)",
}


def _describe_start(head: bytes) -> str:
    """``"it is a TIFF image …"``, ``"it starts with text 'hello'"`` or ``"it starts with binary data"``."""
    for magic, what in _KNOWN_STARTS.items():
        if head.startswith(magic):
            return f"it is {what}"
    return f"it starts with {_start_text(head)}"


def _start_text(head: bytes) -> str:
    """``"text 'hello'"`` or ``"binary data"``."""
    sample = head[:24]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"text {text.strip()[:20]!r}"
    return "binary data"
