"""Point-by-point scores: continuous (MAE, RMSE, bias, correlation) and categorical (contingency table).

Fields may have any matching shapes (mm per 3 h); pairs where either side is NaN are skipped.
An *event* is ``value >= threshold``; ratios with a zero denominator are NaN.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from harpnet_cli.core.metrics.common import finite_pairs, safe_ratio


# -- continuous -----------------------------------------------------------------------------------
def mae(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Mean absolute error.

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        Same shape (any), mm per 3 h; pairs with a NaN are skipped.

    Returns
    -------
    float
        mm per 3 h; NaN when no pair is valid.
    """
    f, o, ok = finite_pairs(forecast, observed)
    return float(np.abs(f[ok] - o[ok]).mean()) if ok.any() else math.nan


def rmse(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Root mean squared error (mm per 3 h); same conventions as :func:`mae`."""
    f, o, ok = finite_pairs(forecast, observed)
    return float(np.sqrt(np.mean((f[ok] - o[ok]) ** 2))) if ok.any() else math.nan


def bias(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Mean error ``mean(forecast − observed)`` (mm per 3 h; additive bias); same conventions as :func:`mae`."""
    f, o, ok = finite_pairs(forecast, observed)
    return float(np.mean(f[ok] - o[ok])) if ok.any() else math.nan


def pearson_r(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Pearson correlation over all valid pairs (pooled, not per sample).

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        Same shape (any); pairs with a NaN are skipped.

    Returns
    -------
    float
        In ``[-1, 1]``; NaN when either side is constant or no pair is valid.
    """
    f, o, ok = finite_pairs(forecast, observed)
    if not ok.any():
        return math.nan
    df, do = f[ok] - f[ok].mean(), o[ok] - o[ok].mean()
    den = math.sqrt(float(np.sum(df * df)) * float(np.sum(do * do)))
    return safe_ratio(float(np.sum(df * do)), den)


# -- categorical ----------------------------------------------------------------------------------
class Contingency(NamedTuple):
    """2 x 2 contingency counts of events ``value >= threshold`` (ints or int arrays)."""

    hits: Any
    false_alarms: Any
    misses: Any
    correct_negatives: Any


def contingency(forecast: np.ndarray, observed: np.ndarray, threshold: float) -> Contingency:
    """Contingency counts at one threshold.

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        Same shape (any), mm per 3 h; pairs with a NaN are skipped.
    threshold : float
        Event threshold, mm per 3 h; an event is ``value >= threshold``.

    Returns
    -------
    Contingency
        Integer counts.
    """
    f, o, ok = finite_pairs(forecast, observed)
    fe, oe = f[ok] >= threshold, o[ok] >= threshold
    hits = int(np.count_nonzero(fe & oe))
    fa = int(np.count_nonzero(fe & ~oe))
    miss = int(np.count_nonzero(~fe & oe))
    return Contingency(hits, fa, miss, int(ok.sum()) - hits - fa - miss)


def pod(c: Contingency) -> float:
    """Probability of detection ``hits / (hits + misses)``; NaN without observed events."""
    return safe_ratio(c.hits, c.hits + c.misses)


def far(c: Contingency) -> float:
    """False alarm ratio ``false_alarms / (hits + false_alarms)``; NaN without forecast events."""
    return safe_ratio(c.false_alarms, c.hits + c.false_alarms)


def csi(c: Contingency) -> float:
    """Critical success index (threat score) ``hits / (hits + misses + false_alarms)``, in [0, 1]."""
    return safe_ratio(c.hits, c.hits + c.misses + c.false_alarms)


def ets(c: Contingency) -> float:
    """Equitable threat score (Gilbert skill score), in [-1/3, 1].

    ``(hits − h_r) / (hits + misses + false_alarms − h_r)`` with the random-chance hits
    ``h_r = (hits + false_alarms)(hits + misses) / total``; NaN when undefined.
    """
    total = c.hits + c.false_alarms + c.misses + c.correct_negatives
    if total == 0:
        return math.nan
    h_r = (c.hits + c.false_alarms) * (c.hits + c.misses) / total
    return safe_ratio(c.hits - h_r, c.hits + c.misses + c.false_alarms - h_r)


def frequency_bias(c: Contingency) -> float:
    """Frequency bias ``(hits + false_alarms) / (hits + misses)``; 1 is unbiased, NaN without observed events."""
    return safe_ratio(c.hits + c.false_alarms, c.hits + c.misses)


def categorical_scores(forecast: np.ndarray, observed: np.ndarray, threshold: float) -> dict[str, float]:
    """POD, FAR, CSI, ETS and frequency bias at one threshold (see :func:`contingency`).

    Returns
    -------
    dict
        ``pod``, ``far``, ``csi``, ``ets``, ``frequency_bias`` (floats, NaN when undefined).
    """
    c = contingency(forecast, observed, threshold)
    return {"pod": pod(c), "far": far(c), "csi": csi(c), "ets": ets(c), "frequency_bias": frequency_bias(c)}

