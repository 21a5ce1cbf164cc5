"""The files of a training run folder (``harpnet train -o RUN_DIR``).

``RUN_DIR/config.toml``
    The run's options (reusable with ``train --config``) and the tables ``[resolved]``,
    ``[model]`` and ``[grid]``; written atomically (:func:`write_config`).
``RUN_DIR/history.jsonl``
    One JSON object per finished epoch, appended and flushed to disk as the epoch's checkpoint
    is written (:func:`append_history`); a resumed run keeps only the saved epochs
    (:func:`truncate_history`).
``RUN_DIR/checkpoints/epoch_NNN.pt``
    One checkpoint per epoch (:func:`checkpoint_path`; written by
    :func:`harpnet_cli.io.checkpoints.save_checkpoint`, atomically, so every one listed by
    :func:`epoch_checkpoints` is complete).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harpnet_cli.io.atomic import atomic_path

CHECKPOINT_DIR = "checkpoints"
HISTORY = "history.jsonl"
CONFIG = "config.toml"


# -- checkpoints ---------------------------------------------------------------------------------
def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    """``RUN_DIR/checkpoints/epoch_NNN.pt``."""
    return run_dir / CHECKPOINT_DIR / f"epoch_{epoch:03d}.pt"


def epoch_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Every ``RUN_DIR/checkpoints/epoch_NNN.pt``, by epoch.

    Parameters
    ----------
    run_dir : Path
        A run folder (a folder without checkpoints gives an empty list).

    Returns
    -------
    list of (int, Path)
        ``(epoch, path)`` sorted by epoch; files whose name holds no epoch number are left out.
    """
    found = []
    for p in (run_dir / CHECKPOINT_DIR).glob("epoch_*.pt"):
        try:
            found.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)


def last_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """The highest-numbered ``epoch_NNN.pt`` in the run, or None (all are complete: writes are atomic)."""
    found = epoch_checkpoints(run_dir)
    return found[-1] if found else None


# -- history -------------------------------------------------------------------------------------
def read_history(run_dir: Path, upto: int | None = None) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/history.jsonl`` (empty when it is missing).

    Parameters
    ----------
    run_dir : Path
    upto : int, optional
        Keep only the records of epochs up to this one.

    Returns
    -------
    list of dict
        In file order; lines that are not a JSON object with an integer ``epoch`` are dropped.
    """
    path = run_dir / HISTORY
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and (upto is None or rec["epoch"] <= upto):
            out.append(rec)
    return out


def history_losses(run_dir: Path) -> dict[int, float]:
    """Epoch → test loss of the run's history (epochs without a test loss are left out)."""
    return {r["epoch"]: float(r["test_loss"]) for r in read_history(run_dir) if r.get("test_loss") is not None}


def append_history(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one epoch's record to ``RUN_DIR/history.jsonl`` and flush it to disk."""
    with (run_dir / HISTORY).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_history(run_dir: Path, epoch: int, record: Mapping[str, Any] | None = None) -> None:
    """Keep the history of epochs up to ``epoch`` (a run resumed after it), atomically.

    Parameters
    ----------
    run_dir : Path
    epoch : int
        The last saved epoch.
    record : mapping, optional
        That epoch's record (from its checkpoint), added when the history lacks it (the run
        stopped between writing the checkpoint and appending the line).
    """
    records = read_history(run_dir, epoch)
    if isinstance(record, Mapping) and all(r["epoch"] != epoch for r in records):
        records.append(dict(record))
    _write_text(run_dir / HISTORY, "".join(json.dumps(r) + "\n" for r in records))


def clear_history(run_dir: Path) -> None:
    """Remove ``RUN_DIR/history.jsonl`` (a run starting from epoch 1)."""
    path = run_dir / HISTORY
    if path.exists():
        path.unlink()


# -- config.toml ---------------------------------------------------------------------------------
def write_config(run_dir: Path, data: Mapping[str, Any]) -> Path:
    """Write ``RUN_DIR/config.toml`` atomically (see :func:`to_toml`).

    Returns
    -------
    Path
        The file written.
    """
    path = run_dir / CONFIG
    _write_text(path, to_toml(data))
    return path


def _toml_value(v: Any) -> str:
    """One TOML value (strings, numbers, booleans and lists of them)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialise a dict of plain values and one level of tables to TOML (None values are left out).

    Parameters
    ----------
    data : mapping
        Top-level keys with plain values; mapping values become ``[tables]``.

    Returns
    -------
    str
    """
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


__all__ = [
    "CHECKPOINT_DIR", "CONFIG", "HISTORY", "append_history", "checkpoint_path", "clear_history",
    "epoch_checkpoints", "history_losses", "last_checkpoint", "read_history", "to_toml", "truncate_history",
    "write_config",
]
