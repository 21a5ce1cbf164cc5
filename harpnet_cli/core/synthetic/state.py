"""The weather situation of one sample (:class:`SyntheticState`) and how it is drawn (:func:`sample_state`)."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np

from harpnet_cli.core.synthetic import constants
from harpnet_cli.core.synthetic.constants import DRY_PROBABILITY, PREVAILING_FROM_DEG
from harpnet_cli.core.synthetic.thermodynamics import uplift_sensitivity, vapour_scale_height


@dataclass(frozen=True)
class SyntheticState:
    """The weather situation of one sample; defaults are SB04's reference case, no other rain.

    The vector form (:meth:`as_vector`) lists the attributes in the order below — ``u`` and ``v``
    first — and :meth:`names` gives that order.

    Attributes
    ----------
    u, v : float
        Steering-level wind towards east and north (m s-1), the flow over the terrain and the
        motion of the weather.
    moisture : float
        SB04's uplift sensitivity ``Cw`` (kg m-3): condensation rate per unit vertical velocity
        of saturated air (kg m-2 s-1 per m s-1); 0 in a dry situation. See
        :func:`uplift_sensitivity`.
    stability : float
        Moist Brunt–Väisälä frequency ``N_m`` (s-1); 0 is neutral (no gravity waves).
    vapour_scale_height : float
        ``Hw`` (m), the e-folding height of the saturation vapour density.
    tau_c, tau_f : float
        Time scales (s) of cloud-water conversion to hydrometeors and of their fall-out.
    large_scale_rate : float
        Mean rate (mm h-1) of the synoptic rain where it rains; 0 for none.
    wet_fraction : float
        Expected fraction of the area under synoptic rain at any moment, in ``(0, 1)``.
    spectral_slope : float
        ``beta`` of the large-scale field's radially averaged power spectrum ``S(k) ~ k^-beta``.
    elongation : float
        Aspect ratio (>= 1) of the large-scale structures, long axis along the wind.
    convective : float
        Convective intensity in ``[0, 1]``: scales the number of cells (one per
        :data:`CELL_AREA_KM2` km² at 1).
    """

    u: float
    v: float
    moisture: float = 0.005
    stability: float = 0.005
    vapour_scale_height: float = 2500.0
    tau_c: float = 1000.0
    tau_f: float = 1000.0
    large_scale_rate: float = 0.0
    wet_fraction: float = 0.3
    spectral_slope: float = 3.5
    elongation: float = 1.0
    convective: float = 0.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of the entries of :meth:`as_vector`, in order (``("u", "v", "moisture", …)``)."""
        return tuple(f.name for f in fields(cls))

    def as_vector(self) -> np.ndarray:
        """The state as a float32 vector ``(len(names()),)`` in the order of :meth:`names`."""
        return np.asarray(astuple(self), dtype=np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> SyntheticState:
        """Inverse of :meth:`as_vector` (up to float32 rounding)."""
        values = np.asarray(vector, dtype=np.float64).ravel()
        if values.size != len(cls.names()):
            raise ValueError(f"expected {len(cls.names())} values, got {values.size}")
        return cls(*(float(x) for x in values))

    @property
    def speed(self) -> float:
        """Wind speed (m s-1)."""
        return math.hypot(self.u, self.v)

    @property
    def is_dry(self) -> bool:
        """True when nothing can rain: no moisture, no synoptic rain, no convection."""
        return self.moisture <= 0 and self.large_scale_rate <= 0 and self.convective <= 0


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One draw, uniform in ``log`` between ``low`` and ``high``."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _sample_wind(rng: np.random.Generator) -> tuple[float, float]:
    """Steering-level wind ``(u, v)`` in m s-1: prevailing west-southwesterlies with spread.

    The direction the wind blows *from* is von Mises around :data:`PREVAILING_FROM_DEG` with
    ``kappa = 2`` (about ±40° standard spread; easterlies remain possible); the speed is lognormal,
    median 12 m s-1, 5–95 % range ~6–23 m s-1, as for mid-latitude 700 hPa flow in precipitating
    systems.
    """
    from_rad = rng.vonmises(np.deg2rad(PREVAILING_FROM_DEG), 2.0)
    speed = float(np.clip(12.0 * np.exp(0.4 * rng.standard_normal()), 3.0, 40.0))
    return -speed * float(np.sin(from_rad)), -speed * float(np.cos(from_rad))


def sample_state(rng: np.random.Generator) -> SyntheticState:
    """Draw a plausible weather situation.

    Distributions (ranges quoted are where most draws fall):

    * wind: see :func:`_sample_wind`;
    * reference temperature ``T ~ N(8, 7)`` °C clipped to −15…26 °C sets ``Cw`` (0.002–0.012
      kg m-3, :func:`uplift_sensitivity`) and ``Hw`` (1.9–2.5 km, :func:`vapour_scale_height`);
      SB04's examples use ``Hw`` ≈ 2.5 km;
    * ``N_m`` log-uniform in 0.002–0.012 s-1 (SB04's examples use 0.005 s-1; near-neutral frontal air to
      stable post-frontal flow);
    * ``tau_c`` log-uniform in 500–2000 s and ``tau_f`` in 500–1500 s for rain, 1000–2500 s for
      snow (``T < 2`` °C, slower fall); SB04's examples use ``tau_c = tau_f = 1000`` s;
    * synoptic rate lognormal, median 1 mm h-1 at 8 °C, +7 % K-1 (Clausius–Clapeyron),
      clipped to 0.1–8 mm h-1; wet fraction uniform in 0.08–0.4 (moving over 3 hours, the rain
      then covers ~10–50 % of the area); spectral slope uniform in 3–4; elongation uniform in
      1–3.5;
    * convective intensity: ``U(0.5, 1)`` times the larger of :data:`EMBEDDED_CONVECTION` and
      an instability factor (1 at ``N_m`` = 0.002, 0 from 0.009 s-1) times a warmth factor (0
      below 4 °C, 1 from 18 °C);
    * with probability :data:`DRY_PROBABILITY` the situation is dry: ``moisture``,
      ``large_scale_rate`` and ``convective`` are 0.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the draws consumed are fixed, so a seeded generator gives a fixed
        state.

    Returns
    -------
    SyntheticState
    """
    u, v = _sample_wind(rng)
    t_c = float(np.clip(rng.normal(8.0, 7.0), -15.0, 26.0))
    stability = _log_uniform(rng, 0.002, 0.012)
    tau_c = _log_uniform(rng, 500.0, 2000.0)
    tau_f = _log_uniform(rng, 1000.0, 2500.0) if t_c < 2.0 else _log_uniform(rng, 500.0, 1500.0)
    rate = float(np.clip(np.exp(0.07 * (t_c - 8.0) + 0.5 * rng.standard_normal()), 0.1, 8.0))
    instability = float(np.clip((0.009 - stability) / 0.007, 0.0, 1.0))
    warmth = float(np.clip((t_c - 4.0) / 14.0, 0.0, 1.0))
    convective = rng.uniform(0.5, 1.0) * max(instability * warmth, constants.EMBEDDED_CONVECTION)
    wet_fraction = rng.uniform(0.08, 0.4)
    slope = rng.uniform(*constants.SPECTRAL_SLOPE_RANGE)
    elongation = rng.uniform(1.0, 3.5)
    dry = rng.random() < DRY_PROBABILITY
    return SyntheticState(
        u=u,
        v=v,
        moisture=0.0 if dry else uplift_sensitivity(t_c),
        stability=stability,
        vapour_scale_height=vapour_scale_height(t_c),
        tau_c=tau_c,
        tau_f=tau_f,
        large_scale_rate=0.0 if dry else rate,
        wet_fraction=float(wet_fraction),
        spectral_slope=float(slope),
        elongation=float(elongation),
        convective=0.0 if dry else float(convective),
    )
