"""Ensembles of :class:`~harpnet_cli.core.model.wrapper.Downscaler` members and weight soups.

HARPNET-E runs several checkpoints of one training run (members) on the same batch; a "soup"
averages their weights into one model (Wortsman et al. 2022, *Model soups*).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from harpnet_cli.core.model.wrapper import Downscaler


class EnsembleDownscaler(nn.Module):
    """Run ``M`` downscalers on the same batch.

    Parameters
    ----------
    members : sequence of Downscaler
        At least one; all must take the same coarse and static inputs.

    Raises
    ------
    ValueError
        If there are no members or their inputs differ.
    """

    def __init__(self, members: Sequence[Downscaler]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for m in members[1:]:
            if (m.config.coarse_inputs, m.config.static_inputs) != (first.coarse_inputs, first.static_inputs):
                raise ValueError("ensemble members must share coarse_inputs and static_inputs")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> object:
        """The first member's config (inputs and tile geometry are shared by all)."""
        return self.members[0].config

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, coarse: Tensor, static: Tensor | None) -> Tensor:
        """Every member's prediction.

        Parameters
        ----------
        coarse : Tensor, shape (B, Cc, 18, 18)
        static : Tensor or None, shape (B, Cs, 64, 64)

        Returns
        -------
        Tensor, shape (M, B, 1, 64, 64)
            Member ``i`` at index ``i``, mm per step.
        """
        return torch.stack([m(coarse, static) for m in self.members])


def average_state_dicts(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Uniform average of state dicts with the same keys and shapes (a model soup).

    Floating tensors are averaged in float64 and cast back to their dtype; integer tensors
    (BatchNorm ``num_batches_tracked``) take the maximum.

    Parameters
    ----------
    states : sequence of mapping
        At least one state dict.

    Returns
    -------
    dict
        The averaged state dict (new tensors on the CPU).

    Raises
    ------
    ValueError
        If there are no state dicts or their keys or shapes differ.
    """
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[0])
    out: dict[str, Tensor] = {}
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("state dicts have different keys")
    for k in keys:
        values = [s[k].detach().cpu() for s in states]
        if any(v.shape != values[0].shape for v in values):
            raise ValueError(f"state dicts disagree on the shape of {k}")
        if values[0].is_floating_point():
            out[k] = torch.stack([v.double() for v in values]).mean(0).to(values[0].dtype).contiguous()
        else:
            out[k] = torch.stack(values).amax(0).contiguous()
    return out
