"""Write the ONNX graph of model files beside them (``X.pt`` → ``X.onnx``).

``harpnet downscale`` runs a model on ONNX Runtime on the CPU; it looks for the graph beside the
model file first, then in the cache, and exports it (with torch) only when neither has it. A model
shipped with its graph therefore runs without torch from its first run. ``tools/bundle_default.py``
calls this for the bundled models; use it for a model you distribute::

    python tools/export_graph.py runs/mine/checkpoints/epoch_020.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harpnet_cli.workflows.models import write_graph_beside


def main() -> None:
    """Export each model file given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="checkpoints or ensemble files")
    args = parser.parse_args()
    for model in args.models:
        path = write_graph_beside(model)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
