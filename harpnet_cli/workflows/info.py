"""``harpnet info``: the model a downscale would run, the device it would run on, and versions.

The model is the one ``harpnet downscale`` uses without ``--model`` (the bundled default, or
``$HARPNET_DEFAULT_MODEL``), or a given file. It is loaded (so a broken file is reported, not
described) and described from the file itself — kind, preset, parameter count, SHA-256 — and
from its model card (``card.json`` beside it): name, training data, scores, how it was built.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harpnet_cli import __version__

#: ``schema`` of the ``--json`` output.
SCHEMA = "harpnet-info/1"


@dataclass
class ModelInfo:
    """What is known about one model file."""

    path: str
    """The weights file."""
    source: str
    """How it was chosen: ``"default"`` (bundled), ``"$HARPNET_DEFAULT_MODEL"`` or ``"--model"``."""
    sha256: str
    """SHA-256 of the file, as written into downscale outputs."""
    kind: str
    """``"checkpoint"`` or ``"ensemble"``."""
    preset: str | None
    """Architecture preset (of the first member for an ensemble)."""
    parameters: int | None
    """Trainable parameters of one model (of each member for an ensemble)."""
    members: int | None
    """Number of members of an ensemble; None for a checkpoint."""
    weights_dtype: str
    """Precision the weights are stored in (``float32``, or ``float16`` for a half-precision copy)."""
    name: str | None = None
    """From the card: the model's name."""
    trained_on: Any = None
    """From the card: the training data (text or a dict)."""
    created: str | None = None
    """From the card: when it was made."""
    built_with: list[str] = field(default_factory=list)
    """From the card: the commands that made it."""
    scores: dict[str, Any] = field(default_factory=dict)
    """From the card: tables of scores, as stored."""
    card: dict[str, Any] = field(default_factory=dict)
    """The whole card."""
    scope: str | None = None
    """One line: the region it was trained on and its limits (card ``trained_region`` and ``limits``;
    else the first sentence of ``trained_on``)."""


@dataclass
class ScoreTable:
    """One table of a card's scores, ready to print (every cell a string)."""

    title: str
    columns: list[str]
    """Column names after the row name."""
    rows: list[tuple[str, list[str]]]
    """Row name and one cell per column (``-`` where missing)."""


@dataclass
class InfoResult:
    """What ``harpnet info`` reports."""

    model: ModelInfo | None
    """The model, or None when no default model is installed and none was given."""
    default_location: str
    """Where the default model is looked for."""
    device: str
    """The device ``--device auto`` picks, described (``cuda:0 (NVIDIA H100 …)``, ``cpu (8 cores)``)."""
    versions: dict[str, str]
    """harpnet, python, torch, ecCodes and eccodes-python versions."""
    stochastic: str | None = None
    """The default stochastic model (``--samples``) beside the default model, when installed and no
    ``--model`` was given."""

    def score_tables(self) -> list[ScoreTable]:
        """The card's scores as printable tables (none without a model or scores)."""
        return score_tables(self.model.scores) if self.model is not None else []

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (``--json``): ``{"schema": "harpnet-info/1", ...}``."""
        return {"schema": SCHEMA, "model": None if self.model is None else asdict(self.model),
                "default_location": self.default_location, "device": self.device, "versions": self.versions,
                "stochastic": self.stochastic}


def run_info(model: Path | None = None, device: str = "auto") -> InfoResult:
    """Describe the model ``harpnet downscale`` would run, the device and the library versions.

    Parameters
    ----------
    model : Path, optional
        Describe this checkpoint or ensemble file; default: the default model, if installed.
    device : str
        Device request to resolve (``auto``: CUDA → MPS → CPU).

    Returns
    -------
    InfoResult
        ``model`` is None when no model was given and no default model is installed.

    Raises
    ------
    InputDataError
        If the model file (or its card) exists but cannot be read.
    UsageError
        For an unknown or unavailable ``device``.
    """
    from harpnet_cli.io.default_model import (
        ENV_VAR,
        default_model_location,
        default_model_path,
        default_stochastic_path,
    )

    stochastic = None
    if model is not None:
        described: ModelInfo | None = describe_model(model, "--model")
    else:
        path = default_model_path()
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "default"
        described = None if path is None else describe_model(path, source)
        found = default_stochastic_path()
        stochastic = None if found is None else str(found)
    return InfoResult(described, str(default_model_location()), _device(device), versions(), stochastic)


def describe_model(path: Path, source: str) -> ModelInfo:
    """Load a checkpoint or ensemble file and describe it with its card.

    Parameters
    ----------
    path : Path
        The weights file.
    source : str
        How it was chosen (see :attr:`ModelInfo.source`).

    Returns
    -------
    ModelInfo

    Raises
    ------
    InputDataError
        If the file or its card cannot be read.
    """
    from harpnet_cli.io.default_model import read_card
    from harpnet_cli.io.model_files import ModelFile
    from harpnet_cli.workflows.models import load_models

    path = Path(path)
    card = read_card(path)
    model_file = ModelFile(path)  # one read: kind, weights and hash
    loaded = load_models(model_file)
    models, meta = loaded.models, loaded.meta
    kind, members = ("ensemble", len(models)) if loaded.ensemble else ("checkpoint", None)
    first = models[0]
    if first.config.stochastic and not loaded.ensemble:
        kind = "stochastic checkpoint"
    parameters = sum(p.numel() for p in first.parameters() if p.requires_grad)
    built = card.get("built_with") or []
    return ModelInfo(
        path=str(path), source=source, sha256=model_file.sha256, kind=kind,
        preset=first.config.preset, parameters=int(parameters), members=members,
        weights_dtype=str(meta.get("weights_dtype", "float32")),
        name=_text(card.get("name")), trained_on=card.get("trained_on"), created=_text(card.get("created")),
        built_with=[str(c) for c in built] if isinstance(built, list) else [str(built)],
        scores=card["scores"] if isinstance(card.get("scores"), dict) else {}, card=card, scope=scope_line(card),
    )


def scope_line(card: dict[str, Any], width: int = 160) -> str | None:
    """The card's trained-on region and limits as one line (``"CONUS (...): 2 days of ...; not verified ..."``).

    Parameters
    ----------
    card : dict
        A model card; ``trained_region`` and ``limits`` are used when present, else the first sentence
        of ``trained_on``.
    width : int
        Longest line; a longer one is cut with ``…``.

    Returns
    -------
    str or None
        None when the card says nothing about the training data.
    """
    region, limits = _text(card.get("trained_region")), _text(card.get("limits"))
    if region or limits:
        line = ": ".join(p for p in (region, limits) if p)
    else:
        trained = _text(card.get("trained_on"))
        if not trained:
            return None
        line = trained.split(". ")[0].rstrip(".")
    line = " ".join(line.split())
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"


def _text(value: Any) -> str | None:
    """A card value as text (None stays None)."""
    return None if value is None else str(value)


def _cell(value: Any) -> str:
    """One score as table text: 4 significant digits for numbers, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def score_tables(scores: dict[str, Any]) -> list[ScoreTable]:
    """Turn a card's ``scores`` into printable tables.

    Parameters
    ----------
    scores : dict
        Usually ``{table: {row: {column: value}}}``. A table that is ``{name: value}`` becomes a
        one-column table, a list of ``{column: value}`` dicts one row per item (named by its
        ``name`` or ``row`` entry, else its position), and a ``scores`` dict of plain values a
        single table titled ``scores``.

    Returns
    -------
    list of ScoreTable
    """
    if scores and not any(isinstance(v, dict | list) for v in scores.values()):
        scores = {"scores": scores}
    tables = []
    for title, table in scores.items():
        if isinstance(table, list) and all(isinstance(r, dict) for r in table):
            named = {str(r.get("name", r.get("row", i + 1))): {k: v for k, v in r.items() if k not in ("name", "row")}
                     for i, r in enumerate(table)}
            table = named
        if isinstance(table, dict) and table and all(isinstance(r, dict) for r in table.values()):
            columns = list(dict.fromkeys(k for r in table.values() for k in r))
            rows = [(str(name), [_cell(r.get(c)) for c in columns]) for name, r in table.items()]
        elif isinstance(table, dict):
            columns = ["value"]
            rows = [(str(k), [_cell(v)]) for k, v in table.items()]
        else:
            columns, rows = ["value"], [("", [_cell(table)])]
        tables.append(ScoreTable(str(title), [str(c) for c in columns], rows))
    return tables


def _device(name: str) -> str:
    """The device ``name`` resolves to, described for people."""
    import torch

    from harpnet_cli.devices import select_device, usable_cpu_count

    device = select_device(name)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        from harpnet_cli.core.model.onnx import runtime_available

        runtime = "ONNX Runtime" if runtime_available() else "torch (onnxruntime is not installed)"
        return f"cpu ({usable_cpu_count()} usable cores; the network on {runtime})"
    return str(device)


def versions() -> dict[str, str]:
    """Versions of harpnet and the libraries a run depends on most.

    Returns
    -------
    dict
        ``harpnet``, ``python``, ``torch`` (with its CUDA version when built with one),
        ``eccodes`` (the ecCodes library), ``eccodes-python`` (the bindings) and ``onnxruntime``.
    """
    import torch

    from harpnet_cli.io.grib_writer import eccodes_library_version

    cuda = getattr(torch.version, "cuda", None)
    out = {
        "harpnet": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__ + (f" (CUDA {cuda})" if cuda else ""),
        "eccodes": eccodes_library_version(),
    }
    for key, package in (("eccodes-python", "eccodes"), ("onnxruntime", "onnxruntime")):
        try:
            out[key] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[key] = "unknown" if key == "eccodes-python" else "not installed"
    return out
