"""``harpnet prepare`` at CONUS404 size: hours processed per second and peak memory, 1x and 10x.

Usage::

    python benchmarks/bench_prepare.py [--hours 12] [--scale 10] [--workers 1] [--keep DIR]

Writes ``--hours`` and ``--scale x --hours`` hourly files in CONUS404's layout and size
(1015 x 1367 Lambert conformal, 4 km, ``PREC_ACC_NC``, one time per file; smooth random
precipitation), runs ``harpnet -q prepare FILES -o STORE --domain conus`` on each set in its own
process, and reports wall time, hours per second (scan included) and the peak resident memory of
that process. Memory that does not grow from 1x to 10x is what streaming means. Prints a table and
writes ``benchmarks/results/prepare.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NY, NX = 1015, 1367  # CONUS404's mass grid


def smooth_rain(rng: np.random.Generator) -> np.ndarray:
    """A CONUS404-size hourly field: smooth, intermittent, mm."""
    from scipy import ndimage

    small = ndimage.gaussian_filter(rng.normal(size=(NY // 8 + 1, NX // 8 + 1)), 3)
    big = np.kron(small, np.ones((8, 8)))[:NY, :NX]
    return np.maximum(big * 8 - 2, 0).astype(np.float32)


def write_hours(directory: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` hourly CONUS404-layout files from 2010-07-01 01Z."""
    from harpnet_cli.testing.fixtures import write_conus404_hourly

    rng = np.random.default_rng(seed)
    first = datetime(2010, 7, 1, 1)
    paths = []
    for k in range(n):
        paths += write_conus404_hourly(directory, smooth_rain(rng)[None], first + timedelta(hours=k),
                                       simulation_start=datetime(2009, 10, 1))
    return paths


def run_prepare(files: list[Path], store: Path, workers: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``harpnet prepare`` process."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
    )
    cmd = [sys.executable, "-m", "harpnet_cli", "-q", "prepare", *map(str, files), "-o", str(store),
           "--domain", "conus", "--workers", str(workers)]
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    seconds, rss_kib, rc = out.stdout.split()[-3:]
    if rc != "0":
        raise SystemExit(f"prepare failed: {out.stderr}")
    return float(seconds), int(rss_kib) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=12)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the files and stores here")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    results = []
    try:
        for hours in (args.hours, args.hours * args.scale):
            t = time.perf_counter()
            files = write_hours(work / f"h{hours}", hours)
            t_write = time.perf_counter() - t
            store = work / f"store{hours}.zarr"
            seconds, rss = run_prepare(files, store, args.workers)
            from harpnet_cli.io.store import TrainingStore

            s = TrainingStore.open(store)
            row = {"hours": hours, "windows": len(s.done_units()), "samples": len(s), "seconds": seconds,
                   "hours_per_s": hours / seconds, "peak_rss_mib": rss, "write_inputs_s": t_write,
                   "workers": args.workers, "grid": f"{NY}x{NX} Lambert 4 km -> conus 416x960"}
            results.append(row)
            print(f"{hours:5d} h  {row['windows']:4d} windows  {row['samples']:6d} samples  {seconds:7.1f} s  "
                  f"{row['hours_per_s']:6.2f} h/s  peak RSS {rss:7.0f} MiB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        growth = results[1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
        print(f"peak RSS {args.scale}x input / 1x input: {growth:.2f}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
