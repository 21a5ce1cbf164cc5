"""The files ``harpnet evaluate`` writes: the JSON document (``--json``) and the per-tile CSV (``--csv``).

Both are written through a temporary file and a rename (:func:`harpnet_cli.io.atomic.atomic_path`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from harpnet_cli.io.atomic import atomic_path


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write strict JSON (no NaN) atomically.

    Parameters
    ----------
    path : Path
    doc : dict
        Plain, JSON-ready data (undefined numbers as None), e.g. ``EvaluateResult.to_json()``.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


def write_csv(path: Path, rows: dict[str, dict[str, Any]], origins: np.ndarray) -> None:
    """Per-tile errors, long format: ``row,tile,y0,x0,n_values,mae,mse``, written atomically.

    Parameters
    ----------
    path : Path
    rows : dict
        Row name → ``harpnet-scores/1`` row (its ``per_tile`` lists are written).
    origins : (T, 2) int array
        ``(y0, x0)`` fine offset of every tile of the store.
    """
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "tile", "y0", "x0", "n_values", "mae", "mse"])
        for name, row in rows.items():
            pt = row["per_tile"]
            for t, n, a, s in zip(pt["tile"], pt["n_values"], pt["mae"], pt["mse"], strict=True):
                y0, x0 = (int(v) for v in origins[t])
                w.writerow([name, t, y0, x0, n, "" if a is None else f"{a:.6g}", "" if s is None else f"{s:.6g}"])
