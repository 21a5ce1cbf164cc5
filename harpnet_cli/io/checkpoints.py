"""Save and load HARPNET checkpoints safely.

A checkpoint is a ``torch.save`` zip file holding one dict::

    {"format": "harpnet-checkpoint", "format_version": 1, "harpnet_version": "0.1.0",
     "config": ModelConfig.model_dump(mode="json"), "model": state_dict,
     "optimizer": optimizer.state_dict(),   # only when given
     **meta}                                 # epoch, losses, ... (plain Python types)

Files are written atomically (temporary file in the same directory, fsync, ``os.replace``) and
read with ``torch.load(..., weights_only=True)`` only, so a checkpoint can never run code. Every
problem with a file raises :class:`~harpnet_cli.errors.InputDataError` naming the path.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harpnet_cli import __version__
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler

FORMAT = "harpnet-checkpoint"
FORMAT_VERSION = 1
_RESERVED = frozenset({"format", "format_version", "harpnet_version", "config", "model", "optimizer"})
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_KEYS_SHOWN = 5


def _plain(value: Any, where: str) -> Any:
    """Convert metadata to types ``weights_only`` accepts (numpy scalars, Paths, 0-d tensors).

    Raises
    ------
    TypeError
        For anything else that is not a plain Python value or container.
    """
    import numpy as np
    import torch

    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic):  # before float: np.float64 subclasses float
        return value.item()
    for plain in (bool, int, float, str):  # subclasses (IntEnum, ...) would pickle their class
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return value.item()
        raise TypeError(f"checkpoint metadata {where} is a tensor; store it in the state dict")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise TypeError(f"checkpoint metadata {where} has a non-string key {k!r}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"checkpoint metadata {where} has unsupported type {type(value).__name__}")


def save_checkpoint(
    path: str | Path,
    model: Downscaler,
    optimizer: torch.optim.Optimizer | None = None,
    **meta: Any,
) -> Path:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its directory is created if needed. An existing file is replaced only once
        the new one is complete on disk.
    model : Downscaler
        The model; its config (with the current normalisation buffers) and state dict are saved.
    optimizer : torch.optim.Optimizer, optional
        Saved as ``"optimizer"`` for resuming training.
    **meta
        Extra plain metadata (epoch, losses, data provenance, ...). Numpy scalars and arrays,
        0-d tensors and paths are converted to plain Python values.

    Returns
    -------
    Path
        The checkpoint path.

    Raises
    ------
    ValueError
        If a metadata key clashes with a reserved key, or the model was prepared with
        :meth:`~harpnet_cli.core.model.wrapper.Downscaler.for_inference`.
    TypeError
        If metadata holds a value that is not plain data.
    """
    import torch

    path = Path(path)
    if model.inference_only:
        raise ValueError("cannot save a model prepared with for_inference() (its BatchNorm is folded)")
    clash = _RESERVED.intersection(meta)
    if clash:
        raise ValueError(f"metadata keys {sorted(clash)} are reserved in a checkpoint")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harpnet_version": __version__,
        "config": model.current_config().model_dump(mode="json"),
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    payload.update(_plain(dict(meta), "meta"))

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return path


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception message, for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0] if text else type(exc).__name__


def _read_payload(path: Path, device: str | torch.device) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``, every failure turned into InputDataError."""
    import torch

    if not path.exists():
        raise InputDataError(path, "no such checkpoint file")
    if not path.is_file():
        raise InputDataError(path, "not a file")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InputDataError(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    if not head:
        raise InputDataError(path, "empty file, not a HARPNET checkpoint")
    if head != _ZIP_MAGIC:
        raise InputDataError(path, "not a PyTorch checkpoint (not a torch.save zip file)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or "Unsupported" in str(exc):
            what = f" ({found.group(1)})" if found else ""
            raise InputDataError(path, f"refusing to load code from a checkpoint{what}") from None
        raise InputDataError(path, f"corrupt checkpoint: {_first_line(exc)}") from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as exc:
        raise InputDataError(path, f"corrupt or truncated checkpoint: {_first_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputDataError(path, "a PyTorch file but not a HARPNET checkpoint (no 'format' key)")
    version = payload.get("format_version")
    if not isinstance(version, int):
        raise InputDataError(path, f"checkpoint has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise InputDataError(
            path,
            f"checkpoint format_version {version} is newer than this harpnet reads ({FORMAT_VERSION}); upgrade harpnet",
        )
    for key in ("config", "model"):
        if not isinstance(payload.get(key), dict):
            raise InputDataError(path, f"checkpoint has no {key!r} dict")
    return payload


def _keys(keys: list[str]) -> str:
    """A short comma-separated list of state-dict keys."""
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    return shown + (f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else "")


def _state_dict_mismatch(expected: dict[str, Any], found: dict[str, Any]) -> str | None:
    """Describe missing, unexpected and wrongly shaped keys, or None when the dicts match."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} {tuple(found[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and getattr(found[k], "shape", None) != v.shape
    ]
    parts = []
    if missing:
        parts.append(f"missing {_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected {_keys(unexpected)}")
    if shapes:
        parts.append(f"wrong shape {_keys(shapes)}")
    return "; ".join(parts) or None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Downscaler, dict[str, Any]]:
    """Load a checkpoint: rebuild the model from its config alone and load the weights strictly.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    device : str or torch.device
        Where the model and any tensors in the metadata go.

    Returns
    -------
    model : Downscaler
        In ``eval()`` mode, on ``device`` (channels-last weights on CPU, where that is faster),
        float32 whatever the stored precision (``load_state_dict`` copies float16 weights, as
        :func:`save_half_precision` writes them, into the float32 model). Call
        :meth:`~harpnet_cli.core.model.wrapper.Downscaler.for_inference` to fold BatchNorm
        too when it will not be trained.
    meta : dict
        Everything in the file except the state dict: ``format``, ``format_version``,
        ``harpnet_version``, ``config``, ``optimizer`` (if saved) and the extra metadata.

    Raises
    ------
    InputDataError
        If the file is missing, not a torch file, corrupt or truncated, not a HARPNET checkpoint,
        from a newer format, holds pickled code, or its weights do not match its config.
    """
    import torch
    from pydantic import ValidationError

    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig

    path = Path(path)
    payload = _read_payload(path, device)
    try:
        config = ModelConfig.model_validate(payload["config"])
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise InputDataError(path, f"invalid model config in checkpoint: {where}: {err['msg']}") from None
    model = Downscaler(config)
    state = payload["model"]
    problem = _state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise InputDataError(path, f"weights do not match the saved config: {problem}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputDataError(path, f"weights do not match the saved config: {_first_line(exc)}") from None
    model.to(device).eval()
    if model.coarse_mean.device.type == "cpu":  # measured ~1.4x faster on CPU; still trainable
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model, meta


def checkpoint_sha256(path: str | Path) -> str:
    """SHA-256 of a checkpoint file, as 64 hex digits (for provenance in outputs).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str

    Raises
    ------
    InputDataError
        If the file cannot be read.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputDataError(path, "no such checkpoint file") from None
    except OSError as exc:
        raise InputDataError(path, f"cannot read checkpoint: {exc.strerror or exc}") from None
    return digest.hexdigest()


def save_half_precision(src: str | Path, dst: str | Path) -> Path:
    """Rewrite a checkpoint (or a HARPNET-E ensemble file) with float16 weights and no optimizer state.

    The trainable weights (the models' parameters) are stored as float16, halving the file; the
    buffers (normalisation statistics, BatchNorm running statistics, counters) stay as they are,
    they are small and need the precision. :func:`load_checkpoint` (and
    :func:`~harpnet_cli.io.ensembles.load_ensemble`) load the copy back as float32. Metadata is
    kept, plus ``"weights_dtype": "float16"``; the optimizer state is dropped.

    Parameters
    ----------
    src : str or Path
        A checkpoint written by :func:`save_checkpoint`, or an ensemble file.
    dst : str or Path
        Destination, written atomically (may replace an existing file, but not ``src`` itself).

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    InputDataError
        If ``src`` is not a readable checkpoint or ensemble, or a weight overflows float16
        (magnitude above 65504).
    ValueError
        If ``dst`` is ``src``.
    """
    import torch

    from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
    from harpnet_cli.io.ensembles import _read as read_ensemble
    from harpnet_cli.io.ensembles import is_ensemble

    src, dst = Path(src), Path(dst)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: write the half-precision copy to another file")
    ensemble = is_ensemble(src)
    payload = read_ensemble(src) if ensemble else _read_payload(src, "cpu")
    states = [m["model"] for m in payload["members"]] if ensemble else [payload["model"]]
    configs = [m["config"] for m in payload["members"]] if ensemble else [payload["config"]]
    halves = []
    for config, state in zip(configs, states, strict=True):
        params = {name for name, _ in Downscaler(ModelConfig.model_validate(config)).named_parameters()}
        half = {}
        for name, value in state.items():
            if name in params and value.is_floating_point():
                value = value.to(torch.float16)
                if not torch.isfinite(value).all():
                    raise InputDataError(src, f"weight {name} does not fit in float16 (|w| > 65504)")
            half[name] = value.contiguous()
        halves.append(half)
    if ensemble:
        payload["members"] = [{**m, "model": h} for m, h in zip(payload["members"], halves, strict=True)]
    else:
        payload["model"] = halves[0]
    payload.pop("optimizer", None)
    payload["weights_dtype"] = "float16"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return dst
