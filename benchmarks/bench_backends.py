"""The network on torch and on ONNX Runtime: time per tile batch, the ratio, the output difference.

``downscale`` runs the network on ONNX Runtime on the CPU (``--backend auto``) and on torch
elsewhere. For each tile size ``downscale`` uses (64-pixel tiles in batches of 64 for small
domains, one 416-pixel tile for CONUS, one 512-pixel tile for the globe), this times one model call
of the bundled model on both, in one process, alternating the two for ``--rounds`` rounds
(medians, and the median of the per-round ratios), and reports the largest difference between
their outputs relative to the output's maximum. The torch model is prepared as ``downscale``
prepares it (BatchNorm folded, channels-last, ``inference_mode``), the graph is the bundled one.

Writes ``benchmarks/results/backends.json``.

Usage::

    python benchmarks/bench_backends.py                  # 7 rounds, 2 threads
    python benchmarks/bench_backends.py --threads 1 --model runs/mine/best.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, load, machine, summary, write_json  # noqa: E402

#: (tile side, tiles per call) as ``downscale`` batches them (``batch_size`` 64 counts 64-pixel tiles).
CASES = ((64, 64), (416, 1), (512, 1))


def time_case(model: Any, graph: Any, coarse: np.ndarray, static: np.ndarray,
              rounds: int) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Both outputs (after the first-call set-up of both) and the alternating timings."""
    import torch

    c, s = torch.from_numpy(coarse), torch.from_numpy(static)

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(model(c, s).numpy())

    def run_onnx() -> np.ndarray:
        return np.asarray(graph.predict(coarse, static))

    want, got = run_torch(), run_onnx()
    times: dict[str, list[float]] = {"torch": [], "onnx": []}
    for _ in range(rounds):
        for name, fn in (("torch", run_torch), ("onnx", run_onnx)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return want, got, times


def main() -> None:
    """Time both runtimes per case and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.devices import configure_cpu_threads
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.workflows.models import load_models, model_graph

    configure_cpu_threads(args.threads)
    graph = model_graph(ModelFile(args.model), threads=args.threads)
    loaded = load_models(ModelFile(args.model)).models[0]
    cfg = loaded.config
    rng = np.random.default_rng(0)
    report: dict[str, Any] = {"machine": machine(), "model": str(args.model), "threads": args.threads,
                              "rounds": args.rounds, "load_before": load(), "cases": {}}
    for tile, batch in CASES:
        model = Downscaler.from_state({**cfg.model_dump(mode="json"), "tile": tile}, loaded.state_dict())
        model = model.eval().for_inference(channels_last=True)
        n = tile // cfg.ratio + 2 * cfg.buffer
        coarse = (rng.gamma(0.6, 3.0, (batch, len(cfg.coarse_inputs), n, n))).astype(np.float32)
        if len(cfg.coarse_inputs) > 1:
            coarse[:, 1] = np.log(3.0)
        static = rng.uniform(0, 2500, (batch, len(cfg.static_inputs), tile, tile)).astype(np.float32)
        want, got, times = time_case(model, graph, coarse, static, args.rounds)
        ratios = np.divide(times["onnx"], times["torch"])
        report["cases"][f"{tile}px x {batch}"] = {
            "torch_s": summary(times["torch"]), "onnx_s": summary(times["onnx"]),
            "onnx_over_torch": float(np.median(ratios)),
            "max_abs_diff_over_max": float(np.abs(got - want).max() / max(float(want.max()), 1e-12)),
            "megapixels_per_s_onnx": batch * tile * tile / 1e6 / float(np.median(times["onnx"])),
        }
    report["load_after"] = load()
    print(f"bundled model {args.model.name}, {args.threads} threads; load {report['load_before']} -> "
          f"{report['load_after']}")
    for key, r in report["cases"].items():
        print(f"  {key:12s} torch {r['torch_s']['median'] * 1e3:7.1f} ms  onnx {r['onnx_s']['median'] * 1e3:7.1f} ms"
              f"  onnx/torch {r['onnx_over_torch']:.2f}  max diff {r['max_abs_diff_over_max']:.1e} of max")
    print(f"wrote {write_json('backends', report)}")


if __name__ == "__main__":
    main()
