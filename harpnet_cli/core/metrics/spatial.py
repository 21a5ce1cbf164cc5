"""Scores of spatial structure on complete ``(n, H, W)`` fields: FSS, power spectra and coarse mass.

* FSS follows Roberts & Lean (2008), aggregated over samples by summing numerator and
  denominator (as ``scores.spatial.fss_2d`` with ``reduce_dims``); windows are square
  ``w x w`` fine cells; ``mode="valid"`` keeps windows inside the tile (scores'
  ``zero_padding=False``), ``mode="zero"`` pads with zeros (output size of the field).
* Spectra are radially averaged periodograms in cycles per field.
* The mass error compares 4 x 4 block means of the prediction with the coarse input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harpnet_cli.core.metrics.common import FssMode, as_fields, check_mode, safe_ratio
from harpnet_cli.grids import RATIO


def _multi_fractions(binary: np.ndarray, windows: Sequence[int], mode: FssMode) -> list[np.ndarray]:
    """Neighbourhood fractions for several windows from ONE summed-area table (see below)."""
    check_mode(mode)
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
    f, o = as_fields(forecast, "forecast"), as_fields(observed, "observed")
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
    x = as_fields(field, "field")
    if not np.isfinite(x).all():
        raise ValueError("spectra need complete fields (no NaN)")
    h, w = x.shape[-2:]
    k, idx, counts = radial_bins(h, w)
    p = (np.abs(np.fft.fft2(x)) ** 2 / (h * w)).sum(axis=0).reshape(-1)
    sums = np.bincount(idx, weights=p, minlength=len(k) + 1)[: len(k)]
    return k, sums / counts / max(x.shape[0], 1)


def radial_bins(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The annuli of :func:`radial_power_spectrum` for an ``(h, w)`` FFT.

    Returns
    -------
    wavenumbers : (K,) int array
        ``0 .. min(h, w) // 2``, cycles per field.
    index : (h * w,) int array
        Flat bin of each FFT cell (``K`` for the overflow bin beyond ``min(h, w) // 2``).
    counts : (K,) float array
        FFT cells per bin.
    """
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
    f = as_fields(fine_pred, "fine_pred")
    c = as_fields(coarse, "coarse")
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
    c = as_fields(coarse, "coarse")[:, buffer:-buffer, buffer:-buffer] if buffer else as_fields(coarse, "coarse")
    ok = np.isfinite(r)
    return safe_ratio(float(np.abs(r[ok]).sum()), float(c[ok].sum()))

