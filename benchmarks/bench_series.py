"""Cost per step and per member as runs grow: the 16-day GFS series and a GEFS-like 31-member step.

Both as fresh ``harpnet -q downscale … --domain conus --json`` processes (one call each), with
their wall clock and peak resident memory:

* **series**: GFS-like 0.25° GRIB2 files f003, f006, … (a 6-hour bucket and, from f006, the
  running total, as GFS writes them) over a box around CONUS, the first N of them in one call
  writing one NetCDF, for N in ``--steps`` (default 16 and 128 = f003…f384, a 16-day run). The
  cost of a step is the slope between the sizes; memory must not grow with N;
* **members**: one GEFS-like 0.5° f003 file with ``perturbationNumber`` 1…M (template 4.11), for M
  in ``--members`` (default 1, 8 and 31), each member downscaled: the cost of a member-step and
  the memory as M grows.

Writes ``benchmarks/results/series.json``.

Usage::

    python benchmarks/bench_series.py
    python benchmarks/bench_series.py --steps 8 32 --members 1 4     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, REPO, load, machine, write_json  # noqa: E402

#: A box around CONUS (south, north, west, east), 141 x 281 points at 0.25°.
BOX = (20.0, 55.0, -130.0, -60.0)
#: Print a child's peak memory after it ends (ru_maxrss of the waited-for children, KiB on Linux).
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def measured(inputs: list[Path], out: Path, model: Path, threads: int) -> dict[str, Any]:
    """One fresh ``harpnet downscale`` process: wall clock, peak RSS and its JSON summary."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", PEAK, sys.executable, "-m", "harpnet_cli", "-q", "downscale", *map(str, inputs),
           "-o", str(out), "--domain", "conus", "--json", "--overwrite", "-m", str(model), "--threads", str(threads)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = res.stdout.strip().splitlines()
    summary = json.loads(lines[-2])
    return {"wall_s": wall, "peak_rss_mib": int(lines[-1]) / 1024, "workflow_s": summary["seconds"],
            "steps": summary["steps"], "members": summary["members"], "output_bytes": out.stat().st_size,
            "mass_ratio": summary["mass_ratio"]}


def series(tmp: Path, sizes: list[int], model: Path, threads: int) -> dict[str, Any]:
    """The first N files of a GFS run in one call, for each N."""
    from harpnet_cli.testing.fixtures import box_axes, synthetic_hourly, write_gfs_sequence

    lat, lon = box_axes(BOX)
    hours = list(range(3, 3 * max(sizes) + 1, 3))
    t0 = time.perf_counter()
    files = write_gfs_sequence(tmp / "gfs", synthetic_hourly(max(hours), lat.size, lon.size, seed=2), hours, box=BOX)
    made = time.perf_counter() - t0
    runs = {n: measured(files[:n], tmp / f"series{n}.nc", model, threads) for n in sizes}
    a, b = min(sizes), max(sizes)
    slope = (runs[b]["wall_s"] - runs[a]["wall_s"]) / (b - a)
    return {"sizes": sizes, "runs": {str(n): r for n, r in runs.items()}, "fixture_write_s": made,
            "seconds_per_step": {str(n): r["wall_s"] / n for n, r in runs.items()},
            "marginal_seconds_per_step": slope,
            "peak_rss_growth_mib": runs[b]["peak_rss_mib"] - runs[a]["peak_rss_mib"],
            "input_bytes": sum(f.stat().st_size for f in files)}


def members(tmp: Path, counts: list[int], model: Path, threads: int) -> dict[str, Any]:
    """A GEFS-like 0.5° f003 with M members, for each M."""
    from harpnet_cli.testing.fixtures import box_axes, synthetic_hourly, write_gfs_grib

    lat, lon = box_axes(BOX, 0.5)
    hourly = synthetic_hourly(3, lat.size, lon.size, seed=3, members=max(counts))
    runs = {}
    for m in counts:
        path = write_gfs_grib(tmp / f"gefs{m}.t18z.pgrb2a.0p50.f003", hourly[:m], [(0, 3)], box=BOX,
                              perturbation_numbers=list(range(1, m + 1)), step=0.5)
        runs[m] = measured([path], tmp / f"members{m}.nc", model, threads)
    a, b = min(counts), max(counts)
    return {"counts": counts, "runs": {str(m): r for m, r in runs.items()},
            "seconds_per_member": {str(m): r["wall_s"] / m for m, r in runs.items()},
            "marginal_seconds_per_member": (runs[b]["wall_s"] - runs[a]["wall_s"]) / (b - a),
            "peak_rss_growth_mib": runs[b]["peak_rss_mib"] - runs[a]["peak_rss_mib"]}


def main() -> None:
    """Run both and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8, 31])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    before = load()
    with tempfile.TemporaryDirectory(prefix="bench_series_") as tmpdir:
        tmp = Path(tmpdir)
        report: dict[str, Any] = {"machine": machine(), "threads": args.threads, "model": str(args.model)}
        report["series"] = series(tmp, sorted(args.steps), args.model, args.threads)
        report["members"] = members(tmp, sorted(args.members), args.model, args.threads)
    report["load_before_after"] = [before, load()]
    print_report(report)
    print(f"wrote {write_json('series', report)}")


def print_report(r: dict[str, Any]) -> None:
    """The figures as text."""
    print(f"fresh processes, CONUS, {r['threads']} threads; load {r['load_before_after']}")
    s = r["series"]
    for n, run in s["runs"].items():
        print(f"  series of {n:>3} steps: {run['wall_s']:6.1f} s ({s['seconds_per_step'][n]:.2f} s/step), "
              f"peak RSS {run['peak_rss_mib']:.0f} MiB")
    print(f"  marginal cost {s['marginal_seconds_per_step']:.2f} s/step; "
          f"memory growth {s['peak_rss_growth_mib']:+.0f} MiB")
    m = r["members"]
    for n, run in m["runs"].items():
        print(f"  {n:>2} member(s): {run['wall_s']:6.1f} s ({m['seconds_per_member'][n]:.2f} s/member), "
              f"peak RSS {run['peak_rss_mib']:.0f} MiB")
    print(f"  marginal cost {m['marginal_seconds_per_member']:.2f} s/member; "
          f"memory growth {m['peak_rss_growth_mib']:+.0f} MiB")


if __name__ == "__main__":
    main()
