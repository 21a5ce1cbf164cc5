"""Save and read HARPNET checkpoints safely, as plain data.

A checkpoint is a ``torch.save`` zip file holding one dict::

    {"format": "harpnet-checkpoint", "format_version": 1, "harpnet_version": "0.1.0",
     "config": ModelConfig.model_dump(mode="json"), "model": state_dict,
     "optimizer": optimizer.state_dict(),   # only when given
     **meta}                                 # epoch, losses, ... (plain Python types)

Files are written atomically (temporary file in the same directory, fsync, ``os.replace``) and
read with ``torch.load(..., weights_only=True)`` only, so a checkpoint can never run code. Every
problem with a file raises :class:`~harpnet_cli.errors.InputDataError` naming the path.

This module reads and writes payloads (config dict, state dict of tensors, metadata) and never
builds a model: :func:`harpnet_cli.workflows.models.load_model` turns a checkpoint into a
:class:`~harpnet_cli.core.model.wrapper.Downscaler`. It also holds the helpers the HARPNET-E
ensemble file (:mod:`harpnet_cli.io.ensembles`) shares: :func:`plain_metadata`,
:func:`torch_load_bytes`, :func:`write_payload` and :data:`ZIP_MAGIC`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harpnet_cli import __version__
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

FORMAT = "harpnet-checkpoint"
FORMAT_VERSION = 1
#: Top-level keys of a checkpoint that metadata may not use.
RESERVED = frozenset({"format", "format_version", "harpnet_version", "config", "model", "optimizer"})
#: The first bytes of every ``torch.save`` file (a zip archive).
ZIP_MAGIC = b"PK\x03\x04"


class SavableModel(Protocol):
    """What :func:`save_checkpoint` needs of a model (a :class:`~harpnet_cli.core.model.wrapper.Downscaler`)."""

    @property
    def inference_only(self) -> bool:
        """True when the model may not be saved (BatchNorm folded)."""

    def current_config(self) -> Any:
        """The config to store; it has ``model_dump(mode="json")``."""

    def state_dict(self) -> Any:
        """The weights and buffers, name -> tensor."""


class HasStateDict(Protocol):
    """An optimizer, or anything else whose state dict is saved as is."""

    def state_dict(self) -> Any:
        """The state to save (plain data and tensors)."""


def plain_metadata(value: Any, where: str) -> Any:
    """Convert metadata to types ``weights_only`` accepts (numpy scalars, Paths, 0-d tensors).

    Parameters
    ----------
    value : Any
        A metadata value: plain Python values, containers of them, numpy scalars and arrays,
        0-d tensors, paths.
    where : str
        Its name, for messages (``"meta"``, ``"config"``, ...).

    Returns
    -------
    Any
        ``None``, bool, int, float, str, or dicts and lists of them.

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
            out[k] = plain_metadata(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        return [plain_metadata(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"checkpoint metadata {where} has unsupported type {type(value).__name__}")


def write_payload(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """``torch.save`` a payload atomically, creating the folder if needed.

    Parameters
    ----------
    path : str or Path
        Destination; an existing file is replaced only once the new one is complete on disk.
    payload : mapping
        Plain data and tensors (what ``torch.load(weights_only=True)`` reads back).

    Returns
    -------
    Path
        ``path``.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(dict(payload), tmp)
    return path


def write_checkpoint(
    path: str | Path,
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None = None,
    /,
    **meta: Any,
) -> Path:
    """Write a checkpoint from plain parts, atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its directory is created if needed.
    config : mapping
        The model config as plain data (``ModelConfig.model_dump(mode="json")``).
    state : mapping
        The state dict; tensors are saved detached, on the CPU and contiguous.
    optimizer_state : mapping, optional
        Saved as ``"optimizer"`` for resuming training.
    **meta
        Extra plain metadata, converted by :func:`plain_metadata`.

    Returns
    -------
    Path
        The checkpoint path.

    Raises
    ------
    ValueError
        If a metadata key clashes with a reserved key.
    TypeError
        If metadata holds a value that is not plain data.
    """
    clash = RESERVED.intersection(meta)
    if clash:
        raise ValueError(f"metadata keys {sorted(clash)} are reserved in a checkpoint")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harpnet_version": __version__,
        "config": dict(config),
        "model": {k: v.detach().cpu().contiguous() for k, v in state.items()},
    }
    if optimizer_state is not None:
        payload["optimizer"] = optimizer_state
    payload.update(plain_metadata(dict(meta), "meta"))
    return write_payload(path, payload)


def save_checkpoint(
    path: str | Path,
    model: SavableModel,
    optimizer: HasStateDict | None = None,
    **meta: Any,
) -> Path:
    """Write a model's checkpoint atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its directory is created if needed. An existing file is replaced only once
        the new one is complete on disk.
    model : SavableModel
        The model (a :class:`~harpnet_cli.core.model.wrapper.Downscaler`); its config (with the
        current normalisation buffers) and state dict are saved.
    optimizer : torch.optim.Optimizer, optional
        Its state dict is saved as ``"optimizer"`` for resuming training.
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
    if model.inference_only:
        raise ValueError("cannot save a model prepared with for_inference() (its BatchNorm is folded)")
    return write_checkpoint(path, model.current_config().model_dump(mode="json"), model.state_dict(),
                            None if optimizer is None else optimizer.state_dict(), **meta)


class _FileLikeBytes(io.BytesIO):
    """Bytes that seek like a real file: a position before the start is ``OSError`` EINVAL.

    ``io.BytesIO`` raises ValueError for a negative absolute seek and clamps a negative relative
    one; ``torch.load`` and ``zipfile`` then fail (or not) differently from the same bytes on disk.
    """

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` from ``whence``, refusing positions before the start as a file does."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: len(self.getbuffer())}.get(whence, 0)
        if base + offset < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return super().seek(offset, whence)


class _Opaque:
    """Stands for every object a peek does not build (tensors, storages, dtypes): takes anything."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _Peek(pickle.Unpickler):
    """Unpickles a checkpoint's plain data without torch: tensors become :class:`_Opaque`, and no
    class but ``OrderedDict`` is ever looked up, so no code from the file can run."""

    def find_class(self, module: str, name: str) -> Any:
        """``collections.OrderedDict`` (state dicts); :class:`_Opaque` for anything else."""
        import collections

        return collections.OrderedDict if (module, name) == ("collections", "OrderedDict") else _Opaque

    def persistent_load(self, pid: Any) -> None:
        """Tensor storages are not read."""
        return None


def peek_payload(data: bytes) -> dict[str, Any] | None:
    """A checkpoint's plain contents (its ``config`` among them) read without importing torch.

    Tensors come back as opaque placeholders; use :func:`checkpoint_payload` for the weights.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    dict or None
        The payload, or None when the bytes are not a ``torch.save`` zip file holding a dict.
    """
    import zipfile

    try:
        with zipfile.ZipFile(file_like(data)) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            payload = _Peek(io.BytesIO(z.read(name))).load()
    except (StopIteration, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, OSError):
        return None
    return payload if isinstance(payload, dict) else None


def file_like(data: bytes) -> io.BytesIO:
    """A binary stream over ``data`` that behaves as the same bytes in a file (see ``_FileLikeBytes``).

    Parameters
    ----------
    data : bytes
        A whole file.

    Returns
    -------
    io.BytesIO
    """
    return _FileLikeBytes(data)


def torch_load_bytes(data: bytes, device: str | torch.device = "cpu") -> Any:
    """``torch.load(..., weights_only=True)`` of a file's bytes, read from memory.

    Parameters
    ----------
    data : bytes
        A whole ``torch.save`` file.
    device : str or torch.device
        ``map_location`` of the tensors.

    Returns
    -------
    Any
        The unpickled object.

    Raises
    ------
    pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, OSError
        As ``torch.load`` of the same bytes in a file.
    """
    import torch

    return torch.load(file_like(data), map_location=device, weights_only=True)


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception message, for one-line errors.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str
        The first line up to its first ``". "``; the exception's type name when it has no message.
    """
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0] if text else type(exc).__name__


def read_checkpoint_bytes(path: str | Path) -> bytes:
    """A model file's bytes, read with one ``open``; a missing or unreadable file is a checkpoint error.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bytes
        The whole file.

    Raises
    ------
    InputDataError
        ``no such checkpoint file``, ``not a file`` or ``cannot read checkpoint: ...``.
    """
    path = Path(path)
    if not path.exists():
        raise InputDataError(path, "no such checkpoint file")
    if not path.is_file():
        raise InputDataError(path, "not a file")
    try:
        with path.open("rb") as f:
            return f.read()
    except OSError as exc:
        raise InputDataError(path, f"cannot read checkpoint: {exc.strerror or exc}") from None


def checkpoint_payload(data: bytes, path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload of a checkpoint file's bytes, checked; every failure one :class:`InputDataError` line.

    Parameters
    ----------
    data : bytes
        The whole file (:func:`read_checkpoint_bytes`).
    path : str or Path
        Where the bytes came from, for messages.
    device : str or torch.device
        Where the tensors go.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``harpnet_version``, ``config`` (dict), ``model`` (state
        dict), ``optimizer`` (if saved) and the extra metadata.

    Raises
    ------
    InputDataError
        If the bytes are empty, not a torch file, corrupt or truncated, not a HARPNET checkpoint,
        from a newer format, or hold pickled code.
    """
    path = Path(path)
    if not data:
        raise InputDataError(path, "empty file, not a HARPNET checkpoint")
    if data[:4] != ZIP_MAGIC:
        raise InputDataError(path, "not a PyTorch checkpoint (not a torch.save zip file)")
    try:
        payload = torch_load_bytes(data, device)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or "Unsupported" in str(exc):
            what = f" ({found.group(1)})" if found else ""
            raise InputDataError(path, f"refusing to load code from a checkpoint{what}") from None
        raise InputDataError(path, f"corrupt checkpoint: {first_line(exc)}") from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as exc:
        raise InputDataError(path, f"corrupt or truncated checkpoint: {first_line(exc)}") from None
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


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint's payload (one ``open``, ``weights_only`` loading from memory).

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    device : str or torch.device
        Where the tensors go.

    Returns
    -------
    dict
        As :func:`checkpoint_payload`.

    Raises
    ------
    InputDataError
        If the file is missing, not a torch file, corrupt or truncated, not a HARPNET checkpoint,
        from a newer format, or holds pickled code.
    """
    return checkpoint_payload(read_checkpoint_bytes(path), path, device)


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
