"""CPU throughput of the HARPNET model presets.

For each preset: parameter count, convolution/matmul FLOPs per 64×64 tile (FlopCounterMode),
median tiles/s at a fixed batch in fp32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``
for several layouts (contiguous, channels-last, BatchNorm folded + channels-last), the achieved
GFLOP/s and its ratio to the machine's peak measured in the same run (2048² matmuls), and the
bf16 error relative to fp32. Prints a table and writes ``benchmarks/results/model.json``.

Usage::

    python benchmarks/bench_model.py                   # both presets, 2 threads, batch 32
    python benchmarks/bench_model.py --presets compact --rounds 25 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harpnet_cli import __version__
from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
from harpnet_cli.testing.models import random_tile_inputs, tile_flops

RESULTS = Path(__file__).parent / "results" / "model.json"
DOMAIN_TILES = 180  # 416 x 960 fine cells (CONUS) in overlapping 64 x 64 tiles


def time_once(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rate(work: float, times: list[float]) -> dict[str, float]:
    """``work`` per second at the median and at the best (shortest) of ``times``."""
    return {"median": work / statistics.median(times), "best": work / min(times)}


def matmul_case(dtype: torch.dtype, n: int = 2048) -> tuple[Callable[[], object], float]:
    """A ``n × n`` matmul and its FLOPs (the machine's practical peak)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return (lambda: a @ b), 2.0 * n**3


def variants(model: Downscaler, compile_: bool) -> dict[str, Callable[..., torch.Tensor]]:
    """The layouts to time, all with the same weights."""
    out: dict[str, Callable[..., torch.Tensor]] = {"contiguous": model}
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    out["channels_last"] = cl
    out["folded_channels_last"] = copy.deepcopy(model).for_inference(channels_last=True)
    if compile_:
        out["compiled_folded_channels_last"] = torch.compile(copy.deepcopy(out["folded_channels_last"]))
    return out


def bench_preset(preset: str, batch: int, rounds: int, compile_: bool) -> dict[str, Any]:
    """Time every variant of one preset in fp32 and bf16, interleaved with the matmul peaks.

    The machine may be shared and its speed drifts, so the cases run round-robin: each round
    times every case once (and both 2048² matmuls). Every figure is given as the median over
    rounds and, in parentheses, the best round (least disturbed by other processes); the
    fraction of peak divides median by median and best by best.
    """
    torch.manual_seed(0)
    config = ModelConfig(preset=preset)
    model = Downscaler(config).eval()
    flops = tile_flops(model)
    coarse, static = random_tile_inputs(config, batch)
    with torch.inference_mode():
        reference = model(coarse, static)

    cases: dict[str, tuple[Callable[[], object], float]] = {
        "matmul/fp32": matmul_case(torch.float32),
        "matmul/bf16": matmul_case(torch.bfloat16),
    }
    first_call: dict[str, float] = {}
    errors: dict[str, float] = {}
    for name, variant in variants(model, compile_).items():
        for dtype in ("fp32", "bf16"):
            key = f"{name}/{dtype}"

            def run(v: Callable[..., torch.Tensor] = variant, bf16: bool = dtype == "bf16") -> torch.Tensor:
                """One batch through ``v``, under bf16 autocast if asked."""
                amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with torch.inference_mode(), amp:
                    return v(coarse, static)

            t0 = time.perf_counter()
            out = run()
            first_call[key] = time.perf_counter() - t0
            errors[key] = float((out - reference).norm() / reference.norm())
            cases[key] = (run, flops * batch)
    for fn, _ in cases.values():  # warm up
        fn()
    times: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(rounds):
        for key, (fn, _) in cases.items():
            times[key].append(time_once(fn))

    peaks = {d: _rate(cases[f"matmul/{d}"][1] / 1e9, times[f"matmul/{d}"]) for d in ("fp32", "bf16")}
    result: dict[str, Any] = {
        "preset": preset,
        "channels": config.channels,
        "bridge": config.bridge,
        "params": model.param_count(),
        "gflop_per_tile": flops / 1e9,
        "batch": batch,
        "rounds": rounds,
        "matmul_gflop_per_s": peaks,
        "runs": {},
    }
    print(
        f"  {preset}: 2048² matmul GFLOP/s median (best): fp32 {peaks['fp32']['median']:.0f} "
        f"({peaks['fp32']['best']:.0f}), bf16 {peaks['bf16']['median']:.0f} ({peaks['bf16']['best']:.0f})"
    )
    for key in first_call:
        dtype = key.rsplit("/", 1)[1]
        tiles = _rate(batch, times[key])
        gflops = {k: flops * v / 1e9 for k, v in tiles.items()}
        frac = {k: gflops[k] / peaks[dtype][k] for k in tiles}
        result["runs"][key] = {
            "tiles_per_s": tiles,
            "gflop_per_s": gflops,
            "fraction_of_peak": frac,
            "domain_s": {k: DOMAIN_TILES / v for k, v in tiles.items()},
            "first_call_s": first_call[key],
            "rel_l2_error_vs_fp32": errors[key],
        }
        print(
            f"  {preset:<10} {key:<32} {tiles['median']:6.1f} ({tiles['best']:6.1f}) tiles/s  "
            f"{gflops['median']:5.1f} ({gflops['best']:5.1f}) GFLOP/s  "
            f"{100 * frac['median']:4.1f}% ({100 * frac['best']:4.1f}%) of peak  "
            f"{DOMAIN_TILES} tiles: {DOMAIN_TILES / tiles['median']:5.2f} s  rel.err {errors[key]:.1e}",
            flush=True,
        )
    return result


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["compact", "harpnet-v1"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15, help="timed runs per case (median)")
    parser.add_argument("--rounds-large", type=int, default=5, help="timed runs for harpnet-v1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    results = []
    for preset in args.presets:
        config = ModelConfig(preset=preset)
        rounds = args.rounds_large if config.bridge and config.bridge > 1024 else args.rounds
        results.append(bench_preset(preset, args.batch, rounds, args.compile))
    report = {
        "harpnet_version": __version__,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "note": "figures are {median, best} over interleaved rounds; the machine may be shared",
        "threads": args.threads,
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "presets": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
