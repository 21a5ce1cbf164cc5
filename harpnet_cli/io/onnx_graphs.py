"""Where the ONNX graph of a model file is kept: beside it, or in the cache.

A model file ``X.pt`` may have its exported graph beside it as ``X.onnx`` (the bundled default
ships one, written by ``tools/bundle_default.py``); any other model's graph is exported on its
first CPU run and cached under :func:`~harpnet_cli.io.cache.cache_folder` ``("onnx")``, named by
the model file's SHA-256 and :data:`GRAPH_VERSION`. Each graph records in its metadata the hash of
the file it was made from (:data:`SOURCE_KEY`), so a graph that does not belong to the model (a
model file rebuilt without its graph) is never run: :func:`graph_matches` checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harpnet_cli.io.cache import cache_folder, open_cached, store_cached

__all__ = ["GRAPH_VERSION", "SOURCE_KEY", "VERSION_KEY", "cached_graph_path", "candidate_graphs",
           "graph_beside", "graph_matches", "read_graph", "store_graph", "write_graph"]

#: Bump when the export changes what a graph computes, so graphs of the old export are made again.
GRAPH_VERSION = "1"
#: Metadata key of the SHA-256 of the model file a graph was exported from.
SOURCE_KEY = "harpnet_source_sha256"
#: Metadata key of :data:`GRAPH_VERSION`.
VERSION_KEY = "harpnet_graph_version"


def cached_graph_path(sha256: str) -> Path | None:
    """Where the graph of the model file with this SHA-256 is cached (None when caching is off)."""
    folder = cache_folder("onnx")
    return None if folder is None else folder / f"{sha256[:32]}-g{GRAPH_VERSION}.onnx"


def graph_beside(model_path: Path) -> Path:
    """The graph's place beside a model file: ``X.pt`` → ``X.onnx``."""
    return model_path.with_suffix(".onnx")


def candidate_graphs(model_path: Path, sha256: str) -> list[Path]:
    """The places a model file's graph may be, in order: beside the file, then the cache."""
    paths = [graph_beside(model_path)]
    cached = cached_graph_path(sha256)
    if cached is not None:
        paths.append(cached)
    return paths


def read_graph(path: Path) -> bytes | None:
    """A graph's bytes, or None when it is not there or cannot be read (links are not followed)."""
    handle = open_cached(path)
    if handle is None:
        return None
    try:
        with handle:
            return handle.read()
    except OSError:
        return None


def store_graph(sha256: str, graph: bytes) -> Path | None:
    """Cache the graph of the model file with this SHA-256; its path, or None when not stored."""
    path = cached_graph_path(sha256)
    if path is None or not store_cached(path, lambda handle: handle.write(graph)):
        return None
    return path


def write_graph(path: Path, graph: bytes) -> Path:
    """Write a graph to ``path`` atomically (replacing one there); ``path``."""
    from harpnet_cli.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(graph)
    return path


def graph_matches(metadata: Mapping[str, str], sha256: str) -> bool:
    """Whether a graph's metadata says it was exported, by this version's export, from the file with ``sha256``."""
    return metadata.get(SOURCE_KEY) == sha256 and metadata.get(VERSION_KEY) == GRAPH_VERSION
