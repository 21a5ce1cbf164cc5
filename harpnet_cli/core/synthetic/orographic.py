"""Orographic rain from the linear theory of Smith & Barstad (2004, "SB04") on a padded, tapered FFT grid.

The terrain's Fourier transform times a transfer function holding the upslope condensation
source, the airflow dynamics of a moist-stable atmosphere (vertical wavenumber ``m``) and the
advection of condensate during conversion and fall-out (``tau_c``, ``tau_f``); see
:func:`smith_barstad_transfer`. Rotation can be added to the wave dispersion relation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft

from harpnet_cli.core.synthetic.constants import DEFAULT_PAD_M
from harpnet_cli.core.synthetic.state import SyntheticState


# -- Fourier grid and padding -------------------------------------------------------------------
def wavenumbers(shape: tuple[int, int], dx_m: float, dy_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers of an ``rfft2`` of a ``(ny, nx)`` real array.

    Parameters
    ----------
    shape : (ny, nx)
        Shape of the real array.
    dx_m, dy_m : float
        Grid spacing (m) along columns (x, east) and rows (y, north).

    Returns
    -------
    k : (1, nx // 2 + 1) float32
        Zonal wavenumbers (rad m-1).
    l : (ny, 1) float32
        Meridional wavenumbers (rad m-1).
    """
    k = 2 * np.pi * sfft.rfftfreq(shape[1], dx_m)
    l_ = 2 * np.pi * sfft.fftfreq(shape[0], dy_m)
    return k.astype(np.float32)[None, :], l_.astype(np.float32)[:, None]


def _pad_widths(n: int, pad: int) -> tuple[int, int]:
    """Before/after padding of an axis of ``n`` cells: at least ``pad`` each side, fast total length."""
    total = sfft.next_fast_len(n + 2 * pad, real=True)
    before = (total - n) // 2
    return before, total - n - before


def _ramp(n: int, before: int, after: int) -> np.ndarray:
    """``(n + before + after,)`` taper: 1 on the ``n`` inner cells, a cosine down to 0 across each pad."""
    out = np.ones(n + before + after, dtype=np.float32)
    if before:
        out[:before] = 0.5 - 0.5 * np.cos(np.pi * np.arange(before) / before)
    if after:
        out[n + before :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(after) + 1) / after)
    return out


def pad_and_taper(terrain: np.ndarray, pad_y: int, pad_x: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Pad terrain for a non-periodic FFT, tapering the pad smoothly to the border level.

    The terrain is taken relative to the median of its border cells (a constant level has no
    slope, so no signal), extended by its edge values and multiplied by a cosine ramp that reaches 0
    at the outer edge of the pad. Features then interact with their periodic images only through
    the pads, which are many advection lengths ``U tau`` wide.

    Parameters
    ----------
    terrain : (H, W) float
        Elevation (m).
    pad_y, pad_x : int
        Minimum padding (cells) on each side; the totals are rounded up to fast FFT lengths.

    Returns
    -------
    padded : (Py, Px) float32
        Tapered relative elevation.
    inner : (slice, slice)
        Where the original array sits in ``padded``.
    """
    h = np.asarray(terrain, dtype=np.float32)
    border = np.concatenate([h[0], h[-1], h[:, 0], h[:, -1]])
    (y0, y1), (x0, x1) = _pad_widths(h.shape[0], pad_y), _pad_widths(h.shape[1], pad_x)
    padded = np.pad(h - np.float32(np.median(border)), ((y0, y1), (x0, x1)), mode="edge")
    padded *= _ramp(h.shape[0], y0, y1)[:, None] * _ramp(h.shape[1], x0, x1)[None, :]
    return padded, (slice(y0, y0 + h.shape[0]), slice(x0, x0 + h.shape[1]))


# -- Smith & Barstad (2004) ----------------------------------------------------------------------
def _airflow_factor(sigma: np.ndarray, k2: np.ndarray, state: SyntheticState, coriolis: float) -> np.ndarray:
    """``1 - i m Hw`` with SB04's vertical wavenumber ``m`` and branch (their eq. 12).

    ``m^2 = (N_m^2 - sigma^2) / (sigma^2 - f^2) (k^2 + l^2)`` (SB04 take ``f = 0``). Where
    ``f^2 < sigma^2 < N_m^2`` the waves propagate and ``m = sign(sigma) |m|`` (energy radiates
    upwards); elsewhere they are evanescent and ``m = i |m|`` (decaying aloft), so
    ``1 - i m Hw = 1 + |m| Hw``. Where ``sigma = 0`` (or ``sigma^2 = f^2``) ``|m|`` is infinite;
    the factor is returned as 1 at ``sigma = 0`` (the source vanishes there anyway) and as a large
    real number at ``sigma^2 = f^2`` (no response).
    """
    sig2 = sigma * sigma
    n2, f2 = np.float32(state.stability**2), np.float32(coriolis**2)
    still = sig2 == 0
    denominator = sig2 - f2
    denominator = np.where(denominator == 0, np.float32(1e-30), denominator)
    m_abs = np.sqrt(np.abs((n2 - sig2) / np.where(still, 1, denominator)) * k2) * np.float32(state.vapour_scale_height)
    propagating = (sig2 < n2) & (sig2 > f2) & ~still
    real = np.where(still, np.float32(1), np.where(propagating, np.float32(1), 1 + m_abs))
    imag = np.where(propagating, -np.sign(sigma) * m_abs, np.float32(0))
    return (real + 1j * imag).astype(np.complex64)


def smith_barstad_transfer(k: np.ndarray, l_: np.ndarray, state: SyntheticState, coriolis: float = 0.0) -> np.ndarray:
    """SB04's terrain-to-precipitation transfer function, in mm h-1 per metre of ``h_hat``.

    ``P_hat = Cw i sigma h_hat / [(1 - i m Hw)(1 + i sigma tau_c)(1 + i sigma tau_f)]`` with the
    intrinsic frequency ``sigma = U k + V l`` (their eq. 49). With ``tau_c = tau_f = 0`` and
    ``m Hw -> 0`` (``N_m = 0`` and a hill much wider than ``Hw``) it is the upslope model
    ``P = Cw U . grad h``.

    ``coriolis`` adds rotation to the mountain-wave dispersion relation (Queney 1948; Smith 1979,
    *Adv. Geophys.* 21, 87–230), as some implementations of SB04 do: scales whose advective
    frequency is below ``f`` (along-wind wavelengths beyond ``2 pi U / f``, ~1000 km) no longer
    radiate gravity waves, which would otherwise make a continent-wide plateau lift the air far
    upstream. (The slowly decaying upstream tail of the smaller scales remains: over CONUS in
    uniformly moist westerlies, ~0.5 mm per 3 h some 200 km off the Pacific coast.)

    Parameters
    ----------
    k : (1, nk) float32
        Zonal wavenumbers (rad m-1).
    l_ : (nl, 1) float32
        Meridional wavenumbers (rad m-1).
    state : SyntheticState
        Uses ``u, v, moisture, stability, vapour_scale_height, tau_c, tau_f``.
    coriolis : float
        Coriolis parameter ``f`` (s-1); 0 gives SB04 exactly.

    Returns
    -------
    numpy.ndarray
        ``(nl, nk)`` complex64.
    """
    sigma = np.float32(state.u) * k + np.float32(state.v) * l_
    k2 = k * k + l_ * l_
    source = (1j * np.float32(state.moisture * 3600.0)) * sigma  # kg m-2 s-1 -> mm h-1
    delays = (1 + 1j * np.float32(state.tau_c) * sigma) * (1 + 1j * np.float32(state.tau_f) * sigma)
    return (source / (_airflow_factor(sigma, k2, state, coriolis) * delays)).astype(np.complex64)


def coriolis_parameter(lat_deg: float) -> float:
    """``f = 2 Omega sin(lat)`` (s-1)."""
    return 2 * 7.2921e-5 * math.sin(math.radians(lat_deg))


class OrographicSolver:
    """SB04 on one terrain array: the padded terrain's transform is computed once, reused per state.

    Parameters
    ----------
    terrain_m : (H, W) float
        Elevation (m) on a regular grid, rows south → north, columns west → east.
    dx_m, dy_m : float
        Grid spacing (m) along columns and rows.
    pad_m : float
        Minimum padding (m) on every side (:func:`pad_and_taper`).
    workers : int
        Threads for scipy.fft.
    """

    def __init__(
        self, terrain_m: np.ndarray, dx_m: float, dy_m: float, pad_m: float = DEFAULT_PAD_M, workers: int = 2
    ) -> None:
        """Pad, taper and transform the terrain."""
        padded, self.inner = pad_and_taper(terrain_m, math.ceil(pad_m / dy_m), math.ceil(pad_m / dx_m))
        self.padded_shape: tuple[int, int] = (int(padded.shape[0]), int(padded.shape[1]))
        self.dx_m, self.dy_m = dx_m, dy_m
        self.workers = workers
        self.h_hat = sfft.rfft2(padded, workers=workers)

    def linear(self, state: SyntheticState, dx_m: float | None = None, coriolis: float = 0.0) -> np.ndarray:
        """The linear orographic rate, before adding a background and truncating.

        Parameters
        ----------
        state : SyntheticState
        dx_m : float or None
            Zonal spacing to assume (m); None keeps the one given at construction. Used to
            evaluate the same terrain at several latitudes' metric (see :class:`SyntheticWorld`).
        coriolis : float
            Coriolis parameter (s-1), see :func:`smith_barstad_transfer`.

        Returns
        -------
        numpy.ndarray
            ``(H, W)`` float32 mm h-1; negative where the flow descends and evaporates.
        """
        k, l_ = wavenumbers(self.padded_shape, dx_m or self.dx_m, self.dy_m)
        p_hat = self.h_hat * smith_barstad_transfer(k, l_, state, coriolis)
        return sfft.irfft2(p_hat, s=self.padded_shape, workers=self.workers)[self.inner]


def orographic_linear(
    terrain_m: np.ndarray,
    dx_m: float,
    dy_m: float,
    state: SyntheticState,
    *,
    pad_m: float = DEFAULT_PAD_M,
    coriolis: float = 0.0,
) -> np.ndarray:
    """SB04's linear orographic precipitation field, untruncated.

    Parameters
    ----------
    terrain_m : (H, W) float
        Elevation (m), rows south → north, columns west → east.
    dx_m, dy_m : float
        Grid spacing (m).
    state : SyntheticState
    pad_m : float
        Padding (m) against wrap-around.
    coriolis : float
        Coriolis parameter (s-1); 0 (the default) is SB04 exactly.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 mm h-1, positive over ascent, negative over descent.
    """
    return OrographicSolver(terrain_m, dx_m, dy_m, pad_m).linear(state, dx_m, coriolis)


def orographic_rate(
    terrain_m: np.ndarray,
    dx_m: float,
    dy_m: float,
    state: SyntheticState,
    *,
    background: float = 0.0,
    pad_m: float = DEFAULT_PAD_M,
    coriolis: float = 0.0,
) -> np.ndarray:
    """SB04's orographic precipitation rate ``max(P_lin + background, 0)``.

    Parameters
    ----------
    terrain_m : (H, W) float
        Elevation (m), rows south → north, columns west → east.
    dx_m, dy_m : float
        Grid spacing (m).
    state : SyntheticState
    background : float
        Uniform background rate (mm h-1) that the lee-side descent can reduce.
    pad_m : float
        Padding (m) against wrap-around.
    coriolis : float
        Coriolis parameter (s-1); 0 (the default) is SB04 exactly.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 mm h-1, ``>= 0``.
    """
    lin = orographic_linear(terrain_m, dx_m, dy_m, state, pad_m=pad_m, coriolis=coriolis)
    return np.maximum(lin + np.float32(background), 0, dtype=np.float32)
