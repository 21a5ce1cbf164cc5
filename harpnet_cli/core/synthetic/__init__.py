"""A synthetic, physically based precipitation world over real terrain (the ``prepare synthetic`` corpus).

Each sample is one 3-hour accumulation built from three parts, all computed on a high-resolution
(HR) lat/lon grid ``hr_factor`` times finer than the 0.0625° grid and area-averaged onto it:

1. **Orographic rain** from the linear theory of Smith & Barstad (2004, *J. Atmos. Sci.* 61,
   1377–1391; "SB04"): the terrain's Fourier transform times a transfer function holding the
   upslope condensation source, the airflow dynamics of a moist-stable atmosphere (vertical
   wavenumber ``m``) and the advection of condensate during conversion and fall-out
   (``tau_c``, ``tau_f``); see :func:`smith_barstad_transfer`. It can be negative (lee-side
   evaporation and descent). Rotation is added to the wave dispersion relation, and the lat/lon
   metric is handled by evaluating the FFT at a few latitudes (:class:`SyntheticWorld`).
2. **Large-scale rain**: a Gaussian random field with a power-law spectrum, elongated along the
   steering wind, made intermittent and lognormal-like by a threshold transform (see
   :func:`large_scale_rain`). Its moist envelope ``M`` (1 in and near the rain, 0 in dry air) gates
   the orographic signal: the linear theory assumes saturated upstream air, so the local
   condensation coefficient is ``M Cw`` — a WKB-style approximation valid because ``M`` varies on
   synoptic scales (~1000 km) much longer than the mountains'.
3. **Convective cells**: Gaussian cells of a few km, placed preferably over slopes inside the moist
   envelope, more of them in warm, weakly stable states; each moves with the wind during its life
   and leaves an exact swath (:func:`render_cells`).

The rate combines the way SB04 add a uniform background rate to the linear field and truncate
at zero, ``P = max(P_ls + M P_oro, 0)``: the lee side of a ridge falls below the upwind rain (a
rain shadow) and windward slopes are enhanced. Over the 3 hours the weather moves with the wind
(frozen-turbulence hypothesis): the 3-hour mean of a field advected at ``c`` is exactly its
convolution with a segment of length ``c * 3 h``, a ``sinc`` in Fourier space, applied to
``P_ls`` and ``M``. The truncation at zero is applied to the 3-hour mean rate (not hour by hour),
which keeps the linear parts exact and is the one approximation of the time integration.

Modules
-------
:mod:`~harpnet_cli.core.synthetic.constants`
    Physical constants and the calibrated knobs.
:mod:`~harpnet_cli.core.synthetic.thermodynamics`
    SB04's ``Cw`` and ``Hw`` from a temperature.
:mod:`~harpnet_cli.core.synthetic.state`
    :class:`SyntheticState` (the weather of one sample) and :func:`sample_state`.
:mod:`~harpnet_cli.core.synthetic.orographic`
    Part 1: the Smith–Barstad solver on a padded, tapered FFT grid.
:mod:`~harpnet_cli.core.synthetic.random_fields`
    Part 2: the large-scale rain, its moist envelope and the advection blur.
:mod:`~harpnet_cli.core.synthetic.cells`
    Part 3: convective cells and their swaths.
:mod:`~harpnet_cli.core.synthetic.world`
    :class:`SyntheticWorld`, which composes the parts into samples, and the example input.

Every public name is importable from the package itself. Pure numpy/scipy: no files, no xarray,
no torch.
"""

from harpnet_cli.core.synthetic.cells import Cells, render_cells, sample_cells
from harpnet_cli.core.synthetic.constants import (
    ACCUMULATION_HOURS,
    CELL_AREA_KM2,
    CELL_SLOPE_PREFERENCE,
    CP_DRY,
    DEFAULT_PAD_M,
    DRY_PROBABILITY,
    EARTH_RADIUS_M,
    EMBEDDED_CONVECTION,
    ENV_LAPSE_RATE,
    ENVELOPE_WIDTH,
    GRAVITY,
    INTENSITY_SPREAD,
    LATENT_HEAT,
    OROGRAPHIC_EFFICIENCY,
    OUTER_SCALE_M,
    PREVAILING_FROM_DEG,
    R_DRY,
    R_VAPOUR,
    REFERENCE_PRESSURE,
    REFERENCE_SLOPE,
    SPECTRAL_SLOPE_RANGE,
)
from harpnet_cli.core.synthetic.orographic import (
    OrographicSolver,
    coriolis_parameter,
    orographic_linear,
    orographic_rate,
    pad_and_taper,
    smith_barstad_transfer,
    wavenumbers,
)
from harpnet_cli.core.synthetic.random_fields import (
    advection_blur,
    gaussian_field,
    large_scale_rain,
    power_law_amplitude,
)
from harpnet_cli.core.synthetic.state import SyntheticState, sample_state
from harpnet_cli.core.synthetic.thermodynamics import (
    saturation_vapour_pressure,
    uplift_sensitivity,
    vapour_scale_height,
)
from harpnet_cli.core.synthetic.world import (
    EXAMPLE_SEED,
    EXAMPLE_STATE,
    SyntheticWorld,
    example_amounts,
    high_res_axes,
)

__all__ = [
    "ACCUMULATION_HOURS", "CELL_AREA_KM2", "CELL_SLOPE_PREFERENCE", "CP_DRY", "DEFAULT_PAD_M", "DRY_PROBABILITY",
    "EARTH_RADIUS_M", "EMBEDDED_CONVECTION", "ENVELOPE_WIDTH", "ENV_LAPSE_RATE", "EXAMPLE_SEED", "EXAMPLE_STATE",
    "GRAVITY", "INTENSITY_SPREAD", "LATENT_HEAT", "OROGRAPHIC_EFFICIENCY", "OUTER_SCALE_M", "PREVAILING_FROM_DEG",
    "REFERENCE_PRESSURE", "REFERENCE_SLOPE", "R_DRY", "R_VAPOUR", "SPECTRAL_SLOPE_RANGE", "Cells",
    "OrographicSolver", "SyntheticState", "SyntheticWorld", "advection_blur", "coriolis_parameter",
    "example_amounts", "gaussian_field", "high_res_axes", "large_scale_rain", "orographic_linear",
    "orographic_rate", "pad_and_taper", "power_law_amplitude", "render_cells", "sample_cells", "sample_state",
    "saturation_vapour_pressure", "smith_barstad_transfer", "uplift_sensitivity", "vapour_scale_height",
    "wavenumbers",
]
