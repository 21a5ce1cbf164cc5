"""``harpnet ensemble``: build HARPNET-E (members) or a weight soup from training checkpoints.

Candidates come from one or more training runs (``RUN_DIR/checkpoints/epoch_NNN.pt``: every
epoch, or with ``epochs="last"`` only the last one of each run) and from checkpoint files given on
their own. A candidate is identified by its run and epoch, so several runs (different seeds,
possibly fine-tuned from one pre-trained checkpoint) make a **seed ensemble**; epoch members of
one run tend to be under-dispersive. Candidates are labelled ``eN`` when they all come from one
run, else ``RUN@eN`` (a checkpoint file without an epoch is labelled by its path).

Candidates are ranked by their test loss (checkpoint metadata, else the run's ``history.jsonl``;
each run's own test split, so runs trained on different stores are not comparable). Selection:

* ``all``: every candidate; ``best-N``: the N with the lowest test loss;
* ``greedy`` (Caruana-style selection): score every candidate alone on the store's chosen split
  (``test`` by default; at most ``max_samples`` evenly spaced samples), start from the one with
  the lowest MAE, then add the others in order of their own MAE, each only if the MAE of the
  ensemble mean (``members``) or of the averaged model (``soup``) improves. Starting from the
  best single member on the selection metric means the selection is never worse than that
  member there.

With ``all`` and an empty split nothing is scored (the scores are recorded as null): a seed
ensemble of last epochs needs no selection data. A soup needs one architecture: every candidate's
model config must match, apart from ``grid`` (the training domain).

Note: the test split also gave the test losses, so scores on it are optimistic; judge the result
with ``harpnet evaluate --split validation`` (or select with ``split="validation"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.workflows.reporting import NullReporter, Reporter
from harpnet_cli.workflows.scoring import WindowInputs, chunks, input_columns, predict, spaced_subset

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harpnet_cli.config import EnsembleConfig
    from harpnet_cli.core.model.wrapper import Downscaler
    from harpnet_cli.io.store import TrainingStore

#: Config keys that may differ between the members of a soup (the training domain only).
SOUP_IGNORED_KEYS = ("grid",)
#: Config keys every member of an ensemble (``members`` mode) must share: inputs and tile geometry.
MEMBER_SHARED_KEYS = ("coarse_inputs", "static_inputs", "tile", "ratio", "buffer")


@dataclass
class Candidate:
    """One checkpoint: an epoch of a training run, or a checkpoint file given on its own."""

    run: str
    """The run folder as given (for a checkpoint file given on its own: the file)."""
    epoch: int | None
    """Training epoch (None when a checkpoint file does not say)."""
    path: Path
    model: Downscaler
    config: dict[str, Any]
    test_loss: float | None
    mae: float | None = None
    label: str = ""
    """``eN`` (one run), ``RUN@eN`` (several) or the file path (no epoch); see :func:`label_candidates`."""

    @property
    def key(self) -> tuple[str, int | None]:
        """``(run, epoch)``: what identifies a candidate across runs."""
        return (self.run, self.epoch)

    def record(self) -> dict[str, Any]:
        """Plain ``{"run", "epoch", "label", "test_loss", "mae"}`` for the selection metadata."""
        return {"run": self.run, "epoch": self.epoch, "label": self.label, "test_loss": self.test_loss,
                "mae": self.mae}


@dataclass
class EnsembleResult:
    """What ``harpnet ensemble`` built."""

    output: Path
    mode: str
    epochs: list[int | None]
    """Epoch of each chosen member, in order (repeats across runs; see :attr:`members`)."""
    ensemble_mae: float | None
    """MAE of the ensemble mean or the soup on :attr:`split`; None when not scored."""
    member_mae: dict[str, float]
    """Label → MAE of every candidate scored alone."""
    selection: dict[str, Any]
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    """``{"run", "epoch", "label", "test_loss", "mae"}`` of each chosen member, in order."""
    split: str = "test"

    def summary(self) -> str:
        """One line: output, mode, the members with their MAEs, the ensemble MAE and the time."""
        members = ", ".join(m["label"] + ("" if m["mae"] is None else f" {m['mae']:.4g}") for m in self.members)
        score = (f"{self.split} MAE {self.ensemble_mae:.4g}" if self.ensemble_mae is not None
                 else f"not scored: empty {self.split} split")
        return (f"{self.output}: {self.mode} of {len(self.members)} checkpoint(s), {score} "
                f"(members: {members}), {self.seconds:.1f} s")


def _file_epoch(path: Path, meta: dict[str, Any]) -> int | None:
    """Epoch of a checkpoint file: its metadata, else an ``epoch_NNN`` name, else None."""
    epoch = meta.get("epoch")
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        return epoch
    head, _, tail = path.stem.partition("_")
    return int(tail) if head == "epoch" and tail.isdigit() else None


def _sources(runs: Path | Sequence[Path], epochs: str) -> list[tuple[str, int | None, Path, dict[int, float]]]:
    """``(run, epoch or None, checkpoint, history losses)`` of every candidate, duplicates dropped.

    Raises
    ------
    InputDataError
        If a path is missing or a folder has no checkpoints.
    """
    from harpnet_cli.io.runs import epoch_checkpoints, history_losses

    out: list[tuple[str, int | None, Path, dict[int, float]]] = []
    seen: set[Path] = set()
    for src in [runs] if isinstance(runs, Path) else runs:
        src = Path(src)
        if src.is_dir():
            files = epoch_checkpoints(src)
            if not files:
                raise InputDataError(src, "no checkpoints/epoch_NNN.pt (not a training run)")
            history = history_losses(src)
            found: list[tuple[str, int | None, Path, dict[int, float]]] = [
                (str(src), e, p, history) for e, p in (files[-1:] if epochs == "last" else files)]
        elif src.is_file():
            run_dir = src.parent.parent if src.parent.name == "checkpoints" else None
            found = [(str(src), None, src, {} if run_dir is None else history_losses(run_dir))]
        else:
            raise InputDataError(src, "no such run folder or checkpoint file")
        for item in found:
            if item[2].resolve() not in seen:
                seen.add(item[2].resolve())
                out.append(item)
    return out


def load_candidates(runs: Path | Sequence[Path], device: torch.device, epochs: str = "all") -> list[Candidate]:
    """The candidate checkpoints of one or more runs, ranked by test loss (then as given, by epoch).

    Parameters
    ----------
    runs : Path or sequence of Path
        Training run folders and/or checkpoint files.
    device : torch.device
    epochs : {"all", "last"}
        Every epoch checkpoint of each run folder, or only its last.

    Returns
    -------
    list of Candidate
        Labelled (see :func:`label_candidates`); a checkpoint reached twice appears once.

    Raises
    ------
    InputDataError
        If a path is missing, a folder has no checkpoints or a checkpoint cannot be loaded.
    """
    from harpnet_cli.workflows.models import load_model

    out = []
    for order, (run, epoch, path, history) in enumerate(_sources(runs, epochs)):
        model, meta = load_model(path, device)
        if epoch is None:
            epoch = _file_epoch(path, meta)
        loss = meta.get("test_loss", None if epoch is None else history.get(epoch))
        out.append((order, Candidate(run, epoch, path, model, meta["config"],
                                     None if loss is None else float(loss))))
    ranked = [c for _, c in sorted(out, key=lambda oc: (math.inf if oc[1].test_loss is None else oc[1].test_loss,
                                                        oc[0]))]
    label_candidates(ranked)
    return ranked


def label_candidates(candidates: Sequence[Candidate]) -> None:
    """Set each :attr:`Candidate.label`: ``eN`` if all come from one run, else ``RUN@eN``.

    A candidate without an epoch is labelled by its run (its file path).

    Parameters
    ----------
    candidates : sequence of Candidate
        Labelled in place.
    """
    several = len({c.run for c in candidates}) > 1
    for c in candidates:
        if c.epoch is None:
            c.label = c.run
        else:
            c.label = f"{c.run}@e{c.epoch}" if several else f"e{c.epoch}"


def _differing_keys(a: dict[str, Any], b: dict[str, Any], keys: Sequence[str] | None = None,
                    ignore: Sequence[str] = ()) -> list[str]:
    """Config keys (``keys``, else all but ``ignore``) whose values differ between ``a`` and ``b``."""
    names = keys if keys is not None else sorted((set(a) | set(b)) - set(ignore))
    return [k for k in names if a.get(k) != b.get(k)]


def check_compatible(candidates: Sequence[Candidate], mode: str) -> None:
    """Refuse candidates that cannot be combined in ``mode``.

    ``soup`` averages weights, so every model config must match apart from
    :data:`SOUP_IGNORED_KEYS`; ``members`` run side by side on the same tiles, so they must share
    :data:`MEMBER_SHARED_KEYS`.

    Raises
    ------
    UsageError
        Naming the first candidate that differs from the first one and the differing keys.
    """
    first = candidates[0]
    for c in candidates[1:]:
        if mode == "soup":
            diff = _differing_keys(first.config, c.config, ignore=SOUP_IGNORED_KEYS)
            if diff:
                raise UsageError(f"--mode soup needs one architecture, but {c.label} differs from {first.label} in "
                                 f"{', '.join(diff)}; use --mode members")
        else:
            diff = _differing_keys(first.config, c.config, keys=MEMBER_SHARED_KEYS)
            if diff:
                raise UsageError(f"ensemble members must share their inputs and tile geometry, but {c.label} "
                                 f"differs from {first.label} in {', '.join(diff)}")


class _Split:
    """The scored samples of one split: truth held in memory, inputs re-read per pass in sorted chunks."""

    def __init__(self, store: TrainingStore, split: str, max_samples: int | None, batch_size: int) -> None:
        self.store = store
        self.name = split
        self.idx = spaced_subset(store.indices(split), max_samples)
        if not len(self.idx):
            raise InputDataError(store.path, f"the store's {split} split is empty; cannot score the selection "
                                             "(--select all needs no scores)")
        self.batch_size = batch_size
        self.truth = np.concatenate([store.read(r)["fine"][:, 0] for r in chunks(self.idx, batch_size)])

    def predict(self, model: Downscaler, device: torch.device) -> np.ndarray:
        """``(n, 64, 64)`` predictions of one model."""
        cfg = model.config
        cols = input_columns(cfg.coarse_inputs, self.store.state_names, self.store.path)
        windows = WindowInputs.for_store(cfg, self.store.state_names)
        return np.concatenate([predict(model, self.store.read(r), cols, bool(cfg.static_inputs), device,
                                       windows=windows) for r in chunks(self.idx, self.batch_size)])

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


def _select(cfg: EnsembleConfig, ranked: list[Candidate], split: _Split | None, device: torch.device,
            rep: Reporter) -> tuple[list[Candidate], float | None, list[dict[str, Any]]]:
    """Choose the members and score them on ``split`` (nothing is scored when it is None).

    Returns
    -------
    chosen : list of Candidate
        In the order they were chosen; ``mae`` is set on every scored candidate.
    best : float or None
        MAE of the chosen ensemble mean (or soup) on the split.
    steps : list of dict
        The greedy trials ``{"run", "epoch", "label", "mae", "accepted"}`` (empty otherwise).
    """
    n = len(ranked) if cfg.select in ("all", "greedy") else int(cfg.select.split("-", 1)[1])
    if split is None:  # only with --select all and an empty split
        return ranked[:n], None, []
    preds: dict[tuple[str, int | None], np.ndarray] = {}

    def member_pred(c: Candidate) -> np.ndarray:
        if c.key not in preds:
            preds[c.key] = split.predict(c.model, device)
            c.mae = split.mae(preds[c.key])
        return preds[c.key]

    def mae1(c: Candidate) -> float:
        member_pred(c)
        assert c.mae is not None
        return c.mae

    def score(chosen: list[Candidate]) -> float:
        if cfg.mode == "soup":
            return split.mae(split.predict(soup_model(chosen), device)) if len(chosen) > 1 else mae1(chosen[0])
        return split.mae(np.mean([member_pred(c) for c in chosen], axis=0))

    def step(c: Candidate, mae: float, accepted: bool) -> dict[str, Any]:
        return {"run": c.run, "epoch": c.epoch, "label": c.label, "mae": mae, "accepted": accepted}

    steps: list[dict[str, Any]] = []
    greedy = cfg.select == "greedy"
    with rep.progress(f"scoring checkpoints on {split.name}", 2 * len(ranked) if greedy else len(ranked)) as advance:
        if greedy:
            for c in ranked:  # each checkpoint alone; keep only its MAE
                mae1(c)
                preds.pop(c.key, None)
                advance(1)
            order = sorted(ranked, key=lambda c: c.mae if c.mae is not None else math.inf)  # stable: ties by rank
            chosen = [order[0]]
            best = score(chosen)
            steps.append(step(order[0], best, True))
            advance(1)
            for c in order[1:]:
                trial = score([*chosen, c])
                ok = trial < best
                steps.append(step(c, trial, ok))
                if ok:
                    chosen, best = [*chosen, c], trial
                if cfg.mode == "members":  # free up predictions no longer needed
                    keep = {m.key for m in chosen}
                    for k in [k for k in preds if k not in keep]:
                        preds.pop(k)
                advance(1)
        else:
            chosen = ranked[:n]
            best = score(chosen)
            advance(len(ranked))
        for c in chosen:  # every selected member's own MAE, for the record
            if c.mae is None:
                mae1(c)
            preds.pop(c.key, None)
    return chosen, best, steps


def run_ensemble(cfg: EnsembleConfig, reporter: Reporter | None = None) -> EnsembleResult:
    """Select checkpoints of one or more runs and write the ensemble (or soup) file.

    Parameters
    ----------
    cfg : EnsembleConfig
    reporter : Reporter, optional

    Returns
    -------
    EnsembleResult

    Raises
    ------
    InputDataError
        If a run or checkpoint cannot be read, or the split is empty (unless ``select`` is ``all``).
    UsageError
        If the candidates cannot be combined in ``cfg.mode`` (see :func:`check_compatible`).
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
    ranked = load_candidates(cfg.runs, device, cfg.epochs)
    check_compatible(ranked, cfg.mode)
    store = TrainingStore.open(cfg.data)
    unscored = cfg.select == "all" and not len(store.indices(cfg.split))
    split = None if unscored else _Split(store, cfg.split, cfg.max_samples, cfg.batch_size)
    rep.info(f"{len(ranked)} checkpoint(s) ranked by test loss: " + ", ".join(
        c.label + ("" if c.test_loss is None else f" {c.test_loss:.4g}") for c in ranked))
    if unscored:
        rep.warning(f"the store's {cfg.split} split is empty: the ensemble is not scored")

    chosen, best, steps = _select(cfg, ranked, split, device, rep)
    member_mae = {c.label: float(c.mae) for c in ranked if c.mae is not None}
    members = [c.record() for c in chosen]
    selection = {
        "method": cfg.select, "mode": cfg.mode,
        "ranked_by": f"{cfg.split}_mae" if cfg.select == "greedy" else "test_loss", "split": cfg.split,
        "n_samples": 0 if split is None else len(split.idx), "candidate_epochs": cfg.epochs,
        "epochs": [c.epoch for c in chosen], "members": members, "ensemble_mae": best,
        "member_mae": member_mae, "steps": steps,
        "runs": [str(r) for r in cfg.runs], "run_dir": str(cfg.runs[0]) if len(cfg.runs) == 1 else None,
        "store": str(cfg.data),
    }
    if cfg.mode == "members":
        save_ensemble(cfg.output, [{"epoch": c.epoch or 0, "config": c.config, "model": c.model.state_dict(),
                                    "test_loss": c.test_loss} for c in chosen], selection, mode="members")
    else:
        save_checkpoint(cfg.output, soup_model(chosen).cpu(), soup_epochs=[c.epoch for c in chosen],
                        soup_members=[{"run": c.run, "epoch": c.epoch} for c in chosen], selection=selection)
    return EnsembleResult(cfg.output, cfg.mode, [c.epoch for c in chosen], best, member_mae, selection,
                          time.perf_counter() - t0, steps, members, cfg.split)
