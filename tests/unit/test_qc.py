"""Quality control of 3-hour amounts: implausible amounts and isolated spikes on synthetic fields."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.core.qc import MAX_3H_MM, qc_mask, spike_mask


def storm(ny: int = 60, nx: int = 80, *, peak: float = 120.0, radius: float = 6.0) -> np.ndarray:
    """A smooth convective core (``peak`` mm, Gaussian of ``radius`` cells) on a 2 mm background."""
    y, x = np.mgrid[0:ny, 0:nx]
    return (2.0 + peak * np.exp(-((y - 30) ** 2 + (x - 40) ** 2) / (2 * radius**2))).astype(np.float32)


def test_a_smooth_heavy_storm_is_not_flagged() -> None:
    bad, counts = qc_mask(storm())
    assert not bad.any()
    assert counts == {"implausible": 0, "spike": 0, "bad": 0, "valid": 60 * 80}


def test_isolated_single_and_paired_cells_are_spikes() -> None:
    field = storm()
    field[5, 5] = 120.0  # one cell on the background
    field[50, 10:12] = 80.0  # a pair
    field[0, 79] = 70.0  # in a corner: fewer neighbours
    bad, counts = qc_mask(field)
    assert set(zip(*np.nonzero(bad), strict=True)) == {(5, 5), (50, 10), (50, 11), (0, 79)}
    assert counts["spike"] == 4 and counts["implausible"] == 0 and counts["bad"] == 4


def test_implausible_amounts_are_flagged_once() -> None:
    field = storm()
    field[30, 40] = 400.0  # inside the storm, so not a spike: implausible only
    field[5, 5] = 3112.0  # the Sierra Nevada artefact: both, counted as implausible
    bad, counts = qc_mask(field)
    assert bad[30, 40] and bad[5, 5] and counts == {"implausible": 2, "spike": 0, "bad": 2, "valid": 60 * 80}
    assert not qc_mask(field, max_3h_mm=500.0)[0][30, 40]


def test_thresholds_below_which_nothing_is_a_spike() -> None:
    field = np.full((20, 20), 8.0, dtype=np.float32)
    field[5, 5] = 45.0  # below spike_min_mm
    field[10, 10] = 60.0  # above it but below 10 × the 8 mm median
    assert not spike_mask(field).any()
    assert spike_mask(field, ratio=5.0)[10, 10]


def test_nan_is_never_flagged_and_an_island_in_nan_is_a_spike() -> None:
    field = np.full((20, 20), np.nan, dtype=np.float32)
    field[10, 10] = 60.0  # a covered cell with no covered neighbour
    field[2, 2:5] = [1.0, 70.0, 1.0]
    bad, counts = qc_mask(field)
    assert set(zip(*np.nonzero(bad), strict=True)) == {(10, 10), (2, 3)}
    assert counts["valid"] == 4 and not bad[np.isnan(field)].any()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\(ny, nx\)"):
        qc_mask(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="odd"):
        qc_mask(np.zeros((4, 4)), spike_size=4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 49.9))
def test_fields_below_the_spike_minimum_and_the_cap_are_never_flagged(seed: int, top: float) -> None:
    rng = np.random.default_rng(seed)
    field = (rng.random((30, 40)) * top).astype(np.float32)
    field[rng.random((30, 40)) < 0.1] = np.nan
    bad, counts = qc_mask(field)
    assert not bad.any() and counts["valid"] == int(np.isfinite(field).sum())
    assert MAX_3H_MM > 50.0
