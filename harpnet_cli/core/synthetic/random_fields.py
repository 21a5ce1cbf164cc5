"""Random fields of the large-scale rain: a power-law Gaussian field, its rain and moist envelope, advection.

A Gaussian random field with a power-law spectrum, elongated along the steering wind
(:func:`power_law_amplitude`, :func:`gaussian_field`), made intermittent and lognormal-like by a
threshold transform (:func:`large_scale_rain`); :func:`advection_blur` is the exact 3-hour mean of
a field carried by the wind.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy.special import ndtr, ndtri

from harpnet_cli.core.synthetic.constants import ACCUMULATION_HOURS, ENVELOPE_WIDTH, INTENSITY_SPREAD, OUTER_SCALE_M
from harpnet_cli.core.synthetic.state import SyntheticState


def _along_across(k: np.ndarray, l_: np.ndarray, u: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumber components along and across the wind ``(u, v)``; x and y for calm air."""
    speed = math.hypot(u, v)
    cos_a, sin_a = (u / speed, v / speed) if speed > 0 else (1.0, 0.0)
    return np.float32(cos_a) * k + np.float32(sin_a) * l_, np.float32(-sin_a) * k + np.float32(cos_a) * l_


def power_law_amplitude(
    k: np.ndarray, l_: np.ndarray, state: SyntheticState, outer_scale_m: float = OUTER_SCALE_M
) -> np.ndarray:
    """Spectral amplitude of the large-scale field, normalised to unit variance.

    The power spectrum is ``S ~ (k_e^2 + k_0^2)^(-beta/2)``: a power law of slope ``-beta``
    (``state.spectral_slope``; radar rainfall spectra fall off with slopes of about −3 … −4 over
    ~10–500 km, see e.g. the pysteps RAPSD fits of Pulkkinen et al. 2019, *Geosci. Model Dev.* 12,
    4185) flattening beyond the outer scale ``2 pi / k_0``. ``k_e^2 = (e k_par)^2 + (k_perp / e)^2``
    with ``e = sqrt(elongation)`` stretches structures along the wind by ``elongation``.

    Parameters
    ----------
    k : (1, nk) float32
        Zonal wavenumbers of an ``rfft2`` (rad m-1).
    l_ : (nl, 1) float32
        Meridional wavenumbers (rad m-1).
    state : SyntheticState
    outer_scale_m : float
        Largest structure size (m).

    Returns
    -------
    numpy.ndarray
        ``(nl, nk)`` float32, such that ``irfft2(amplitude * rfft2(w, norm="ortho"), norm="ortho")``
        of unit white noise ``w`` has unit variance.
    """
    along, across = _along_across(k, l_, state.u, state.v)
    e = np.float32(math.sqrt(max(state.elongation, 1.0)))
    k0 = np.float32(2 * np.pi / outer_scale_m)
    amp = ((e * along) ** 2 + (across / e) ** 2 + k0**2) ** np.float32(-state.spectral_slope / 4)
    amp /= amp.max()
    nx = 2 * (k.shape[1] - 1)  # the even real length this half-spectrum comes from
    weight = np.full(k.shape[1], 2.0, dtype=np.float32)
    weight[0] = weight[-1] = 1.0
    variance = float((amp**2 * weight).sum() / (l_.shape[0] * nx))
    return (amp / np.float32(math.sqrt(variance))).astype(np.float32)


def gaussian_field(
    rng: np.random.Generator, amplitude: np.ndarray, shape: tuple[int, int], workers: int = 2
) -> np.ndarray:
    """A periodic Gaussian random field with the given spectral amplitude.

    Parameters
    ----------
    rng : numpy.random.Generator
    amplitude : (ny, nx // 2 + 1) float32
        From :func:`power_law_amplitude`.
    shape : (ny, nx)
        Real shape; ``nx`` must be even.
    workers : int
        Threads for scipy.fft.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32, zero mean, unit variance in expectation.
    """
    noise = rng.standard_normal(shape, dtype=np.float32)
    spectrum = sfft.rfft2(noise, norm="ortho", workers=workers) * amplitude
    return sfft.irfft2(spectrum, s=shape, norm="ortho", workers=workers)


def _conditional_excess(q: float, spread: float) -> float:
    """``E[exp(s (g - q)) - 1 | g > q]`` for a standard normal ``g`` (closed form)."""
    return math.exp(spread * spread / 2 - spread * q) * float(ndtr(spread - q) / ndtr(-q)) - 1.0


def large_scale_rain(
    field: np.ndarray, state: SyntheticState, spread: float = INTENSITY_SPREAD
) -> tuple[np.ndarray, np.ndarray]:
    """Intermittent, lognormal-like rain and its moist envelope from a unit Gaussian field.

    With ``q = Phi^-1(1 - wet_fraction)`` it rains where ``g > q``, at
    ``A (exp(s (g - q)) - 1)``: zero at the edge of the rain, lognormal-like tail inside, and ``A``
    set so the mean over the raining area is ``large_scale_rate`` in expectation. The envelope
    rises smoothly from 0 at ``g = q - ENVELOPE_WIDTH`` to 1 at the rain's edge.

    Parameters
    ----------
    field : (ny, nx) float32
        Standard Gaussian field (:func:`gaussian_field`).
    state : SyntheticState
        Uses ``wet_fraction`` and ``large_scale_rate``.
    spread : float
        ``s``: e-folding of the rate per standard deviation of the field.

    Returns
    -------
    rate : (ny, nx) float32
        mm h-1, ``>= 0``.
    envelope : (ny, nx) float32
        In ``[0, 1]``.
    """
    q = float(ndtri(1.0 - float(np.clip(state.wet_fraction, 1e-3, 1 - 1e-3))))
    excess = field - np.float32(q)
    scale = np.float32(state.large_scale_rate / _conditional_excess(q, spread))
    rate = scale * np.expm1(np.float32(spread) * np.maximum(excess, 0))
    x = np.clip(excess / np.float32(ENVELOPE_WIDTH) + 1, 0, 1)
    return rate.astype(np.float32), (x * x * (3 - 2 * x)).astype(np.float32)


def advection_blur(k: np.ndarray, l_: np.ndarray, u: float, v: float, hours: float = ACCUMULATION_HOURS) -> np.ndarray:
    """Transfer function of the time mean of a field advected at ``(u, v)`` over ``hours``.

    Averaging ``f(x - c t)`` over ``t`` in ``[-T/2, T/2]`` convolves ``f`` with a segment of length
    ``|c| T`` along the wind: ``sinc(sigma T / 2)`` in Fourier space, ``sigma = u k + v l``.

    Parameters
    ----------
    k : (1, nk) float32
    l_ : (nl, 1) float32
        Wavenumbers (rad m-1).
    u, v : float
        Motion (m s-1).
    hours : float
        Averaging window (h).

    Returns
    -------
    numpy.ndarray
        ``(nl, nk)`` float32.
    """
    sigma = np.float32(u) * k + np.float32(v) * l_
    return np.sinc(sigma * np.float32(hours * 3600.0 / (2 * np.pi))).astype(np.float32)

