"""Quality control of observed 3-hour amounts before they become training targets.

Gauge-corrected radar products carry artefacts a downscaler must not learn. This module flags
two kinds, seen in the 72 MRMS GaugeCorr files of 20–22 Sep 2016 (``shared/DATA.md``):

* **implausible amounts**: a 2 × 2 block of 310 mm in 3 hours (277 mm of it in one hour) near
  Banff, Alberta, and a 2-cell pair of 3,112 mm in the hour ending 23Z 22 Sep at 38.52 N 119.82 W
  (Sierra Nevada, in a dry week; that hour is in no complete 3-hour window);
* **isolated spikes**: single cells or small groups far above all their neighbours, such as a
  pair stuck near 48.6 mm h⁻¹ for hours at 50.66 N 105.40 W (Saskatchewan), and the speckle at the
  edges of the US radar network (Olympic Peninsula and Vancouver Island, Gaspé, Alberta, northern
  Mexico) that makes up most of the 282 cells above 500 mm in 72 h.

Thresholds
----------
``max_3h_mm = 300``. The largest spatially coherent 3-hour amounts in the sample are 200–285 mm
over a few kilometres near Wilmington, North Carolina (12–15Z 22 Sep), and they look real; 300 mm
leaves them alone and still catches the Alberta block. 300 mm in 3 hours is also at or above the
NOAA Atlas 14 1000-year 3-hour point depths across CONUS: the largest, on the Gulf coast, are of
that order, and over most of the country they are well below it. Point records above it exist (305 mm in
42 minutes at Holt, Missouri, 1947; 559 mm in 2 h 45 min at D'Hanis, Texas, 1935), so a genuine
cell is lost now and then. In a training corpus a lost extreme costs far less than a learnt artefact.

``spike_min_mm = 50``, ``spike_ratio = 10``, ``spike_size = 5`` flag a cell of more than 50 mm in
3 hours that exceeds 10 × the median of the other 24 cells of its 5 × 5 neighbourhood (NaN
ignored). Convective cores above 50 mm are several kilometres across, and 3-hour totals are
smeared further by storm motion, so around a real core the median of a 5 km box is a sizeable
fraction of the core. A single cell, a pair or any group of up to about 12 high cells among the
24 neighbours can be flagged, because the median stays low until half the neighbours are high.

On the 23 complete 3-hour windows of the sample (366 million valid cell-windows) the defaults
flag 3 implausible cells and 2,605 spikes: 36–283 per window, 7 in a million. The cells above
500 mm over those 69 hours fall from 248 to 111 once the flagged cells are removed. What is left
is persistent speckle, e.g. about 35 mm every hour on the Olympic Peninsula. A test that looks at
one window at a time cannot catch it; a test across windows would be needed.

NaN cells (no coverage) are never flagged. Pure numpy: no file access.
"""

from __future__ import annotations

import warnings

import numpy as np

#: 3-hour amount above which a cell is implausible over CONUS (mm); see the module docstring.
MAX_3H_MM = 300.0
#: A spike is above this amount (mm in 3 hours) …
SPIKE_MIN_MM = 50.0
#: … and above this multiple of the median of its neighbourhood …
SPIKE_RATIO = 10.0
#: … of this side (cells, odd).
SPIKE_SIZE = 5


def period_scale(hours: float) -> float:
    """Factor from 3-hour quality-control limits to a window of ``hours``: ``sqrt(hours / 3)``.

    Extreme point rainfall grows roughly with the square root of the duration (the world-record
    envelope ``R ≈ 422 D^0.475`` mm, D in hours), so the 300-mm 3-hour limit becomes 173 mm in 1 hour
    and 849 mm in 24 hours (above every CONUS 24-hour record but the 1979 Alvin, Texas, storm).
    """
    return float(np.sqrt(hours / 3.0))


def qc_mask(amount_3h: np.ndarray, *, max_3h_mm: float = MAX_3H_MM, spike_min_mm: float = SPIKE_MIN_MM,
            spike_ratio: float = SPIKE_RATIO, spike_size: int = SPIKE_SIZE) -> tuple[np.ndarray, dict[str, int]]:
    """Flag physically implausible 3-hour amounts and isolated single-cell spikes.

    Parameters
    ----------
    amount_3h : numpy.ndarray
        ``(ny, nx)`` amounts over 3 hours in mm, NaN where there is no data.
    max_3h_mm : float
        Amounts above this are implausible.
    spike_min_mm, spike_ratio : float
        A cell above ``spike_min_mm`` and above ``spike_ratio`` × the median of its neighbours
        is a spike.
    spike_size : int
        Side of the (square, odd) neighbourhood, the cell itself excluded.

    Returns
    -------
    bad : numpy.ndarray
        ``(ny, nx)`` bool, True where the amount should be masked (set to NaN) before training.
    counts : dict of str to int
        ``"implausible"`` (above ``max_3h_mm``), ``"spike"`` (spikes not already implausible),
        ``"bad"`` (their union) and ``"valid"`` (finite cells looked at).

    Raises
    ------
    ValueError
        ``amount_3h`` is not 2-D or ``spike_size`` is not an odd number >= 3.
    """
    if amount_3h.ndim != 2:
        raise ValueError(f"amount_3h must be (ny, nx), got shape {amount_3h.shape}")
    if spike_size < 3 or spike_size % 2 == 0:
        raise ValueError(f"spike_size must be odd and >= 3, got {spike_size}")
    finite = np.isfinite(amount_3h)
    with np.errstate(invalid="ignore"):
        implausible = finite & (amount_3h > max_3h_mm)
    spike = spike_mask(amount_3h, min_mm=spike_min_mm, ratio=spike_ratio, size=spike_size)
    bad = implausible | spike
    counts = {"implausible": int(implausible.sum()), "spike": int((spike & ~implausible).sum()),
              "bad": int(bad.sum()), "valid": int(finite.sum())}
    return bad, counts


def spike_mask(amount: np.ndarray, *, min_mm: float = SPIKE_MIN_MM, ratio: float = SPIKE_RATIO,
               size: int = SPIKE_SIZE) -> np.ndarray:
    """Cells above ``min_mm`` and above ``ratio`` × the median of the other cells of their neighbourhood.

    Only the cells above ``min_mm`` are examined (a handful of a CONUS grid), so this is fast on
    7000 × 3500 grids where a full median filter is not.

    Parameters
    ----------
    amount : numpy.ndarray
        ``(ny, nx)`` amounts in mm, NaN where missing.
    min_mm, ratio : float
        Thresholds (see :func:`qc_mask`).
    size : int
        Side of the square neighbourhood (odd).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` bool.
    """
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(amount > min_mm)
    mask = np.zeros(amount.shape, dtype=bool)
    if rows.size == 0:
        return mask
    medians = _neighbour_medians(amount, rows, cols, size)
    mask[rows, cols] = amount[rows, cols] > ratio * medians
    return mask


def _neighbour_medians(amount: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Median of the finite neighbours (the centre excluded) of each ``(row, col)``; 0 when none.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` float64 for the ``k`` cells.
    """
    half = size // 2
    ny, nx = amount.shape
    offsets = [(dy, dx) for dy in range(-half, half + 1) for dx in range(-half, half + 1) if (dy, dx) != (0, 0)]
    neighbours = np.full((rows.size, len(offsets)), np.nan)
    for k, (dy, dx) in enumerate(offsets):
        r, c = rows + dy, cols + dx
        inside = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
        neighbours[inside, k] = amount[r[inside], c[inside]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods: handled below
        medians = np.nanmedian(neighbours, axis=1)
    return np.nan_to_num(medians, nan=0.0)
