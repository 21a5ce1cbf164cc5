"""Stream training batches from a :class:`~harpnet_cli.io.store.TrainingStore` as tensors.

The order of samples comes from outside (:func:`harpnet_cli.core.training.epoch_order`, already
cut to this rank's share); this module only reads it in batches: in the calling process, or in
``workers`` DataLoader processes that each open the store themselves and take every
``workers``-th batch (the DataLoader returns them round-robin, so the order is kept). Memory
holds about ``2 * workers + 1`` batches at a time.

It joins the store (``io``) and the augmentation (``core``) for the train and evaluate workflows,
so it lives in ``workflows/``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from harpnet_cli.core.augment import augment_batch, draw_codes
from harpnet_cli.errors import InputDataError
from harpnet_cli.registry import EXTRA_INPUTS, VECTOR_INPUTS

Batch = tuple[Tensor, Tensor, Tensor]


def state_columns(state_names: Sequence[str], extra_inputs: Sequence[str], where: Path | str) -> list[int]:
    """Columns of the store's ``state`` array that the extra coarse inputs need, in order.

    Parameters
    ----------
    state_names : sequence of str
        The store's ``state_names``.
    extra_inputs : sequence of str
        Keys of :data:`EXTRA_INPUTS` (e.g. ``["wind"]``).
    where : Path or str
        The store, named in errors.

    Returns
    -------
    list of int

    Raises
    ------
    InputDataError
        If the store lacks a needed state column.
    """
    cols = []
    for extra in extra_inputs:
        for name in EXTRA_INPUTS[extra]:
            if name not in state_names:
                have = ", ".join(state_names) or "no state columns"
                raise InputDataError(where, f"--extra-inputs {extra} needs state {name!r}, the store has {have}")
            cols.append(list(state_names).index(name))
    return cols


def vector_channels(extra_inputs: Sequence[str]) -> list[tuple[int, int]]:
    """Coarse channels (after precipitation, channel 0) of the vector extra inputs, as (east, north) pairs."""
    out, at = [], 1
    for extra in extra_inputs:
        if extra in VECTOR_INPUTS:
            out.append((at, at + 1))
        at += len(EXTRA_INPUTS[extra])
    return out


def to_tensors(sample: dict[str, np.ndarray], columns: Sequence[int]) -> Batch:
    """Model inputs and target from :meth:`TrainingStore.read` output.

    Parameters
    ----------
    sample : dict
        ``coarse`` (B, Cc, 18, 18), ``fine`` (B, 1, 64, 64), ``terrain`` (B, 1, 64, 64),
        ``state`` (B, S).
    columns : sequence of int
        State columns appended as coarse channels, each broadcast over the 18 x 18 tile.

    Returns
    -------
    coarse : Tensor, shape (B, 1 + len(columns), 18, 18)
        Precipitation (store channel 0) then the state channels.
    static : Tensor, shape (B, 1, 64, 64)
        Terrain height (m).
    target : Tensor, shape (B, 1, 64, 64)
        Fine amounts (mm per 3 h).
    """
    precip = np.asarray(sample["coarse"][:, :1], dtype=np.float32)
    if columns:
        state = np.asarray(sample["state"], dtype=np.float32)[:, list(columns)]
        extra = np.broadcast_to(state[:, :, None, None], (len(state), len(columns), *precip.shape[2:]))
        precip = np.concatenate([precip, extra], axis=1)
    return (
        torch.from_numpy(np.ascontiguousarray(precip)),
        torch.from_numpy(np.ascontiguousarray(sample["terrain"], dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(sample["fine"], dtype=np.float32)),
    )


@dataclass(frozen=True)
class NoiseSpec:
    """The noise a stochastic model's training batches carry (see :mod:`harpnet_cli.core.noise`).

    Attributes
    ----------
    members : int
        Members ``K`` drawn per sample.
    scales : tuple of float
        The model's ``noise_scales``.
    seed : tuple of int
        Seed of the draws: batch ``k`` draws from ``(*seed, k)``, store row ``r`` alone from ``(*seed, r)``.
    """

    members: int
    scales: tuple[float, ...]
    seed: tuple[int, ...]

    def tensor(self, n: int, shape: tuple[int, ...], k: int) -> Tensor:
        """``(n, K J, H, W)`` noise for the ``n`` samples of batch ``k``."""
        from harpnet_cli.core.noise import draw_batch_noise

        return torch.from_numpy(draw_batch_noise(n, self.members, self.scales, (int(shape[0]), int(shape[1])),
                                                 [*self.seed, k]))

    def for_rows(self, rows: np.ndarray, shape: tuple[int, ...]) -> Tensor:
        """``(n, K J, H, W)`` noise for store rows ``rows``: each row's own draw, whatever the batching."""
        from harpnet_cli.core.noise import draw_noise

        h, w = int(shape[0]), int(shape[1])
        fields = [draw_noise((h, w), self.members, self.scales, [*self.seed, int(r)]) for r in rows]
        return torch.from_numpy(np.stack(fields))


class BatchSequence(IterableDataset[Batch]):
    """Numbered batches ``0 .. n_batches - 1``; DataLoader workers take every ``num_workers``-th."""

    n_batches: int

    def __len__(self) -> int:
        return self.n_batches

    def batch(self, k: int) -> Batch:
        """Batch ``k`` as (coarse, static, target) tensors."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)
        for k in range(first, self.n_batches, step):
            yield self.batch(k)


class StoreBatches(BatchSequence):
    """Batches of a fixed sample order read from a store (an ``IterableDataset`` of whole batches).

    Parameters
    ----------
    store : Path
        The training store; opened lazily in each process that iterates.
    order : (n,) array of int
        Store indices in the order to read them.
    batch_size : int
    columns : sequence of int
        State columns added as coarse channels (see :func:`to_tensors`).
    max_batches : int, optional
        Stop after this many batches.
    augment_seed : sequence of int, optional
        Turn each sample by a random symmetry of the tile (:mod:`harpnet_cli.core.augment`),
        drawn from a generator seeded with ``(*augment_seed, k)`` for batch ``k``: the same in
        any worker and after a resume.
    vectors : sequence of (int, int)
        Coarse channels holding (eastward, northward) vector components, turned with the tile.
    noise : NoiseSpec, optional
        For a stochastic model: append the noise of ``noise.members`` members to the static
        channels of every sample, drawn from ``(*noise.seed, k, i)`` for sample ``i`` of batch ``k``.
    """

    def __init__(
        self,
        store: Path,
        order: np.ndarray,
        batch_size: int,
        columns: Sequence[int] = (),
        max_batches: int | None = None,
        augment_seed: Sequence[int] | None = None,
        vectors: Sequence[tuple[int, int]] = (),
        noise: NoiseSpec | None = None,
    ) -> None:
        super().__init__()
        self.store_path = Path(store)
        self.order = np.asarray(order, dtype=np.int64)
        self.batch_size = batch_size
        self.columns = list(columns)
        n = -(-len(self.order) // batch_size)
        self.n_batches = n if max_batches is None else min(n, max_batches)
        self.augment_seed = None if augment_seed is None else [int(v) & 0xFFFFFFFF for v in augment_seed]
        self.vectors = [(int(u), int(v)) for u, v in vectors]
        self.noise = noise
        self._store: Any = None

    def _open(self) -> Any:
        """The store, opened once per process."""
        if self._store is None:
            from harpnet_cli.io.store import TrainingStore

            self._store = TrainingStore.open(self.store_path)
        return self._store

    def batch(self, k: int) -> Batch:
        """Batch ``k`` as (coarse, static, target) tensors (see :func:`to_tensors`)."""
        rows = self.order[k * self.batch_size : (k + 1) * self.batch_size]
        batch = to_tensors(self._open().read(rows), self.columns)
        if self.noise is not None:
            coarse, static, target = batch
            batch = coarse, torch.cat([static, self.noise.tensor(len(rows), static.shape[-2:], k)], dim=1), target
        if self.augment_seed is None:
            return batch
        codes = draw_codes(len(rows), [*self.augment_seed, k])
        return augment_batch(*batch, codes, self.vectors)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None  # each worker opens its own handle
        return state


class MixedBatches(BatchSequence):
    """The batches of several :class:`StoreBatches`, interleaved in a fixed, seeded order.

    Each part's batches keep their order; only which part comes next is drawn. Each batch comes
    from one store, so stores whose coarse inputs differ in scale keep their own
    batch statistics; the interleaving spreads every store's batches over the whole epoch.

    Parameters
    ----------
    parts : sequence of StoreBatches
        Built with the same ``columns``, from stores of the same tile geometry.
    seed : int
        Seeds the interleaving (a pure function of ``seed`` and the parts' lengths).
    """

    def __init__(self, parts: Sequence[StoreBatches], seed: int) -> None:
        super().__init__()
        self.parts = list(parts)
        which = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(self.parts)])
        which = np.random.default_rng([seed & 0xFFFFFFFF, 0x313C]).permutation(which)
        rank = np.zeros_like(which)  # each part's batches keep their order (chunk-local reads)
        for i in range(len(self.parts)):
            rank[which == i] = np.arange(int((which == i).sum()))
        self.schedule = np.stack([which, rank], axis=1)
        self.n_batches = len(self.schedule)

    def batch(self, k: int) -> Batch:
        """Batch ``k`` of the interleaved order."""
        part, j = self.schedule[k]
        return self.parts[int(part)].batch(int(j))


def iterate_batches(dataset: BatchSequence, workers: int = 0, seed: int = 0) -> Iterator[Batch]:
    """Iterate a :class:`StoreBatches` or :class:`MixedBatches` in order, here or in ``workers`` processes.

    Parameters
    ----------
    dataset : BatchSequence
    workers : int
        DataLoader worker processes; 0 reads in the calling process.
    seed : int
        Seeds the DataLoader's own generator so that the global torch RNG is left untouched
        (resumed runs must draw the same dropout masks as uninterrupted ones).

    Yields
    ------
    (coarse, static, target) tensors
    """
    if workers <= 0 or dataset.n_batches <= 1:
        for k in range(dataset.n_batches):
            yield dataset.batch(k)
        return
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=min(workers, dataset.n_batches),
        prefetch_factor=2,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    yield from loader
