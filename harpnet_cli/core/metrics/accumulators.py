"""Streaming accumulators: scores over batches in bounded memory, equal to the one-shot functions.

:class:`ScoreAccumulator` (every deterministic score of one model or baseline),
:class:`FssAccumulator` (one FSS), :class:`WetQuantile` (an exact quantile in two passes),
:class:`EnsembleAccumulator` (probabilistic scores of an ensemble) and :class:`TerrainLock`
(how terrain-locked the sub-grid pattern is). Each holds sums and counts only; ``add`` takes one
batch, a final method returns the scores.

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
from typing import Any

import numpy as np

from harpnet_cli.core.metrics.common import (
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOWS,
    PROBABILITY_THRESHOLDS,
    RELIABILITY_BINS,
    FssMode,
    as_fields,
    check_mode,
    json_safe,
    safe_ratio,
)
from harpnet_cli.core.metrics.probabilistic import crps_ensemble, rank_histogram
from harpnet_cli.core.metrics.scores import Contingency, csi, ets, far, frequency_bias, pod
from harpnet_cli.core.metrics.spatial import block_residual, fss_components, fss_components_multi, radial_power_spectrum
from harpnet_cli.grids import RATIO

#: Schema tag of :meth:`ScoreAccumulator.to_dict`.
SCHEMA = "harpnet-scores/1"


class ScoreAccumulator:
    """Aggregate scores of one model or baseline over streamed batches, in bounded memory.

    Holds only sums and counts: moments for the continuous scores (merged with Chan's parallel
    formulas, so no catastrophic cancellation), contingency counts per threshold, FSS
    numerator/denominator per threshold and window, summed radial spectra, coarse-mass sums
    and per-tile error sums (``O(T)``). Results equal the one-shot functions of
    :mod:`harpnet_cli.core.metrics` on the concatenated batches (up to float rounding).

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
        p, t = as_fields(pred, "pred"), as_fields(truth, "truth")
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
            c = as_fields(coarse, "coarse")[:, 1:-1, 1:-1]
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
            "mae": safe_ratio(self.sum_abs, n),
            "rmse": math.sqrt(self.sum_sq / n) if n else math.nan,
            "bias": self.mean_p - self.mean_t if n else math.nan,
            "pearson_r": safe_ratio(self.c_pt, math.sqrt(self.m2_p * self.m2_t)),
            "mean_pred": self.mean_p if n else math.nan,
            "mean_truth": self.mean_t if n else math.nan,
            "std_pred": math.sqrt(self.m2_p / n) if n else math.nan,
            "std_truth": math.sqrt(self.m2_t / n) if n else math.nan,
        }
        cats = []
        base_rates = []
        for i, thr in enumerate(self.thresholds):
            c = self.contingency(i)
            base = safe_ratio(c.hits + c.misses, n)
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
                "abs_rel_error": safe_ratio(self.mass_abs, self.mass_ref),
                "rel_bias": safe_ratio(self.mass_net, self.mass_ref),
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
        return dict(json_safe(out))


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
    result equals :func:`~harpnet_cli.core.metrics.spatial.fss` of all complete samples together.

    Parameters
    ----------
    threshold : float
        Event threshold (``>=``), mm per 3 h; NaN gives an undefined score.
    window : int
        Neighbourhood width, fine cells (1 = grid scale).
    mode : {"valid", "zero"}
        Border treatment, see :func:`~harpnet_cli.core.metrics.spatial.neighbourhood_fractions`.
    """

    def __init__(self, threshold: float, window: int = 1, mode: FssMode = "valid") -> None:
        check_mode(mode)
        self.threshold = float(threshold)
        self.window = int(window)
        self.mode: FssMode = mode
        self.num = self.den = 0.0
        self.n_samples = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Accumulate ``(n, H, W)`` (or ``(n, 1, H, W)``) fields; samples with any NaN are skipped."""
        p, t = as_fields(pred, "pred"), as_fields(truth, "truth")
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


# -- ensembles ------------------------------------------------------------------------------------
class EnsembleAccumulator:
    """Streaming probabilistic scores of an ensemble: CRPS, spread/skill, rank histogram, Brier
    scores and their skill against a deterministic reference, and the reliability diagram.

    Parameters
    ----------
    n_members : int
    thresholds : sequence of float
        Event thresholds (amount ``>=`` threshold), mm per window.
    """

    def __init__(self, n_members: int, thresholds: Sequence[float] = PROBABILITY_THRESHOLDS) -> None:
        self.m = int(n_members)
        self.thresholds = tuple(float(t) for t in sorted(thresholds))
        self.n = 0
        self.crps_sum = self.crps_fair_sum = self.var_sum = self.sq_sum = 0.0
        self.ranks = np.zeros(self.m + 1)
        k = len(self.thresholds)
        self.brier_sum = np.zeros(k)
        self.reference_sum = np.zeros(k)
        self.n_reference = 0
        self.events = np.zeros(k)
        self.bin_count = np.zeros((k, RELIABILITY_BINS))
        self.bin_prob = np.zeros((k, RELIABILITY_BINS))
        self.bin_obs = np.zeros((k, RELIABILITY_BINS))

    def add(self, members: np.ndarray, truth: np.ndarray, reference: np.ndarray | None = None) -> None:
        """Accumulate ``members (M, n, H, W)`` against ``truth (n, H, W)``; NaN points are skipped.

        ``reference (n, H, W)``, a deterministic forecast (conservative bilinear), gives the 0/1
        "probabilities" the Brier skill score is measured against.
        """
        x = np.asarray(members, dtype=np.float64)
        y = np.asarray(truth, dtype=np.float64)
        ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
        if reference is not None:
            ok &= np.isfinite(reference)
        xv, yv = x[:, ok], y[ok]
        if not yv.size:
            return
        self.n += yv.size
        self.crps_sum += float(crps_ensemble(xv, yv).sum())
        if self.m >= 2:
            self.crps_fair_sum += float(crps_ensemble(xv, yv, fair=True).sum())
            self.var_sum += float(xv.var(axis=0, ddof=1).sum())
        self.sq_sum += float(((xv.mean(axis=0) - yv) ** 2).sum())
        self.ranks += rank_histogram(xv, yv)
        if reference is not None:
            self.n_reference += yv.size
        for i, thr in enumerate(self.thresholds):
            p = (xv >= thr).mean(axis=0)
            o = (yv >= thr).astype(np.float64)
            self.brier_sum[i] += float(((p - o) ** 2).sum())
            self.events[i] += float(o.sum())
            if reference is not None:
                r = (np.asarray(reference, dtype=np.float64)[ok] >= thr).astype(np.float64)
                self.reference_sum[i] += float(((r - o) ** 2).sum())
            b = np.minimum((p * RELIABILITY_BINS).astype(np.int64), RELIABILITY_BINS - 1)
            self.bin_count[i] += np.bincount(b, minlength=RELIABILITY_BINS)
            self.bin_prob[i] += np.bincount(b, weights=p, minlength=RELIABILITY_BINS)
            self.bin_obs[i] += np.bincount(b, weights=o, minlength=RELIABILITY_BINS)

    def to_dict(self) -> dict[str, Any]:
        """Scores as plain JSON-ready data (undefined values None).

        Returns
        -------
        dict
            ``n_members``, ``n_values``, ``crps``, ``crps_fair``, ``spread``, ``rmse_mean``,
            ``spread_skill_ratio``, ``rank_histogram`` (relative frequencies, uniform =
            ``1 / (M + 1)``) and ``brier`` (per threshold: ``brier_score``, ``base_rate``,
            ``reference_brier`` and ``brier_skill`` against the reference's 0/1 forecast, and the
            ``reliability`` diagram: per probability bin the mean forecast probability, the
            observed frequency and the count); see ``ensemble`` in the JSON schema of
            :mod:`harpnet_cli.workflows.evaluate`.
        """
        n = self.n

        def val(x: float) -> float | None:
            return None if not n or not math.isfinite(x) else x

        spread = math.sqrt(self.var_sum / n) if n and self.m >= 2 else math.nan
        rmse = math.sqrt(self.sq_sum / n) if n else math.nan
        factor = math.sqrt((self.m + 1) / self.m)
        brier = []
        for i, t in enumerate(self.thresholds):
            bs = self.brier_sum[i] / n if n else math.nan
            ref = self.reference_sum[i] / self.n_reference if self.n_reference else math.nan
            counts = self.bin_count[i]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_p = np.where(counts > 0, self.bin_prob[i] / counts, np.nan)
                freq = np.where(counts > 0, self.bin_obs[i] / counts, np.nan)
            brier.append({
                "threshold_mm": t, "brier_score": val(bs), "base_rate": val(self.events[i] / n if n else math.nan),
                "reference_brier": val(ref), "brier_skill": val(1.0 - bs / ref if ref > 0 else math.nan),
                "reliability": {"forecast_probability": [None if not np.isfinite(v) else float(v) for v in mean_p],
                                "observed_frequency": [None if not np.isfinite(v) else float(v) for v in freq],
                                "count": [int(c) for c in counts]},
            })
        return {
            "n_members": self.m,
            "n_values": n,
            "crps": val(self.crps_sum / n if n else math.nan),
            "crps_fair": val(self.crps_fair_sum / n if n and self.m >= 2 else math.nan),
            "spread": val(spread),
            "rmse_mean": val(rmse),
            "spread_skill_ratio": val(factor * spread / rmse if rmse > 0 else math.nan),
            "rank_histogram": [float(v) for v in (self.ranks / n if n else self.ranks)],
            "brier": brier,
        }
