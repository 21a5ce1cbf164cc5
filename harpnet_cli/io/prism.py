"""Read a PRISM climate normal: an ESRI BIL raster (``.bil`` + ``.hdr``), zipped or not.

PRISM distributes its normals as a zip holding ``NAME.bil`` (the raw raster, band-interleaved by
line) and ``NAME.hdr`` (its ESRI header), e.g. ``PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip``:
1405 x 621 float32 cells of 2.5′ (1/24°), upper-left cell centre −125.0, 49.9167, −9999 = no
data, precipitation in mm per day. Byte order, size, pixel type, origin, spacing and the
no-data value are all read from the header (keys ``BYTEORDER``, ``NROWS``, ``NCOLS``,
``NBANDS``, ``NBITS``, ``PIXELTYPE``, ``SKIPBYTES``, ``ULXMAP``, ``ULYMAP``, ``XDIM``,
``YDIM``, ``NODATA``); ``ULXMAP``/``ULYMAP`` are the *centre* of the upper-left cell (ESRI).

Cite the PRISM Climate Group, Oregon State University, when the data are used.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import SourceGrid

#: Header keys that must be present.
REQUIRED_KEYS = ("NROWS", "NCOLS", "ULXMAP", "ULYMAP", "XDIM", "YDIM")


@dataclass(frozen=True)
class BilRaster:
    """A single-band lat/lon raster, rows ordered south → north like every HARPNET array.

    Attributes
    ----------
    lat : numpy.ndarray
        ``(ny,)`` cell-centre latitudes, ascending (degrees).
    lon : numpy.ndarray
        ``(nx,)`` cell-centre longitudes, ascending (degrees, as in the file).
    data : numpy.ndarray
        ``(ny, nx)`` float32 values (PRISM precipitation: mm per day); NaN where no data.
    path : pathlib.Path
        The file read.
    """

    lat: np.ndarray
    lon: np.ndarray
    data: np.ndarray
    path: Path

    @property
    def grid(self) -> SourceGrid:
        """The raster's coordinates as a regular :class:`~harpnet_cli.fields.SourceGrid`."""
        step = abs(float(self.lon[1] - self.lon[0])) if self.lon.size > 1 else 0.0
        return SourceGrid(self.lat, self.lon, f"PRISM regular {step * 60:.3g}′")


def parse_header(text: str) -> dict[str, str]:
    """Keys (upper case) and values of an ESRI ``.hdr`` file.

    Parameters
    ----------
    text : str
        The header: one ``KEY value`` pair per line; blank lines are skipped.

    Returns
    -------
    dict
        ``{"NROWS": "621", ...}``.
    """
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0].upper()] = parts[1].strip()
    return out


def _dtype(hdr: dict[str, str]) -> np.dtype:
    """numpy dtype of the raster from ``NBITS``, ``PIXELTYPE`` and ``BYTEORDER``."""
    bits = int(hdr.get("NBITS", "8"))
    kind = hdr.get("PIXELTYPE", "UNSIGNEDINT").upper()
    order = hdr.get("BYTEORDER", "I").upper()
    endian = "<" if order in ("I", "LSBFIRST") else ">" if order in ("M", "MSBFIRST") else None
    if endian is None:
        raise ValueError(f"unknown BYTEORDER {order!r}")
    code = {"FLOAT": "f", "SIGNEDINT": "i", "UNSIGNEDINT": "u"}.get(kind)
    if code is None or (code == "f" and bits not in (32, 64)) or bits not in (8, 16, 32, 64):
        raise ValueError(f"unsupported pixel type {kind} with {bits} bits")
    return np.dtype(f"{endian}{code}{bits // 8}")


def decode_bil(raw: bytes, header: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a single-band BIL raster.

    Parameters
    ----------
    raw : bytes
        The ``.bil`` file's bytes.
    header : str
        The ``.hdr`` file's text.

    Returns
    -------
    lat : numpy.ndarray
        ``(ny,)`` ascending cell-centre latitudes.
    lon : numpy.ndarray
        ``(nx,)`` ascending cell-centre longitudes.
    data : numpy.ndarray
        ``(ny, nx)`` float32, south → north, NaN where the header's ``NODATA`` value (or a
        non-finite value) is stored.

    Raises
    ------
    ValueError
        If the header is incomplete or disagrees with the size of ``raw``.
    """
    hdr = parse_header(header)
    missing = [k for k in REQUIRED_KEYS if k not in hdr]
    if missing:
        raise ValueError(f"the .hdr header lacks {', '.join(missing)}")
    try:
        ny, nx = int(hdr["NROWS"]), int(hdr["NCOLS"])
        bands, skip = int(hdr.get("NBANDS", "1")), int(hdr.get("SKIPBYTES", "0"))
        x0, y0, dx, dy = (float(hdr[k]) for k in ("ULXMAP", "ULYMAP", "XDIM", "YDIM"))
        nodata = float(hdr["NODATA"]) if "NODATA" in hdr else None
    except ValueError:
        raise ValueError("the .hdr header has a non-numeric size, origin, spacing or NODATA") from None
    if bands != 1:
        raise ValueError(f"only single-band rasters are read, the header says NBANDS {bands}")
    if ny < 1 or nx < 1 or dx <= 0 or dy <= 0:
        raise ValueError(f"bad raster geometry: {ny} x {nx} cells of {dx} x {dy}")
    dtype = _dtype(hdr)
    need = skip + ny * nx * dtype.itemsize
    if len(raw) != need:
        raise ValueError(f"the raster has {len(raw)} bytes, the header describes {need} ({ny} x {nx} {dtype})")
    values = np.frombuffer(raw, dtype=dtype, count=ny * nx, offset=skip).reshape(ny, nx).astype(np.float32)
    bad = ~np.isfinite(values)
    if nodata is not None:
        bad |= values == np.float32(nodata)
    values[bad] = np.nan
    lat = y0 - dy * np.arange(ny)
    lon = x0 + dx * np.arange(nx)
    return lat[::-1].copy(), lon, np.ascontiguousarray(values[::-1])


def _members(path: Path) -> tuple[bytes, str]:
    """``(.bil bytes, .hdr text)`` from a zip archive or from a ``.bil`` with its sibling ``.hdr``."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bils = [n for n in names if n.lower().endswith(".bil")]
            if len(bils) != 1:
                raise ValueError(f"the archive holds {len(bils)} .bil rasters, not one")
            hdr = bils[0][:-4] + ".hdr"
            match = next((n for n in names if n.lower() == hdr.lower()), None)
            if match is None:
                raise ValueError(f"the archive has no header {Path(hdr).name} beside {Path(bils[0]).name}")
            return zf.read(bils[0]), zf.read(match).decode("ascii", errors="replace")
    if path.suffix.lower() == ".bil":
        hdr_path = next((p for p in (path.with_suffix(".hdr"), path.with_suffix(".HDR")) if p.is_file()), None)
        if hdr_path is None:
            raise ValueError(f"no header {path.with_suffix('.hdr').name} beside the raster")
        return path.read_bytes(), hdr_path.read_text(encoding="ascii", errors="replace")
    raise ValueError("not a zip archive or a .bil raster (expected a PRISM ..._bil.zip)")


def read_prism(path: str | Path) -> BilRaster:
    """Read a PRISM normal (``..._bil.zip``, or an unzipped ``.bil`` beside its ``.hdr``).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    BilRaster
        Values as stored (PRISM precipitation normals: mm per day), rows south → north.

    Raises
    ------
    InputDataError
        One line naming the file when it is missing, not a BIL raster, or inconsistent.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(p, "no such file" if not p.exists() else "not a file")
    try:
        raw, header = _members(p)
        lat, lon, data = decode_bil(raw, header)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc).strip().splitlines()
        raise InputDataError(p, text[0] if text else type(exc).__name__) from None
    if lat.size < 2 or lon.size < 2:
        raise InputDataError(p, f"a {lat.size} x {lon.size} raster is too small to remap")
    return BilRaster(lat, lon, data, p)
