"""Running models on a store's samples, for the workflows that score them (evaluate, ensemble).

Samples are picked evenly spaced over a split (:func:`spaced_subset`), read in sorted chunks
(contiguous store reads, :func:`chunks`), and fed to a model whose coarse inputs after
precipitation are mapped to the store's state columns (:func:`input_columns`, :func:`predict`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harpnet_cli.errors import InputDataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harpnet_cli.core.model.config import ModelConfig
    from harpnet_cli.workflows.batches import NoiseSpec


def spaced_subset(indices: np.ndarray, max_samples: int | None) -> np.ndarray:
    """At most ``max_samples`` of sorted ``indices``, evenly spaced, still sorted."""
    if max_samples is None or len(indices) <= max_samples:
        return indices
    pick = np.unique(np.linspace(0, len(indices) - 1, max_samples).round().astype(np.int64))
    return indices[pick]


def chunks(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive pieces of ``size`` sorted indices (contiguous store reads)."""
    ordered = np.sort(indices)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def input_columns(coarse_inputs: Sequence[str], state_names: Sequence[str], where: Path | str) -> list[int]:
    """State columns feeding the coarse channels after precipitation (e.g. ``u``, ``v``).

    The window length is left out when the store does not record it: such a store holds 3-hour
    windows, and :func:`predict` gives the model that length (:class:`WindowInputs`).

    Raises
    ------
    InputDataError
        If the store lacks one.
    """
    from harpnet_cli.registry import PERIOD_INPUT

    cols = []
    for name in coarse_inputs[1:]:
        if name == PERIOD_INPUT and name not in state_names:
            continue
        if name not in state_names:
            raise InputDataError(where, f"the model needs coarse input {name!r}, the store's state has "
                                        f"{', '.join(state_names) or 'no columns'}")
        cols.append(list(state_names).index(name))
    return cols


def predict(module: torch.nn.Module, sample: dict[str, np.ndarray], columns: Sequence[int],
            static: bool, device: torch.device, noise: NoiseSpec | None = None,
            rows: np.ndarray | None = None, windows: WindowInputs | None = None) -> np.ndarray:
    """Run a model (``(B,1,H,W)`` out) or an ensemble (``(M,B,1,H,W)``) on a store batch.

    A stochastic model gets ``noise`` (its members' noise fields, drawn for each of the store rows
    ``rows`` of the batch) after its static inputs and returns its members like an ensemble.
    With ``windows`` (a store that records each sample's window length) every sample goes in as
    ``downscale`` gives it to the model: as it is when the model knows its length, else as the
    3-hour equivalent, scaled back after (:meth:`~harpnet_cli.core.model.wrapper.ModelConfig.window_input`);
    a period-aware model on a store of 3-hour windows that does not record them is told 3 hours.

    Returns
    -------
    numpy.ndarray
        ``(B, 64, 64)`` or ``(M, B, 64, 64)`` float32, mm per window.
    """
    import torch

    from harpnet_cli.core.model.config import NATIVE_HOURS
    from harpnet_cli.workflows.batches import to_tensors

    coarse, terrain, _ = to_tensors(sample, columns)
    scale = None
    if windows is not None and windows.state_column is None:  # a store of 3-hour windows, a period-aware model
        assert windows.channel is not None
        length = torch.full_like(coarse[:, :1], math.log(NATIVE_HOURS))
        coarse = torch.cat([coarse[:, : windows.channel], length, coarse[:, windows.channel :]], dim=1)
    elif windows is not None:
        hours = np.exp(np.asarray(sample["state"], dtype=np.float64)[:, windows.state_column])
        pairs = [windows.config.window_input(float(h)) for h in hours]
        scale = torch.tensor([p[0] for p in pairs], dtype=torch.float32).view(-1, 1, 1, 1)
        coarse = coarse.clone()  # the tensor shares the sample's memory: the baselines read it after
        coarse[:, :1] *= scale
        if windows.channel is not None:
            coarse[:, windows.channel] = torch.tensor([math.log(p[1]) for p in pairs]).view(-1, 1, 1)
    if noise is not None:
        assert rows is not None, "a stochastic model's noise is drawn per store row"
        terrain = torch.cat([terrain, noise.for_rows(rows, terrain.shape[-2:])], dim=1)
    with torch.inference_mode():
        out = module(coarse.to(device), terrain.to(device) if static else None).float().cpu()
    if scale is not None:
        out = out / scale  # (B, 1, 1, 1) broadcasts over an ensemble's leading member axis too
    return out.numpy()[..., 0, :, :]


@dataclass(frozen=True)
class WindowInputs:
    """How :func:`predict` gives a store's windows of several lengths to a model."""

    config: ModelConfig
    """The model's config (its :attr:`~harpnet_cli.core.model.wrapper.ModelConfig.periods`)."""
    state_column: int | None
    """The store's ``log_period_hours`` column; None for a store of 3-hour windows that does not record it."""
    channel: int | None
    """The model's coarse channel of the window length, if it takes it."""

    @classmethod
    def for_store(cls, config: ModelConfig, state_names: Sequence[str]) -> WindowInputs | None:
        """For a store recording window lengths, or a period-aware model on a store of 3-hour windows;
        None when neither (3-hour windows, a model without the length input)."""
        from harpnet_cli.registry import PERIOD_INPUT

        channel = config.coarse_inputs.index(PERIOD_INPUT) if PERIOD_INPUT in config.coarse_inputs else None
        if PERIOD_INPUT not in state_names:
            return None if channel is None else cls(config, None, channel)
        return cls(config, list(state_names).index(PERIOD_INPUT), channel)
