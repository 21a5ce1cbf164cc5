"""Interpolate the weights of a model and of its fine-tuned descendant (WiSE-FT).

Usage (step 2 of ``tools/train_default.sh``)::

    python tools/wise_ft.py runs/default/base_3h.pt runs/default/ft/checkpoints/epoch_005.pt \\
        --alpha 0.5 -o runs/default/det.pt

Fine-tuning on a new task (here: windows of 1 to 24 hours) can cost skill on the old one (3-hour
windows). Averaging the two sets of weights, ``(1 - alpha) * start + alpha * fine_tuned``, often
keeps most of both (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). The fine-tuned
model may take inputs the start did not (the window length): the start is widened first as ``train
--init`` widens it (:func:`harpnet_cli.core.model.wrapper.widen_inputs`: zero weights for the new
inputs), so ``alpha = 0`` is exactly the start and ``alpha = 1`` the fine-tuned model. BatchNorm
statistics are interpolated like the weights. The output is a plain checkpoint of the fine-tuned
model's config (no optimizer state), with ``wise_ft`` recording both sources and ``alpha``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np


def interpolate(start: Path, fine_tuned: Path, alpha: float) -> dict[str, Any]:
    """The checkpoint payload of the interpolated model.

    Raises
    ------
    SystemExit
        If ``alpha`` is outside 0…1, or the fine-tuned model is not the start's architecture with
        possibly more inputs.
    """
    from harpnet_cli.core.model.wrapper import widen_inputs
    from harpnet_cli.io.checkpoints import read_checkpoint
    from harpnet_cli.workflows.models import load_model

    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha must be in 0...1, got {alpha}")
    a, _ = load_model(start)
    b, _ = load_model(fine_tuned)
    old, new = a.config.input_names, b.config.input_names
    if any(name not in new for name in old):
        raise SystemExit(f"{fine_tuned} does not take every input of {start} ({old} -> {new})")
    target = b.state_dict()
    wide = widen_inputs(a.state_dict(), old, new, target)
    if set(wide) != set(target) or any(wide[k].shape != v.shape for k, v in target.items()):
        raise SystemExit(f"{start} and {fine_tuned} are not one architecture")
    payload = read_checkpoint(fine_tuned)
    payload["model"] = {k: ((1.0 - alpha) * wide[k].to(v.dtype) + alpha * v)
                        if v.is_floating_point() and k not in ("coarse_mean", "coarse_std") else v
                        for k, v in target.items()}
    payload.pop("optimizer", None)
    payload.pop("rng", None)
    payload["wise_ft"] = {"start": str(start), "fine_tuned": str(fine_tuned), "alpha": alpha}
    return payload


def main() -> None:
    """Command-line entry point."""
    from harpnet_cli.io.checkpoints import write_payload

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", type=Path, help="the model fine-tuning started from")
    parser.add_argument("fine_tuned", type=Path, help="the fine-tuned checkpoint")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the fine-tuned model (0...1)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    write_payload(args.output, interpolate(args.start, args.fine_tuned, args.alpha))
    print(f"{args.output}: {1 - args.alpha:g} x {args.start} + {args.alpha:g} x {args.fine_tuned}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
