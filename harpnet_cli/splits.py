"""Codes and names of the train/test/validation splits.

Shared by the training store (``io/store.py`` writes the codes) and the split rule
(``core/splits.py`` assigns them), so it lives in the base layer.
"""

from __future__ import annotations

TRAIN, TEST, VAL = 0, 1, 2
#: Name of each split code (the store's ``split`` array holds the codes).
SPLIT_NAMES: dict[int, str] = {TRAIN: "train", TEST: "test", VAL: "validation"}
