"""Splits by time stamp: deterministic, independent per time, validation by water year."""

from datetime import datetime, timedelta

import numpy as np

from harpnet_cli.core.splits import assign_split, default_validation_start, water_year_start
from harpnet_cli.splits import TEST, TRAIN, VAL


def test_water_year_boundaries():
    assert water_year_start(datetime(2016, 9, 30, 21)) == datetime(2015, 10, 1)
    assert water_year_start(datetime(2016, 10, 1, 0)) == datetime(2015, 10, 1)  # window ending at 00Z
    assert water_year_start(datetime(2016, 10, 1, 3)) == datetime(2016, 10, 1)
    assert water_year_start(datetime(2017, 1, 1)) == datetime(2016, 10, 1)


def test_default_validation_needs_more_than_one_water_year():
    assert default_validation_start(datetime(2016, 9, 20), datetime(2016, 9, 23)) is None
    assert default_validation_start(datetime(2001, 10, 2), datetime(2006, 9, 30)) == datetime(2005, 10, 1)


def test_test_fraction_and_determinism():
    times = [datetime(2002, 1, 1) + timedelta(hours=3 * k) for k in range(4000)]
    splits = np.array([assign_split(t, seed=42, test_fraction=0.2, validation_start=None) for t in times])
    assert 0.18 < (splits == TEST).mean() < 0.22
    again = [assign_split(t, seed=42, test_fraction=0.2, validation_start=None) for t in times[::7]]
    assert list(splits[::7]) == again
    other = np.array([assign_split(t, seed=7, test_fraction=0.2, validation_start=None) for t in times])
    assert (other != splits).any()


def test_validation_period_overrides():
    vs = datetime(2005, 10, 1)
    assert assign_split(datetime(2005, 10, 1, 3), seed=1, test_fraction=0.99, validation_start=vs) == VAL
    assert assign_split(datetime(2005, 10, 1, 0), seed=1, test_fraction=0.0, validation_start=vs) == TRAIN
