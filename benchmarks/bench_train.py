"""CPU training throughput (samples/s) of the HARPNET presets.

Times full optimisation steps (forward, loss, backward, Adam) of :class:`Downscaler` on random
batches shaped like the store's samples: ``compact`` at batch 64 (the training default) and
``harpnet-v1`` at batch 8 (134 M parameters: a batch of 64 needs far more memory and minutes per
step on a 2-core CPU). The first ``--warmup`` steps are not timed. Prints a table and writes
``benchmarks/results/train.json``.

Usage::

    python benchmarks/bench_train.py                  # both presets, usable threads
    python benchmarks/bench_train.py --presets compact --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
from harpnet_cli.core.training import get_loss, train_step
from harpnet_cli.devices import configure_cpu_threads

BATCH = {"compact": 64, "harpnet-v1": 8}


def bench(preset: str, batch: int, steps: int, warmup: int) -> dict[str, float | int | str]:
    """Median samples/s of ``steps`` timed training steps of one preset."""
    torch.manual_seed(0)
    model = Downscaler(ModelConfig(preset=preset)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = get_loss("mse")
    coarse = torch.rand(batch, 1, 18, 18) * 5
    static = torch.rand(batch, 1, 64, 64) * 3000
    target = torch.rand(batch, 1, 64, 64) * 5
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        train_step(model, opt, loss_fn, coarse, static, target)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"preset": preset, "batch": batch, "params": model.param_count(), "steps": steps,
            "median_step_s": med, "samples_per_s": batch / med}


def main() -> None:
    """Run the benchmark and write the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["compact", "harpnet-v1"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train.json")
    args = ap.parse_args()
    threads = configure_cpu_threads(args.threads)
    rows = []
    for preset in args.presets:
        steps = args.steps if preset == "compact" else max(2, args.steps // 2)
        row = bench(preset, BATCH.get(preset, 16), steps, args.warmup)
        rows.append(row)
        print(f"{preset:12s} batch {row['batch']:3d}  {row['params']:>12,} params  "
              f"{row['median_step_s']:.2f} s/step  {row['samples_per_s']:.1f} samples/s", flush=True)
    result = {"machine": platform.processor() or platform.machine(), "threads": threads,
              "torch": torch.__version__, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
