"""Where a downscale run writes: one file, one file per step (name templates), or standard output.

:func:`plan_outputs` turns ``-o`` into a list of :class:`PlannedOutput` (which steps and members go
into which file), :func:`make_folders` creates the folders a template names, :func:`locked` holds
the :class:`~harpnet_cli.io.pipes.OutputLock` of every file for the whole run, and an
:class:`OutputWriter` per planned output takes the run's steps as they are computed and writes
them with the writer registered for the format (:mod:`harpnet_cli.io.writers`; files atomically,
``-`` as a stream on ``sys.stdout.buffer``):

* a file of one step (a per-step template) is written as soon as its step is done, so a killed
  run loses only the step in progress and ``--skip-existing`` finishes the rest;
* a GRIB2 file or stream of several steps receives each step's messages as the step is done;
* a NetCDF file of several steps is created at the first step and each step is written into it
  (:class:`~harpnet_cli.io.netcdf_stream.NetcdfStream`), so memory does not grow with the steps;
* any other format gets the whole output at once (:func:`write_output`).

:func:`select` cuts a planned output's part out of a whole run (:func:`write_output`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from harpnet_cli.errors import UsageError
from harpnet_cli.fields import EnsembleProducts, FineForecast


@dataclass(frozen=True)
class PlannedOutput:
    """One output of a run.

    Attributes
    ----------
    path : Path
        The file, or ``Path("-")`` for standard output.
    steps : list of int
        Indices of the time windows it holds.
    members : list of int
        Indices (not numbers) of the members it holds.
    product : str or None
        The one ensemble product it holds (a name of
        :meth:`~harpnet_cli.fields.EnsembleProducts.names`); None for every product of the run.
    """

    path: Path
    steps: list[int]
    members: list[int]
    product: str | None = None

    @property
    def to_stdout(self) -> bool:
        """True for ``-``."""
        return str(self.path) == "-"


def is_template(output: Path) -> bool:
    """True when ``-o`` is a name template such as ``out/harpnet_{init:%Y%m%d%H}_f{lead:03d}.grib2``."""
    return "{" in str(output)


def plan_outputs(output: Path, *, starts: Sequence[datetime], ends: Sequence[datetime],
                 members: Sequence[int | None], reference_time: datetime | None,
                 products: Sequence[str] = ()) -> list[PlannedOutput]:
    """The files a run writes: ``output`` itself, or one per step (and per member with ``{member}``).

    With ``products`` (ensemble products written one per file, see
    :func:`harpnet_cli.io.writers.product_files`) every file is planned once per product: ``{product}``
    in ``output`` is replaced by the product's name, or ``_<product>`` goes before the suffix
    (``out.grib2`` -> ``out_mean.grib2``, ``out_spread.grib2``, ...).

    Raises
    ------
    UsageError
        A bad template, one that gives two steps the same name, or ``{product}`` without products.
    """
    if products:
        text = str(output)
        if "{product}" not in text:
            path = Path(text)
            text = str(path.with_name(f"{path.stem}_{{product}}{path.suffix}"))
        return [dataclasses.replace(plan, product=name)
                for name in products
                for plan in plan_outputs(Path(text.replace("{product}", name)), starts=starts, ends=ends,
                                         members=members, reference_time=reference_time)]
    if "{product}" in str(output):
        raise UsageError(f"output template {str(output)!r} uses {{product}}, but the run writes no ensemble "
                         "products (they come from an ensemble --model)")
    every = list(range(len(members)))
    if not is_template(output):
        return [PlannedOutput(output, list(range(len(starts))), every)]
    from harpnet_cli.io.pipes import output_name

    try:
        per_member = "{member" in str(output)
        origin = reference_time or starts[0]
        plans = []
        for k, end in enumerate(ends):
            lead = (end - origin).total_seconds() / 3600.0
            for group in ([[m] for m in every] if per_member else [every]):
                member = members[group[0]] if per_member else None
                name = output_name(str(output), init=reference_time, lead_hours=lead, valid=end, member=member)
                plans.append(PlannedOutput(name, [k], group))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if len({p.path for p in plans}) < len(plans):
        raise UsageError(f"output template {str(output)!r} gives several steps the same name; use {{lead}} or "
                         "{valid}" + (" and {member}" if len(members) > 1 else ""))
    return plans


def refuse_terminal(stream: IO[bytes] | None = None) -> None:
    """Refuse to write binary output to a terminal (``-o -`` without a pipe or a file).

    Parameters
    ----------
    stream : binary stream, optional
        Where ``-`` writes (default ``sys.stdout``).

    Raises
    ------
    UsageError
        When the stream is a terminal.
    """
    target = sys.stdout if stream is None else stream
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if target.isatty():
            raise UsageError("-o - writes binary GRIB2 to standard output, which is a terminal here; redirect it "
                             "to a file or a pipe (> out.grib2, | next-step), or give a file name")


def template_root(output: Path) -> Path:
    """The part of a template's folder that holds no ``{field}``: the folder the user names."""
    parts = output.parts
    fixed = next((k for k, part in enumerate(parts) if "{" in part), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")


def make_folders(plans: Sequence[PlannedOutput], template: Path) -> None:
    """Create the folders of templated outputs (``out/{init:%Y%m%d%H}/f{lead:03d}.grib2``).

    The fixed part of the template (``out``) is created like ``mkdir -p``; the folders the
    template's fields name are created one at a time with :func:`os.mkdir` (atomic, so two runs
    creating the same folder never fail) and must be real folders: a symbolic link there is
    refused, never followed.

    Parameters
    ----------
    plans : sequence of PlannedOutput
        The run's outputs.
    template : Path
        The ``-o`` value; nothing is done unless it is a template.

    Raises
    ------
    UsageError
        A named folder is a symbolic link or a file, or cannot be created.
    """
    if not is_template(template):
        return
    root = template_root(template)
    for folder in dict.fromkeys(plan.path.parent for plan in plans if not plan.to_stdout):
        try:
            root.mkdir(parents=True, exist_ok=True)
            current = root
            if not folder.is_relative_to(root):
                raise UsageError(f"output template {str(template)!r} names a folder outside {root}: {folder}")
            for part in folder.relative_to(root).parts:
                current = current / part
                with contextlib.suppress(FileExistsError):
                    os.mkdir(current)
                mode = os.lstat(current).st_mode
                if stat.S_ISLNK(mode):
                    raise UsageError(f"{current} is a symbolic link; output templates write only into real folders")
                if not stat.S_ISDIR(mode):
                    raise UsageError(f"{current} exists and is not a folder (folder of the output template)")
        except OSError as exc:
            raise UsageError(f"cannot create the output folder {exc.filename or folder}: "
                             f"{exc.strerror or exc}") from None


@contextlib.contextmanager
def locked(plans: Sequence[PlannedOutput], wait: bool) -> Iterator[None]:
    """Hold the output lock of every planned file for the block (none for standard output).

    Raises
    ------
    LockedError
        Another process writes one of them and ``wait`` is False (exit code 4).
    """
    from harpnet_cli.io.pipes import OutputLock

    with contextlib.ExitStack() as stack:
        for plan in plans:
            if not plan.to_stdout:
                stack.enter_context(OutputLock(plan.path, wait=wait))
        yield


def select(plan: PlannedOutput, fc: FineForecast, model_members: int = 1) -> FineForecast:
    """The part of ``fc`` that ``plan`` holds: its steps, and the rows of its members.

    Parameters
    ----------
    plan : PlannedOutput
        The output; ``plan.members`` index the input members.
    fc : FineForecast
        The whole run, ``(S M, T, H, W)``, input member major (row ``i M + j`` is model member
        ``j`` on input member ``i``).
    model_members : int
        ``M``, members of the model ensemble (1 for a checkpoint).

    Returns
    -------
    FineForecast
        ``(len(plan.members) M, len(plan.steps), H, W)``.
    """
    rows = [i * model_members + j for i in plan.members for j in range(model_members)]
    return dataclasses.replace(
        fc, data=fc.data[rows][:, plan.steps], starts=[fc.starts[k] for k in plan.steps],
        ends=[fc.ends[k] for k in plan.steps], members=[fc.members[r] for r in rows],
    )


def write_output(plan: PlannedOutput, part: FineForecast, fmt: str, *, overwrite: bool,
                 options: Mapping[str, Any] | None = None, products: EnsembleProducts | None = None) -> Path:
    """Write one planned output with the writer registered for ``fmt``; returns ``plan.path``.

    Parameters
    ----------
    plan : PlannedOutput
        Where to write (``-``: standard output, for a format that streams).
    part : FineForecast
        What it holds (:func:`select`).
    fmt : str
        A name in :data:`harpnet_cli.formats.OUTPUT_FORMATS`.
    overwrite : bool
        Replace an existing file.
    options : mapping, optional
        The format's writer options (GRIB2 ``packing``).
    products : EnsembleProducts, optional
        The rows of ``part`` are a model ensemble's members, and the file holds these products
        (computed by the caller) instead of one field per member.

    Returns
    -------
    Path

    Raises
    ------
    UsageError
        Standard output for a format that cannot be streamed.
    """
    from harpnet_cli.formats import stream_format
    from harpnet_cli.io.writers import get_writer, output_format

    spec = output_format(fmt)
    if plan.to_stdout and not spec.streams:
        raise UsageError(f"{spec.label} cannot be written to standard output; give a file name or --format "
                         f"{stream_format()}")
    writer = get_writer(fmt)
    chosen = {} if plan.product is None else {"product": plan.product}
    writer(sys.stdout.buffer if plan.to_stdout else plan.path, part, overwrite=overwrite, products=products,
           **chosen, **(options or {}))
    return plan.path


class OutputWriter:
    """Write one planned output as the run computes its steps (see the module docstring).

    Use as a context manager: leaving the block before the output is complete (an error, Ctrl-C)
    removes whatever was started, so no partial file is left.

    Parameters
    ----------
    plan : PlannedOutput
        The output.
    fmt : str
        A name in :data:`harpnet_cli.formats.OUTPUT_FORMATS`.
    starts, ends : sequence of datetime
        The windows of ``plan.steps``, in order.
    overwrite : bool
        Replace an existing file.
    options : mapping, optional
        The format's writer options.
    """

    def __init__(self, plan: PlannedOutput, fmt: str, *, starts: Sequence[datetime], ends: Sequence[datetime],
                 overwrite: bool, options: Mapping[str, Any] | None = None) -> None:
        self.plan = plan
        self.fmt = fmt
        self.starts = list(starts)
        self.ends = list(ends)
        self.overwrite = overwrite
        self.options = dict(options or {})
        self._parts: dict[int, tuple[FineForecast, EnsembleProducts | None]] = {}
        self._done: set[int] = set()
        self._stack = contextlib.ExitStack()
        self._stream: Any = None
        self._closed = False
        self.mode = self._mode()

    def _mode(self) -> str:
        """``"grib"`` (messages streamed), ``"netcdf"`` (steps written into the file) or ``"whole"``."""
        from harpnet_cli.formats import OUTPUT_FORMATS

        several = len(self.plan.steps) > 1
        if OUTPUT_FORMATS[self.fmt].streams and (several or self.plan.to_stdout):
            return "grib"
        if self.fmt == "netcdf" and several and not self.plan.to_stdout:
            return "netcdf"
        return "whole"

    @property
    def complete(self) -> bool:
        """Whether every step of the output has been written (or handed over)."""
        return len(self._done) == len(self.plan.steps)

    def add(self, k: int, part: FineForecast, products: EnsembleProducts | None = None) -> Path | None:
        """Take step ``k`` of the run.

        Parameters
        ----------
        k : int
            The step's index in the run (one of ``plan.steps``).
        part : FineForecast
            The output's rows for that step, ``(R, 1, H, W)``, with its window and attributes.
        products : EnsembleProducts, optional
            The step's ensemble products (``(1, H, W)`` mean and spread, ``(K, 1, H, W)``
            probabilities), when the rows are a model ensemble's members.

        Returns
        -------
        Path or None
            ``plan.path`` once the output is complete and written, else None.
        """
        index = self.plan.steps.index(k)
        if self.mode == "grib":
            self._add_grib(part, products)
        elif self.mode == "netcdf":
            self._add_netcdf(index, part, products)
        else:
            self._parts[index] = (part, products)
        self._done.add(index)
        return self._finish(part) if self.complete else None

    # -- GRIB2: messages as they come ------------------------------------------------------------
    def _add_grib(self, part: FineForecast, products: EnsembleProducts | None) -> None:
        """Write the step's messages to the open file or stream."""
        from harpnet_cli.io.writers import get_writer

        if self._stream is None:
            if self.plan.to_stdout:
                self._stream = sys.stdout.buffer
            else:
                from harpnet_cli.io.atomic import atomic_path

                tmp = self._stack.enter_context(atomic_path(self.plan.path, overwrite=self.overwrite))
                self._stream = self._stack.enter_context(open(tmp, "wb"))  # noqa: SIM115
        # every message keeps the output's reference time, as when the file is written at once
        reference = part.reference_time if part.reference_time is not None else min(self.starts)
        chosen: dict[str, Any] = {} if self.plan.product is None else {"product": self.plan.product}
        get_writer(self.fmt)(self._stream, dataclasses.replace(part, reference_time=reference), products=products,
                             **chosen, **self.options)
        self._stream.flush()

    # -- NetCDF: one file, step by step ------------------------------------------------------------
    def _add_netcdf(self, index: int, part: FineForecast, products: EnsembleProducts | None) -> None:
        """Create the file at the first step; write the step's slice."""
        from harpnet_cli.io.netcdf_writer import encoding_for, layout_for

        how = {"product": self.plan.product, **self.options}
        step = layout_for(part, products, **how)
        if self._stream is None:
            from harpnet_cli.io.atomic import atomic_path
            from harpnet_cli.io.netcdf_stream import NetcdfStream

            tmp = self._stack.enter_context(atomic_path(self.plan.path, overwrite=self.overwrite))
            structure = layout_for(*self._structure(part, products), **how)
            self._stream = NetcdfStream(tmp, structure, step, encoding_for(step))
            self._stack.callback(self._close_netcdf)
        self._stream.write(index, step)

    def _structure(self, part: FineForecast, products: EnsembleProducts | None,
                   ) -> tuple[FineForecast, EnsembleProducts | None]:
        """The whole output's layout on a 1 x 1 grid: its windows, members, products and attributes."""
        t = len(self.plan.steps)
        one = dataclasses.replace(part, data=np.zeros((part.data.shape[0], t, 1, 1), np.float32), lat=part.lat[:1],
                                  lon=part.lon[:1], lat_bounds=part.lat_bounds[:1], lon_bounds=part.lon_bounds[:1],
                                  starts=self.starts, ends=self.ends)
        if products is None:
            return one, None
        zeros = np.zeros((t, 1, 1), np.float32)

        def stacked(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.zeros((values.shape[0], t, 1, 1), np.float32)

        return one, dataclasses.replace(products, mean=None if products.mean is None else zeros,
                                        spread=None if products.spread is None else zeros,
                                        probabilities=stacked(products.probabilities),
                                        percentile_fields=stacked(products.percentile_fields))

    def _close_netcdf(self) -> None:
        """Close the NetCDF file if the output was left incomplete (an error)."""
        if self._stream is not None and not self._closed:
            self._stream.abort()

    # -- the end -------------------------------------------------------------------------------------
    def _finish(self, last: FineForecast) -> Path:
        """Write (whole) or close and rename (streams) the complete output."""
        if self.mode == "whole":
            parts = [self._parts[i] for i in range(len(self.plan.steps))]
            write_output(self.plan, _concatenate([p for p, _ in parts]), self.fmt, overwrite=self.overwrite,
                         options=self.options, products=_concatenate_products([q for _, q in parts]))
            self._parts.clear()
        elif self.mode == "netcdf":
            self._stream.close(last.attrs)  # the attributes as of the last step (notes gathered on the way)
            self._closed = True
        self._closed = True
        self._stack.close()  # renames the temporary file onto the output
        return self.plan.path

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._closed:
            self._parts.clear()
            # an incomplete output: unwind as on an error, so the temporary file is removed
            self._stack.__exit__(*((exc_type, exc, tb) if exc_type else _incomplete()))


def _incomplete() -> tuple[type[BaseException], BaseException, None]:
    """The exception an unfinished :class:`OutputWriter` unwinds its temporary file with."""
    error = RuntimeError("output left incomplete")
    return type(error), error, None


def _concatenate(parts: list[FineForecast]) -> FineForecast:
    """Steps of one output joined along time, ``(R, T, H, W)``."""
    if len(parts) == 1:
        return parts[0]
    return dataclasses.replace(parts[-1], data=np.concatenate([p.data for p in parts], axis=1),
                               starts=[t for p in parts for t in p.starts], ends=[t for p in parts for t in p.ends])


def _concatenate_products(parts: list[EnsembleProducts | None]) -> EnsembleProducts | None:
    """Per-step ensemble products joined along time."""
    if parts[0] is None:
        return None
    if len(parts) == 1:
        return parts[0]
    given = [p for p in parts if p is not None]

    def join(name: str, axis: int) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in given]
        return None if arrays[0] is None else np.concatenate(arrays, axis=axis)

    return dataclasses.replace(given[0], mean=join("mean", 0), spread=join("spread", 0),
                               probabilities=join("probabilities", 1), percentile_fields=join("percentile_fields", 1))
