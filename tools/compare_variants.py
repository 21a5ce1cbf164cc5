"""Compare training variants from ``harpnet evaluate --json`` files: one table per region.

Usage (step 4 of ``tools/train_default.sh``)::

    python tools/compare_variants.py runs/default/eval -o runs/default/variants.json --markdown variants.md

Reads ``NAME.REGION.json`` files (``real_s1.conus.json``, ``mix_soup.west.json`` …). Seeds of one
variant (``NAME_sN``) are averaged, with the spread over seeds; the baselines come from the same
files (they do not depend on the model). MAE is also given as a ratio to bilinear and to
conservative bilinear, the baseline the default must beat, and the grid-scale fractions skill
score at the 90th percentile of wet truth as a difference to conservative bilinear.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

REGIONS = {"conus3": "held-out real day 2016-09-22, CONUS, 3-hour windows (the store scored before)",
           **{f"conus_{h}h": f"held-out real day 2016-09-22, CONUS, {h}-hour windows" for h in (1, 3, 6, 12, 24)},
           **{f"west_{h}h": f"held-out real day 2016-09-22, West (31-49N, 125-102W), {h}-hour windows"
              for h in (1, 3, 6, 12, 24)},
           "nwrfc": "NWRFC winter 6-hour windows, 11-12 Dec 2022 (Cascades, northern Rockies; held out)",
           "radolan": "DWD RADOLAN 2014 hours and 24-hour sums (Germany; held out)",
           "conus": "held-out real day 2016-09-22, CONUS",
           "west": "held-out real day 2016-09-22, West (31-49N, 125-102W)",
           "synthetic": "synthetic validation split"}
BASELINES = ("bilinear", "bilinear_conservative", "bicubic", "ratio", "ratio_prism")
SEED = re.compile(r"^(?P<variant>.+)_s(?P<seed>\d+)$")


def _model_row(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    """The model's row (for a stochastic model the mean of its samples, not the single sample's row)."""
    rows = [v for k, v in summary.items() if k not in BASELINES and not k.endswith("_sample")]
    if len(rows) != 1:
        raise SystemExit(f"expected one model row, got {len(rows)}")
    return rows[0]


def _columns(row: dict[str, float], base: dict[str, dict[str, float]]) -> dict[str, float]:
    cons = base["bilinear_conservative"]
    return {
        "MAE (mm)": row["mae"],
        "MAE / bilinear": row["mae"] / base["bilinear"]["mae"],
        "MAE / cons. bilinear": row["mae"] / cons["mae"],
        "FSS p90 1-cell": row["fss_p90_w1"],
        "FSS - cons. bilinear": row["fss_p90_w1"] - cons["fss_p90_w1"],
        "mass error": row["mass_error"],
    }


def compare(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{region title: {row: {column: value}}}``: variants (seed means) then baselines."""
    found: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    baselines: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted(folder.glob("*.*.json")):
        name, region = path.name[: -len(".json")].rsplit(".", 1)
        if region not in REGIONS:
            continue
        summary = json.loads(path.read_text())["summary"]
        base = {k: summary[k] for k in BASELINES if k in summary}
        baselines.setdefault(region, base)
        m = SEED.match(name)
        variant = f"{m['variant']} (seeds)" if m else name
        found[region][variant].append(_columns(_model_row(summary), base))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for region, title in REGIONS.items():
        if region not in found:
            continue
        table: dict[str, dict[str, float]] = {}
        for variant, rows in found[region].items():
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            if len(rows) > 1:
                mean["MAE seed spread (mm)"] = float(np.std([r["MAE (mm)"] for r in rows]))
                mean["seeds"] = float(len(rows))
            table[variant] = mean
        for name, row in baselines[region].items():
            table[name] = _columns(row, baselines[region])
        out[f"{title}: training variants"] = table
    return out


def markdown(tables: dict[str, dict[str, dict[str, float]]]) -> str:
    """The tables as GitHub markdown (the README's model card)."""
    cols = ["MAE (mm)", "MAE / bilinear", "MAE / cons. bilinear", "FSS p90 1-cell", "FSS - cons. bilinear"]
    lines: list[str] = []
    for title, table in tables.items():
        lines += [f"**{title}**", "", "| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, row in table.items():
            spread = f" ± {row['MAE seed spread (mm)']:.4f}" if "MAE seed spread (mm)" in row else ""
            cells = [f"{row['MAE (mm)']:.4f}{spread}", f"{row['MAE / bilinear']:.3f}",
                     f"{row['MAE / cons. bilinear']:.3f}", f"{row['FSS p90 1-cell']:.4f}",
                     f"{row['FSS - cons. bilinear']:+.4f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of NAME.REGION.json evaluate files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="variants JSON (for bundle_default.py)")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown")
    args = parser.parse_args()
    tables = compare(args.folder)
    if not tables:
        raise SystemExit(f"{args.folder}: no NAME.REGION.json evaluate files")
    args.output.write_text(json.dumps(tables, indent=1) + "\n")
    text = markdown(tables)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
