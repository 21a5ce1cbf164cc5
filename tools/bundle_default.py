"""Bundle a trained model as the package's default: fp16 weights plus a model card.

Usage (the last step of ``tools/train_default.sh``)::

    python tools/bundle_default.py runs/default/best.pt \\
        --eval "held-out real day 2016-09-22, CONUS=runs/default/eval_real.json" \\
        --eval "held-out real day, West (31-49N, 125-102W)=runs/default/eval_west.json" \\
        --eval "synthetic validation split=runs/default/eval_synthetic.json" \\
        --variants runs/default/variants.json -o harpnet_cli/assets/default

Writes ``model.pt`` (float16 weights, no optimizer: :func:`harpnet_cli.io.checkpoints.save_half_precision`)
and ``card.json`` (read by ``harpnet info``), and checks that the fp16 copy gives the same
downscaled tiles as the original within 1 % of the largest amount.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harpnet_cli import __version__
from harpnet_cli.io.checkpoints import load_checkpoint, save_half_precision
from harpnet_cli.testing.models import random_tile_inputs

#: Columns of the card's score tables: evaluate JSON key → card label.
COLUMNS = {"mae": "MAE (mm)", "rmse": "RMSE (mm)", "fss_p90_w1": "FSS p90 1-cell", "csi_2p54": "CSI 2.54 mm",
           "spectral_ratio_high": "power ratio (high k)", "mass_error": "mass error"}

TRAINED_ON = (
    "Synthetic pre-training: 240 full-CONUS 3-hour fields of HARPNET's own physically based world "
    "(Smith-Barstad orographic rain over ETOPO5 terrain, advected synoptic rain, convective cells; "
    "terrain lock calibrated against MRMS and PRISM; 16 epochs), then fine-tuning on the real MRMS "
    "gauge-corrected QPE of 20-21 September 2016 (1,238 training tiles from 16 three-hour windows; "
    "each tile randomly flipped or transposed, 20 epochs, 3 seeds whose weights are averaged); "
    "22 September 2016 held out. "
    "Two real days are very little: for real use, train on CONUS404 with 'harpnet prepare'."
)


def score_table(path: Path, model_row: str = "harpnet (this model)") -> dict[str, dict[str, float]]:
    """One card table from an ``evaluate --json`` file: the model row first, then the baselines."""
    report = json.loads(path.read_text())
    table: dict[str, dict[str, float]] = {}
    for name, row in report["summary"].items():
        label = name if name in ("bilinear", "bilinear_conservative", "bicubic", "ratio", "ratio_prism") else model_row
        table[label] = {COLUMNS[k]: row[k] for k in COLUMNS if row.get(k) is not None}
    return table


def harpnet_commands(script: Path) -> list[str]:
    """The ``harpnet`` commands of a shell script (continuation lines joined), as written there."""
    if not script.exists():
        return []
    text = re.sub(r"\\\n\s*", "", script.read_text())
    return [line[line.index("harpnet "):].strip() for line in text.splitlines()
            if "harpnet " in line and not line.lstrip().startswith("#")]


def check_half_precision(original: Path, half: Path, seed: int = 0) -> float:
    """Largest difference between the two models' outputs on random rain, relative to its maximum."""
    a, _ = load_checkpoint(original)
    b, _ = load_checkpoint(half)
    coarse, terrain = random_tile_inputs(a.config, 16, seed=seed, terrain_max=3000.0)
    with torch.no_grad():
        ya, yb = a(coarse, terrain), b(coarse, terrain)
    return float((ya - yb).abs().max() / ya.abs().max())


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="checkpoint (or ensemble file) to bundle")
    parser.add_argument("--eval", action="append", default=[], metavar="TITLE=JSON",
                        help="an evaluate --json file to put in the card under TITLE")
    parser.add_argument("--variants", type=Path, help="JSON table comparing the training variants")
    parser.add_argument("--name", default="harpnet-lite-default")
    parser.add_argument("-o", "--output", type=Path, default=Path("harpnet_cli/assets/default"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    model_file = save_half_precision(args.model, args.output / "model.pt")
    drift = check_half_precision(args.model, model_file)
    if drift > 0.01:
        raise SystemExit(f"fp16 weights change the output by {drift:.2%} of its maximum; bundle fp32 instead")
    model, meta = load_checkpoint(model_file)
    scores = {}
    for item in args.eval:
        title, _, path = item.rpartition("=")
        scores[title] = score_table(Path(path))
    if args.variants:
        scores.update(json.loads(args.variants.read_text()))
    card: dict[str, Any] = {
        "name": args.name,
        "trained_on": TRAINED_ON,
        "preset": model.config.preset,
        "parameters": model.param_count(),
        "weights": "float16 (loaded as float32)",
        "fp16_max_relative_change": drift,
        "scores": scores,
        "built_with": harpnet_commands(Path(__file__).with_name("train_default.sh")),
        "harpnet_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_checkpoint": {"file": str(args.model), "epoch": meta.get("epoch")},
    }
    (args.output / "card.json").write_text(json.dumps(card, indent=1, default=float) + "\n")
    size = model_file.stat().st_size / 2**20
    print(f"{model_file}: {size:.2f} MiB, fp16 change {drift:.2e} of max; card with {len(scores)} table(s)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
