"""The grids of loaded fields, cached per grid key in the process.

:func:`harpnet_cli.io.readers.load_field` reads one field at a time; its grid (2-D lat/lon for a
WRF or projected grid) would otherwise be read again for every field. The format modules build
a grid through :func:`cached_grid`, so it is read once per worker and :data:`GRID_CACHE_SIZE` grid
keys are kept, least recently used first out. Thread-safe; no file-format library is imported here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from harpnet_cli.fields import SourceGrid

__all__ = ["GRID_CACHE_SIZE", "cached_grid", "clear_grid_cache"]

#: Grids kept per process (a CONUS404 grid is 2 × 1367 × 1015 float64 = 22 MB).
GRID_CACHE_SIZE = 4

_GRIDS: OrderedDict[str, SourceGrid] = OrderedDict()
_GRIDS_LOCK = threading.Lock()


def cached_grid(key: str, build: Callable[[], SourceGrid]) -> SourceGrid:
    """The grid cached under ``key``, built (and cached) when absent.

    Parameters
    ----------
    key : str
        Grid key of the field (:attr:`harpnet_cli.fields.FieldRef.grid`).
    build : callable
        Reads the grid; called only when ``key`` is not cached.

    Returns
    -------
    SourceGrid
        The same object for every field with this key while it stays cached.
    """
    with _GRIDS_LOCK:
        grid = _GRIDS.get(key)
        if grid is not None:
            _GRIDS.move_to_end(key)
            return grid
    grid = build()
    with _GRIDS_LOCK:
        _GRIDS[key] = grid
        while len(_GRIDS) > GRID_CACHE_SIZE:
            _GRIDS.popitem(last=False)
    return grid


def clear_grid_cache() -> None:
    """Forget the cached grids (tests; or a worker that moves on to another data set)."""
    with _GRIDS_LOCK:
        _GRIDS.clear()
