"""Pure training pieces: losses, one optimisation step (:func:`train_step`; :class:`AdaptiveStep`
halves its micro-batch after a CUDA out-of-memory error), evaluation, seeding and the data order.

Nothing here touches files or prints: the workflow (:mod:`harpnet_cli.workflows.train`) wires
these to the store, the checkpoints and the reporter.

Data order
----------
The store is chunked by 256 samples along N; random reads decode one chunk per sample, reads
within a chunk are an order of magnitude cheaper. :func:`epoch_order` therefore shuffles the
*order of chunks*, then shuffles samples within a window of ``buffer_chunks`` consecutive chunks
of that order, from a generator seeded by ``(seed, epoch)``: the order is a pure function of
``(indices, seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted run sees.
:func:`rank_share` splits it across DDP ranks like ``torch.utils.data.DistributedSampler``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harpnet_cli.registry import DEFAULT_LOSS as DEFAULT_LOSS  # re-exported: the loss without --loss
from harpnet_cli.registry import LOSSES, LR_SCHEDULES

LossFn = Callable[[Tensor, Tensor], Tensor]


def get_loss(name: str) -> LossFn:
    """The loss function called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`harpnet_cli.registry.LOSSES`.

    Returns
    -------
    callable
        ``loss(pred, target) -> scalar``; ``pred`` and ``target`` of shape (B, 1, 64, 64) in mm,
        the result the mean over every observed pixel (NaN in ``target`` marks an unobserved one,
        which gives no gradient), computed in float32.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if name == "mse":
        return _observed_mean(lambda p, t: torch.square(p - t))
    if name == "mae":
        return _observed_mean(lambda p, t: torch.abs(p - t))
    if name == "mse_log1p":
        return _observed_mean(lambda p, t: torch.square(torch.log1p(p.clamp_min(0.0)) - torch.log1p(t.clamp_min(0.0))))
    if name == "crps":
        return fair_crps
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def fair_crps(pred: Tensor, target: Tensor) -> Tensor:
    """Fair (ensemble-size unbiased) CRPS of members, averaged over the observed pixels.

    ``CRPS = mean_k |x_k - y| - sum_{k,l} |x_k - x_l| / (2 K (K - 1))`` at every pixel (Ferro 2014);
    its expectation is the CRPS of the distribution the members are drawn from, whatever ``K``, so
    minimising it trains a calibrated distribution, not a sharp point (Gneiting & Raftery 2007).

    Parameters
    ----------
    pred : Tensor, shape (K, B, 1, H, W)
        ``K >= 2`` members (a stochastic model's output); a 4-D ``(B, 1, H, W)`` is one member,
        whose CRPS is its absolute error.
    target : Tensor, shape (B, 1, H, W)
        Truth; NaN marks unobserved pixels (no loss, no gradient).

    Returns
    -------
    Tensor
        Scalar, float32.
    """
    p = pred.float() if pred.ndim == 5 else pred.float()[None]
    t = target.float()
    observed = ~torch.isnan(t)
    t = torch.where(observed, t, p.detach().mean(dim=0))
    k = p.shape[0]
    skill = (p - t[None]).abs().mean(dim=0)
    if k > 1:
        ordered = torch.sort(p, dim=0).values  # sum_{k,l} |x_k - x_l| = 2 sum_i (2 i - K - 1) x_(i)
        weights = (2 * torch.arange(1, k + 1, device=p.device, dtype=p.dtype) - k - 1).view(k, 1, 1, 1, 1)
        spread = (weights * ordered).sum(dim=0) / (k * (k - 1))
        skill = skill - spread
    crps = torch.where(observed, skill, torch.zeros_like(skill))
    return crps.sum() / observed.sum().clamp_min(1)


def _observed_mean(error: Callable[[Tensor, Tensor], Tensor]) -> LossFn:
    """``loss(pred, target)``: the mean of ``error`` over the pixels where ``target`` is not NaN.

    Unobserved target pixels are replaced by the (detached) prediction before ``error`` is taken,
    so they add exactly zero to the sum and to the gradient (a NaN there would poison both).
    """

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        p, t = pred.float(), target.float()
        observed = ~torch.isnan(t)
        if bool(observed.all()):
            return torch.mean(error(p, t))
        t = torch.where(observed, t, p.detach())
        return error(p, t).sum() / observed.sum().clamp_min(1)

    return loss


def epoch_lr(lr: float, epoch: int, epochs: int, schedule: str) -> float:
    """The learning rate of ``epoch`` (1-based) of ``epochs`` under ``schedule``.

    The schedules are those of :data:`harpnet_cli.registry.LR_SCHEDULES`. ``constant``: ``lr``.
    ``cosine``: ``lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2``, from ``lr`` in the first epoch
    to nearly 0 in the last, a pure function of the epoch number.
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: {', '.join(LR_SCHEDULES)}")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Parameters
    ----------
    seed : int
        Any integer; reduced modulo 2**32 for NumPy.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what we seed
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The torch RNG states as plain lists (loadable with ``weights_only=True``).

    Returns
    -------
    dict
        ``{"torch": [int, ...], "cuda": [[int, ...], ...]}`` (CUDA empty without a GPU).
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state().tolist(), "cuda": []}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned.

    Parameters
    ----------
    state : mapping
        ``{"torch": [...], "cuda": [[...], ...]}``.
    """
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])


def epoch_order(indices: np.ndarray, *, seed: int, epoch: int, chunk: int = 256, buffer_chunks: int = 4) -> np.ndarray:
    """The sample order of one epoch: chunks shuffled, then samples within buffers of chunks.

    Parameters
    ----------
    indices : (n,) array_like of int
        Store indices of the split (any order; duplicates are kept).
    seed, epoch : int
        The order is a pure function of ``(indices, seed, epoch)``.
    chunk : int
        Store chunk length along N (samples ``i`` and ``j`` share a chunk when
        ``i // chunk == j // chunk``).
    buffer_chunks : int
        Samples are shuffled within windows of this many consecutive chunks of the shuffled
        chunk order (1: chunk-local batches only; large: close to a full shuffle).

    Returns
    -------
    (n,) int64 array
        A permutation of ``indices``.
    """
    if chunk < 1 or buffer_chunks < 1:
        raise ValueError("chunk and buffer_chunks must be positive")
    idx = np.sort(np.asarray(indices, dtype=np.int64).reshape(-1))
    if len(idx) == 0:
        return idx
    rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF, 0x7A41])
    ids, starts = np.unique(idx // chunk, return_index=True)
    groups = np.split(idx, starts[1:])
    perm = rng.permutation(len(ids))
    out = []
    for w in range(0, len(perm), buffer_chunks):
        window = np.concatenate([groups[k] for k in perm[w : w + buffer_chunks]])
        out.append(window[rng.permutation(len(window))])
    return np.concatenate(out)


def rank_share(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's part of an epoch order, as ``DistributedSampler`` does it.

    The order is padded by repeating its head to a multiple of ``world_size`` and rank ``r``
    takes every ``world_size``-th sample from ``r``: all ranks get the same number of samples
    (so the same number of batches, as DDP needs), neighbours in the order stay neighbours.

    Parameters
    ----------
    order : (n,) array of int
    rank, world_size : int

    Returns
    -------
    (ceil(n / world_size),) array of int
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    if world_size == 1 or len(order) == 0:
        return np.asarray(order)
    total = -(-len(order) // world_size) * world_size
    padded = np.resize(order, total)  # repeats from the start
    return padded[rank::world_size]


def batch_slices(n: int, batch_size: int, max_batches: int | None = None) -> list[slice]:
    """Consecutive batches over ``n`` samples (the last may be short).

    Parameters
    ----------
    n, batch_size : int
    max_batches : int, optional
        Keep only the first ``max_batches`` (smoke runs).

    Returns
    -------
    list of slice
    """
    out = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    return out if max_batches is None else out[:max_batches]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    coarse: Tensor,
    static: Tensor,
    target: Tensor,
    *,
    micro_batch: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """One optimisation step on one batch, accumulating gradients over micro-batches.

    Parameters
    ----------
    model : nn.Module
        ``model(coarse, static) -> (B, 1, 64, 64)``; in ``train()`` mode.
    optimizer : torch.optim.Optimizer
    loss_fn : callable
        From :func:`get_loss`.
    coarse : Tensor, shape (B, Cc, 18, 18)
    static : Tensor, shape (B, Cs, 64, 64)
    target : Tensor, shape (B, 1, 64, 64)
        Fine amounts in mm per 3 h.
    micro_batch : int, optional
        Split the batch into pieces of at most this many samples (after a CUDA out-of-memory
        error); the gradient is that of the whole batch's mean loss.
    autocast_dtype : torch.dtype, optional
        Run the forward pass under autocast to this dtype (bf16 on CUDA).

    Returns
    -------
    float
        The batch's mean loss.
    """
    n = coarse.shape[0]
    step = n if micro_batch is None else max(1, micro_batch)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for s in range(0, n, step):
        part = slice(s, min(s + step, n))
        with _autocast(coarse.device.type, autocast_dtype):
            pred = model(coarse[part], static[part])
        loss = loss_fn(pred, target[part])
        weight = (part.stop - part.start) / n
        (loss * weight).backward()
        total += float(loss.detach()) * weight
    optimizer.step()
    return total


class AdaptiveStep:
    """:func:`train_step` that halves its micro-batch after a CUDA out-of-memory error, and keeps it.

    The batch that ran out of memory is retried at once in micro-batches of half the size (its
    gradient is the same, see :func:`train_step`); later batches start from the reduced size.

    Parameters
    ----------
    on_halve : callable, optional
        Called as ``on_halve(micro_batch, batch_size)`` after every halving (e.g. to warn).

    Attributes
    ----------
    micro_batch : int or None
        The micro-batch size in use; None (the whole batch) until the first out-of-memory error.
    """

    def __init__(self, on_halve: Callable[[int, int], None] | None = None) -> None:
        self.micro_batch: int | None = None
        self.on_halve = on_halve

    def __call__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        coarse: Tensor,
        static: Tensor,
        target: Tensor,
        *,
        autocast_dtype: torch.dtype | None = None,
    ) -> float:
        """One optimisation step on one batch (shapes as :func:`train_step`); the batch's mean loss.

        Raises
        ------
        torch.cuda.OutOfMemoryError
            If even a micro-batch of one sample does not fit.
        """
        while True:
            try:
                return train_step(model, optimizer, loss_fn, coarse, static, target, micro_batch=self.micro_batch,
                                  autocast_dtype=autocast_dtype)
            except torch.cuda.OutOfMemoryError:
                current = self.micro_batch or coarse.shape[0]
                if current <= 1:
                    raise
                self.micro_batch = current // 2
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                if self.on_halve is not None:
                    self.on_halve(self.micro_batch, coarse.shape[0])


def _autocast(device_type: str, dtype: torch.dtype | None) -> Any:
    """An autocast context for ``dtype``, or a disabled one for None."""
    return torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[tuple[Tensor, Tensor, Tensor]],
    *,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, int]:
    """Summed loss over batches, weighted by batch size (``model`` in ``eval()`` mode).

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
    batches : iterable of (coarse (B, Cc, 18, 18), static (B, Cs, 64, 64), target (B, 1, 64, 64))
    autocast_dtype : torch.dtype, optional

    Returns
    -------
    loss_sum : float
        Sum over batches of ``batch mean loss * B``.
    count : int
        Samples seen; ``loss_sum / count`` is the mean loss.
    """
    was_training = model.training
    model.eval()
    loss_sum, count = 0.0, 0
    try:
        for coarse, static, target in batches:
            with _autocast(coarse.device.type, autocast_dtype):
                pred = model(coarse, static)
            loss_sum += float(loss_fn(pred, target)) * coarse.shape[0]
            count += coarse.shape[0]
    finally:
        model.train(was_training)
    return loss_sum, count


def state_dict_digest(model: nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and bytes), for equality checks.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    str
        64 hex digits; equal digests mean bit-identical weights and buffers.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
