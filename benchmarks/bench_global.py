"""The whole globe at 0.0625°: one step of the real GFS 0.25° file, ``--domain global``.

2876 x 5760 fine cells, 41 times the CONUS area, periodic in longitude. In a worker process
(``--threads``, default 2) the step runs ``--repeats`` times with the bundled model; the first run
warms the process (model load, oneDNN kernels, terrain cache), the others are the **warm** figure
(target ≤ 10 s), with the peak resident memory of that process (target ≤ 4 GiB) and a breakdown by
stage. Also:

* the same step as a **fresh process** (``harpnet -q downscale … --domain global``): wall clock
  and peak memory;
* with ``--compare-native``, the step on the model's own 64 x 64 tiles instead of the tiles
  :func:`harpnet_cli.core.tiling.choose_tile` picks: time, and the output change (mean and
  largest absolute difference, mm) that the larger tiles make on a real field;
* **seams**: the jump across the date line and across the tile edges, each over the jump across
  other coarse-cell boundaries (1 = no seam), and the rows beside the poles;
* with ``--vs-torch``, the same warm runs on the torch backend (``--backend torch``) in their own
  worker: its time, the ratio, and the output change between the two runtimes.

Writes ``benchmarks/results/global.json``.

Usage::

    python benchmarks/bench_global.py                     # 3 runs in one process + a fresh process
    python benchmarks/bench_global.py --compare-native    # + the 64-tile run and the output change
    python benchmarks/bench_global.py --vs-torch          # + the torch backend, ratio and output change
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, REAL_GFS, REPO, load, machine, summary, write_json  # noqa: E402

TARGET_S = 10.0
TARGET_GIB = 4.0


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """In this process: the global step ``repeats`` times (first = warm-up), timed by stage."""
    from harpnet_cli.config import DownscaleConfig
    from harpnet_cli.core import tiling
    from harpnet_cli.workflows import downscale
    from harpnet_cli.workflows.reporting import NullReporter

    if args.native_tiles:  # the model's own 64 x 64 tiles, overlapping by 16
        tiling.choose_tile = lambda shape, *, native, **kw: (native, 16)  # type: ignore[assignment]
    spans: dict[str, float] = {}

    def timer(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spans[label] = spans.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)

    timer(downscale._ModelRunner, "step", "model (fill, tiles, network, stitch, conserve)")
    timer(downscale.StepDownscaler, "coarse", "read and remap the field")
    from harpnet_cli.io.outputs import OutputWriter

    timer(OutputWriter, "add", "write NetCDF")
    timer(downscale.StepDownscaler, "prepare", "set-up (model, grid, tiles, terrain)")
    out = Path(args.out)
    runs = []
    for _ in range(args.repeats):
        spans.clear()
        cfg = DownscaleConfig(inputs=[args.input], output=out, model=args.model, domain="global", overwrite=True,
                              threads=args.threads, backend=args.backend)
        t0 = time.perf_counter()
        res = downscale.run_downscale(cfg, NullReporter())
        runs.append({"wall_s": time.perf_counter() - t0, "stages_s": dict(spans), "mass_ratio": res.mass_ratio})
    engine_tiles = _tiles(args)
    return {"runs": runs, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tiles": engine_tiles, "output_bytes": out.stat().st_size}


def _tiles(args: argparse.Namespace) -> dict[str, Any]:
    """The tile layout the run used."""
    from harpnet_cli.core.tiling import Patcher, choose_tile
    from harpnet_cli.grids import GridSpec

    spec = GridSpec.from_domain("global")
    tile, overlap = (64, 16) if args.native_tiles else choose_tile(spec.fine_shape, native=64, multiple=16,
                                                                   periodic=True)
    p = Patcher(spec.coarse_shape, tile=tile, overlap=overlap, periodic=True)
    return {"tile": tile, "overlap": overlap, "tiles": len(p),
            "computed_pixels_over_domain": len(p) * tile**2 / (spec.fine_shape[0] * spec.fine_shape[1])}


def run_worker(args: argparse.Namespace, out: Path, native: bool = False, backend: str | None = None) -> dict[str, Any]:
    """A worker subprocess (fresh, so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--worker", "--input", str(args.input), "--model", str(args.model),
           "--repeats", str(args.repeats), "--threads", str(args.threads), "--out", str(out),
           "--backend", backend or args.backend]
    if native:
        cmd.append("--native-tiles")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def fresh_process(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """``harpnet -q downscale … --domain global`` as a fresh process: wall clock and peak memory."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "harpnet_cli", "-q", "downscale", str(args.input), "-o", str(out), "--domain",
           "global", "--overwrite", "-m", str(args.model), "--threads", str(args.threads), "--backend", args.backend]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "peak_rss_mib": max(peak, before) / 1024}


def seams(path: Path) -> dict[str, float]:
    """Jumps across the date line and tile edges over jumps across other coarse-cell boundaries."""
    import netCDF4

    from harpnet_cli.core.tiling import Patcher, choose_tile
    from harpnet_cli.grids import GridSpec

    with netCDF4.Dataset(path) as nc:
        field = np.ma.filled(nc["precipitation_amount"][0], np.nan).astype(np.float64)
    spec = GridSpec.from_domain("global")
    tile, overlap = choose_tile(spec.fine_shape, native=64, multiple=16, periodic=True)
    p = Patcher(spec.coarse_shape, tile=tile, overlap=overlap, periodic=True)
    h, w = field.shape
    dx = np.abs(np.diff(field, axis=1))
    edges = sorted({(t.x0 + e) % w for t in p.tiles for e in (0, tile)} - {0})
    others = [c for c in range(4, w, 4) if c not in edges]
    interior = float(np.nanmean(dx[:, [c - 1 for c in others]]))
    wrap = float(np.nanmean(np.abs(field[:, 0] - field[:, -1])))
    tile_edges = float(np.nanmean(dx[:, [c - 1 for c in edges]])) if edges else float("nan")
    return {"date_line_ratio": wrap / interior, "tile_edge_ratio": tile_edges / interior,
            "southernmost_row_mean_mm": float(np.nanmean(field[0])), "northernmost_row_mean_mm": float(
                np.nanmean(field[-1])), "missing_cells": int(np.isnan(field).sum())}


def output_change(a: Path, b: Path) -> dict[str, float]:
    """Mean and largest absolute difference (mm) between two outputs, and the field's mean and max."""
    import netCDF4

    with netCDF4.Dataset(a) as x, netCDF4.Dataset(b) as y:
        fa, fb = (np.ma.filled(d["precipitation_amount"][0], np.nan) for d in (x, y))
    diff = np.abs(fa.astype(np.float64) - fb)
    return {"mean_abs_diff_mm": float(np.nanmean(diff)), "max_abs_diff_mm": float(np.nanmax(diff)),
            "p99_abs_diff_mm": float(np.nanpercentile(diff, 99)), "field_mean_mm": float(np.nanmean(fa)),
            "field_max_mm": float(np.nanmax(fa))}


def main() -> None:
    """Warm runs in a worker, a fresh process, seams; optionally the native-tile comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=REAL_GFS)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3, help="runs in the worker (the first warms it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-native", action="store_true", help="also run on 64 x 64 tiles")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"], help="what runs the network")
    parser.add_argument("--vs-torch", action="store_true", help="also run the torch backend (ratio, output change)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--native-tiles", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if not args.input.exists():
        sys.exit(f"{args.input} is not here; pass --input GRIB")
    with tempfile.TemporaryDirectory(prefix="bench_global_") as tmp:
        before = load()
        chosen = run_worker(args, Path(tmp) / "global.nc")
        report: dict[str, Any] = {"machine": machine(), "input": args.input.name, "threads": args.threads,
                                  "target_s": TARGET_S, "target_gib": TARGET_GIB}
        warm = [r["wall_s"] for r in chosen["runs"][1:]] or [chosen["runs"][0]["wall_s"]]
        report["warm_s"] = summary(warm)
        report["first_run_s"] = chosen["runs"][0]["wall_s"]
        report["warm_stages_s"] = chosen["runs"][-1]["stages_s"]
        report["worker_peak_rss_mib"] = chosen["peak_rss_mib"]
        report["tiles"] = chosen["tiles"]
        report["mass_ratio"] = chosen["runs"][-1]["mass_ratio"]
        report["output_bytes"] = chosen["output_bytes"]
        report["seams"] = seams(Path(tmp) / "global.nc")
        report["fresh_process"] = fresh_process(args, Path(tmp) / "fresh.nc")
        if args.compare_native:
            native = run_worker(args, Path(tmp) / "native.nc", native=True)
            report["native_64_tiles"] = {
                "warm_s": summary([r["wall_s"] for r in native["runs"][1:]] or [native["runs"][0]["wall_s"]]),
                "stages_s": native["runs"][-1]["stages_s"], "tiles": native["tiles"],
                "peak_rss_mib": native["peak_rss_mib"],
                "output_change_of_the_chosen_tiles": output_change(Path(tmp) / "native.nc", Path(tmp) / "global.nc"),
            }
        if args.vs_torch:
            other = run_worker(args, Path(tmp) / "torch.nc", backend="torch")
            other_warm = [r["wall_s"] for r in other["runs"][1:]] or [other["runs"][0]["wall_s"]]
            report["torch_backend"] = {
                "warm_s": summary(other_warm), "stages_s": other["runs"][-1]["stages_s"],
                "peak_rss_mib": other["peak_rss_mib"],
                "this_over_torch": float(np.median(warm) / np.median(other_warm)),
                "output_change": output_change(Path(tmp) / "torch.nc", Path(tmp) / "global.nc"),
            }
        report["backend"] = args.backend
        report["load_before_after"] = [before, load()]
    print_report(report)
    print(f"wrote {write_json('global', report)}")


def print_report(r: dict[str, Any]) -> None:
    """The figures as text."""
    print(f"global step ({r['input']}, 2876x5760 fine cells), {r['threads']} threads, backend {r['backend']}; "
          f"load {r['load_before_after']}")
    print(f"  warm: median {r['warm_s']['median']:.1f} s (best {r['warm_s']['best']:.1f}; target ≤ {TARGET_S:g} s); "
          f"first run {r['first_run_s']:.1f} s; peak RSS {r['worker_peak_rss_mib']:.0f} MiB "
          f"(target ≤ {TARGET_GIB * 1024:.0f})")
    for k, v in r["warm_stages_s"].items():
        print(f"    {k:48s} {v:6.2f} s")
    t = r["tiles"]
    print(f"  tiles {t['tile']}² overlap {t['overlap']}: {t['tiles']} tiles, "
          f"{t['computed_pixels_over_domain']:.2f}x the domain's pixels; mass ratio {r['mass_ratio']:.5f}")
    s = r["seams"]
    print(f"  seams: date line {s['date_line_ratio']:.3f}, tile edges {s['tile_edge_ratio']:.3f} "
          f"(1 = like other coarse-cell boundaries); missing cells {s['missing_cells']}")
    f = r["fresh_process"]
    print(f"  fresh process: {f['wall_s']:.1f} s, peak RSS {f['peak_rss_mib']:.0f} MiB")
    if "native_64_tiles" in r:
        n = r["native_64_tiles"]
        c = n["output_change_of_the_chosen_tiles"]
        print(f"  on 64-pixel tiles: warm {n['warm_s']['median']:.1f} s ({n['tiles']['tiles']} tiles, "
              f"{n['tiles']['computed_pixels_over_domain']:.2f}x pixels); the chosen tiles change the output by "
              f"{c['mean_abs_diff_mm']:.4f} mm on average, {c['max_abs_diff_mm']:.2f} mm at most "
              f"(field mean {c['field_mean_mm']:.3f}, max {c['field_max_mm']:.1f} mm)")
    if "torch_backend" in r:
        o = r["torch_backend"]
        c = o["output_change"]
        print(f"  torch backend: warm {o['warm_s']['median']:.1f} s, peak RSS {o['peak_rss_mib']:.0f} MiB; "
              f"{r['backend']} / torch = {o['this_over_torch']:.2f}; output change {c['mean_abs_diff_mm']:.2e} mm "
              f"on average, {c['max_abs_diff_mm']:.2e} mm at most")


if __name__ == "__main__":
    main()
