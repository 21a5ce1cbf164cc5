"""One CONUS step as a fresh process: ``harpnet -q downscale gfs.f006 -o out.nc``, end to end, by stage.

A cron job or a pipeline stage starts one ``harpnet downscale`` per file, so what it pays is the
whole life of a process: interpreter start, imports, reading, model load, the model, the write
and the exit. Every case below is a fresh subprocess; rounds interleave the cases so that drift of
a shared machine hits them alike, and the load average is recorded.

Cases:

* ``python``: ``python -c pass`` (the interpreter's own start);
* ``import torch``: ``python -c "import torch"`` (a floor for anything that runs the model);
* ``import onnxruntime``: what the default CPU path imports instead of torch;
* ``harpnet``: the command on the real GFS f006 (``--input``), terrain cache warm (the default
  backend: ONNX Runtime on the CPU, with the bundled graph);
* ``harpnet --backend torch``: the same command on torch;
* ``harpnet, cold cache``: the same with an empty terrain cache (the first run on a machine);
* ``baseline`` (with ``--baseline DIR``): the same command from another checkout (e.g. the code
  before this change), on the same host in the same rounds.

Then one instrumented run gives the **stages** (seconds from the process start: imports, reading,
model load, terrain, model, write, exit) and ``python -X importtime`` the largest imports. Writes
``benchmarks/results/coldstart.json``.

Usage::

    python benchmarks/bench_coldstart.py                       # 5 rounds
    python benchmarks/bench_coldstart.py --baseline ../main    # with the other checkout's figure
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REAL_GFS, REPO, load, machine, summary, write_json  # noqa: E402

#: Modules whose import cost the report lists (when imported at all).
WATCHED = ("torch", "onnxruntime", "onnx",
           "eccodes", "xarray", "pandas", "dask", "distributed", "zarr", "netCDF4", "scipy", "pydantic",
           "typer", "rich", "matplotlib", "pyproj", "cftime", "harpnet_cli.cli", "harpnet_cli.workflows.downscale")


def env_for(code: Path, cache: str) -> dict[str, str]:
    """The environment of a run of the checkout ``code`` with the terrain cache ``cache``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(code)
    env["HARPNET_CACHE_DIR"] = cache
    return env


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one subprocess (which must succeed), run outside any checkout: ``python -m``
    puts the working folder first on the path, which would shadow ``PYTHONPATH``."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return time.perf_counter() - t0


# -- the instrumented run ------------------------------------------------------------------------------
def stages_worker(argv: list[str]) -> None:
    """Run the CLI with timers on its stages; print them (seconds since the epoch) before exiting."""
    marks: dict[str, float] = {"imports_start": time.time()}
    spans: dict[str, list[float]] = {}

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spans.setdefault(label, []).append(time.perf_counter() - t0)

        setattr(owner, name, timed_call)

    import harpnet_cli.cli as cli
    from harpnet_cli import process
    from harpnet_cli.core import accumulation
    from harpnet_cli.io import outputs, readers, terrain
    from harpnet_cli.workflows import downscale

    marks["cli_imported"] = time.time()
    wrap(downscale, "_read_series", "scan inputs and plan steps")
    wrap(accumulation.LazySeries, "amount", "read fields (decode GRIB)")
    wrap(downscale._ModelRunner, "load", "load model (and its runtime's import)")
    wrap(downscale, "_target", "target grid and regridder")
    wrap(terrain, "load_terrain", "terrain")
    wrap(downscale._ModelRunner, "tiles_for", "choose tiles, prepare model")
    wrap(downscale._ModelRunner, "step", "model (incl. first-call kernels)")
    wrap(outputs.OutputWriter, "add", "write NetCDF (incl. its imports)")
    del readers
    original_exit = process.exit_process

    def exit_process(code: Any) -> Any:
        marks["work_done"] = time.time()
        modules = sorted(m for m in WATCHED if m in sys.modules)
        print(json.dumps({"marks": marks, "spans": {k: sum(v) for k, v in spans.items()}, "modules": modules}),
              file=sys.stderr)
        return original_exit(code)

    process.exit_process = exit_process
    sys.argv = ["harpnet", *argv]
    cli.main()


def stages(cmd_args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One instrumented fresh process: stage times from its start (exit measured from outside)."""
    t0 = time.time()
    out = subprocess.run([sys.executable, __file__, "--stages-worker", "--", *cmd_args], env=env, check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    end = time.time()
    report = json.loads(out.stderr.strip().splitlines()[-1])
    marks, spans = report["marks"], report["spans"]
    start_to_imports = marks["imports_start"] - t0
    result = {
        "wall_s": end - t0,
        "interpreter_start_s": start_to_imports,
        "cli_imports_s": marks["cli_imported"] - marks["imports_start"],
        **{f"{k}_s": v for k, v in spans.items()},
        "exit_s": end - marks["work_done"],
        "modules_imported": report["modules"],
    }
    accounted = start_to_imports + result["cli_imports_s"] + sum(spans.values()) + result["exit_s"]
    result["other_s"] = result["wall_s"] - accounted
    return result


def import_times(cmd_args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Cumulative import time (s) of the watched modules in one ``-X importtime`` run."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "harpnet_cli", *cmd_args], env=env,
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    times: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if name in WATCHED and name not in times and cumulative.strip().isdigit():
            times[name] = int(cumulative) / 1e6
    return times


def main() -> None:
    """Time the cases in rounds, then the stages; print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=REAL_GFS, help="the GFS file (default: the real f006)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to time the same command with")
    parser.add_argument("--stages-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages_worker:
        stages_worker(args.rest)
        return
    if not args.input.exists():
        sys.exit(f"{args.input} is not here; pass --input GRIB")
    with tempfile.TemporaryDirectory(prefix="bench_coldstart_") as tmp:
        out = Path(tmp) / "out.nc"
        warm = str(Path(tmp) / "cache")
        cmd_args = ["-q", "downscale", str(args.input), "-o", str(out), "--overwrite"]
        run = [sys.executable, "-m", "harpnet_cli", *cmd_args]
        cases: dict[str, tuple[list[str], Any]] = {
            "python": ([sys.executable, "-c", "pass"], lambda: env_for(REPO, warm)),
            "import torch": ([sys.executable, "-c", "import torch"], lambda: env_for(REPO, warm)),
            "import onnxruntime": ([sys.executable, "-c", "import onnxruntime"], lambda: env_for(REPO, warm)),
            "harpnet": (run, lambda: env_for(REPO, warm)),
            "harpnet --backend torch": ([*run, "--backend", "torch"], lambda: env_for(REPO, warm)),
            "harpnet, cold cache": (run, lambda: env_for(REPO, tempfile.mkdtemp(dir=tmp))),
        }
        if args.baseline:
            cases["baseline"] = (run, lambda: env_for(args.baseline.resolve(), warm))
            check = subprocess.run([sys.executable, "-c", "import harpnet_cli; print(harpnet_cli.__file__)"],
                                   env=env_for(args.baseline.resolve(), warm), capture_output=True, text=True,
                                   cwd=tempfile.gettempdir(), check=True)
            if not check.stdout.strip().startswith(str(args.baseline.resolve())):
                sys.exit(f"the baseline imports harpnet_cli from {check.stdout.strip()}, not {args.baseline}")
        timed(run, env_for(REPO, warm))  # fill the cache, warm the page cache
        before = load()
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for key, (cmd, env) in cases.items():
                times[key].append(timed(cmd, env()))
        breakdown = stages(cmd_args, env_for(REPO, warm))
        imports = import_times(cmd_args, env_for(REPO, warm))
        report = {
            "machine": machine(), "input": args.input.name, "command": "harpnet " + " ".join(cmd_args[:-3]),
            "rounds": args.rounds, "load_before_after": [before, load()],
            "wall_s": {k: summary(v) for k, v in times.items()}, "wall_raw_s": times,
            "stages_s": breakdown, "imports_s": imports, "output_bytes": out.stat().st_size,
            "target_s": 1.5,
            "default_over_torch_backend": float(np.median(np.divide(times["harpnet"],
                                                                      times["harpnet --backend torch"]))),
        }
        if args.baseline:
            report["baseline"] = str(args.baseline)
    print_report(report)
    print(f"wrote {write_json('coldstart', report)}")


def print_report(report: dict[str, Any]) -> None:
    """The figures as text."""
    print(f"fresh process, {report['input']} over CONUS; load before/after {report['load_before_after']}")
    for key, s in report["wall_s"].items():
        print(f"  {key:22s} median {s['median']:.2f} s  (best {s['best']:.2f}, worst {s['worst']:.2f})")
    print(f"  the default / --backend torch, per round: median {report['default_over_torch_backend']:.2f}")
    print("stages of one instrumented run (s):")
    for key, value in report["stages_s"].items():
        if key.endswith("_s"):
            print(f"  {key[:-2]:38s} {value:6.2f}")
    print(f"  imported: {', '.join(report['stages_s']['modules_imported'])}")
    print("largest imports (cumulative s): " + ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(report["imports_s"].items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
