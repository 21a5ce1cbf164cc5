"""What ``downscale --samples`` costs and whether its members have seams, on the real GFS file.

Usage::

    python benchmarks/bench_samples.py [--model STOCHASTIC.pt] [--deterministic MODEL.pt] [--repeats 3]

Defaults: the bundled default stochastic and deterministic models. Measured in one warm process
(the model loaded, the terrain cached; one CONUS step, 416 x 960 fine cells), the two interleaved:

* one step of the deterministic model, of the stochastic model with 10 samples, and of a
  GEFS-like input of 31 members x 4 samples (the same field 31 times: the cost does not depend on
  the values) — medians of ``--repeats`` runs and their ratios;
* end to end, as a cron job runs it: a fresh ``harpnet -q downscale GFS -o out.nc`` against the same
  with ``--samples 10`` (interleaved, medians of ``--repeats``);
* the seam statistic (:func:`harpnet_cli.core.tiling.seam_statistic`: mean jump across tile edges
  over the jump across other coarse-cell boundaries, 1 = no seam) of each sample and of the
  deterministic output, on the same tiles.

Prints a table and writes ``benchmarks/results/samples.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REAL_GFS, machine, write_json


def engine_for(model: Path, samples: int | None, inputs: list[Path], stack: contextlib.ExitStack,
               backend: str = "auto") -> tuple[Any, Any]:
    """A prepared :class:`StepDownscaler` and the input series, as ``harpnet downscale`` makes them."""
    from harpnet_cli.config import DownscaleConfig
    from harpnet_cli.workflows.downscale import StepDownscaler, _read_series, resolve_model
    from harpnet_cli.workflows.reporting import NullReporter

    cfg = DownscaleConfig(inputs=inputs, output=Path("unused.nc"), model=model, samples=samples, domain="conus",
                          device="cpu", backend=backend)
    cfg, model_file = resolve_model(cfg, NullReporter())
    series, _ = _read_series(cfg, stack)
    return StepDownscaler.prepare(cfg, model_file, series, NullReporter()), series


def timed(engine: Any, series: list[Any]) -> tuple[float, np.ndarray]:
    """Seconds for one step of every input member, and the fields."""
    began = time.perf_counter()
    (_, fine, _), = engine.run(series, [0], lambda n: None)
    return time.perf_counter() - began, fine


def fresh_process(args: list[str], repeats: int) -> list[float]:
    """Seconds of ``repeats`` fresh ``harpnet -q downscale ARGS`` runs (the output overwritten)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "harpnet_cli", "-q", "downscale", *args, "-o", f"{tmp}/out.nc",
                            "--overwrite"], check=True)
            times.append(time.perf_counter() - began)
    return times


def main() -> None:
    from harpnet_cli.core.tiling import seam_statistic
    from harpnet_cli.io.default_model import default_model_path, default_stochastic_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_stochastic_path())
    ap.add_argument("--deterministic", type=Path, default=default_model_path())
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gefs", type=int, nargs=2, default=(31, 4), metavar=("MEMBERS", "SAMPLES"))
    ap.add_argument("--input", type=Path, default=REAL_GFS)
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    args = ap.parse_args()
    if args.model is None or not args.input.exists():
        raise SystemExit("needs a stochastic model (--model) and the real GFS file (--input)")
    with contextlib.ExitStack() as stack:
        det, det_series = engine_for(args.deterministic, None, [args.input], stack, args.backend)
        sto, sto_series = engine_for(args.model, args.samples, [args.input], stack, args.backend)
        members, per_member = args.gefs
        gefs, one = engine_for(args.model, per_member, [args.input], stack, args.backend)
        gefs_series = one * members
        times: dict[str, list[float]] = {"deterministic": [], f"samples_{args.samples}": []}
        for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits both
            t, det_fine = timed(det, det_series)
            times["deterministic"].append(t)
            t, sto_fine = timed(sto, sto_series)
            times[f"samples_{args.samples}"].append(t)
        t_gefs, _ = timed(gefs, gefs_series)
    fresh: dict[str, list[float]] = {"deterministic": [], f"samples_{args.samples}": []}
    common = [str(args.input), "--model", str(args.deterministic), "--backend", args.backend]
    for _ in range(args.repeats):
        fresh["deterministic"] += fresh_process(common, 1)
        fresh[f"samples_{args.samples}"] += fresh_process([str(args.input), "--model", str(args.model), "--samples",
                                                           str(args.samples), "--backend", args.backend], 1)
    fresh_medians = {k: statistics.median(v) for k, v in fresh.items()}
    medians = {k: statistics.median(v) for k, v in times.items()}
    seams = [seam_statistic(member, sto.patcher)["ratio"] for member in sto_fine]
    report = {
        "machine": machine(),
        "input": args.input.name,
        "backend": args.backend,
        "domain": det.spec.describe(),
        "tiles": len(det.patcher),
        "models": {"deterministic": str(args.deterministic), "stochastic": str(args.model)},
        "median_s": medians,
        "repeats": args.repeats,
        "samples_over_deterministic": medians[f"samples_{args.samples}"] / medians["deterministic"],
        "fresh_process_median_s": fresh_medians,
        "fresh_process_samples_over_deterministic": (fresh_medians[f"samples_{args.samples}"]
                                                     / fresh_medians["deterministic"]),
        "gefs_like": {"members": members, "samples": per_member, "seconds": t_gefs},
        "seam_ratio": {"deterministic": seam_statistic(det_fine[0], det.patcher)["ratio"],
                       "samples_median": float(np.median(seams)), "samples_max": float(np.max(seams))},
    }
    print(f"one CONUS step ({report['tiles']} tiles), medians of {args.repeats}:")
    for name, value in medians.items():
        print(f"  {name:16s} {value:7.2f} s")
    print(f"  {args.samples} samples / deterministic: {report['samples_over_deterministic']:.2f}x")
    ratio = report["fresh_process_samples_over_deterministic"]
    print(f"a fresh process, end to end: deterministic {fresh_medians['deterministic']:.2f} s, {args.samples} samples "
          f"{fresh_medians[f'samples_{args.samples}']:.2f} s ({ratio:.2f}x)")
    print(f"  GEFS-like {members} members x {per_member} samples: {t_gefs:.1f} s")
    s = report["seam_ratio"]
    print(f"  seam ratio: deterministic {s['deterministic']:.3f}, samples median {s['samples_median']:.3f} "
          f"(max {s['samples_max']:.3f})")
    print(f"wrote {write_json('samples', report)}")


if __name__ == "__main__":
    main()
