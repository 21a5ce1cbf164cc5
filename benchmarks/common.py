"""Helpers shared by the benchmark scripts: the machine, the load, CPU-bound neighbours, JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
#: The bundled default model.
DEFAULT_MODEL = REPO / "harpnet_cli" / "assets" / "default" / "model.pt"
#: The real GFS file the figures use (never copied into the repository).
REAL_GFS = REPO.parent / "shared" / "data" / "real" / "gfs.20200325.t18z.pgrb2.0p25.f006"
#: A CPU-bound neighbour: one core spinning in pure Python.
SPIN = "while True: pass"


def machine() -> dict[str, Any]:
    """The host: CPU model, flags that matter (AVX2, AVX-512, bf16, AMX), cores, versions, load."""
    from harpnet_cli import __version__
    from harpnet_cli.devices import cpu_flags, native_bf16, usable_cpu_count

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")) or "bf16" in f)
    return {"platform": platform.platform(), "cpu": cpu, "cpu_flags": flags, "native_bf16": native_bf16(),
            "cores": usable_cpu_count(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "harpnet_version": __version__, "load_average": load()}


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def summary(values: list[float]) -> dict[str, float]:
    """Median, best (smallest) and worst of timings."""
    return {"median": statistics.median(values), "best": min(values), "worst": max(values), "n": len(values)}


@contextlib.contextmanager
def neighbours(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run ``count`` CPU-bound neighbour processes for the block (a busy host), then stop them."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0.0)
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def write_json(name: str, report: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with a timestamp) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **report}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return path


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
