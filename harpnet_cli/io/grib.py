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
the ``GRIB`` magic among its first bytes, followed by edition 1 or 2.

Damaged files
-------------
Nothing is skipped on a guess. An ecCodes failure (an exception, or an error it logs, see
:mod:`harpnet_cli.io.ecc`) while a message is opened, classified or decoded makes it a corrupt
message, a one-line error naming its number, unless its readable keys say plainly that it is no
precipitation (another discipline or category): a damaged ``tp`` message is never silently left
out for another one. Values are read as stored: bitmap-missing cells, MRMS's −3/9999 and the fill
values of :mod:`harpnet_cli.plausibility` become NaN before the unit conversion; negative packing
noise is clipped to 0 and anything below it refused.

A ``lengthOfTimeRange`` of 2**31 or more is a negative length written as a 32-bit two's
complement (Environment Canada's RDPA/CaPA analyses write −24 for "the 24 hours ending at the
reference time"): it is read that way, ``[reference + forecastTime − |length|, reference +
forecastTime]``, and said so in the field's label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import Accumulation, FieldRef, SourceGrid, grid_key
from harpnet_cli.io.ecc import captured, drain, eccodes, errors_in
from harpnet_cli.io.gridcache import cached_grid
from harpnet_cli.plausibility import FillCount, clip_noise, mask_fill
from harpnet_cli.units import ACCEPTED_TEXT, amount_factor

#: MRMS (NSSL discipline 209, category 6) QPE products and their accumulation periods.
MRMS_QPE_PERIODS: dict[int, timedelta] = {
    37: timedelta(hours=1),  # MultiSensor_QPE_01H_Pass2
    9: timedelta(hours=1),  # GaugeCorr_QPE_01H
}


#: The most points a grid may have (MRMS's 0.01° CONUS grid has 24.5 million): a damaged Ni or Nj
#: must not make ecCodes allocate gigabytes.
MAX_POINTS = 200_000_000
#: The longest forecast step or window accepted (2 years, in minutes); beyond it the message is damaged.
MAX_STEP_MINUTES = 2 * 366 * 24 * 60
#: A message whose fill values took its packing range so that amounts are packed coarser than
#: this (mm) has lost them (1e20 among 24-bit values leaves steps of 6e12): it is refused.
PACKING_STEP_MAX_MM = 0.5
_MRMS_NO_COVERAGE_BELOW = -2.5  # MRMS writes -3 for "no coverage"
_MRMS_MISSING_FROM = 9999.0
_FILE_PERIOD = re.compile(r"_(\d{2})H_")
_UNSUPPORTED_GRIDS = ("sh", "unknown", "healpix", "unstructured_grid")


@dataclass(frozen=True)
class _Kind:
    """What a precipitation message is: ``"apcp"`` (amount) or ``"mrms"`` (QPE ending at data time)."""

    name: str
    mrms_number: int | None = None
    units: str | None = None
    """The units where the parameter fixes them (WMO GRIB2 0/1/8: kg m-2), so ecCodes' ``units``
    concept, whose first look-up in a process costs about 0.1 s, is not asked."""


#: Magic numbers of formats whose metadata may quote "GRIB" (GeoTIFFs converted from GRIB carry
#: ``GRIB_ELEMENT`` tags), which are never GRIB files.
_NOT_GRIB = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"\x89PNG", b"%PDF", b"PK\x03\x04")


def sniff(path: Path, head: bytes) -> bool:
    """True when a GRIB edition 1 or 2 indicator section is among the first bytes (``head``).

    ``GRIB`` must be followed, three bytes on, by the edition number 1 or 2 (a WMO bulletin header
    before it is allowed); a TIFF, PNG, PDF or zip file is never GRIB, whatever its tags quote.
    """
    if head.startswith(_NOT_GRIB):
        return False
    at = head.find(b"GRIB")
    while at >= 0:
        if len(head) > at + 7 and head[at + 7] in (1, 2):
            return True
        at = head.find(b"GRIB", at + 1)
    return False


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
        for number, gid, logged in _messages(path, handle):
            try:
                with captured():
                    kind = _classify(path, gid, number, logged)
                    seen.append(_describe_param(gid))
                    if kind is None or (variable is not None and _get(gid, "shortName") != variable):
                        continue
                    acc = _read_message(path, gid, number, kind, grids, accumulation)
                    _check_log(path, number)
                _append_unique(accs, acc)
            except (eccodes.CodesInternalError, ArithmeticError, ValueError) as exc:
                raise _corrupt(path, number, exc) from None
            finally:
                eccodes.codes_release(gid)
    check_found(path, len(seen), len(accs), variable, lambda: seen)
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
    seen = 0
    with open(path, "rb") as handle:
        for number, gid, logged in _headers(path, handle):
            try:
                with captured():
                    kind = _classify(path, gid, number, logged)
                    seen += 1  # named only for an error (ecCodes' shortName costs ~0.1 s a process)
                    if kind is None or (variable is not None and _get(gid, "shortName") != variable):
                        continue
                    _units_factor(path, gid, number, kind)  # refuse unknown units now, not in a worker
                    refs.append(_ref(path, gid, number, kind, accumulation))
                    _check_log(path, number)
            except (eccodes.CodesInternalError, ArithmeticError, ValueError) as exc:
                raise _corrupt(path, number, exc) from None
    check_found(path, seen, len(refs), variable, lambda: _parameter_names(path))
    return refs


def load(ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
    """Decode the one message at the ref's byte offset (see :func:`load_counted`)."""
    data, grid, _ = load_counted(ref)
    return data, grid


def load_counted(ref: FieldRef) -> tuple[np.ndarray, SourceGrid, FillCount]:
    """Decode the one message at the ref's byte offset, counting the fill values it held.

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
    fill : FillCount
        The cells set missing because they held fill values (before the unit conversion).

    Raises
    ------
    InputDataError
        No message, or no precipitation message, at the offset (the file has changed).
    """
    offset, number = int(ref.locator[0]), int(ref.locator[1])
    with open(ref.path, "rb") as handle:
        handle.seek(offset)
        gid = _open_message(ref.path, handle, number, headers_only=False)
        if gid is None:
            raise InputDataError(ref.path, f"no GRIB message #{number} at byte {offset}; has the file changed?")
        try:
            with captured():
                kind = _classify(ref.path, gid, number, drain())
                if kind is None:
                    raise InputDataError(ref.path, f"GRIB message #{number} is not precipitation; has the file "
                                                   "changed?")
                _check_size(gid)
                grid = cached_grid(ref.grid, lambda: _grid(ref.path, gid, {}))
                data, fill = _values_2d(ref.path, gid, number, kind)
                _check_log(ref.path, number)
        except (eccodes.CodesInternalError, ArithmeticError, ValueError) as exc:
            raise _corrupt(ref.path, number, exc) from None
        finally:
            eccodes.codes_release(gid)
    clip_noise(data, ref.path, f"GRIB message #{number}")
    return data, grid, fill


def check_found(path: Path, seen: int, found: int, variable: str | None, names: Callable[[], list[str]]) -> None:
    """Refuse a file with no GRIB message, or none of precipitation (listing what it holds).

    Parameters
    ----------
    path : Path
        The file, named in the error.
    seen : int
        Messages read.
    found : int
        How many precipitation messages were kept.
    variable : str or None
        The ``shortName`` asked for, if any.
    names : callable
        The parameter names of every message, asked for only to word the error.
    """
    if not seen:
        raise InputDataError(path, "no GRIB messages in the file")
    if not found:
        wanted = f" named {variable!r}" if variable else ""
        raise InputDataError(path, f"no precipitation message{wanted}; found {_summary(names())}")


def _parameter_names(path: Path) -> list[str]:
    """The parameter name of each message of a file (headers only; for error messages)."""
    names: list[str] = []
    with open(path, "rb") as handle:
        for _number, gid, _logged in _headers(path, handle):
            with captured():
                names.append(_describe_param(gid))
    return names


def _messages(path: Path, handle: BinaryIO) -> Iterator[tuple[int, int, list[str]]]:
    """Yield ``(number, handle id, ecCodes log lines of its opening)`` per message; errors in one line."""
    number = 0
    while True:
        number += 1
        gid = _open_message(path, handle, number, headers_only=False)
        if gid is None:
            return
        yield number, gid, drain()


def _headers(path: Path, handle: BinaryIO) -> Iterator[tuple[int, int, list[str]]]:
    """As :func:`_messages`, the header only (no data section); each handle is released after use."""
    number = 0
    while True:
        number += 1
        gid = _open_message(path, handle, number, headers_only=True)
        if gid is None:
            return
        try:
            yield number, gid, drain()
        finally:
            eccodes.codes_release(gid)


def _open_message(path: Path, handle: BinaryIO, number: int, *, headers_only: bool) -> int | None:
    """The next message's handle id (None at the end of the file), failures as one-line errors."""
    drain()
    try:
        with captured():
            return eccodes.codes_grib_new_from_file(handle, headers_only=headers_only)  # type: ignore[no-any-return]
    except eccodes.PrematureEndOfFileError:
        drain()
        raise InputDataError(path, f"truncated GRIB file: message #{number} is cut short") from None
    except eccodes.CodesInternalError as exc:
        raise _corrupt(path, number, exc) from None


def _corrupt(path: Path, number: int, exc: Exception | None = None, logged: list[str] | None = None) -> InputDataError:
    """The one-line error of a damaged message: what ecCodes said first (logged or raised)."""
    said = errors_in(logged if logged is not None else drain())
    detail = said[0] if said else str(exc) if exc is not None else ""
    return InputDataError(path, f"corrupt GRIB message #{number}" + (f" (ecCodes: {detail})" if detail else ""))


def _check_log(path: Path, number: int) -> None:
    """Refuse a message while reading which ecCodes logged an error (it went on with a damaged message)."""
    logged = drain()
    if errors_in(logged):
        raise _corrupt(path, number, logged=logged)


def _classify(path: Path, gid: int, number: int, logged: list[str]) -> _Kind | None:
    """:func:`_precip_kind`, made strict for damaged messages.

    A message that ecCodes could not open cleanly (``logged`` holds errors) or whose keys cannot be
    read is corrupt unless the keys it does give say plainly that it is not precipitation.
    """
    try:
        kind = _precip_kind(gid)
        missing = kind is None and _parameter_missing(gid)
    except eccodes.CodesInternalError as exc:
        raise _corrupt(path, number, exc, logged) from None
    if missing:
        raise _corrupt(path, number, eccodes.CodesInternalError("its parameter keys cannot be read"), logged)
    damaged = errors_in(logged)
    if damaged and (kind is not None or _could_be_precipitation(gid)):
        raise _corrupt(path, number, logged=logged)
    return kind


def _parameter_missing(gid: int) -> bool:
    """True when ecCodes opened a message without the keys that say what it holds (a damaged section)."""
    edition = _get(gid, "edition")
    if edition == 2:
        discipline = _get(gid, "discipline")
        if discipline is None:
            return True
        return discipline in (0, 209) and (_get(gid, "parameterCategory") is None
                                           or _get(gid, "parameterNumber") is None)
    if edition == 1:
        return _get(gid, "indicatorOfParameter") is None or _get(gid, "table2Version") is None
    return True


def _could_be_precipitation(gid: int) -> bool:
    """False only when the message's parameter keys can be read and name another discipline or category."""
    try:
        if _get(gid, "edition") == 2:
            discipline, category = _get(gid, "discipline"), _get(gid, "parameterCategory")
            if discipline is None or category is None:
                return True
            return (discipline, category) in ((0, 1), (209, 6))
        return _get(gid, "indicatorOfParameter") in (None, 61, 228) or _get(gid, "table2Version") == 128
    except eccodes.CodesInternalError:
        return True


def _ref(path: Path, gid: int, number: int, kind: _Kind, accumulation: timedelta | None) -> FieldRef:
    """The ref of one precipitation message."""
    _check_size(gid)
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
    """A key's native value, or ``default`` when the message does not define it.

    Raises
    ------
    eccodes.CodesInternalError
        A defined key that cannot be decoded (a damaged message: the caller names it corrupt).
    """
    if not eccodes.codes_is_defined(gid, key):
        return default
    return eccodes.codes_get(gid, key)


def _get_quietly(gid: int, key: str, default: Any = None) -> Any:
    """:func:`_get`, with ``default`` also for a key that cannot be decoded (names for messages only)."""
    try:
        return _get(gid, key, default)
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
            return _Kind("apcp", units="kg m**-2")  # WMO code table 4.2
    else:
        table, param = _get(gid, "table2Version"), _get(gid, "indicatorOfParameter")
        if (table == 128 and param == 228) or (table is not None and table < 128 and param == 61):
            return _Kind("apcp")
    if _get(gid, "paramId") in (228, 228228):
        return _Kind("apcp")
    return None


def _describe_param(gid: int) -> str:
    """``shortName``, or ``discipline/category/number`` when ecCodes has no name for it."""
    get = _get_quietly
    name = get(gid, "shortName", "unknown")
    if name not in ("unknown", None):
        return str(name)
    if get(gid, "edition") == 2:
        return f"{get(gid, 'discipline')}/{get(gid, 'parameterCategory')}/{get(gid, 'parameterNumber')}"
    return f"table{get(gid, 'table2Version')}/param{get(gid, 'indicatorOfParameter')}"


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
    _check_size(gid)
    reference = _reference_time(gid)
    start, end = _window(path, gid, kind, reference, accumulation)
    grid = _grid(path, gid, grids)
    data, fill = _values_2d(path, gid, number, kind)
    label = f"{_describe_param(gid)} {_window_text(start, end, reference)}"
    if _negative_length(gid) is not None:
        label += " (negative lengthOfTimeRange: read as the window ending at the reference time)"
    clipped = clip_noise(data, path, f"GRIB message #{number} ({label})")
    if clipped:
        label += f"; clipped {clipped} negative value(s) to 0"
    analysis = kind.name == "mrms" or _negative_length(gid) is not None  # data time = window end
    return Accumulation(data=data, grid=grid, start=start, end=end, path=path,
                        reference_time=None if analysis else reference,
                        member=_member(gid), label=label, masked=fill.cells, masked_values=fill.values)


def _reference_time(gid: int) -> datetime:
    """``dataDate`` + ``dataTime`` as a naive UTC datetime."""
    date, hhmm = int(_get(gid, "dataDate")), int(_get(gid, "dataTime"))
    try:
        if not (0 <= hhmm // 100 < 24 and 0 <= hhmm % 100 < 60):
            raise ValueError
        return datetime.strptime(f"{date:08d}", "%Y%m%d") + timedelta(hours=hhmm // 100, minutes=hhmm % 100)
    except ValueError:
        raise eccodes.CodesInternalError(f"reference date {date} {hhmm:04d} is not a valid time") from None


#: GRIB2 code table 4.4 (indicator of unit of time range) -> minutes.
_UNIT_MINUTES = {0: 1, 1: 60, 2: 1440, 10: 180, 11: 360, 12: 720}


def _steps_minutes(gid: int) -> tuple[int, int]:
    """``(startStep, endStep)`` in minutes whatever the message's ``stepUnits``.

    A negative ``lengthOfTimeRange`` (see the module docstring) gives ``(end - |length|, end)``
    with ``end`` the forecast time: the window ending at the reference time for an analysis.
    """
    negative = _negative_length(gid)
    if negative is not None:
        first, last = negative[0] - negative[1], negative[0]
    else:
        eccodes.codes_set(gid, "stepUnits", "m")
        first, last = int(eccodes.codes_get_long(gid, "startStep")), int(eccodes.codes_get_long(gid, "endStep"))
    if max(abs(first), abs(last)) > MAX_STEP_MINUTES or last < first:
        raise eccodes.CodesInternalError(f"forecast steps {first / 60:g}-{last / 60:g} h are not plausible")
    return first, last


def _negative_length(gid: int) -> tuple[int, int] | None:
    """``(forecast time, |length|)`` in minutes when ``lengthOfTimeRange`` is a negative 32-bit number, else None.

    Raises
    ------
    eccodes.CodesInternalError
        Units outside code table 4.4's minutes to 12 hours (reported as a corrupt message).
    """
    length = _get(gid, "lengthOfTimeRange")
    if _get(gid, "edition") != 2 or length is None or int(length) < 2**31:
        return None
    units = (_get(gid, "indicatorOfUnitOfTimeRange"), _get(gid, "indicatorOfUnitForTimeRange"))
    if units[0] not in _UNIT_MINUTES or units[1] not in _UNIT_MINUTES:
        raise eccodes.CodesInternalError(f"negative lengthOfTimeRange in time unit {units[1]} (code table 4.4)")
    forecast = int(_get(gid, "forecastTime", 0)) * _UNIT_MINUTES[units[0]]
    return forecast, (2**32 - int(length)) * _UNIT_MINUTES[units[1]]


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
    # WMO defines 0/1/8 in kg m-2 (ecCodes names it only under NCEP's centre, 7); others: ask ecCodes
    units = kind.units or str(_get(gid, "units", "unknown"))
    factor = amount_factor(units)
    if factor is None:
        raise InputDataError(path, f"message #{number} ({_describe_param(gid)}) has units {units!r}; "
                                   f"expected {ACCEPTED_TEXT}")
    return factor


def _values_2d(path: Path, gid: int, number: int, kind: _Kind) -> tuple[np.ndarray, FillCount]:
    """Decoded values in mm, ``(ny, nx)`` float32 in scanning order, NaN where missing.

    Bitmap-missing cells and MRMS's "no coverage" are missing as the format says; other fill
    values (:func:`~harpnet_cli.plausibility.mask_fill`, on the values as stored) are missing too
    and counted in the returned :class:`~harpnet_cli.plausibility.FillCount`.
    """
    values = np.asarray(eccodes.codes_get_values(gid), dtype=np.float64)
    ni, nj = _ni_nj(gid)
    if values.size != ni * nj:
        raise eccodes.CodesInternalError(f"{values.size} values for a {ni}x{nj} grid")
    if _get(gid, "bitmapPresent"):
        values[values == float(_get(gid, "missingValue", 9999))] = np.nan
    if kind.name == "mrms":
        with np.errstate(invalid="ignore"):
            values[(values < _MRMS_NO_COVERAGE_BELOW) | (values >= _MRMS_MISSING_FROM)] = np.nan
    fill = mask_fill(values)
    factor = _units_factor(path, gid, number, kind)
    if fill.cells:
        step = _packing_step(gid) * factor
        if step > PACKING_STEP_MAX_MM:
            raise InputDataError(path, f"GRIB message #{number} ({_describe_param(gid)}): {fill.describe()} written "
                                       f"as values leave a packing step of {step:.3g} mm for the amounts, which are "
                                       "lost (missing cells belong in a bitmap)")
    values *= factor
    return _to_2d(gid, values).astype(np.float32), fill


def _packing_step(gid: int) -> float:
    """The spacing of the values a scaled packing can hold (``2**E / 10**D``; 0 for IEEE floats)."""
    e, d = _get(gid, "binaryScaleFactor"), _get(gid, "decimalScaleFactor")
    if e is None or d is None or str(_get(gid, "packingType", "")).endswith("ieee"):
        return 0.0
    return float(2.0 ** int(e) / 10.0 ** int(d))


def _to_2d(gid: int, flat: np.ndarray) -> np.ndarray:
    """Reshape a message-length array to ``(nj, ni)`` rows in scanning order."""
    ni, nj = _ni_nj(gid)
    if _get(gid, "jPointsAreConsecutive"):
        return flat.reshape(ni, nj).T
    return flat.reshape(nj, ni)


def _check_size(gid: int) -> None:
    """Refuse a grid whose size is inconsistent or absurd before anything of that size is allocated.

    Raises
    ------
    eccodes.CodesInternalError
        ``Ni x Nj`` differs from ``numberOfDataPoints`` or exceeds :data:`MAX_POINTS`, or more
        values are packed than there are points.
    """
    ni, nj = _ni_nj(gid)
    points = _get(gid, "numberOfDataPoints", ni * nj)
    if ni <= 0 or nj <= 0 or ni * nj != int(points) or ni * nj > MAX_POINTS:
        raise eccodes.CodesInternalError(f"grid of {ni} x {nj} points for {points} data points")
    values = _get(gid, "numberOfValues", points)
    if not 0 <= int(values) <= int(points):
        raise eccodes.CodesInternalError(f"{values} packed values for {points} data points")


def _ni_nj(gid: int) -> tuple[int, int]:
    """Points along a row and along a column."""
    ni = _get(gid, "Ni")
    nj = _get(gid, "Nj")
    if ni is None or nj is None:
        ni, nj = _get(gid, "Nx"), _get(gid, "Ny")
    return int(ni), int(nj)


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
