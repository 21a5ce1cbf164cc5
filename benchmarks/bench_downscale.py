"""End-to-end ``downscale`` figures on the real GFS file: speed, mass ratio and seams.

Usage::

    python benchmarks/bench_downscale.py [--model CKPT] [--repeats 5] [--shared ../shared]

Without ``--model`` a compact checkpoint with random weights is used (say so when quoting the
figures: seams and structure of a trained model differ). Prints a table and writes
``benchmarks/results/downscale.json``.

Measured, in one run:

* time to read the GFS file, remap, and run the model over CONUS (416 x 960 fine cells, 180
  tiles), fp32 and bf16 (medians of ``--repeats`` runs);
* the mass ratio: mean of each 4 x 4 fine block over its coarse input cell (wet cells), before and
  after the final block conservation that follows stitching;
* the seam statistic (mean absolute jump across tile edges / inside tiles) of the blended output,
  and of the same tiles pasted without blending, for comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GFS = "data/real/gfs.20200325.t18z.pgrb2.0p25.f006"


def pasted_without_blending(model, coarse, terrain, patcher):  # noqa: ANN001, ANN201
    """Each pixel from the last tile that covers it: what a stitcher without blending would give."""
    import torch

    ct = patcher.cut_coarse(coarse[None].astype(np.float32))
    st = patcher.cut_fine(terrain.astype(np.float32))
    out = np.zeros(patcher.work_shape, dtype=np.float32)
    with torch.inference_mode():
        tiles = model(torch.from_numpy(ct), torch.from_numpy(st)).numpy()[:, 0]
    for t, tile in zip(patcher.tiles, tiles, strict=True):
        out[t.y0 : t.y0 + 64, t.x0 : t.x0 + 64] = tile
    h, w = patcher.fine_shape
    return out[:h, :w]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()

    import torch

    from harpnet_cli.core.accumulation import to_interval_series
    from harpnet_cli.core.inference import downscale_domain
    from harpnet_cli.core.masking import fill_nearest
    from harpnet_cli.core.remap import Regridder, conserve_blocks
    from harpnet_cli.core.tiling import Patcher, seam_statistic
    from harpnet_cli.devices import configure_cpu_threads
    from harpnet_cli.grids import GridSpec
    from harpnet_cli.io.readers import read_accumulations
    from harpnet_cli.io.terrain import load_terrain
    from harpnet_cli.testing.models import make_random_checkpoint
    from harpnet_cli.workflows.models import load_model

    threads = configure_cpu_threads()
    src = args.shared / GFS
    tmp = Path(tempfile.mkdtemp())
    ckpt = args.model or make_random_checkpoint(tmp / "random.pt", seed=0)
    model, _ = load_model(ckpt)
    model.for_inference()

    t = time.perf_counter()
    series = to_interval_series(read_accumulations([src]))[0]
    t_read = time.perf_counter() - t
    spec = GridSpec.from_domain("conus")
    t = time.perf_counter()
    regridder = Regridder.to_grid(series.grid, spec.padded(1))
    coarse = fill_nearest(regridder(series.data[0])) * 0.5  # 6-hour amount -> 3-hour rate
    terrain = load_terrain(spec)[None]
    t_prep = time.perf_counter() - t
    patcher = Patcher(spec.coarse_shape)

    def run(bf16: bool) -> tuple[float, np.ndarray]:
        times, out = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = downscale_domain(model, coarse[None], terrain, patcher, batch_size=64)
            times.append(time.perf_counter() - t0)
        assert out is not None
        return statistics.median(times), out

    t_fp32, fine = run(False)
    t_bf16, fine_bf16 = run(True)
    centre = coarse[1:-1, 1:-1]
    wet = centre > 0.1

    def block_ratio(f: np.ndarray) -> np.ndarray:
        return f.reshape(spec.ny, 4, spec.nx, 4).mean(axis=(1, 3))[wet] / centre[wet]

    raw_ratio = block_ratio(fine)
    fine = conserve_blocks(fine, centre, 4)  # as the workflow does after stitching
    ratio = block_ratio(fine)
    blended = seam_statistic(fine, patcher)
    pasted = seam_statistic(pasted_without_blending(model, coarse, terrain, patcher), patcher)

    result = {
        "input": GFS,
        "model": str(args.model) if args.model else "compact, random weights (seed 0)",
        "domain": spec.describe(),
        "tiles": len(patcher),
        "threads": threads,
        "machine": platform.processor() or platform.machine(),
        "read_s": t_read,
        "remap_terrain_s": t_prep,
        "model_fp32_median_s": t_fp32,
        "model_bf16_median_s": t_bf16,
        "bf16_speedup": t_fp32 / t_bf16,
        "tiles_per_s_fp32": len(patcher) / t_fp32,
        "bf16_max_abs_diff_mm": float(np.abs(fine_bf16 - fine).max()),
        "mass_ratio_median": float(np.median(ratio)),
        "mass_ratio_max_abs_error": float(np.abs(ratio - 1).max()),
        "mass_ratio_max_abs_error_before_final_conservation": float(np.abs(raw_ratio - 1).max()),
        "seam_ratio_blended": blended["ratio"],
        "seam_ratio_pasted": pasted["ratio"],
        "repeats": args.repeats,
    }
    for k, v in result.items():
        print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "downscale.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
