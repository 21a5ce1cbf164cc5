"""This process's place in a ``torchrun`` job and the few collective operations training needs.

Outside ``torchrun`` (no ``RANK``/``WORLD_SIZE`` in the environment) the process is rank 0 of 1
and every helper is the identity or a no-op, so the training workflow reads the same either way.
Under it, the process group uses nccl on CUDA and gloo otherwise; rank 0 writes and reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


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


def select_device(requested: str, threads: int | None, dist_env: DistEnv) -> tuple[torch.device, int]:
    """The device (the local rank's GPU under DDP) and the CPU threads of this process.

    Parameters
    ----------
    requested : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see :func:`harpnet_cli.devices.select_device`).
    threads : int or None
        CPU threads; None divides the usable cores among the local ranks.
    dist_env : DistEnv

    Returns
    -------
    (torch.device, int)
        The device and the number of CPU threads set.
    """
    import torch

    from harpnet_cli.devices import configure_cpu_threads, select_device, usable_cpu_count

    device = select_device(requested)
    if device.type == "cuda" and dist_env.distributed:
        device = torch.device("cuda", dist_env.local_rank)
        torch.cuda.set_device(device)
    n = threads or max(1, usable_cpu_count() // max(1, dist_env.local_world_size))
    return device, configure_cpu_threads(n)


def setup_process_group(dist_env: DistEnv, device: torch.device) -> None:
    """Join the torchrun job: nccl on CUDA, gloo otherwise (nothing in a single process)."""
    import torch.distributed as dist

    if dist_env.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def close_process_group(dist_env: DistEnv) -> None:
    """Leave the torchrun job, if this process joined one."""
    if dist_env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(dist_env: DistEnv) -> None:
    """Wait for every rank (nothing in a single process)."""
    if dist_env.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_sum(values: list[float], dist_env: DistEnv) -> list[float]:
    """Sum a few floats over the ranks (identity in a single process)."""
    if not dist_env.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def sync_buffers(model: torch.nn.Module, dist_env: DistEnv) -> None:
    """Broadcast BatchNorm running statistics from rank 0 so every rank holds the same state."""
    if not dist_env.distributed:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf.data, 0)


def rank_digests(model: torch.nn.Module, dist_env: DistEnv) -> list[str]:
    """The state-dict SHA-256 of every rank, in rank order (one in a single process)."""
    from harpnet_cli.core.training import state_dict_digest

    digest = state_dict_digest(model)
    if not dist_env.distributed:
        return [digest]
    import torch.distributed as dist

    out: list[Any] = [None] * dist_env.world_size
    dist.all_gather_object(out, digest)
    return [str(d) for d in out]


def wrap_model(model: torch.nn.Module, dist_env: DistEnv, device: torch.device) -> Any:
    """The model in DistributedDataParallel under torchrun (CUDA: on this rank's GPU), else itself."""
    if not dist_env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
