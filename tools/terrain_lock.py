"""Print the terrain-lock statistic (:class:`harpnet_cli.core.metrics.TerrainLock`) of stores.

Usage::

    python tools/terrain_lock.py runs/mrms.zarr runs/synthetic.zarr [--split train] [--max 20000] [--period 24]

The synthetic world is calibrated so its statistic is close to that of real observations.
"""

from __future__ import annotations

import argparse

import numpy as np

from harpnet_cli.core.metrics import TerrainLock
from harpnet_cli.io.store import TrainingStore
from harpnet_cli.registry import PERIOD_INPUT
from harpnet_cli.splits import SPLIT_NAMES


def store_terrain_lock(path: str, split: str, limit: int, chunk: int = 2048,
                       period: float | None = None) -> tuple[float, int]:
    """Terrain lock of the fine targets of one split of a store (at most ``limit`` samples; only
    windows of ``period`` hours when given, for a store that records window lengths)."""
    store = TrainingStore.open(path)
    code = {v: k for k, v in SPLIT_NAMES.items()}[split]
    rows = store.indices(code)
    if period is not None:
        column = store.state_names.index(PERIOD_INPUT)
        hours = np.exp(np.asarray(store.state[: len(store)], dtype=np.float64)[rows, column])
        rows = rows[np.isclose(hours, period, rtol=1e-3)]
    rows = rows[:limit]
    acc = TerrainLock()
    for start in range(0, len(rows), chunk):
        sample = store.read(rows[start : start + chunk])
        acc.add(sample["fine"][:, 0], sample["terrain"][:, 0])
    return acc.result(), acc.cells


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+")
    parser.add_argument("--split", default="train", choices=sorted(SPLIT_NAMES.values()))
    parser.add_argument("--max", type=int, default=20000, help="samples per store")
    parser.add_argument("--period", type=float, help="only windows of this many hours")
    args = parser.parse_args()
    for path in args.stores:
        value, cells = store_terrain_lock(path, args.split, args.max, period=args.period)
        what = args.split + (f", {args.period:g}-hour windows" if args.period else "")
        print(f"{path}: terrain lock {value:.3f} over {cells} wet coarse cells with relief ({what})")


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    main()
