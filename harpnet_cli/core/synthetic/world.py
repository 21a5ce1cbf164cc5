"""The synthetic world over a terrain: the three parts composed into 3-hour samples, and the example input.

:class:`SyntheticWorld` precomputes what depends on the terrain only, then composes each sample
from the large-scale rain, the orographic rain it gates and the convective cells (see
:mod:`harpnet_cli.core.synthetic`); :func:`example_amounts` renders the ``downscale example`` input.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import fft as sfft

from harpnet_cli.core.remap import block_mean
from harpnet_cli.core.synthetic import constants
from harpnet_cli.core.synthetic.cells import Cells, render_cells, sample_cells
from harpnet_cli.core.synthetic.constants import ACCUMULATION_HOURS, DEFAULT_PAD_M, EARTH_RADIUS_M, REFERENCE_SLOPE
from harpnet_cli.core.synthetic.orographic import OrographicSolver, coriolis_parameter, wavenumbers
from harpnet_cli.core.synthetic.random_fields import (
    advection_blur,
    gaussian_field,
    large_scale_rain,
    power_law_amplitude,
)
from harpnet_cli.core.synthetic.state import SyntheticState, sample_state
from harpnet_cli.core.synthetic.thermodynamics import uplift_sensitivity, vapour_scale_height
from harpnet_cli.grids import FINE_RES, GridSpec


def high_res_axes(spec: GridSpec, hr_factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre axes of the grid ``hr_factor`` times finer than ``spec``'s fine grid.

    Parameters
    ----------
    spec : GridSpec
    hr_factor : int
        Sub-cells per fine cell along each axis (2 gives 0.03125°).

    Returns
    -------
    lat : (4 ny hr_factor,) float64
        Degrees, south → north.
    lon : (4 nx hr_factor,) float64
        Degrees, west → east (continuous).
    """
    step = FINE_RES / hr_factor
    fy, fx = spec.fine_shape
    return (spec.south + step * (np.arange(fy * hr_factor) + 0.5), spec.west + step * (np.arange(fx * hr_factor) + 0.5))


def _regular_step(axis: np.ndarray, name: str) -> float:
    """The constant, positive step (degrees) of an increasing 1-D axis; ValueError otherwise."""
    steps = np.diff(np.asarray(axis, dtype=np.float64))
    if axis.ndim != 1 or steps.size == 0 or steps.min() <= 0 or not np.allclose(steps, steps.mean(), rtol=1e-3):
        raise ValueError(f"{name} must be a regular, increasing 1-D axis")
    return float(steps.mean())


def _band_weights(lat: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """``(len(bands), len(lat))`` hat weights interpolating linearly between band latitudes."""
    if bands.size == 1:
        return np.ones((1, lat.size), dtype=np.float32)
    eye = np.eye(bands.size)
    return np.stack([np.interp(lat, bands, eye[j]) for j in range(bands.size)]).astype(np.float32)


def _slope(terrain: np.ndarray, dx_rows: np.ndarray, dy_m: float) -> np.ndarray:
    """``|grad h|`` (m/m) with each row's own zonal spacing ``dx_rows (H,)``; ``(H, W)`` float32."""
    gy, gx = np.gradient(np.asarray(terrain, dtype=np.float32))
    return np.hypot(gx / dx_rows[:, None].astype(np.float32), gy / np.float32(dy_m)).astype(np.float32)


class SyntheticWorld:
    """Synthetic 3-hour precipitation over a terrain, truth at high resolution, served on the fine grid.

    Parameters
    ----------
    terrain_hr : (H, W) float
        Elevation (m) on a regular lat/lon grid ``hr_factor`` times finer than the 0.0625° grid,
        rows south → north, columns west → east; ``H`` and ``W`` multiples of ``hr_factor``.
    lat_hr : (H,) float
        Cell-centre latitudes (degrees), increasing.
    lon_hr : (W,) float
        Cell-centre longitudes (degrees), increasing (continuous across the date line).
    hr_factor : int
        HR cells per fine cell along each axis.
    lat_bands : int
        Metric correction of the FFTs, which need one zonal spacing for the whole array. The
        large-scale field and the cells use the spacing at the domain's mean latitude (their
        statistics barely change with a ±20 % stretch). The orographic field, whose amplitude is
        proportional to ``U dh/dx``, is evaluated with the spacing at ``lat_bands`` evenly spaced
        latitudes and interpolated linearly between them row by row. Over CONUS (24–50 N) the
        zonal spacing varies by ±20 % about the mean; the orographic field's mean absolute
        difference from a 17-band reference is 12 % with one band, 3 % with three (the default)
        and 1.3 % with five. Each band also uses its own Coriolis parameter
        (:func:`smith_barstad_transfer`).
    pad_m : float
        Padding (m) around the terrain against FFT wrap-around.
    workers : int
        Threads for scipy.fft.
    """

    def __init__(
        self,
        terrain_hr: np.ndarray,
        lat_hr: np.ndarray,
        lon_hr: np.ndarray,
        hr_factor: int,
        *,
        lat_bands: int = 3,
        pad_m: float = DEFAULT_PAD_M,
        workers: int = 2,
    ) -> None:
        """Check the grid and precompute everything that depends on the terrain only."""
        terrain = np.asarray(terrain_hr, dtype=np.float32)
        self.lat_hr, self.lon_hr = np.asarray(lat_hr, dtype=np.float64), np.asarray(lon_hr, dtype=np.float64)
        if terrain.ndim != 2 or terrain.shape != (self.lat_hr.size, self.lon_hr.size):
            raise ValueError(
                f"terrain {terrain.shape} does not match lat ({self.lat_hr.size},) lon ({self.lon_hr.size},)"
            )
        if hr_factor < 1 or terrain.shape[0] % hr_factor or terrain.shape[1] % hr_factor:
            raise ValueError(f"shape {terrain.shape} is not a multiple of hr_factor={hr_factor}")
        if not np.isfinite(terrain).all():
            raise ValueError("terrain has non-finite values")
        dlat, dlon = _regular_step(self.lat_hr, "lat_hr"), _regular_step(self.lon_hr, "lon_hr")
        self.hr_factor, self.shape, self.workers = hr_factor, (int(terrain.shape[0]), int(terrain.shape[1])), workers
        self.dy_m = EARTH_RADIUS_M * math.radians(dlat)
        self.dx_m = EARTH_RADIUS_M * math.radians(dlon) * math.cos(math.radians(float(self.lat_hr.mean())))
        bands = (
            np.linspace(self.lat_hr[0], self.lat_hr[-1], max(lat_bands, 1))
            if lat_bands > 1
            else self.lat_hr.mean(keepdims=True)
        )
        self.band_lat = bands
        self.band_dx_m = EARTH_RADIUS_M * math.radians(dlon) * np.cos(np.deg2rad(bands))
        self.band_weights = _band_weights(self.lat_hr, bands)
        self.solver = OrographicSolver(terrain, self.dx_m, self.dy_m, pad_m, workers)
        self.k, self.l_ = wavenumbers(self.solver.padded_shape, self.dx_m, self.dy_m)
        dx_rows = EARTH_RADIUS_M * math.radians(dlon) * np.cos(np.deg2rad(self.lat_hr))
        self.slope = _slope(terrain, dx_rows, self.dy_m)

    @property
    def fine_shape(self) -> tuple[int, int]:
        """``(H / hr_factor, W / hr_factor)``."""
        return (self.shape[0] // self.hr_factor, self.shape[1] // self.hr_factor)

    def orographic(self, state: SyntheticState) -> np.ndarray:
        """SB04's linear orographic rate with the latitude-band metric; ``(H, W)`` float32 mm h-1."""
        if state.moisture <= 0:
            return np.zeros(self.shape, dtype=np.float32)
        out = np.zeros(self.shape, dtype=np.float32)
        for band, dx_m, w in zip(self.band_lat, self.band_dx_m, self.band_weights, strict=True):
            out += w[:, None] * self.solver.linear(state, float(dx_m), coriolis_parameter(float(band)))
        return out

    def _blurred(self, arrays: tuple[np.ndarray, ...], state: SyntheticState) -> list[np.ndarray]:
        """3-hour means of padded fields advected by the wind, cropped to the domain."""
        blur = advection_blur(self.k, self.l_, state.u, state.v)
        shape, inner = self.solver.padded_shape, self.solver.inner
        return [
            sfft.irfft2(sfft.rfft2(f, workers=self.workers) * blur, s=shape, workers=self.workers)[inner]
            for f in arrays
        ]

    def synoptic(self, state: SyntheticState, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """3-hour mean large-scale rate and moist envelope.

        Parameters
        ----------
        state : SyntheticState
        rng : numpy.random.Generator

        Returns
        -------
        rate : (H, W) float32
            mm h-1, ``>= 0``.
        envelope : (H, W) float32
            In ``[0, 1]``; all ones (uniformly moist air, pure SB04) when ``large_scale_rate`` is 0.
        """
        if state.large_scale_rate <= 0:
            return np.zeros(self.shape, dtype=np.float32), np.ones(self.shape, dtype=np.float32)
        amplitude = power_law_amplitude(self.k, self.l_, state)
        field = gaussian_field(rng, amplitude, self.solver.padded_shape, self.workers)
        return self._rain_and_envelope(field, state)

    def _rain_and_envelope(self, field: np.ndarray, state: SyntheticState) -> tuple[np.ndarray, np.ndarray]:
        """3-hour mean large-scale rate and moist envelope of a padded unit Gaussian field."""
        rate, envelope = self._blurred(large_scale_rain(field, state), state)
        return np.maximum(rate, 0), np.clip(envelope, 0, 1)

    def convection(
        self, state: SyntheticState, rng: np.random.Generator, envelope: np.ndarray, stride: int = 4
    ) -> np.ndarray:
        """3-hour convective amounts (mm), ``(H, W)`` float32.

        Cells are placed with weight ``envelope * (0.25 + min(slope / REFERENCE_SLOPE, 3))`` on
        every ``stride``-th cell: inside moist air, favouring slopes (orographic triggering).
        """
        if state.convective <= 0 or state.moisture <= 0:
            return np.zeros(self.shape, dtype=np.float32)
        sub = (slice(stride // 2, None, stride),) * 2
        slope_term = constants.CELL_SLOPE_PREFERENCE * np.minimum(self.slope[sub] / REFERENCE_SLOPE, 3.0)
        weight = envelope[sub] * (0.25 + slope_term)
        cells = sample_cells(rng, state, weight, stride * self.dx_m, stride * self.dy_m)
        offset = (stride // 2) * np.array([self.dx_m, self.dy_m])
        cells = Cells(
            cells.x_m + offset[0], cells.y_m + offset[1], cells.peak, cells.radius_m, cells.hours, cells.u, cells.v
        )
        return render_cells(cells, self.shape, self.dx_m, self.dy_m)

    def render_hr(self, state: SyntheticState, rng: np.random.Generator) -> np.ndarray:
        """3-hour amount on the HR grid for a given state.

        ``3 h * max(P_ls + M P_oro, 0) + convective``, all 3-hour means (see the module notes).

        Parameters
        ----------
        state : SyntheticState
        rng : numpy.random.Generator
            Draws the large-scale field and the cells.

        Returns
        -------
        numpy.ndarray
            ``(H, W)`` float32 mm, finite, ``>= 0``.
        """
        if state.is_dry:
            return np.zeros(self.shape, dtype=np.float32)
        rate, envelope = self.synoptic(state, rng)
        rate += envelope * (np.float32(constants.OROGRAPHIC_EFFICIENCY) * self.orographic(state))
        amount = np.maximum(rate, 0) * np.float32(ACCUMULATION_HOURS)
        amount += self.convection(state, rng, envelope)
        return amount.astype(np.float32, copy=False)

    def _large_scale_spectrum(self, state: SyntheticState, rng: np.random.Generator) -> np.ndarray | None:
        """The large-scale pattern of a window, drawn once (its 2-D real FFT on the padded grid, which
        the steps shift downwind); None without large-scale rain (nothing is drawn from ``rng``)."""
        if state.large_scale_rate <= 0:
            return None
        amplitude = power_law_amplitude(self.k, self.l_, state)
        field = gaussian_field(rng, amplitude, self.solver.padded_shape, self.workers)
        return sfft.rfft2(field, workers=self.workers)

    def render_steps(self, state: SyntheticState, rng: np.random.Generator, steps: int) -> np.ndarray:
        """Consecutive 3-hour amounts on the HR grid: one weather situation moving with the wind.

        Step ``s`` is :meth:`render_hr`'s field for the same large-scale pattern carried
        ``s * 3 h`` downwind (an exact shift, ``exp(-i (u k + v l) t)`` in Fourier space, periodic
        over the padded domain); the orographic part stays where the terrain is and new
        convective cells are drawn for every step.

        Parameters
        ----------
        state : SyntheticState
        rng : numpy.random.Generator
            Draws the large-scale field (once) and the cells (each step).
        steps : int
            Number of consecutive 3-hour windows (>= 1).

        Returns
        -------
        numpy.ndarray
            ``(steps, H, W)`` float32 mm, finite, ``>= 0``.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        out = np.zeros((steps, *self.shape), dtype=np.float32)
        if state.is_dry:
            return out
        field_hat = self._large_scale_spectrum(state, rng)
        orographic = self.orographic(state)
        sigma = np.float32(state.u) * self.k + np.float32(state.v) * self.l_
        for s in range(steps):
            if field_hat is None:
                rate, envelope = np.zeros(self.shape, np.float32), np.ones(self.shape, np.float32)
            else:
                shift = np.exp(-1j * sigma * np.float32(s * ACCUMULATION_HOURS * 3600.0)).astype(np.complex64)
                field = sfft.irfft2(field_hat * shift, s=self.solver.padded_shape, workers=self.workers)
                rate, envelope = self._rain_and_envelope(field, state)
            amount = np.maximum(rate + envelope * orographic, 0) * np.float32(ACCUMULATION_HOURS)
            out[s] = amount + self.convection(state, rng, envelope)
        return out

    def sample_hr(self, index: int, seed: int) -> tuple[np.ndarray, SyntheticState]:
        """Sample ``index`` of the corpus ``seed`` on the HR grid.

        Returns
        -------
        amount : (H, W) float32
            mm in 3 hours.
        state : SyntheticState
        """
        rng = np.random.default_rng([seed, index])
        state = sample_state(rng)
        return self.render_hr(state, rng), state

    def to_fine(self, amount_hr: np.ndarray) -> np.ndarray:
        """Area mean (cos-latitude weights) of HR cells onto the fine grid; ``(..., H/f, W/f)`` float32."""
        return block_mean(amount_hr, self.hr_factor, lat=self.lat_hr).astype(np.float32)

    def sample(self, index: int, seed: int, steps: int = 1) -> tuple[np.ndarray, SyntheticState]:
        """Sample ``index`` of the corpus ``seed``, deterministic in ``(seed, index, steps)``.

        Parameters
        ----------
        index : int
            Sample number (>= 0).
        seed : int
            Corpus seed (>= 0); the generator is ``numpy.random.default_rng([seed, index])``.
        steps : int
            Consecutive 3-hour states summed into the window (1: a 3-hour sample, exactly as
            before windows of several lengths existed; 8: a 24-hour window, see
            :meth:`render_turning`).

        Returns
        -------
        amount : (H / hr_factor, W / hr_factor) float32
            Amount (mm) over ``3 steps`` hours on the fine grid: the HR truth area-averaged, ``>= 0``.
        state : SyntheticState
            The state of the first 3 hours.
        """
        if steps == 1:
            amount_hr, state = self.sample_hr(index, seed)
            return self.to_fine(amount_hr), state
        rng = np.random.default_rng([seed, index])
        state = sample_state(rng)
        turn = float(rng.normal(0.0, constants.TURN_DEG_PER_STEP))
        return self.to_fine(self.render_turning(state, rng, steps, turn).sum(axis=0)), state

    def render_turning(self, state: SyntheticState, rng: np.random.Generator, steps: int,
                       turn_deg: float) -> np.ndarray:
        """Consecutive 3-hour amounts under a slowly turning flow (the states of a longer window).

        Step ``s`` blows from the first step's direction turned by ``s * turn_deg`` degrees (the
        speed unchanged): its orographic rain is solved for that wind, so rain piles up on the
        slopes facing each wind in turn, as on a real day; the large-scale pattern drawn once is
        carried downwind along the turning flow (an exact shift by the accumulated displacement)
        and new convective cells are drawn every step. With ``turn_deg = 0`` the large-scale part
        moves as in :meth:`render_steps`.

        Parameters
        ----------
        state : SyntheticState
            The first step's state.
        rng : numpy.random.Generator
            Draws the large-scale field (once) and the cells (each step).
        steps : int
            Number of 3-hour states (>= 1).
        turn_deg : float
            Turn of the wind per step, degrees (positive: backing, anticlockwise).

        Returns
        -------
        numpy.ndarray
            ``(steps, H, W)`` float32 mm per 3 hours, finite, ``>= 0``.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        out = np.zeros((steps, *self.shape), dtype=np.float32)
        if state.is_dry:
            return out
        field_hat = self._large_scale_spectrum(state, rng)
        seconds = ACCUMULATION_HOURS * 3600.0
        shift_x = shift_y = 0.0
        for s in range(steps):
            angle = math.radians(s * turn_deg)
            u = state.u * math.cos(angle) - state.v * math.sin(angle)
            v = state.u * math.sin(angle) + state.v * math.cos(angle)
            now = dataclasses.replace(state, u=u, v=v)
            if field_hat is None:
                rate, envelope = np.zeros(self.shape, np.float32), np.ones(self.shape, np.float32)
            else:
                phase = np.float32(shift_x) * self.k + np.float32(shift_y) * self.l_
                field = sfft.irfft2(field_hat * np.exp(-1j * phase).astype(np.complex64), s=self.solver.padded_shape,
                                    workers=self.workers)
                rate, envelope = self._rain_and_envelope(field, now)
            orographic = np.float32(constants.OROGRAPHIC_EFFICIENCY) * self.orographic(now)
            amount = np.maximum(rate + envelope * orographic, 0) * np.float32(ACCUMULATION_HOURS)
            out[s] = amount + self.convection(now, rng, envelope)
            shift_x += u * seconds
            shift_y += v * seconds
        return out


# -- the example input of ``harpnet downscale example`` ------------------------------------------
#: Seed of the example's large-scale field and cells.
EXAMPLE_SEED = 2000
#: The example's weather: moist south-westerlies (12 m s-1 from 236°) at 10 °C, SB04's stability and
#: time scales, elongated synoptic bands over ~15 % of the area (1 mm h-1 where it rains) and some
#: convection. About a quarter of CONUS gets 0.1 mm or more in each 3 hours.
EXAMPLE_STATE = SyntheticState(
    u=12.0,
    v=8.0,
    moisture=uplift_sensitivity(10.0),
    stability=0.005,
    vapour_scale_height=vapour_scale_height(10.0),
    tau_c=1000.0,
    tau_f=1000.0,
    large_scale_rate=1.0,
    wet_fraction=0.15,
    spectral_slope=3.3,
    elongation=2.5,
    convective=0.3,
)


def example_amounts(
    terrain_m: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    steps: int = 2,
    *,
    state: SyntheticState = EXAMPLE_STATE,
    seed: int = EXAMPLE_SEED,
) -> np.ndarray:
    """Deterministic consecutive 3-hour amounts of the synthetic world (the ``example`` input).

    The world is rendered directly on the grid of ``terrain_m`` (no finer truth grid), with
    :meth:`SyntheticWorld.render_steps`: equal arguments give equal fields.

    Parameters
    ----------
    terrain_m : (H, W) float
        Elevation (m), rows south → north, columns west → east (e.g. the 0.0625° grid).
    lat : (H,) float
        Cell-centre latitudes (degrees), regular and increasing.
    lon : (W,) float
        Cell-centre longitudes (degrees), regular and increasing.
    steps : int
        Number of consecutive 3-hour windows.
    state : SyntheticState
        The weather situation.
    seed : int
        Seed of the large-scale field and the convective cells.

    Returns
    -------
    numpy.ndarray
        ``(steps, H, W)`` float32 mm per 3 hours, ``>= 0``.
    """
    world = SyntheticWorld(terrain_m, lat, lon, hr_factor=1)
    return world.render_steps(state, np.random.default_rng(seed), steps)
