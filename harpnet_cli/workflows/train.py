"""``harpnet train``: a training store → checkpoints, ``history.jsonl`` and ``config.toml``.

One epoch reads the TRAIN split in a chunk-local shuffled order that depends only on
``(seed, epoch)`` (:func:`~harpnet_cli.core.training.epoch_order`), takes one Adam step per batch,
then evaluates the TEST split and writes ``RUN_DIR/checkpoints/epoch_NNN.pt`` (atomic, with the
optimizer state and the RNG state) and one line of ``RUN_DIR/history.jsonl``. torch's global RNG
(dropout) is reseeded from ``(seed, epoch, rank)`` at the start of every epoch, so ``--resume``
from the last checkpoint reproduces an uninterrupted run bit for bit on CPU.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the model is wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA), each epoch's order is split across ranks
like ``DistributedSampler``, BatchNorm buffers are broadcast from rank 0 after every epoch, and
only rank 0 writes files or reports.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.config import TrainConfig
from harpnet_cli.errors import HarpnetError, InputDataError, UsageError
from harpnet_cli.workflows.reporting import NullReporter, Reporter, TrainingProgress, TrainingReporter

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
    from harpnet_cli.io.store import TrainingStore

CHECKPOINT_DIR = "checkpoints"
HISTORY = "history.jsonl"
CONFIG = "config.toml"
EXIT_INTERRUPTED = 130


class TrainingInterrupted(HarpnetError):
    """Ctrl-C during training; the message says how to resume (exit code 130)."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TrainResult:
    """What a training run did, for the summary line."""

    run_dir: Path
    first_epoch: int
    last_epoch: int
    train_loss: float | None
    test_loss: float | None
    checkpoint: Path | None
    samples_per_s: float
    seconds: float
    params: int
    device: str
    world_size: int
    is_main: bool = True
    """False on DDP ranks other than 0 (which should print nothing)."""


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a ``torchrun`` job (rank 0 of 1 outside one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistEnv:
        """Read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``."""
        e = os.environ if env is None else env
        if "RANK" not in e or "WORLD_SIZE" not in e:
            return cls()
        world = int(e["WORLD_SIZE"])
        return cls(int(e["RANK"]), world, int(e.get("LOCAL_RANK", "0")), int(e.get("LOCAL_WORLD_SIZE", str(world))))

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes and reports."""
        return self.rank == 0


# -- configuration -------------------------------------------------------------------------------
def model_config_for(cfg: TrainConfig, store: TrainingStore, columns: list[int]) -> ModelConfig:
    """The model config: preset (or overrides), inputs and the store's TRAIN-split statistics.

    Parameters
    ----------
    cfg : TrainConfig
    store : TrainingStore
    columns : list of int
        State columns of the extra coarse inputs (from :func:`harpnet_cli.workflows.batches.state_columns`).

    Returns
    -------
    ModelConfig

    Raises
    ------
    InputDataError
        If the store has no statistics (it was not finalised).
    """
    from harpnet_cli.core.model.wrapper import ModelConfig

    stats = store.stats
    needed = ("coarse_log1p_mean", "coarse_log1p_std", "terrain_mean", "terrain_std")
    if any(stats.get(k) is None for k in needed) or (columns and stats.get("state_mean") is None):
        raise InputDataError(cfg.store, "store has no training statistics; finish it with harpnet prepare")

    def std(value: float) -> float:
        return float(value) if value and value > 0 and math.isfinite(value) else 1.0

    names = [store.state_names[c] for c in columns]
    grid_source = store.manifest.get("grid") or store.grid
    grid = {k: v for k, v in grid_source.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return ModelConfig(
        preset=cfg.preset,
        channels=cfg.channels,
        bridge=cfg.bridge,
        coarse_inputs=["precip", *names],
        log1p_inputs=["precip"],
        static_inputs=["terrain"],
        derived_inputs=cfg.derived_inputs,
        coarse_mean=[float(stats["coarse_log1p_mean"]), *(float(stats["state_mean"][c]) for c in columns)],
        coarse_std=[std(stats["coarse_log1p_std"]), *(std(stats["state_std"][c]) for c in columns)],
        static_mean=[float(stats["terrain_mean"])],
        static_std=[std(stats["terrain_std"])],
        grid=grid or None,
    )


def _toml_value(v: Any) -> str:
    """One TOML value (strings, numbers, booleans and lists of them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialise a dict of plain values and one level of tables to TOML (None values are left out).

    Parameters
    ----------
    data : mapping
        Top-level keys with plain values; mapping values become ``[tables]``.

    Returns
    -------
    str
    """
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    from harpnet_cli.io.atomic import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# -- checkpoints and history ---------------------------------------------------------------------
def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    """``RUN_DIR/checkpoints/epoch_NNN.pt``."""
    return run_dir / CHECKPOINT_DIR / f"epoch_{epoch:03d}.pt"


def last_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """The highest-numbered ``epoch_NNN.pt`` in the run (all are complete: writes are atomic)."""
    found = []
    for p in (run_dir / CHECKPOINT_DIR).glob("epoch_*.pt"):
        try:
            found.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    return max(found) if found else None


def _read_history(path: Path, upto: int) -> list[dict[str, Any]]:
    """History records with ``epoch <= upto`` (unreadable lines are dropped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and rec["epoch"] <= upto:
            out.append(rec)
    return out


def _append_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- the run -------------------------------------------------------------------------------------
def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """torch seed of one epoch on one rank (dropout masks)."""
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**63 - 1)


def _augment_seed(cfg: TrainConfig, epoch: int, rank: int, part: int) -> list[int] | None:
    """Seed of the augmentation draws of one epoch's batches (None: no augmentation)."""
    return [cfg.seed, epoch, rank, part] if cfg.augment else None


def _setup_process_group(dist_env: DistEnv, device: torch.device) -> None:
    """Join the torchrun job: nccl on CUDA, gloo otherwise."""
    import torch.distributed as dist

    if dist_env.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def _all_sum(values: list[float], dist_env: DistEnv) -> list[float]:
    """Sum a few floats over the ranks (identity in a single process)."""
    if not dist_env.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def _sync_buffers(model: torch.nn.Module, dist_env: DistEnv) -> None:
    """Broadcast BatchNorm running statistics from rank 0 so every rank holds the same state."""
    if not dist_env.distributed:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf.data, 0)


def _rank_digests(model: torch.nn.Module, dist_env: DistEnv) -> list[str]:
    """The state-dict SHA-256 of every rank (rank order)."""
    from harpnet_cli.core.training import state_dict_digest

    digest = state_dict_digest(model)
    if not dist_env.distributed:
        return [digest]
    import torch.distributed as dist

    out: list[Any] = [None] * dist_env.world_size
    dist.all_gather_object(out, digest)
    return [str(d) for d in out]


class _PlainProgress:
    """:class:`TrainingProgress` on a plain :class:`Reporter`: one ``progress`` bar per epoch."""

    def __init__(self, reporter: Reporter, epochs: int) -> None:
        self.reporter = reporter
        self.epochs = epochs
        self._ctx: AbstractContextManager[Callable[[int], None]] | None = None
        self._advance: Callable[[int], None] = lambda n: None

    def start_epoch(self, epoch: int, batches: int) -> None:
        """Close the previous bar and open one for this epoch."""
        self.close()
        self._ctx = self.reporter.progress(f"epoch {epoch}/{self.epochs}", batches)
        self._advance = self._ctx.__enter__()

    def advance(self, batches: int, loss: float, samples_per_s: float) -> None:
        """Advance the bar (loss and speed are not shown)."""
        self._advance(batches)

    def close(self) -> None:
        """Close the open bar, if any."""
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


@contextmanager
def _training_progress(reporter: Reporter, first: int, epochs: int) -> Iterator[TrainingProgress]:
    """The reporter's training bars, or per-epoch plain bars."""
    if isinstance(reporter, TrainingReporter):
        with reporter.training(first, epochs) as bars:
            yield bars
        return
    plain = _PlainProgress(reporter, epochs)
    try:
        yield plain
    finally:
        plain.close()


def _log_epoch(reporter: Reporter, line: str) -> None:
    """One summary line per epoch through the reporter."""
    if isinstance(reporter, TrainingReporter):
        reporter.log_epoch(line)
    else:
        reporter.info(line)


def _prepare_run_dir(cfg: TrainConfig) -> tuple[int, Path] | None:
    """Check ``run_dir`` against ``--resume``; return the checkpoint to resume from, if any."""
    run_dir = cfg.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory")
    last = last_checkpoint(run_dir)
    if last is not None and not cfg.resume:
        raise UsageError(f"{run_dir} already has checkpoints; pass --resume to continue it or choose another -o")
    return last if cfg.resume else None


def run_train(cfg: TrainConfig, reporter: Reporter | None = None) -> TrainResult:
    """Train a downscaler on a store; see the module docstring.

    Parameters
    ----------
    cfg : TrainConfig
    reporter : Reporter, optional
        Progress and messages (rank 0 only); :class:`~harpnet_cli.workflows.reporting.NullReporter`
        by default. A :class:`~harpnet_cli.workflows.reporting.TrainingReporter` gets epoch and
        batch bars with loss and speed.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C (exit code 130); completed epochs are saved and the message says how to resume.
    UsageError, InputDataError
        For impossible options or an unusable store.
    """
    dist_env = DistEnv.from_env()
    rep = reporter if reporter is not None and dist_env.main else NullReporter()
    try:
        return _run(cfg, rep, dist_env)
    finally:
        if dist_env.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _select(cfg: TrainConfig, dist_env: DistEnv) -> tuple[torch.device, int]:
    """Device (the local rank's GPU under DDP) and CPU threads."""
    import torch

    from harpnet_cli.devices import configure_cpu_threads, select_device, usable_cpu_count

    device = select_device(cfg.device)
    if device.type == "cuda" and dist_env.distributed:
        device = torch.device("cuda", dist_env.local_rank)
        torch.cuda.set_device(device)
    threads = cfg.threads or max(1, usable_cpu_count() // max(1, dist_env.local_world_size))
    return device, configure_cpu_threads(threads)


def _run(cfg: TrainConfig, rep: Reporter, dist_env: DistEnv) -> TrainResult:  # noqa: C901
    """The body of :func:`run_train` (after the process-group bookkeeping)."""
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.core.training import (
        epoch_lr,
        epoch_order,
        evaluate,
        get_loss,
        rank_share,
        rng_state,
        seed_everything,
        set_rng_state,
    )
    from harpnet_cli.io.checkpoints import save_checkpoint
    from harpnet_cli.io.store import SAMPLE_CHUNK
    from harpnet_cli.splits import TEST
    from harpnet_cli.workflows.batches import MixedBatches, StoreBatches, iterate_batches, vector_channels
    from harpnet_cli.workflows.models import load_model

    t_start = time.perf_counter()
    store, columns, train_idx = _open_store(cfg.store, cfg.extra_inputs)
    vectors = vector_channels(cfg.extra_inputs)
    test_idx = store.indices(TEST)
    mix = _open_mix(cfg, store)
    model_cfg = model_config_for(cfg, store, columns)
    init_model = None
    if cfg.init is not None:
        init_model, _ = load_model(cfg.init, "cpu")
        if init_model.config.coarse_inputs != model_cfg.coarse_inputs:
            raise UsageError(f"--init {cfg.init} takes coarse inputs {init_model.config.coarse_inputs}, "
                             f"this run {model_cfg.coarse_inputs}")
        model_cfg = init_model.config.model_copy(update={"grid": model_cfg.grid})
    resume_from = _prepare_run_dir(cfg)

    device, threads = _select(cfg, dist_env)
    _setup_process_group(dist_env, device)
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp else None
    channels_last = device.type == "cuda"
    loss_fn = get_loss(cfg.loss)

    seed_everything(cfg.seed)
    first_epoch = 1
    meta: dict[str, Any] = {}
    if resume_from is not None:
        model, meta = load_model(resume_from[1], "cpu")
        want = model_cfg.model_dump(exclude={"grid"})
        if model.config.model_dump(exclude={"grid"}) != want:
            raise UsageError(f"{resume_from[1]} was trained with another model or store; use a new -o")
        model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        first_epoch = int(meta.get("epoch", resume_from[0])) + 1
    elif init_model is not None:
        model = Downscaler(model_cfg)
        model.load_state_dict(init_model.state_dict())
    else:
        model = Downscaler(model_cfg)
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if resume_from is not None:
        if "optimizer" in meta:
            optimizer.load_state_dict(meta["optimizer"])
        if isinstance(meta.get("rng"), dict):
            set_rng_state(meta["rng"])

    net: Any = model
    if dist_env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    run_dir = cfg.run_dir
    history_path = run_dir / HISTORY
    if dist_env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(cfg, model, device, threads, dist_env, amp)
        if resume_from is not None:  # keep the history of the saved epochs only, completing the last
            records = _read_history(history_path, first_epoch - 1)
            if isinstance(meta.get("record"), dict) and all(r["epoch"] != first_epoch - 1 for r in records):
                records.append(meta["record"])
            _write_text_atomic(history_path, "".join(json.dumps(r) + "\n" for r in records))
        elif history_path.exists():
            history_path.unlink()
    what = f"resuming at epoch {first_epoch}" if resume_from is not None else "starting"
    rep.info(f"{what}: {model.param_count():,} parameters, {len(train_idx)} train / {len(test_idx)} test samples, "
             f"{device} ({threads} threads), {dist_env.world_size} process(es), loss {cfg.loss}")

    result = TrainResult(run_dir, first_epoch, first_epoch - 1, None, None, None, 0.0, 0.0, model.param_count(),
                         str(device), dist_env.world_size, dist_env.main)
    if first_epoch > cfg.epochs:
        rep.warning(f"nothing to do: {run_dir} already has {first_epoch - 1} of {cfg.epochs} epochs")
    micro: list[int | None] = [None]
    saved = first_epoch - 1
    epoch = first_epoch
    try:
        with _training_progress(rep, first_epoch, cfg.epochs) as bars:
            for epoch in range(first_epoch, cfg.epochs + 1):
                t0 = time.perf_counter()
                for group in optimizer.param_groups:
                    group["lr"] = epoch_lr(cfg.lr, epoch, cfg.epochs, cfg.lr_schedule)
                torch.manual_seed(_epoch_seed(cfg.seed, epoch, dist_env.rank))
                order = epoch_order(train_idx, seed=cfg.seed, epoch=epoch, chunk=SAMPLE_CHUNK,
                                    buffer_chunks=cfg.shuffle_chunks)
                mine = rank_share(order, dist_env.rank, dist_env.world_size)
                own = StoreBatches(cfg.store, mine, cfg.batch_size, columns, cfg.max_batches,
                                   _augment_seed(cfg, epoch, dist_env.rank, 0), vectors)
                data: StoreBatches | MixedBatches = own
                if mix is not None:
                    n_mix = max(1, round(cfg.mix_ratio * len(order)))
                    mix_order = np.resize(epoch_order(mix[1], seed=cfg.seed + 1, epoch=epoch, chunk=SAMPLE_CHUNK,
                                                      buffer_chunks=cfg.shuffle_chunks), n_mix)
                    mix_mine = rank_share(mix_order, dist_env.rank, dist_env.world_size)
                    mixed = StoreBatches(mix[0], mix_mine, cfg.batch_size, mix[2], cfg.max_batches,
                                         _augment_seed(cfg, epoch, dist_env.rank, 1), vectors)
                    data = MixedBatches([own, mixed], seed=cfg.seed * 1000 + epoch)
                bars.start_epoch(epoch, len(data))
                net.train()
                loss_sum, seen = 0.0, 0
                for coarse, static, target in iterate_batches(data, cfg.workers, seed=cfg.seed + epoch):
                    coarse, static, target = (_to(x, device, channels_last) for x in (coarse, static, target))
                    loss = _step(net, optimizer, loss_fn, coarse, static, target, micro, amp_dtype, rep)
                    loss_sum += loss * coarse.shape[0]
                    seen += coarse.shape[0]
                    speed = seen * dist_env.world_size / max(time.perf_counter() - t0, 1e-9)
                    bars.advance(1, loss_sum / seen, speed)
                train_time = time.perf_counter() - t0
                _sync_buffers(model, dist_env)
                tot_loss, tot_seen = _all_sum([loss_sum, float(seen)], dist_env)
                train_loss = tot_loss / max(tot_seen, 1.0)

                test_rows = test_idx[dist_env.rank :: dist_env.world_size]
                test_data = StoreBatches(cfg.store, test_rows, cfg.batch_size, columns)
                batches = (tuple(_to(x, device, channels_last) for x in b)
                           for b in iterate_batches(test_data, cfg.workers))
                t_sum, t_n = evaluate(model, loss_fn, batches, autocast_dtype=amp_dtype)  # type: ignore[arg-type]
                t_sum, t_count = _all_sum([t_sum, float(t_n)], dist_env)
                test_loss = t_sum / t_count if t_count else None

                digests = _rank_digests(model, dist_env)
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "test_loss": test_loss,
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "samples_per_s": tot_seen / max(train_time, 1e-9),
                    "seconds": 0.0,
                    "train_samples": int(tot_seen),
                    "batch_size": cfg.batch_size,
                    "micro_batch": micro[0],
                    "world_size": dist_env.world_size,
                    "weights_sha256": digests[0],
                    "ranks_in_sync": len(set(digests)) == 1,
                }
                if not record["ranks_in_sync"]:
                    rep.warning(f"epoch {epoch}: the DDP ranks hold different weights")
                if dist_env.main:
                    ckpt = checkpoint_path(run_dir, epoch)
                    record["seconds"] = time.perf_counter() - t0
                    save_checkpoint(ckpt, model, optimizer, epoch=epoch, train_loss=train_loss, test_loss=test_loss,
                                    rng=rng_state(), record=record, seed=cfg.seed, loss=cfg.loss,
                                    store=str(cfg.store), train_samples=len(train_idx),
                                    mix=None if mix is None else str(mix[0]))
                    _append_line(history_path, record)
                    result.checkpoint = ckpt
                saved = epoch
                test_txt = "n/a" if test_loss is None else f"{test_loss:.4g}"
                _log_epoch(rep, f"epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4g}, test loss {test_txt}, "
                                f"{record['samples_per_s']:.1f} samples/s, {time.perf_counter() - t0:.1f} s")
                result.last_epoch, result.train_loss, result.test_loss = epoch, train_loss, test_loss
                result.samples_per_s = float(record["samples_per_s"])
    except KeyboardInterrupt:
        done = f"epochs up to {saved} are saved" if saved >= 1 else "no epoch was completed"
        raise TrainingInterrupted(
            f"interrupted in epoch {epoch}; {done}; resume with: harpnet train {cfg.store} -o {run_dir} --resume"
        ) from None
    if dist_env.distributed:
        import torch.distributed as dist

        dist.barrier()
    result.seconds = time.perf_counter() - t_start
    return result


def _open_store(path: Path, extra_inputs: Sequence[str]) -> tuple[TrainingStore, list[int], np.ndarray]:
    """A finished training store, the state columns of ``extra_inputs`` and its TRAIN indices.

    Raises
    ------
    InputDataError
        If the store is incomplete, lacks the extra inputs' state, or has no training samples.
    """
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.splits import TRAIN
    from harpnet_cli.workflows.batches import state_columns

    store = TrainingStore.open(path)
    if not store.is_complete:
        raise InputDataError(path, "store is not complete; finish it with harpnet prepare")
    columns = state_columns(store.state_names, extra_inputs, path)
    train_idx = store.indices(TRAIN)
    if len(train_idx) == 0:
        raise InputDataError(path, "store has no training samples")
    return store, columns, train_idx


def _open_mix(cfg: TrainConfig, store: TrainingStore) -> tuple[Path, np.ndarray, list[int]] | None:
    """``--mix``: the second store's path, TRAIN indices and extra-input state columns (the same
    states as the main store's, possibly in other columns).

    Raises
    ------
    InputDataError
        As :func:`_open_store`, or if its tiles differ in shape from the main store's.
    """
    if cfg.mix is None:
        return None
    other, columns, idx = _open_store(cfg.mix, cfg.extra_inputs)
    shapes = [(s.coarse.shape[1:], s.fine.shape[1:], s.terrain.shape[1:]) for s in (store, other)]
    if shapes[0] != shapes[1]:
        raise InputDataError(cfg.mix, f"tiles of shape {shapes[1]} cannot be mixed with {cfg.store}'s {shapes[0]}")
    return Path(cfg.mix), idx, columns


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move a batch tensor to the device (channels-last 4-D tensors on CUDA)."""
    import torch

    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _step(
    net: Any,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    coarse: torch.Tensor,
    static: torch.Tensor,
    target: torch.Tensor,
    micro: list[int | None],
    amp_dtype: torch.dtype | None,
    rep: Reporter,
) -> float:
    """:func:`~harpnet_cli.core.training.train_step`, halving the micro-batch on CUDA out-of-memory.

    ``micro[0]`` holds the current micro-batch size (None: the whole batch) across calls.
    """
    import torch

    from harpnet_cli.core.training import train_step

    while True:
        try:
            return train_step(net, optimizer, loss_fn, coarse, static, target, micro_batch=micro[0],
                              autocast_dtype=amp_dtype)
        except torch.cuda.OutOfMemoryError:
            current = micro[0] or coarse.shape[0]
            if current <= 1:
                raise HarpnetError("CUDA out of memory even with a batch of 1; use a smaller --preset") from None
            micro[0] = current // 2
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            rep.warning(f"CUDA out of memory: batch size halved to {micro[0]} (gradients accumulated to "
                        f"{coarse.shape[0]}); retrying the batch")


def _write_config(cfg: TrainConfig, model: Downscaler, device: torch.device, threads: int, dist_env: DistEnv,
                  amp: bool) -> None:
    """``RUN_DIR/config.toml``: the options (reusable with ``--config``), what was resolved, the model."""
    import torch

    options = cfg.model_dump(mode="json")
    resolved = {"device": str(device), "threads": threads, "world_size": dist_env.world_size, "amp": amp,
                "parameters": model.param_count(), "harpnet_version": __version__, "torch_version": torch.__version__}
    model_dump = model.current_config().model_dump(mode="json")
    grid = model_dump.pop("grid", None)
    text = to_toml({**options, "resolved": resolved, "model": model_dump, "grid": grid})
    _write_text_atomic(cfg.run_dir / CONFIG, text)


__all__ = ["DistEnv", "TrainResult", "TrainingInterrupted", "run_train", "model_config_for", "to_toml"]
