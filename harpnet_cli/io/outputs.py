"""Where a downscale run writes: one file, one file per step (name templates), or standard output.

:func:`plan_outputs` turns ``-o`` into a list of :class:`PlannedOutput` (which steps and members go
into which file), :func:`locked` holds the :class:`~harpnet_cli.io.pipes.OutputLock` of every file
for the whole run, :func:`select` cuts a planned output's part out of the run, and
:func:`write_output` writes it with the writer registered for the format
(:mod:`harpnet_cli.io.writers`; files atomically, ``-`` as a stream on ``sys.stdout.buffer``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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
