"""GRIB2 output of downscaled precipitation, encoded with ecCodes from its ``GRIB2`` sample.

One message per time step and member (step-major: every member of step 1, then step 2, …), so
``cat`` of two files, or of a file and a stream, is again a valid GRIB2 file. :func:`write_forecast`
is the ``grib2`` entry of the writer registry (:data:`harpnet_cli.formats.OUTPUT_FORMATS`): a file
or a stream, amounts or an ensemble's products (:func:`write_grib2_products`).

Encoding (keys as ecCodes names them)
-------------------------------------
Grid (section 3)
    Template 3.0 ``regular_ll``; ``Ni``/``Nj`` and ``i/jDirectionIncrementInDegrees`` (0.0625 for
    HARPNET's fine grid, exact in GRIB2's micro-degrees) taken from the forecast's axes.
    Longitudes are written in 0…360 as GRIB2 requires (a box west of Greenwich starts at e.g.
    ``359.03125``; a box across the date line has ``longitudeOfLastGridPoint`` < first, which
    readers unwrap). Rows are written north → south by default (``scanningMode`` 0, what NCEP and
    ECMWF write and every tool reads) or south → north (``jScansPositively=1``, the array's own
    order) with ``rows="south_to_north"``. Earth shape: ``shapeOfTheEarth`` 6, a sphere of
    6 371 229 m, as GFS, GEFS and ECMWF inputs and the NetCDF ``crs`` variable say.
Parameter (section 4)
    Discipline 0, category 1, ``typeOfFirstFixedSurface`` 1 (ground or water surface),
    ``typeOfStatisticalProcessing`` 1 (accumulation), kg m-2. The number follows the centre
    (:func:`parameter_for`), so that ecCodes (grib_ls, cdo, cfgrib, pygrib) and GDAL name it:
    under NCEP (centre 7) ``parameterNumber`` 8 (WMO "total precipitation", NCEP APCP: ``tp``
    for ecCodes, ``APCP`` for GDAL); under any other centre 52 (accumulated "total
    precipitation rate", ecCodes ``tp``, paramId 228228, as ECMWF writes it), because ecCodes
    knows 0/1/8 only through NCEP's local concepts (elsewhere ``unknown``). GDAL names 0/1/52
    ``TPRATE`` in kg/(m^2 s) whatever the statistical processing says: a GDAL naming limit.
Product templates
    * 4.8 — deterministic accumulation;
    * 4.11 — one ensemble member: ``perturbationNumber`` = member, ``numberOfForecastsInEnsemble``
      = M. Members of an input ensemble (GEFS) keep its meaning: member 0 the unperturbed control
      (``typeOfEnsembleForecast`` 1, ``typeOfProcessedData`` 3), the others perturbed (3, 4);
      members of a model ensemble (HARPNET-E) are all ``typeOfEnsembleForecast`` 4 (multi-model)
      and ``typeOfProcessedData`` 4, so cfgrib reads them as one hypercube;
    * 4.12 — ensemble statistic, ``derivedForecast`` from :data:`DERIVED_FORECASTS` (0 unweighted mean,
      4 spread = standard deviation of the members, as ECMWF's ``es``; 2, 7, 8, 9 likewise);
    * 4.9 — probability of exceeding a threshold (:func:`write_grib2_probabilities`):
      ``probabilityType`` 3 (above the lower limit; the WMO code for "above *upper* limit" is 1),
      ``scaleFactorOfLowerLimit``/``scaledValueOfLowerLimit`` = the threshold in kg m-2, values in %,
      ``typeOfProcessedData`` 8 (event probability);
    * 4.10 — a percentile of the members (:func:`write_grib2_percentiles`): ``percentileValue``
      0…100 (whole numbers only: one octet), amounts in kg m-2.

    Neither cdo nor cfgrib tells 4.12 messages apart by ``derivedForecast``, 4.9 messages by
    threshold or 4.10 messages by percentile: two of them for one step read as duplicate
    times (cdo) or are silently dropped but one (cfgrib). HARPNET therefore writes each such
    product to its own file (``product=``; ``-o`` names them with ``{product}``); a file or
    stream of several products (``product=None``) is still valid GRIB2 for grib_ls, pygrib,
    wgrib2 and GDAL, which read message by message.
Time
    ``dataDate``/``dataTime`` = the forecast reference time, or — when the input has none
    (analyses, QPE) — the start of the first window. Steps count from it in hours, or in minutes
    when any window edge is not a whole hour (``stepUnits``); ``startStep``-``endStep`` is the
    window and ``year…minuteOfEndOfOverallTimeInterval`` its end. A window starting before the
    reference time is refused (GRIB2 forecast times are unsigned).
Missing values
    NaN cells go into the bitmap (``bitmapPresent`` 1); ±inf is refused.
Packing (section 5)
    Precision of 0.01 kg m-2 (max error 0.005):

    * ``simple`` → ``grid_simple``, ``decimalScaleFactor`` 2, ``bitsPerValue`` chosen by ecCodes;
    * ``ccsds`` → ``grid_ccsds`` (CCSDS/AEC, lossless entropy coding of the same integers):
      ``decimalScaleFactor`` 2 and ``bitsPerValue`` = bits of ``round(range * 100)``, because the
      ecCodes 2.50 CCSDS encoder ignores ``bitsPerValue=0`` and falls back to 24 bits;
    * ``complex`` → ``grid_complex_spatial_differencing`` (template 5.3, second-order): ecCodes 2.50
      ignores ``decimalScaleFactor`` for it and scales by powers of two only, so ``bitsPerValue`` is
      set to the bits of ``range * 128``: a step of at most 2**-7, max error 2**-8 ≈ 0.0039.

    :func:`ccsds_available` tells whether the ecCodes build has libaec (the eccodes 2.50 wheel does).
Provenance
    GRIB2 has no free-text key in sections 1, 3, 4 and 5, and the layout of the local section 2
    is tied to the centre, so HARPNET writes no section 2 and says what the product is with keys
    of WMO tables, which mean the same under every centre:

    * ``centre``, ``subCentre`` and ``generatingProcessIdentifier`` are the **input's** (the
      forecast HARPNET post-processed, e.g. NCEP 7 / 0 / 96 for GFS; read by
      :func:`input_origin` into the forecast's ``input_grib_origin`` attribute), so tools name
      the parameter as they name the input's. The sub-centre and process tables belong to the
      centre: HARPNET has no number there and claims none. Without a GRIB input the centre is
      255 (missing), and then the centre-defined keys are HARPNET's: ``generatingProcessIdentifier``
      = version code ``100*major + 10*minor + patch`` (0.1.0 → 10) and ``backgroundProcess`` =
      the first byte of the checkpoint's SHA-256 (255 otherwise).
    * ``typeOfGeneratingProcess`` 13, "post-processed forecast" (5, "probability forecast", for
      4.9), under ``tablesVersion`` 32;
    * ``productionStatusOfProcessedData`` 2, "research products": the bundled weights are not a
      verified operational product.

    The full provenance (model, checkpoint path and hash, inputs, HARPNET version) is in the
    NetCDF output's global attributes; write both when it matters.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.fields import EnsembleProducts, FineForecast
from harpnet_cli.io.atomic import atomic_path

Packing = Literal["simple", "complex", "ccsds"]
Rows = Literal["north_to_south", "south_to_north"]
Parameter = Literal["apcp", "tp"]

#: Parameter names -> (discipline, parameterCategory, parameterNumber), all accumulated kg m-2.
PARAMETERS: dict[str, tuple[int, int, int]] = {
    "apcp": (0, 1, 8),  # WMO "Total precipitation" (NCEP APCP); ecCodes names it only for centre 7
    "tp": (0, 1, 52),  # WMO "Total precipitation rate" accumulated: ecCodes/ECMWF tp, paramId 228228
}
#: The centre under which ecCodes names 0/1/8 (NCEP's local concepts).
NCEP = 7

#: Our packing names -> ecCodes ``packingType``.
PACKING_TYPES: dict[str, str] = {
    "simple": "grid_simple",
    "complex": "grid_complex_spatial_differencing",
    "ccsds": "grid_ccsds",
}

#: ``statistic`` -> GRIB2 code table 4.7 ``derivedForecast``.
DERIVED_FORECASTS: dict[str, int] = {
    "mean": 0,  # unweighted mean of all members
    "stddev": 2,  # standard deviation with respect to the (cluster) mean
    "spread": 4,  # spread of all members (standard deviation, as ECMWF "es")
    "iqr": 7,  # inter-quartile range
    "min": 8,  # minimum of all members
    "max": 9,  # maximum of all members
}

CENTRE_MISSING = 255
TABLES_VERSION = 32
POST_PROCESSED_FORECAST = 13  # code table 4.3
PROBABILITY_FORECAST = 5  # code table 4.3
RESEARCH_PRODUCTS = 2  # code table 1.3, productionStatusOfProcessedData
SPHERE_6371229 = 6  # code table 3.2, shapeOfTheEarth
MULTI_MODEL_FORECAST = 4  # code table 4.6
#: FineForecast attribute holding the input's GRIB identification (see :func:`input_origin`).
ORIGIN_ATTRIBUTE = "input_grib_origin"
DECIMAL_SCALE = 2  # 0.01 kg m-2 resolution
PROBABILITY_ABOVE_LOWER_LIMIT = 3  # code table 4.9

_GRIB_MISSING = 9999.0
_DEGREE_DECIMALS = 6  # GRIB2 angles are micro-degrees


def _eccodes() -> Any:
    """The ecCodes module, imported after pyproj (eckit's bundled PROJ crashes a later pyproj)."""
    import pyproj  # noqa: F401

    # isort: split
    import eccodes

    return eccodes


@dataclass(frozen=True)
class _Product:
    """What section 4 of one message says beyond parameter and time."""

    template: int
    member: int | None = None
    ensemble_size: int | None = None
    derived: int | None = None
    threshold: float | None = None
    probability_number: int | None = None
    probability_total: int | None = None
    percentile: int | None = None
    model_member: bool = False
    """A member of a model ensemble (multi-model), not of the input's ensemble."""


@dataclass(frozen=True)
class Origin:
    """Section 1 identification and the centre-defined section 4 keys of the messages."""

    centre: int = CENTRE_MISSING
    sub_centre: int = 0
    process: int = 255
    """``generatingProcessIdentifier``."""
    background: int = 255
    """``backgroundProcess``."""


def origin_of(fc: FineForecast) -> Origin:
    """The identification to write: the input's (``attrs["input_grib_origin"]``), else HARPNET's own keys.

    Parameters
    ----------
    fc : FineForecast
        Its ``attrs`` may hold ``input_grib_origin`` (``"centre 7, subCentre 0,
        generatingProcessIdentifier 96"``) and ``harpnet_checkpoint_sha256``.

    Returns
    -------
    Origin
    """
    text = fc.attrs.get(ORIGIN_ATTRIBUTE, "")
    keys = dict(part.strip().split(" ", 1) for part in text.split(",") if part.strip().count(" ") == 1)
    try:
        centre = int(keys["centre"])
    except (KeyError, ValueError):
        centre = CENTRE_MISSING
    if not 0 <= centre < CENTRE_MISSING:
        return Origin(process=version_code(__version__),
                      background=checkpoint_code(fc.attrs.get("harpnet_checkpoint_sha256")))

    def key(name: str, default: int) -> int:
        try:
            value = int(keys[name])
        except (KeyError, ValueError):
            return default
        return value if 0 <= value <= 255 else default

    return Origin(centre, key("subCentre", 0), key("generatingProcessIdentifier", 255), 255)


def parameter_for(centre: int) -> str:
    """The parameter ecCodes and GDAL name as total precipitation under ``centre``: ``apcp`` (0/1/8) for
    NCEP, ``tp`` (0/1/52) elsewhere (see the module docstring)."""
    return "apcp" if centre == NCEP else "tp"


def input_origin(paths: Sequence[str | os.PathLike[str]]) -> str | None:
    """The GRIB identification shared by the inputs, for the ``input_grib_origin`` attribute.

    Reads the first message of each GRIB file (others are skipped) with ecCodes.

    Parameters
    ----------
    paths : sequence of path
        The input files.

    Returns
    -------
    str or None
        ``"centre 7, subCentre 0, generatingProcessIdentifier 96"``; None when no input is GRIB
        or the GRIB inputs disagree.
    """
    eccodes = _eccodes()
    found = set()
    for path in paths:
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"GRIB":
                    continue
            with open(path, "rb") as f:  # a fresh handle: ecCodes reads the file from its own position
                gid = eccodes.codes_grib_new_from_file(f)
        except OSError:
            continue
        if gid is None:
            continue
        try:
            values = []
            for name in ("centre", "subCentre", "generatingProcessIdentifier"):
                try:
                    values.append(int(eccodes.codes_get_long(gid, name)))
                except eccodes.CodesInternalError:
                    values.append(255)
            found.add(tuple(values))
        finally:
            eccodes.codes_release(gid)
    if len(found) != 1:
        return None
    centre, sub, process = found.pop()
    return f"centre {centre}, subCentre {sub}, generatingProcessIdentifier {process}"


# -- public API ----------------------------------------------------------------------------------
def write_grib2(path_or_stream: str | os.PathLike[str] | BinaryIO, fc: FineForecast, *, overwrite: bool = False,
                packing: Packing = "complex", statistic: str | None = None, ensemble_size: int | None = None,
                rows: Rows = "north_to_south", parameter: Parameter | None = None,
                model_members: bool = False) -> Path | None:
    """Write a forecast as GRIB2 amounts (kg m-2), one message per step and member.

    Parameters
    ----------
    path_or_stream : str, Path or binary stream
        A file, written atomically (temporary file + rename), or an open binary stream such as
        ``sys.stdout.buffer`` that receives the messages directly.
    fc : FineForecast
        ``data`` is ``(M, T, H, W)`` float32 kg m-2, NaN where missing, on a regular lat/lon grid.
    overwrite : bool
        Replace an existing file (ignored for streams).
    packing : {"complex", "simple", "ccsds"}
        Data packing; see the module docstring. All keep 0.01 kg m-2.
    statistic : str, optional
        Write ensemble products (template 4.12) instead of amounts: one of :data:`DERIVED_FORECASTS`.
        With M > 1 members the statistic is computed here over the member axis; with M = 1 the
        data are taken to be that statistic already.
    ensemble_size : int, optional
        ``numberOfForecastsInEnsemble`` of a precomputed statistic (M = 1); defaults to M, and is
        written as missing (255) for a precomputed statistic when not given.
    rows : {"north_to_south", "south_to_north"}
        Row order in the messages (``jScansPositively`` 0 or 1).
    parameter : {"apcp", "tp"}, optional
        Parameter number 8 (APCP) or 52 (ecCodes ``tp``); by default the one the centre's
        readers name (:func:`parameter_for`; see the module docstring).
    model_members : bool
        The members are a model ensemble's (all ``typeOfEnsembleForecast`` 4, multi-model), not
        an input ensemble's (member 0 the control).

    Returns
    -------
    Path or None
        The written file, or None for a stream.

    Raises
    ------
    ValueError
        Inconsistent or non-regular forecast, infinite values, a window before the reference time,
        or an unknown packing / statistic.
    UsageError
        The file exists and ``overwrite`` is False, or its folder is missing.
    """
    _check_forecast(fc)
    _check_packing(packing)
    data, products = _amount_products(fc, statistic, ensemble_size, model_members)
    return _write(path_or_stream, fc, data, products, overwrite=overwrite, packing=packing, rows=rows,
                  parameter=parameter)


def write_forecast(target: Path | BinaryIO, fc: FineForecast, *, overwrite: bool = False,
                   products: EnsembleProducts | None = None, product: str | None = None,
                   packing: Packing = "complex") -> None:
    """Write a forecast, or an ensemble's products, as GRIB2 (the registry's ``grib2`` writer).

    Parameters
    ----------
    target : Path or binary stream
        A file (written atomically) or a stream such as ``sys.stdout.buffer``.
    fc : FineForecast
        ``(M, T, H, W)``; with ``products`` the ensemble's members.
    overwrite : bool
        Replace an existing file (ignored for streams).
    products : EnsembleProducts, optional
        Write these (:func:`write_grib2_products`) instead of one message per row of ``fc``
        (:func:`write_grib2`).
    product : str, optional
        Only this one of ``products.names()`` (one product per file: what cdo and cfgrib read).
    packing : {"complex", "simple", "ccsds"}
        Data packing; see the module docstring.
    """
    if products is not None:
        write_grib2_products(target, fc, products, overwrite=overwrite, packing=packing, product=product)
    else:
        write_grib2(target, fc, overwrite=overwrite, packing=packing)


def write_grib2_products(path_or_stream: str | os.PathLike[str] | BinaryIO, fc: FineForecast,
                         products: EnsembleProducts, *, overwrite: bool = False,
                         packing: Packing = "complex", product: str | None = None) -> Path | None:
    """Write an ensemble's products, step-major: per step the members (4.11) or the mean and spread
    (4.12, ``derivedForecast`` 0 and 4), then the probabilities (4.9, in %) and the percentiles (4.10).

    Parameters
    ----------
    path_or_stream : str, Path or binary stream
        Destination, as for :func:`write_grib2`.
    fc : FineForecast
        The ensemble's ``M`` members ``(M, T, H, W)`` (written only with ``products.every_member``).
    products : EnsembleProducts
        What to write, computed before: ``mean``/``spread`` ``(T, H, W)``, ``probabilities``
        ``(K, T, H, W)`` as fractions (written ×100) and ``percentile_fields`` ``(Q, T, H, W)``.
    overwrite, packing
        As for :func:`write_grib2`.
    product : str, optional
        Only this one of ``products.names()``; by default every product.

    Returns
    -------
    Path or None
        The written file, or None for a stream.

    Raises
    ------
    ValueError
        ``product`` is not one of ``products.names()``; a percentile that is not a whole number.
    """
    names = products.names()
    if product is not None and product not in names:
        raise ValueError(f"unknown ensemble product {product!r}; this output has {', '.join(names)}")
    wanted = set(names if product is None else [product])
    if hasattr(path_or_stream, "write"):
        _products_messages(path_or_stream, fc, products, packing, wanted)  # type: ignore[arg-type]
        return None
    path = Path(path_or_stream)  # type: ignore[arg-type]
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as out:
        _products_messages(out, fc, products, packing, wanted)
    return path


def _products_messages(stream: BinaryIO, fc: FineForecast, products: EnsembleProducts, packing: Packing,
                       wanted: set[str]) -> None:
    """Write the messages of :func:`write_grib2_products` (the products named in ``wanted``) to a stream."""
    from harpnet_cli.fields import product_name

    n = products.size
    for k in range(len(fc.starts)):
        step = dataclasses.replace(fc, data=fc.data[:, [k]], starts=[fc.starts[k]], ends=[fc.ends[k]])
        if products.every_member:
            if "members" in wanted:
                write_grib2(stream, step, packing=packing, model_members=True)
        else:
            assert products.mean is not None and products.spread is not None
            for statistic, field in (("mean", products.mean), ("spread", products.spread)):
                if statistic in wanted:
                    single = dataclasses.replace(step, data=field[None, [k]], members=[None])
                    write_grib2(stream, single, packing=packing, statistic=statistic, ensemble_size=n)
        if products.probabilities is not None:
            keep = [i for i, t in enumerate(products.thresholds) if product_name("probability", t) in wanted]
            if keep:
                percent = products.probabilities[keep][:, [k]] * np.float32(100.0)
                write_grib2_probabilities(stream, step, [products.thresholds[i] for i in keep],
                                          probabilities=percent, packing=packing)
        if products.percentile_fields is not None:
            keep = [i for i, q in enumerate(products.percentiles) if product_name("percentile", q) in wanted]
            if keep:
                write_grib2_percentiles(stream, step, [products.percentiles[i] for i in keep],
                                        products.percentile_fields[keep][:, [k]], packing=packing)


def write_grib2_percentiles(path_or_stream: str | os.PathLike[str] | BinaryIO, fc: FineForecast,
                            percentiles: Sequence[float], fields: np.ndarray, *, overwrite: bool = False,
                            packing: Packing = "complex", rows: Rows = "north_to_south",
                            parameter: Parameter | None = None) -> Path | None:
    """Write amounts at percentiles of the members' distribution (template 4.10, ``percentileValue``).

    Parameters
    ----------
    path_or_stream : str, Path or binary stream
        Destination, as for :func:`write_grib2`.
    fc : FineForecast
        The ensemble ``(M, T, H, W)``; its grid, windows, reference time and provenance are written.
    percentiles : sequence of float
        ``Q`` whole numbers in 0…100 (``percentileValue`` is one octet), one message per
        percentile and step.
    fields : numpy.ndarray
        ``(Q, T, H, W)`` amounts in kg m-2 at each percentile, NaN where missing.
    overwrite, packing, rows, parameter
        As for :func:`write_grib2`.

    Returns
    -------
    Path or None
        The written file, or None for a stream.

    Raises
    ------
    ValueError
        A percentile that is not a whole number in 0…100, or ``fields`` of the wrong shape.
    """
    _check_forecast(fc)
    _check_packing(packing)
    levels = [float(q) for q in percentiles]
    if not levels or any(not (0 <= q <= 100 and q == int(q)) for q in levels):
        raise ValueError(f"GRIB2 percentiles must be whole numbers in 0...100 (percentileValue is one octet), "
                         f"got {levels}")
    fields = _per_level(fields, fc, len(levels), "percentile fields", "percentiles")
    products = [_Product(10, percentile=int(q)) for q in levels]
    return _write(path_or_stream, fc, fields, products, overwrite=overwrite, packing=packing, rows=rows,
                  parameter=parameter)


def write_grib2_probabilities(path_or_stream: str | os.PathLike[str] | BinaryIO, fc: FineForecast,
                              thresholds: Sequence[float], *, probabilities: np.ndarray | None = None,
                              overwrite: bool = False, packing: Packing = "complex",
                              rows: Rows = "north_to_south", parameter: Parameter | None = None) -> Path | None:
    """Write exceedance probabilities ``P(amount > threshold)`` in % (template 4.9).

    Parameters
    ----------
    path_or_stream : str, Path or binary stream
        Destination, as for :func:`write_grib2`.
    fc : FineForecast
        The ensemble ``(M, T, H, W)``; its grid, windows, reference time and provenance are written.
    thresholds : sequence of float
        Thresholds in kg m-2 (>= 0), one message per threshold and step
        (``forecastProbabilityNumber`` k + 1 of ``totalNumberOfForecastProbabilities`` K).
    probabilities : numpy.ndarray, optional
        ``(K, T, H, W)`` probabilities in % computed elsewhere (e.g. calibrated); by default the
        fraction of members above each threshold, NaN where any member is missing.
    overwrite, packing, rows, parameter
        As for :func:`write_grib2`.

    Returns
    -------
    Path or None
        The written file, or None for a stream.

    Raises
    ------
    ValueError
        No or negative thresholds, ``probabilities`` of the wrong shape or outside 0…100.
    """
    _check_forecast(fc)
    _check_packing(packing)
    levels = [float(t) for t in thresholds]
    if not levels or any(not math.isfinite(t) or t < 0 for t in levels):
        raise ValueError(f"thresholds must be finite and >= 0 kg m-2, got {levels}")
    if probabilities is None:
        probabilities = exceedance_probabilities(fc.data, levels)
    probabilities = _per_level(probabilities, fc, len(levels), "probabilities", "thresholds")
    if np.nanmin(probabilities, initial=0.0) < 0 or np.nanmax(probabilities, initial=0.0) > 100:
        raise ValueError("probabilities must be in % (0…100)")
    products = [_Product(9, threshold=t, probability_number=k + 1,
                         probability_total=len(levels)) for k, t in enumerate(levels)]
    return _write(path_or_stream, fc, probabilities, products, overwrite=overwrite, packing=packing, rows=rows,
                  parameter=parameter)


def _per_level(values: np.ndarray, fc: FineForecast, levels: int, what: str, axis: str) -> np.ndarray:
    """``values`` as float32 ``(levels, T, H, W)``: one field per level and step of ``fc``.

    Raises
    ------
    ValueError
        Another shape, named as ``what`` with the level ``axis`` (``"thresholds"``, ``"percentiles"``).
    """
    _, n_steps, height, width = fc.data.shape
    out = np.asarray(values, dtype=np.float32)
    want = (levels, n_steps, height, width)
    if out.shape != want:
        raise ValueError(f"{what} have shape {out.shape}; expected {want} ({axis}, steps, lat, lon)")
    return out


def exceedance_probabilities(data: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Fraction of members above each threshold, in %.

    Parameters
    ----------
    data : numpy.ndarray
        ``(M, T, H, W)`` amounts, NaN where missing.
    thresholds : sequence of float
        K thresholds in the units of ``data``.

    Returns
    -------
    numpy.ndarray
        ``(K, T, H, W)`` float32 in 0…100, NaN where any member is missing.
    """
    missing = np.isnan(data).any(axis=0)
    out = np.stack([(data > t).mean(axis=0) * 100.0 for t in thresholds]).astype(np.float32)
    out[:, missing] = np.nan
    return out


def ccsds_available() -> bool:
    """True when this ecCodes build can encode ``grid_ccsds`` (it needs libaec)."""
    eccodes = _eccodes()
    gid = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        eccodes.codes_set(gid, "packingType", "grid_ccsds")
        eccodes.codes_set_values(gid, np.linspace(0.0, 1.0, eccodes.codes_get_size(gid, "values")))
        return bool(eccodes.codes_get(gid, "packingType") == "grid_ccsds")
    except eccodes.CodesInternalError:
        return False
    finally:
        eccodes.codes_release(gid)


def compare_packings(fc: FineForecast) -> list[dict[str, Any]]:
    """Size and precision of each packing on one forecast, for the README.

    Parameters
    ----------
    fc : FineForecast
        The forecast to encode (in memory; nothing is written to disk).

    Returns
    -------
    list of dict
        One per available packing: ``packing``, ``packingType``, ``bytes`` (all messages),
        ``bits_per_value`` (of the first message), ``max_abs_error`` (kg m-2 over non-missing
        cells, decoded with ecCodes), ``seconds`` (encoding time) and ``netcdf_float32_bytes``
        (the raw size of the values, for scale).
    """
    eccodes = _eccodes()
    packings: list[Packing] = ["simple", "complex"]
    if ccsds_available():
        packings.append("ccsds")
    rows: list[dict[str, Any]] = []
    for packing in packings:
        buffer = io.BytesIO()
        began = time.perf_counter()
        write_grib2(buffer, fc, packing=packing)
        seconds = time.perf_counter() - began
        blob = buffer.getvalue()
        decoded, bits = [], None
        for message in _split_messages(blob):
            gid = eccodes.codes_new_from_message(message)
            try:
                bits = eccodes.codes_get(gid, "bitsPerValue") if bits is None else bits
                decoded.append(eccodes.codes_get_values(gid))
            finally:
                eccodes.codes_release(gid)
        expected = _message_values(fc.data, "north_to_south")
        error = 0.0
        for got, want in zip(decoded, expected, strict=True):
            ok = np.isfinite(want)
            if ok.any():
                error = max(error, float(np.abs(got[ok] - want[ok]).max()))
        rows.append({"packing": packing, "packingType": PACKING_TYPES[packing], "bytes": len(blob),
                     "bits_per_value": bits, "max_abs_error": error, "seconds": round(seconds, 3),
                     "netcdf_float32_bytes": int(fc.data.size * 4)})
    return rows


# -- checks ---------------------------------------------------------------------------------------
def _check_packing(packing: str) -> None:
    """Refuse an unknown packing name."""
    if packing not in PACKING_TYPES:
        raise ValueError(f"unknown GRIB packing {packing!r}; known: {', '.join(PACKING_TYPES)}")


def _check_forecast(fc: FineForecast) -> None:
    """Refuse a forecast GRIB2 template 3.0 cannot describe, or with inconsistent metadata."""
    if fc.data.ndim != 4:
        raise ValueError(f"forecast data must be (members, steps, lat, lon), got shape {fc.data.shape}")
    n_members, n_steps, height, width = fc.data.shape
    if (height, width) != (fc.lat.size, fc.lon.size):
        raise ValueError(f"data grid {(height, width)} does not match the axes {(fc.lat.size, fc.lon.size)}")
    if n_members != len(fc.members) or not n_steps == len(fc.starts) == len(fc.ends):
        raise ValueError(f"data shape {fc.data.shape} does not match {len(fc.members)} member(s) and "
                         f"{len(fc.starts)} window(s)")
    if fc.members != [None] and any(m is None for m in fc.members):
        raise ValueError("an ensemble needs a member number for every member")
    if np.isinf(fc.data).any():
        raise ValueError("forecast data contain infinite values; GRIB can only mark NaN as missing")
    for name, axis in (("latitude", fc.lat), ("longitude", fc.lon)):
        if axis.size > 1:
            steps = np.diff(axis.astype(np.float64))
            if not (steps > 0).all() or np.ptp(steps) > 1e-6:
                raise ValueError(f"{name} axis must be regular and increasing for a GRIB regular_ll grid")
    if fc.lat.size < 2 or fc.lon.size < 2:
        raise ValueError("GRIB regular_ll needs at least 2 x 2 points to state its increments")
    if any(e < s for s, e in zip(fc.starts, fc.ends, strict=True)):
        raise ValueError("a window ends before it starts")


def _amount_products(fc: FineForecast, statistic: str | None, ensemble_size: int | None,
                     model_members: bool = False) -> tuple[np.ndarray, list[_Product]]:
    """The ``(N, T, H, W)`` fields to write and the product of each of the N leading entries."""
    n_members = len(fc.members)
    if statistic is None:
        if fc.members == [None]:
            return fc.data, [_Product(8)]
        return fc.data, [_Product(11, member=m, ensemble_size=ensemble_size or n_members, model_member=model_members)
                         for m in fc.members]
    if statistic not in DERIVED_FORECASTS:
        raise ValueError(f"unknown ensemble statistic {statistic!r}; known: {', '.join(DERIVED_FORECASTS)}")
    if n_members > 1:
        field = _statistic(fc.data, statistic)[np.newaxis]
        size: int | None = ensemble_size or n_members
    else:
        field, size = fc.data, ensemble_size
    return field, [_Product(12, ensemble_size=size, derived=DERIVED_FORECASTS[statistic])]


def _statistic(data: np.ndarray, statistic: str) -> np.ndarray:
    """``(T, H, W)`` statistic over the member axis of ``(M, T, H, W)``; NaN where a member is missing."""
    values = data.astype(np.float64)
    if statistic == "mean":
        out = values.mean(axis=0)
    elif statistic in ("spread", "stddev"):
        out = values.std(axis=0)
    elif statistic == "iqr":
        q75, q25 = np.percentile(values, [75, 25], axis=0)
        out = q75 - q25
    elif statistic == "min":
        out = values.min(axis=0)
    else:
        out = values.max(axis=0)
    return out.astype(np.float32)


# -- encoding -------------------------------------------------------------------------------------
def _write(path_or_stream: str | os.PathLike[str] | BinaryIO, fc: FineForecast, data: np.ndarray,
           products: list[_Product], *, overwrite: bool, packing: str, rows: Rows,
           parameter: str | None = None) -> Path | None:
    """Write ``data`` ``(N, T, H, W)`` with ``products[n]`` describing entry n, to a file or a stream."""
    if parameter is None:
        parameter = parameter_for(origin_of(fc).centre)
    if parameter not in PARAMETERS:
        raise ValueError(f"unknown GRIB parameter {parameter!r}; known: {', '.join(PARAMETERS)}")
    if rows not in ("north_to_south", "south_to_north"):
        raise ValueError(f"rows must be 'north_to_south' or 'south_to_north', got {rows!r}")
    reference, unit = _reference_and_unit(fc)
    if hasattr(path_or_stream, "write"):
        stream: BinaryIO = path_or_stream  # type: ignore[assignment]
        for message in _messages(fc, data, products, reference, unit, packing, rows, parameter):
            stream.write(message)
        stream.flush()
        return None
    path = Path(path_or_stream)  # type: ignore[arg-type]
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as out:
        for message in _messages(fc, data, products, reference, unit, packing, rows, parameter):
            out.write(message)
    return path


def _messages(fc: FineForecast, data: np.ndarray, products: list[_Product], reference: datetime,
              unit: str, packing: str, rows: Rows, parameter: str) -> Iterator[bytes]:
    """Encoded messages, step-major: for each window, one per product."""
    eccodes = _eccodes()
    origin = origin_of(fc)
    template = _template(fc, rows, origin)
    try:
        for step, (start, end) in enumerate(zip(fc.starts, fc.ends, strict=True)):
            for index, product in enumerate(products):
                gid = eccodes.codes_clone(template)
                try:
                    _set_product(gid, origin, product, reference, start, end, unit, PARAMETERS[parameter])
                    _set_data(gid, _oriented(data[index, step], rows), packing)
                    yield eccodes.codes_get_message(gid)
                finally:
                    eccodes.codes_release(gid)
    finally:
        eccodes.codes_release(template)


def _template(fc: FineForecast, rows: Rows, origin: Origin) -> int:
    """A handle with sections 0–3 and the identification set; the caller releases it."""
    eccodes = _eccodes()
    gid = eccodes.codes_grib_new_from_samples("GRIB2")
    eccodes.codes_set(gid, "tablesVersion", TABLES_VERSION)
    eccodes.codes_set(gid, "centre", origin.centre)
    eccodes.codes_set(gid, "subCentre", origin.sub_centre)
    eccodes.codes_set(gid, "productionStatusOfProcessedData", RESEARCH_PRODUCTS)
    eccodes.codes_set(gid, "discipline", 0)
    _set_grid(gid, fc.lat, fc.lon, rows)
    eccodes.codes_set(gid, "shapeOfTheEarth", SPHERE_6371229)
    return int(gid)


def _set_grid(gid: int, lat: np.ndarray, lon: np.ndarray, rows: Rows) -> None:
    """Template 3.0: a regular lat/lon grid exactly describing ``(lat, lon)`` in ``rows`` order."""
    eccodes = _eccodes()
    d_lat = round(float(lat[1] - lat[0]), _DEGREE_DECIMALS)
    d_lon = round(float(lon[1] - lon[0]), _DEGREE_DECIMALS)
    south, north = round(float(lat[0]), _DEGREE_DECIMALS), round(float(lat[-1]), _DEGREE_DECIMALS)
    first_lat, last_lat = (north, south) if rows == "north_to_south" else (south, north)
    eccodes.codes_set(gid, "gridType", "regular_ll")
    eccodes.codes_set_long(gid, "Ni", lon.size)
    eccodes.codes_set_long(gid, "Nj", lat.size)
    eccodes.codes_set_long(gid, "iScansNegatively", 0)
    eccodes.codes_set_long(gid, "jScansPositively", int(rows == "south_to_north"))
    eccodes.codes_set_long(gid, "jPointsAreConsecutive", 0)
    eccodes.codes_set(gid, "latitudeOfFirstGridPointInDegrees", first_lat)
    eccodes.codes_set(gid, "latitudeOfLastGridPointInDegrees", last_lat)
    eccodes.codes_set(gid, "longitudeOfFirstGridPointInDegrees", _lon360(float(lon[0])))
    eccodes.codes_set(gid, "longitudeOfLastGridPointInDegrees", _lon360(float(lon[-1])))
    eccodes.codes_set(gid, "iDirectionIncrementInDegrees", d_lon)
    eccodes.codes_set(gid, "jDirectionIncrementInDegrees", d_lat)


def _lon360(lon: float) -> float:
    """A longitude in [0, 360), rounded to micro-degrees."""
    value = round(lon % 360.0, _DEGREE_DECIMALS)
    return 0.0 if value >= 360.0 else value


def _reference_and_unit(fc: FineForecast) -> tuple[datetime, str]:
    """The message reference time and ``stepUnits`` (``"h"``, or ``"m"`` when an edge is not a whole hour).

    GRIB2 steps cannot be negative: an analysis whose window ends at its reference time (Canada's
    RDPA, a 24-hour window ending at the analysis time) is written with the window's start as the
    reference time.
    """
    reference = fc.reference_time if fc.reference_time is not None else min(fc.starts)
    reference = min(reference, *fc.starts)
    offsets = [t - reference for t in (*fc.starts, *fc.ends)]
    if any(o % timedelta(minutes=1) for o in offsets):
        raise ValueError("window edges must fall on whole minutes for GRIB2 steps")
    hourly = all(o % timedelta(hours=1) == timedelta(0) for o in offsets)
    return reference, "h" if hourly else "m"


def _set_product(gid: int, origin: Origin, product: _Product, reference: datetime, start: datetime,
                 end: datetime, unit: str, triple: tuple[int, int, int]) -> None:
    """Section 1 time and type, section 4 template, parameter, surface, window and ensemble keys."""
    eccodes = _eccodes()
    eccodes.codes_set(gid, "significanceOfReferenceTime", 1)  # start of forecast
    eccodes.codes_set(gid, "dataDate", int(f"{reference:%Y%m%d}"))
    eccodes.codes_set(gid, "dataTime", int(f"{reference:%H%M}"))
    eccodes.codes_set(gid, "typeOfProcessedData", _processed_data_type(product))
    eccodes.codes_set(gid, "productDefinitionTemplateNumber", product.template)
    eccodes.codes_set(gid, "discipline", triple[0])
    eccodes.codes_set(gid, "parameterCategory", triple[1])
    eccodes.codes_set(gid, "parameterNumber", triple[2])
    eccodes.codes_set(gid, "typeOfFirstFixedSurface", 1)
    eccodes.codes_set(gid, "typeOfStatisticalProcessing", 1)
    eccodes.codes_set(gid, "typeOfGeneratingProcess",
                      PROBABILITY_FORECAST if product.template == 9 else POST_PROCESSED_FORECAST)
    eccodes.codes_set(gid, "generatingProcessIdentifier", origin.process)
    eccodes.codes_set(gid, "backgroundProcess", origin.background)
    per = timedelta(hours=1) if unit == "h" else timedelta(minutes=1)
    eccodes.codes_set(gid, "stepUnits", unit)
    eccodes.codes_set(gid, "startStep", (start - reference) // per)
    eccodes.codes_set(gid, "endStep", (end - reference) // per)
    for part in ("year", "month", "day", "hour", "minute", "second"):
        eccodes.codes_set(gid, f"{part}OfEndOfOverallTimeInterval", getattr(end, part))
    if product.template == 11:
        member = int(product.member)  # type: ignore[arg-type]
        kind = MULTI_MODEL_FORECAST if product.model_member else 1 if member == 0 else 3
        eccodes.codes_set(gid, "typeOfEnsembleForecast", kind)
        eccodes.codes_set(gid, "perturbationNumber", member)
    if product.template == 10:
        eccodes.codes_set(gid, "percentileValue", int(product.percentile))  # type: ignore[arg-type]
    if product.template in (11, 12):
        size = product.ensemble_size
        eccodes.codes_set(gid, "numberOfForecastsInEnsemble", 255 if size is None or size > 254 else size)
    if product.template == 12:
        eccodes.codes_set(gid, "derivedForecast", product.derived)
    if product.template == 9:
        scale, value = scaled_threshold(float(product.threshold))  # type: ignore[arg-type]
        eccodes.codes_set(gid, "forecastProbabilityNumber", product.probability_number)
        eccodes.codes_set(gid, "totalNumberOfForecastProbabilities", product.probability_total)
        eccodes.codes_set(gid, "probabilityType", PROBABILITY_ABOVE_LOWER_LIMIT)
        eccodes.codes_set(gid, "scaleFactorOfLowerLimit", scale)
        eccodes.codes_set(gid, "scaledValueOfLowerLimit", value)


def _processed_data_type(product: _Product) -> int:
    """Code table 1.4: 1 forecast, 3 control, 4 perturbed, 5 control and perturbed (statistics), 8 event
    probability."""
    if product.template == 8:
        return 1
    if product.template == 11:
        return 3 if product.member == 0 and not product.model_member else 4
    if product.template == 9:
        return 8
    return 5


def _oriented(field: np.ndarray, rows: Rows) -> np.ndarray:
    """A ``(H, W)`` south → north field in the row order of the message."""
    return field[::-1] if rows == "north_to_south" else field


def _message_values(data: np.ndarray, rows: Rows) -> list[np.ndarray]:
    """Flat values of every message of a ``(N, T, H, W)`` array, in :func:`_messages` order."""
    return [_oriented(data[n, t], rows).ravel().astype(np.float64)
            for t in range(data.shape[1]) for n in range(data.shape[0])]


def _set_data(gid: int, field: np.ndarray, packing: str) -> None:
    """Section 5–7: pack a ``(H, W)`` field at 0.01 kg m-2; NaN cells go into the bitmap."""
    eccodes = _eccodes()
    values = np.asarray(field, dtype=np.float64).ravel()
    missing = np.isnan(values)
    finite = values[~missing]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    eccodes.codes_set(gid, "packingType", PACKING_TYPES[packing])
    if missing.any():
        fill = max(_GRIB_MISSING, float(finite.max()) + 1.0) if finite.size else _GRIB_MISSING
        eccodes.codes_set(gid, "bitmapPresent", 1)
        eccodes.codes_set(gid, "missingValue", fill)
        values = np.where(missing, fill, values)
    if packing == "simple":
        eccodes.codes_set_long(gid, "bitsPerValue", 0)
        eccodes.codes_set_long(gid, "decimalScaleFactor", DECIMAL_SCALE)
    elif packing == "ccsds":
        eccodes.codes_set_long(gid, "decimalScaleFactor", DECIMAL_SCALE)
        eccodes.codes_set_long(gid, "bitsPerValue", _bits(round(spread * 10**DECIMAL_SCALE)))
    else:
        eccodes.codes_set_long(gid, "bitsPerValue", _bits(math.ceil(spread * 2**7)))
    eccodes.codes_set_values(gid, values)


def _bits(levels: float) -> int:
    """Bits holding the integers 0…``levels`` (at least 1)."""
    return max(1, math.ceil(math.log2(levels + 1)))


# -- provenance -----------------------------------------------------------------------------------
def version_code(version: str) -> int:
    """``generatingProcessIdentifier`` of a HARPNET version: ``100*major + 10*minor + patch``, else 255.

    Examples
    --------
    >>> version_code("0.1.0"), version_code("1.2.3"), version_code("3.0.0")
    (10, 123, 255)
    """
    try:
        major, minor, patch = (int(part) for part in version.split("+")[0].split(".")[:3])
    except ValueError:
        return 255
    if not (0 <= minor <= 9 and 0 <= patch <= 9):
        return 255
    code = 100 * major + 10 * minor + patch
    return code if code < 255 else 255


def eccodes_library_version() -> str:
    """Version of the ecCodes library the bindings use (e.g. ``"2.50.0"``)."""
    return str(_eccodes().codes_get_api_version())


def checkpoint_code(sha256: str | None) -> int:
    """``backgroundProcess``: the first byte of a checkpoint's SHA-256 hex digest, 255 when unknown."""
    try:
        return int(str(sha256)[:2], 16) if sha256 else 255
    except ValueError:
        return 255


def scaled_threshold(value: float) -> tuple[int, int]:
    """``(scaleFactor, scaledValue)`` with ``value == scaledValue / 10**scaleFactor`` (to 1e-9).

    Examples
    --------
    >>> scaled_threshold(0.254), scaled_threshold(10.0)
    ((3, 254), (0, 10))
    """
    for scale in range(10):
        scaled = round(value * 10**scale)
        if abs(scaled / 10**scale - value) < 1e-9:
            return scale, int(scaled)
    raise ValueError(f"threshold {value} needs more than 9 decimals")


def _split_messages(blob: bytes) -> Iterator[bytes]:
    """Each GRIB2 message of a concatenation (length from octets 9–16 of section 0)."""
    offset = 0
    while offset < len(blob):
        length = int.from_bytes(blob[offset + 8:offset + 16], "big")
        yield blob[offset:offset + length]
        offset += length
