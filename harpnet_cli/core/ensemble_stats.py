"""Ensemble statistics of downscaled members: mean, spread, exceedance probabilities and percentiles.

Pure numpy; every function takes the member axis first and propagates missing values (NaN in
any member gives NaN), so a statistic is never computed from fewer members than the file says.
:func:`ensemble_products` gathers what an output holds into a
:class:`~harpnet_cli.fields.EnsembleProducts`, which the writers write as given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harpnet_cli.fields import EnsembleProducts


def mean_and_spread(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted mean and spread (population standard deviation) over the member axis.

    The spread uses ``ddof=0``, as ECMWF's ``es`` and GRIB2 code table 4.7 entry 4 ("spread of all
    members"). The mean of block-conserving members conserves block means too (it is linear).

    Parameters
    ----------
    members : numpy.ndarray
        ``(M, ...)`` amounts, NaN where missing.

    Returns
    -------
    mean, spread : numpy.ndarray
        ``(...)`` float32 each, NaN where any member is missing.
    """
    values = np.asarray(members, dtype=np.float64)
    if values.ndim < 1 or values.shape[0] < 1:
        raise ValueError("need at least one member along axis 0")
    return values.mean(axis=0).astype(np.float32), values.std(axis=0).astype(np.float32)


def exceedance_probability(members: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Fraction of members strictly above each threshold.

    Parameters
    ----------
    members : numpy.ndarray
        ``(M, ...)`` amounts, NaN where missing.
    thresholds : sequence of float
        ``K`` thresholds in the units of ``members``.

    Returns
    -------
    numpy.ndarray
        ``(K, ...)`` float32 in 0…1, NaN where any member is missing; non-increasing along the
        threshold axis when ``thresholds`` increase.
    """
    values = np.asarray(members, dtype=np.float64)
    missing = np.isnan(values).any(axis=0)
    out = np.stack([(values > float(t)).mean(axis=0) for t in thresholds]).astype(np.float32)
    out[:, missing] = np.nan
    return out


def ensemble_percentiles(members: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Amounts at given percentiles of the members' distribution, cell by cell.

    Linear interpolation between the sorted members (numpy's default, Hyndman and Fan type 7):
    the 0th and 100th percentiles are the smallest and largest member, the 50th the median.

    Parameters
    ----------
    members : numpy.ndarray
        ``(M, ...)`` amounts, NaN where missing.
    percentiles : sequence of float
        ``Q`` percentiles in 0…100.

    Returns
    -------
    numpy.ndarray
        ``(Q, ...)`` float32, NaN where any member is missing; non-decreasing along the first
        axis when ``percentiles`` increase.

    Raises
    ------
    ValueError
        A percentile outside 0…100.
    """
    qs = [float(q) for q in percentiles]
    if any(not 0.0 <= q <= 100.0 for q in qs):
        raise ValueError(f"percentiles must be in 0…100, got {qs}")
    values = np.asarray(members, dtype=np.float64)
    if values.ndim < 1 or values.shape[0] < 1:
        raise ValueError("need at least one member along axis 0")
    missing = np.isnan(values).any(axis=0)
    out = np.percentile(np.where(missing, 0.0, values), qs, axis=0).astype(np.float32)
    out[:, missing] = np.nan
    return out


def ensemble_products(members: np.ndarray, *, every_member: bool = False, thresholds: Sequence[float] = (),
                      percentiles: Sequence[float] = ()) -> EnsembleProducts:
    """The products of an ensemble output: mean and spread (or every member), probabilities, percentiles.

    Parameters
    ----------
    members : numpy.ndarray
        ``(M, T, H, W)`` amounts of every member, NaN where missing.
    every_member : bool
        The output holds every member; no mean and spread are computed.
    thresholds : sequence of float
        ``K`` increasing thresholds in kg m-2 for exceedance probabilities; empty for none.
    percentiles : sequence of float
        ``Q`` increasing percentiles (0…100) of the members' distribution; empty for none.

    Returns
    -------
    EnsembleProducts
        ``size`` M; ``mean`` and ``spread`` ``(T, H, W)`` (None with ``every_member``);
        ``probabilities`` ``(K, T, H, W)`` fractions (None without thresholds);
        ``percentile_fields`` ``(Q, T, H, W)`` amounts (None without percentiles).
    """
    mean = spread = probabilities = quantiles = None
    if not every_member:
        mean, spread = mean_and_spread(members)
    if thresholds:
        probabilities = exceedance_probability(members, thresholds)
    if percentiles:
        quantiles = ensemble_percentiles(members, percentiles)
    return EnsembleProducts(size=int(members.shape[0]), every_member=every_member, mean=mean, spread=spread,
                            thresholds=tuple(float(t) for t in thresholds), probabilities=probabilities,
                            percentiles=tuple(float(q) for q in percentiles), percentile_fields=quantiles)
