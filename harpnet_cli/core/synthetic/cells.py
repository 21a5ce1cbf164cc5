"""Convective cells: Gaussian cells drawn over a weight map, moving with the wind, rendered as exact swaths."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from harpnet_cli.core.synthetic.constants import CELL_AREA_KM2
from harpnet_cli.core.synthetic.state import SyntheticState


@dataclass(frozen=True)
class Cells:
    """Convective cells that move with the wind; all arrays ``(n,)``.

    Attributes
    ----------
    x_m, y_m : numpy.ndarray
        Track midpoints (m) east and north of the first grid cell's centre.
    peak : numpy.ndarray
        Central rain rate (mm h-1).
    radius_m : numpy.ndarray
        Gaussian standard deviation (m).
    hours : numpy.ndarray
        Lifetime (h).
    u, v : float
        Cell motion (m s-1), the steering wind.
    """

    x_m: np.ndarray
    y_m: np.ndarray
    peak: np.ndarray
    radius_m: np.ndarray
    hours: np.ndarray
    u: float
    v: float


def sample_cells(
    rng: np.random.Generator, state: SyntheticState, weight: np.ndarray, cell_dx_m: float, cell_dy_m: float
) -> Cells:
    """Draw convective cells over a domain, placed in proportion to a weight map.

    The count is Poisson with mean ``convective * area / CELL_AREA_KM2``. Peaks are lognormal
    (median 12 mm h-1 at ``Cw = 0.006`` kg m-3, scaled with ``Cw``, log-sd 0.6, at most
    150 mm h-1), radii uniform in 2–5 km (single cells and small multicells), lifetimes uniform in
    0.3–1.2 h (ordinary cells last 30–60 min).

    Parameters
    ----------
    rng : numpy.random.Generator
    state : SyntheticState
        Uses ``convective``, ``moisture``, ``u`` and ``v``.
    weight : (h, w) float
        Non-negative placement weight on a grid of ``cell_dx_m`` by ``cell_dy_m`` cells whose
        first cell's centre is the origin.
    cell_dx_m, cell_dy_m : float
        Spacing (m) of ``weight``.

    Returns
    -------
    Cells
    """
    area_km2 = weight.size * cell_dx_m * cell_dy_m / 1e6
    total = float(weight.sum())
    n = int(rng.poisson(state.convective * area_km2 / CELL_AREA_KM2)) if total > 0 else 0
    where = rng.choice(weight.size, size=n, p=(weight / total).ravel()) if n else np.zeros(0, np.int64)
    row, col = np.divmod(where, weight.shape[1])
    x = (col + rng.uniform(-0.5, 0.5, n)) * cell_dx_m
    y = (row + rng.uniform(-0.5, 0.5, n)) * cell_dy_m
    peak = np.minimum(12.0 * state.moisture / 0.006 * np.exp(0.6 * rng.standard_normal(n)), 150.0)
    return Cells(x, y, peak, rng.uniform(2000.0, 5000.0, n), rng.uniform(0.3, 1.2, n), state.u, state.v)


def _swath(s: np.ndarray, n: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Time-mean footprint of a unit Gaussian moving a distance ``length`` along ``s``.

    All lengths are in units of the Gaussian's radius; the value at the track is 1 for a still
    cell. Returns ``exp(-n^2/2) sqrt(2 pi) [Phi(s + L/2) - Phi(s - L/2)] / L`` (float32, the
    shape of the broadcast inputs), and its limit ``exp(-(s^2 + n^2)/2)`` as ``L -> 0``.
    """
    half = np.float32(0.5) * length
    moving = length > np.float32(1e-3)
    spread = (ndtr(s + half) - ndtr(s - half)) * np.float32(math.sqrt(2 * np.pi)) / np.where(moving, length, 1)
    along = np.where(moving, spread, np.exp(np.float32(-0.5) * s * s))
    return (np.exp(np.float32(-0.5) * n * n) * along).astype(np.float32)


def render_cells(cells: Cells, shape: tuple[int, int], dx_m: float, dy_m: float) -> np.ndarray:
    """Exact accumulated swaths of Gaussian cells moving in straight lines.

    A cell of peak ``P``, radius ``r`` and lifetime ``D`` moving at speed ``c`` leaves, at
    along-track distance ``s`` from its track midpoint and across-track distance ``n``,
    ``P D exp(-n^2 / 2r^2) (r sqrt(2 pi) / L) [Phi((s + L/2) / r) - Phi((s - L/2) / r)]`` mm with
    ``L = c D`` (the Gaussian blob ``P D exp(-(s^2 + n^2) / 2 r^2)`` when ``c = 0``).

    Parameters
    ----------
    cells : Cells
    shape : (H, W)
        Output grid; cell ``(j, i)`` is centred at ``(i dx_m, j dy_m)``.
    dx_m, dy_m : float
        Grid spacing (m).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 mm.
    """
    if cells.x_m.size == 0:
        return np.zeros(shape, dtype=np.float32)
    speed = math.hypot(cells.u, cells.v)
    cos_a, sin_a = (cells.u / speed, cells.v / speed) if speed > 0 else (1.0, 0.0)
    length = speed * cells.hours * 3600.0
    half_max, r_max = 0.5 * float(length.max()), float(cells.radius_m.max())
    hx = math.ceil((half_max * abs(cos_a) + 3.5 * r_max) / dx_m)
    hy = math.ceil((half_max * abs(sin_a) + 3.5 * r_max) / dy_m)
    oy, ox = np.mgrid[-hy : hy + 1, -hx : hx + 1]
    ci, cj = np.rint(cells.x_m / dx_m).astype(np.int64), np.rint(cells.y_m / dy_m).astype(np.int64)
    px, py = ci[:, None, None] + ox, cj[:, None, None] + oy
    radius = cells.radius_m[:, None, None]
    ddx = ((px * dx_m - cells.x_m[:, None, None]) / radius).astype(np.float32)  # in radii
    ddy = ((py * dy_m - cells.y_m[:, None, None]) / radius).astype(np.float32)
    along = ddx * np.float32(cos_a) + ddy * np.float32(sin_a)
    across = ddy * np.float32(cos_a) - ddx * np.float32(sin_a)
    amount = _swath(along, across, (length[:, None, None] / radius).astype(np.float32))
    amount *= (cells.peak * cells.hours)[:, None, None].astype(np.float32)
    inside = (px >= 0) & (px < shape[1]) & (py >= 0) & (py < shape[0])
    out = np.bincount((py * shape[1] + px)[inside], weights=amount[inside], minlength=shape[0] * shape[1])
    return out.reshape(shape).astype(np.float32)

