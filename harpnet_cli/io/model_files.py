"""A model file (a checkpoint or a HARPNET-E ensemble) read once: kind, SHA-256 and payload from one read.

``harpnet downscale`` and ``harpnet info`` need to know whether ``--model`` is an ensemble, its
SHA-256 and its weights. :class:`ModelFile` opens the file once, when first asked, and answers all
three from those bytes; a file that cannot be read is reported with the same one-line errors as
:func:`~harpnet_cli.io.checkpoints.read_checkpoint` (and is "not an ensemble" until then, as
:func:`~harpnet_cli.io.ensembles.is_ensemble` says of it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harpnet_cli.errors import InputDataError
from harpnet_cli.io.checkpoints import checkpoint_payload, peek_payload, read_checkpoint_bytes
from harpnet_cli.io.ensembles import ensemble_payload, is_ensemble_data

if TYPE_CHECKING:
    import torch


class ModelFile:
    """A checkpoint or ensemble file whose bytes are read at most once, on first use.

    Parameters
    ----------
    path : str or Path
        The file; nothing is read until an attribute needs it.

    Attributes
    ----------
    path : Path
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: bytes | None = None
        self._error: InputDataError | None = None
        self._sha256: str | None = None
        self._ensemble: bool | None = None
        self._payload: dict[str, Any] | None = None
        self._plain: dict[str, Any] | None = None

    def _read(self) -> bytes:
        """The file's bytes (read now if not yet); a failed read is remembered and raised again."""
        if self._data is None:
            if self._error is not None:
                raise self._error
            try:
                data = read_checkpoint_bytes(self.path)
            except InputDataError as exc:
                self._error = exc
                raise
            self._data = data
            self._sha256 = hashlib.sha256(data).hexdigest()
            self._ensemble = is_ensemble_data(data)
        return self._data

    @property
    def is_ensemble(self) -> bool:
        """Whether the file is a HARPNET-E ensemble (False for a checkpoint, or a file that cannot be read)."""
        if self._ensemble is None:
            try:
                self._read()
            except InputDataError:
                return False
        return bool(self._ensemble)

    @property
    def stochastic(self) -> bool:
        """Whether the file is a stochastic model (it draws samples: its config has ``noise_scales``).

        False for an ensemble or a file that cannot be read. Read from the file's plain data without
        torch (:meth:`plain`): a run with nothing to do never imports it.
        """
        if self.is_ensemble:
            return False
        config = self._payload.get("config") if self._payload is not None else self.plain().get("config")
        return isinstance(config, dict) and bool(config.get("noise_scales"))

    def plain(self) -> dict[str, Any]:
        """The payload's plain data read without torch (:func:`~harpnet_cli.io.checkpoints.peek_payload`).

        Configs, epochs and metadata as stored; tensors are opaque placeholders. Empty for a file
        that cannot be read or is not a torch file holding a dict (:meth:`payload` says why).
        """
        if self._plain is None:
            try:
                data = self._read()
            except InputDataError:
                return {}
            self._plain = peek_payload(data) or {}
        return self._plain

    @property
    def sha256(self) -> str:
        """SHA-256 of the file, as 64 hex digits.

        Raises
        ------
        InputDataError
            If the file cannot be read.
        """
        if self._sha256 is None:
            self._read()
        assert self._sha256 is not None
        return self._sha256

    def payload(self, device: str | torch.device = "cpu") -> dict[str, Any]:
        """The checked payload of the checkpoint or ensemble, loaded from the bytes read.

        The bytes are let go afterwards (kind and hash are kept); the payload is kept, so a second
        call returns it as first loaded (on the first call's device: the model builders move it).

        Parameters
        ----------
        device : str or torch.device
            Where the tensors go.

        Returns
        -------
        dict
            A checkpoint's payload (:func:`~harpnet_cli.io.checkpoints.checkpoint_payload`) or an
            ensemble's (:func:`~harpnet_cli.io.ensembles.ensemble_payload`), after :attr:`is_ensemble`.

        Raises
        ------
        InputDataError
            If the file cannot be read or is not a readable checkpoint or ensemble.
        """
        if self._payload is not None:
            return self._payload
        data = self._read()
        self._data = None
        if self._ensemble:
            self._payload = ensemble_payload(data, self.path, device)
        else:
            self._payload = checkpoint_payload(data, self.path, device)
        return self._payload
