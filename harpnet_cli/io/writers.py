"""The writer of each registered output format, the counterpart of :mod:`~harpnet_cli.io.readers`.

The formats are the entries of :data:`harpnet_cli.formats.OUTPUT_FORMATS` (plain data in the base
layer, so configuration and CLI can list them): each names a function of a writer module here in
``io/``, imported on first use (``import harpnet_cli.io.writers`` pulls in neither netCDF4 nor
ecCodes). :func:`get_writer` returns it; every writer takes the same arguments
(:class:`Writer`) and only writes what it is given: ensemble statistics come computed in an
:class:`~harpnet_cli.fields.EnsembleProducts`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from harpnet_cli.fields import EnsembleProducts, FineForecast
from harpnet_cli.formats import OUTPUT_FORMATS, OutputFormat


class Writer(Protocol):
    """A function writing one forecast to a file (atomically) or, for a streaming format, a binary stream."""

    def __call__(self, target: Path | BinaryIO, fc: FineForecast, *, overwrite: bool = False,
                 products: EnsembleProducts | None = None, product: str | None = None, **options: Any) -> None:
        """Write ``fc`` (``(M, T, H, W)``), or the ensemble ``products`` of its M member rows, to ``target``.

        ``product`` names the one product to write (one of ``products.names()``; None: all);
        ``options`` are the format's own (:attr:`~harpnet_cli.formats.OutputFormat.options`).
        """


def output_format(name: str) -> OutputFormat:
    """The registered format ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    try:
        return OUTPUT_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; known: {', '.join(OUTPUT_FORMATS)}") from None


def get_writer(name: str) -> Writer:
    """The writer function of the registered format ``name``, imported now.

    Parameters
    ----------
    name : str
        A key of :data:`~harpnet_cli.formats.OUTPUT_FORMATS`.

    Returns
    -------
    Writer

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    module, _, function = output_format(name).writer.partition(":")
    writer: Writer = getattr(importlib.import_module(module), function)
    return writer


def product_files(output: str | Path, fmt: str, names: Sequence[str]) -> list[str]:
    """The ensemble products that go to files of their own, in order; empty when one file holds them all.

    Parameters
    ----------
    output : str or Path
        The ``-o`` value (``-`` is standard output: one stream holds every product).
    fmt : str
        A key of :data:`~harpnet_cli.formats.OUTPUT_FORMATS`.
    names : sequence of str
        The run's products (:meth:`~harpnet_cli.fields.EnsembleProducts.names`; empty without an
        ensemble model).

    Returns
    -------
    list of str
        ``names`` when ``output`` has a ``{product}`` field, or when the format keeps one product per
        file (:attr:`~harpnet_cli.formats.OutputFormat.product_files`, GRIB2) and there are several;
        else ``[]``.
    """
    if str(output) == "-" or not names:
        return []
    if "{product}" in str(output) or (output_format(fmt).product_files and len(names) > 1):
        return list(names)
    return []
