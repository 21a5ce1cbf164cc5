"""Probabilistic scores of ensembles and probability forecasts: CRPS, spread/skill, rank histogram, Brier, reliability.

Members are ``(m, ...)`` arrays over the observations' shape, mm per 3 h; points where the
observation or any member is NaN are skipped. CRPS is the kernel form: ``fair=False`` (default)
is the standard/ECDF estimator, ``fair=True`` the fair (unbiased for the ensemble size) one of
Ferro (2014).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harpnet_cli.core.metrics.common import finite_pairs, safe_ratio


def crps_ensemble(members: np.ndarray, obs: np.ndarray, fair: bool = False) -> np.ndarray:
    """Continuous ranked probability score of an ensemble, point by point (kernel form).

    ``CRPS = mean_i |x_i − y| − Σ_ij |x_i − x_j| / (2 m²)`` (standard/ECDF, ``fair=False``) or
    ``/ (2 m (m − 1))`` (fair, Ferro 2014: unbiased for the ensemble size). The pair sum is
    computed from sorted members in ``O(m log m)``.

    Parameters
    ----------
    members : numpy.ndarray
        ``(m, ...)`` ensemble members, mm per 3 h.
    obs : numpy.ndarray
        ``(...)`` observations.
    fair : bool
        Use the fair estimator (needs ``m >= 2``).

    Returns
    -------
    numpy.ndarray
        ``(...)`` CRPS in mm per 3 h; NaN where the observation or any member is NaN. Average it
        (``np.nanmean``) for a summary score.
    """
    x = np.asarray(members, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    if x.shape[1:] != y.shape:
        raise ValueError(f"members {x.shape} must be (m, *obs.shape) with obs {y.shape}")
    m = x.shape[0]
    if m < 1 or (fair and m < 2):
        raise ValueError(f"need at least {2 if fair else 1} members, got {m}")
    skill = np.abs(x - y).mean(axis=0)
    xs = np.sort(x, axis=0)
    weights = (2 * np.arange(1, m + 1) - m - 1).reshape((m,) + (1,) * y.ndim)
    pair_sum = 2.0 * np.sum(weights * xs, axis=0)  # Σ_ij |x_i − x_j|
    spread = pair_sum / (2.0 * m * (m - 1)) if fair else pair_sum / (2.0 * m * m)
    out = skill - spread
    out[np.isnan(x).any(axis=0) | np.isnan(y)] = np.nan
    return out


def spread_skill_ratio(members: np.ndarray, obs: np.ndarray, finite_correction: bool = True) -> float:
    """Spread-skill ratio ``sqrt(mean var) / RMSE(ensemble mean)``; 1 for a reliable ensemble.

    ``var`` is the unbiased (``ddof=1``) member variance. With ``finite_correction`` the spread is
    multiplied by ``sqrt((m + 1) / m)`` (Fortin et al. 2014), so a perfectly reliable ensemble of
    any size scores 1 on average.

    Parameters
    ----------
    members : numpy.ndarray
        ``(m, ...)`` ensemble members, ``m >= 2``.
    obs : numpy.ndarray
        ``(...)`` observations; points with a NaN anywhere are skipped.
    finite_correction : bool
        Apply the ``sqrt((m + 1) / m)`` factor.

    Returns
    -------
    float
        Dimensionless; NaN when the ensemble mean is perfect or no point is valid.
    """
    x = np.asarray(members, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    if x.shape[1:] != y.shape or x.shape[0] < 2:
        raise ValueError(f"members {x.shape} must be (m >= 2, *obs.shape) with obs {y.shape}")
    ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
    if not ok.any():
        return math.nan
    var = x[:, ok].var(axis=0, ddof=1).mean()
    mse = np.mean((x[:, ok].mean(axis=0) - y[ok]) ** 2)
    factor = math.sqrt((x.shape[0] + 1) / x.shape[0]) if finite_correction else 1.0
    return safe_ratio(factor * math.sqrt(var), math.sqrt(mse))


def rank_histogram(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Rank histogram (Talagrand diagram) counts, ties shared equally.

    An observation equal to ``t`` members with ``b`` members below it adds ``1 / (t + 1)`` to
    each of ranks ``b .. b + t`` (as ``scores.probability.rank_histogram``), which keeps the
    histogram of a calibrated ensemble flat even with many exact zeros.

    Parameters
    ----------
    members : numpy.ndarray
        ``(m, ...)`` ensemble members.
    obs : numpy.ndarray
        ``(...)`` observations; points with a NaN anywhere are skipped.

    Returns
    -------
    numpy.ndarray
        ``(m + 1,)`` float counts (sum = number of valid points); rank 0 = below all members.
        Divide by the sum for relative frequencies.
    """
    x = np.asarray(members, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    if x.shape[1:] != y.shape:
        raise ValueError(f"members {x.shape} must be (m, *obs.shape) with obs {y.shape}")
    m = x.shape[0]
    ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
    xv, yv = x[:, ok], y[ok]
    below = np.sum(xv < yv, axis=0)
    ties = np.sum(xv == yv, axis=0)
    w = 1.0 / (ties + 1)
    diff = np.bincount(below, weights=w, minlength=m + 2) - np.bincount(below + ties + 1, weights=w, minlength=m + 2)
    return np.cumsum(diff)[: m + 1]


def brier_score(prob: np.ndarray, obs_binary: np.ndarray) -> float:
    """Brier score ``mean((p − o)²)``.

    Parameters
    ----------
    prob : numpy.ndarray
        Forecast probabilities in [0, 1], any shape.
    obs_binary : numpy.ndarray
        Same shape, 0/1 (or bool) outcomes; pairs with a NaN are skipped.

    Returns
    -------
    float
        In [0, 1]; NaN when no pair is valid.
    """
    p, o, ok = finite_pairs(prob, obs_binary)
    return float(np.mean((p[ok] - o[ok]) ** 2)) if ok.any() else math.nan


def reliability(
    prob: np.ndarray, obs_binary: np.ndarray, bins: int | Sequence[float] = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram: mean forecast probability and observed frequency per probability bin.

    Parameters
    ----------
    prob : numpy.ndarray
        Forecast probabilities in [0, 1], any shape.
    obs_binary : numpy.ndarray
        Same shape, 0/1 outcomes; pairs with a NaN are skipped.
    bins : int or sequence of float
        Number of equal bins on [0, 1], or the ``B + 1`` edges; bins are ``[e_k, e_k+1)``, the
        last one closed.

    Returns
    -------
    mean_prob : numpy.ndarray
        ``(B,)`` mean forecast probability per bin (NaN for empty bins).
    obs_freq : numpy.ndarray
        ``(B,)`` observed event frequency per bin (NaN for empty bins).
    counts : numpy.ndarray
        ``(B,)`` int number of forecasts per bin.
    """
    p, o, ok = finite_pairs(prob, obs_binary)
    edges = np.linspace(0.0, 1.0, bins + 1) if isinstance(bins, int) else np.asarray(bins, dtype=np.float64)
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, p[ok], side="right") - 1, 0, nb - 1)
    counts = np.bincount(idx, minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_prob = np.bincount(idx, weights=p[ok], minlength=nb) / counts
        obs_freq = np.bincount(idx, weights=o[ok], minlength=nb) / counts
    return mean_prob, obs_freq, counts
