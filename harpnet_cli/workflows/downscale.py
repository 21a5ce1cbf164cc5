"""``harpnet downscale``: input files → interval series → 0.25° grid → model → CF NetCDF."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

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

    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.core.remap import Regridder

#: The model's native accumulation period.
NATIVE_PERIOD = timedelta(hours=3)
#: Without --bbox/--domain, conus is the domain when the input covers this fraction of it.
CONUS_DEFAULT_COVERAGE = 0.9


@dataclass
class DownscaleResult:
    """What a downscale run did, for the one-line summary."""

    output: Path
    steps: int
    members: int
    domain: GridSpec
    seconds: float
    mass_ratio: float
    """Mean of the fine output over the domain divided by the mean of the coarse input."""


def run_downscale(cfg: DownscaleConfig, reporter: Reporter | None = None) -> DownscaleResult:
    """Downscale the input files of ``cfg`` and write the CF NetCDF output.

    Parameters
    ----------
    cfg : DownscaleConfig
        The validated request.
    reporter : Reporter, optional
        Where messages and progress go; silent by default.

    Returns
    -------
    DownscaleResult
    """
    from harpnet_cli.core.accumulation import to_interval_series
    from harpnet_cli.io.atomic import check_writable
    from harpnet_cli.io.checkpoints import checkpoint_sha256
    from harpnet_cli.io.netcdf_writer import write_netcdf
    from harpnet_cli.io.readers import read_accumulations
    from harpnet_cli.io.terrain import load_terrain

    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    check_writable(cfg.output, cfg.overwrite)
    if cfg.model is None:
        raise UsageError("no trained weights are bundled yet: pass --model CHECKPOINT")
    runner = _ModelRunner.load(cfg)

    series = to_interval_series(read_accumulations(cfg.inputs, variable=cfg.variable, accumulation=cfg.accumulation))
    _check_members_agree(series)
    first = series[0]
    spec, regridder = _target(cfg, first.grid, first.paths[0], rep)
    mcfg = runner.model.config
    patcher = Patcher(spec.coarse_shape, tile=mcfg.tile, ratio=mcfg.ratio, buffer=mcfg.buffer)
    terrain = load_terrain(spec)[None]
    _warn_periods(first, rep)

    steps = len(first.starts)
    out = np.empty((len(series), steps, *spec.fine_shape), dtype=np.float32)
    coarse_sum = fine_sum = 0.0
    label = f"downscaling {steps} step(s) x {len(series)} member(s)"
    with rep.progress(label, len(series) * steps * len(patcher)) as advance:
        for m, s in enumerate(series):
            for k in range(steps):
                coarse = regridder(s.data[k])
                out[m, k] = runner.step(coarse, terrain, patcher, s.ends[k] - s.starts[k], advance)
                valid = np.isfinite(coarse[1:-1, 1:-1])
                coarse_sum += float(coarse[1:-1, 1:-1][valid].sum())
                fine_sum += float(np.nansum(out[m, k])) / RATIO**2

    fc = FineForecast(
        data=out, lat=spec.fine_lat(), lon=spec.fine_lon(),
        lat_bounds=spec.fine_lat_bounds(), lon_bounds=spec.fine_lon_bounds(),
        starts=first.starts, ends=first.ends, members=[s.member for s in series],
        reference_time=first.reference_time,
        attrs=_attributes(cfg, mcfg.preset, checkpoint_sha256(cfg.model), spec, regridder, series),
    )
    write_netcdf(cfg.output, fc, overwrite=cfg.overwrite)
    ratio = fine_sum / coarse_sum if coarse_sum > 0 else 1.0
    return DownscaleResult(cfg.output, steps, len(series), spec, time.perf_counter() - t0, ratio)


@dataclass
class _ModelRunner:
    """A loaded model on its device, run over whole fields."""

    model: Downscaler
    device: torch.device
    batch_size: int
    bf16: bool

    @classmethod
    def load(cls, cfg: DownscaleConfig) -> _ModelRunner:
        """Pick the device, set CPU threads, load the checkpoint and prepare it for inference."""
        from harpnet_cli.devices import configure_cpu_threads, select_device
        from harpnet_cli.io.checkpoints import load_checkpoint

        assert cfg.model is not None
        device = select_device(cfg.device)
        if device.type == "cpu":
            configure_cpu_threads(cfg.threads)
        model, _meta = load_checkpoint(cfg.model, device=device)
        return cls(model.for_inference(channels_last=device.type == "cpu"), device, cfg.batch_size, cfg.bf16)

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
            ``(4 ny, 4 nx)`` amounts over ``period``, NaN under missing coarse cells.
        """
        import torch

        from harpnet_cli.core.inference import conserve_blocks, downscale_domain

        scale = NATIVE_PERIOD / period
        filled = np.maximum(fill_nearest(coarse), 0.0) * scale
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            fine = downscale_domain(self.model, filled[None], terrain, patcher, batch_size=self.batch_size,
                                    device=self.device, advance=advance)
        if self.model.config.conserve:
            fine = conserve_blocks(fine, filled[1:-1, 1:-1], RATIO)
        fine /= scale
        fine[~upsample_mask(np.isfinite(coarse[1:-1, 1:-1]), RATIO)] = np.nan
        return fine


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
                series: list[IntervalSeries]) -> dict[str, str]:
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
    if notes:
        attrs["comment"] = "; ".join(notes)
    return attrs
