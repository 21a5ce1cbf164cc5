"""The bundled default model: ``harpnet_cli/assets/default/model.pt`` and its model card.

``model.pt`` is a checkpoint (:mod:`harpnet_cli.io.checkpoints`) or a HARPNET-E ensemble file
(:mod:`harpnet_cli.io.ensembles`); ``stochastic.pt`` beside it, when present, is the stochastic
model ``downscale --samples`` runs; ``card.json`` beside them is the model card, a JSON object with
keys such as ``name``, ``trained_on``, ``preset``, ``parameters``, ``scores`` (a dict of tables,
each a dict of rows, each a dict of column → value), ``built_with`` (the commands that made it)
and ``created``. ``harpnet downscale`` runs the default model when no ``--model`` is given, and
``harpnet info`` describes it.

The environment variable :data:`ENV_VAR` points to another model file instead (its card is the
``card.json`` in the same folder); tests use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import harpnet_cli
from harpnet_cli.errors import InputDataError

#: Folder of the bundled model and its card.
DEFAULT_MODEL_DIR = Path(harpnet_cli.__file__).parent / "assets" / "default"
#: File name of the bundled weights.
MODEL_FILE = "model.pt"
#: File name of the bundled stochastic weights (``downscale --samples``), beside the default model.
STOCHASTIC_FILE = "stochastic.pt"
#: File name of the model card, beside the weights.
CARD_FILE = "card.json"
#: Environment variable naming another default model file.
ENV_VAR = "HARPNET_DEFAULT_MODEL"


def default_model_location() -> Path:
    """Where the default model is looked for: ``$HARPNET_DEFAULT_MODEL`` if set, else the bundled file.

    Returns
    -------
    Path
        The path, whether or not a file is there.
    """
    override = os.environ.get(ENV_VAR, "").strip()
    return Path(override).expanduser() if override else DEFAULT_MODEL_DIR / MODEL_FILE


def default_model_path() -> Path | None:
    """The default model file, or None when none is installed.

    Returns
    -------
    Path or None
        :func:`default_model_location` when it is a file, else None.
    """
    path = default_model_location()
    return path if path.is_file() else None


def default_stochastic_path() -> Path | None:
    """The default stochastic model (``stochastic.pt`` beside the default model), or None when none is installed.

    Returns
    -------
    Path or None
    """
    path = default_model_location().parent / STOCHASTIC_FILE
    return path if path.is_file() else None


def read_card(model_path: str | Path) -> dict[str, Any]:
    """The model card (``card.json``) in the folder of a model file.

    Parameters
    ----------
    model_path : str or Path
        The weights file.

    Returns
    -------
    dict
        The card; empty when there is no ``card.json`` beside the file.

    Raises
    ------
    InputDataError
        If the card exists but is not a JSON object.
    """
    card = Path(model_path).parent / CARD_FILE
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(card, f"unreadable model card ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InputDataError(card, f"the model card must be a JSON object, not {type(data).__name__}")
    return data

