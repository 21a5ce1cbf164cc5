"""``harpnet downscale``: input files → interval series → 0.25° grid → model → CF NetCDF or GRIB2.

A run goes **read → per-step model → write**, one step at a time:

* :func:`_read_series` scans the inputs (metadata only) and plans each member's interval series
  (:class:`~harpnet_cli.core.accumulation.LazySeries`); a step's fields are read when the step is
  computed, so memory stays flat however many steps a run has;
* :class:`StepDownscaler` turns one step of every input member into fine fields: remap onto the
  target grid, fill gaps, run the model over the domain's tiles (periodic round the globe),
  conserve each coarse cell's amount;
* an :class:`~harpnet_cli.io.outputs.OutputWriter` per planned output takes each step as soon as
  it is done (a per-step template file is complete, a GRIB2 or NetCDF file grows).

:func:`downscale_forecast` runs the same steps on series already in memory and returns the
whole :class:`~harpnet_cli.fields.FineForecast`: the Python API (:mod:`harpnet`) calls it.

The model file is read once (:class:`~harpnet_cli.io.model_files.ModelFile`): whether it is an
ensemble, its weights and its SHA-256 all come from that read. An ensemble's statistics (mean,
spread, probabilities) are computed here, per step, and handed to the writer registered for the
output format (:mod:`harpnet_cli.io.writers`), which only writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.config import DownscaleConfig
from harpnet_cli.core.masking import fill_nearest, upsample_mask
from harpnet_cli.core.tiling import Patcher, wrap_columns
from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.fields import FieldRef, FineForecast, IntervalSeries, SourceGrid
from harpnet_cli.formats import AMOUNT_UNITS
from harpnet_cli.grids import COARSE_RES, RATIO, GridSpec
from harpnet_cli.registry import PERIOD_INPUT
from harpnet_cli.workflows.reporting import NullReporter, Reporter

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.accumulation import LazySeries
    from harpnet_cli.core.model.config import ModelConfig
    from harpnet_cli.core.model.ensemble import EnsembleDownscaler
    from harpnet_cli.core.model.onnx import GraphModel
    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.core.remap import Regridder
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.io.outputs import OutputWriter, PlannedOutput
    from harpnet_cli.plausibility import GateReport

#: The model's native accumulation period.
NATIVE_PERIOD = timedelta(hours=3)
#: Without --bbox/--domain, conus is the domain when the input covers this fraction of it.
CONUS_DEFAULT_COVERAGE = 0.9
#: Threshold of the ``--plot`` probability panel when ``--probabilities`` gives none, by ``--units``
#: (in mm: 10 mm, a quarter inch).
PLOT_THRESHOLD_MM = {"mm": 10.0, "in": 6.35}
#: Below this fraction of the domain inside the model's training regions, downscale warns.
TRAINED_REGION_MIN = 0.5
#: The input word naming the synthetic example input (see :func:`write_example_input`).
EXAMPLE_INPUT = "example"
#: Forecast reference time of the example input.
EXAMPLE_REFERENCE_TIME = datetime(2000, 1, 1, 0)
#: Note carried into the output's ``comment`` attribute when the input is the example.
EXAMPLE_NOTE = ("input is HARPNET's synthetic example ('harpnet downscale example'): a Smith-Barstad "
                "synthetic world, not a real forecast")


@dataclass
class DownscaleResult:
    """What a downscale run did, for the one-line summary and ``--json``."""

    outputs: list[Path]
    """Files written (``-`` for standard output), in order."""
    skipped: list[Path]
    """Outputs left alone because they exist (``--skip-existing``)."""
    steps: int
    """Time steps downscaled in this run."""
    members: int
    domain: GridSpec | None
    """The target grid; None when there was nothing to do."""
    seconds: float
    mass_ratio: float
    """Mean of the fine output over the domain divided by the mean of the coarse input."""
    model_sha256: str | None = None
    """SHA-256 of the checkpoint that ran; None when there was nothing to do."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: ``read`` (inputs), ``remap`` (onto the 0.25° grid), ``model`` (loading and
    running it), ``write`` (outputs and plot)."""

    masked_cells: int = 0
    """Input cells the input checks set missing (fill values, amounts above the bound)."""

    def timing_text(self) -> str:
        """``"read 0.28 s, remap 0.07 s, model 0.47 s, write 0.27 s"`` (``-v``)."""
        return ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in self.timings.items())

    def summary(self) -> str:
        """The one-line report of the run."""
        if not self.outputs:
            return f"nothing to do: all {len(self.skipped)} outputs exist"
        where = str(self.outputs[0]) if len(self.outputs) == 1 else f"{len(self.outputs)} files"
        skipped = f" ({len(self.skipped)} existing skipped)" if self.skipped else ""
        domain = self.domain.describe() if self.domain is not None else ""
        masked = f", {self.masked_cells} input cell(s) masked" if self.masked_cells else ""
        return (f"{where}{skipped}: {self.steps} step(s) x {self.members} member(s), {domain}, "
                f"mass ratio {self.mass_ratio:.4f}{masked}, {self.seconds:.1f} s")

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary (``--json``)."""
        return {
            "files": [str(p) for p in self.outputs], "skipped": [str(p) for p in self.skipped],
            "steps": self.steps, "members": self.members,
            "domain": None if self.domain is None else self.domain.describe(),
            "model_sha256": self.model_sha256, "seconds": round(self.seconds, 3),
            "mass_ratio": self.mass_ratio, "masked_cells": self.masked_cells,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def run_downscale(cfg: DownscaleConfig, reporter: Reporter | None = None) -> DownscaleResult:
    """Downscale the input files of ``cfg`` and write the CF NetCDF or GRIB2 output(s).

    Parameters
    ----------
    cfg : DownscaleConfig
        The validated request. An input ``-`` is a GRIB stream on standard input; ``cfg.output``
        may be ``-`` (GRIB2 on standard output, refused when that is a terminal) or a name
        template (one file per step, written as soon as its step is done; missing folders are
        created).
    reporter : Reporter, optional
        Where messages and progress go; silent by default.

    Returns
    -------
    DownscaleResult

    Raises
    ------
    LockedError
        Another process is writing one of the outputs and ``cfg.wait`` is False.
    """
    from harpnet_cli.io.atomic import check_writable
    from harpnet_cli.io.outputs import is_template, locked, make_folders, plan_outputs, refuse_terminal
    from harpnet_cli.process import allow_fast_exit

    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    if cfg.to_stdout:
        refuse_terminal()
    cfg, model_file = resolve_model(cfg, rep)
    if not cfg.to_stdout and not is_template(cfg.output):
        if not (cfg.skip_existing and cfg.output.exists()):
            check_writable(cfg.output, cfg.overwrite)
    if cfg.plot is not None:
        check_writable(cfg.plot, cfg.overwrite)
    with contextlib.ExitStack() as stack:
        read_began = time.perf_counter()
        series, gate = _read_series(cfg, stack)
        timings = {"read": time.perf_counter() - read_began}
        first = series[0]
        plans = plan_outputs(cfg.output, starts=first.starts, ends=first.ends, members=[s.member for s in series],
                             reference_time=first.reference_time,
                             products=_product_files(cfg, model_file.is_ensemble or cfg.samples is not None))
        make_folders(plans, cfg.output)
        stack.enter_context(locked(plans, cfg.wait))
        todo = _pending(plans, cfg, rep)
        if not todo:
            result = DownscaleResult([], [p.path for p in plans], 0, len(series), None, time.perf_counter() - t0, 1.0)
        else:
            result = _downscale(cfg, model_file, series, todo, [p.path for p in plans if p not in todo], rep, t0,
                                timings)
            result = dataclasses.replace(result, masked_cells=gate.masked)
    for line in gate.warnings:  # input checks (harpnet_cli.plausibility), of the fields the run read
        rep.warning(line)
    allow_fast_exit()  # every output is closed and every temporary file removed
    return result


def resolve_model(cfg: DownscaleConfig, rep: Reporter) -> tuple[DownscaleConfig, ModelFile]:
    """The model file to run and the samples it draws.

    Without ``--model``: the default stochastic model when the run asks for samples or ensemble
    products (members, probabilities, percentiles), else the default model. A stochastic model
    draws ``--samples`` members per input member (:data:`~harpnet_cli.config.DEFAULT_SAMPLES`
    when not given); a deterministic one or an ensemble takes no ``--samples``.

    Raises
    ------
    UsageError
        ``--samples`` with a model that cannot draw samples; ensemble products with a model that
        has no members; no default model installed.
    """
    from harpnet_cli.config import DEFAULT_SAMPLES
    from harpnet_cli.io.model_files import ModelFile

    if cfg.model is None:
        cfg = cfg.model_copy(update={"model": _default_model(rep, cfg.samples is not None or cfg.ensemble_products)})
    assert cfg.model is not None
    model_file = ModelFile(cfg.model)  # opened once, when first needed
    if model_file.stochastic:
        if cfg.samples is None:
            rep.info(f"stochastic model: drawing {DEFAULT_SAMPLES} samples per input member (--samples N to change)")
            cfg = cfg.model_copy(update={"samples": DEFAULT_SAMPLES})
    elif cfg.samples is not None:
        raise UsageError(f"--samples needs a stochastic model; {cfg.model} is "
                         f"{'an ensemble' if model_file.is_ensemble else 'deterministic'} (without --model the "
                         "default stochastic model is used)")
    elif cfg.ensemble_products and not model_file.is_ensemble:
        raise UsageError("--members, --probabilities and --percentiles need members: a stochastic model "
                         "(--samples N, the default without --model) or an ensemble --model (made by "
                         "'harpnet ensemble')")
    return cfg, model_file


def _product_files(cfg: DownscaleConfig, probabilistic: bool) -> list[str]:
    """The ensemble products written to files of their own (GRIB2, or ``{product}`` in ``-o``); [] for one file."""
    from harpnet_cli.fields import product_names
    from harpnet_cli.io.writers import product_files

    if not probabilistic:
        return []
    assert cfg.output_format is not None
    names = product_names(cfg.members, cfg.thresholds_mm, cfg.percentiles)
    return product_files(cfg.output, cfg.output_format, names)


def _read_series(cfg: DownscaleConfig, stack: contextlib.ExitStack) -> tuple[list[GatedSeries], GateReport]:
    """Plan the inputs' interval series from a metadata scan; fields are read step by step, every
    field as read and every window the model sees through the input checks
    (:mod:`harpnet_cli.plausibility`), whose report fills as the steps are read.

    ``-`` is spooled from stdin to a file deleted with ``stack``; the example input is written
    to a folder deleted with it.
    """
    from harpnet_cli.core.accumulation import plan_lazy_series
    from harpnet_cli.io.pipes import spool_stdin
    from harpnet_cli.io.readers import scan_files
    from harpnet_cli.plausibility import GateReport

    example = is_example(cfg.inputs)
    if example:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harpnet-example-")))
        paths = [write_example_input(folder)]
    else:
        paths = []
        for path in cfg.inputs:
            if str(path).lower() == EXAMPLE_INPUT:
                raise UsageError(f"'{EXAMPLE_INPUT}' must be the only input (for a file of that name, "
                                 f"write ./{path})")
            if str(path) == "-":
                path = spool_stdin()
                stack.callback(path.unlink, missing_ok=True)
            paths.append(path)
    refs = scan_files(paths, variable=cfg.variable, accumulation=cfg.accumulation)
    report = GateReport()
    lazy = plan_lazy_series(refs, _GatedLoader(report, cfg.allow_extreme))
    _check_members_agree(lazy)
    if example:
        for s in lazy:
            s.base_notes.append(EXAMPLE_NOTE)
    return [GatedSeries(s, report, cfg.allow_extreme) for s in lazy], report


@dataclass
class _GatedLoader:
    """:func:`harpnet_cli.io.readers.load_field` with every field through the input checks, counted in ``report``."""

    report: GateReport
    allow_extreme: bool

    def __call__(self, ref: FieldRef) -> tuple[np.ndarray, SourceGrid]:
        from harpnet_cli.io.pipes import shown_path
        from harpnet_cli.io.readers import load_field_counted
        from harpnet_cli.plausibility import check_amounts

        data, grid, fill = load_field_counted(ref)
        data = np.array(data, dtype=np.float32)  # checked in place: never a cached reader array
        shown = shown_path(ref.path)
        what = ref.describe().replace(ref.path.name, shown.name) if shown != ref.path else ref.describe()
        check = check_amounts(data, ref.end - ref.start, source=shown, what=what, allow_extreme=self.allow_extreme,
                              read_as_fill=fill.cells)
        self.report.add(shown.name, check, (fill.cells, fill.values))
        return data, grid


class GatedSeries:
    """A :class:`~harpnet_cli.core.accumulation.LazySeries` whose windows pass the input checks as they are read.

    The window the model sees (a difference of buckets or running totals) is checked against the
    bound of its own length and for emptiness, in place, and counted in the run's report.
    """

    def __init__(self, series: LazySeries, report: GateReport, allow_extreme: bool) -> None:
        self.series = series
        self.report = report
        self.allow_extreme = allow_extreme

    def __getattr__(self, name: str) -> Any:
        return getattr(self.series, name)

    def amount(self, k: int) -> np.ndarray:
        """Step ``k``'s amount, checked (see the class docstring)."""
        from harpnet_cli.fields import span_text
        from harpnet_cli.plausibility import check_amounts

        data = np.array(self.series.amount(k), dtype=np.float32)
        s = self.series
        start, end = s.starts[k], s.ends[k]
        from harpnet_cli.io.pipes import shown_path

        what = f"window {span_text(start, end)}" + (f" of member {s.member}" if s.member is not None else "")
        first = shown_path(s.paths[0])
        source = str(first) + (f" (and {len(s.paths) - 1} other file(s))" if len(s.paths) > 1 else "")
        check = check_amounts(data, end - start, source=source, what=what, allow_extreme=self.allow_extreme)
        self.report.add(first.name if len(s.paths) == 1 else source, check)
        return data


def is_example(inputs: list[Path]) -> bool:
    """Whether the inputs are the single word ``example`` (any case): the synthetic example input."""
    return len(inputs) == 1 and str(inputs[0]).lower() == EXAMPLE_INPUT


def write_example_input(folder: Path, steps: int = 2) -> Path:
    """Write the synthetic example input: a GFS-like 0.25° GRIB2 file over CONUS.

    The fields are the Smith–Barstad synthetic world (:func:`harpnet_cli.core.synthetic.example_amounts`:
    moist south-westerlies, rain bands moving with the wind, orographic rain and a few convective
    cells) rendered on the 0.0625° grid of the ``conus`` domain plus one coarse cell all round
    (the buffer the model reads), then area-averaged to 0.25°: the same every time. Like a GFS
    ``f006`` file it holds APCP running totals since the forecast start (0–3 h, 0–6 h, …), which
    the reader turns back into 3-hour amounts. The forecast reference time,
    :data:`EXAMPLE_REFERENCE_TIME`, is plainly not a real forecast; the file name says
    ``synthetic``, and the messages carry centre 255 (none), not NCEP's 7.

    Parameters
    ----------
    folder : Path
        Existing folder to write into.
    steps : int
        Number of 3-hour windows.

    Returns
    -------
    Path
        The GRIB2 file, ``folder / "harpnet-synthetic-example.pgrb2.0p25.fNNN"``.
    """
    from harpnet_cli.core.remap import block_mean
    from harpnet_cli.core.synthetic import example_amounts
    from harpnet_cli.io.grib_writer import write_grib2
    from harpnet_cli.io.terrain import load_terrain

    spec = GridSpec.from_domain("conus").padded(1)
    lat = spec.fine_lat()
    fine = example_amounts(load_terrain(spec), lat, spec.fine_lon(), steps)
    totals = np.cumsum(block_mean(fine, RATIO, lat=lat), axis=0, dtype=np.float64).astype(np.float32)
    ref = EXAMPLE_REFERENCE_TIME
    fc = FineForecast(
        data=totals[None], lat=spec.coarse_lat(), lon=spec.coarse_lon(), lat_bounds=spec.coarse_lat_bounds(),
        lon_bounds=spec.coarse_lon_bounds(), starts=[ref] * steps,
        ends=[ref + k * NATIVE_PERIOD for k in range(1, steps + 1)], members=[None], reference_time=ref,
        attrs={"comment": EXAMPLE_NOTE},
    )
    hours = round(steps * NATIVE_PERIOD / timedelta(hours=1))
    path = folder / f"harpnet-synthetic-example.pgrb2.0p25.f{hours:03d}"
    write_grib2(path, fc)
    return path

def _default_model(rep: Reporter, stochastic: bool = False) -> Path:
    """The default model file (the default stochastic model when asked and installed); a one-line
    UsageError when none is installed."""
    from harpnet_cli.io.default_model import (
        ENV_VAR,
        default_model_location,
        default_model_path,
        default_stochastic_path,
        read_card,
    )

    path = default_stochastic_path() if stochastic else None
    if path is not None:
        rep.info(f"model: the default stochastic model ({path})")
        return path
    path = default_model_path()
    if path is None:
        where = default_model_location()
        how = f" (${ENV_VAR})" if os.environ.get(ENV_VAR, "").strip() else ""
        raise UsageError(f"no default model is installed (no file {where}{how}): pass --model CHECKPOINT")
    name = read_card(path).get("name")
    rep.info(f"model: the default model{f' {name!r}' if name else ''} ({path})")
    return path


def _pending(plans: list[PlannedOutput], cfg: DownscaleConfig, rep: Reporter) -> list[PlannedOutput]:
    """The planned outputs still to write (checked under the lock); refuses existing ones without a flag."""
    from harpnet_cli.io.atomic import check_writable

    todo = []
    for plan in plans:
        if not plan.to_stdout and cfg.skip_existing and plan.path.exists():
            rep.info(f"{plan.path} exists; skipped")
            continue
        if not plan.to_stdout:
            check_writable(plan.path, cfg.overwrite)
        todo.append(plan)
    return todo

def _downscale(cfg: DownscaleConfig, model_file: ModelFile, series: Sequence[StepSource],
               todo: list[PlannedOutput], skipped: list[Path], rep: Reporter, t0: float,
               timings: dict[str, float] | None = None) -> DownscaleResult:
    """Run the model of ``model_file`` over the steps ``todo`` needs, writing each output as soon as it can be."""
    from harpnet_cli.io.outputs import OutputWriter

    began = time.perf_counter()
    engine = StepDownscaler.prepare(cfg, model_file, series, rep)
    engine.timings["read"] += (timings or {}).get("read", 0.0)
    engine.timings["model"] += time.perf_counter() - began
    first = series[0]
    n = engine.runner.members
    needed = sorted({k for p in todo for k in p.steps})
    assert cfg.output_format is not None
    kind = "samples" if engine.runner.samples else "model members"
    label = f"downscaling {len(needed)} step(s) x {len(series)} member(s)" + (f" x {n} {kind}" if n > 1 else "")
    written: list[Path] = []
    plot = None
    if cfg.plot is not None:
        threshold = cfg.thresholds_mm[0] if cfg.thresholds_mm else PLOT_THRESHOLD_MM[cfg.units]
        plot = _PlotPicker(n if engine.runner.is_ensemble else 1, threshold, engine.runner.samples is not None)
    with contextlib.ExitStack() as stack, rep.progress(label, len(series) * len(needed) * engine.tiles) as advance:
        writers = [stack.enter_context(OutputWriter(
            plan, cfg.output_format, starts=[first.starts[k] for k in plan.steps],
            ends=[first.ends[k] for k in plan.steps], overwrite=cfg.overwrite, options=cfg.writer_options))
            for plan in todo]
        for k, fine, coarse in engine.run(series, needed, advance):
            step = engine.forecast(k, fine, series)
            if plot is not None:
                plot.offer(k, step, coarse)
            began = time.perf_counter()
            for writer in writers:
                if k in writer.plan.steps:
                    path = _write_step(writer, k, step, engine, cfg)
                    if path is not None:
                        written.append(path)
            engine.timings["write"] += time.perf_counter() - began
    if plot is not None and cfg.plot is not None:
        began = time.perf_counter()
        rep.info(f"wrote {plot.draw(cfg.plot, engine, series, overwrite=cfg.overwrite, units=cfg.units)}")
        engine.timings["write"] += time.perf_counter() - began
    return DownscaleResult(written, skipped, len(needed), len(series) * n, engine.spec, time.perf_counter() - t0,
                           engine.mass_ratio, model_file.sha256, dict(engine.timings))


def _write_step(writer: OutputWriter, k: int, step: FineForecast, engine: StepDownscaler,
                cfg: DownscaleConfig) -> Path | None:
    """Hand one step's part of an output to its writer; an ensemble model's products are computed here."""
    from harpnet_cli.core.ensemble_stats import ensemble_products
    from harpnet_cli.io.outputs import select

    n = engine.runner.members
    plan = writer.plan
    ensemble = engine.runner.is_ensemble
    part = select(dataclasses.replace(plan, steps=[0]), step, n if ensemble else 1)
    products = None  # an ensemble model's products, computed here: writers only write
    if ensemble:
        products = ensemble_products(part.data, every_member=cfg.members, thresholds=cfg.thresholds_mm,
                                     percentiles=cfg.percentiles)
    return writer.add(k, part, products)


class StepSource(Protocol):
    """One member's interval series, step by step: a :class:`~harpnet_cli.core.accumulation.LazySeries`
    (files) or a :class:`SeriesInMemory` (arrays)."""

    starts: list[datetime]
    ends: list[datetime]
    member: int | None
    reference_time: datetime | None
    paths: list[Path]

    @property
    def notes(self) -> list[str]:
        """Things the user should hear about (gathered while the steps are read)."""
        ...

    @property
    def grid(self) -> SourceGrid:
        """The source grid."""
        ...

    def amount(self, k: int) -> np.ndarray:
        """Step ``k``: ``(ny, nx)`` float32 mm, ``>= 0`` or NaN."""
        ...


@dataclass
class SeriesInMemory:
    """An :class:`~harpnet_cli.fields.IntervalSeries` as a :class:`StepSource`."""

    series: IntervalSeries

    def __getattr__(self, name: str) -> Any:
        return getattr(self.series, name)

    def amount(self, k: int) -> np.ndarray:
        """Step ``k`` of the series' data."""
        return self.series.data[k]


@dataclass
class StepDownscaler:
    """A model on a target grid: one step of every input member in, fine fields out.

    Build with :meth:`prepare`; :meth:`run` yields the steps, :meth:`forecast` wraps one as a
    :class:`~harpnet_cli.fields.FineForecast` with the run's attributes.
    """

    runner: _ModelRunner
    spec: GridSpec
    """The target grid."""
    regridder: Regridder
    """From the source grid onto ``spec.padded(1)`` (in latitude only when ``spec`` is periodic)."""
    terrain: np.ndarray
    """``(1, 4 ny, 4 nx)`` static input."""
    patcher: Patcher
    """The domain's tiles (see :func:`~harpnet_cli.core.tiling.choose_tile`)."""
    attrs: dict[str, str]
    """Global attributes of the output (notes are added as the steps are read)."""
    coarse_sum: float = 0.0
    fine_sum: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("read", "remap", "model", "write"), 0.0))
    """Seconds spent so far per stage (see :attr:`DownscaleResult.timings`)."""

    @classmethod
    def prepare(cls, cfg: DownscaleConfig, model_file: ModelFile, series: Sequence[StepSource],
                rep: Reporter) -> StepDownscaler:
        """Load the model, choose the target grid and the tiles, load the terrain.

        Raises
        ------
        UsageError
            ``--members`` with both an ensemble input and an ensemble model.
        InputDataError
            The input does not cover the requested domain.
        """
        from harpnet_cli.io.terrain import load_terrain

        assert cfg.model is not None
        runner = _ModelRunner.load(cfg, model_file, rep)
        n = runner.members
        if runner.epochs is not None and cfg.members and len(series) > 1 and n > 1:  # (samples: input x samples)
            raise UsageError(f"--members with an ensemble input ({len(series)} members) and an ensemble model ({n} "
                             "members) would need two member axes; drop --members for the mean and spread over all "
                             f"{len(series) * n}, or give one input member at a time")
        first = series[0]
        spec, regridder = _target(cfg, first.grid, first.paths[0], rep)
        patcher = runner.tiles_for(spec)
        terrain = load_terrain(spec)[None]
        _warn_periods(first, runner.config, rep)
        _warn_region(spec, runner.config, rep)
        attrs = _attributes(cfg, runner.config.preset, model_file.sha256, spec, regridder, series, runner.epochs,
                            runner.samples)
        attrs["harpnet_runtime"] = runner.runtime
        return cls(runner, spec, regridder, terrain, patcher, attrs)

    @property
    def tiles(self) -> int:
        """Tiles per field (progress units)."""
        return len(self.patcher)

    @property
    def mass_ratio(self) -> float:
        """Mean of the fine output over the mean of the coarse input, so far (1.0 before any rain)."""
        return self.fine_sum / self.coarse_sum if self.coarse_sum > 0 else 1.0

    def coarse(self, field: np.ndarray) -> np.ndarray:
        """A source field on the padded coarse grid ``(ny + 2, nx + 2)``, NaN where not covered."""
        padded = self.regridder(field)
        return wrap_columns(padded, 1) if self.spec.periodic else padded

    def run(self, series: Sequence[StepSource], steps: Sequence[int],
            advance: Callable[[int], None]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Downscale ``steps`` of every member, one step at a time.

        Parameters
        ----------
        series : sequence of StepSource
            The input members (all on one grid with the same windows).
        steps : sequence of int
            Step indices, in the order to compute them (increasing, so each field is read once).
        advance : callable
            Progress callback (tiles done).

        Yields
        ------
        k : int
            The step.
        fine : numpy.ndarray
            ``(S M, 4 ny, 4 nx)`` float32 amounts over the step's window, input member major (row
            ``i M + j`` is model member ``j`` on input member ``i``; M = 1 for a checkpoint), NaN
            under missing coarse cells.
        coarse : numpy.ndarray
            ``(ny, nx)`` the first member's coarse input on the target grid (for ``--plot``).
        """
        n = self.runner.members
        for k in steps:
            fine = np.empty((len(series) * n, *self.spec.fine_shape), dtype=np.float32)
            first: np.ndarray | None = None
            for m, s in enumerate(series):
                began = time.perf_counter()
                amount = s.amount(k)
                read = time.perf_counter()
                coarse = self.coarse(amount)
                remapped = time.perf_counter()
                fine[m * n:(m + 1) * n] = self.runner.step(coarse, self.terrain, self.patcher, s.ends[k] - s.starts[k],
                                                           advance, noise_key=(m, k))
                self.timings["read"] += read - began
                self.timings["remap"] += remapped - read
                self.timings["model"] += time.perf_counter() - remapped
                centre = coarse[1:-1, 1:-1]
                if first is None:
                    first = centre
                valid = np.isfinite(centre)
                self.coarse_sum += float(centre[valid].sum()) * n
                self.fine_sum += float(np.nansum(fine[m * n:(m + 1) * n])) / RATIO**2
            assert first is not None
            yield k, fine, first

    def forecast(self, k: int, fine: np.ndarray, series: Sequence[StepSource]) -> FineForecast:
        """Step ``k`` as a :class:`~harpnet_cli.fields.FineForecast` ``(S M, 1, H, W)`` with the run's attributes."""
        first = series[0]
        attrs = dict(self.attrs)
        notes = sorted({note for s in series for note in s.notes})
        if notes:
            attrs["comment"] = "; ".join(notes)
        spec = self.spec
        return FineForecast(data=fine[:, None], lat=spec.fine_lat(), lon=spec.fine_lon(),
                            lat_bounds=spec.fine_lat_bounds(), lon_bounds=spec.fine_lon_bounds(),
                            starts=[first.starts[k]], ends=[first.ends[k]],
                            members=_member_numbers(series, self.runner.members),
                            reference_time=first.reference_time, attrs=attrs)


def downscale_forecast(cfg: DownscaleConfig, series: Sequence[StepSource],
                       reporter: Reporter | None = None) -> tuple[FineForecast, StepDownscaler]:
    """Downscale every step of series in memory and return the whole forecast (the Python API).

    The same steps as ``harpnet downscale`` (:class:`StepDownscaler`), collected instead of
    written.

    Parameters
    ----------
    cfg : DownscaleConfig
        Model, area, device and threads (inputs and output are not used); ``cfg.model`` None is
        the default model.
    series : sequence of StepSource
        One per input member, as :func:`harpnet_cli.core.accumulation.to_interval_series` forms
        them (wrapped in :class:`SeriesInMemory`).
    reporter : Reporter, optional
        Where messages go; silent by default.

    Returns
    -------
    forecast : FineForecast
        ``(S M, T, H, W)`` (M model members of each of the S input members).
    engine : StepDownscaler
        The model, grid and attributes that made it (``runner.is_ensemble`` says whether the rows
        are members: of an ensemble model, or samples of a stochastic one).
    """
    rep = reporter or NullReporter()
    cfg, model_file = resolve_model(cfg, rep)
    _check_members_agree(series)
    engine = StepDownscaler.prepare(cfg, model_file, series, rep)
    steps = list(range(len(series[0].starts)))
    fields = [fine for _, fine, _ in engine.run(series, steps, lambda n: None)]
    last = engine.forecast(steps[-1], fields[-1], series)
    fc = dataclasses.replace(last, data=np.stack(fields, axis=1), starts=list(series[0].starts),
                             ends=list(series[0].ends))
    return fc, engine


class _PlotPicker:
    """Keeps the wettest step seen so far (largest mean output), for ``--plot``: memory stays flat.

    With members (an ensemble model, a stochastic model's samples) the members' mean is drawn, and
    beside it the probability of exceeding ``threshold_mm`` (the fraction of members above it).
    """

    def __init__(self, model_members: int, threshold_mm: float, samples: bool = False) -> None:
        self.n = model_members
        self.threshold = threshold_mm
        self.samples = samples
        self.best: tuple[float, int, FineForecast, np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self.steps = 0

    def offer(self, k: int, step: FineForecast, coarse: np.ndarray) -> None:
        """Consider step ``k`` (``coarse``: the first input member's coarse field)."""
        rows = step.data[:self.n, 0]
        fine = np.nanmean(rows, axis=0) if self.n > 1 else rows[0]
        wet = float(np.nanmean(fine)) if np.isfinite(fine).any() else 0.0
        self.steps += 1
        if self.best is None or wet > self.best[0]:
            probability = None
            if self.n > 1:
                probability = np.where(np.isfinite(fine), (rows > self.threshold).mean(axis=0), np.nan)
            self.best = (wet, k, dataclasses.replace(step, data=step.data[:0]), coarse.copy(), np.array(fine),
                         probability)

    def draw(self, path: Path, engine: StepDownscaler, series: Sequence[StepSource], *, overwrite: bool,
             units: str = "mm") -> Path:
        """Write the PNG of the wettest step."""
        assert self.best is not None
        _, k, step, coarse, fine, probability = self.best
        panel = None
        if probability is not None:
            per_mm = AMOUNT_UNITS[units].per_mm
            panel = (f"P(> {self.threshold * per_mm:g} {units})", probability)
        return _plot(path, step, k, coarse, fine, engine.terrain[0], self.n, series, total=len(series[0].starts),
                     several=self.steps > 1, overwrite=overwrite, units=units, probability=panel,
                     kind="samples" if self.samples else "model members")


def _plot(path: Path, step: FineForecast, k: int, coarse: np.ndarray, fine: np.ndarray, terrain: np.ndarray,
          n: int, series: Sequence[StepSource], *, total: int, several: bool, overwrite: bool,
          units: str = "mm", probability: tuple[str, np.ndarray] | None = None,
          kind: str = "model members") -> Path:
    """The ``--plot`` PNG: input and output of one step side by side over shaded terrain.

    With several steps the wettest (largest mean output) is drawn; with an ensemble model (or a
    stochastic model's samples) the members' mean for the first input member, and ``probability``
    beside it; with an ensemble input its first member.
    """
    from harpnet_cli.io.plots import plot_downscaled

    start, end = step.starts[0], step.ends[0]
    hours = (end - start) / timedelta(hours=1)
    when = f"valid {end:%Y-%m-%d %H:%M} UTC, {hours:g}-hour total from {start:%H:%M} UTC"
    if step.reference_time is not None:
        lead = (end - step.reference_time) / timedelta(hours=1)
        when += f" (+{lead:g} h from {step.reference_time:%Y-%m-%d %H} UTC)"
    which = f"step {k + 1} of {total}"
    if several:
        which += ", the wettest"
    if n > 1:
        which += f"; mean of {n} {kind}"
    if len(series) > 1:
        which += f"; input member {series[0].member}"
    head = "HARPNET downscaling 0.25° → 0.0625°"
    if any(EXAMPLE_NOTE in s.notes for s in series):
        head += " of the SYNTHETIC example input (not a real forecast)"
    else:
        head += f" of {input_names([p for s in series[:1] for p in s.paths])}"
    title = f"{head}\n{when}; {which}"
    return plot_downscaled(path, coarse, fine, terrain, step.lat, step.lon, title=title, overwrite=overwrite,
                           units=units, probability=probability)


def input_names(paths: list[Path], limit: int = 2) -> str:
    """The input files for a title: ``a.grb, b.grb``, or ``a.grb … d.grb (4 files)`` beyond ``limit``."""
    names = sorted(dict.fromkeys(p.name for p in paths))
    if len(names) <= limit:
        return ", ".join(names)
    return f"{names[0]} … {names[-1]} ({len(names)} files)"


def _member_numbers(series: Sequence[StepSource], n: int) -> list[int | None]:
    """Member number of each output row: the input's with one model member, else the model member's
    index (one input member), else the row index (mean and spread over input x model members only)."""
    if n == 1:
        return [s.member for s in series]
    if len(series) == 1:
        return list(range(n))
    return list(range(len(series) * n))


@dataclass
class _ModelRunner:
    """A loaded model, or every member of an ensemble run in one pass, on its device.

    :meth:`load` reads the model file and picks the runtime (:func:`choose_backend`); :meth:`tiles_for`
    fixes the tile size for a domain and prepares the model for inference (torch: BatchNorm folded,
    channels-last on the CPU; ONNX Runtime: the exported graph takes any tile size as it is).
    """

    loaded: list[Downscaler]
    """The models as read (every member of an ensemble), on the device; empty for ONNX Runtime."""
    config: ModelConfig
    """The model's config (the first member's for an ensemble: inputs and tiles are shared)."""
    device: torch.device | None
    """The torch device; None on ONNX Runtime (the CPU)."""
    batch_size: int
    bf16: bool
    epochs: list[int] | None = None
    """Epoch of each ensemble member; None for a single checkpoint."""
    samples: int | None = None
    """Members a stochastic model draws per input member; None for a deterministic model or an ensemble."""
    seed: int = 0
    """Seed of a stochastic model's noise (``--seed``)."""
    path: Path | None = None
    """The model file, for messages."""
    model: Downscaler | EnsembleDownscaler | GraphModel | None = None
    """The model ready for inference (after :meth:`tiles_for`; the graph from :meth:`load`)."""
    threads: int = 1
    """CPU threads (the runtime's, and a stochastic model's noise drawing)."""

    @property
    def members(self) -> int:
        """Fields each step gives per input member: 1 for a checkpoint, M for an ensemble, N samples."""
        if self.samples is not None:
            return self.samples
        return 1 if self.epochs is None else len(self.epochs)

    @property
    def is_ensemble(self) -> bool:
        """Whether each step gives members (an ensemble model, or a stochastic model's samples)."""
        return self.epochs is not None or self.samples is not None

    @property
    def runtime(self) -> str:
        """What runs the network, for the output's provenance: ``torch 2.13.0+cpu (cpu)`` or ``onnxruntime 1.32.0``."""
        if self.device is None:
            from harpnet_cli.core.model.onnx import runtime_version

            return f"onnxruntime {runtime_version()}"
        import torch

        return f"torch {torch.__version__} ({self.device.type})"

    @classmethod
    def load(cls, cfg: DownscaleConfig, model_file: ModelFile, rep: Reporter | None = None) -> _ModelRunner:
        """Pick the runtime and device, set CPU threads, load the checkpoint or ensemble.

        ``--bf16`` on a CPU without native bfloat16 (see :func:`harpnet_cli.devices.native_bf16`)
        warns and runs float32: emulated bfloat16 is about 10 times slower.
        """
        from harpnet_cli.devices import configure_cpu_threads, native_bf16, select_device
        from harpnet_cli.workflows.models import load_models

        assert cfg.model is not None
        rep = rep or NullReporter()
        no_bf16 = ("--bf16: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag); running float32, "
                   "since emulated bfloat16 is about 10x slower")
        if choose_backend(cfg) == "onnx":
            if cfg.bf16:
                rep.warning(no_bf16 if not native_bf16() else "--bf16: ONNX Runtime runs float32; use --backend "
                            "torch for bfloat16")
            return cls._load_graph(cfg, model_file, rep)
        bf16 = cfg.bf16
        device = select_device(cfg.device)
        threads = 1
        if device.type == "cpu":
            threads = configure_cpu_threads(cfg.threads)
            if bf16 and not native_bf16():
                rep.warning(no_bf16)
                bf16 = False
        loaded = load_models(model_file, device=device)
        for m in loaded.models:
            _check_inputs(m.config)
        epochs = [int(m["epoch"]) for m in loaded.meta["members"]] if loaded.ensemble else None
        config = loaded.models[0].config
        samples = cfg.samples if config.stochastic and not loaded.ensemble else None
        runner = cls(loaded.models, config, device, cfg.batch_size, bf16, epochs, samples, cfg.seed, cfg.model)
        runner.threads = threads
        return runner

    @classmethod
    def _load_graph(cls, cfg: DownscaleConfig, model_file: ModelFile, rep: Reporter) -> _ModelRunner:
        """The ONNX Runtime path of :meth:`load`: configs from the file's plain data, the graph
        beside it or cached (exported with torch only when there is none)."""
        from pydantic import ValidationError

        from harpnet_cli.core.model.config import ModelConfig
        from harpnet_cli.devices import cpu_threads, spinning_allowed
        from harpnet_cli.errors import validation_message
        from harpnet_cli.workflows.models import model_graph

        threads = cpu_threads(cfg.threads)
        logging.getLogger("harpnet").info("Inference device: cpu (%d threads, ONNX Runtime)", threads)
        plain = model_file.plain()  # before the graph: an export then loads the weights from the same read
        graph = model_graph(model_file, threads=threads, spinning=spinning_allowed(), note=rep.info)
        entries = plain.get("members", []) if model_file.is_ensemble else [plain]
        try:
            configs = [ModelConfig.model_validate(entry.get("config")) for entry in entries]
        except ValidationError as exc:
            raise InputDataError(model_file.path, f"invalid model config: {validation_message(exc)}") from None
        if not configs:
            raise InputDataError(model_file.path, "no model config found in the file")
        for config in configs:
            _check_inputs(config)
        epochs = [int(entry["epoch"]) for entry in entries] if model_file.is_ensemble else None
        samples = cfg.samples if configs[0].stochastic and epochs is None else None
        runner = cls([], configs[0], None, cfg.batch_size, False, epochs, samples, cfg.seed, cfg.model)
        runner.model = graph
        runner.threads = threads
        return runner

    def tiles_for(self, spec: GridSpec) -> Patcher:
        """The tile layout for ``spec``; the model is rebuilt on larger tiles where that saves work.

        The network is fully convolutional; :func:`~harpnet_cli.core.tiling.choose_tile` picks the
        square tile that computes the fewest pixels (tile overlaps are computed twice).
        """
        from harpnet_cli.core.tiling import choose_tile

        cfg = self.config
        assert cfg.channels is not None
        levels = 2 ** len(cfg.channels)
        tile, overlap = choose_tile(spec.fine_shape, native=cfg.tile, multiple=levels * cfg.ratio // math.gcd(
            levels, cfg.ratio), ratio=cfg.ratio, periodic=spec.periodic)
        if self.device is None:  # the graph takes any tile size
            self.config = cfg.model_copy(update={"tile": tile})
        else:
            self._prepare_torch(tile)
        return Patcher(spec.coarse_shape, tile=tile, ratio=cfg.ratio, buffer=cfg.buffer, overlap=overlap,
                       periodic=spec.periodic)

    def _prepare_torch(self, tile: int) -> None:
        """Rebuild the torch models on ``tile`` if needed, fold them for inference, join an ensemble."""
        from harpnet_cli.core.model.ensemble import EnsembleDownscaler
        from harpnet_cli.core.model.wrapper import Downscaler

        assert self.device is not None
        models = self.loaded
        if tile != self.config.tile:
            models = [Downscaler.from_state({**m.config.model_dump(mode="json"), "tile": tile}, m.state_dict())
                      .to(self.device).eval() for m in models]
            self.config = models[0].config
        ready = [m.for_inference(channels_last=self.device.type == "cpu") for m in models]
        self.loaded = []  # folded in place: the models as read are gone
        if self.epochs is None:
            self.model = ready[0]
        else:
            try:
                self.model = EnsembleDownscaler(ready).eval()
            except ValueError as exc:
                raise InputDataError(self.path, str(exc)) from None

    @property
    def tile_batch(self) -> int:
        """Tiles per model call: ``batch_size`` counts 64 x 64 tiles, so larger tiles go fewer at a time."""
        return max(1, self.batch_size * 64 * 64 // self.config.tile ** 2)

    def step(self, coarse: np.ndarray, terrain: np.ndarray, patcher: Patcher, period: timedelta,
             advance: Callable[[int], None], noise_key: tuple[int, ...] = (0, 0)) -> np.ndarray:
        """Downscale one field.

        Parameters
        ----------
        coarse : numpy.ndarray
            ``(ny + 2, nx + 2)`` amounts over ``period`` on the padded coarse grid, NaN where missing.
        terrain : numpy.ndarray
            ``(1, 4 ny, 4 nx)`` static inputs.
        patcher : Patcher
            Tile layout of the domain.
        period : timedelta
            Accumulation period of ``coarse``; the model sees the equivalent 3-hour amount.
        advance : callable
            Progress callback (tiles done).
        noise_key : tuple of int
            A stochastic model's noise is drawn on the whole domain from ``(seed, *noise_key)``
            (input member, step): tiles cut it as they cut the terrain, so overlaps agree.

        Returns
        -------
        numpy.ndarray
            ``(M, 4 ny, 4 nx)`` amounts over ``period`` (M = :attr:`members`), NaN under missing
            coarse cells. With ``conserve`` every member's 4x4 blocks average to their coarse cell.
        """
        from harpnet_cli.core.inference import downscale_domain, downscale_domain_members
        from harpnet_cli.core.remap import conserve_blocks

        if self.model is None:
            raise RuntimeError("tiles_for() prepares the model before step()")
        scale, model_hours = self.config.window_input(period / timedelta(hours=1))
        filled = np.maximum(fill_nearest(coarse), 0.0) * np.float32(scale)
        inputs = [filled]
        if PERIOD_INPUT in self.config.coarse_inputs:  # the only extra input (see _check_inputs)
            inputs.append(np.full_like(filled, np.log(model_hours)))
        kwargs: dict[str, Any] = {"batch_size": self.tile_batch, "device": self.device or "cpu", "advance": advance}
        if self.samples is not None:
            from harpnet_cli.core.noise import draw_noise

            scales = self.config.noise_scales
            static = np.empty((len(terrain) + self.samples * len(scales), *terrain.shape[-2:]), dtype=np.float32)
            static[: len(terrain)] = terrain
            draw_noise(terrain.shape[-2:], self.samples, scales, (self.seed, *noise_key), periodic=patcher.periodic,
                       out=static[len(terrain):], threads=self.threads)  # drawn in place after the terrain: one copy
            terrain = static
        with self._precision():
            if not self.is_ensemble:
                fine = downscale_domain(self.model, np.stack(inputs), terrain, patcher, **kwargs)[None]
            else:
                fine = downscale_domain_members(self.model, self.members, np.stack(inputs), terrain, patcher,
                                                **kwargs)
        if self.config.conserve:
            centre = filled[1:-1, 1:-1]
            fine = conserve_blocks(fine, np.broadcast_to(centre, (len(fine), *centre.shape)), RATIO)
        fine /= scale
        fine[:, ~upsample_mask(np.isfinite(coarse[1:-1, 1:-1]), RATIO)] = np.nan
        return fine

    def _precision(self) -> contextlib.AbstractContextManager[object]:
        """bfloat16 autocast for ``--bf16`` on torch; nothing otherwise (float32)."""
        if self.device is None or not self.bf16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def choose_backend(cfg: DownscaleConfig) -> str:
    """What runs the network: ``"onnx"`` (ONNX Runtime) or ``"torch"`` (see ``DownscaleConfig.backend``).

    ``auto`` takes ONNX Runtime when it is installed, the device is the CPU (``--device cpu``, or
    ``auto`` where no GPU can be found: :func:`harpnet_cli.devices.accelerator_possible`, without
    importing torch), and ``--bf16`` is not asked for on a CPU with native bfloat16.

    Raises
    ------
    UsageError
        For ``--backend onnx`` without onnxruntime or with a GPU device.
    """
    from harpnet_cli.core.model.onnx import runtime_available
    from harpnet_cli.devices import accelerator_possible, native_bf16

    device = cfg.device.strip().lower()
    if cfg.backend == "onnx":
        if not runtime_available():
            raise UsageError("--backend onnx: onnxruntime is not installed (pip install onnxruntime)")
        if device not in ("auto", "cpu"):
            raise UsageError(f"--backend onnx runs on the CPU only; drop --device {cfg.device} or use --backend torch")
        return "onnx"
    if cfg.backend == "torch" or not runtime_available():
        return "torch"
    if device not in ("auto", "cpu") or (device == "auto" and accelerator_possible()):
        return "torch"
    if cfg.bf16 and native_bf16():
        return "torch"
    return "onnx"


def _check_inputs(config: ModelConfig) -> None:
    """Refuse a model needing inputs beyond precipitation, the window length and terrain, which
    downscale cannot supply."""
    extra = [*(c for c in config.coarse_inputs[1:] if c != PERIOD_INPUT),
             *(c for c in config.static_inputs if c != "terrain")]
    if extra or config.static_inputs != ["terrain"]:
        raise UsageError(f"the model needs inputs {', '.join(extra) or 'other than terrain'} that precipitation "
                         "files do not provide; downscale runs models on precipitation and terrain only")

def _check_members_agree(series: Sequence[StepSource]) -> None:
    """All members must share one grid and one list of windows to share one output array."""
    ref = series[0]
    for s in series[1:]:
        if s.starts != ref.starts or s.ends != ref.ends:
            raise InputDataError(s.paths[0], f"member {s.member} has different time windows from member {ref.member}")
        if s.grid.shape != ref.grid.shape:
            raise InputDataError(s.paths[0], f"member {s.member} is on a different grid from member {ref.member}")


def _source_box(grid: SourceGrid) -> tuple[float, float, float, float]:
    """Lat/lon box (south, north, west, east) of a source grid's cell centres.

    Longitudes are measured in −180…180, or in 0…360 when that makes the box narrower (a
    regional grid across the date line); a regular grid that goes round the globe spans it all.
    """
    lat = np.asarray(grid.lat, dtype=np.float64)
    lon = np.sort(np.unique((np.asarray(grid.lon, dtype=np.float64) + 180.0) % 360.0 - 180.0))
    if grid.is_regular and lon.size > 1 and np.ptp(lon) + np.median(np.diff(lon)) >= 359.9:
        return float(lat.min()), float(lat.max()), -180.0, 180.0
    west, east = float(lon[0]), float(lon[-1])
    if east - west > 180.0:
        lon360 = lon % 360.0
        west, east = float(lon360.min()), float(lon360.max())
    return float(lat.min()), float(lat.max()), west, east


def _target(cfg: DownscaleConfig, grid: SourceGrid, path: Path, rep: Reporter) -> tuple[GridSpec, Regridder]:
    """The target grid and the regridder from the source onto it (with its 1-cell buffer).

    Without --bbox or --domain: conus when the input covers most of it, else the input's extent.
    """
    from harpnet_cli.core.remap import Regridder

    if cfg.bbox is not None:
        spec = GridSpec.from_bbox(*cfg.bbox)
    else:
        spec = GridSpec.from_domain(cfg.domain or "conus")
    regridder = Regridder.to_grid(grid, spec.padded(1), level="coarse")
    covered = _interior(regridder.coverage, spec) >= 0.5
    if cfg.bbox is None and cfg.domain is None and covered.mean() < CONUS_DEFAULT_COVERAGE:
        s, n, w, e = _source_box(grid)
        half = COARSE_RES / 2
        spec = GridSpec.from_bbox(s - half, n + half, w - half, e + half)
        rep.info(f"input does not cover conus; using its own extent {spec.describe()}")
        regridder = Regridder.to_grid(grid, spec.padded(1), level="coarse")
        covered = _interior(regridder.coverage, spec) >= 0.5
    if not covered.any():
        raise InputDataError(path, f"input does not cover the requested domain {spec.describe()}")
    if not covered.all():
        rep.warning(f"input covers {covered.mean():.0%} of the domain; uncovered cells are written as missing")
    if not regridder.exact:
        rep.warning(f"input is not on the 0.25° grid: remapped ({regridder.description})")
    return spec, regridder


def _interior(padded: np.ndarray, spec: GridSpec) -> np.ndarray:
    """The domain part of a field on ``spec.padded(1)`` (a periodic grid is padded in latitude only)."""
    return padded[1:-1, :] if spec.periodic else padded[1:-1, 1:-1]


def _warn_periods(s: StepSource, config: ModelConfig, rep: Reporter) -> None:
    """Warn when some windows are of a length the model was not trained on (3 hours for a model
    without the window length as an input)."""
    periods = sorted({e - st for st, e in zip(s.starts, s.ends, strict=True)})
    odd = [p for p in periods if config.window_input(p / timedelta(hours=1))[0] != 1.0]
    if odd:
        text = ", ".join(f"{p.total_seconds() / 3600:g} h" for p in odd)
        if config.periods is None:
            known = "model is native to 3-hour amounts"
        else:
            known = f"model was trained on {', '.join(f'{h:g}' for h in config.periods)}-hour windows"
        rep.warning(f"{known}; {text} windows were downscaled through the equivalent 3-hour rate and scaled back "
                    "(the output keeps the true windows)")


def _warn_region(spec: GridSpec, config: ModelConfig, rep: Reporter) -> None:
    """Warn when most of the domain lies outside the regions the model was trained on (its
    ``grid`` and ``regions``; no warning for a model that does not record them)."""
    from harpnet_cli.grids import covered_fraction

    if not config.grid:
        return
    regions = [GridSpec.from_dict(g) for g in (config.grid, *config.regions)]
    inside = covered_fraction(spec, regions)
    if inside < TRAINED_REGION_MIN:
        where = "; ".join(r.describe().split(" (")[0] for r in regions)
        rep.warning(f"the domain lies {'mostly' if inside else 'wholly'} outside the regions the model was trained "
                    f"on ({inside:.0%} inside {where}): expect less skill there than the model card's scores")


def _attributes(cfg: DownscaleConfig, preset: str, sha: str, spec: GridSpec, regridder: Regridder,
                series: Sequence[StepSource], epochs: list[int] | None = None,
                samples: int | None = None) -> dict[str, str]:
    """Global attributes of the output: provenance of inputs, model and run."""
    from harpnet_cli.io.pipes import shown_path

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    notes = sorted({n for s in series for n in s.notes})
    attrs = {
        "title": "Precipitation downscaled to 0.0625 degrees by HARPNET",
        "institution": "HARPNET",
        "source": f"HARPNET {__version__}, attention-gated residual U-Net ({preset})",
        "history": f"{now} {cfg.command_line or 'harpnet downscale'}",
        "input_files": ", ".join(str(shown_path(p).name) for p in sorted({p for s in series for p in s.paths})),
        "input_grid": regridder.description,
        "harpnet_version": __version__,
        "harpnet_model": preset,
        "harpnet_checkpoint": str(cfg.model),
        "harpnet_checkpoint_sha256": sha,
        "harpnet_domain": spec.describe(),
    }
    from harpnet_cli.io.grib_writer import ORIGIN_ATTRIBUTE, input_origin

    origin = input_origin(sorted({p for s in series for p in s.paths}))
    if origin is not None:  # GRIB2 outputs keep the input's centre (see harpnet_cli.io.grib_writer)
        attrs[ORIGIN_ATTRIBUTE] = origin
    if epochs is not None:
        attrs["source"] += f"; HARPNET-E ensemble of {len(epochs)} member(s)"
        attrs["harpnet_ensemble_epochs"] = ", ".join(str(e) for e in epochs)
    if samples is not None:
        attrs["source"] += f"; stochastic model, {samples} sample(s) per input member"
        attrs["harpnet_samples"] = str(samples)
        attrs["harpnet_seed"] = str(cfg.seed)
    if notes:
        attrs["comment"] = "; ".join(notes)
    return attrs
