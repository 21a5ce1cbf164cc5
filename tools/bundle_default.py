"""Bundle a trained model as the package's default: fp16 weights plus a model card.

Usage (the last step of ``tools/train_default.sh``)::

    python tools/bundle_default.py runs/default/best.pt \\
        --eval "held-out real day 2016-09-22, CONUS=runs/default/eval_real.json" \\
        --eval "held-out real day, West (31-49N, 125-102W)=runs/default/eval_west.json" \\
        --eval "synthetic validation split=runs/default/eval_synthetic.json" \\
        --variants runs/default/variants.json -o harpnet_cli/assets/default

Writes ``model.pt`` (float16 weights, no optimizer: :func:`harpnet_cli.workflows.models.save_half_precision`),
its ONNX graph ``model.onnx`` (so a fresh install runs on ONNX Runtime without torch:
:func:`harpnet_cli.workflows.models.write_graph_beside`) and ``card.json`` (read by ``harpnet
info``), and checks that the fp16 copy gives the same downscaled tiles as the original within 1 %
of the largest amount. ``--stochastic`` adds ``stochastic.pt`` and ``stochastic.onnx``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harpnet_cli import __version__
from harpnet_cli.splits import TRAIN
from harpnet_cli.testing.models import random_tile_inputs
from harpnet_cli.workflows.models import load_model, save_half_precision, write_graph_beside

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Columns of the card's score tables: evaluate JSON key → card label.
COLUMNS = {"mae": "MAE (mm)", "rmse": "RMSE (mm)", "fss_p90_w1": "FSS p90 1-cell", "csi_2p54": "CSI 2.54 mm",
           "spectral_ratio_high": "power ratio (high k)", "mass_error": "mass error"}

#: What the synthetic world is (the code, not the run: the run's figures are read from its files).
SYNTHETIC_WORLD = ("HARPNET's own physically based world (Smith-Barstad orographic rain over ETOPO5 terrain, "
                   "advected synoptic rain, convective cells; terrain lock calibrated against MRMS and PRISM)")
#: The closing caveat of every card.
REAL_USE = "Two real days are very little: for real use, train on CONUS404 with 'harpnet prepare'."


def _run_config(run: Path) -> dict[str, Any]:
    """A run folder's resolved ``config.toml``."""
    return tomllib.loads((run / "config.toml").read_text())


def _store_facts(path: Path) -> dict[str, Any]:
    """What a training store holds: kind, units (fields or windows), training tiles and the training
    windows they come from, tiling, the days of those windows and the held-out date."""
    from harpnet_cli.io.store import TrainingStore

    store = TrainingStore.open(path)
    man = store.manifest
    split = np.asarray(store.split[: len(store)])
    ends = np.unique(np.asarray(store.time[: len(store)])[split == TRAIN]).astype("datetime64[s]")
    starts = (ends - np.timedelta64(3, "h")).astype("datetime64[D]")  # the day each 3-hour window lies in
    return {
        "kind": man["source_kind"], "units": int(man["units"]), "train": int((split == TRAIN).sum()),
        "windows": len(ends), "overlap": int(man["tile"]["overlap"]),
        "max_missing": float(man.get("plan_key", {}).get("max_missing", 0.0)),
        "first": str(starts.min()) if len(starts) else None,
        "last": str(starts.max()) if len(starts) else None,
        "held_out": man.get("validation_start"),
    }


def training_facts(checkpoint: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """How ``checkpoint`` was trained, read from its runs' ``config.toml`` and their stores.

    A seed soup names its member runs (``soup_members``); a plain checkpoint lies in
    ``RUN/checkpoints/``. None when neither leads to a run folder.
    """
    runs = [Path(m["run"]) for m in meta.get("soup_members") or []] or [checkpoint.parent.parent]
    if not all((r / "config.toml").exists() for r in runs):
        return None
    cfg = _run_config(runs[0])
    facts: dict[str, Any] = {key: cfg.get(key) for key in ("epochs", "lr", "lr_schedule", "augment", "batch_size",
                                                             "mix_ratio")}
    facts["seeds"] = len(runs)
    facts["soup"] = bool(meta.get("soup_members"))
    facts["real"] = _store_facts(Path(cfg["store"]))
    facts["mix"] = _store_facts(Path(cfg["mix"])) if cfg.get("mix") else None
    facts["init"] = None
    if cfg.get("init"):
        init = Path(cfg["init"])
        pre = _run_config(init.parent.parent)
        facts["init"] = {"epoch": int(init.stem.rpartition("_")[2]), **_store_facts(Path(pre["store"]))}
    return facts


def _n(count: int, noun: str) -> str:
    """``1 epoch``, ``20 epochs``, ``1,238 training tiles``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def describe_training(facts: dict[str, Any], real_name: str = "MRMS gauge-corrected QPE") -> str:
    """The card's ``trained_on`` text from :func:`training_facts` (``real_name`` names a files store's data)."""
    data, init, mix = facts["real"], facts["init"], facts["mix"]
    parts = []
    if init is not None:
        parts.append(f"Synthetic pre-training ({_n(init['epoch'], 'epoch')}) on {init['units']} full-domain "
                     f"3-hour fields of {SYNTHETIC_WORLD}, then fine-tuning")
    else:
        parts.append("Training")
    if data["kind"] == "synthetic":
        parts.append(f" on {data['units']} full-domain 3-hour fields of {SYNTHETIC_WORLD}")
    else:
        days = data["first"] if data["first"] == data["last"] else f"{data['first']} to {data['last']}"
        parts.append(f" on the real {real_name} of {days}")
    tiles = f"{_n(data['train'], 'training tile')} from {_n(data['windows'], 'three-hour window')}"
    if data["overlap"] != 16:
        tiles += f", cut with an overlap of {data['overlap']} fine cells"
    if data["max_missing"] > 0:
        tiles += f", tiles up to {data['max_missing']:.0%} outside coverage kept with those cells left out of the loss"
    how = [_n(facts["epochs"], "epoch"), f"batch {facts['batch_size']}", f"learning rate {facts['lr']:g}"
           + (" on a cosine schedule" if facts.get("lr_schedule") == "cosine" else "")]
    if facts.get("augment"):
        how.insert(0, "each tile randomly flipped or transposed")
    if mix is not None:
        how.append(f"{facts['mix_ratio']:g} synthetic tile(s) per tile mixed in ({mix['units']} fields)")
    seeds = facts["seeds"]
    how.append(f"{seeds} seeds whose weights are averaged" if facts["soup"] and seeds > 1 else _n(seeds, "seed"))
    parts.append(f" ({tiles}; {', '.join(how)}). ")
    if data["held_out"]:
        parts.append(f"Held out: from {data['held_out'][:10]} on. ")
    return "".join(parts) + REAL_USE


def score_table(path: Path, model_row: str = "harpnet (this model)") -> dict[str, dict[str, float]]:
    """One card table from an ``evaluate --json`` file: the model row first, then the baselines."""
    report = json.loads(path.read_text())
    table: dict[str, dict[str, float]] = {}
    for name, row in report["summary"].items():
        label = name if name in ("bilinear", "bilinear_conservative", "bicubic", "ratio", "ratio_prism") else model_row
        table[label] = {COLUMNS[k]: row[k] for k in COLUMNS if row.get(k) is not None}
    return table


#: Columns of the stochastic model's card table: evaluate JSON ``ensemble`` key → card label.
ENSEMBLE_COLUMNS = {"crps_fair": "fair CRPS (mm)", "spread_skill_ratio": "spread/skill"}


def stochastic_table(path: Path) -> dict[str, float]:
    """The stochastic model's probabilistic scores from an ``evaluate --json`` file (its ``ensemble`` block)."""
    report = json.loads(path.read_text())
    ens = report["ensemble"]
    mean = next(v for k, v in report["summary"].items()
                if k not in ("bilinear", "bilinear_conservative", "bicubic", "ratio", "ratio_prism")
                and not k.endswith("_sample"))
    sample = next((v for k, v in report["summary"].items() if k.endswith("_sample")), {})
    ranks = np.asarray(ens["rank_histogram"]) * len(ens["rank_histogram"])
    row = {label: ens[key] for key, label in ENSEMBLE_COLUMNS.items() if ens.get(key) is not None}
    row["MAE of the mean (mm)"] = mean["mae"]
    row["rank histogram / uniform, min"] = float(ranks.min())
    row["rank histogram / uniform, max"] = float(ranks.max())
    if sample.get("spectral_ratio_high") is not None:
        row["one member's power ratio (high k)"] = sample["spectral_ratio_high"]
    for b in ens["brier"]:
        if b.get("brier_skill") is not None:
            row[f"Brier skill {b['threshold_mm']:g} mm"] = b["brier_skill"]
    return row


def harpnet_commands(script: Path) -> list[str]:
    """The ``harpnet`` commands of a shell script (continuation lines joined), as written there."""
    if not script.exists():
        return []
    text = re.sub(r"\\\n\s*", "", script.read_text())
    return [line[line.index("harpnet "):].strip() for line in text.splitlines()
            if "harpnet " in line and not line.lstrip().startswith("#")]


def record_regions(original: Path, bundled: Path) -> list[dict[str, Any]]:
    """Record in ``bundled`` the regions its run trained on when the checkpoint does not (checkpoints
    written before models recorded them): the grid of the store its run mixed in (``--mix``), from
    the run's ``config.toml`` (for averaged weights, the fine-tuned checkpoint's run). Returns the
    regions the bundled model records."""
    from harpnet_cli.io.checkpoints import read_checkpoint, write_payload
    from harpnet_cli.io.store import TrainingStore
    from harpnet_cli.workflows.train import store_grid

    payload = read_checkpoint(bundled)
    config = payload["config"]
    if isinstance(payload.get("wise_ft"), dict):  # averaged weights (tools/wise_ft.py): the fine-tuned run's
        original = Path(payload["wise_ft"]["fine_tuned"])
    run = original.parent.parent
    if not config.get("regions") and original.parent.name == "checkpoints" and (run / "config.toml").exists():
        mix = _run_config(run).get("mix")
        grid = store_grid(TrainingStore.open(Path(mix))) if mix else {}
        if grid and grid != config.get("grid"):
            payload["config"] = {**config, "regions": [grid]}
            write_payload(bundled, payload)
    return list(payload["config"].get("regions") or [])


def check_half_precision(original: Path, half: Path, seed: int = 0) -> float:
    """Largest difference between the two models' outputs on random rain, relative to its maximum."""
    a, _ = load_model(original)
    b, _ = load_model(half)
    coarse, terrain = random_tile_inputs(a.config, 16, seed=seed, terrain_max=3000.0)
    with torch.no_grad():
        ya, yb = a(coarse, terrain), b(coarse, terrain)
    return float((ya - yb).abs().max() / ya.abs().max())


def bundle_stochastic(source: Path, output: Path, evals: list[str], trained_on: str | None = None) -> dict[str, Any]:
    """Write ``stochastic.pt`` (fp16) and return its card section (``trained_on``: its text, else
    read from its run)."""
    target = save_half_precision(source, output / "stochastic.pt")
    record_regions(source, target)
    write_graph_beside(target)
    drift = check_half_precision(source, target)
    if drift > 0.01:
        raise SystemExit(f"fp16 stochastic weights change the output by {drift:.2%} of its maximum")
    model, meta = load_model(target)
    if not model.config.stochastic:
        raise SystemExit(f"{source}: not a stochastic model (it has no noise_scales)")
    if trained_on is None:
        facts = training_facts(source, meta)
        config = _run_config(source.parent.parent) if source.parent.name == "checkpoints" else {}
        trained_on = ("the deterministic default's weights, fine-tuned with the fair CRPS of "
                      f"{config.get('members', '?')} members per tile on the same real data"
                      + (f" ({describe_training(facts)})" if facts else ""))
    return {
        "parameters": model.param_count(),
        "noise_scales": model.config.noise_scales,
        "trained_on": trained_on,
        "fp16_max_relative_change": drift,
        "scores": {title: stochastic_table(Path(path)) for title, _, path in (e.rpartition("=") for e in evals)},
        "source_checkpoint": {"file": str(source), "epoch": meta.get("epoch")},
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="checkpoint (or ensemble file) to bundle")
    parser.add_argument("--eval", action="append", default=[], metavar="TITLE=JSON",
                        help="an evaluate --json file to put in the card under TITLE")
    parser.add_argument("--variants", type=Path, help="JSON table comparing the training variants")
    parser.add_argument("--name", default="harpnet-lite-default")
    parser.add_argument("--region", default="CONUS (24-50N, 126-66W)",
                        help="the region the model was trained on, for 'harpnet info'")
    parser.add_argument("--limits", default="2 days of real rain (MRMS, 20-21 Sep 2016) and a synthetic world; "
                        "3-hour windows; not verified for operational use", help="its limits, in one line")
    parser.add_argument("--real-name", default="MRMS gauge-corrected QPE", help="the real data's name in the card")
    parser.add_argument("--trained-on", help="what the model was trained on (default: read from its runs' "
                                             "config.toml and stores)")
    parser.add_argument("--stochastic", type=Path, help="a stochastic checkpoint to ship beside it (stochastic.pt)")
    parser.add_argument("--stochastic-trained-on", help="what the stochastic model was trained on (default: read "
                                                        "from its run)")
    parser.add_argument("--stochastic-eval", action="append", default=[], metavar="TITLE=JSON",
                        help="an evaluate --json file of the stochastic model to put in the card under TITLE")
    parser.add_argument("-o", "--output", type=Path, default=Path("harpnet_cli/assets/default"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    model_file = save_half_precision(args.model, args.output / "model.pt")
    record_regions(args.model, model_file)
    write_graph_beside(model_file)
    drift = check_half_precision(args.model, model_file)
    if drift > 0.01:
        raise SystemExit(f"fp16 weights change the output by {drift:.2%} of its maximum; bundle fp32 instead")
    model, meta = load_model(model_file)
    trained_on = args.trained_on
    if trained_on is None:
        facts = training_facts(args.model, meta)  # the fp16 copy keeps the source's metadata
        if facts is None:
            raise SystemExit(f"{args.model}: not in a run folder and not a seed soup; pass --trained-on TEXT")
        trained_on = describe_training(facts, args.real_name)
    scores = {}
    for item in args.eval:
        title, _, path = item.rpartition("=")
        scores[title] = score_table(Path(path))
    if args.variants:
        scores.update(json.loads(args.variants.read_text()))
    card: dict[str, Any] = {
        "name": args.name,
        "trained_on": trained_on,
        "trained_region": args.region,
        "limits": args.limits,
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
    if args.stochastic is not None:
        card["stochastic"] = bundle_stochastic(args.stochastic, args.output, args.stochastic_eval,
                                               args.stochastic_trained_on)
    else:
        for name in ("stochastic.pt", "stochastic.onnx"):  # never ship stochastic weights from another build
            (args.output / name).unlink(missing_ok=True)
    (args.output / "card.json").write_text(json.dumps(card, indent=1, default=float) + "\n")
    size = model_file.stat().st_size / 2**20
    print(f"{model_file}: {size:.2f} MiB, fp16 change {drift:.2e} of max; card with {len(scores)} table(s)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
