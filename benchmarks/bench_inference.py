"""CPU inference figures of HARPNET in one run: peak, model throughput, levers, end to end.

Measured on ``--threads`` threads (default 2), every figure the median (and best) over rounds
that interleave the cases, so drift of a shared machine hits all cases alike:

1. **peak**: GFLOP/s of a 2048² matmul in fp32 and in bf16;
2. **models**: tiles/s of 64×64 tiles (batch 32, BatchNorm folded + channels-last through
   ``Downscaler.for_inference()``, ``inference_mode``) for ``lite`` and ``harpnet-v1`` in fp32
   and bf16 autocast, the achieved GFLOP/s (FlopCounterMode) and fraction of peak, and the
   headline ratio lite / harpnet-v1;
3. **levers** on ``lite``: batch size, channels-last off, bf16, ``torch.compile`` (``--compile``)
   and larger inference tiles (the same weights on 128² and 256² tiles, whole CONUS fields
   through :func:`harpnet_cli.core.inference.downscale_domain`, with the difference to the
   64-tile output), plus the bf16 difference to fp32 over CONUS;
4. **end to end**: one CONUS 3-hour step, ``harpnet downscale IN.grib2 -o OUT.nc``, in-process
   (:func:`~harpnet_cli.workflows.downscale.run_downscale`) and as a subprocess;
5. **series**: a 16-day GFS run (f003…f384, 128 files: a GFS f000 has no APCP) in one call, with
   a per-step breakdown from an in-process run.

Prints tables and writes ``benchmarks/results/inference.json``. Without ``--model`` a ``lite``
checkpoint with random weights is used (speed does not depend on the weights).

bf16 cases run only where the CPU has native bfloat16 (``avx512_bf16``/``amx_bf16``, see
:func:`harpnet_cli.devices.native_bf16`): emulated, one 2048² bf16 matmul took 70-500 s on an
AVX2-only EPYC and the full run did not finish in 28 minutes. ``--force-bf16`` runs them anyway.

Usage::

    python benchmarks/bench_inference.py --quick      # ~1-2 min: few rounds, no v1 bf16, no series
    python benchmarks/bench_inference.py              # full run
    python benchmarks/bench_inference.py --compile --model runs/exp/best.pt
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harpnet_cli import __version__
from harpnet_cli.core.inference import downscale_domain
from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
from harpnet_cli.core.tiling import Patcher
from harpnet_cli.grids import GridSpec
from harpnet_cli.testing.models import random_tile_inputs, tile_flops

RESULTS = Path(__file__).parent / "results" / "inference.json"
DOMAIN = "conus"
#: CONUS: 416 x 960 fine cells, 180 overlapping 64 x 64 tiles.
DOMAIN_TILES = 180
#: A GFS-like 0.25° box around CONUS with a margin (south, north, west, east), 141 x 281 points.
GFS_BOX = (20.0, 55.0, -130.0, -60.0)
#: The headline target: lite at least this many times faster than harpnet-v1.
TARGET_RATIO = 50.0
SECTIONS = ("models", "levers", "tiles", "end_to_end", "series")
console = Console()
if not console.is_terminal:
    console = Console(width=160)

Rate = dict[str, float]


# -- timing helpers -------------------------------------------------------------------------------
def rate(work: float, times: list[float]) -> Rate:
    """``work`` per second at the median and at the best (shortest) of ``times``."""
    return {"median": work / statistics.median(times), "best": work / min(times)}


def seconds(times: list[float]) -> Rate:
    """Median and best of ``times``."""
    return {"median": statistics.median(times), "best": min(times)}


def interleave(cases: dict[str, Callable[[], object]], rounds: int,
               rounds_of: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Time every case once per round, round-robin, after one warm-up call each.

    ``rounds_of`` gives some cases fewer rounds (they are timed in the first rounds only).
    """
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {key: [] for key in cases}
    for r in range(rounds):
        for key, fn in cases.items():
            if rounds_of is not None and r >= rounds_of.get(key, rounds):
                continue
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def amp(bf16: bool) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on the CPU, or nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# -- inputs and models ----------------------------------------------------------------------------
def batch_runner(model: Callable[..., torch.Tensor], coarse: torch.Tensor, static: torch.Tensor,
                 bf16: bool) -> Callable[[], torch.Tensor]:
    """One call of ``model`` on a fixed batch, in ``inference_mode``, under bf16 autocast if asked."""

    def run() -> torch.Tensor:
        with torch.inference_mode(), amp(bf16):
            return model(coarse, static)

    return run


def with_tile(model: Downscaler, tile: int) -> Downscaler:
    """The same (unfolded) weights in a Downscaler built for ``tile × tile`` output tiles.

    The network is fully convolutional and the state dict holds no tile size, so the weights load
    strictly into a model of any tile that is a multiple of ``2 ** levels``.
    """
    config = ModelConfig.model_validate({**model.config.model_dump(), "tile": tile})
    other = Downscaler(config)
    other.load_state_dict(model.state_dict(), strict=True)
    return other.eval()


def conus_inputs(spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """A rain-like 3-hour CONUS field with its buffer ring ``(1, ny+2, nx+2)`` and the terrain."""
    from harpnet_cli.io.terrain import load_terrain
    from harpnet_cli.testing.fixtures import synthetic_hourly

    ny, nx = spec.coarse_shape
    coarse = synthetic_hourly(3, ny + 2, nx + 2, seed=1).sum(axis=0)[None]
    return coarse.astype(np.float32), load_terrain(spec)[None].astype(np.float32)


# -- sections -------------------------------------------------------------------------------------
def bench_models(lite: Downscaler, args: argparse.Namespace) -> dict[str, Any]:
    """Peaks and model throughput of lite and harpnet-v1, fp32 and bf16, batch 32."""
    torch.manual_seed(0)
    v1 = Downscaler(ModelConfig(preset="harpnet-v1")).eval()
    models = {"lite": lite, "harpnet-v1": v1}
    flops = {name: tile_flops(m) for name, m in models.items()}
    params = {name: m.param_count() for name, m in models.items()}
    folded = {name: copy.deepcopy(m).for_inference(channels_last=True) for name, m in models.items()}
    coarse, static = random_tile_inputs(lite.config, args.batch)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a.bfloat16(), b.bfloat16()
    cases: dict[str, Callable[[], object]] = {"matmul/fp32": lambda: a @ b}
    dtypes = ["fp32", "bf16"] if args.bf16 else ["fp32"]
    if args.bf16:
        cases["matmul/bf16"] = lambda: a16 @ b16
    for name, m in folded.items():
        for dtype in dtypes:
            if name == "harpnet-v1" and dtype == "bf16" and args.quick:
                continue
            cases[f"{name}/{dtype}"] = batch_runner(m, coarse, static, dtype == "bf16")
    rounds_v1 = min(args.rounds_v1, args.rounds)
    times = interleave(cases, args.rounds, {k: rounds_v1 for k in cases if k.startswith("harpnet-v1")})
    peak = {d: rate(2.0 * n**3 / 1e9, times[f"matmul/{d}"]) for d in dtypes}
    runs: dict[str, Any] = {}
    for key in cases:
        if key.startswith("matmul"):
            continue
        name, dtype = key.split("/")
        tiles = rate(args.batch, times[key])
        gflops = {k: flops[name] * v / 1e9 for k, v in tiles.items()}
        runs[key] = {
            "tiles_per_s": tiles,
            "gflop_per_s": gflops,
            "fraction_of_peak": {k: gflops[k] / peak[dtype][k] for k in tiles},
            "conus_model_s": {k: DOMAIN_TILES / v for k, v in tiles.items()},
            "rounds": len(times[key]),
        }
    ratio = {}
    for dtype in dtypes:
        if f"harpnet-v1/{dtype}" in runs:
            ratio[dtype] = {k: runs[f"lite/{dtype}"]["tiles_per_s"][k] / runs[f"harpnet-v1/{dtype}"]["tiles_per_s"][k]
                            for k in ("median", "best")}
    return {
        "peak_matmul_2048_gflop_per_s": peak,
        "batch": args.batch,
        "presets": {name: {"params": params[name], "gflop_per_tile": flops[name] / 1e9,
                           "channels": models[name].config.channels, "bridge": models[name].config.bridge}
                    for name in models},
        "runs": runs,
        "lite_over_v1": ratio,
        "target_ratio": TARGET_RATIO,
    }


def one_thread(fn: Callable[[], torch.Tensor], threads: int) -> Callable[[], torch.Tensor]:
    """``fn`` on one intra-op thread, then back to ``threads`` (a shared machine's other load)."""

    def run() -> torch.Tensor:
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)

    return run


def bench_levers(lite: Downscaler, args: argparse.Namespace) -> dict[str, Any]:
    """Batch size, channels-last, bf16, one thread and torch.compile on lite (tiles/s, CONUS model time).

    The one-thread case shows what oversubscription costs: with other processes on the cores, every
    small parallel region of lite can wait a scheduler time slice for its second thread.
    """
    folded = copy.deepcopy(lite).for_inference(channels_last=True)
    # load_model gives channels-last weights on the CPU: back to contiguous before folding
    contiguous = copy.deepcopy(lite).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    contiguous.for_inference(channels_last=False)
    inputs = {b: random_tile_inputs(lite.config, b) for b in sorted({*args.batches, args.batch})}
    cases: dict[str, Callable[[], object]] = {}
    work: dict[str, int] = {}
    for b in args.batches:
        cases[f"batch {b}"] = batch_runner(folded, *inputs[b], bf16=False)
        work[f"batch {b}"] = b
    cases["channels-last off"] = batch_runner(contiguous, *inputs[args.batch], bf16=False)
    if args.bf16:
        cases["bf16"] = batch_runner(folded, *inputs[args.batch], bf16=True)
    if args.threads > 1:
        cases["1 thread"] = one_thread(batch_runner(folded, *inputs[args.batch], bf16=False), args.threads)
    for b in (128, 180):
        if b in args.batches and args.bf16:
            cases[f"bf16 batch {b}"] = batch_runner(folded, *inputs[b], bf16=True)
            work[f"bf16 batch {b}"] = b
    first_call: dict[str, float] = {}
    if args.compile:
        compiled = torch.compile(copy.deepcopy(folded))
        for bf16 in (False, True)[:1 + args.bf16]:
            key = "compile" + (" bf16" if bf16 else "")
            cases[key] = batch_runner(compiled, *inputs[args.batch], bf16=bf16)
            t0 = time.perf_counter()
            cases[key]()
            first_call[key] = time.perf_counter() - t0
    times = interleave(cases, args.rounds)
    out: dict[str, Any] = {"reference": f"batch {args.batch}, fp32, folded, channels-last", "cases": {}}
    for key in cases:
        tiles = rate(work.get(key, args.batch), times[key])
        out["cases"][key] = {"batch": work.get(key, args.batch), "tiles_per_s": tiles,
                             "conus_model_s": {k: DOMAIN_TILES / v for k, v in tiles.items()}}
        if key in first_call:
            out["cases"][key]["first_call_s"] = first_call[key]
    return out


def bench_tiles(lite: Downscaler, args: argparse.Namespace) -> dict[str, Any]:
    """Whole CONUS fields through downscale_domain with 64², 128² and 256² tiles, fp32 and bf16."""
    spec = GridSpec.from_domain(DOMAIN)
    coarse, terrain = conus_inputs(spec)
    models: dict[int, Downscaler] = {}
    patchers: dict[int, Patcher] = {}
    gflop_field: dict[int, float] = {}
    for tile in args.tiles:
        unfolded = lite if tile == lite.config.tile else with_tile(lite, tile)
        patchers[tile] = Patcher(spec.coarse_shape, tile=tile, ratio=unfolded.config.ratio,
                                 buffer=unfolded.config.buffer)
        gflop_field[tile] = tile_flops(unfolded) * len(patchers[tile]) / 1e9
        models[tile] = copy.deepcopy(unfolded).for_inference(channels_last=True)
    outputs: dict[str, np.ndarray] = {}

    def field(tile: int, bf16: bool) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with amp(bf16):
                fine = downscale_domain(models[tile], coarse, terrain, patchers[tile], batch_size=args.batch)
            outputs[f"{tile}/{'bf16' if bf16 else 'fp32'}"] = fine
            return fine

        return run

    cases: dict[str, Callable[[], object]] = {
        f"{t}/{d}": field(t, d == "bf16") for t in args.tiles for d in ("fp32", "bf16")[:1 + args.bf16]
    }
    times = interleave(cases, args.rounds_field)
    ref = outputs[f"{args.tiles[0]}/fp32"]
    ref_conus_s = statistics.median(times[f"{args.tiles[0]}/fp32"])
    result: dict[str, Any] = {"domain": spec.describe(), "batch": args.batch,
                              "overlap": patchers[args.tiles[0]].overlap, "reference": f"{args.tiles[0]}/fp32",
                              "cases": {}}
    for key in cases:
        tile, dtype = int(key.split("/")[0]), key.split("/")[1]
        fine, fp32 = outputs[key], outputs[f"{tile}/fp32"]
        diff = np.abs(fine - ref)
        entry = {
            "tile": tile, "coarse_input": models[tile].config.coarse_size, "tiles": len(patchers[tile]),
            "computed_pixels_over_domain": len(patchers[tile]) * tile**2 / (spec.fine_shape[0] * spec.fine_shape[1]),
            "gflop_per_field": gflop_field[tile],
            "conus_s": seconds(times[key]),
            "speedup_vs_reference": ref_conus_s / statistics.median(times[key]),
            "max_abs_diff_vs_reference_mm": float(diff.max()),
            "mean_abs_diff_vs_reference_mm": float(diff.mean()),
        }
        if dtype == "bf16":
            d16 = np.abs(fine - fp32)
            entry["bf16_max_abs_diff_vs_fp32_mm"] = float(d16.max())
            entry["bf16_mean_abs_diff_vs_fp32_mm"] = float(d16.mean())
        result["cases"][key] = entry
    result["field_max_mm"] = float(ref.max())
    result["field_mean_mm"] = float(ref.mean())
    return result


# -- end to end -----------------------------------------------------------------------------------
def write_conus_grib(directory: Path, hours: tuple[int, ...]) -> list[Path]:
    """GFS-like 0.25° GRIB2 files (one per forecast hour) over a box around CONUS."""
    from harpnet_cli.testing.fixtures import box_axes, synthetic_hourly, write_gfs_sequence

    lat, lon = box_axes(GFS_BOX)
    hourly = synthetic_hourly(max(hours), lat.size, lon.size, seed=2)
    return write_gfs_sequence(directory, hourly, hours, box=GFS_BOX)


class TimingReporter:
    """A Reporter that timestamps progress: tiles done, so steps end at multiples of the tiles per step."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.start = self.end = 0.0
        self.marks: list[tuple[int, float]] = []

    def info(self, message: str) -> None:
        """Ignore."""

    def warning(self, message: str) -> None:
        """Ignore."""

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Record the start, every advance and the end."""
        done = 0
        self.start = time.perf_counter() - self.t0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.marks.append((done, time.perf_counter() - self.t0))

        yield advance
        self.end = time.perf_counter() - self.t0

    def step_ends(self, tiles_per_step: int) -> list[float]:
        """Time at which each step's last tile finished."""
        return [t for done, t in self.marks if done % tiles_per_step == 0]


def downscale_config(inputs: list[Path], output: Path, model: Path, threads: int) -> Any:
    """The DownscaleConfig of ``harpnet downscale INPUTS -o OUTPUT -m MODEL --domain conus``."""
    from harpnet_cli.config import DownscaleConfig

    return DownscaleConfig(inputs=inputs, output=output, model=model, domain=DOMAIN, threads=threads,
                           overwrite=True, device="cpu", command_line="bench_inference")


def cli(inputs: list[Path], output: Path, model: Path, threads: int) -> list[str]:
    """The ``harpnet downscale`` command line."""
    exe = shutil.which("harpnet", path=str(Path(sys.executable).parent)) or "harpnet"
    return [exe, "-q", "downscale", *map(str, inputs), "-o", str(output), "-m", str(model), "--domain", DOMAIN,
            "--threads", str(threads), "--device", "cpu", "--overwrite", "--json"]


def run_cli(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall time of a subprocess and its ``--json`` summary."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def breakdown(rep: TimingReporter, total: float) -> dict[str, float]:
    """Setup (read, remap, model load, terrain), model steps and writing of an in-process run."""
    return {"read_setup_s": rep.start, "steps_s": rep.end - rep.start, "write_s": total - rep.end}


def bench_end_to_end(lite: Downscaler, model: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One CONUS 3-hour step: in-process run_downscale and subprocess, ``--repeats`` each.

    In-process also with the same weights saved as checkpoints of the larger ``--tiles`` (the
    workflow cuts tiles of the checkpoint's ``tile``), fp32 and ``--bf16``.
    """
    from harpnet_cli.io.checkpoints import save_checkpoint
    from harpnet_cli.workflows.downscale import run_downscale

    src = write_conus_grib(tmp / "step", (3,))
    out = tmp / "step.nc"
    cfg = downscale_config(src, out, model, args.threads)
    configs = {}
    for tile in args.tiles:
        path = model if tile == lite.config.tile else save_checkpoint(tmp / f"tile{tile}.pt", with_tile(lite, tile))
        for bf16 in (False, True)[:1 + args.bf16]:
            configs[f"{tile}/{'bf16' if bf16 else 'fp32'}"] = downscale_config(
                src, tmp / "variant.nc", path, args.threads).model_copy(update={"bf16": bf16})
    cmd = cli(src, out, model, args.threads)
    imports = [sys.executable, "-c", "import torch, harpnet_cli.cli, harpnet_cli.workflows.downscale"]
    inproc: list[float] = []
    parts: list[dict[str, float]] = []
    variants: dict[str, list[float]] = {key: [] for key in configs}
    sub, reported, imported = [], [], []
    for _ in range(args.repeats):  # round-robin, so drift of a shared machine hits every case alike
        rep = TimingReporter()
        res = run_downscale(cfg, rep)
        inproc.append(time.perf_counter() - rep.t0)
        parts.append(breakdown(rep, inproc[-1]))
        for key, vcfg in configs.items():
            rep = TimingReporter()
            run_downscale(vcfg, rep)
            variants[key].append(rep.end - rep.start)
        wall, summary = run_cli(cmd)
        sub.append(wall)
        reported.append(float(summary["seconds"]))
        t0 = time.perf_counter()
        subprocess.run(imports, check=True)
        imported.append(time.perf_counter() - t0)
    return {
        "input": f"{src[0].name}: GFS-like GRIB2 over {GFS_BOX} (0.25°, one 0-3 h APCP message)",
        "input_bytes": src[0].stat().st_size,
        "output_bytes": out.stat().st_size,
        "domain": res.domain.describe() if res.domain is not None else None,
        "mass_ratio": res.mass_ratio,
        "repeats": args.repeats,
        "in_process_s": seconds(inproc),
        "in_process_breakdown_median_s": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
        "in_process_model_s_by_tile": {k: seconds(v) for k, v in variants.items()},
        "subprocess_s": seconds(sub),
        "subprocess_workflow_reported_s": seconds(reported),
        "python_torch_harpnet_import_s": seconds(imported),
        "note": "in-process runs reuse the warm process (torch imported, terrain asset decoded, oneDNN "
                "kernels built); the subprocess pays imports (~python_torch_harpnet_import_s), the terrain "
                "decode and first-call kernel creation on top",
    }


def bench_series(model: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A 16-day GFS run (f003..f384, 128 files) in one ``harpnet downscale`` call to one NetCDF."""
    from harpnet_cli.workflows.downscale import run_downscale

    hours = tuple(range(3, 385, 3))
    t0 = time.perf_counter()
    src = write_conus_grib(tmp / "series", hours)
    t_write = time.perf_counter() - t0
    out = tmp / "series.nc"
    wall, summary = run_cli(cli(src, out, model, args.threads))
    result: dict[str, Any] = {
        "steps": len(hours),
        "files": len(src),
        "note": "128 files f003..f384: a GFS f000 carries no APCP, so there is no 129th field",
        "input_bytes": sum(p.stat().st_size for p in src),
        "output_bytes": out.stat().st_size,
        "fixture_write_s": t_write,
        "subprocess_wall_s": wall,
        "subprocess_workflow_reported_s": float(summary["seconds"]),
        "target_s": 120.0,
        "steps_in_one_call": summary["steps"],
    }
    if not args.series_breakdown:
        return result
    rep = TimingReporter()
    res = run_downscale(downscale_config(src, out, model, args.threads), rep)
    total = time.perf_counter() - rep.t0
    steps = np.diff([rep.start, *rep.step_ends(DOMAIN_TILES)]).tolist()
    result["in_process"] = {
        "total_s": total,
        **breakdown(rep, total),
        "per_step_s": {"median": statistics.median(steps), "min": min(steps), "max": max(steps)} if steps else None,
        "steps_timed": len(steps),
        "mass_ratio": res.mass_ratio,
    }
    return result


# -- report ---------------------------------------------------------------------------------------
def machine(threads: int) -> dict[str, Any]:
    """Platform, CPU model, torch and thread count."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx512", "amx"))]
    return {"platform": platform.platform(), "cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": threads,
            "harpnet_version": __version__}


def f(x: float, digits: int = 1) -> str:
    """A number for a table cell."""
    return f"{x:,.{digits}f}"


def print_tables(report: dict[str, Any]) -> None:
    """Rich tables of every section that ran."""
    if "models" in report:
        print_models(report["models"])
    if "levers" in report:
        print_levers(report["levers"])
    if "tiles" in report:
        print_tiles(report["tiles"])
    print_end_to_end(report)


def print_models(m: dict[str, Any]) -> None:
    """Peak, model throughput and the headline ratio."""
    peak = m["peak_matmul_2048_gflop_per_s"]
    bf16 = (f", bf16 {f(peak['bf16']['median'], 0)}/{f(peak['bf16']['best'], 0)}" if "bf16" in peak
            else " (bf16 skipped: no native bfloat16 on this CPU)")
    console.print(f"peak (2048² matmul, median/best GFLOP/s): fp32 {f(peak['fp32']['median'], 0)}/"
                  f"{f(peak['fp32']['best'], 0)}{bf16}")
    t = Table(title=f"models, 64×64 tiles, batch {m['batch']}, folded + channels-last (median, best)")
    for col in ("case", "params", "GFLOP/tile", "tiles/s", "best", "GFLOP/s", "% peak", "CONUS s"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for key, r in m["runs"].items():
        p = m["presets"][key.split("/")[0]]
        t.add_row(key, f"{p['params'] / 1e6:.2f} M", f"{p['gflop_per_tile']:.3f}", f(r["tiles_per_s"]["median"]),
                  f(r["tiles_per_s"]["best"]), f(r["gflop_per_s"]["median"]),
                  f(100 * r["fraction_of_peak"]["median"]), f(r["conus_model_s"]["median"], 3))
    console.print(t)
    for dtype, ratio in m["lite_over_v1"].items():
        ok = "meets" if ratio["median"] >= TARGET_RATIO else "BELOW"
        console.print(f"[bold]lite / harpnet-v1 {dtype}: {ratio['median']:.1f}× (best {ratio['best']:.1f}×), "
                      f"{ok} the {TARGET_RATIO:.0f}× target[/bold]")


def print_levers(lv: dict[str, Any]) -> None:
    """Batch, layout, bf16 and compile on lite."""
    t = Table(title=f"levers on lite (reference: {lv['reference']})")
    for col in ("case", "batch", "tiles/s", "best", "CONUS model s", "first call s"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for key, r in lv["cases"].items():
        t.add_row(key, str(r["batch"]), f(r["tiles_per_s"]["median"]), f(r["tiles_per_s"]["best"]),
                  f(r["conus_model_s"]["median"], 3), f(r["first_call_s"], 1) if "first_call_s" in r else "")
    console.print(t)


def print_tiles(tl: dict[str, Any]) -> None:
    """Inference tile sizes over CONUS."""
    t = Table(title=f"inference tile size, whole CONUS field via downscale_domain (batch {tl['batch']}, "
                    f"overlap {tl['overlap']}); diffs vs {tl['reference']}, field max {tl['field_max_mm']:.1f} mm")
    for col in ("case", "tiles", "px/domain", "GFLOP/field", "CONUS s", "best", "speed-up", "max|Δ| mm",
                "mean|Δ| mm", "bf16 max|Δ|", "bf16 mean|Δ|"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for key, r in tl["cases"].items():
        t.add_row(key, str(r["tiles"]), f(r["computed_pixels_over_domain"], 2), f(r["gflop_per_field"], 1),
                  f(r["conus_s"]["median"], 3), f(r["conus_s"]["best"], 3), f(r["speedup_vs_reference"], 2),
                  f"{r['max_abs_diff_vs_reference_mm']:.3g}", f"{r['mean_abs_diff_vs_reference_mm']:.2g}",
                  f"{r.get('bf16_max_abs_diff_vs_fp32_mm', float('nan')):.3g}",
                  f"{r.get('bf16_mean_abs_diff_vs_fp32_mm', float('nan')):.2g}")
    console.print(t)


def print_end_to_end(report: dict[str, Any]) -> None:
    """One step and the series."""
    e = report.get("end_to_end")
    if e:
        b = e["in_process_breakdown_median_s"]
        console.print(f"end to end, one CONUS step (median of {e['repeats']}): in-process "
                      f"{e['in_process_s']['median']:.2f} s (read/setup {b['read_setup_s']:.2f} + model "
                      f"{b['steps_s']:.2f} + write {b['write_s']:.2f}), subprocess {e['subprocess_s']['median']:.2f} s "
                      f"(imports alone {e['python_torch_harpnet_import_s']['median']:.2f} s)")
        tiles = ", ".join(f"{k} {v['median']:.2f}" for k, v in e["in_process_model_s_by_tile"].items())
        console.print(f"  in-process model part by tile/dtype (s): {tiles}")
    s = report.get("series")
    if s:
        console.print(f"series, {s['steps']} steps in one call: subprocess {s['subprocess_wall_s']:.1f} s "
                      f"(target ≤ {s['target_s']:.0f} s)")
    if s and "in_process" in s:
        ip = s["in_process"]
        per = ip["per_step_s"] or {"median": float("nan"), "min": float("nan"), "max": float("nan")}
        console.print(f"  in-process {ip['total_s']:.1f} s = read/setup "
                      f"{ip['read_setup_s']:.1f} + steps {ip['steps_s']:.1f} (per step median "
                      f"{per['median']:.3f}, {per['min']:.3f}–{per['max']:.3f}) + write {ip['write_s']:.1f}")


def write(path: Path, report: dict[str, Any]) -> None:
    """Write the JSON report (after every section, so an interrupted run keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="lite checkpoint (default: random weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="batch of the model and tile cases")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128, 180], help="batch-size lever")
    parser.add_argument("--tiles", type=int, nargs="+", default=[64, 128, 256], help="inference tile sizes")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds of the model and lever cases")
    parser.add_argument("--rounds-v1", type=int, default=4, help="rounds for harpnet-v1 (~1.7 s a batch)")
    parser.add_argument("--rounds-field", type=int, default=7, help="timed rounds of whole CONUS fields")
    parser.add_argument("--repeats", type=int, default=5, help="end-to-end runs (median)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--quick", action="store_true", help="few rounds, no v1 bf16, no 128-step series")
    parser.add_argument("--no-series", action="store_true", help="skip the 128-step series")
    parser.add_argument("--series-breakdown", action="store_true",
                        help="also run the series in-process for a per-step breakdown (doubles its time)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections (development)")
    parser.add_argument("--force-bf16", action="store_true",
                        help="run the bf16 cases on a CPU without native bfloat16 (emulated: very slow)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.rounds_v1, args.rounds_field, args.repeats = 4, 2, 3, 2
    from harpnet_cli.devices import native_bf16

    args.bf16 = native_bf16() or args.force_bf16

    torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()[0]
    t_start = time.perf_counter()
    from harpnet_cli.testing.models import make_random_checkpoint
    from harpnet_cli.workflows.models import load_model

    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmpdir:
        tmp = Path(tmpdir)
        ckpt = args.model or make_random_checkpoint(tmp / "lite.pt", preset="lite", seed=0)
        lite, _ = load_model(ckpt)
        lite.eval()
        console.print(f"torch {torch.__version__}, {args.threads} threads, model {lite.config.preset} "
                      f"({'random weights' if args.model is None else ckpt}), load average {load_before:.2f}")
        report: dict[str, Any] = {
            "timestamp": started.isoformat(timespec="seconds"),
            "machine": machine(args.threads),
            "model": str(args.model) if args.model else "lite, random weights (seed 0)",
            "quick": args.quick,
            "bf16": "run" if args.bf16 else "skipped: no native bfloat16 on this CPU (--force-bf16 runs it)",
            "note": "figures are {median, best} over interleaved rounds; the machine may be shared "
                    "(see load_average_before_after)",
        }
        sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("models", lambda: bench_models(lite, args)),
            ("levers", lambda: bench_levers(lite, args)),
            ("tiles", lambda: bench_tiles(lite, args)),
            ("end_to_end", lambda: bench_end_to_end(lite, ckpt, tmp, args)),
        ]
        if not (args.quick or args.no_series) or (args.only and "series" in args.only):
            sections.append(("series", lambda: bench_series(ckpt, tmp, args)))
        timings: dict[str, float] = {}
        loads: dict[str, float] = {}
        for name, fn in sections:
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            console.print(f"[dim]{name} ...[/dim]")
            report[name] = fn()
            timings[name] = time.perf_counter() - t0
            loads[name] = os.getloadavg()[0]
            write(args.out, {**report, "section_wall_s": timings, "partial": True})
        report["section_wall_s"] = timings
        report["load_average_after_section"] = loads
        report["total_wall_s"] = time.perf_counter() - t_start
        report["load_average_before_after"] = [load_before, os.getloadavg()[0]]
    print_tables(report)
    write(args.out, report)
    console.print(f"wrote {args.out} ({report['total_wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
