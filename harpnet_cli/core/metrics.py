"""Verification scores for downscaled precipitation: pure numpy, arrays in, numbers out.

Units: precipitation in mm per 3 h; thresholds in mm per 3 h; windows in fine cells (0.0625°).
Fields are ``(n, H, W)`` (``n`` samples, typically 64 x 64 fine tiles); element-wise scores
accept any matching shapes. NaN marks missing values: continuous and categorical scores skip
pairs where either side is NaN; spatial scores (FSS, spectra) need complete fields.

Conventions
-----------
* An *event* is ``value >= threshold`` (the "≥ 0.01 in" convention behind
  :data:`DEFAULT_THRESHOLDS` = 0.01, 0.1, 0.25, 0.5, 1 inch).
* Ratios with a zero denominator are NaN (a score that is undefined, not 0).
* FSS follows Roberts & Lean (2008), aggregated over samples by summing numerator and
  denominator (as ``scores.spatial.fss_2d`` with ``reduce_dims``); windows are square
  ``w x w`` fine cells; ``mode="valid"`` keeps windows inside the tile (scores'
  ``zero_padding=False``), ``mode="zero"`` pads with zeros (output size of the field).
* CRPS of an ensemble is the kernel form; ``fair=False`` (default) is the standard/ECDF
  estimator, ``fair=True`` the fair (unbiased for the ensemble size) one of Ferro (2014).

JSON schema of :meth:`ScoreAccumulator.to_dict` (``evaluate --json``), ``"schema": "harpnet-scores/1"``
---------------------------------------------------------------------------------------------------
Every float that is undefined (NaN) is written as ``null``. Keys are stable; new keys may be added.

``schema`` (str)
    ``"harpnet-scores/1"``.
``name`` (str)
    Model or baseline name given to the accumulator.
``units`` (str)
    ``"mm per 3 h"``.
``n_samples`` (int)
    Tiles (samples) seen.
``n_values`` (int)
    Fine values scored (both prediction and truth finite).
``continuous`` (object)
    ``mae``, ``rmse``, ``bias`` (mean of prediction − truth), ``pearson_r`` (pooled over all
    values), ``mean_pred``, ``mean_truth``, ``std_pred``, ``std_truth``.
``categorical`` (list, one object per threshold, ascending)
    ``threshold_mm``, ``hits``, ``false_alarms``, ``misses``, ``correct_negatives`` (int counts
    of fine values), ``base_rate`` (observed event frequency), ``pod``, ``far`` (false alarm
    ratio), ``csi``, ``ets``, ``frequency_bias``.
``fss`` (list, one object per threshold x window, threshold-major)
    ``threshold_mm``, ``window`` (fine cells), ``fss``, ``fss_useful`` (``0.5 + base_rate / 2``,
    the skilful-scale target of Roberts & Lean), ``n_samples`` (complete samples used).
``spectrum`` (object, null when no complete sample was seen)
    ``wavenumber`` (cycles per tile, 0 .. 32), ``wavelength_cells`` (fine cells per cycle,
    square tiles; null for 0), ``power_pred``, ``power_truth`` (mean radially averaged power, mm² per 3 h², per
    sample), ``ratio`` (``power_pred / power_truth``), ``n_samples``.
``mass`` (object, only present when coarse tiles were given)
    ``abs_rel_error`` (``Σ|block_mean(pred) − coarse| / Σ coarse`` over the 16 x 16 centre
    cells), ``rel_bias`` (``Σ(block_mean(pred) − coarse) / Σ coarse``), ``n_cells``.
``per_tile`` (object of equal-length lists, tiles ascending, only tiles seen)
    ``tile`` (int id), ``n_values``, ``mae``, ``mse``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from harpnet_cli.grids import RATIO

#: Event thresholds, mm per 3 h (0.01, 0.1, 0.25, 0.5, 1 inch).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.254, 2.54, 6.35, 12.7, 25.4)
#: FSS neighbourhood widths, fine cells (0.0625°, ~7 km): 1 is grid-point, 17 ~ 1°.
DEFAULT_WINDOWS: tuple[int, ...] = (1, 3, 5, 9, 17)
#: Schema tag of :meth:`ScoreAccumulator.to_dict`.
SCHEMA = "harpnet-scores/1"

FssMode = Literal["valid", "zero"]


# -- helpers --------------------------------------------------------------------------------------
def _pair(forecast: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 arrays of the same shape and the mask where both are finite."""
    f = np.asarray(forecast, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    if f.shape != o.shape:
        raise ValueError(f"shapes differ: {f.shape} vs {o.shape}")
    return f, o, np.isfinite(f) & np.isfinite(o)


def _ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0."""
    return float(num) / float(den) if den != 0 else math.nan


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python, arrays → lists."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (np.integer, bool)):
        return value if isinstance(value, bool) else int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


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
    f, o, ok = _pair(forecast, observed)
    return float(np.abs(f[ok] - o[ok]).mean()) if ok.any() else math.nan


def rmse(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Root mean squared error (mm per 3 h); same conventions as :func:`mae`."""
    f, o, ok = _pair(forecast, observed)
    return float(np.sqrt(np.mean((f[ok] - o[ok]) ** 2))) if ok.any() else math.nan


def bias(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Mean error ``mean(forecast − observed)`` (mm per 3 h; additive bias); same conventions as :func:`mae`."""
    f, o, ok = _pair(forecast, observed)
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
    f, o, ok = _pair(forecast, observed)
    if not ok.any():
        return math.nan
    df, do = f[ok] - f[ok].mean(), o[ok] - o[ok].mean()
    den = math.sqrt(float(np.sum(df * df)) * float(np.sum(do * do)))
    return _ratio(float(np.sum(df * do)), den)


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
    f, o, ok = _pair(forecast, observed)
    fe, oe = f[ok] >= threshold, o[ok] >= threshold
    hits = int(np.count_nonzero(fe & oe))
    fa = int(np.count_nonzero(fe & ~oe))
    miss = int(np.count_nonzero(~fe & oe))
    return Contingency(hits, fa, miss, int(ok.sum()) - hits - fa - miss)


def pod(c: Contingency) -> float:
    """Probability of detection ``hits / (hits + misses)``; NaN without observed events."""
    return _ratio(c.hits, c.hits + c.misses)


def far(c: Contingency) -> float:
    """False alarm ratio ``false_alarms / (hits + false_alarms)``; NaN without forecast events."""
    return _ratio(c.false_alarms, c.hits + c.false_alarms)


def csi(c: Contingency) -> float:
    """Critical success index (threat score) ``hits / (hits + misses + false_alarms)``, in [0, 1]."""
    return _ratio(c.hits, c.hits + c.misses + c.false_alarms)


def ets(c: Contingency) -> float:
    """Equitable threat score (Gilbert skill score), in [-1/3, 1].

    ``(hits − h_r) / (hits + misses + false_alarms − h_r)`` with the random-chance hits
    ``h_r = (hits + false_alarms)(hits + misses) / total``; NaN when undefined.
    """
    total = c.hits + c.false_alarms + c.misses + c.correct_negatives
    if total == 0:
        return math.nan
    h_r = (c.hits + c.false_alarms) * (c.hits + c.misses) / total
    return _ratio(c.hits - h_r, c.hits + c.misses + c.false_alarms - h_r)


def frequency_bias(c: Contingency) -> float:
    """Frequency bias ``(hits + false_alarms) / (hits + misses)``; 1 is unbiased, NaN without observed events."""
    return _ratio(c.hits + c.false_alarms, c.hits + c.misses)


def categorical_scores(forecast: np.ndarray, observed: np.ndarray, threshold: float) -> dict[str, float]:
    """POD, FAR, CSI, ETS and frequency bias at one threshold (see :func:`contingency`).

    Returns
    -------
    dict
        ``pod``, ``far``, ``csi``, ``ets``, ``frequency_bias`` (floats, NaN when undefined).
    """
    c = contingency(forecast, observed, threshold)
    return {"pod": pod(c), "far": far(c), "csi": csi(c), "ets": ets(c), "frequency_bias": frequency_bias(c)}


# -- fractions skill score ------------------------------------------------------------------------
def _as_fields(x: np.ndarray, name: str) -> np.ndarray:
    """``(n, H, W)`` float64 from ``(H, W)``, ``(n, H, W)`` or ``(n, 1, H, W)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (n, H, W), got {np.shape(x)}")
    return a


def _check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is a :data:`FssMode`."""
    if mode not in ("valid", "zero"):
        raise ValueError(f"mode must be 'valid' or 'zero', got {mode!r}")


def _multi_fractions(binary: np.ndarray, windows: Sequence[int], mode: FssMode) -> list[np.ndarray]:
    """Neighbourhood fractions for several windows from ONE summed-area table (see below)."""
    _check_mode(mode)
    b = np.asarray(binary, dtype=np.float64)
    h, w = b.shape[-2:]
    for k in windows:
        if not 1 <= k <= min(h, w):
            raise ValueError(f"window must lie in [1, {min(h, w)}], got {k}")
    lead = [(0, 0)] * (b.ndim - 2)
    big_lo = max((k // 2 for k in windows), default=0) if mode == "zero" else 0
    big_hi = max((k - 1 - k // 2 for k in windows), default=0) if mode == "zero" else 0
    if big_lo or big_hi:
        b = np.pad(b, lead + [(big_lo, big_hi), (big_lo, big_hi)])
    sat = np.pad(b.cumsum(-2).cumsum(-1), lead + [(1, 0), (1, 0)])
    out = []
    for k in windows:
        a0 = big_lo - k // 2 if mode == "zero" else 0
        ny, nx = (h, w) if mode == "zero" else (h - k + 1, w - k + 1)
        r0, c0 = slice(a0, a0 + ny), slice(a0, a0 + nx)
        r1, c1 = slice(a0 + k, a0 + k + ny), slice(a0 + k, a0 + k + nx)
        box = sat[..., r1, c1] - sat[..., r0, c1] - sat[..., r1, c0] + sat[..., r0, c0]
        out.append(box / (k * k))
    return out


def neighbourhood_fractions(binary: np.ndarray, window: int, mode: FssMode = "valid") -> np.ndarray:
    """Fraction of event cells in each ``window x window`` neighbourhood (summed-area table).

    Parameters
    ----------
    binary : numpy.ndarray
        ``(n, H, W)`` 0/1 event field.
    window : int
        Neighbourhood width in cells, ``1 <= window <= min(H, W)``.
    mode : {"valid", "zero"}
        ``valid``: windows entirely inside, output ``(n, H − w + 1, W − w + 1)``; ``zero``:
        windows over a zero-padded field (``w // 2`` before, ``w − 1 − w // 2`` after), output
        ``(n, H, W)`` — equal to ``scipy.ndimage.uniform_filter(..., mode="constant")`` for odd
        ``w``.

    Returns
    -------
    numpy.ndarray
        Fractions in [0, 1].
    """
    return _multi_fractions(binary, [window], mode)[0]


def fss_components_multi(
    forecast: np.ndarray, observed: np.ndarray, threshold: float, windows: Sequence[int], mode: FssMode = "valid"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fss_components` for several windows at once (one summed-area table per field).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(len(windows),)`` numerators and denominators.
    """
    f, o = _as_fields(forecast, "forecast"), _as_fields(observed, "observed")
    if f.shape != o.shape:
        raise ValueError(f"shapes differ: {f.shape} vs {o.shape}")
    if not (np.isfinite(f).all() and np.isfinite(o).all()):
        raise ValueError("FSS needs complete fields (no NaN)")
    pfs = _multi_fractions(f >= threshold, windows, mode)
    pos = _multi_fractions(o >= threshold, windows, mode)
    num = np.array([np.sum((pf - po) ** 2) for pf, po in zip(pfs, pos, strict=True)])
    den = np.array([np.sum(pf * pf) + np.sum(po * po) for pf, po in zip(pfs, pos, strict=True)])
    return num, den


def fss_components(
    forecast: np.ndarray, observed: np.ndarray, threshold: float, window: int, mode: FssMode = "valid"
) -> tuple[float, float]:
    """Summed FSS numerator and denominator over a batch.

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        ``(n, H, W)`` (or ``(H, W)``) complete fields, mm per 3 h.
    threshold : float
        Event threshold (``>=``), mm per 3 h.
    window : int
        Neighbourhood width, fine cells.
    mode : {"valid", "zero"}
        See :func:`neighbourhood_fractions`.

    Returns
    -------
    (float, float)
        ``Σ (P_f − P_o)²`` and ``Σ (P_f² + P_o²)`` over all samples and positions.
    """
    num, den = fss_components_multi(forecast, observed, threshold, [window], mode)
    return float(num[0]), float(den[0])


def fss(forecast: np.ndarray, observed: np.ndarray, threshold: float, window: int, mode: FssMode = "valid") -> float:
    """Fractions skill score (Roberts & Lean 2008) over a batch.

    ``FSS = 1 − Σ (P_f − P_o)² / Σ (P_f² + P_o²)``, sums over samples and window positions.

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        ``(n, H, W)`` (or ``(H, W)``) complete fields, mm per 3 h.
    threshold : float
        Event threshold (``>=``), mm per 3 h.
    window : int
        Neighbourhood width, fine cells (1 = grid point).
    mode : {"valid", "zero"}
        Border treatment, see :func:`neighbourhood_fractions`.

    Returns
    -------
    float
        In [0, 1]; NaN when neither field has an event.
    """
    num, den = fss_components(forecast, observed, threshold, window, mode)
    return 1.0 - num / den if den > 0 else math.nan


# -- spectra --------------------------------------------------------------------------------------
def radial_power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged 2-D power spectrum, averaged over samples.

    The periodogram ``|FFT2(x)|² / (H W)`` (no taper, no detrending; the mean is the
    ``k = 0`` bin) is averaged over the annuli ``round(sqrt(kx² + ky²)) = k`` in cycles per
    field, for ``k = 0 .. min(H, W) // 2``.

    Parameters
    ----------
    field : numpy.ndarray
        ``(n, H, W)`` (or ``(H, W)``) complete fields, mm per 3 h.

    Returns
    -------
    wavenumbers : numpy.ndarray
        ``(K,)`` int cycles per field (wavelength ``H / k`` fine cells for square fields).
    power : numpy.ndarray
        ``(K,)`` mean power per annulus and sample, (mm per 3 h)².
    """
    x = _as_fields(field, "field")
    if not np.isfinite(x).all():
        raise ValueError("spectra need complete fields (no NaN)")
    h, w = x.shape[-2:]
    k, idx, counts = _radial_bins(h, w)
    p = (np.abs(np.fft.fft2(x)) ** 2 / (h * w)).sum(axis=0).reshape(-1)
    sums = np.bincount(idx, weights=p, minlength=len(k) + 1)[: len(k)]
    return k, sums / counts / max(x.shape[0], 1)


def _radial_bins(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wavenumbers ``0..min(h, w)//2``, the flat bin index of each FFT cell (overflow bin last), counts."""
    ky = np.fft.fftfreq(h) * h
    kx = np.fft.fftfreq(w) * w
    kr = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64).reshape(-1)
    kmax = min(h, w) // 2
    idx = np.where(kr <= kmax, kr, kmax + 1)
    counts = np.bincount(idx, minlength=kmax + 2)[: kmax + 1].astype(np.float64)
    return np.arange(kmax + 1), idx, counts


def spectral_ratio(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of radially averaged power, prediction over truth (1 = right variance at that scale).

    Parameters
    ----------
    prediction, truth : numpy.ndarray
        ``(n, H, W)`` complete fields.

    Returns
    -------
    wavenumbers : numpy.ndarray
        ``(K,)`` cycles per field.
    ratio : numpy.ndarray
        ``(K,)``; NaN where the truth has no power.
    """
    k, pp = radial_power_spectrum(prediction)
    _, pt = radial_power_spectrum(truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        return k, np.where(pt > 0, pp / np.where(pt > 0, pt, 1.0), np.nan)


# -- mass -----------------------------------------------------------------------------------------
def block_residual(fine_pred: np.ndarray, coarse: np.ndarray, ratio: int = RATIO, buffer: int = 1) -> np.ndarray:
    """``block_mean(fine_pred) − coarse`` over the tile's centre cells.

    Parameters
    ----------
    fine_pred : numpy.ndarray
        ``(n, 64, 64)`` prediction, mm per 3 h.
    coarse : numpy.ndarray
        ``(n, 18, 18)`` coarse input with its buffer ring, mm per 3 h.
    ratio, buffer : int
        Fine cells per coarse cell; buffer width in coarse cells.

    Returns
    -------
    numpy.ndarray
        ``(n, 16, 16)`` mm per 3 h.
    """
    f = _as_fields(fine_pred, "fine_pred")
    c = _as_fields(coarse, "coarse")
    n, h, w = f.shape
    centre = c[:, buffer : c.shape[1] - buffer, buffer : c.shape[2] - buffer]
    if centre.shape != (n, h // ratio, w // ratio) or h % ratio or w % ratio:
        raise ValueError(f"fine {f.shape} and coarse {c.shape} do not nest with ratio {ratio}, buffer {buffer}")
    return f.reshape(n, h // ratio, ratio, w // ratio, ratio).mean(axis=(2, 4)) - centre


def coarse_mass_error(fine_pred: np.ndarray, coarse: np.ndarray, ratio: int = RATIO, buffer: int = 1) -> float:
    """Relative absolute coarse-mass error ``Σ|block_mean(pred) − coarse| / Σ coarse``.

    Sums run over the 16 x 16 centre coarse cells of all tiles (NaN cells skipped); 0 means
    every 4 x 4 block mean equals its coarse value.

    Parameters
    ----------
    fine_pred : numpy.ndarray
        ``(n, 64, 64)`` prediction, mm per 3 h.
    coarse : numpy.ndarray
        ``(n, 18, 18)`` coarse input with its buffer ring, mm per 3 h.
    ratio, buffer : int
        Fine cells per coarse cell; buffer width in coarse cells.

    Returns
    -------
    float
        Dimensionless; NaN when the coarse field is dry everywhere.
    """
    r = block_residual(fine_pred, coarse, ratio, buffer)
    c = _as_fields(coarse, "coarse")[:, buffer:-buffer, buffer:-buffer] if buffer else _as_fields(coarse, "coarse")
    ok = np.isfinite(r)
    return _ratio(float(np.abs(r[ok]).sum()), float(c[ok].sum()))


# -- ensembles ------------------------------------------------------------------------------------
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
    return _ratio(factor * math.sqrt(var), math.sqrt(mse))


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
    p, o, ok = _pair(prob, obs_binary)
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
    p, o, ok = _pair(prob, obs_binary)
    edges = np.linspace(0.0, 1.0, bins + 1) if isinstance(bins, int) else np.asarray(bins, dtype=np.float64)
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, p[ok], side="right") - 1, 0, nb - 1)
    counts = np.bincount(idx, minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_prob = np.bincount(idx, weights=p[ok], minlength=nb) / counts
        obs_freq = np.bincount(idx, weights=o[ok], minlength=nb) / counts
    return mean_prob, obs_freq, counts


# -- streaming ------------------------------------------------------------------------------------
class ScoreAccumulator:
    """Aggregate scores of one model or baseline over streamed batches, in bounded memory.

    Holds only sums and counts: moments for the continuous scores (merged with Chan's parallel
    formulas, so no catastrophic cancellation), contingency counts per threshold, FSS
    numerator/denominator per threshold and window, summed radial spectra, coarse-mass sums
    and per-tile error sums (``O(T)``). Results equal the one-shot functions of this module
    on the concatenated batches (up to float rounding).

    Parameters
    ----------
    name : str
        Label written to :meth:`to_dict`.
    thresholds : sequence of float
        Event thresholds, mm per 3 h.
    windows : sequence of int
        FSS widths, fine cells.
    fss_mode : {"valid", "zero"}
        FSS border treatment.
    """

    def __init__(
        self,
        name: str = "model",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        windows: Sequence[int] = DEFAULT_WINDOWS,
        fss_mode: FssMode = "valid",
    ) -> None:
        self.name = name
        self.thresholds = tuple(float(t) for t in sorted(thresholds))
        self.windows = tuple(int(w) for w in windows)
        self.fss_mode: FssMode = fss_mode
        self.n_samples = 0
        # continuous: count, means, centred second moments and co-moment
        self.n = 0
        self.mean_p = self.mean_t = 0.0
        self.m2_p = self.m2_t = self.c_pt = 0.0
        self.sum_abs = self.sum_sq = 0.0
        self.table = np.zeros((len(self.thresholds), 4), dtype=np.int64)
        self.fss_num = np.zeros((len(self.thresholds), len(self.windows)))
        self.fss_den = np.zeros((len(self.thresholds), len(self.windows)))
        self.n_complete = 0
        self.spec_pred: np.ndarray | None = None
        self.spec_truth: np.ndarray | None = None
        self.spec_k: np.ndarray | None = None
        self.mass_abs = self.mass_net = self.mass_ref = 0.0
        self.mass_cells = 0
        self.tile_n = np.zeros(0, dtype=np.int64)
        self.tile_abs = np.zeros(0)
        self.tile_sq = np.zeros(0)

    def add(
        self,
        pred: np.ndarray,
        truth: np.ndarray,
        coarse: np.ndarray | None = None,
        tile_ids: np.ndarray | None = None,
    ) -> None:
        """Accumulate one batch.

        Parameters
        ----------
        pred, truth : numpy.ndarray
            ``(n, H, W)`` (or ``(n, 1, H, W)``) prediction and truth, mm per 3 h; NaN = missing.
        coarse : numpy.ndarray or None
            ``(n, 18, 18)`` coarse inputs (for the mass error), mm per 3 h.
        tile_ids : numpy.ndarray or None
            ``(n,)`` non-negative int tile ids (for the per-tile errors).
        """
        p, t = _as_fields(pred, "pred"), _as_fields(truth, "truth")
        if p.shape != t.shape:
            raise ValueError(f"pred {p.shape} and truth {t.shape} differ")
        n = p.shape[0]
        self.n_samples += n
        ok = np.isfinite(p) & np.isfinite(t)
        pv, tv = p[ok], t[ok]
        nb = pv.size
        if nb:
            mp, mt = float(pv.mean()), float(tv.mean())
            dp, dt = pv - mp, tv - mt
            m2p, m2t, cpt = float(np.sum(dp * dp)), float(np.sum(dt * dt)), float(np.sum(dp * dt))
            na, tot = self.n, self.n + nb
            delta_p, delta_t = mp - self.mean_p, mt - self.mean_t
            self.m2_p += m2p + delta_p * delta_p * na * nb / tot
            self.m2_t += m2t + delta_t * delta_t * na * nb / tot
            self.c_pt += cpt + delta_p * delta_t * na * nb / tot
            self.mean_p += delta_p * nb / tot
            self.mean_t += delta_t * nb / tot
            self.n = tot
            err = pv - tv
            self.sum_abs += float(np.abs(err).sum())
            self.sum_sq += float(np.sum(err * err))
        for i, thr in enumerate(self.thresholds):
            fe, oe = pv >= thr, tv >= thr
            h = np.count_nonzero(fe & oe)
            fa = np.count_nonzero(fe & ~oe)
            mi = np.count_nonzero(~fe & oe)
            self.table[i] += (h, fa, mi, nb - h - fa - mi)
        complete = ok.reshape(n, -1).all(axis=1)
        if complete.any():
            pc, tc = p[complete], t[complete]
            self.n_complete += int(complete.sum())
            for i, thr in enumerate(self.thresholds):
                num, den = fss_components_multi(pc, tc, thr, self.windows, self.fss_mode)
                self.fss_num[i] += num
                self.fss_den[i] += den
            k, sp = radial_power_spectrum(pc)
            _, st = radial_power_spectrum(tc)
            m = int(complete.sum())
            if self.spec_pred is None or self.spec_truth is None:
                self.spec_k, self.spec_pred, self.spec_truth = k, sp * m, st * m
            else:
                self.spec_pred += sp * m
                self.spec_truth += st * m
        if coarse is not None:
            r = block_residual(p, coarse)
            c = _as_fields(coarse, "coarse")[:, 1:-1, 1:-1]
            okc = np.isfinite(r)
            self.mass_abs += float(np.abs(r[okc]).sum())
            self.mass_net += float(r[okc].sum())
            self.mass_ref += float(c[okc].sum())
            self.mass_cells += int(okc.sum())
        if tile_ids is not None:
            ids = np.asarray(tile_ids).reshape(-1).astype(np.int64)
            if len(ids) != n or (n and ids.min() < 0):
                raise ValueError("tile_ids must be (n,) non-negative ints")
            e = np.where(ok, p - t, 0.0).reshape(n, -1)
            size = max(len(self.tile_n), int(ids.max()) + 1 if n else 0)
            self._grow(size)
            self.tile_n += np.bincount(ids, weights=ok.reshape(n, -1).sum(axis=1), minlength=size).astype(np.int64)
            self.tile_abs += np.bincount(ids, weights=np.abs(e).sum(axis=1), minlength=size)
            self.tile_sq += np.bincount(ids, weights=(e * e).sum(axis=1), minlength=size)

    def _grow(self, size: int) -> None:
        """Extend the per-tile arrays to ``size`` tiles."""
        extra = size - len(self.tile_n)
        if extra > 0:
            self.tile_n = np.concatenate([self.tile_n, np.zeros(extra, dtype=np.int64)])
            self.tile_abs = np.concatenate([self.tile_abs, np.zeros(extra)])
            self.tile_sq = np.concatenate([self.tile_sq, np.zeros(extra)])

    def contingency(self, index: int) -> Contingency:
        """Accumulated :class:`Contingency` of threshold number ``index``."""
        return Contingency(*(int(v) for v in self.table[index]))

    def fss(self) -> np.ndarray:
        """``(K thresholds, W windows)`` accumulated FSS (NaN where no event was seen)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            den = np.where(self.fss_den > 0, self.fss_den, 1.0)
            return np.where(self.fss_den > 0, 1.0 - self.fss_num / den, np.nan)

    def to_dict(self) -> dict[str, Any]:
        """All aggregate scores as strict JSON (schema in the module docstring).

        Returns
        -------
        dict
            JSON-serialisable with ``allow_nan=False``; undefined values are None.
        """
        n = self.n
        cont = {
            "mae": _ratio(self.sum_abs, n),
            "rmse": math.sqrt(self.sum_sq / n) if n else math.nan,
            "bias": self.mean_p - self.mean_t if n else math.nan,
            "pearson_r": _ratio(self.c_pt, math.sqrt(self.m2_p * self.m2_t)),
            "mean_pred": self.mean_p if n else math.nan,
            "mean_truth": self.mean_t if n else math.nan,
            "std_pred": math.sqrt(self.m2_p / n) if n else math.nan,
            "std_truth": math.sqrt(self.m2_t / n) if n else math.nan,
        }
        cats = []
        base_rates = []
        for i, thr in enumerate(self.thresholds):
            c = self.contingency(i)
            base = _ratio(c.hits + c.misses, n)
            base_rates.append(base)
            cats.append(
                {
                    "threshold_mm": thr,
                    "hits": c.hits,
                    "false_alarms": c.false_alarms,
                    "misses": c.misses,
                    "correct_negatives": c.correct_negatives,
                    "base_rate": base,
                    "pod": pod(c),
                    "far": far(c),
                    "csi": csi(c),
                    "ets": ets(c),
                    "frequency_bias": frequency_bias(c),
                }
            )
        scores = self.fss()
        fss_rows = [
            {
                "threshold_mm": thr,
                "window": w,
                "fss": scores[i, j],
                "fss_useful": 0.5 + base_rates[i] / 2,
                "n_samples": self.n_complete,
            }
            for i, thr in enumerate(self.thresholds)
            for j, w in enumerate(self.windows)
        ]
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "name": self.name,
            "units": "mm per 3 h",
            "n_samples": self.n_samples,
            "n_values": n,
            "continuous": cont,
            "categorical": cats,
            "fss": fss_rows,
        }
        if self.spec_k is not None and self.spec_pred is not None and self.spec_truth is not None:
            pp, pt = self.spec_pred / self.n_complete, self.spec_truth / self.n_complete
            k = self.spec_k
            size = 2 * int(k[-1])
            with np.errstate(divide="ignore", invalid="ignore"):
                out["spectrum"] = {
                    "wavenumber": k,
                    "wavelength_cells": np.where(k > 0, size / np.maximum(k, 1), np.nan),
                    "power_pred": pp,
                    "power_truth": pt,
                    "ratio": np.where(pt > 0, pp / np.where(pt > 0, pt, 1.0), np.nan),
                    "n_samples": self.n_complete,
                }
        else:
            out["spectrum"] = None
        if self.mass_cells:
            out["mass"] = {
                "abs_rel_error": _ratio(self.mass_abs, self.mass_ref),
                "rel_bias": _ratio(self.mass_net, self.mass_ref),
                "n_cells": self.mass_cells,
            }
        seen = np.flatnonzero(self.tile_n > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["per_tile"] = {
                "tile": seen,
                "n_values": self.tile_n[seen],
                "mae": self.tile_abs[seen] / self.tile_n[seen],
                "mse": self.tile_sq[seen] / self.tile_n[seen],
            }
        return dict(_clean(out))


class TerrainLock:
    """How terrain-locked the sub-grid pattern of precipitation is, accumulated over batches.

    Inside every wet coarse cell (block mean above ``wet_mm``) with relief (terrain standard
    deviation over the block above ``min_relief_m``), the relative fine-scale anomaly
    ``p / mean_block(p) - 1`` is paired with the elevation anomaly ``z - mean_block(z)``; the
    statistic is their Pearson correlation pooled over all such cells. Near 0: rain falls inside a
    coarse cell regardless of the hills; near 1: it follows the elevation exactly. Used to
    calibrate the synthetic world against real observations (MRMS, PRISM).

    Parameters
    ----------
    ratio : int
        Fine cells per coarse cell along each axis.
    wet_mm : float
        Block-mean amount above which a coarse cell counts as wet.
    min_relief_m : float
        Terrain standard deviation (m) inside a block above which it counts.
    """

    def __init__(self, ratio: int = RATIO, wet_mm: float = 0.1, min_relief_m: float = 20.0) -> None:
        self.ratio, self.wet_mm, self.min_relief_m = ratio, wet_mm, min_relief_m
        self._sums = np.zeros(4)  # sum a e, sum a a, sum e e, cells
        self.cells = 0

    def _blocks(self, x: np.ndarray) -> np.ndarray:
        """(..., H, W) → (N, r*r) rows, one per coarse cell."""
        r = self.ratio
        h, w = x.shape[-2] // r * r, x.shape[-1] // r * r
        x = np.asarray(x, dtype=np.float64)[..., :h, :w]
        x = x.reshape(-1, h // r, r, w // r, r).transpose(0, 1, 3, 2, 4)
        return x.reshape(-1, r * r)

    def add(self, fine: np.ndarray, terrain: np.ndarray) -> None:
        """Accumulate fields.

        Parameters
        ----------
        fine : numpy.ndarray, shape (..., H, W)
            Precipitation amounts (NaN: missing; a block with any NaN is skipped).
        terrain : numpy.ndarray, same shape as ``fine``
            Elevation in m.
        """
        p, z = self._blocks(fine), self._blocks(np.broadcast_to(terrain, np.shape(fine)))
        pm = p.mean(axis=1, keepdims=True)
        keep = np.isfinite(pm[:, 0]) & (pm[:, 0] > self.wet_mm) & (z.std(axis=1) > self.min_relief_m)
        a = p[keep] / pm[keep] - 1.0
        e = z[keep] - z[keep].mean(axis=1, keepdims=True)
        self._sums += [float((a * e).sum()), float((a * a).sum()), float((e * e).sum()), 0.0]
        self.cells += int(keep.sum())

    def result(self) -> float:
        """The pooled correlation (NaN before any qualifying cell)."""
        sae, saa, see, _ = self._sums
        return float(sae / math.sqrt(saa * see)) if saa > 0 and see > 0 else math.nan


# -- relative thresholds --------------------------------------------------------------------------
class WetQuantile:
    """Exact quantile of the wet values of streamed fields, in two passes and bounded memory.

    ``value()`` equals ``numpy.percentile(wet, 100 q)`` (linear interpolation between order
    statistics) of all wet values ``v > wet_mm`` (finite) fed in, without holding them:

    1. :meth:`count` bins every wet value by the top 20 bits of its float32 bit pattern (for
       positive floats that order is the order of the values): ``2**20`` int64 counts, 8 MiB;
    2. :meth:`collect` (a second pass over the same fields) keeps only the values in the bins
       that hold the two order statistics around rank ``q (N − 1)`` — about ``N / 2000`` values
       at most for smooth data.

    Parameters
    ----------
    q : float
        Quantile in ``[0, 1]`` (0.9 for the 90th percentile).
    wet_mm : float
        Values at or below this are dry and ignored (mm per 3 h).
    """

    SHIFT = 12

    def __init__(self, q: float = 0.9, wet_mm: float = 0.1) -> None:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie in [0, 1], got {q}")
        self.q = float(q)
        self.wet_mm = float(wet_mm)
        self.hist = np.zeros(1 << (32 - self.SHIFT), dtype=np.int64)
        self.n = 0
        self._window: tuple[int, int] | None = None
        self._values: list[np.ndarray] = []

    def _wet(self, fields: np.ndarray) -> np.ndarray:
        """The wet, finite values of ``fields`` (any shape), 1-D."""
        a = np.asarray(fields)
        return a[np.isfinite(a) & (a > max(self.wet_mm, 0.0))].ravel()

    def _keys(self, values: np.ndarray) -> np.ndarray:
        """Bin of each (positive) value: top bits of its float32 pattern (monotone in the value)."""
        return np.asarray(values, dtype=np.float32).view(np.uint32) >> np.uint32(self.SHIFT)

    def count(self, fields: np.ndarray) -> None:
        """First pass: add a batch of fields (any shape, mm per 3 h; NaN ignored)."""
        if self._window is not None:
            raise RuntimeError("count() after collect(): start a new WetQuantile")
        v = self._wet(fields)
        if v.size:
            self.hist += np.bincount(self._keys(v), minlength=self.hist.size)
            self.n += v.size

    def _ranks(self) -> tuple[int, int, float]:
        """``(r0, r1, frac)``: the two order statistics around ``q (N − 1)`` and the weight of r1."""
        pos = self.q * (self.n - 1)
        r0 = int(np.floor(pos))
        return r0, min(r0 + 1, self.n - 1), pos - r0

    def collect(self, fields: np.ndarray) -> None:
        """Second pass: give the same batches again (any order)."""
        if not self.n:
            return
        if self._window is None:
            cum = np.cumsum(self.hist)
            r0, r1, _ = self._ranks()
            self._window = (int(np.searchsorted(cum, r0, side="right")), int(np.searchsorted(cum, r1, side="right")))
        lo, hi = self._window
        v = self._wet(fields)
        k = self._keys(v)
        keep = v[(k >= lo) & (k <= hi)]
        if keep.size:
            self._values.append(keep.astype(np.float64))

    def value(self) -> float:
        """The quantile, mm per 3 h; NaN when no wet value was counted.

        Raises
        ------
        RuntimeError
            If the second pass (:meth:`collect`) was not run.
        """
        if not self.n:
            return math.nan
        if self._window is None:
            raise RuntimeError("run the second pass (collect) first")
        lo = self._window[0]
        below = int(self.hist[:lo].sum())
        vals = np.sort(np.concatenate(self._values)) if self._values else np.zeros(0)
        r0, r1, frac = self._ranks()
        if r1 - below >= vals.size:
            raise RuntimeError("collect() did not see the same fields as count()")
        a, b = float(vals[r0 - below]), float(vals[r1 - below])
        return a + (b - a) * frac


class FssAccumulator:
    """Streaming FSS at one threshold and window, over the complete samples of each batch.

    Numerator and denominator are summed over batches as in :class:`ScoreAccumulator`, so the
    result equals :func:`fss` of all complete samples together.

    Parameters
    ----------
    threshold : float
        Event threshold (``>=``), mm per 3 h; NaN gives an undefined score.
    window : int
        Neighbourhood width, fine cells (1 = grid scale).
    mode : {"valid", "zero"}
        Border treatment, see :func:`neighbourhood_fractions`.
    """

    def __init__(self, threshold: float, window: int = 1, mode: FssMode = "valid") -> None:
        _check_mode(mode)
        self.threshold = float(threshold)
        self.window = int(window)
        self.mode: FssMode = mode
        self.num = self.den = 0.0
        self.n_samples = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Accumulate ``(n, H, W)`` (or ``(n, 1, H, W)``) fields; samples with any NaN are skipped."""
        p, t = _as_fields(pred, "pred"), _as_fields(truth, "truth")
        if p.shape != t.shape:
            raise ValueError(f"pred {p.shape} and truth {t.shape} differ")
        if not math.isfinite(self.threshold):
            return
        complete = (np.isfinite(p) & np.isfinite(t)).reshape(len(p), -1).all(axis=1)
        if complete.any():
            num, den = fss_components(p[complete], t[complete], self.threshold, self.window, self.mode)
            self.num += num
            self.den += den
            self.n_samples += int(complete.sum())

    def value(self) -> float:
        """FSS in [0, 1]; NaN when neither field had an event (or the threshold is NaN)."""
        return 1.0 - self.num / self.den if self.den > 0 else math.nan
