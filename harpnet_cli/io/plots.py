"""Quick-look PNGs of precipitation samples over terrain (matplotlib, Agg backend, imported lazily).

Each PNG stacks three maps of one sample: the terrain (grey shading, sea in pale blue) with the
steering wind as an arrow, the coarse input and the fine truth. Both precipitation panels share a
log-like colour scale (0.1 … 100 mm) over thin terrain contours, so windward maxima, rain shadows
and synoptic bands can be judged by eye.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

#: Colour boundaries (mm) of the precipitation panels.
PRECIP_LEVELS_MM = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
#: Terrain contours (m) drawn over the precipitation panels.
TERRAIN_CONTOURS_M = (1000.0, 2500.0)

#: One sample: (name, fine amount (fy, fx) mm, coarse amount (cy, cx) mm, terrain (fy, fx) m).
Sample = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def _extent(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    """``(west, east, south, north)`` cell edges of regular centre axes ``lat (ny,)``, ``lon (nx,)``."""
    dlat = float(lat[1] - lat[0]) if lat.size > 1 else 1.0
    dlon = float(lon[1] - lon[0]) if lon.size > 1 else 1.0
    return (float(lon[0]) - dlon / 2, float(lon[-1]) + dlon / 2, float(lat[0]) - dlat / 2, float(lat[-1]) + dlat / 2)


def _state_text(state: Mapping[str, float] | None) -> str:
    """One line describing the wind and a few state entries (empty when ``state`` is None)."""
    if not state:
        return ""
    parts = []
    if "u" in state and "v" in state:
        speed = math.hypot(state["u"], state["v"])
        source = (math.degrees(math.atan2(-state["u"], -state["v"])) + 360.0) % 360.0
        parts.append(f"wind {speed:.0f} m/s from {source:.0f}°")
    labels = {
        "moisture": ("Cw", "{:.4f} kg/m³"),
        "stability": ("Nm", "{:.4f} /s"),
        "tau_c": ("τc", "{:.0f} s"),
        "tau_f": ("τf", "{:.0f} s"),
        "large_scale_rate": ("synoptic", "{:.2f} mm/h"),
        "convective": ("conv", "{:.2f}"),
    }
    for key, (label, fmt) in labels.items():
        if key in state:
            parts.append(f"{label} {fmt.format(state[key])}")
    return ", ".join(parts)


def _wind_arrow(ax: Axes, state: Mapping[str, float] | None) -> None:
    """Draw the steering wind as an arrow in the upper-left corner of ``ax`` (axes coordinates)."""
    if not state or "u" not in state or "v" not in state:
        return
    speed = math.hypot(state["u"], state["v"])
    if speed == 0:
        return
    scale = 0.08 * min(speed / 15.0, 2.0) / speed
    start = (0.1, 0.82)
    end = (start[0] + scale * state["u"], start[1] + scale * state["v"])
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        xycoords="axes fraction",
        arrowprops={"arrowstyle": "-|>", "color": "crimson", "lw": 2.5},
    )
    ax.text(
        start[0],
        start[1] - 0.06,
        f"{speed:.0f} m/s",
        transform=ax.transAxes,
        color="crimson",
        ha="center",
        va="top",
        fontsize=9,
    )


def _precip_style() -> tuple[Any, Any]:
    """Colour map (values below 0.1 mm transparent) and boundary norm of the precipitation panels."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm

    cmap = colormaps["YlGnBu"].resampled(len(PRECIP_LEVELS_MM) + 1).with_extremes(under=(0, 0, 0, 0))
    cmap = cmap.with_extremes(over="indigo")
    return cmap, BoundaryNorm(PRECIP_LEVELS_MM, cmap.N - 1, extend="max")


def _terrain_panel(ax: Axes, terrain: np.ndarray, extent: tuple[float, float, float, float]) -> Any:
    """Grey-shaded terrain with sea (0 m) in pale blue; returns the image for a colour bar."""
    from matplotlib import colormaps

    cmap = colormaps["Greys"].with_extremes(bad="#cfe3f3")
    land = np.ma.masked_less_equal(terrain, 0.0)
    return ax.imshow(land, origin="lower", extent=extent, cmap=cmap, vmin=-500, vmax=4000, interpolation="nearest")


def _precip_panel(
    ax: Axes, amount: np.ndarray, terrain: np.ndarray, extent: tuple[float, float, float, float], style: tuple[Any, Any]
) -> Any:
    """Precipitation over a faint land mask and terrain contours; returns the image for a colour bar."""
    ax.imshow(
        np.where(terrain > 0, 0.93, 1.0),
        origin="lower",
        extent=extent,
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    image = ax.imshow(
        np.ma.masked_invalid(amount),
        origin="lower",
        extent=extent,
        cmap=style[0],
        norm=style[1],
        interpolation="nearest",
    )
    lat = np.linspace(extent[2], extent[3], terrain.shape[0] + 1)
    lon = np.linspace(extent[0], extent[1], terrain.shape[1] + 1)
    if float(np.nanmax(terrain)) > TERRAIN_CONTOURS_M[0]:
        ax.contour(
            0.5 * (lon[1:] + lon[:-1]),
            0.5 * (lat[1:] + lat[:-1]),
            terrain,
            levels=TERRAIN_CONTOURS_M,
            colors="0.35",
            linewidths=0.4,
        )
    return image


def _crop(
    sample: Sample, lat: np.ndarray, lon: np.ndarray, box: tuple[float, float, float, float] | None
) -> tuple[Sample, np.ndarray, np.ndarray]:
    """Cut a sample to whole coarse cells inside ``box = (south, north, west, east)`` (None: unchanged)."""
    if box is None:
        return sample, lat, lon
    name, fine, coarse, terrain = sample
    ratio = fine.shape[0] // coarse.shape[0]
    rows = np.flatnonzero((lat >= box[0]) & (lat <= box[1]))
    cols = np.flatnonzero((lon >= box[2]) & (lon <= box[3]))
    if rows.size < ratio or cols.size < ratio:
        raise ValueError(f"zoom box {box} holds no whole coarse cell")
    r0, r1 = rows[0] // ratio, rows[-1] // ratio + 1
    c0, c1 = cols[0] // ratio, cols[-1] // ratio + 1
    fy, fx = slice(r0 * ratio, r1 * ratio), slice(c0 * ratio, c1 * ratio)
    cropped = (name, fine[fy, fx], coarse[r0:r1, c0:c1], terrain[fy, fx])
    return cropped, lat[fy], lon[fx]


def _file_stem(name: str, index: int, taken: Sequence[Path]) -> str:
    """A safe, short (<= 80 characters), unique file stem for a sample name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80].strip("._") or f"sample_{index}"
    if any(p.stem == safe for p in taken):
        safe = f"{safe[:72]}_{index:04d}"
    return safe


def _figure(sample: Sample, lat: np.ndarray, lon: np.ndarray, state: Mapping[str, float] | None) -> Any:
    """The three-panel figure of one sample."""
    import matplotlib.pyplot as plt

    name, fine, coarse, terrain = sample
    extent = _extent(lat, lon)
    aspect = 1.0 / max(math.cos(math.radians(float(np.mean(lat)))), 0.1)
    height = 3 * (7.6 * (extent[3] - extent[2]) * aspect / (extent[1] - extent[0]) + 0.5) + 0.8
    fig, axes = plt.subplots(
        3, 1, figsize=(10.0, min(max(height, 6.0), 24.0)), sharex=True, sharey=True, layout="constrained"
    )
    style = _precip_style()
    terrain_image = _terrain_panel(axes[0], terrain, extent)
    _wind_arrow(axes[0], state)
    fig.colorbar(terrain_image, ax=axes[0], label="terrain (m)", shrink=0.9)
    for ax, amount, label in ((axes[1], coarse, "coarse input"), (axes[2], fine, "fine truth")):
        image = _precip_panel(ax, amount, terrain, extent, style)
        fig.colorbar(image, ax=ax, label="mm / 3 h", ticks=PRECIP_LEVELS_MM, shrink=0.9)
        ax.set_title(
            f"{label} ({amount.shape[0]}x{amount.shape[1]}): mean {np.nanmean(amount):.2f} mm, "
            f"max {np.nanmax(amount):.1f} mm",
            fontsize=10,
        )
    axes[0].set_title("terrain and steering wind", fontsize=10)
    for ax in axes:
        ax.set_aspect(aspect)
        ax.set_ylabel("latitude (°)")
    axes[2].set_xlabel("longitude (°)")
    fig.suptitle("\n".join([*textwrap.wrap(name, 110), _state_text(state)]).strip(), fontsize=11)
    return fig


def plot_samples(
    directory: Path,
    samples: Sequence[Sample],
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    states: Sequence[Mapping[str, float] | None] | None = None,
    zoom: tuple[float, float, float, float] | None = None,
    dpi: int = 100,
) -> list[Path]:
    """Write one PNG per sample: terrain with the wind, coarse input and fine truth.

    Parameters
    ----------
    directory : pathlib.Path
        Output folder, created if needed; files are ``<name>.png`` (characters other than
        letters, digits, ``-``, ``_`` and ``.`` become ``_``; cut to 80 characters, with the
        sample's position appended when two names collide). The full name is the figure title.
    samples : sequence of (name, fine, coarse, terrain)
        ``fine (fy, fx)`` mm, ``coarse (fy/r, fx/r)`` mm and ``terrain (fy, fx)`` m on the fine
        grid, rows south → north.
    lat : (fy,) float
        Fine cell-centre latitudes (degrees), regular and increasing.
    lon : (fx,) float
        Fine cell-centre longitudes (degrees), regular and increasing.
    states : sequence of mappings or None
        Per sample, e.g. ``dict(zip(SyntheticState.names(), vector))``: ``u``/``v`` (m s-1) draw
        the wind arrow, and a few entries go into the title.
    zoom : (south, north, west, east) or None
        Plot only the whole coarse cells inside this box.
    dpi : int
        Resolution of the PNGs.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``samples``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    written: list[Path] = []
    for i, sample in enumerate(samples):
        if sample[1].shape != (lat.size, lon.size) or sample[3].shape != sample[1].shape:
            raise ValueError(
                f"sample {sample[0]!r}: fine {sample[1].shape} and terrain {sample[3].shape} "
                f"must be ({lat.size}, {lon.size})"
            )
        cropped, lat_c, lon_c = _crop(sample, lat, lon, zoom)
        fig = _figure(cropped, lat_c, lon_c, states[i] if states is not None else None)
        path = directory / f"{_file_stem(sample[0], i, written)}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(path)
    return written


# -- verification plots (harpnet evaluate) --------------------------------------------------------
def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Save and close a figure."""
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_tile_gain_map(path: Path, origins: np.ndarray, gain: np.ndarray, title: str, tile: int = 64) -> Path:
    """Map of a per-tile score (e.g. MSE reduction), each tile drawn at its place in the domain.

    Parameters
    ----------
    path : Path
        PNG to write.
    origins : numpy.ndarray
        ``(T, 2)`` ``(y0, x0)`` of each tile in the fine grid.
    gain : numpy.ndarray
        ``(T,)`` values (fractions; NaN: not scored), shown in percent.
    title : str
    tile : int
        Tile side, fine cells.

    Returns
    -------
    Path
    """
    plt = _pyplot()
    o = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    canvas = np.full((int(o[:, 0].max()) + tile, int(o[:, 1].max()) + tile), np.nan)
    for (y0, x0), g in zip(o, np.asarray(gain, dtype=float), strict=True):
        canvas[y0 : y0 + tile, x0 : x0 + tile] = 100.0 * g
    finite = canvas[np.isfinite(canvas)]
    lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    im = ax.imshow(canvas, origin="lower", cmap="RdBu", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="MSE reduction (%)")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("fine x")
    ax.set_ylabel("fine y")
    return _save(fig, path)


def plot_spectra(path: Path, spectra: Mapping[str, Mapping[str, Any] | None]) -> Path:
    """Radially averaged power spectra of several rows and of the truth (log-log).

    Parameters
    ----------
    path : Path
    spectra : mapping
        Row name → the ``spectrum`` object of a ``harpnet-scores/1`` row (or None).

    Returns
    -------
    Path
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    truth_drawn = False
    for name, spec in spectra.items():
        if not spec:
            continue
        k = np.asarray(spec["wavenumber"], dtype=float)
        ok = k > 0
        pp = np.asarray([np.nan if v is None else v for v in spec["power_pred"]], dtype=float)
        ax.loglog(k[ok], pp[ok], label=name)
        if not truth_drawn:
            pt = np.asarray([np.nan if v is None else v for v in spec["power_truth"]], dtype=float)
            ax.loglog(k[ok], pt[ok], "k--", label="truth")
            truth_drawn = True
    ax.set_xlabel("wavenumber (cycles per 64-cell tile)")
    ax.set_ylabel("power (mm² per 3 h²)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_performance_diagram(path: Path, points: Mapping[str, tuple[float, float]], title: str = "") -> Path:
    """Roebber (2009) performance diagram: POD against success ratio with CSI and bias lines.

    Parameters
    ----------
    path : Path
    points : mapping
        Row name → ``(pod, success_ratio)``.
    title : str

    Returns
    -------
    Path
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    sr, pod = np.meshgrid(np.linspace(0.01, 1, 100), np.linspace(0.01, 1, 100))
    csi = 1.0 / (1.0 / sr + 1.0 / pod - 1.0)
    cs = ax.contour(sr, pod, csi, levels=np.arange(0.1, 1.0, 0.1), colors="0.7", linewidths=0.7)
    ax.clabel(cs, fontsize=7, fmt="%.1f")
    for b in (0.5, 1.0, 1.5, 2.0):
        x = np.linspace(0, 1, 50)
        ax.plot(x, b * x, ":", color="0.5", linewidth=0.7)
    for name, (p, s) in points.items():
        ax.plot(s, p, "o", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("success ratio (1 - FAR)")
    ax.set_ylabel("probability of detection")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_case(path: Path, coarse: np.ndarray, panels: Mapping[str, np.ndarray], title: str = "") -> Path:
    """One case: the coarse input then fine panels (truth, model, baselines) on one colour scale.

    Parameters
    ----------
    path : Path
    coarse : numpy.ndarray
        ``(18, 18)`` coarse input with its buffer ring, mm per 3 h.
    panels : mapping
        Panel title → ``(64, 64)`` field, mm per 3 h.
    title : str

    Returns
    -------
    Path
    """
    plt = _pyplot()
    cmap, norm = _precip_style()
    n = 1 + len(panels)
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.8))
    fields = [("input (coarse)", np.asarray(coarse)[1:-1, 1:-1]), *panels.items()]
    im = None
    for ax, (name, f) in zip(np.atleast_1d(axes), fields, strict=True):
        im = ax.imshow(np.ma.masked_less(np.asarray(f, dtype=float), PRECIP_LEVELS_MM[0]), origin="lower",
                       cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8, label="mm / 3 h")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
