"""The output formats ``harpnet downscale`` writes: the writer registry, as plain data.

Each :class:`OutputFormat` names its writer function by dotted path (imported only when used, by
:func:`harpnet_cli.io.writers.get_writer`, as the readers are in :mod:`harpnet_cli.io.readers`),
the output suffixes that select it, whether it can be streamed to standard output, and its options
with their choices. The table lives in the base layer so that the configuration
(``DownscaleConfig.output_format``: its choices and the suffix detection) and the CLI
(``--format``, ``--grib-packing`` and ``-o`` help) read it without importing ``io``: a new output
format is one writer module in ``io/`` and one entry in :data:`OUTPUT_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harpnet_cli.units import MM_PER_INCH


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its writer, the suffixes that select it and what it can do."""

    name: str
    """The ``--format`` value."""
    writer: str
    """``"module:function"`` of the writer (see :class:`harpnet_cli.io.writers.Writer`)."""
    label: str
    """The format's name in messages (``"NetCDF"``)."""
    description: str
    """The format as the ``-o`` help describes it (``"CF-1.8 NetCDF"``)."""
    suffixes: tuple[str, ...] = ()
    """Lower-case output suffixes that select the format (``-o out.grib2``)."""
    streams: bool = False
    """Whether it can be written to standard output (``-o -``)."""
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Writer keyword options and their choices, the first the default (GRIB2 ``packing``)."""
    product_files: bool = False
    """Ensemble products go to one file each (``{product}`` in ``-o``, else ``_<product>`` before the
    suffix): GRIB2, because cdo and cfgrib cannot tell two products of one step apart in one file."""


@dataclass(frozen=True)
class AmountUnit:
    """A unit the amounts can be written and drawn in (``--units``)."""

    name: str
    """The ``--units`` value (``"mm"``, ``"in"``)."""
    per_mm: float
    """Amount in this unit of 1 mm (= 1 kg m-2 of water)."""
    cf_units: str
    """The NetCDF ``units`` attribute (UDUNITS)."""
    standard_name: str
    """The CF standard name whose canonical units ``cf_units`` converts to: ``precipitation_amount``
    (kg m-2) for mm, ``lwe_thickness_of_precipitation_amount`` (m; liquid water equivalent) for inches."""
    label: str
    """How plots and messages write it."""


#: ``--units`` choices, the first the default. GRIB2 is always written in kg m-2 (WMO parameter
#: 0/1/8 fixes its unit); NetCDF and ``--plot`` follow ``--units``.
AMOUNT_UNITS: dict[str, AmountUnit] = {
    "mm": AmountUnit("mm", 1.0, "kg m-2", "precipitation_amount", "mm"),
    "in": AmountUnit("in", 1.0 / MM_PER_INCH, "in", "lwe_thickness_of_precipitation_amount", "in"),
}

#: Every output format by ``--format`` name, in the order help texts list them.
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "netcdf": OutputFormat("netcdf", "harpnet_cli.io.netcdf_writer:write_forecast", "NetCDF", "CF-1.8 NetCDF",
                           suffixes=(".nc",), options={"units": tuple(AMOUNT_UNITS)}),
    "grib2": OutputFormat("grib2", "harpnet_cli.io.grib_writer:write_forecast", "GRIB2", "GRIB2",
                          suffixes=(".grib2", ".grb2", ".grib"), streams=True,
                          options={"packing": ("complex", "simple", "ccsds")}, product_files=True),
}
#: The format of an output whose suffix no format claims.
DEFAULT_FORMAT = "netcdf"


def spoken(words: Iterable[str], quote: bool = False) -> str:
    """Words as a list in a sentence: ``a or b``, ``a, b or c`` (each in single quotes with ``quote``).

    Parameters
    ----------
    words : iterable of str
    quote : bool
        Put each word in single quotes (``'a', 'b' or 'c'``, as pydantic lists choices).

    Returns
    -------
    str
    """
    items = [f"'{w}'" if quote else w for w in words]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def option_choices(name: str, option: str) -> tuple[str, ...]:
    """The choices of a format's writer option, the first the default.

    Parameters
    ----------
    name : str
        A key of :data:`OUTPUT_FORMATS`.
    option : str
        One of its :attr:`~OutputFormat.options`.

    Returns
    -------
    tuple of str
    """
    return tuple(OUTPUT_FORMATS[name].options[option])


def stream_format() -> str:
    """The format written to standard output (``-o -``): the first that streams.

    Returns
    -------
    str
        A name in :data:`OUTPUT_FORMATS` (``grib2``).
    """
    return next(name for name, fmt in OUTPUT_FORMATS.items() if fmt.streams)


def format_for(output: str | Path | None) -> str:
    """The format an output's name selects.

    Parameters
    ----------
    output : str, Path or None
        The ``-o`` value; ``-`` (or None) is standard output.

    Returns
    -------
    str
        :func:`stream_format` for standard output, the format claiming the suffix (any case), else
        :data:`DEFAULT_FORMAT`.
    """
    if output is None or str(output) == "-":
        return stream_format()
    suffix = Path(output).suffix.lower()
    return next((name for name, fmt in OUTPUT_FORMATS.items() if suffix in fmt.suffixes), DEFAULT_FORMAT)


def output_help() -> str:
    """The ``-o`` help's list of suffixes and what streams.

    Returns
    -------
    str
        ``.nc (CF-1.8 NetCDF) or .grib2/.grb2/.grib (GRIB2); '-' streams GRIB2 to stdout (NetCDF
        cannot be streamed)``.
    """
    files = spoken(f"{'/'.join(f.suffixes)} ({f.description})" for f in OUTPUT_FORMATS.values() if f.suffixes)
    fixed = [f.label for f in OUTPUT_FORMATS.values() if not f.streams]
    streams = f"'-' streams {OUTPUT_FORMATS[stream_format()].label} to stdout"
    return f"{files}; {streams}" + (f" ({spoken(fixed)} cannot be streamed)" if fixed else "")
