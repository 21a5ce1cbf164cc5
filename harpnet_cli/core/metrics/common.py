"""What the score modules share: default thresholds and windows, NaN pairing, safe ratios, field shapes.

Units: precipitation in mm per 3 h; thresholds in mm per 3 h; windows in fine cells (0.0625°).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

#: Event thresholds, mm per 3 h (0.01, 0.1, 0.25, 0.5, 1 inch).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.254, 2.54, 6.35, 12.7, 25.4)
#: FSS neighbourhood widths, fine cells (0.0625°, ~7 km): 1 is grid-point, 17 ~ 1°.
DEFAULT_WINDOWS: tuple[int, ...] = (1, 3, 5, 9, 17)
#: Event thresholds (mm per window) of the probabilistic scores of ensembles and stochastic models:
#: Brier scores, Brier skill against conservative bilinear, reliability.
PROBABILITY_THRESHOLDS: tuple[float, ...] = (1.0, 10.0, 25.0)
#: Forecast-probability bins of the reliability diagram (edges 0, 0.1, ..., 1).
RELIABILITY_BINS = 10

FssMode = Literal["valid", "zero"]
"""FSS border treatment: windows inside the field only, or over a zero-padded field."""


def finite_pairs(forecast: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 arrays of the same shape and the mask where both are finite.

    Parameters
    ----------
    forecast, observed : numpy.ndarray
        Same shape (any).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        ``forecast`` and ``observed`` as float64 and the bool mask where both are finite.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    f = np.asarray(forecast, dtype=np.float64)
    o = np.asarray(observed, dtype=np.float64)
    if f.shape != o.shape:
        raise ValueError(f"shapes differ: {f.shape} vs {o.shape}")
    return f, o, np.isfinite(f) & np.isfinite(o)


def safe_ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0."""
    return float(num) / float(den) if den != 0 else math.nan


def json_safe(value: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python, arrays → lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.integer, bool)):
        return value if isinstance(value, bool) else int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def as_fields(x: np.ndarray, name: str) -> np.ndarray:
    """``(n, H, W)`` float64 from ``(H, W)``, ``(n, H, W)`` or ``(n, 1, H, W)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (n, H, W), got {np.shape(x)}")
    return a


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is a :data:`FssMode`."""
    if mode not in ("valid", "zero"):
        raise ValueError(f"mode must be 'valid' or 'zero', got {mode!r}")

