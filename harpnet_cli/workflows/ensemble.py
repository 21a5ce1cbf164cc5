"""``harpnet ensemble``: build HARPNET-E (members) or a weight soup from a run's epoch checkpoints.

Candidates are ranked by their test loss (checkpoint metadata, else ``history.jsonl``). Selection:

* ``all``: every checkpoint; ``best-N``: the N with the lowest test loss;
* ``greedy`` (Caruana-style selection): score every checkpoint alone on the store's TEST split
  (at most ``max_samples`` evenly spaced samples), start from the one with the lowest MAE, then
  add the others in order of their own MAE, each only if the MAE of the ensemble mean
  (``members``) or of the averaged model (``soup``) improves. Starting from the best single
  member on the selection metric means the selection is never worse than that member there.

Note: the test split also gave the test losses, so the selection's scores are optimistic; judge
the result with ``harpnet evaluate --split validation``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli.errors import InputDataError
from harpnet_cli.workflows.evaluate import _epoch_files, chunks, input_columns, predict, spaced_subset
from harpnet_cli.workflows.reporting import NullReporter, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harpnet_cli.config import EnsembleConfig
    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.io.store import TrainingStore


@dataclass
class Candidate:
    """One epoch checkpoint."""

    epoch: int
    path: Path
    model: Downscaler
    config: dict[str, Any]
    test_loss: float | None
    mae: float | None = None


@dataclass
class EnsembleResult:
    """What ``harpnet ensemble`` built."""

    output: Path
    mode: str
    epochs: list[int]
    ensemble_mae: float
    member_mae: dict[int, float]
    selection: dict[str, Any]
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)


def _history_losses(run_dir: Path) -> dict[int, float]:
    """Epoch → test loss from ``history.jsonl`` (empty when missing)."""
    out: dict[int, float] = {}
    path = run_dir / "history.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("test_loss") is not None:
                out[int(rec["epoch"])] = float(rec["test_loss"])
    return out


def load_candidates(run_dir: Path, device: torch.device) -> list[Candidate]:
    """Every epoch checkpoint of a run, ranked by test loss (then epoch).

    Raises
    ------
    InputDataError
        If the run has no checkpoints.
    """
    from harpnet_cli.io.checkpoints import load_checkpoint

    files = _epoch_files(run_dir)
    if not files:
        raise InputDataError(run_dir, "no checkpoints/epoch_NNN.pt (not a training run)")
    history = _history_losses(run_dir)
    out = []
    for epoch, path in files:
        model, meta = load_checkpoint(path, device)
        loss = meta.get("test_loss", history.get(epoch))
        out.append(Candidate(epoch, path, model, meta["config"], None if loss is None else float(loss)))
    return sorted(out, key=lambda c: (math.inf if c.test_loss is None else c.test_loss, c.epoch))


class _Split:
    """The scored TEST samples: truth held in memory, inputs re-read per pass in sorted chunks."""

    def __init__(self, store: TrainingStore, max_samples: int | None, batch_size: int) -> None:
        self.store = store
        self.idx = spaced_subset(store.indices("test"), max_samples)
        if not len(self.idx):
            raise InputDataError(store.path, "the store's test split is empty; cannot score the selection")
        self.batch_size = batch_size
        self.truth = np.concatenate([store.read(r)["fine"][:, 0] for r in chunks(self.idx, batch_size)])

    def predict(self, model: Downscaler, device: torch.device) -> np.ndarray:
        """``(n, 64, 64)`` predictions of one model."""
        cfg = model.config
        cols = input_columns(cfg.coarse_inputs, self.store.state_names, self.store.path)
        return np.concatenate([predict(model, self.store.read(r), cols, bool(cfg.static_inputs), device)
                               for r in chunks(self.idx, self.batch_size)])

    def mae(self, pred: np.ndarray) -> float:
        """Mean absolute error over finite pairs."""
        ok = np.isfinite(pred) & np.isfinite(self.truth)
        return float(np.abs(pred[ok] - self.truth[ok]).mean())


def soup_model(members: list[Candidate]) -> Downscaler:
    """A model whose weights average those of ``members`` (see :func:`average_state_dicts`)."""
    from harpnet_cli.core.model.ensemble import average_state_dicts
    from harpnet_cli.core.model.wrapper import Downscaler

    model = Downscaler.from_config(members[0].config)
    model.load_state_dict(average_state_dicts([m.model.state_dict() for m in members]))
    return model.to(next(members[0].model.parameters()).device).eval()


def run_ensemble(cfg: EnsembleConfig, reporter: Reporter | None = None) -> EnsembleResult:  # noqa: C901
    """Select checkpoints of a run and write the ensemble (or soup) file.

    Parameters
    ----------
    cfg : EnsembleConfig
    reporter : Reporter, optional

    Returns
    -------
    EnsembleResult
    """
    from harpnet_cli.devices import select_device
    from harpnet_cli.io.atomic import check_writable
    from harpnet_cli.io.checkpoints import save_checkpoint
    from harpnet_cli.io.ensembles import save_ensemble
    from harpnet_cli.io.store import TrainingStore

    rep = reporter or NullReporter()
    t0 = time.perf_counter()
    check_writable(cfg.output, cfg.overwrite)
    device = select_device(cfg.device)
    ranked = load_candidates(cfg.run_dir, device)
    split = _Split(TrainingStore.open(cfg.data), cfg.max_samples, cfg.batch_size)
    rep.info(f"{len(ranked)} checkpoint(s) ranked by test loss: " + ", ".join(
        f"e{c.epoch}" + ("" if c.test_loss is None else f" {c.test_loss:.4g}") for c in ranked))

    preds: dict[int, np.ndarray] = {}

    def member_pred(c: Candidate) -> np.ndarray:
        if c.epoch not in preds:
            preds[c.epoch] = split.predict(c.model, device)
            c.mae = split.mae(preds[c.epoch])
        return preds[c.epoch]

    def score(chosen: list[Candidate]) -> float:
        if cfg.mode == "soup":
            return split.mae(split.predict(soup_model(chosen), device)) if len(chosen) > 1 else _mae1(chosen[0])
        return split.mae(np.mean([member_pred(c) for c in chosen], axis=0))

    def _mae1(c: Candidate) -> float:
        member_pred(c)
        assert c.mae is not None
        return c.mae

    steps: list[dict[str, Any]] = []
    greedy = cfg.select == "greedy"
    with rep.progress("scoring checkpoints", 2 * len(ranked) if greedy else len(ranked)) as advance:
        if greedy:
            for c in ranked:  # each checkpoint alone; keep only its MAE
                _mae1(c)
                preds.pop(c.epoch, None)
                advance(1)
            order = sorted(ranked, key=lambda c: (c.mae, c.epoch))
            chosen = [order[0]]
            best = score(chosen)
            steps.append({"epoch": order[0].epoch, "mae": best, "accepted": True})
            advance(1)
            for c in order[1:]:
                trial = score([*chosen, c])
                ok = trial < best
                steps.append({"epoch": c.epoch, "mae": trial, "accepted": ok})
                if ok:
                    chosen, best = [*chosen, c], trial
                if cfg.mode == "members":  # free up predictions no longer needed
                    for e in [e for e in preds if e not in {m.epoch for m in chosen}]:
                        preds.pop(e)
                advance(1)
        else:
            n = len(ranked) if cfg.select == "all" else int(cfg.select.split("-", 1)[1])
            chosen = ranked[:n]
            best = score(chosen)
            advance(len(ranked))
        for c in chosen:  # every selected member's own MAE, for the record
            if c.mae is None:
                _mae1(c)
            preds.pop(c.epoch, None)

    member_mae = {c.epoch: float(c.mae) for c in ranked if c.mae is not None}
    selection = {
        "method": cfg.select, "mode": cfg.mode, "ranked_by": "test_mae" if greedy else "test_loss", "split": "test",
        "n_samples": len(split.idx), "epochs": [c.epoch for c in chosen], "ensemble_mae": best,
        "member_mae": {str(k): v for k, v in member_mae.items()}, "steps": steps,
        "run_dir": str(cfg.run_dir), "store": str(cfg.data),
    }
    if cfg.mode == "members":
        save_ensemble(cfg.output, [{"epoch": c.epoch, "config": c.config, "model": c.model.state_dict(),
                                    "test_loss": c.test_loss} for c in chosen], selection, mode="members")
    else:
        save_checkpoint(cfg.output, soup_model(chosen).cpu(), soup_epochs=[c.epoch for c in chosen],
                        selection=selection)
    return EnsembleResult(cfg.output, cfg.mode, [c.epoch for c in chosen], best, member_mae, selection,
                          time.perf_counter() - t0, steps)
