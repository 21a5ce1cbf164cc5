"""Calibrate the synthetic world's terrain lock against real observations.

The statistic is :class:`harpnet_cli.core.metrics.TerrainLock`: the correlation, inside wet
coarse cells with relief, of the fine-scale precipitation anomaly with the elevation anomaly.
Real 3-hour fields (MRMS) are weakly locked, a 30-year climatology (PRISM) strongly: so the
synthetic world is tuned so that single samples match the real hours and the mean of many
samples (its climatology) approaches PRISM's. The knobs are
:data:`harpnet_cli.core.synthetic.SPECTRAL_SLOPE_RANGE` (steep spectra leave little sub-grid
variance that is not orographic) and :data:`~harpnet_cli.core.synthetic.OROGRAPHIC_EFFICIENCY`.

Usage::

    python tools/calibrate_synthetic.py --samples 24 --real runs/mrms.zarr \\
        --prism ../shared/data/train/prism-normal/PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip

Prints one line per variant and writes ``benchmarks/results/terrain_lock.json``.

Longer windows (``--hours 3,24 --turn 0,5,15``): the same statistic of windows summed from
successive 3-hour states under a flow turning ``TURN_DEG_PER_STEP`` degrees per step, for each
turn, with the knobs above at their current setting; its growth from 3 to 24 hours is compared
with that of real windows (``--real`` stores recording window lengths, ``tools/terrain_lock.py
--period``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harpnet_cli.core.metrics import TerrainLock
from harpnet_cli.core.synthetic import constants as syn
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.terrain import load_terrain

#: (spectral slope range, orographic efficiency) variants tried; the first is the current setting.
#: Variants tried, as values of the knobs of :mod:`harpnet_cli.core.synthetic.constants`; the first
#: is the current setting. Keys: slope (``SPECTRAL_SLOPE_RANGE``), efficiency (``OROGRAPHIC_EFFICIENCY``),
#: embedded (``EMBEDDED_CONVECTION``), preference (``CELL_SLOPE_PREFERENCE``).
KNOBS = {"slope": "SPECTRAL_SLOPE_RANGE", "efficiency": "OROGRAPHIC_EFFICIENCY",
         "embedded": "EMBEDDED_CONVECTION", "preference": "CELL_SLOPE_PREFERENCE"}
VARIANTS: list[dict[str, object]] = [
    {k: getattr(syn, v) for k, v in KNOBS.items()},
    {"slope": (3.0, 4.0), "efficiency": 1.0, "embedded": 0.0, "preference": 1.0},
    {"slope": (2.5, 3.5), "efficiency": 1.0, "embedded": 0.5, "preference": 0.0},
    {"slope": (2.5, 3.5), "efficiency": 1.0, "embedded": 1.0, "preference": 0.0},
    {"slope": (2.5, 3.5), "efficiency": 0.5, "embedded": 1.0, "preference": 0.0},
]


def synthetic_lock(spec: GridSpec, samples: int, seed: int, steps: int = 1) -> tuple[float, float]:
    """Terrain lock of single samples (pooled) and of their mean field, for the current knobs
    (windows of ``steps`` 3-hour states)."""
    from harpnet_cli.workflows.prepare import _world

    padded = spec.padded(1)
    world = _world(padded)
    terrain = load_terrain(padded)
    single, total = TerrainLock(), np.zeros(terrain.shape)
    for i in range(samples):
        fine, _ = world.sample(i, seed, steps=steps)
        single.add(fine, terrain)
        total += fine
    clim = TerrainLock(wet_mm=0.0)
    clim.add(total / samples, terrain)
    return single.result(), clim.result()


def prism_lock(path: Path, spec: GridSpec) -> float:
    """Terrain lock of the PRISM normal interpolated to the fine grid."""
    from scipy.interpolate import RegularGridInterpolator

    from harpnet_cli.io.prism import read_prism

    raster = read_prism(path)
    interp = RegularGridInterpolator((raster.lat, raster.lon), raster.data, bounds_error=False)
    lat, lon = np.meshgrid(spec.fine_lat(), spec.fine_lon(), indexing="ij")
    values = interp(np.stack([lat, lon], axis=-1))
    acc = TerrainLock(wet_mm=0.0)
    acc.add(values, load_terrain(spec))
    return acc.result()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real", type=Path, help="a store of real observations (its train split)")
    parser.add_argument("--prism", type=Path, help="the PRISM normal (zip)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/terrain_lock.json"))
    parser.add_argument("--hours", help="window lengths (multiples of 3) for the turning-flow run, e.g. 3,24")
    parser.add_argument("--turn", default="0,5,15", help="turns of the flow per 3-hour step (degrees) to try")
    args = parser.parse_args()
    if args.hours:
        turning(args)
        return
    spec = GridSpec.from_domain("conus")
    report: dict[str, object] = {"samples": args.samples, "variants": []}
    if args.real:
        from tools.terrain_lock import store_terrain_lock

        report["real"], _ = store_terrain_lock(str(args.real), "train", 50_000)
        print(f"real {args.real}: {report['real']:.3f}")
    if args.prism:
        report["prism"] = prism_lock(args.prism, spec)
        print(f"PRISM normal: {report['prism']:.3f}")
    for variant in VARIANTS:
        for key, value in variant.items():
            setattr(syn, KNOBS[key], value)
        single, clim = synthetic_lock(spec, args.samples, args.seed)
        report["variants"].append({**variant, "single": single, "climatology": clim})  # type: ignore[attr-defined]
        print(f"{variant}: single samples {single:.3f}, mean of {args.samples} samples {clim:.3f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


def turning(args: argparse.Namespace) -> None:
    """The terrain lock of windows of each of ``--hours`` for each ``--turn`` (the turning-flow knob)."""
    spec = GridSpec.from_domain("conus")
    hours = [int(h) for h in args.hours.split(",")]
    report: dict[str, object] = {"samples": args.samples, "hours": hours, "runs": []}
    if args.real:
        from tools.terrain_lock import store_terrain_lock

        report["real"] = {h: store_terrain_lock(str(args.real), "train", 50_000, period=h)[0] for h in hours}
        print(f"real {args.real}: " + ", ".join(f"{h} h {v:.3f}" for h, v in report["real"].items()))  # type: ignore[attr-defined]
    for turn in (float(t) for t in args.turn.split(",")):
        syn.TURN_DEG_PER_STEP = turn
        locks = {h: synthetic_lock(spec, args.samples, args.seed, steps=h // 3) for h in hours}
        report["runs"].append({"turn": turn, **{f"{h}h": v for h, v in locks.items()}})  # type: ignore[attr-defined]
        print(f"turn {turn:g} deg/step: " + ", ".join(f"{h} h single {s:.3f} (mean field {c:.3f})"
                                                      for h, (s, c) in locks.items()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
