"""Train/test/validation splits by time stamp, as the seed made them.

* A random ``test_fraction`` of the time stamps goes to the test split, drawn from a generator
  seeded by ``(seed, time)``: every tile of one time stamp lands in the same split, and the draw
  for a time stamp does not depend on which other times exist (so a resumed or extended corpus
  keeps its splits).
* Everything from ``validation_start`` on is the validation split (default: the last water year,
  1 Oct – 30 Sep, in the data, when the data span more than one water year).

The codes and their names (:data:`~harpnet_cli.splits.TRAIN`, …) are in :mod:`harpnet_cli.splits`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from harpnet_cli.splits import TEST, TRAIN, VAL


def water_year_start(t: datetime) -> datetime:
    """1 October 00Z opening the water year that contains ``t`` (the window ending at 1 Oct
    00Z belongs to the previous one)."""
    year = t.year if t > datetime(t.year, 10, 1) else t.year - 1
    return datetime(year, 10, 1)


def default_validation_start(first: datetime, last: datetime) -> datetime | None:
    """Start of the last water year in ``[first, last]``, or None when the data do not reach
    past a single water year (then holding the last one out would leave nothing to train on)."""
    start = water_year_start(last)
    return start if first < start else None


def assign_split(time: datetime, *, seed: int, test_fraction: float, validation_start: datetime | None) -> int:
    """The split of every sample at ``time``.

    Parameters
    ----------
    time : datetime
        End of the sample's accumulation window (naive UTC).
    seed : int
        Seed of the random test draw.
    test_fraction : float
        Probability that a time stamp outside the validation period is a test time stamp.
    validation_start : datetime or None
        Times after this are validation; None for no validation split.

    Returns
    -------
    int
        :data:`TRAIN`, :data:`TEST` or :data:`VAL`.
    """
    if validation_start is not None and time > validation_start:
        return VAL
    stamp = int((time - datetime(1970, 1, 1)).total_seconds())
    draw = np.random.default_rng([seed & 0xFFFFFFFF, stamp & 0xFFFFFFFFFFFF, 0x5B117]).random()
    return TEST if draw < test_fraction else TRAIN
