"""The HARPNET-E ensemble artefact: several checkpoints' weights and configs in one file.

Layout (a ``torch.save`` dict loadable with ``torch.load(weights_only=True)``)::

    {"format": "harpnet-ensemble", "format_version": 1, "harpnet_version": str,
     "mode": "members",
     "members": [{"epoch": int, "config": dict, "model": state_dict, "test_loss": float | None}, ...],
     "selection": {...}}   # how the members were chosen and their scores (plain data)

A soup (averaged weights) is an ordinary checkpoint (:mod:`harpnet_cli.io.checkpoints`), so
``harpnet downscale --model`` runs it directly.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harpnet_cli import __version__
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.atomic import atomic_path
from harpnet_cli.io.checkpoints import _plain

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler

FORMAT = "harpnet-ensemble"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"


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
    import torch

    if not members:
        raise ValueError("an ensemble needs at least one member")
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harpnet_version": __version__,
        "mode": mode,
        "members": [
            {
                "epoch": int(m["epoch"]),
                "config": _plain(dict(m["config"]), "config"),
                "model": {k: v.detach().cpu().contiguous() for k, v in m["model"].items()},
                "test_loss": None if m.get("test_loss") is None else float(m["test_loss"]),
            }
            for m in members
        ],
        "selection": _plain(dict(selection or {}), "selection"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return path


def _read(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload, every failure one :class:`InputDataError` line."""
    import torch

    if not path.is_file():
        raise InputDataError(path, "no such ensemble file")
    with path.open("rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        raise InputDataError(path, "not a HARPNET ensemble (not a torch.save zip file)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
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


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is a HARPNET ensemble file (False for checkpoints and anything else)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        import zipfile

        with zipfile.ZipFile(p) as z:
            return any(n.endswith("/data.pkl") and b"harpnet-ensemble" in z.read(n) for n in z.namelist())
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def load_ensemble(path: str | Path, device: str | torch.device = "cpu") -> tuple[list[Downscaler], str, dict[str, Any]]:
    """Load an ensemble's members.

    Parameters
    ----------
    path : str or Path
    device : str or torch.device

    Returns
    -------
    members : list of Downscaler
        In ``eval()`` mode on ``device``, in the file's order.
    mode : str
        ``"members"``.
    meta : dict
        The payload without the state dicts (``members`` keep ``epoch``, ``config``, ``test_loss``).

    Raises
    ------
    InputDataError
        If the file is missing, not an ensemble, corrupt, or a member's weights do not match its config.
    """
    from pydantic import ValidationError

    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
    from harpnet_cli.io.checkpoints import _state_dict_mismatch

    path = Path(path)
    payload = _read(path, device)
    models = []
    for i, m in enumerate(payload["members"]):
        try:
            model = Downscaler(ModelConfig.model_validate(m["config"]))
        except ValidationError as exc:
            raise InputDataError(path, f"member {i}: invalid model config: {exc.errors()[0]['msg']}") from None
        problem = _state_dict_mismatch(model.state_dict(), m["model"])
        if problem:
            raise InputDataError(path, f"member {i}: weights do not match its config: {problem}")
        model.load_state_dict(m["model"], strict=True)
        models.append(model.to(device).eval())
    meta = {k: v for k, v in payload.items() if k != "members"}
    meta["members"] = [{k: v for k, v in m.items() if k != "model"} for m in payload["members"]]
    return models, str(payload.get("mode", "members")), meta
