"""Land elevation on the HARPNET grids, from the packaged ETOPO5 asset.

The asset ``harpnet_cli/assets/terrain_etopo5.npz`` (see ``assets/TERRAIN.md`` and
``tools/make_terrain.py``) holds global land elevation in whole metres on ETOPO5's 5' grid
points — oceans are 0 m — decoded once per process and kept in memory (~19 MB).

The fine grid (0.0625°) gets **bilinear** interpolation between the four surrounding 5' points,
periodic in longitude, so any box works, including one across the date line or at a pole. Terrain
on the coarse grid (0.25°), where needed, is the cos(latitude)-weighted mean of the 4 x 4 fine cells
of each cell: ``harpnet_cli.core.remap.block_mean(load_terrain(spec), lat=spec.fine_lat())``.

**Cache.** Decoding the asset takes a few tenths of a second (more on a loaded host), a large part
of a one-file ``harpnet downscale`` in a fresh process. :func:`load_terrain` therefore keeps the
terrain of each box it computes in a cache folder (:func:`cache_dir`: ``$HARPNET_CACHE_DIR``, else
``$XDG_CACHE_HOME/harpnet``, else ``~/.cache/harpnet``; ``HARPNET_CACHE_DIR=off`` turns it off) as a
plain ``.npy`` file named by the box and the asset's SHA-256, and later runs read it back (the
same float32 values, so outputs are identical). CONUS takes 1.6 MB there, the globe 66 MB. A cache
that cannot be written (read-only home of a cron user) is skipped silently.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from harpnet_cli.errors import HarpnetError
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.cache import cache_folder, open_cached, store_cached

ASSET_PACKAGE = "harpnet_cli.assets"
ASSET_NAME = "terrain_etopo5.npz"
#: Grid points per degree of the asset, and its shape (both poles included).
PER_DEGREE = 12
SHAPE = (180 * PER_DEGREE + 1, 360 * PER_DEGREE)


#: Bump when the interpolation changes, so cached terrain of the old rule is not reused.
_RULE_VERSION = 1


def cache_dir() -> Path | None:
    """The folder for cached terrain, or None when caching is off (``HARPNET_CACHE_DIR=off``)."""
    return cache_folder("terrain")


@functools.lru_cache(maxsize=1)
def _asset_digest() -> str:
    """SHA-256 of the asset's bytes (identifies the terrain a cache file was made from)."""
    return hashlib.sha256(_read_asset()).hexdigest()


def _cache_file(spec: GridSpec) -> Path | None:
    """Where the terrain of ``spec`` is cached, or None when caching is off."""
    folder = cache_dir()
    if folder is None:
        return None
    box = f"{spec.lat0:+.2f}_{spec.lon0:+.2f}_{spec.ny}x{spec.nx}"
    return folder / f"terrain_v{_RULE_VERSION}_{_asset_digest()[:16]}_{box}.npy"


def _read_cached(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached array if it is there and has the expected shape and type."""
    handle = open_cached(path)
    if handle is None:
        return None
    try:
        with handle:
            array = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.shape != shape or array.dtype != np.float32:
        return None
    return np.asarray(array)


def _write_cached(path: Path, array: np.ndarray) -> None:
    """Store ``array`` atomically (temporary file and rename); failures are ignored."""
    store_cached(path, lambda handle: np.save(handle, array, allow_pickle=False))


def _read_asset() -> bytes:
    """Bytes of the packaged asset; HarpnetError when it is missing."""
    try:
        return (resources.files(ASSET_PACKAGE) / ASSET_NAME).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        raise HarpnetError(
            f"terrain asset {ASSET_NAME} is missing from {ASSET_PACKAGE} ({exc.__class__.__name__}); "
            "reinstall harpnet or rebuild it with tools/make_terrain.py"
        ) from None


def decode_asset(raw: bytes) -> tuple[np.ndarray, dict[str, object]]:
    """Decode the asset's bytes.

    Parameters
    ----------
    raw : bytes
        Content of ``terrain_etopo5.npz``.

    Returns
    -------
    elevation : numpy.ndarray
        ``(2161, 4320)`` int16 metres, read-only; row ``j`` is latitude ``-90 + j/12``, column
        ``i`` is longitude ``i/12`` °E.
    meta : dict
        Provenance stored with the asset.

    Raises
    ------
    HarpnetError
        When the bytes are not a valid asset.
    """
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            dlon = npz["dlon"]
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise HarpnetError(
            f"terrain asset {ASSET_NAME} is corrupt ({exc}); rebuild it with tools/make_terrain.py"
        ) from None
    if dlon.shape != SHAPE or dlon.dtype != np.int16:
        raise HarpnetError(
            f"terrain asset {ASSET_NAME} is corrupt (array {dlon.dtype} {dlon.shape}, expected int16 {SHAPE})"
        )
    elevation = np.cumsum(dlon, axis=1, dtype=np.int32).astype(np.int16)
    elevation.setflags(write=False)
    return elevation, meta


@functools.lru_cache(maxsize=1)
def global_terrain() -> tuple[np.ndarray, dict[str, object]]:
    """The decoded global asset, cached for the life of the process.

    Returns
    -------
    elevation : numpy.ndarray
        ``(2161, 4320)`` int16 metres, read-only (see :func:`decode_asset`).
    meta : dict
        Provenance.
    """
    return decode_asset(_read_asset())


def terrain_provenance() -> dict[str, object]:
    """Provenance of the terrain (source, resolution, rule, script version) for output metadata."""
    return dict(global_terrain()[1])


def _axis_weights(coord: np.ndarray, n: int, periodic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper asset indices and the upper weight for fractional positions ``coord``.

    Parameters
    ----------
    coord : (m,) positions in asset grid units (``(lat + 90) * 12`` or ``lon * 12``).
    n : number of asset points along the axis.
    periodic : wrap (longitude) or clamp (latitude).

    Returns
    -------
    lo, hi : (m,) int indices; w : (m,) float weights of ``hi``.
    """
    if periodic:
        coord = np.mod(coord, n)
        lo = np.floor(coord).astype(np.int64) % n
        return lo, (lo + 1) % n, coord - np.floor(coord)
    coord = np.clip(coord, 0, n - 1)
    lo = np.minimum(np.floor(coord).astype(np.int64), n - 2)
    return lo, lo + 1, coord - lo


def bilinear(elevation: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear values of the asset grid at the nodes of a lat/lon grid.

    Parameters
    ----------
    elevation : (2161, 4320) asset array.
    lat : (ny,) latitudes in degrees, −90…90.
    lon : (nx,) longitudes in degrees, any convention or continuous past 180.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32.
    """
    j0, j1, wy = _axis_weights((np.asarray(lat, np.float64) + 90.0) * PER_DEGREE, elevation.shape[0], False)
    i0, i1, wx = _axis_weights(np.asarray(lon, np.float64) * PER_DEGREE, elevation.shape[1], True)
    wy32, wx32 = wy.astype(np.float32)[:, None], wx.astype(np.float32)
    rows = elevation[j0] * (1 - wy32) + elevation[j1] * wy32  # (ny, 4320), latitude done
    return (rows[:, i0] * (1 - wx32) + rows[:, i1] * wx32).astype(np.float32, copy=False)


def load_terrain(spec: GridSpec, *, cache: bool = True) -> np.ndarray:
    """Land elevation on the fine grid of ``spec``, bilinear from the 5' asset at fine cell centres.

    Parameters
    ----------
    spec : GridSpec
        Target box (any box: across the date line and up to the poles).
    cache : bool
        Read and write the terrain cache (see the module docstring).

    Returns
    -------
    numpy.ndarray
        ``(4 ny, 4 nx)`` float32 metres, south → north, west → east; 0 over water. The coarse
        grid's terrain is its block mean (see the module docstring).

    Raises
    ------
    HarpnetError
        When the asset is missing or corrupt.
    """
    path = _cache_file(spec) if cache else None
    if path is not None:
        cached = _read_cached(path, spec.fine_shape)
        if cached is not None:
            return cached
    elevation, _ = global_terrain()
    fine = bilinear(elevation, spec.fine_lat(), spec.fine_lon())
    if path is not None:
        _write_cached(path, fine)
    return fine
