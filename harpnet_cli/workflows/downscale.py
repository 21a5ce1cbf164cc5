"""``harpnet downscale``: input files → interval series → 0.25° grid → model → CF NetCDF or GRIB2.

The model file is read once (:class:`~harpnet_cli.io.model_files.ModelFile`): whether it is an
ensemble, its weights and its SHA-256 all come from that read. An ensemble's statistics (mean,
spread, probabilities) are computed here, per output, and handed to the writer registered for
the output format (:mod:`harpnet_cli.io.writers`), which only writes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.config import DownscaleConfig
from harpnet_cli.core.masking import fill_nearest, upsample_mask
from harpnet_cli.core.tiling import Patcher
from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.fields import FineForecast, IntervalSeries, SourceGrid
from harpnet_cli.grids import COARSE_RES, RATIO, GridSpec
from harpnet_cli.workflows.reporting import NullReporter, Reporter

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.model.ensemble import EnsembleDownscaler
    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
    from harpnet_cli.core.remap import Regridder
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.io.outputs import PlannedOutput
    from harpnet_cli.plausibility import GateReport

#: The model's native accumulation period.
NATIVE_PERIOD = timedelta(hours=3)
#: Without --bbox/--domain, conus is the domain when the input covers this fraction of it.
CONUS_DEFAULT_COVERAGE = 0.9
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
    masked_cells: int = 0
    """Input cells the input checks set missing (fill values, amounts above the bound)."""

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
        }


def run_downscale(cfg: DownscaleConfig, reporter: Reporter | None = None) -> DownscaleResult:
    """Downscale the input files of ``cfg`` and write the CF NetCDF or GRIB2 output(s).

    Parameters
    ----------
    cfg : DownscaleConfig
        The validated request. An input ``-`` is a GRIB stream on standard input; ``cfg.output``
        may be ``-`` (GRIB2 on standard output) or a name template (one file per step).
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
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.io.outputs import is_template, locked, plan_outputs

    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    if cfg.model is None:
        cfg = cfg.model_copy(update={"model": _default_model(rep)})
    assert cfg.model is not None
    model_file = ModelFile(cfg.model)  # opened once, when first needed
    if (cfg.members or cfg.probabilities) and not model_file.is_ensemble:
        raise UsageError("--members and --probabilities need an ensemble --model (made by 'harpnet ensemble')")
    if not cfg.to_stdout and not is_template(cfg.output):
        if not (cfg.skip_existing and cfg.output.exists()):
            check_writable(cfg.output, cfg.overwrite)
    if cfg.plot is not None:
        check_writable(cfg.plot, cfg.overwrite)
    with contextlib.ExitStack() as stack:
        series, gate = _read_series(cfg, stack)
        for line in gate.warnings:  # input checks (harpnet_cli.plausibility)
            rep.warning(line)
        first = series[0]
        plans = plan_outputs(cfg.output, starts=first.starts, ends=first.ends, members=[s.member for s in series],
                             reference_time=first.reference_time)
        stack.enter_context(locked(plans, cfg.wait))
        todo = _pending(plans, cfg, rep)
        if not todo:
            return DownscaleResult([], [p.path for p in plans], 0, len(series), None, time.perf_counter() - t0, 1.0)
        result = _downscale(cfg, model_file, series, todo, [p.path for p in plans if p not in todo], rep, t0)
        return dataclasses.replace(result, masked_cells=gate.masked)


def _read_series(cfg: DownscaleConfig, stack: contextlib.ExitStack) -> tuple[list[IntervalSeries], GateReport]:
    """Read the inputs as interval series, every field through the input checks (:mod:`harpnet_cli.plausibility`);
    ``-`` is spooled from stdin to a file deleted with ``stack``."""
    from harpnet_cli.core.accumulation import to_interval_series
    from harpnet_cli.io.pipes import spool_stdin
    from harpnet_cli.io.readers import read_accumulations
    from harpnet_cli.plausibility import gate_accumulations, gate_series

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
    accs = read_accumulations(paths, variable=cfg.variable, accumulation=cfg.accumulation)
    gate = gate_accumulations(accs, allow_extreme=cfg.allow_extreme)  # input checks: fields as read
    series = to_interval_series(accs)
    gate = gate.merge(gate_series(series, allow_extreme=cfg.allow_extreme))  # input checks: the model's windows
    _check_members_agree(series)
    if example:
        for s in series:
            s.notes.append(EXAMPLE_NOTE)
    return series, gate


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


def _default_model(rep: Reporter) -> Path:
    """The default model file; a one-line UsageError when none is installed."""
    from harpnet_cli.io.default_model import ENV_VAR, default_model_location, default_model_path, read_card

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


def _downscale(cfg: DownscaleConfig, model_file: ModelFile, series: list[IntervalSeries], todo: list[PlannedOutput],
               skipped: list[Path], rep: Reporter, t0: float) -> DownscaleResult:
    """Run the model of ``model_file`` over the steps ``todo`` needs and write them."""
    from harpnet_cli.core.ensemble_stats import ensemble_products
    from harpnet_cli.io.outputs import select, write_output
    from harpnet_cli.io.terrain import load_terrain

    assert cfg.model is not None
    runner = _ModelRunner.load(cfg, model_file)
    n = runner.members
    if runner.epochs is not None and cfg.members and len(series) > 1 and n > 1:
        raise UsageError(f"--members with an ensemble input ({len(series)} members) and an ensemble model ({n} "
                         "members) would need two member axes; drop --members for the mean and spread over all "
                         f"{len(series) * n}, or give one input member at a time")
    first = series[0]
    spec, regridder = _target(cfg, first.grid, first.paths[0], rep)
    mcfg = runner.config
    patcher = Patcher(spec.coarse_shape, tile=mcfg.tile, ratio=mcfg.ratio, buffer=mcfg.buffer)
    terrain = load_terrain(spec)[None]
    _warn_periods(first, rep)

    needed = sorted({k for p in todo for k in p.steps})
    # rows input member major: row i n + j is model member j on input member i (n = 1 for a checkpoint)
    out = np.full((len(series) * n, len(first.starts), *spec.fine_shape), np.nan, dtype=np.float32)
    coarse_sum = fine_sum = 0.0
    plotted: dict[int, np.ndarray] = {}  # step -> coarse input of the first member, for --plot
    label = f"downscaling {len(needed)} step(s) x {len(series)} member(s)" + (f" x {n} model members" if n > 1 else "")
    with rep.progress(label, len(series) * len(needed) * len(patcher)) as advance:
        for m, s in enumerate(series):
            for k in needed:
                coarse = regridder(s.data[k])
                out[m * n:(m + 1) * n, k] = runner.step(coarse, terrain, patcher, s.ends[k] - s.starts[k], advance)
                if cfg.plot is not None and m == 0:
                    plotted[k] = coarse[1:-1, 1:-1]
                valid = np.isfinite(coarse[1:-1, 1:-1])
                coarse_sum += float(coarse[1:-1, 1:-1][valid].sum()) * n
                fine_sum += float(np.nansum(out[m * n:(m + 1) * n, k])) / RATIO**2

    sha = model_file.sha256
    fc = FineForecast(
        data=out, lat=spec.fine_lat(), lon=spec.fine_lon(),
        lat_bounds=spec.fine_lat_bounds(), lon_bounds=spec.fine_lon_bounds(),
        starts=first.starts, ends=first.ends, members=_member_numbers(series, n),
        reference_time=first.reference_time,
        attrs=_attributes(cfg, mcfg.preset, sha, spec, regridder, series, runner.epochs),
    )
    assert cfg.output_format is not None
    written = []
    for plan in todo:
        part = select(plan, fc, n if runner.epochs is not None else 1)
        products = None  # an ensemble model's products, computed here: writers only write
        if runner.epochs is not None:
            products = ensemble_products(part.data, every_member=cfg.members, thresholds=cfg.probabilities)
        written.append(write_output(plan, part, cfg.output_format, overwrite=cfg.overwrite,
                                    options=cfg.writer_options, products=products))
    if cfg.plot is not None:
        rep.info(f"wrote {_plot(cfg.plot, fc, plotted, terrain[0], n, series, overwrite=cfg.overwrite)}")
    ratio = fine_sum / coarse_sum if coarse_sum > 0 else 1.0
    return DownscaleResult(written, skipped, len(needed), len(series) * n, spec, time.perf_counter() - t0, ratio,
                           sha)


def _plot(path: Path, fc: FineForecast, coarse: dict[int, np.ndarray], terrain: np.ndarray, n: int,
          series: list[IntervalSeries], *, overwrite: bool) -> Path:
    """The ``--plot`` PNG: input and output of one step side by side over shaded terrain.

    With several steps the wettest (largest mean output) is drawn; with an ensemble model the
    model members' mean for the first input member; with an ensemble input its first member.
    """
    from harpnet_cli.io.plots import plot_downscaled

    steps = sorted(coarse)
    fine = {k: np.nanmean(fc.data[:n, k], axis=0) if n > 1 else fc.data[0, k] for k in steps}
    wettest = {k: float(np.nanmean(fine[k])) if np.isfinite(fine[k]).any() else 0.0 for k in steps}
    k = max(steps, key=lambda j: (wettest[j], -j))
    start, end = fc.starts[k], fc.ends[k]
    hours = (end - start) / timedelta(hours=1)
    when = f"valid {end:%Y-%m-%d %H:%M} UTC, {hours:g}-hour total from {start:%H:%M} UTC"
    if fc.reference_time is not None:
        lead = (end - fc.reference_time) / timedelta(hours=1)
        when += f" (+{lead:g} h from {fc.reference_time:%Y-%m-%d %H} UTC)"
    which = f"step {k + 1} of {len(fc.starts)}"
    if len(steps) > 1:
        which += ", the wettest"
    if n > 1:
        which += f"; mean of {n} model members"
    if len(series) > 1:
        which += f"; input member {series[0].member}"
    head = "HARPNET downscaling 0.25° → 0.0625°"
    if any(EXAMPLE_NOTE in s.notes for s in series):
        head += " of the SYNTHETIC example input (not a real forecast)"
    title = f"{head}\n{when}; {which}"
    return plot_downscaled(path, coarse[k], fine[k], terrain, fc.lat, fc.lon, title=title, overwrite=overwrite)


def _member_numbers(series: list[IntervalSeries], n: int) -> list[int | None]:
    """Member number of each output row: the input's with one model member, else the model member's
    index (one input member), else the row index (mean and spread over input x model members only)."""
    if n == 1:
        return [s.member for s in series]
    if len(series) == 1:
        return list(range(n))
    return list(range(len(series) * n))


@dataclass
class _ModelRunner:
    """A loaded model, or every member of an ensemble run in one pass, on its device."""

    model: Downscaler | EnsembleDownscaler
    config: ModelConfig
    """The model's config (the first member's for an ensemble: inputs and tiles are shared)."""
    device: torch.device
    batch_size: int
    bf16: bool
    epochs: list[int] | None = None
    """Epoch of each ensemble member; None for a single checkpoint."""

    @property
    def members(self) -> int:
        """Fields each step gives: 1 for a checkpoint, M for an ensemble."""
        return 1 if self.epochs is None else len(self.epochs)

    @classmethod
    def load(cls, cfg: DownscaleConfig, model_file: ModelFile) -> _ModelRunner:
        """Pick the device, set CPU threads, load the checkpoint or ensemble and prepare it for inference."""
        from harpnet_cli.core.model.ensemble import EnsembleDownscaler
        from harpnet_cli.devices import configure_cpu_threads, select_device
        from harpnet_cli.workflows.models import load_models

        assert cfg.model is not None
        device = select_device(cfg.device)
        if device.type == "cpu":
            configure_cpu_threads(cfg.threads)
        channels_last = device.type == "cpu"
        loaded = load_models(model_file, device=device)
        if not loaded.ensemble:
            model = loaded.models[0]
            _check_inputs(model.config)
            return cls(model.for_inference(channels_last=channels_last), model.config, device, cfg.batch_size,
                       cfg.bf16)
        models, meta = loaded.models, loaded.meta
        for m in models:
            _check_inputs(m.config)
        try:
            ensemble = EnsembleDownscaler([m.for_inference(channels_last=channels_last) for m in models])
        except ValueError as exc:
            raise InputDataError(cfg.model, str(exc)) from None
        epochs = [int(m["epoch"]) for m in meta["members"]]
        return cls(ensemble.eval(), models[0].config, device, cfg.batch_size, cfg.bf16, epochs)

    def step(self, coarse: np.ndarray, terrain: np.ndarray, patcher: Patcher, period: timedelta,
             advance: Callable[[int], None]) -> np.ndarray:
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

        Returns
        -------
        numpy.ndarray
            ``(M, 4 ny, 4 nx)`` amounts over ``period`` (M = :attr:`members`), NaN under missing
            coarse cells. With ``conserve`` every member's 4x4 blocks average to their coarse cell.
        """
        import torch

        from harpnet_cli.core.inference import downscale_domain, downscale_domain_members
        from harpnet_cli.core.remap import conserve_blocks

        scale = NATIVE_PERIOD / period
        filled = np.maximum(fill_nearest(coarse), 0.0) * scale
        kwargs: dict[str, Any] = {"batch_size": self.batch_size, "device": self.device, "advance": advance}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.epochs is None:
                fine = downscale_domain(self.model, filled[None], terrain, patcher, **kwargs)[None]
            else:
                fine = downscale_domain_members(self.model, self.members, filled[None], terrain, patcher, **kwargs)
        if self.config.conserve:
            centre = filled[1:-1, 1:-1]
            fine = conserve_blocks(fine, np.broadcast_to(centre, (len(fine), *centre.shape)), RATIO)
        fine /= scale
        fine[:, ~upsample_mask(np.isfinite(coarse[1:-1, 1:-1]), RATIO)] = np.nan
        return fine


def _check_inputs(config: ModelConfig) -> None:
    """Refuse a model needing inputs beyond precipitation and terrain, which downscale cannot supply."""
    extra = [*config.coarse_inputs[1:], *(c for c in config.static_inputs if c != "terrain")]
    if extra or config.static_inputs != ["terrain"]:
        raise UsageError(f"the model needs inputs {', '.join(extra) or 'other than terrain'} that precipitation "
                         "files do not provide; downscale runs models on precipitation and terrain only")


def _check_members_agree(series: list[IntervalSeries]) -> None:
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
    covered = regridder.coverage[1:-1, 1:-1] >= 0.5
    if cfg.bbox is None and cfg.domain is None and covered.mean() < CONUS_DEFAULT_COVERAGE:
        s, n, w, e = _source_box(grid)
        half = COARSE_RES / 2
        spec = GridSpec.from_bbox(s - half, n + half, w - half, e + half)
        rep.info(f"input does not cover conus; using its own extent {spec.describe()}")
        regridder = Regridder.to_grid(grid, spec.padded(1), level="coarse")
        covered = regridder.coverage[1:-1, 1:-1] >= 0.5
    if not covered.any():
        raise InputDataError(path, f"input does not cover the requested domain {spec.describe()}")
    if not covered.all():
        rep.warning(f"input covers {covered.mean():.0%} of the domain; uncovered cells are written as missing")
    if not regridder.exact:
        rep.warning(f"input is not on the 0.25° grid: remapped ({regridder.description})")
    return spec, regridder


def _warn_periods(s: IntervalSeries, rep: Reporter) -> None:
    """Warn when some windows are not the model's native 3 hours."""
    periods = sorted({e - st for st, e in zip(s.starts, s.ends, strict=True)})
    odd = [p for p in periods if p != NATIVE_PERIOD]
    if odd:
        text = ", ".join(f"{p.total_seconds() / 3600:g} h" for p in odd)
        rep.warning(f"model is native to 3-hour amounts; {text} windows were downscaled through the equivalent "
                    "3-hour rate and scaled back (the output keeps the true windows)")


def _attributes(cfg: DownscaleConfig, preset: str, sha: str, spec: GridSpec, regridder: Regridder,
                series: list[IntervalSeries], epochs: list[int] | None = None) -> dict[str, str]:
    """Global attributes of the output: provenance of inputs, model and run."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    notes = sorted({n for s in series for n in s.notes})
    attrs = {
        "title": "Precipitation downscaled to 0.0625 degrees by HARPNET",
        "institution": "HARPNET",
        "source": f"HARPNET {__version__}, attention-gated residual U-Net ({preset})",
        "history": f"{now} {cfg.command_line or 'harpnet downscale'}",
        "input_files": ", ".join(str(p.name) for p in sorted({p for s in series for p in s.paths})),
        "input_grid": regridder.description,
        "harpnet_version": __version__,
        "harpnet_model": preset,
        "harpnet_checkpoint": str(cfg.model),
        "harpnet_checkpoint_sha256": sha,
        "harpnet_domain": spec.describe(),
    }
    if epochs is not None:
        attrs["source"] += f"; HARPNET-E ensemble of {len(epochs)} member(s)"
        attrs["harpnet_ensemble_epochs"] = ", ".join(str(e) for e in epochs)
    if notes:
        attrs["comment"] = "; ".join(notes)
    return attrs
