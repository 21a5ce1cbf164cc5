"""Read precipitation from GRIB1 and GRIB2 files with ecCodes: :func:`read`, :func:`scan`, :func:`load`.

Every message is visited with ``codes_grib_new_from_file``: ``xr.open_dataset(engine="cfgrib")``
silently keeps only the first of several ``tp`` messages (GFS carries a 6-hour bucket *and* a
running total), so cfgrib is not used here.

Selected messages
-----------------
* ``tp``/APCP: GRIB2 discipline 0, category 1, number 8; GRIB1 table 2 parameter 61 (NCEP, Stage
  IV); ECMWF ``tp`` (GRIB1 table 128 parameter 228, GRIB2 paramId 228) in metres.
* MRMS QPE: NSSL local discipline 209, category 6, number 37 (MultiSensor QPE 01H Pass2) or 9
  (GaugeCorr QPE 01H). The data time is the *end* of the hour; −3 (no coverage) and 9999 become NaN.

Windows come from ``dataDate``/``dataTime`` plus ``startStep``/``endStep`` (read in minutes, so
``stepUnits`` never matters). A message with ``startStep == endStep > 0`` is taken as accumulated
since the forecast start, as ECMWF ``tp`` is (cfgrib calls it ``stepType=instant``).

:func:`read` decodes every selected message. :func:`scan` reads only the header keys (no data
section is decoded) and returns one :class:`~harpnet_cli.fields.FieldRef` per message, located by
its byte offset; :func:`load` decodes that one message. A file is recognised (:func:`sniff`) by
the ``GRIB`` magic among its first bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyproj  # noqa: F401  # before eccodes: once eckit's bundled PROJ is loaded, pyproj crashes

# isort: split
import eccodes

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid, clip_negatives, grid_key
from harpnet_cli.io.gridcache import cached_grid
from harpnet_cli.units import ACCEPTED_TEXT, amount_factor

#: MRMS (NSSL discipline 209, category 6) QPE products and their accumulation periods.
MRMS_QPE_PERIODS: dict[int, timedelta] = {
    37: timedelta(hours=1),  # MultiSensor_QPE_01H_Pass2
    9: timedelta(hours=1),  # GaugeCorr_QPE_01H
}


_MRMS_NO_COVERAGE_BELOW = -2.5  # MRMS writes -3 for "no coverage"
_MRMS_MISSING_FROM = 9999.0
_FILE_PERIOD = re.compile(r"_(\d{2})H_")
_UNSUPPORTED_GRIDS = ("sh", "unknown", "healpix", "unstructured_grid")


@dataclass(frozen=True)
class _Kind:
    """What a precipitation message is: ``"apcp"`` (amount) or ``"mrms"`` (QPE ending at data time)."""

    name: str
    mrms_number: int | None = None


def sniff(path: Path, head: bytes) -> bool:
    """True when ``GRIB`` appears among the first bytes of the file (``head``; ``b""`` for a directory)."""
    return b"GRIB" in head


def read(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[Accumulation]:
    """Read every precipitation message of a GRIB1/GRIB2 file.

    Parameters
    ----------
    path : Path
        The GRIB file (several messages, editions may mix).
    variable : str, optional
        Keep only precipitation messages whose ecCodes ``shortName`` is this.
    accumulation : timedelta, optional
        Period of MRMS QPE messages whose product number and file name do not give one.

    Returns
    -------
    list of Accumulation
        One per distinct precipitation message, in file order; ``data`` is ``(ny, nx)`` float32 mm,
        NaN where missing; exact duplicates (same window, member, grid and values) appear once.

    Raises
    ------
    InputDataError
        Truncated or corrupt file, no precipitation message, or unknown units.
    """
    accs: list[Accumulation] = []
    seen: list[str] = []
    grids: dict[str, SourceGrid] = {}
    with open(path, "rb") as handle:
        for number, gid in _messages(path, handle):
            try:
                kind = _precip_kind(gid)
                seen.append(_describe_param(gid))
                if kind is None or (variable is not None and _get(gid, "shortName") != variable):
                    continue
                _append_unique(accs, _read_message(path, gid, number, kind, grids, accumulation))
            except eccodes.CodesInternalError as exc:
                raise InputDataError(path, f"corrupt GRIB message #{number} (ecCodes: {exc})") from None
            finally:
                eccodes.codes_release(gid)
    check_found(path, seen, len(accs), variable)
    return accs


def scan(path: Path, *, variable: str | None = None, accumulation: timedelta | None = None) -> list[FieldRef]:
    """List the precipitation messages of a GRIB file from their header keys only.

    Parameters
    ----------
    path : Path
        The GRIB file.
    variable, accumulation
        As for :func:`read`.

    Returns
    -------
    list of FieldRef
        One per precipitation message in file order (duplicates included), ``format="grib"``; the
        locator is ``(byte offset, message number)``. ``kind`` is ``"running"`` for a message
        accumulated since the forecast start (``startStep == endStep > 0``), else ``"interval"``.

    Raises
    ------
    InputDataError
        Truncated file, no precipitation message, unknown units or an unsupported grid.
    """
    refs: list[FieldRef] = []
    seen: list[str] = []
    with open(path, "rb") as handle:
        for number, gid in _headers(path, handle):
            kind = _precip_kind(gid)
            seen.append(_describe_param(gid))
            if kind is None or (variable is not None and _get(gid, "shortName") != variable):
                continue
            _units_factor(path, gid, number, kind)  # refuse unknown units now, not in a worker
            refs.append(_ref(path, gid, number, kind, accumulation))
    check_found(path, seen, len(refs), variable)
    return refs


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Decode the one message at the ref's byte offset.

    Parameters
    ----------
    ref : FieldRef
        As :func:`scan` returned it.

    Returns
    -------
    data : numpy.ndarray
        ``(ny, nx)`` float32 mm in scanning order, NaN where missing, ``>= 0``.
    grid : SourceGrid
        Shared by the fields with the same grid key (:mod:`harpnet_cli.io.gridcache`).

    Raises
    ------
    InputDataError
        No message, or no precipitation message, at the offset (the file has changed).
    """
    offset, number = int(ref.locator[0]), int(ref.locator[1])
    with open(ref.path, "rb") as handle:
        handle.seek(offset)
        gid = eccodes.codes_grib_new_from_file(handle)
        if gid is None:
            raise InputDataError(ref.path, f"no GRIB message #{number} at byte {offset}; has the file changed?")
        try:
            kind = _precip_kind(gid)
            if kind is None:
                raise InputDataError(ref.path, f"GRIB message #{number} is not precipitation; has the file changed?")
            grid = cached_grid(ref.grid, lambda: _grid(ref.path, gid, {}))
            data = _values_2d(ref.path, gid, number, kind)
        finally:
            eccodes.codes_release(gid)
    clip_negatives(data)
    return data, grid


def check_found(path: Path, seen: list[str], found: int, variable: str | None) -> None:
    """Refuse a file with no GRIB message, or none of precipitation (listing what it holds).

    Parameters
    ----------
    path : Path
        The file, named in the error.
    seen : list of str
        Parameter names of every message read.
    found : int
        How many precipitation messages were kept.
    variable : str or None
        The ``shortName`` asked for, if any.
    """
    if not seen:
        raise InputDataError(path, "no GRIB messages in the file")
    if not found:
        wanted = f" named {variable!r}" if variable else ""
        raise InputDataError(path, f"no precipitation message{wanted}; found {_summary(seen)}")


def _messages(path: Path, handle: BinaryIO) -> Iterator[tuple[int, int]]:
    """Yield ``(number, handle id)`` for each message, turning ecCodes errors into one line."""
    number = 0
    while True:
        number += 1
        try:
            gid = eccodes.codes_grib_new_from_file(handle)
        except eccodes.PrematureEndOfFileError:
            raise InputDataError(path, f"truncated GRIB file: message #{number} is cut short") from None
        except eccodes.CodesInternalError as exc:
            raise InputDataError(path, f"corrupt GRIB message #{number} (ecCodes: {exc})") from None
        if gid is None:
            return
        yield number, gid


def _headers(path: Path, handle: BinaryIO) -> Iterator[tuple[int, int]]:
    """Yield ``(number, handle id)`` of each message, its header only (no data section); released after use."""
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


def _ref(path: Path, gid: int, number: int, kind: _Kind, accumulation: timedelta | None) -> FieldRef:
    """The ref of one precipitation message."""
    reference = _reference_time(gid)
    first, last = _steps_minutes(gid)
    start, end = _window(path, gid, kind, reference, accumulation)
    running = kind.name != "mrms" and first == last > 0  # ECMWF tp: accumulated since the forecast start
    offset = int(_get(gid, "offset"))
    return FieldRef(path=path, format="grib", locator=(offset, number), start=start, end=end,
                    kind="running" if running else "interval", member=_member(gid),
                    grid=_grid_key(path, gid), reference_time=None if kind.name == "mrms" else reference)


def _grid_key(path: Path, gid: int) -> str:
    """Grid key from the grid's type, size and geometry keys (no coordinates are computed)."""
    grid_type = str(_get(gid, "gridType", "unknown"))
    if grid_type.startswith("reduced") or grid_type in _UNSUPPORTED_GRIDS or _get(gid, "alternativeRowScanning"):
        raise InputDataError(path, f"unsupported GRIB grid {grid_type!r}; regrid to a regular grid first")
    ni, nj = _ni_nj(gid)
    names = ("latitudeOfFirstGridPointInDegrees", "longitudeOfFirstGridPointInDegrees",
             "latitudeOfLastGridPointInDegrees", "longitudeOfLastGridPointInDegrees", "DxInMetres", "DyInMetres",
             "LaDInDegrees", "LoVInDegrees", "Latin1InDegrees", "Latin2InDegrees", "iScansNegatively",
             "jScansPositively", "jPointsAreConsecutive", "N")
    values = [_get(gid, name) for name in names]
    for k in (1, 3, 7):  # longitudes: one convention
        if isinstance(values[k], float):
            values[k] = values[k] % 360.0
    return grid_key(grid_type, (nj, ni), values)


def _get(gid: int, key: str, default: Any = None) -> Any:
    """A key's native value, or ``default`` when the message does not define it."""
    try:
        if not eccodes.codes_is_defined(gid, key):
            return default
        return eccodes.codes_get(gid, key)
    except eccodes.CodesInternalError:
        return default


def _precip_kind(gid: int) -> _Kind | None:
    """Classify a message: precipitation amount, MRMS QPE, or None for anything else."""
    if _get(gid, "edition") == 2:
        triple = (_get(gid, "discipline"), _get(gid, "parameterCategory"), _get(gid, "parameterNumber"))
        if triple[:2] == (209, 6) and triple[2] in MRMS_QPE_PERIODS:
            return _Kind("mrms", mrms_number=int(triple[2]))
        # probabilities (4.5, 4.9), percentiles (4.6, 4.10) and derived statistics other than the
        # mean (4.2, 4.12, e.g. the spread HARPNET itself writes) are not amounts, whatever the parameter
        template = _get(gid, "productDefinitionTemplateNumber")
        if template in (5, 6, 9, 10) or (template in (2, 12) and _get(gid, "derivedForecast") not in (0, 1)):
            return None
        if triple == (0, 1, 8):
            return _Kind("apcp")
    else:
        table, param = _get(gid, "table2Version"), _get(gid, "indicatorOfParameter")
        if (table == 128 and param == 228) or (table is not None and table < 128 and param == 61):
            return _Kind("apcp")
    if _get(gid, "paramId") in (228, 228228):
        return _Kind("apcp")
    return None


def _describe_param(gid: int) -> str:
    """``shortName``, or ``discipline/category/number`` when ecCodes has no name for it."""
    name = _get(gid, "shortName", "unknown")
    if name not in ("unknown", None):
        return str(name)
    if _get(gid, "edition") == 2:
        return f"{_get(gid, 'discipline')}/{_get(gid, 'parameterCategory')}/{_get(gid, 'parameterNumber')}"
    return f"table{_get(gid, 'table2Version')}/param{_get(gid, 'indicatorOfParameter')}"


def _summary(names: list[str], limit: int = 8) -> str:
    """``"t (2), msl"``: distinct names with counts, shortened to ``limit`` entries."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    parts = [f"{n} ({c})" if c > 1 else n for n, c in counts.items()]
    more = f", … {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def _read_message(path: Path, gid: int, number: int, kind: _Kind, grids: dict[str, SourceGrid],
                  accumulation: timedelta | None) -> Accumulation:
    """Decode one precipitation message into an :class:`Accumulation`."""
    reference = _reference_time(gid)
    start, end = _window(path, gid, kind, reference, accumulation)
    grid = _grid(path, gid, grids)
    data, clipped = _clip_negatives(_values_2d(path, gid, number, kind))
    label = f"{_describe_param(gid)} {_window_text(start, end, reference)}"
    if clipped:
        label += f"; clipped {clipped}"
    return Accumulation(data=data, grid=grid, start=start, end=end, path=path,
                        reference_time=None if kind.name == "mrms" else reference,
                        member=_member(gid), label=label)


def _reference_time(gid: int) -> datetime:
    """``dataDate`` + ``dataTime`` as a naive UTC datetime."""
    date, hhmm = int(_get(gid, "dataDate")), int(_get(gid, "dataTime"))
    return datetime.strptime(str(date), "%Y%m%d") + timedelta(hours=hhmm // 100, minutes=hhmm % 100)


def _steps_minutes(gid: int) -> tuple[int, int]:
    """``(startStep, endStep)`` in minutes whatever the message's ``stepUnits``."""
    eccodes.codes_set(gid, "stepUnits", "m")
    return int(eccodes.codes_get_long(gid, "startStep")), int(eccodes.codes_get_long(gid, "endStep"))


def _window(path: Path, gid: int, kind: _Kind, reference: datetime,
            accumulation: timedelta | None) -> tuple[datetime, datetime]:
    """Accumulation window ``(start, end)`` of a message."""
    first, last = _steps_minutes(gid)
    if kind.name == "mrms" and first == last:
        end = reference + timedelta(minutes=last)
        return end - _mrms_period(path, kind, accumulation), end
    if first == last:  # ECMWF tp: accumulated since the forecast start
        first = 0
    return reference + timedelta(minutes=first), reference + timedelta(minutes=last)


def _mrms_period(path: Path, kind: _Kind, accumulation: timedelta | None) -> timedelta:
    """Period of an MRMS QPE product: the ``_01H_`` in the file name, the product table, or the option."""
    match = _FILE_PERIOD.search(path.name)
    if match:
        return timedelta(hours=int(match.group(1)))
    if kind.mrms_number in MRMS_QPE_PERIODS:
        return MRMS_QPE_PERIODS[kind.mrms_number]
    if accumulation is not None:
        return accumulation
    raise InputDataError(path, "MRMS QPE product with unknown period; pass --accumulation")


def _member(gid: int) -> int | None:
    """Ensemble member (``perturbationNumber``) or None for a deterministic message."""
    ensemble = _get(gid, "typeOfEnsembleForecast") is not None or _get(gid, "marsType") in ("pf", "cf")
    number = _get(gid, "perturbationNumber") if ensemble else None
    return None if number is None else int(number)


def _units_factor(path: Path, gid: int, number: int, kind: _Kind) -> float:
    """Factor turning the message's values into mm."""
    if kind.name == "mrms":
        return 1.0
    units = str(_get(gid, "units", "unknown"))
    if units == "unknown" and _get(gid, "edition") == 2 and kind.name == "apcp":
        # WMO defines 0/1/8 in kg m-2; ecCodes names it only under NCEP's centre (7)
        units = "kg m**-2"
    factor = amount_factor(units)
    if factor is None:
        raise InputDataError(path, f"message #{number} ({_describe_param(gid)}) has units {units!r}; "
                                   f"expected {ACCEPTED_TEXT}")
    return factor


def _values_2d(path: Path, gid: int, number: int, kind: _Kind) -> np.ndarray:
    """Decoded values in mm, ``(ny, nx)`` float32 in scanning order, NaN where missing."""
    values = eccodes.codes_get_values(gid)
    if _get(gid, "bitmapPresent"):
        values[values == float(_get(gid, "missingValue", 9999))] = np.nan
    if kind.name == "mrms":
        values[(values < _MRMS_NO_COVERAGE_BELOW) | (values >= _MRMS_MISSING_FROM)] = np.nan
    values *= _units_factor(path, gid, number, kind)
    return _to_2d(gid, values).astype(np.float32)


def _to_2d(gid: int, flat: np.ndarray) -> np.ndarray:
    """Reshape a message-length array to ``(nj, ni)`` rows in scanning order."""
    ni, nj = _ni_nj(gid)
    if _get(gid, "jPointsAreConsecutive"):
        return flat.reshape(ni, nj).T
    return flat.reshape(nj, ni)


def _ni_nj(gid: int) -> tuple[int, int]:
    """Points along a row and along a column."""
    ni = _get(gid, "Ni")
    nj = _get(gid, "Nj")
    if ni is None or nj is None:
        ni, nj = _get(gid, "Nx"), _get(gid, "Ny")
    return int(ni), int(nj)


def _clip_negatives(data: np.ndarray) -> tuple[np.ndarray, str]:
    """Clip negative packing noise to 0; return the data and a short account (``""`` if none)."""
    count, lowest = clip_negatives(data)
    return data, f"{count} negative value(s) down to {lowest:.3g} mm" if count else ""


def _grid(path: Path, gid: int, cache: dict[str, SourceGrid]) -> SourceGrid:
    """The message's grid, shared between messages with the same grid section."""
    key = str(_get(gid, "md5GridSection", ""))
    if key and key in cache:
        return cache[key]
    grid_type = str(_get(gid, "gridType", "unknown"))
    boustrophedonic = bool(_get(gid, "alternativeRowScanning"))
    if grid_type.startswith("reduced") or grid_type in _UNSUPPORTED_GRIDS or boustrophedonic:
        raise InputDataError(path, f"unsupported GRIB grid {grid_type!r}; regrid to a regular grid first")
    if grid_type == "regular_ll":
        grid = _regular_ll(gid)
    elif grid_type == "regular_gg":
        grid = _regular_gg(gid)
    else:
        grid = _projected(gid, grid_type)
    if key:
        cache[key] = grid
    return grid


def _regular_ll(gid: int) -> SourceGrid:
    """1-D axes of a regular lat/lon grid in scanning order (either direction, 0…360 or −180…180)."""
    ni, nj = _ni_nj(gid)
    lat = np.linspace(_get(gid, "latitudeOfFirstGridPointInDegrees"),
                      _get(gid, "latitudeOfLastGridPointInDegrees"), nj)
    lon1 = float(_get(gid, "longitudeOfFirstGridPointInDegrees"))
    lon2 = float(_get(gid, "longitudeOfLastGridPointInDegrees"))
    if _get(gid, "iScansNegatively"):
        lon2 = lon2 - 360.0 if lon2 > lon1 else lon2
    elif lon2 < lon1:
        lon2 += 360.0
    lon = np.linspace(lon1, lon2, ni)
    step = abs(lat[1] - lat[0]) if nj > 1 else abs(lon[1] - lon[0]) if ni > 1 else 0.0
    return SourceGrid(lat=np.round(lat, 6), lon=np.round(lon, 6), description=f"regular {step:g}° lat/lon")


def _regular_gg(gid: int) -> SourceGrid:
    """1-D axes of a regular Gaussian grid, read from ecCodes' coordinates."""
    lat = _to_2d(gid, eccodes.codes_get_array(gid, "latitudes"))[:, 0]
    lon = _to_2d(gid, eccodes.codes_get_array(gid, "longitudes"))[0, :]
    return SourceGrid(lat=lat, lon=lon, description=f"regular Gaussian N{_get(gid, 'N', '?')}")


def _projected(gid: int, grid_type: str) -> SourceGrid:
    """2-D coordinates of a projected or rotated grid, ``(ny, nx)`` each."""
    lat = _to_2d(gid, eccodes.codes_get_array(gid, "latitudes"))
    lon = _to_2d(gid, eccodes.codes_get_array(gid, "longitudes"))
    spacing = _get(gid, "DxInMetres") or _get(gid, "DiInMetres")
    text = f" {float(spacing) / 1000:g} km" if spacing else ""
    return SourceGrid(lat=lat, lon=lon, description=f"{grid_type.replace('_', ' ')}{text}")


def _window_text(start: datetime, end: datetime, reference: datetime) -> str:
    """``"0-6h"`` relative to the reference time, or ``"1h ending 2021-07-06 00:00"`` when it is the end."""
    def hours(t: datetime) -> str:
        return f"{(t - reference) / timedelta(hours=1):g}"

    if end == reference and start < end:
        return f"{(end - start) / timedelta(hours=1):g}h ending {end:%Y-%m-%d %H:%M}"
    return f"{hours(start)}-{hours(end)}h"


def _append_unique(accs: list[Accumulation], new: Accumulation) -> None:
    """Append ``new`` unless an identical field (window, member, values) is already there."""
    for old in accs:
        same_field = (old.start, old.end, old.member) == (new.start, new.end, new.member)
        if same_field and old.grid is new.grid and np.array_equal(old.data, new.data, equal_nan=True):
            old.label += " (duplicate message dropped)"
            return
    accs.append(new)
