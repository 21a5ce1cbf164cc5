"""``harpnet prepare``: high-resolution precipitation (or the synthetic world) → a training store.

The work is cut into independent **units** — one 3-hour window of the input files, or one
synthetic sample — planned up front from metadata alone. Each unit is computed (load, remap to
the fine and coarse grids, cut tiles, quality control, dry-tile sampling, split) by a pure function
that a worker process or a Dask worker can run; the main process writes the results to the store
in plan order and commits unit by unit. So memory stays bounded (a few units in flight), a killed
run resumes by skipping committed units, and the result equals an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.config import PrepareConfig
from harpnet_cli.core.splits import assign_split, default_validation_start
from harpnet_cli.core.tiling import Patcher
from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.grids import COARSE_RES, RATIO, GridSpec
from harpnet_cli.splits import SPLIT_NAMES, TRAIN
from harpnet_cli.workflows.reporting import NullReporter, Reporter

if TYPE_CHECKING:
    from harpnet_cli.core.remap import Regridder
    from harpnet_cli.core.synthetic import SyntheticWorld
    from harpnet_cli.io.store import TrainingStore

EPOCH = datetime(1970, 1, 1)
#: The synthetic calendar: samples are spread over whole water years from this date, so that the
#: last water year can be held out for validation as with real data.
SYNTHETIC_START = datetime(2001, 10, 1)
SYNTHETIC_MIN_YEARS = 5
#: Synthetic truth is computed on a grid this many times finer than 0.0625° and averaged to it.
SYNTHETIC_HR_FACTOR = 2
#: The state column holding each sample's window length, ``ln(hours)`` (``train --extra-inputs period``).
PERIOD_STATE = "log_period_hours"


# -- units --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One independent piece of work: a 3-hour window of the inputs or one synthetic sample."""

    key: str
    end: datetime
    index: int = 0
    window: Any = None
    """The :class:`~harpnet_cli.core.windows.WindowUnit` of file sources (None for synthetic)."""
    period_hours: int = 3
    """Length of the unit's window."""


@dataclass
class UnitResult:
    """Samples made from one unit, and what was dropped."""

    key: str
    coarse: np.ndarray
    fine: np.ndarray
    tile: np.ndarray
    time: np.ndarray
    split: np.ndarray
    state: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class PrepareResult:
    """What a prepare run did, for the summary."""

    output: Path
    samples: dict[str, int]
    dry_fraction: float
    counts: dict[str, int]
    units_done: int
    units_skipped: int
    seconds: float


def run_prepare(cfg: PrepareConfig, reporter: Reporter | None = None) -> PrepareResult:
    """Build (or resume) the training store of ``cfg``.

    Parameters
    ----------
    cfg : PrepareConfig
        The validated request.
    reporter : Reporter, optional
        Messages and progress; silent by default.

    Returns
    -------
    PrepareResult
    """
    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    spec = target_grid(cfg)
    units, plan_counts, state_names = _plan(cfg, rep)
    if not units:
        lengths = "/".join(str(p) for p in cfg.periods)
        raise UsageError(f"nothing to prepare: no complete {lengths}-hour window in the inputs")
    if cfg.validation_start is not None:
        validation_start: datetime | None = datetime.combine(cfg.validation_start, datetime.min.time())
    else:
        validation_start = default_validation_start(min(u.end for u in units), max(u.end for u in units))
    if validation_start is None:
        rep.info("the data span at most one water year: no validation split")

    store = _open_store(cfg, spec, units, plan_counts, state_names, validation_start)
    done = store.done_units()
    todo = [u for u in units if u.key not in done]
    if done:
        rep.info(f"resuming {cfg.output}: {len(done)} of {len(units)} units already done")
    job = functools.partial(compute_unit, cfg, validation_start)
    with _executor(cfg) as ex, rep.progress(f"preparing {len(todo)} unit(s)", len(todo)) as advance:
        for res in _ordered(ex, job, todo, ahead=max(2, 2 * cfg.workers)):
            store.append(res.key, coarse=res.coarse, fine=res.fine, tile=res.tile, time=res.time,
                         split=res.split, state=res.state, counts=res.counts)
            advance(1)

    counts = store.tally  # every committed unit's counts: the whole store, also after a resume
    stats = store.compute_stats(TRAIN)
    samples = _split_counts(store)
    final_counts = {"dropped": counts, "units": len(units), "samples": samples, **plan_counts}
    store.finalize(stats=stats, counts=final_counts)
    if cfg.plot is not None:
        _plot(cfg, spec, units[:4])
    total = sum(samples.values())
    dry = counts.get("dry_kept", 0) / total if total else 0.0
    return PrepareResult(cfg.output, samples, dry, counts, len(todo), len(done), time.perf_counter() - t0)


def target_grid(cfg: PrepareConfig) -> GridSpec:
    """The domain of the store."""
    return GridSpec.from_bbox(*cfg.bbox) if cfg.bbox is not None else GridSpec.from_domain(cfg.domain)


def _plan(cfg: PrepareConfig, rep: Reporter) -> tuple[list[Unit], dict[str, Any], list[str]]:
    """All units in order, counts from planning, and the per-sample state names."""
    if cfg.synthetic:
        from harpnet_cli.core.synthetic import SyntheticState

        times = synthetic_times(cfg.samples)
        samples = [Unit(key=f"synthetic-{i:07d}", end=t, index=i, period_hours=synthetic_period(cfg, i))
                   for i, t in enumerate(times)]
        return samples, {"planned": len(samples)}, [*SyntheticState.names(), PERIOD_STATE]
    from harpnet_cli.core.windows import plan_windows
    from harpnet_cli.io.readers import scan_file

    refs = []
    with rep.progress(f"scanning {len(cfg.sources)} file(s)", len(cfg.sources)) as advance:
        for src in cfg.sources:
            refs.extend(scan_file(Path(src), variable=cfg.variable, accumulation=cfg.accumulation))
            advance(1)
    units: list[Unit] = []
    dropped: dict[str, int] = {}
    tagged = cfg.periods != [3]  # keys of 3-hour-only stores stay as they were
    for hours in cfg.periods:
        step = timedelta(hours=min(hours, cfg.window_step)) if cfg.window_step else None
        try:
            plan = plan_windows(refs, period=timedelta(hours=hours), step=step)
        except InputDataError:
            if len(cfg.periods) == 1:
                raise
            rep.warning(f"no complete {hours}-hour window in the inputs")
            continue
        for reason, n in plan.dropped.items():
            if n:
                rep.warning(f"{n} {hours}-hour window(s) dropped: {reason}")
                dropped[reason] = dropped.get(reason, 0) + n
        units += [Unit(key=f"{hours:02d}h-{w.key}" if tagged else w.key, end=w.end, window=w, period_hours=hours)
                  for w in plan.units]
    units.sort(key=lambda u: (u.end, u.period_hours))
    units = [dataclasses.replace(u, index=i) for i, u in enumerate(units)]
    return units, {"planned": len(units), "windows_dropped": dropped}, [PERIOD_STATE]


def synthetic_period(cfg: PrepareConfig, index: int) -> int:
    """Window length (hours) of synthetic sample ``index``: drawn from ``cfg.periods``, seeded by ``(seed, index)``."""
    if len(cfg.periods) == 1:
        return cfg.periods[0]
    rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, index, 0x9E71])
    return int(cfg.periods[int(rng.integers(len(cfg.periods)))])


def synthetic_times(n: int) -> list[datetime]:
    """End times of ``n`` synthetic samples, spread evenly over whole water years (3-hourly slots)."""
    years = max(SYNTHETIC_MIN_YEARS, -(-n // 2920))
    slots = int((datetime(SYNTHETIC_START.year + years, 10, 1) - SYNTHETIC_START) / timedelta(hours=3))
    return [SYNTHETIC_START + timedelta(hours=3 * (1 + (i * slots) // n)) for i in range(n)]


# -- the store ----------------------------------------------------------------------------------
def _open_store(cfg: PrepareConfig, spec: GridSpec, units: list[Unit], plan_counts: dict[str, Any],
                state_names: list[str], validation_start: datetime | None) -> TrainingStore:
    """Resume a matching incomplete store, or create a new one."""
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.io.terrain import load_terrain

    plan_key = cfg.plan_key()
    if cfg.output.exists() and any(cfg.output.iterdir()) and not cfg.overwrite:
        store = TrainingStore.open(cfg.output, mode="a")
        if store.manifest.get("plan_key") != plan_key:
            raise UsageError(f"{cfg.output} was prepared with other options or inputs; "
                             "pass --overwrite to start again")
        if store.is_complete:
            raise UsageError(f"{cfg.output} is already complete; pass --overwrite to prepare it again")
        return store
    patcher = _patcher(spec, cfg.overlap)
    terrain = patcher.cut_fine(load_terrain(spec)[None])
    origins = np.array([(t.y0, t.x0) for t in patcher.tiles], dtype=np.int32)
    manifest = {
        "harpnet_version": __version__,
        "command_line": cfg.command_line,
        "created": datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_kind": cfg.source_kind,
        "sources": cfg.sources if len(cfg.sources) <= 1000 else [*cfg.sources[:1000], "..."],
        "n_sources": len(cfg.sources),
        "grid": {**spec.to_dict(), "description": spec.describe()},
        "tile": {"size": patcher.tile, "ratio": patcher.ratio, "buffer": patcher.buffer, "overlap": patcher.overlap},
        "validation_start": validation_start.isoformat() if validation_start else None,
        "splits": {str(k): v for k, v in SPLIT_NAMES.items()},
        "units": len(units),
        "plan_key": plan_key,
        "remap": cfg.remap,
        "keep_dry": cfg.keep_dry,
        "seed": cfg.seed,
    }
    return TrainingStore.create(cfg.output, grid=spec.to_dict(), tile_terrain=terrain, tile_origin=origins,
                                coarse_channels=1, state_names=state_names, manifest=manifest,
                                overwrite=cfg.overwrite)


def _split_counts(store: TrainingStore) -> dict[str, int]:
    """Committed samples per split name."""
    split = np.asarray(store.split[: len(store)])
    return {name: int((split == k).sum()) for k, name in SPLIT_NAMES.items()}


# -- computing one unit -------------------------------------------------------------------------
def _patcher(spec: GridSpec, overlap: int) -> Patcher:
    return Patcher(spec.coarse_shape, overlap=overlap)


@dataclass
class _Context:
    """What a worker needs for every unit, built once per process and configuration."""

    spec: GridSpec
    padded: GridSpec
    patcher: Patcher
    offset: tuple[int, int]
    """Coarse cells between the padded grid's origin and the domain's (south, west)."""
    regridders: dict[str, Regridder] = field(default_factory=dict)
    world: SyntheticWorld | None = None


@functools.lru_cache(maxsize=4)
def _context(cfg_json: str) -> _Context:
    cfg = PrepareConfig.model_validate_json(cfg_json)
    spec = target_grid(cfg)
    padded = spec.padded(1)
    offset = (round((spec.lat0 - padded.lat0) / COARSE_RES), round((spec.lon0 - padded.lon0) % 360 / COARSE_RES))
    ctx = _Context(spec, padded, _patcher(spec, cfg.overlap), offset)
    if cfg.synthetic:
        ctx.world = _world(padded)
    return ctx


def _world(padded: GridSpec) -> SyntheticWorld:
    """The synthetic world on the padded domain, terrain at the truth resolution."""
    from harpnet_cli.core.synthetic import SyntheticWorld
    from harpnet_cli.io.terrain import bilinear, global_terrain

    k = SYNTHETIC_HR_FACTOR
    lat_hr = padded.south + (np.arange(padded.ny * RATIO * k) + 0.5) * COARSE_RES / (RATIO * k)
    lon_hr = padded.west + (np.arange(padded.nx * RATIO * k) + 0.5) * COARSE_RES / (RATIO * k)
    elevation, _ = global_terrain()
    return SyntheticWorld(bilinear(elevation, lat_hr, lon_hr), lat_hr, lon_hr, hr_factor=k)


def compute_unit(cfg: PrepareConfig, validation_start: datetime | None, unit: Unit) -> UnitResult:
    """Everything one unit contributes to the store (pure apart from reading its inputs).

    Parameters
    ----------
    cfg : PrepareConfig
        The request (picklable; workers rebuild their context from it once).
    validation_start : datetime or None
        Start of the validation period.
    unit : Unit
        The unit.

    Returns
    -------
    UnitResult
        ``coarse (n, 1, 18, 18)``, ``fine (n, 1, 64, 64)``, ``tile``, ``time``, ``split (n,)``,
        ``state (n, S)``; ``n`` may be 0.
    """
    ctx = _context(cfg.model_dump_json())
    qc: dict[str, int] = {}
    log_period = np.float32(np.log(unit.period_hours))
    if ctx.world is not None:
        fine_padded, state = ctx.world.sample(unit.index, cfg.seed, steps=unit.period_hours // 3)
        state_vec = np.append(state.as_vector().astype(np.float32), log_period)
    else:
        fine_padded, qc = _from_files(cfg, ctx, unit)
        state_vec = np.array([log_period], dtype=np.float32)
    coarse_padded, fine = _split_levels(ctx, fine_padded)
    result = _tiles(cfg, ctx, unit, _ring(ctx, coarse_padded), fine, state_vec, validation_start)
    result.counts.update(qc)
    return result


def _split_levels(ctx: _Context, fine_padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coarse input and fine target from one fine field on the padded grid.

    The coarse field is the area-weighted (cos-latitude) block mean of the fine field, so the two
    are consistent by construction (a block with any missing fine cell is missing).

    Returns
    -------
    coarse_padded : (ny_p, nx_p) on the padded coarse grid
    fine : (4 ny, 4 nx) on the domain
    """
    from harpnet_cli.core.remap import block_mean

    oy, ox = ctx.offset
    h, w = ctx.spec.fine_shape
    fine = fine_padded[oy * RATIO : oy * RATIO + h, ox * RATIO : ox * RATIO + w]
    return block_mean(fine_padded, RATIO, lat=ctx.padded.fine_lat()).astype(np.float32), fine


def _ring(ctx: _Context, coarse_padded: np.ndarray) -> np.ndarray:
    """The domain's coarse field with exactly one buffer cell on every side, ``(ny + 2, nx + 2)``.

    The padded grid has one extra cell per side except at the poles or round the globe; there the
    missing buffer is filled by edge replication.
    """
    oy, ox = ctx.offset
    ny, nx = ctx.spec.coarse_shape
    inner = coarse_padded[oy : oy + ny, ox : ox + nx]
    before = coarse_padded[max(oy - 1, 0) : oy + ny + 1, max(ox - 1, 0) : ox + nx + 1]
    if before.shape == (ny + 2, nx + 2):
        return before
    return np.pad(inner, 1, mode="edge") if inner.shape == (ny, nx) else before


def _from_files(cfg: PrepareConfig, ctx: _Context, unit: Unit) -> tuple[np.ndarray, dict[str, int]]:
    """Load a window, mask quality-control failures as missing and remap it to the fine cells of
    the padded grid (cells less than half covered by valid data are missing, so tiles that touch
    them are skipped)."""
    from harpnet_cli.core.qc import SPIKE_MIN_MM, period_scale, qc_mask
    from harpnet_cli.core.remap import Regridder
    from harpnet_cli.core.windows import compute_window
    from harpnet_cli.io.readers import load_field

    data, grid = compute_window(unit.window, load_field)
    key = unit.window.grid
    if key not in ctx.regridders:
        method: Literal["bilinear", "conservative"] = "bilinear" if cfg.remap == "interpolate" else "conservative"
        ctx.regridders[key] = Regridder.to_grid(grid, ctx.padded, "fine", method)
    scale = period_scale(unit.period_hours)
    bad, qc = qc_mask(data, max_3h_mm=cfg.max_3h_mm * scale, spike_min_mm=SPIKE_MIN_MM * scale)
    return ctx.regridders[key](np.where(bad, np.nan, data)), {"qc_cells": qc["bad"]}


def _tiles(cfg: PrepareConfig, ctx: _Context, unit: Unit, coarse_ring: np.ndarray, fine: np.ndarray,
           state_vec: np.ndarray, validation_start: datetime | None) -> UnitResult:
    """Cut, filter and label the tiles of one unit's fields."""
    p = ctx.patcher
    split = assign_split(unit.end, seed=cfg.seed, test_fraction=cfg.test_fraction,
                         validation_start=validation_start)
    coarse_t = p.cut_coarse(coarse_ring[None].astype(np.float32))
    fine_t = p.cut_fine(fine[None].astype(np.float32))
    ok = np.isfinite(coarse_t).all(axis=(1, 2, 3)) & np.isfinite(fine_t).all(axis=(1, 2, 3))
    counts = {"missing_data": int((~ok).sum())}
    if cfg.max_missing > 0 and split == TRAIN and not ok.all():
        coarse_t, fine_t, unobserved = _partial_tiles(p, coarse_ring, fine)
        partial = ~ok & (unobserved <= cfg.max_missing)
        counts["missing_data"] -= int(partial.sum())
        ok |= partial
    dry = np.where(np.isfinite(fine_t), fine_t, 0.0).max(axis=(1, 2, 3)) < cfg.dry_threshold_mm
    rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, zlib.crc32(unit.key.encode()), 0xD27])
    keep_dry = rng.random(len(p)) < cfg.keep_dry
    counts["dry_dropped"] = int((ok & dry & ~keep_dry).sum())
    keep = ok & (~dry | keep_dry)
    counts["dry_kept"] = int((keep & dry).sum())
    counts["wet"] = int((keep & ~dry).sum())
    idx = np.flatnonzero(keep)
    counts["partial"] = int((~np.isfinite(fine_t[idx])).any(axis=(1, 2, 3)).sum())
    n = idx.size
    stamp = int((unit.end - EPOCH).total_seconds())
    return UnitResult(
        key=unit.key, coarse=coarse_t[idx], fine=np.maximum(fine_t[idx], 0.0), tile=idx.astype(np.int32),
        time=np.full(n, stamp, dtype=np.int64), split=np.full(n, split, dtype=np.int8),
        state=np.repeat(state_vec[None].astype(np.float32), n, axis=0), counts=counts,
    )


def _partial_tiles(p: Patcher, coarse_ring: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles of a field with gaps, as ``--max-missing`` keeps them.

    The coarse input is filled from the nearest observed coarse cell (what ``downscale`` does with
    an input's gaps); the fine target is NaN under every unobserved coarse cell, whose filled input
    says nothing about it (a coarse cell is unobserved when any of its fine cells is, see
    :func:`_split_levels`).

    Returns
    -------
    coarse_t : (T, 1, 18, 18) without NaN
    fine_t : (T, 1, 64, 64) NaN where unobserved
    unobserved : (T,) fraction of each tile's fine cells that are NaN
    """
    from harpnet_cli.core.masking import fill_nearest, upsample_mask

    observed = upsample_mask(np.isfinite(coarse_ring[1:-1, 1:-1]), RATIO)
    fine_t = p.cut_fine(np.where(observed, fine, np.nan)[None].astype(np.float32))
    coarse_t = p.cut_coarse(fill_nearest(coarse_ring)[None].astype(np.float32))
    return coarse_t, fine_t, (~np.isfinite(fine_t)).mean(axis=(1, 2, 3))


# -- running units in parallel, in order --------------------------------------------------------
class _Inline(Executor):
    """Runs jobs in the calling process (``--workers 1``): simplest, and easiest to debug."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn`` now and return its finished future."""
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller through the future)
            fut.set_exception(exc)
        return fut


class _executor:  # noqa: N801 (used like a function in a with-statement)
    """The executor of ``cfg``: inline, a local process pool, or a Dask cluster."""

    def __init__(self, cfg: PrepareConfig) -> None:
        self.cfg = cfg
        self._client: Any = None
        self._ex: Executor | None = None

    def __enter__(self) -> Executor:
        if self.cfg.scheduler:
            from distributed import Client

            self._client = Client(self.cfg.scheduler)
            self._ex = self._client.get_executor()
        elif self.cfg.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._ex = ProcessPoolExecutor(self.cfg.workers, mp_context=multiprocessing.get_context("spawn"))
        else:
            self._ex = _Inline()
        return self._ex

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()  # also drops the client's executor and its futures
        elif self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)


def _ordered(ex: Executor, fn: Callable[[Unit], UnitResult], items: Iterable[Unit], ahead: int) -> Iterator[UnitResult]:
    """``map`` with at most ``ahead`` jobs in flight, results in input order (bounded memory)."""
    pending: list[Future[UnitResult]] = []
    for item in items:
        pending.append(ex.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.pop(0).result()
    while pending:
        yield pending.pop(0).result()


# -- plots --------------------------------------------------------------------------------------
def _plot(cfg: PrepareConfig, spec: GridSpec, units: list[Unit]) -> None:
    """PNG plots of the first units' full-domain fields (fine truth, coarse input, terrain)."""
    from harpnet_cli.io.plots import plot_samples
    from harpnet_cli.io.terrain import load_terrain

    assert cfg.plot is not None
    cfg.plot.mkdir(parents=True, exist_ok=True)
    ctx = _context(cfg.model_dump_json())
    terrain = load_terrain(spec)
    samples, states = [], []
    for u in units:
        if ctx.world is not None:
            fine_padded, state = ctx.world.sample(u.index, cfg.seed)
            states.append(dict(zip(state.names(), state.as_vector().tolist(), strict=True)))
        else:
            fine_padded, _ = _from_files(cfg, ctx, u)
        coarse_padded, fine = _split_levels(ctx, fine_padded)
        coarse = _ring(ctx, coarse_padded)[1:-1, 1:-1]
        title = f"{u.key} {u.end:%Y-%m-%d %HZ}"
        samples.append((title, fine, coarse, terrain))
    plot_samples(cfg.plot, samples, spec.fine_lat(), spec.fine_lon(), states=states or None)
