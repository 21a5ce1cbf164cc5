"""Hardware selection: the compute device, the CPU thread count and policy, native bfloat16.

torch is imported inside the functions, never at module level, so the CLI can import this module
(e.g. for ``harpnet --help``) without loading torch.

**Busy hosts.** By default the OpenMP threads of torch's CPU kernels spin while they wait for
each other. On a machine where other jobs run, a spinning thread takes the core from the thread
it waits for: measured on 2 cores beside a CPU-bound neighbour, 2 threads ran several times
slower than 1 (``benchmarks/bench_threads.py``). :func:`prefer_passive_waiting` therefore asks
OpenMP to sleep instead (``OMP_WAIT_POLICY=PASSIVE``, unless the variable is set already); it
must run before torch is first imported, which is why ``import harpnet_cli`` calls it.
With waiting threads asleep, all usable cores beat fewer even on a loaded host (the scheduler
gives two runnable threads more of the machine than one), so :func:`configure_cpu_threads` keeps
using every usable core.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from harpnet_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("harpnet")

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_SYSFS_CPU = Path("/sys/devices/system/cpu")
_CPUINFO = Path("/proc/cpuinfo")

#: OpenMP wait policy set by :func:`prefer_passive_waiting` (when the environment sets none).
WAIT_POLICY = "PASSIVE"
#: CPU flags of native bfloat16 arithmetic: x86 AVX-512 BF16 and AMX, Arm BF16.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def prefer_passive_waiting() -> bool:
    """Make OpenMP threads sleep, not spin, while they wait (``OMP_WAIT_POLICY=PASSIVE``).

    Only when the environment does not set ``OMP_WAIT_POLICY`` and torch is not imported yet
    (OpenMP reads the variable when torch loads it).

    Returns
    -------
    bool
        Whether the variable was set here.
    """
    import sys

    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True


def cpu_flags(path: Path = _CPUINFO) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on Arm); empty elsewhere."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def native_bf16(path: Path = _CPUINFO) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16, AMX or Arm BF16).

    Without it torch emulates bfloat16 and ``--bf16`` runs the model about 10 times slower
    (measured on an AVX2-only AMD EPYC), so the CPU path runs float32 instead.
    """
    return bool(cpu_flags(path) & set(BF16_FLAGS))


def _mps_available() -> bool:
    """Whether Apple MPS is usable (False on builds without the backend)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _describe(device: torch.device) -> str:
    """Device name for the log, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (2 threads)``."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{device} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def select_device(name: str = "auto") -> torch.device:
    """Choose the device to run on and log the choice.

    Parameters
    ----------
    name : str
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``;
        case and surrounding blanks are ignored.

    Returns
    -------
    torch.device

    Raises
    ------
    UsageError
        For an unknown name, or a device this machine does not have.
    """
    import torch

    text = name.strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if text == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif _mps_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    elif text.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UsageError(f"device {text!r} asked for, but {why}; use --device cpu or auto")
        index = match.group(2)
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise UsageError(f"device {text!r} asked for, but only {count} CUDA device(s) are visible")
        device = torch.device(text)
    elif text == "mps":
        if not _mps_available():
            raise UsageError("device 'mps' asked for, but Apple MPS is not available; use --device cpu")
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    logger.info("Inference device: %s", _describe(device))
    return device


#: Files whose presence means a GPU driver is loaded (NVIDIA, AMD ROCm).
_GPU_MARKERS = (Path("/proc/driver/nvidia/version"), Path("/dev/nvidiactl"), Path("/dev/kfd"))


def accelerator_possible(markers: tuple[Path, ...] = _GPU_MARKERS) -> bool:
    """Whether ``--device auto`` could pick a GPU here, answered without importing torch.

    False only when it certainly cannot: the installed torch is a CPU build (its version ends in
    ``+cpu``), or no GPU driver is loaded and the machine is not an Apple Silicon Mac (MPS).
    Otherwise :func:`select_device` must ask torch.
    """
    import platform
    import sys
    from importlib import metadata

    try:
        if metadata.version("torch").endswith("+cpu"):
            return False
    except metadata.PackageNotFoundError:
        return False
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True
    return any(marker.exists() for marker in markers)


def cpu_threads(n: int | None = None) -> int:
    """The CPU thread count to use: ``n``, else :func:`usable_cpu_count` (checked, torch untouched).

    Raises
    ------
    UsageError
        If ``n`` is less than 1.
    """
    if n is not None and n < 1:
        raise UsageError(f"--threads must be at least 1, got {n}")
    return usable_cpu_count() if n is None else n


def spinning_allowed() -> bool:
    """Whether waiting threads may spin: only when ``OMP_WAIT_POLICY`` is set to ``ACTIVE``.

    The same choice as :func:`prefer_passive_waiting` for torch, for runtimes that take it as an
    option (ONNX Runtime).
    """
    return os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY).strip().upper() == "ACTIVE"


def _cgroup_cpu_limit(root: Path = _CGROUP_ROOT) -> float | None:
    """CPU quota of this process's cgroup in cores (v2 ``cpu.max`` or v1 CFS), if any."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _physical_cores(cpus: set[int], root: Path = _SYSFS_CPU) -> int | None:
    """Distinct physical cores among logical CPUs (SMT siblings counted once), if sysfs says."""
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = root / f"cpu{cpu}" / "topology"
        try:
            package = (topo / "physical_package_id").read_text().strip()
            cores.add((package, (topo / "core_id").read_text().strip()))
        except OSError:
            return None
    return len(cores) or None


def usable_cpu_count() -> int:
    """Physical cores this process may use.

    The CPU affinity mask, with hyperthread siblings counted once (compute-bound convolutions
    gain little from SMT), capped by the cgroup CPU quota.

    Returns
    -------
    int
        At least 1.
    """
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        cpus = set(range(os.cpu_count() or 1))
    cores = _physical_cores(cpus) or len(cpus)
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def configure_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count.

    Parameters
    ----------
    n : int, optional
        Threads to use; by default :func:`usable_cpu_count` (affinity and cgroup quota, not the
        host's logical CPU count). On a busy host all of them still beat fewer once waiting
        threads sleep (:func:`prefer_passive_waiting`; ``benchmarks/bench_threads.py``).

    Returns
    -------
    int
        The number of threads set.

    Raises
    ------
    UsageError
        If ``n`` is less than 1.
    """
    import torch

    threads = cpu_threads(n)
    torch.set_num_threads(threads)
    logger.debug("torch CPU threads: %d", threads)
    return threads
