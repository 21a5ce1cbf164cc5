"""The HARPNET-E ensemble artefact: several checkpoints' weights and configs in one file, as plain data.

Layout (a ``torch.save`` dict loadable with ``torch.load(weights_only=True)``)::

    {"format": "harpnet-ensemble", "format_version": 1, "harpnet_version": str,
     "mode": "members",
     "members": [{"epoch": int, "config": dict, "model": state_dict, "test_loss": float | None}, ...],
     "selection": {...}}   # how the members were chosen and their scores (plain data)

A soup (averaged weights) is an ordinary checkpoint (:mod:`harpnet_cli.io.checkpoints`), so
``harpnet downscale --model`` runs it directly. This module reads and writes payloads only;
:func:`harpnet_cli.workflows.models.load_ensemble_models` builds the members' models.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harpnet_cli import __version__
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.checkpoints import ZIP_MAGIC, file_like, plain_metadata, torch_load_bytes, write_payload

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT = "harpnet-ensemble"
FORMAT_VERSION = 1


def save_ensemble(
    path: str | Path,
    members: Sequence[Mapping[str, Any]],
    selection: Mapping[str, Any] | None = None,
    mode: str = "members",
) -> Path:
    """Write an ensemble artefact atomically.

    Parameters
    ----------
    path : str or Path
        Destination (replaced only once the new file is complete).
    members : sequence of mapping
        Each with ``epoch`` (int), ``config`` (the model config dict), ``model`` (state dict) and
        ``test_loss`` (float or None).
    selection : mapping, optional
        Plain metadata on how the members were chosen.
    mode : str
        ``"members"``.

    Returns
    -------
    Path
    """
    if not members:
        raise ValueError("an ensemble needs at least one member")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harpnet_version": __version__,
        "mode": mode,
        "members": [
            {
                "epoch": int(m["epoch"]),
                "config": plain_metadata(dict(m["config"]), "config"),
                "model": {k: v.detach().cpu().contiguous() for k, v in m["model"].items()},
                "test_loss": None if m.get("test_loss") is None else float(m["test_loss"]),
            }
            for m in members
        ],
        "selection": plain_metadata(dict(selection or {}), "selection"),
    }
    return write_payload(path, payload)


def ensemble_payload(data: bytes, path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload of an ensemble file's bytes, checked; every failure one :class:`InputDataError` line.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str or Path
        Where the bytes came from, for messages.
    device : str or torch.device
        Where the tensors go.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``harpnet_version``, ``mode``, ``members`` (each with a
        ``config`` and a ``model`` dict) and ``selection``.

    Raises
    ------
    InputDataError
        If the bytes are not a torch file, hold pickled code, are corrupt, not an ensemble, from a
        newer format, or a member lacks its config or weights.
    """
    path = Path(path)
    if data[:4] != ZIP_MAGIC:
        raise InputDataError(path, "not a HARPNET ensemble (not a torch.save zip file)")
    try:
        payload = torch_load_bytes(data, device)
    except pickle.UnpicklingError:
        raise InputDataError(path, "refusing to load code from an ensemble file") from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputDataError(path, f"corrupt or truncated ensemble: {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputDataError(path, "a PyTorch file but not a HARPNET ensemble (no 'format': 'harpnet-ensemble')")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputDataError(path, f"unsupported ensemble format_version {version!r} (this harpnet reads "
                                   f"{FORMAT_VERSION})")
    members = payload.get("members")
    if not isinstance(members, list) or not members:
        raise InputDataError(path, "ensemble has no members")
    for i, m in enumerate(members):
        if not isinstance(m, dict) or not isinstance(m.get("config"), dict) or not isinstance(m.get("model"), dict):
            raise InputDataError(path, f"ensemble member {i} lacks a 'config' or 'model' dict")
    return payload


def read_ensemble(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an ensemble file's payload (one ``open``, ``weights_only`` loading from memory).

    Parameters
    ----------
    path : str or Path
    device : str or torch.device
        Where the tensors go.

    Returns
    -------
    dict
        As :func:`ensemble_payload`.

    Raises
    ------
    InputDataError
        If the file is missing or its bytes are not a readable ensemble (:func:`ensemble_payload`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "no such ensemble file")
    with path.open("rb") as f:
        data = f.read()
    return ensemble_payload(data, path, device)


def is_ensemble_data(data: bytes) -> bool:
    """Whether a file's bytes are a HARPNET ensemble (False for checkpoints and anything else).

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    bool
        True when the zip archive's ``data.pkl`` names the ``harpnet-ensemble`` format.
    """
    return _names_ensemble(file_like(data))


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is a HARPNET ensemble file (False for checkpoints and anything else).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
        False too when the file is missing or unreadable.
    """
    p = Path(path)
    if not p.is_file():
        return False
    return _names_ensemble(p)


def _names_ensemble(source: Path | IO[bytes]) -> bool:
    """Whether the zip archive ``source`` has a ``data.pkl`` naming the ensemble format (no unpickling)."""
    try:
        with zipfile.ZipFile(source) as z:
            return any(n.endswith("/data.pkl") and FORMAT.encode() in z.read(n) for n in z.namelist())
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
