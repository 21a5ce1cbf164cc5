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

The pieces live by job: the files of the run folder in :mod:`harpnet_cli.io.runs`, the process
group in :mod:`harpnet_cli.workflows.distributed`, the optimisation step (with its micro-batches
after a CUDA out-of-memory error) in :mod:`harpnet_cli.core.training`; this module wires them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from harpnet_cli import __version__
from harpnet_cli.config import TrainConfig
from harpnet_cli.errors import HarpnetError, InputDataError, UsageError
from harpnet_cli.registry import PERIOD_INPUT
from harpnet_cli.splits import TRAIN
from harpnet_cli.workflows.distributed import DistEnv
from harpnet_cli.workflows.reporting import NullReporter, Reporter, TrainingProgress, TrainingReporter

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
    from harpnet_cli.core.training import AdaptiveStep, LossFn
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.batches import MixedBatches, NoiseSpec, StoreBatches

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
    from harpnet_cli.core.model.config import ModelConfig

    stats = store.stats
    needed = ("coarse_log1p_mean", "coarse_log1p_std", "terrain_mean", "terrain_std")
    if any(stats.get(k) is None for k in needed) or (columns and stats.get("state_mean") is None):
        raise InputDataError(cfg.store, "store has no training statistics; finish it with harpnet prepare")

    def std(value: float) -> float:
        return float(value) if value and value > 0 and math.isfinite(value) else 1.0

    names = [store.state_names[c] for c in columns]
    periods = store_periods(store) if PERIOD_INPUT in names else None
    grid = store_grid(store)
    regions = []
    if cfg.mix is not None:
        from harpnet_cli.io.store import TrainingStore

        mixed = store_grid(TrainingStore.open(cfg.mix))
        regions = [mixed] if mixed and mixed != grid else []
    return ModelConfig(
        preset=cfg.preset,
        channels=cfg.channels,
        bridge=cfg.bridge,
        coarse_inputs=["precip", *names],
        log1p_inputs=["precip"],
        static_inputs=["terrain"],
        derived_inputs=cast("list[Any]", cfg.derived_inputs),  # names checked by TrainConfig (registry.DERIVED_INPUTS)
        coarse_mean=[float(stats["coarse_log1p_mean"]), *(float(stats["state_mean"][c]) for c in columns)],
        coarse_std=[std(stats["coarse_log1p_std"]), *(std(stats["state_std"][c]) for c in columns)],
        static_mean=[float(stats["terrain_mean"])],
        static_std=[std(stats["terrain_std"])],
        grid=grid or None,
        regions=regions,
        periods=periods,
        noise_scales=list(cfg.noise_scales),
    )


def store_grid(store: TrainingStore) -> dict[str, float | int]:
    """The domain of a store's tiles (:meth:`harpnet_cli.grids.GridSpec.to_dict`; empty when it has none)."""
    source = store.manifest.get("grid") or store.grid
    return {k: v for k, v in source.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def store_periods(store: TrainingStore) -> list[float]:
    """Window lengths (hours) of a store's training samples, from its ``log_period_hours`` column."""
    column = store.state_names.index(PERIOD_INPUT)
    rows = store.indices(TRAIN)
    values = np.asarray(store.state[:len(store)], dtype=np.float64)[rows, column] if len(rows) else np.zeros(0)
    return sorted({round(float(h), 3) for h in np.exp(np.unique(values))})


# -- the stores and the model --------------------------------------------------------------------
@dataclass
class _Data:
    """The stores of a run: what the epochs read."""

    store: TrainingStore
    columns: list[int]
    """State columns of the extra coarse inputs in ``store``."""
    train_idx: np.ndarray
    test_idx: np.ndarray
    vectors: list[tuple[int, int]]
    """Coarse channels of the vector extra inputs, (east, north) pairs (turned with the tile by ``--augment``)."""
    mix: tuple[Path, np.ndarray, list[int]] | None
    """``--mix``: the second store's path, TRAIN indices and state columns."""


def _open_data(cfg: TrainConfig) -> _Data:
    """Open the store (and ``--mix``) and find the TRAIN and TEST samples."""
    from harpnet_cli.splits import TEST
    from harpnet_cli.workflows.batches import vector_channels

    store, columns, train_idx = _open_store(cfg.store, cfg.extra_inputs)
    vectors = vector_channels(cfg.extra_inputs)
    return _Data(store, columns, train_idx, store.indices(TEST), vectors, _open_mix(cfg, store))


def _initial_model_config(cfg: TrainConfig, data: _Data) -> tuple[ModelConfig, Downscaler | None]:
    """The model config, and with ``--init`` the model whose weights the run starts from.

    Raises
    ------
    UsageError
        If the ``--init`` checkpoint's coarse inputs are not the first of this run's (inputs this run
        adds, such as the window length, start with zero weights: the model begins as the old one).
    """
    from harpnet_cli.workflows.models import load_model

    model_cfg = model_config_for(cfg, data.store, data.columns)
    if cfg.init is None:
        return model_cfg, None
    init_model, _ = load_model(cfg.init, "cpu")
    have, want = init_model.config.coarse_inputs, model_cfg.coarse_inputs
    if want[: len(have)] != have:
        raise UsageError(f"--init {cfg.init} takes coarse inputs {have}, this run {want}")
    periods = model_cfg.periods
    if periods is not None and init_model.config.periods is not None:
        periods = sorted({*periods, *init_model.config.periods})
    regions = [g for g in (init_model.config.grid, *init_model.config.regions, *model_cfg.regions) if g]
    regions = [g for i, g in enumerate(regions) if g != model_cfg.grid and g not in regions[:i]]
    update: dict[str, Any] = {"grid": model_cfg.grid, "periods": periods, "regions": regions}
    if len(want) > len(have):  # new coarse inputs (e.g. the window length): their weights start at zero
        mean, std = init_model.config.coarse_mean, init_model.config.coarse_std
        if mean is None or std is None or model_cfg.coarse_mean is None or model_cfg.coarse_std is None:
            raise UsageError(f"--init {cfg.init} has no input statistics to add {want[len(have):]} to")
        update |= {"coarse_inputs": want, "coarse_mean": [*mean, *model_cfg.coarse_mean[len(have):]],
                   "coarse_std": [*std, *model_cfg.coarse_std[len(have):]]}
    if cfg.noise_scales:  # a stochastic model fine-tuned from a deterministic one's weights
        update["noise_scales"] = list(cfg.noise_scales)
    elif init_model.config.stochastic:
        raise UsageError(f"--init {cfg.init} is a stochastic model: continue it with --noise-scales "
                         f"{','.join(f'{v:g}' for v in init_model.config.noise_scales)} --loss crps")
    return init_model.config.model_copy(update=update), init_model


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """torch seed of one epoch on one rank (dropout masks)."""
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**63 - 1)


def _augment_seed(cfg: TrainConfig, epoch: int, rank: int, part: int) -> list[int] | None:
    """Seed of the augmentation draws of one epoch's batches (None: no augmentation)."""
    return [cfg.seed, epoch, rank, part] if cfg.augment else None


def _prepare_run_dir(cfg: TrainConfig) -> tuple[int, Path] | None:
    """Check ``run_dir`` against ``--resume``; return the checkpoint to resume from, if any."""
    from harpnet_cli.io.runs import last_checkpoint

    run_dir = cfg.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory")
    last = last_checkpoint(run_dir)
    if last is not None and not cfg.resume:
        raise UsageError(f"{run_dir} already has checkpoints; pass --resume to continue it or choose another -o")
    return last if cfg.resume else None


def _start_run_dir(cfg: TrainConfig, model: Downscaler, device: torch.device, threads: int, dist_env: DistEnv,
                   amp: bool, resumed: bool, first_epoch: int, meta: dict[str, Any]) -> None:
    """Create the run folder, write ``config.toml`` and keep the history of the saved epochs only."""
    from harpnet_cli.io.runs import clear_history, truncate_history, write_config

    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    write_config(cfg.run_dir, _run_config(cfg, model, device, threads, dist_env, amp))
    if resumed:
        truncate_history(cfg.run_dir, first_epoch - 1, meta.get("record"))
    else:
        clear_history(cfg.run_dir)


def _run_config(cfg: TrainConfig, model: Downscaler, device: torch.device, threads: int, dist_env: DistEnv,
                amp: bool) -> dict[str, Any]:
    """What ``config.toml`` holds: the options (reusable with ``--config``), what was resolved, the model."""
    import torch

    options = cfg.model_dump(mode="json")
    resolved = {"device": str(device), "threads": threads, "world_size": dist_env.world_size, "amp": amp,
                "parameters": model.param_count(), "harpnet_version": __version__, "torch_version": torch.__version__}
    model_dump = model.current_config().model_dump(mode="json")
    grid = model_dump.pop("grid", None)
    return {**options, "resolved": resolved, "model": model_dump, "grid": grid}


# -- the run -------------------------------------------------------------------------------------
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
    from harpnet_cli.workflows.distributed import close_process_group

    dist_env = DistEnv.from_env()
    rep = reporter if reporter is not None and dist_env.main else NullReporter()
    try:
        return _run(cfg, rep, dist_env)
    finally:
        close_process_group(dist_env)


def _run(cfg: TrainConfig, rep: Reporter, dist_env: DistEnv) -> TrainResult:
    """The body of :func:`run_train` (after the process-group bookkeeping): set up, then train epoch by epoch."""
    import torch

    from harpnet_cli.core.training import AdaptiveStep, get_loss
    from harpnet_cli.workflows.distributed import barrier, select_device, setup_process_group, wrap_model

    t_start = time.perf_counter()
    data = _open_data(cfg)
    model_cfg, init_model = _initial_model_config(cfg, data)
    resume_from = _prepare_run_dir(cfg)

    device, threads = select_device(cfg.device, cfg.threads, dist_env)
    setup_process_group(dist_env, device)
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    loss_fn = get_loss(cfg.loss)
    model, optimizer, first_epoch, meta = _build(cfg, model_cfg, init_model, resume_from, device)
    net = wrap_model(model, dist_env, device)
    if cfg.compile:
        net = torch.compile(net)
    if dist_env.main:
        _start_run_dir(cfg, model, device, threads, dist_env, amp, resume_from is not None, first_epoch, meta)
    what = f"resuming at epoch {first_epoch}" if resume_from is not None else "starting"
    rep.info(f"{what}: {model.param_count():,} parameters, {len(data.train_idx)} train / {len(data.test_idx)} test "
             f"samples, {device} ({threads} threads), {dist_env.world_size} process(es), loss {cfg.loss}")

    def halved(micro: int, batch: int) -> None:
        rep.warning(f"CUDA out of memory: batch size halved to {micro} (gradients accumulated to {batch}); "
                    "retrying the batch")

    epochs = _Epochs(cfg, dist_env, data, model, net, optimizer, loss_fn, AdaptiveStep(halved), device,
                     channels_last=device.type == "cuda", amp_dtype=torch.bfloat16 if amp else None)
    result = TrainResult(cfg.run_dir, first_epoch, first_epoch - 1, None, None, None, 0.0, 0.0, model.param_count(),
                         str(device), dist_env.world_size, dist_env.main)
    if first_epoch > cfg.epochs:
        rep.warning(f"nothing to do: {cfg.run_dir} already has {first_epoch - 1} of {cfg.epochs} epochs")
    saved = first_epoch - 1
    epoch = first_epoch
    try:
        with _training_progress(rep, first_epoch, cfg.epochs) as bars:
            for epoch in range(first_epoch, cfg.epochs + 1):
                epochs.run(epoch, bars, rep, result)
                saved = epoch
    except KeyboardInterrupt:
        done = f"epochs up to {saved} are saved" if saved >= 1 else "no epoch was completed"
        raise TrainingInterrupted(
            f"interrupted in epoch {epoch}; {done}; resume with: harpnet train {cfg.store} -o {cfg.run_dir} --resume"
        ) from None
    barrier(dist_env)
    result.seconds = time.perf_counter() - t_start
    return result


def _build(cfg: TrainConfig, model_cfg: ModelConfig, init_model: Downscaler | None,
           resume_from: tuple[int, Path] | None, device: torch.device,
           ) -> tuple[Downscaler, torch.optim.Optimizer, int, dict[str, Any]]:
    """The model on ``device`` and its Adam optimizer: fresh, from ``--init`` or from the checkpoint resumed.

    Seeds everything from ``cfg.seed`` first; a resumed run restores the optimizer and RNG state.

    Returns
    -------
    model : Downscaler
        In ``train()`` mode, channels-last on CUDA.
    optimizer : torch.optim.Optimizer
    first_epoch : int
        1, or the epoch after the checkpoint resumed.
    meta : dict
        The resumed checkpoint's metadata (empty otherwise).

    Raises
    ------
    UsageError
        If the checkpoint resumed was trained with another model or store.
    """
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler, widen_inputs
    from harpnet_cli.core.training import seed_everything, set_rng_state
    from harpnet_cli.workflows.models import load_model

    seed_everything(cfg.seed)
    first_epoch = 1
    meta: dict[str, Any] = {}
    if resume_from is not None:
        model, meta = load_model(resume_from[1], "cpu")
        want = model_cfg.model_dump(exclude={"grid", "regions"})
        if model.config.model_dump(exclude={"grid", "regions"}) != want:
            raise UsageError(f"{resume_from[1]} was trained with another model or store; use a new -o")
        model = model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        first_epoch = int(meta.get("epoch", resume_from[0])) + 1
    elif init_model is not None:
        model = Downscaler(model_cfg)
        state = widen_inputs(init_model.state_dict(), init_model.config.input_names, model_cfg.input_names,
                             model.state_dict())
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith("amplitude.") for key in missing):
            raise UsageError(f"--init {cfg.init}: its weights do not fit this model "
                             f"({', '.join([*missing, *unexpected][:3])} …)")
    else:
        model = Downscaler(model_cfg)
    model.to(device).train()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if resume_from is not None:
        if "optimizer" in meta:
            optimizer.load_state_dict(meta["optimizer"])
        if isinstance(meta.get("rng"), dict):
            set_rng_state(meta["rng"])
    return model, optimizer, first_epoch, meta


@dataclass
class _Epochs:
    """Everything an epoch uses, and the epoch itself: train, test, checkpoint, history, report."""

    cfg: TrainConfig
    dist_env: DistEnv
    data: _Data
    model: Downscaler
    net: Any
    """``model``, possibly in DistributedDataParallel and ``torch.compile``."""
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    step: AdaptiveStep
    device: torch.device
    channels_last: bool
    amp_dtype: torch.dtype | None

    def run(self, epoch: int, bars: TrainingProgress, rep: Reporter, result: TrainResult) -> None:
        """Train and test one epoch; on rank 0 save its checkpoint and history line; report; update ``result``."""
        from harpnet_cli.core.training import rng_state
        from harpnet_cli.io.checkpoints import save_checkpoint
        from harpnet_cli.io.runs import append_history, checkpoint_path
        from harpnet_cli.workflows.distributed import rank_digests

        cfg, dist_env = self.cfg, self.dist_env
        t0 = time.perf_counter()
        train_loss, train_samples, train_time = self.train(epoch, bars, t0)
        test_loss = self.test()
        digests = rank_digests(self.model, dist_env)
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "samples_per_s": train_samples / max(train_time, 1e-9),
            "seconds": 0.0,
            "train_samples": int(train_samples),
            "batch_size": cfg.batch_size,
            "micro_batch": self.step.micro_batch,
            "world_size": dist_env.world_size,
            "weights_sha256": digests[0],
            "ranks_in_sync": len(set(digests)) == 1,
        }
        if not record["ranks_in_sync"]:
            rep.warning(f"epoch {epoch}: the DDP ranks hold different weights")
        if dist_env.main:
            ckpt = checkpoint_path(cfg.run_dir, epoch)
            record["seconds"] = time.perf_counter() - t0
            save_checkpoint(ckpt, self.model, self.optimizer, epoch=epoch, train_loss=train_loss,
                            test_loss=test_loss, rng=rng_state(), record=record, seed=cfg.seed, loss=cfg.loss,
                            store=str(cfg.store), train_samples=len(self.data.train_idx),
                            mix=None if self.data.mix is None else str(self.data.mix[0]))
            append_history(cfg.run_dir, record)
            result.checkpoint = ckpt
        test_txt = "n/a" if test_loss is None else f"{test_loss:.4g}"
        _log_epoch(rep, f"epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4g}, test loss {test_txt}, "
                        f"{record['samples_per_s']:.1f} samples/s, {time.perf_counter() - t0:.1f} s")
        result.last_epoch, result.train_loss, result.test_loss = epoch, train_loss, test_loss
        result.samples_per_s = float(record["samples_per_s"])

    def batches(self, epoch: int) -> StoreBatches | MixedBatches:
        """This rank's training batches of ``epoch`` (with ``--mix``, both stores' batches interleaved)."""
        from harpnet_cli.core.training import epoch_order, rank_share
        from harpnet_cli.io.store import SAMPLE_CHUNK
        from harpnet_cli.workflows.batches import MixedBatches, StoreBatches

        cfg, rank, world, data = self.cfg, self.dist_env.rank, self.dist_env.world_size, self.data
        order = epoch_order(data.train_idx, seed=cfg.seed, epoch=epoch, chunk=SAMPLE_CHUNK,
                            buffer_chunks=cfg.shuffle_chunks)
        mine = rank_share(order, rank, world)
        own = StoreBatches(cfg.store, mine, cfg.batch_size, data.columns, cfg.max_batches,
                           _augment_seed(cfg, epoch, rank, 0), data.vectors, self.noise(epoch, rank, 0))
        if data.mix is None:
            return own
        mix_path, mix_idx, mix_columns = data.mix
        n_mix = max(1, round(cfg.mix_ratio * len(order)))
        mix_order = np.resize(epoch_order(mix_idx, seed=cfg.seed + 1, epoch=epoch, chunk=SAMPLE_CHUNK,
                                          buffer_chunks=cfg.shuffle_chunks), n_mix)
        mix_mine = rank_share(mix_order, rank, world)
        mixed = StoreBatches(mix_path, mix_mine, cfg.batch_size, mix_columns, cfg.max_batches,
                             _augment_seed(cfg, epoch, rank, 1), data.vectors, self.noise(epoch, rank, 1))
        return MixedBatches([own, mixed], seed=cfg.seed * 1000 + epoch)

    def noise(self, epoch: int, rank: int, part: int) -> NoiseSpec | None:
        """The noise of a stochastic model's batches in ``epoch`` (epoch 0: the test batches), or None."""
        from harpnet_cli.workflows.batches import NoiseSpec

        scales = self.model.config.noise_scales
        if not scales:
            return None
        return NoiseSpec(self.cfg.members, tuple(scales), (self.cfg.seed & 0xFFFFFFFF, epoch, rank, part, 0x5EED))

    def train(self, epoch: int, bars: TrainingProgress, t0: float) -> tuple[float, float, float]:
        """One pass over this rank's batches of ``epoch``, one optimiser step each (the epoch began at ``t0``).

        Returns
        -------
        (float, float, float)
            The mean training loss and the number of samples, both over all ranks, and this rank's
            seconds since ``t0``.
        """
        import torch

        from harpnet_cli.core.training import epoch_lr
        from harpnet_cli.workflows.batches import iterate_batches
        from harpnet_cli.workflows.distributed import all_sum, sync_buffers

        cfg, dist_env = self.cfg, self.dist_env
        for group in self.optimizer.param_groups:
            group["lr"] = epoch_lr(cfg.lr, epoch, cfg.epochs, cfg.lr_schedule)
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, dist_env.rank))
        data = self.batches(epoch)
        bars.start_epoch(epoch, len(data))
        self.net.train()
        loss_sum, seen = 0.0, 0
        for coarse, static, target in iterate_batches(data, cfg.workers, seed=cfg.seed + epoch):
            coarse, static, target = (self.to_device(x) for x in (coarse, static, target))
            try:
                loss = self.step(self.net, self.optimizer, self.loss_fn, coarse, static, target,
                                 autocast_dtype=self.amp_dtype)
            except torch.cuda.OutOfMemoryError:
                raise HarpnetError("CUDA out of memory even with a batch of 1; use a smaller --preset") from None
            loss_sum += loss * coarse.shape[0]
            seen += coarse.shape[0]
            speed = seen * dist_env.world_size / max(time.perf_counter() - t0, 1e-9)
            bars.advance(1, loss_sum / seen, speed)
        train_time = time.perf_counter() - t0
        sync_buffers(self.model, dist_env)
        tot_loss, tot_seen = all_sum([loss_sum, float(seen)], dist_env)
        return tot_loss / max(tot_seen, 1.0), tot_seen, train_time

    def test(self) -> float | None:
        """The mean loss over the TEST split (shared among the ranks); None when it is empty."""
        from harpnet_cli.core.training import evaluate
        from harpnet_cli.workflows.batches import StoreBatches, iterate_batches
        from harpnet_cli.workflows.distributed import all_sum

        cfg, dist_env = self.cfg, self.dist_env
        test_rows = self.data.test_idx[dist_env.rank :: dist_env.world_size]
        test_data = StoreBatches(cfg.store, test_rows, cfg.batch_size, self.data.columns,
                                 noise=self.noise(0, dist_env.rank, 0))
        batches = (tuple(self.to_device(x) for x in b) for b in iterate_batches(test_data, cfg.workers))
        t_sum, t_n = evaluate(self.model, self.loss_fn, batches, autocast_dtype=self.amp_dtype)  # type: ignore[arg-type]
        t_sum, t_count = all_sum([t_sum, float(t_n)], dist_env)
        return t_sum / t_count if t_count else None

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Move a batch tensor to the device (channels-last 4-D tensors on CUDA)."""
        import torch

        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


# -- stores --------------------------------------------------------------------------------------
def _open_store(path: Path, extra_inputs: Sequence[str]) -> tuple[TrainingStore, list[int], np.ndarray]:
    """A finished training store, the state columns of ``extra_inputs`` and its TRAIN indices.

    Raises
    ------
    InputDataError
        If the store is incomplete, lacks the extra inputs' state, or has no training samples.
    """
    from harpnet_cli.io.store import TrainingStore
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


# -- progress ------------------------------------------------------------------------------------
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

__all__ = ["DistEnv", "TrainResult", "TrainingInterrupted", "run_train", "model_config_for"]
