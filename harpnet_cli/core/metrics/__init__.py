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


Modules
-------
:mod:`~harpnet_cli.core.metrics.scores`
    Continuous and categorical scores, point by point.
:mod:`~harpnet_cli.core.metrics.spatial`
    FSS, radially averaged power spectra and the coarse-mass error of complete fields.
:mod:`~harpnet_cli.core.metrics.probabilistic`
    CRPS, spread/skill, rank histogram, Brier score and reliability of ensembles.
:mod:`~harpnet_cli.core.metrics.accumulators`
    The same scores streamed over batches in bounded memory (``evaluate``), with the JSON
    schema ``harpnet-scores/1`` of :meth:`ScoreAccumulator.to_dict`.
:mod:`~harpnet_cli.core.metrics.summary`
    The evaluation table's headline numbers and columns.
:mod:`~harpnet_cli.core.metrics.common`
    Defaults and helpers the others share.

Every public name is importable from the package itself (``from harpnet_cli.core.metrics import fss``).
"""

from harpnet_cli.core.metrics.accumulators import (
    SCHEMA,
    EnsembleAccumulator,
    FssAccumulator,
    ScoreAccumulator,
    TerrainLock,
    WetQuantile,
)
from harpnet_cli.core.metrics.common import DEFAULT_THRESHOLDS, DEFAULT_WINDOWS, FssMode
from harpnet_cli.core.metrics.probabilistic import (
    brier_score,
    crps_ensemble,
    rank_histogram,
    reliability,
    spread_skill_ratio,
)
from harpnet_cli.core.metrics.scores import (
    Contingency,
    bias,
    categorical_scores,
    contingency,
    csi,
    ets,
    far,
    frequency_bias,
    mae,
    pearson_r,
    pod,
    rmse,
)
from harpnet_cli.core.metrics.spatial import (
    block_residual,
    coarse_mass_error,
    fss,
    fss_components,
    fss_components_multi,
    neighbourhood_fractions,
    radial_bins,
    radial_power_spectrum,
    spectral_ratio,
)
from harpnet_cli.core.metrics.summary import SUMMARY_COLUMNS, summarise

__all__ = [
    "DEFAULT_THRESHOLDS", "DEFAULT_WINDOWS", "SCHEMA", "SUMMARY_COLUMNS", "Contingency", "EnsembleAccumulator",
    "FssAccumulator", "FssMode", "ScoreAccumulator", "TerrainLock", "WetQuantile", "bias", "block_residual",
    "brier_score", "categorical_scores", "coarse_mass_error", "contingency", "crps_ensemble", "csi", "ets", "far",
    "frequency_bias", "fss", "fss_components", "fss_components_multi", "mae", "neighbourhood_fractions",
    "pearson_r", "pod", "radial_bins", "radial_power_spectrum", "rank_histogram", "reliability", "rmse",
    "spectral_ratio", "spread_skill_ratio", "summarise",
]
