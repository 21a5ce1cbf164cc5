"""HARPNET's cache folder: what a run computes once and later runs read back.

One root (:func:`cache_root`: ``$HARPNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/harpnet``, else
``~/.cache/harpnet``; ``HARPNET_CACHE_DIR=off`` turns caching off) with a folder per kind: the
terrain of each domain (:mod:`harpnet_cli.io.terrain`) and the ONNX graphs of model files
(:mod:`harpnet_cli.io.onnx_graphs`). Entries are named by what they were made from, written to a
temporary file and renamed, and read without following links; a cache that cannot be written is
skipped, never an error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["CACHE_ENV", "cache_folder", "cache_root", "open_cached", "store_cached"]

#: Environment variable naming the cache folder (``off`` to disable the cache).
CACHE_ENV = "HARPNET_CACHE_DIR"


def cache_root() -> Path | None:
    """The cache's root folder, or None when caching is off (``HARPNET_CACHE_DIR=off``)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "none") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "harpnet"


def cache_folder(kind: str) -> Path | None:
    """The folder of one kind of cached data (``"terrain"``, ``"onnx"``), or None when caching is off."""
    root = cache_root()
    return None if root is None else root / kind


def open_cached(path: Path) -> BinaryIO | None:
    """``path`` opened for binary reading, without following a link; None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    return os.fdopen(fd, "rb")


def store_cached(path: Path, write: Callable[[BinaryIO], object]) -> bool:
    """Write a cache entry atomically: ``write`` fills a temporary file, renamed to ``path``.

    Parameters
    ----------
    path : Path
        The entry.
    write : callable
        Writes the entry's bytes to the open file it is given.

    Returns
    -------
    bool
        Whether the entry was stored (a folder that cannot be written is skipped).
    """
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return False
