"""Inference beside CPU-bound neighbours: OpenMP wait policy and thread count on a busy host.

Forecast servers are busy hosts. Each case runs the bundled model (64 x 64 tiles, batch 16, as
``downscale`` runs it: BatchNorm folded, channels-last, ``inference_mode``) in a fresh process
(OpenMP reads its wait policy when torch loads it) with 1 and with 2 intra-op threads, for a fixed
time per measurement, interleaved, next to 0, 1 or 2 neighbour processes that each keep one core
busy (a pure-Python spin loop). Policies:

* ``unset``: libgomp's default (spin for a while, then sleep), what torch does without HARPNET;
* ``ACTIVE``: ``OMP_WAIT_POLICY=ACTIVE`` (always spin);
* ``PASSIVE``: ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once), what ``import harpnet_cli`` sets;
* ``harpnet``: ``import harpnet_cli`` first (PASSIVE) and the thread count
  :func:`harpnet_cli.devices.configure_cpu_threads` picks from the cores and the load;
* ``onnx``: the bundled graph on ONNX Runtime as ``downscale`` runs it on the CPU (waiting
  threads do not spin: :class:`harpnet_cli.core.model.onnx.GraphModel`);
* ``onnx-spin``: the same with ONNX Runtime's default, spinning waiting threads.

Prints a table of tiles/s and writes ``benchmarks/results/threads.json``.

Usage::

    python benchmarks/bench_threads.py                  # 3 rounds, 2 s per measurement
    python benchmarks/bench_threads.py --rounds 1 --seconds 1 --neighbours 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, REPO, load, machine, neighbours, summary, write_json  # noqa: E402

POLICIES = ("unset", "ACTIVE", "PASSIVE", "harpnet", "onnx", "onnx-spin")
BATCH = 16


def graph_worker(spinning: bool, seconds: float, model_path: str) -> dict[str, Any]:
    """In a fresh process: the model's ONNX graph, tiles/s with 1 and 2 threads, interleaved twice."""
    import numpy as np

    from harpnet_cli.core.model.onnx import GraphModel
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.workflows.models import model_graph

    plain = ModelFile(model_path).plain()["config"]
    n = plain.get("tile", 64) // plain.get("ratio", 4) + 2 * plain.get("buffer", 1)
    coarse = (np.random.rand(BATCH, len(plain["coarse_inputs"]), n, n) * 5).astype(np.float32)
    tile = plain.get("tile", 64)
    static = (np.random.rand(BATCH, 1, tile, tile) * 2000).astype(np.float32)
    graph = model_graph(ModelFile(model_path), threads=1)
    sessions = {t: GraphModel(graph.graph, threads=t, spinning=spinning) for t in (1, 2)}
    rates: dict[str, list[float]] = {}
    for _ in range(2):
        for threads, session in sessions.items():
            session.predict(coarse, static)
            t0, done = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds / 2:
                session.predict(coarse, static)
                done += BATCH
            rates.setdefault(f"{threads} threads", []).append(done / (time.perf_counter() - t0))
    return {k: sum(v) / len(v) for k, v in rates.items()}


def worker(policy: str, seconds: float, model_path: str) -> dict[str, Any]:
    """In a fresh process: tiles/s with 1 and 2 threads (or the harpnet default), interleaved twice."""
    if policy.startswith("onnx"):
        return graph_worker(policy == "onnx-spin", seconds, model_path)
    if policy == "harpnet":
        from harpnet_cli.devices import configure_cpu_threads  # before torch: sets the wait policy
    import torch

    from harpnet_cli.devices import configure_cpu_threads
    from harpnet_cli.workflows.models import load_model

    model = load_model(model_path)[0].for_inference()
    cfg = model.config
    n = cfg.coarse_size
    coarse = torch.rand(BATCH, len(cfg.coarse_inputs), n, n) * 5
    static = torch.rand(BATCH, 1, cfg.tile, cfg.tile) * 2000
    counts = [0] if policy == "harpnet" else [1, 2]
    rates: dict[str, list[float]] = {}
    with torch.inference_mode():
        model(coarse, static)
        for _ in range(2):
            for threads in counts:
                used = configure_cpu_threads(None) if policy == "harpnet" else configure_cpu_threads(threads)
                model(coarse, static)
                t0, done = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds / 2:
                    model(coarse, static)
                    done += BATCH
                key = f"{used} threads" if policy != "harpnet" else "auto"
                rates.setdefault(key, []).append(done / (time.perf_counter() - t0))
                if policy == "harpnet":
                    rates.setdefault("auto threads", []).append(float(used))
    return {k: sum(v) / len(v) for k, v in rates.items()} | {"wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def run_worker(policy: str, seconds: float, model: Path) -> dict[str, Any]:
    """One worker subprocess with the policy's environment."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy in ("ACTIVE", "PASSIVE"):
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, __file__, "--worker", policy, "--seconds", str(seconds),
                          "--model", str(model)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every policy beside each neighbour count, in rounds, and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per thread count and pass")
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--worker", choices=POLICIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, str(args.model))))
        return
    report: dict[str, Any] = {"machine": machine(), "batch": BATCH, "seconds": args.seconds, "rounds": args.rounds,
                              "cases": {}}
    for count in args.neighbours:
        with neighbours(count):
            before = load()
            raw: dict[str, dict[str, list[float]]] = {}
            for _ in range(args.rounds):
                for policy in args.policies:
                    res = run_worker(policy, args.seconds, args.model)
                    for key, value in res.items():
                        if isinstance(value, float):
                            raw.setdefault(policy, {}).setdefault(key, []).append(value)
            report["cases"][f"{count} neighbours"] = {
                "load_before_after": [before, load()],
                "tiles_per_s": {p: {k: summary(v) for k, v in d.items()} for p, d in raw.items()},
            }
        print_case(count, report["cases"][f"{count} neighbours"])
    print(f"wrote {write_json('threads', report)}")


def print_case(count: int, case: dict[str, Any]) -> None:
    """One line per policy: median tiles/s with 1 and 2 threads (or auto)."""
    print(f"-- {count} CPU-bound neighbour(s); load before/after {case['load_before_after']}")
    for policy, rates in case["tiles_per_s"].items():
        text = ", ".join(f"{k}: {v['median']:.1f}" for k, v in rates.items())
        print(f"   {policy:8s} {text}")


if __name__ == "__main__":
    main()
