"""Read precipitation accumulations from any supported file: the one entry point for workflows.

The format is told from the content, not the name: GRIB by the ``GRIB`` magic near the start,
NetCDF/HDF5 by ``CDF\\x01``/``CDF\\x02``/``CDF\\x05``/``\\x89HDF``, and WRF among NetCDF files by
``XLAT``/``XLONG`` plus ``RAINNC`` or ``PREC_ACC_NC``. Readers live in a plain dict registry and
are imported only when used, so ``import harpnet_cli.io.readers`` pulls in neither ecCodes nor
netCDF4. Every failure becomes :class:`~harpnet_cli.errors.InputDataError` naming the file.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation


class Reader(Protocol):
    """A function reading one file into accumulations."""

    def __call__(self, path: Path, *, variable: str | None = None,
                 accumulation: timedelta | None = None) -> list[Accumulation]: ...


#: Reader name -> (module, function), imported on first use.
READERS: dict[str, tuple[str, str]] = {
    "grib": ("harpnet_cli.io.grib", "read_grib"),
    "netcdf": ("harpnet_cli.io.netcdf", "read_netcdf"),
    "wrf": ("harpnet_cli.io.wrf", "read_wrf"),
}

_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
_CLASSIC_MAGIC = (b"CDF\x01", b"CDF\x02")
_HEAD_BYTES = 4096


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    try:
        module, function = READERS[name]
    except KeyError:
        raise ValueError(f"unknown reader {name!r}; known: {', '.join(sorted(READERS))}") from None
    reader: Reader = getattr(importlib.import_module(module), function)
    return reader


def read_accumulations(paths: Sequence[Path | str], *, variable: str | None = None,
                       accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read every precipitation field of every file.

    Parameters
    ----------
    paths : sequence of Path
        GRIB1/GRIB2, CF NetCDF or WRF files, in any mix.
    variable : str, optional
        Name of the precipitation variable (NetCDF/WRF variable, GRIB ``shortName``).
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
    """Read one file with the reader its content calls for (see :func:`read_accumulations`)."""
    name = detect_format(path)
    reader = get_reader(name)
    try:
        return reader(path, variable=variable, accumulation=accumulation)
    except InputDataError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, OSError, RuntimeError) as exc:
        raise InputDataError(path, f"unreadable {name} file: {exc}") from None


def detect_format(path: Path) -> str:
    """``"grib"``, ``"netcdf"`` or ``"wrf"`` from the file's content.

    Raises
    ------
    InputDataError
        Missing, empty, unreadable, or neither GRIB nor NetCDF.
    """
    head = _head(path)
    if head.startswith(_NETCDF_MAGIC):
        if head.startswith(_CLASSIC_MAGIC):
            _check_classic_complete(path)
        return "wrf" if _is_wrf(path) else "netcdf"
    if b"GRIB" in head:
        return "grib"
    raise InputDataError(path, f"not a GRIB or NetCDF file (it starts with {_describe_start(head)})")


def _head(path: Path) -> bytes:
    """The first bytes of a file, with one-line errors for missing, empty or unreadable files."""
    if not path.exists():
        raise InputDataError(path, "file not found")
    if path.is_dir():
        raise InputDataError(path, "is a directory, not a file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputDataError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise InputDataError(path, "empty file (0 bytes)")
    return head


def _describe_start(head: bytes) -> str:
    """``"text 'hello'"`` or ``"binary data"`` for the error message."""
    sample = head[:24]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"text {text.strip()[:20]!r}"
    return "binary data"


def _is_wrf(path: Path) -> bool:
    """True for a NetCDF file in the WRF layout."""
    from harpnet_cli.io.netcdf import open_netcdf
    from harpnet_cli.io.wrf import is_wrf

    with open_netcdf(path) as dataset:
        return is_wrf(dataset)


def _check_classic_complete(path: Path) -> None:
    """Refuse a truncated NetCDF3 file (the netCDF C library reads missing data as zeros)."""
    import scipy.io

    with warnings.catch_warnings(), open(path, "rb") as handle:
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's complaint about mapped arrays on close
        try:
            mapped = scipy.io.netcdf_file(handle, mmap=True)  # maps every variable: fails when cut short
            mapped.variables.clear()
            mapped.close()
            complete = True
        except (ValueError, TypeError, OSError):
            complete = False
    if not complete:
        raise InputDataError(path, "truncated or corrupt NetCDF3 file: its data ends before the header "
                                   "says it should")
