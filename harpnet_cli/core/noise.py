"""Noise fields for stochastic models, drawn on a whole domain so that tiles cut from it agree.

A stochastic HARPNET model turns noise into members. Drawing the noise tile by tile would make
members patchy: overlapping tiles would disagree and the blend would show seams. So the noise is
drawn once on the whole domain's fine grid (plus a margin) and cut with the same patcher as the
terrain, exactly as static inputs are: the overlap of two tiles sees the same noise.

Each member has one field per scale: white Gaussian noise smoothed by a Gaussian kernel of
standard deviation ``scale`` fine cells (0: left white), renormalised to unit variance. The
fields are reproducible from ``(seed, member)`` and independent of the domain's position, so the
``k``-th member of a run is the same whatever the tile layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Margin (fine cells) drawn beyond the field on every side before smoothing, so the edges are as
#: smooth and as variable as the inside.
MARGIN = 12


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` cells, truncated at 3 sigma; ``(2r + 1,)``."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_unit(white: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth white noise ``(..., H, W)`` along the last two axes, keeping unit variance ("valid" convolution).

    Returns
    -------
    numpy.ndarray
        ``(..., H - 2r, W - 2r)`` float32, ``r`` the kernel radius (unchanged when ``sigma == 0``).
    """
    if sigma <= 0:
        return white.astype(np.float32, copy=False)
    from scipy.signal import fftconvolve

    k = gaussian_kernel(sigma)
    kernel = np.outer(k, k)
    shape = (1,) * (white.ndim - 2) + kernel.shape
    out = fftconvolve(white, kernel.reshape(shape), mode="valid", axes=(-2, -1))
    return (out / np.sqrt((kernel**2).sum())).astype(np.float32)


def draw_noise(shape: tuple[int, int], members: int, scales: Sequence[float], seed: int | Sequence[int],
               first_member: int = 0) -> np.ndarray:
    """Noise of ``members`` members on a ``shape`` grid: one unit-variance field per member and scale.

    Parameters
    ----------
    shape : (H, W)
        Fine grid of the field (a whole padded domain, or a training tile).
    members : int
        Members to draw.
    scales : sequence of float
        Smoothing length of each channel in fine cells (0: white).
    seed : int or sequence of int
        Seed of the run; member ``m`` draws from ``numpy.random.default_rng([*seed, m])``.
    first_member : int
        Number of the first member drawn (members ``first_member .. first_member + members - 1``).

    Returns
    -------
    numpy.ndarray
        ``(members * len(scales), H, W)`` float32, member major (channel ``m * S + s``).
    """
    seeds = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    h, w = shape
    out = np.empty((members * len(scales), h, w), dtype=np.float32)
    for m in range(members):
        rng = np.random.default_rng([*seeds, first_member + m])
        for s, sigma in enumerate(scales):
            radius = 0 if sigma <= 0 else max(1, int(np.ceil(3.0 * sigma)))
            pad = max(MARGIN, radius)
            white = rng.standard_normal((h + 2 * pad, w + 2 * pad))
            field = smooth_unit(white, sigma)
            cut = pad - radius
            out[m * len(scales) + s] = field[cut: cut + h, cut: cut + w]
    return out
