"""Noise fields for stochastic models, drawn on a whole domain so that tiles cut from it agree.

A stochastic HARPNET model turns noise into members. Drawing the noise tile by tile would make
members patchy: overlapping tiles would disagree and the blend would show seams. So the noise is
drawn once on the whole domain's fine grid (plus a margin) and cut with the same patcher as the
terrain, exactly as static inputs are: the overlap of two tiles sees the same noise.

Each member has one field per scale: white Gaussian noise smoothed by a Gaussian kernel of
standard deviation ``scale`` fine cells (0: left white), renormalised to unit variance. A member's
fields are reproducible from ``(seed, member)``, so the ``k``-th member of a run is the same
however many members are drawn. Training draws a whole batch at once (:func:`draw_batch_noise`):
the same fields in distribution, from one generator per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Margin (fine cells) drawn beyond the field on every side before smoothing, so the edges are as
#: smooth and as variable as the inside.
MARGIN = 12
#: Kernels are cut at this many standard deviations (as ``scipy.ndimage.gaussian_filter``).
TRUNCATE = 3.0


def kernel_radius(sigma: float) -> int:
    """Radius (cells) of the truncated Gaussian kernel of ``sigma`` (scipy's rule)."""
    return int(TRUNCATE * sigma + 0.5)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` cells, truncated at 3 sigma; ``(2r + 1,)``."""
    radius = kernel_radius(sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def margin(scales: Sequence[float]) -> int:
    """The margin drawn around a field for these smoothing lengths."""
    return max(MARGIN, *(kernel_radius(s) for s in scales if s > 0), 0)


def smooth(white: np.ndarray, sigma: float) -> np.ndarray:
    """Unit-variance smoothing of white noise ``(..., H, W)`` along the last two axes (same shape).

    Only cells at least :func:`kernel_radius` from the edge are exact; callers cut their margin.
    """
    if sigma <= 0:
        return white
    from scipy.ndimage import gaussian_filter

    sigmas = (0.0,) * (white.ndim - 2) + (sigma, sigma)
    out = gaussian_filter(white, sigmas, truncate=TRUNCATE, mode="wrap")
    norm = float((gaussian_kernel(sigma) ** 2).sum())  # the 2-D kernel's sum of squares is its square
    return out / np.float32(norm)


def _fields(rng: np.random.Generator, n: int, shape: tuple[int, int], scales: Sequence[float],
            periodic: bool = False) -> np.ndarray:
    """``(n, J, H, W)`` float32: for each of ``n`` draws, one unit-variance field per scale.

    ``periodic``: the last axis goes round the globe; it is drawn without a margin and smoothed
    round the circle, so the field has no seam where its last column meets its first.
    """
    pad = margin(scales)
    padw = 0 if periodic else pad
    h, w = shape
    out = np.empty((n, len(scales), h, w), dtype=np.float32)
    for j, sigma in enumerate(scales):
        white = rng.standard_normal((n, h + 2 * pad, w + 2 * padw), dtype=np.float32)
        out[:, j] = smooth(white, sigma)[:, pad : pad + h, padw : padw + w]
    return out


def draw_noise(shape: tuple[int, int], members: int, scales: Sequence[float], seed: int | Sequence[int],
               first_member: int = 0, periodic: bool = False, out: np.ndarray | None = None,
               threads: int = 1) -> np.ndarray:
    """Noise of ``members`` members on a ``shape`` grid (a whole domain): one field per member and scale.

    Parameters
    ----------
    shape : (H, W)
        Fine grid of the field.
    members : int
        Members to draw.
    scales : sequence of float
        Smoothing length of each channel in fine cells (0: white).
    seed : int or sequence of int
        Seed of the run; member ``m`` draws from ``numpy.random.default_rng([*seed, m])``.
    first_member : int
        Number of the first member drawn (members ``first_member .. first_member + members - 1``).
    periodic : bool
        The grid goes round the globe in longitude (the last axis): the noise wraps round it too.
    out : numpy.ndarray, optional
        ``(members * len(scales), H, W)`` float32 to draw into (e.g. the channels after the terrain
        in a model's static input), so no second copy of a large domain's noise is made.
    threads : int
        Members drawn at once (numpy's generators and scipy's filters release the GIL; measured
        2.0x faster with 2 threads for 10 members over CONUS). Each member has its own generator,
        so the noise does not depend on the thread count.

    Returns
    -------
    numpy.ndarray
        ``(members * len(scales), H, W)`` float32, member major (channel ``m * S + s``).
    """
    seeds = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    j = len(scales)
    if out is None:
        out = np.empty((members * j, *shape), dtype=np.float32)
    elif out.shape != (members * j, *shape):
        raise ValueError(f"out must be {(members * j, *shape)}, got {out.shape}")
    def member(k: int) -> None:
        rng = np.random.default_rng([*seeds, first_member + k])
        out[k * j : (k + 1) * j] = _fields(rng, 1, shape, scales, periodic)[0]

    if threads > 1 and members > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, members)) as pool:
            list(pool.map(member, range(members)))
    else:
        for k in range(members):
            member(k)
    return out


def draw_batch_noise(n: int, members: int, scales: Sequence[float], shape: tuple[int, int],
                     seed: Sequence[int]) -> np.ndarray:
    """Noise of ``members`` members for each of ``n`` training tiles, from one generator.

    Returns
    -------
    numpy.ndarray, shape (n, members * len(scales), H, W), float32
        Member major within each tile, as :func:`draw_noise`.
    """
    fields = _fields(np.random.default_rng([int(s) for s in seed]), n * members, shape, scales)
    return fields.reshape(n, members * len(scales), *shape)
