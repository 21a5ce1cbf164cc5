"""Constants and tunable parameters of the synthetic world.

The four calibrated knobs (:data:`SPECTRAL_SLOPE_RANGE`, :data:`OROGRAPHIC_EFFICIENCY`,
:data:`EMBEDDED_CONVECTION`, :data:`CELL_SLOPE_PREFERENCE`) are read from this module at call time
(``constants.NAME``), so ``tools/calibrate_synthetic.py`` can try other values by setting them here.
"""

EARTH_RADIUS_M = 6_371_000.0
#: Length of one sample's accumulation window (hours).
ACCUMULATION_HOURS = 3.0
GRAVITY = 9.81  # m s-2
R_DRY = 287.04  # J kg-1 K-1
R_VAPOUR = 461.5  # J kg-1 K-1
CP_DRY = 1004.0  # J kg-1 K-1
LATENT_HEAT = 2.5e6  # J kg-1, condensation
#: Environmental lapse rate gamma (K m-1): the standard atmosphere's, as in SB04's Cw and Hw.
ENV_LAPSE_RATE = 6.5e-3
#: Pressure (Pa) at which the moist-adiabatic lapse rate is evaluated (a low-level cloud base).
REFERENCE_PRESSURE = 90_000.0
#: Probability that a sample is dry (no moisture, no rain anywhere).
DRY_PROBABILITY = 0.1
#: Range of the spectral slope ``beta`` of the large-scale rain (drawn uniformly per sample).
SPECTRAL_SLOPE_RANGE = (3.0, 4.0)
#: Factor on SB04's orographic rate (a precipitation efficiency; 1 is the linear theory's).
OROGRAPHIC_EFFICIENCY = 1.0
#: Least convective instability factor of a moist state: cells embedded in frontal rain bands.
#: This, :data:`CELL_SLOPE_PREFERENCE` and :data:`CELL_AREA_KM2` were calibrated with
#: ``tools/calibrate_synthetic.py`` on the terrain lock (:class:`~harpnet_cli.core.metrics.TerrainLock`):
#: before, single samples scored 0.28 and the mean of 16 samples 0.42; after, 0.14 and 0.23,
#: against 0.03 for the real MRMS hours of September 2016 and 0.28 for the PRISM March normal.
EMBEDDED_CONVECTION = 1.0
#: Weight of the terrain slope in where cells start (0: anywhere in moist air, 1: SB04-style).
CELL_SLOPE_PREFERENCE = 0.0
#: Meteorological direction (degrees, wind *from*) of the prevailing flow: west-southwest.
PREVAILING_FROM_DEG = 247.5
#: Outer scale (m) of the large-scale field: the size of synoptic systems, beyond which it is white.
OUTER_SCALE_M = 3_000_000.0
#: Log-spread of large-scale intensities (1 / e-folding of rate per standard deviation of the field).
INTENSITY_SPREAD = 1.0
#: Width (in field standard deviations) of the moist envelope around the raining area.
ENVELOPE_WIDTH = 0.5
#: One convective cell per this many km² of domain at ``convective = 1`` (per 3 hours).
CELL_AREA_KM2 = 1_000.0
#: Terrain slope (m/m) at which the convective-initiation weight reaches 1 above its flat value.
REFERENCE_SLOPE = 0.02
#: Default padding (m) around the terrain for the FFTs: several advection lengths ``U tau``.
DEFAULT_PAD_M = 250_000.0

#: Standard deviation (degrees) of the steady turn of the wind between consecutive 3-hour states of
#: a longer synthetic window (``SyntheticWorld.render_turning``): the last state of a 24-hour
#: window blows 35° (1 sigma) from the first, as the wind veers or backs when a system passes.
TURN_DEG_PER_STEP = 5.0
