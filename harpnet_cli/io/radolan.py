"""DWD RADOLAN radar–gauge composites: binary products, ESRI ASCII hours and tar archives of them.

Deutscher Wetterdienst's RADOLAN analyses (radar adjusted to gauges) lie on a 900 × 900 km
polar stereographic grid over Germany (:data:`PROJ`: a sphere of radius 6,370,040 m, true at
60° N, x along 10° E; lower-left corner x = −523,462 m, y = −4,658,645 m; 1 km cells). Three
layouts are read, each also gzip-compressed, as DWD ships them:

* **binary composites** (``raa01-rw_10000-YYMMDDHHMM-dwd---bin``): an ASCII header ending at
  byte ``\\x03`` — product (``RW`` hourly, ``SQ`` 6-hourly, ``SH`` 12-hourly, ``SF`` 24-hourly
  sums), day/time and month/year of the window end, ``PR E-01`` (precision 0.1 mm),
  ``INT`` (window length in minutes), ``GP 900x 900`` — then 900 × 900 little-endian uint16, rows
  south → north, value ``v & 0x0FFF`` times the precision; bit ``0x2000`` marks no data;
* **ESRI ASCII grids** of RW hours (``RW_YYYYMMDD-HHMM.asc``, as in DWD's daily ``RW-YYYYMMDD.tar.gz``
  archives): a 6-line header, integers in 0.1 mm, first row northernmost, ``NODATA_value`` missing.
  The grid is recognised from the header (the RADOLAN corner, cell size and size); the window end
  and the product come from the file name, since the header has neither;
* **tar archives** (optionally gzip) of either: one field per member.

Windows end at HH:50 UTC (RADOLAN's hour), so ``prepare`` aligns windows to the data's own minute.
Cite "Source: Deutscher Wetterdienst (DWD), RADOLAN" where these data are used (CC BY 4.0).
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid
from harpnet_cli.io.compression import read_bytes
from harpnet_cli.io.gridcache import cached_grid

#: gzip-compressed files are read too.
READS_GZIP = True
#: The RADOLAN grid's projection (PROJ string).
PROJ = "+proj=stere +lat_0=90 +lat_ts=60 +lon_0=10 +a=6370040 +b=6370040 +units=m +no_defs"
#: Lower-left corner of the 900 × 900 grid (m, projection coordinates) and cell size (m).
X0, Y0, CELL, SIZE = -523_462.0, -4_658_645.0, 1000.0, 900
#: Grid key of the RADOLAN grid.
GRID_KEY = "radolan-900x900-stere-1km"
#: Amount products and their window length in minutes (when the header has no ``INT``).
AMOUNT_PRODUCTS: dict[str, int] = {"RW": 60, "SQ": 360, "SH": 720, "SF": 1440}

_BINARY = re.compile(rb"^([A-Z]{2})(\d{6})10000(\d{4})BY")
_ASCII_NAME = re.compile(r"(?:^|/)([A-Z]{2})_(\d{8})-(\d{4})\.asc$")
_MISSING_BIT = 0x2000
_VALUE_MASK = 0x0FFF
_ASCII_KEYS = ("ncols", "nrows", "xllcorner", "yllcorner", "cellsize")


@dataclass(frozen=True)
class _Field:
    """One decoded RADOLAN field (rows south → north)."""

    product: str
    end: datetime
    minutes: int
    data: np.ndarray


def sniff(path: Path, head: bytes) -> bool:
    """True for a RADOLAN binary composite, an ESRI ASCII grid or a tar archive (``head`` decompressed).

    ESRI ASCII grids and tar archives are taken here whatever they hold; :func:`read` then refuses,
    in one line, a grid that is not on the RADOLAN grid or an archive member that is not RADOLAN.
    """
    if _BINARY.match(head) and b"\x03" in head:
        return True
    if head.lstrip()[:5].lower() == b"ncols":
        return True
    return head[257:262] == b"ustar"


def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
    """Every field of a RADOLAN file or archive.

    Parameters
    ----------
    path : Path
        A binary composite, an ESRI ASCII RW grid or a tar archive of either (each may be gzip).
    variable : str, optional
        A product (``RW``, ``SF``, …): keep only fields of that product.
    accumulation : timedelta, optional
        Must agree with the product's window length when given.

    Returns
    -------
    list of Accumulation
        One per field, in archive order; ``data`` ``(900, 900)`` float32 mm, NaN where missing.

    Raises
    ------
    InputDataError
        A damaged file, a grid that is not RADOLAN's, an unknown product or time.
    """
    grid = _grid()
    out = []
    for name, field in _fields(path, variable, accumulation):
        out.append(Accumulation(data=field.data, grid=grid, start=field.end - timedelta(minutes=field.minutes),
                                end=field.end, path=path, label=f"RADOLAN {field.product}" + (f" {name}" if name
                                                                                               else "")))
    return out


def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
    """One ref per field (the files are small: this decodes them once to check them)."""
    return [FieldRef(path, "radolan", (name, variable or ""), f.end - timedelta(minutes=f.minutes), f.end,
                     "interval", None, GRID_KEY) for name, f in _fields(path, variable, accumulation)]


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """The field of ``ref``: ``(900, 900)`` float32 mm and the RADOLAN grid."""
    member, variable = ref.locator[0], ref.locator[1]
    for name, field in _fields(ref.path, str(variable) or None, None, member=str(member) or None):
        if name == member and field.end == ref.end:
            return field.data, cached_grid(GRID_KEY, _grid)
    raise InputDataError(ref.path, f"no RADOLAN field {member or ''} ending {ref.end:%Y-%m-%d %H:%M}; "
                                   "has the file changed?")


# -- decoding -------------------------------------------------------------------------------------
def _fields(path: Path, variable: str | None, accumulation: timedelta | None,
            member: str | None = None) -> list[tuple[str, _Field]]:
    """``(member name or "", field)`` of every field (of one archive member when ``member`` is given),
    filtered by product and checked against ``accumulation``."""
    raw = read_bytes(path)
    if raw[257:262] == b"ustar":
        items = _tar_members(path, raw, member)
    else:
        items = [("", _decode(path, path.name, raw))]
    if variable is not None:
        items = [(n, f) for n, f in items if f.product == variable]
        if not items:
            raise InputDataError(path, f"no RADOLAN {variable} field")
    if accumulation is not None:
        for name, f in items:
            if timedelta(minutes=f.minutes) != accumulation:
                raise InputDataError(path, f"{name or f.product} is a {f.minutes}-minute sum, but --accumulation "
                                           f"says {accumulation.total_seconds() / 60:g} minutes")
    if not items:
        raise InputDataError(path, "no RADOLAN field in the archive")
    return items


def _tar_members(path: Path, raw: bytes, only: str | None = None) -> list[tuple[str, _Field]]:
    """Decode every regular member of a tar archive (or only the one named ``only``)."""
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
            for member in archive:
                if not member.isfile() or (only is not None and member.name != only):
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                data = handle.read()
                if data[:2] == b"\x1f\x8b":
                    import gzip

                    data = gzip.decompress(data)
                out.append((member.name, _decode(path, member.name, data)))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputDataError(path, f"damaged tar archive ({exc})") from None
    return sorted(out, key=lambda item: item[1].end)


def _decode(path: Path, name: str, raw: bytes) -> _Field:
    """One binary composite or ESRI ASCII grid."""
    if _BINARY.match(raw):
        return _decode_binary(path, name, raw)
    if raw.lstrip()[:5].lower() == b"ncols":
        return _decode_ascii(path, name, raw)
    raise InputDataError(path, f"{name}: not a RADOLAN composite or an ESRI ASCII grid")


def _decode_binary(path: Path, name: str, raw: bytes) -> _Field:
    """A binary composite: header to ``\\x03``, then uint16 values (rows south → north)."""
    where = f"{name}: " if name != path.name else ""
    end = raw.find(b"\x03")
    if end < 0:
        raise InputDataError(path, f"{where}RADOLAN header without its end byte")
    header = raw[:end].decode("ascii", errors="replace")
    product = header[:2]
    if product not in AMOUNT_PRODUCTS:
        raise InputDataError(path, f"{where}RADOLAN product {product} is not a precipitation amount this reader "
                                   f"knows ({', '.join(AMOUNT_PRODUCTS)})")
    try:
        when = datetime.strptime(header[2:8] + header[13:17], "%d%H%M%m%y")
    except ValueError:
        raise InputDataError(path, f"{where}bad RADOLAN date/time {header[2:8]!r} {header[13:17]!r}") from None
    minutes = int(m.group(1)) if (m := re.search(r"INT\s*(\d+)", header)) else AMOUNT_PRODUCTS[product]
    size = re.search(r"GP\s*(\d+)\s*x\s*(\d+)", header)
    if size is None or (int(size.group(1)), int(size.group(2))) != (SIZE, SIZE):
        raise InputDataError(path, f"{where}RADOLAN grid is not {SIZE}x{SIZE} (header {header[:60]!r})")
    precision = 10.0 ** int(m.group(1)) if (m := re.search(r"PR\s*E([-+]?\d+)", header)) else 0.1
    body = raw[end + 1:end + 1 + 2 * SIZE * SIZE]
    if len(body) != 2 * SIZE * SIZE:
        raise InputDataError(path, f"{where}truncated RADOLAN composite ({len(body)} of {2 * SIZE * SIZE} data bytes)")
    values = np.frombuffer(body, dtype="<u2").reshape(SIZE, SIZE)
    data = (values & _VALUE_MASK).astype(np.float32) * np.float32(precision)
    data[(values & _MISSING_BIT) != 0] = np.nan
    return _Field(product, when, minutes, data)


def _decode_ascii(path: Path, name: str, raw: bytes) -> _Field:
    """An ESRI ASCII RW grid on the RADOLAN grid; time and product from the RADOLAN file name."""
    where = f"{name}: " if name != path.name else ""
    lines = raw.decode("ascii", errors="replace").splitlines()
    header: dict[str, float] = {}
    for line in lines[:6]:
        key, _, value = line.strip().partition(" ")
        try:
            header[key.lower()] = float(value)
        except ValueError:
            raise InputDataError(path, f"{where}bad ESRI ASCII header line {line.strip()[:40]!r}") from None
    if any(k not in header for k in _ASCII_KEYS):
        raise InputDataError(path, f"{where}ESRI ASCII header without {', '.join(_ASCII_KEYS)}")
    geometry = (header["ncols"], header["nrows"], header["xllcorner"], header["yllcorner"], header["cellsize"])
    if geometry != (SIZE, SIZE, X0, Y0, CELL):
        raise InputDataError(path, f"{where}ESRI ASCII grid on an unknown grid ({int(header['ncols'])}x"
                                   f"{int(header['nrows'])}, corner {header['xllcorner']:g} {header['yllcorner']:g}); "
                                   "only the RADOLAN 900x900 grid is known")
    match = _ASCII_NAME.search(name)
    if match is None or match.group(1) not in AMOUNT_PRODUCTS:
        raise InputDataError(path, f"{where}ESRI ASCII grid without a RADOLAN file name (e.g. RW_20221018-0050.asc): "
                                   "its product and time are unknown")
    product = match.group(1)
    when = datetime.strptime(match.group(2) + match.group(3), "%Y%m%d%H%M")
    try:
        values = np.array(" ".join(lines[6:]).split(), dtype=np.float32)
    except ValueError as exc:
        raise InputDataError(path, f"{where}bad ESRI ASCII values ({exc})") from None
    if values.size != SIZE * SIZE:
        raise InputDataError(path, f"{where}ESRI ASCII grid holds {values.size} values, not {SIZE}x{SIZE}")
    values = values.reshape(SIZE, SIZE)
    nodata = header.get("nodata_value", -1.0)
    data = values[::-1] * np.float32(0.1)  # integers in 0.1 mm, first row northernmost
    data[values[::-1] == nodata] = np.nan
    return _Field(product, when, AMOUNT_PRODUCTS[product], np.ascontiguousarray(data))


def _grid() -> SourceGrid:
    """Cell-centre latitudes and longitudes of the RADOLAN grid, ``(900, 900)`` each, rows south → north."""
    import pyproj

    centres = X0 + CELL * (np.arange(SIZE) + 0.5)
    y = Y0 + CELL * (np.arange(SIZE) + 0.5)
    xx, yy = np.meshgrid(centres, y)
    to_lonlat = pyproj.Transformer.from_crs(pyproj.CRS.from_proj4(PROJ), "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    return SourceGrid(lat=np.asarray(lat), lon=np.asarray(lon), description="RADOLAN polar stereographic 1 km")
