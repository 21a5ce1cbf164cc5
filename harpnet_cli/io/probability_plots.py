"""Plots of an ensemble's or a stochastic model's probabilistic scores (``evaluate --plots``).

The reliability diagram (observed frequency against forecast probability, one line per event
threshold, with the counts beneath) and the rank histogram (relative to uniform). Written
atomically with matplotlib's Agg backend, as :mod:`harpnet_cli.io.plots` writes its figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_reliability(path: Path, brier: Sequence[Mapping[str, Any]], title: str = "") -> Path:
    """Reliability diagram of the ``brier`` entries of an ``evaluate`` ensemble block.

    Parameters
    ----------
    path : Path
        The PNG.
    brier : sequence of dict
        Each with ``threshold_mm``, ``brier_skill`` and ``reliability`` (``forecast_probability``,
        ``observed_frequency``, ``count`` per probability bin; None where a bin is empty).
    title : str

    Returns
    -------
    Path
    """
    from harpnet_cli.io.plots import pyplot_and_save

    plt, save = pyplot_and_save()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="0.5", linewidth=0.8, label="perfect reliability")
    width = 0.1 / max(len(brier), 1)
    for i, b in enumerate(brier):
        rel = b["reliability"]
        p = np.array([np.nan if v is None else v for v in rel["forecast_probability"]], dtype=float)
        o = np.array([np.nan if v is None else v for v in rel["observed_frequency"]], dtype=float)
        skill = b.get("brier_skill")
        label = f">= {b['threshold_mm']:g} mm" + ("" if skill is None else f" (BSS {skill:+.2f})")
        seen = np.isfinite(p) & np.isfinite(o)  # empty bins have no point
        ax.plot(p[seen], o[seen], "o-", label=label)
        edges = np.linspace(0, 1, len(rel["count"]) + 1)
        hist.bar(edges[:-1] + i * width, np.maximum(rel["count"], 1), width=width, align="edge")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed frequency")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    hist.set_yscale("log")
    hist.set_xlabel("forecast probability")
    hist.set_ylabel("cells")
    return save(fig, path)


def plot_rank_histogram(path: Path, ranks: Sequence[float], title: str = "") -> Path:
    """Rank histogram relative to uniform (1 = calibrated), with the 0.5x and 1.5x bounds.

    Parameters
    ----------
    path : Path
    ranks : sequence of float
        Relative frequencies of the ``M + 1`` ranks (summing to 1).
    title : str

    Returns
    -------
    Path
    """
    from harpnet_cli.io.plots import pyplot_and_save

    plt, save = pyplot_and_save()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rel = np.asarray(ranks, dtype=float) * len(ranks)
    ax.bar(np.arange(len(rel)), rel, color="tab:blue")
    for level, style in ((1.0, "-"), (0.5, ":"), (1.5, ":")):
        ax.axhline(level, color="0.4", linestyle=style, linewidth=0.8)
    ax.set_xlabel("rank of the truth among the members")
    ax.set_ylabel("frequency / uniform")
    ax.set_title(title, fontsize=9)
    return save(fig, path)
