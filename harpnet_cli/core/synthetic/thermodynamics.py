"""Thermodynamics of Smith & Barstad (2004): saturation vapour pressure, ``Cw`` and ``Hw``."""

from __future__ import annotations

import numpy as np

from harpnet_cli.core.synthetic.constants import (
    CP_DRY,
    ENV_LAPSE_RATE,
    GRAVITY,
    LATENT_HEAT,
    R_DRY,
    R_VAPOUR,
    REFERENCE_PRESSURE,
)


def saturation_vapour_pressure(t_c: np.ndarray | float) -> np.ndarray:
    """Saturation vapour pressure over water (Pa), Bolton (1980, *Mon. Wea. Rev.* 108, 1046).

    Parameters
    ----------
    t_c : array_like
        Temperature in °C.

    Returns
    -------
    numpy.ndarray
        Same shape as ``t_c``, Pa.
    """
    t = np.asarray(t_c, dtype=np.float64)
    return 611.2 * np.exp(17.67 * t / (t + 243.5))


def uplift_sensitivity(t_c: float) -> float:
    """SB04's thermodynamic uplift sensitivity ``Cw = rho_S,ref * Gamma_m / gamma`` (kg m-3).

    ``rho_S,ref`` is the saturation vapour density at the reference temperature, ``Gamma_m`` the
    moist-adiabatic lapse rate at :data:`REFERENCE_PRESSURE` and ``gamma`` the environmental
    lapse rate (:data:`ENV_LAPSE_RATE`). A vertical velocity ``w`` at the ground condenses
    ``Cw w`` kg m-2 s-1 (= mm s-1) of water per unit area; about 0.006–0.007 kg m-3 at 5–10 °C.

    Parameters
    ----------
    t_c : float
        Reference (low-level) temperature in °C.

    Returns
    -------
    float
        ``Cw`` in kg m-3.
    """
    t_k = t_c + 273.15
    e_s = float(saturation_vapour_pressure(t_c))
    rho_s = e_s / (R_VAPOUR * t_k)
    r_s = (R_DRY / R_VAPOUR) * e_s / (REFERENCE_PRESSURE - e_s)
    gamma_m = GRAVITY * (1 + LATENT_HEAT * r_s / (R_DRY * t_k)) / (CP_DRY + LATENT_HEAT**2 * r_s / (R_VAPOUR * t_k**2))
    return rho_s * gamma_m / ENV_LAPSE_RATE


def vapour_scale_height(t_c: float) -> float:
    """SB04's water-vapour scale height ``Hw = Rv T^2 / (L gamma)`` (m), ~2300 m at 10 °C.

    Parameters
    ----------
    t_c : float
        Reference temperature in °C.

    Returns
    -------
    float
        ``Hw`` in metres.
    """
    t_k = t_c + 273.15
    return R_VAPOUR * t_k**2 / (LATENT_HEAT * ENV_LAPSE_RATE)
