"""The relative-threshold FSS of ``evaluate``: the exact streamed wet percentile and FSS at it."""

import math

import numpy as np
import pytest

from harpnet_cli.core import metrics as M


def _two_passes(batches, q=0.9, wet=0.1):
    wq = M.WetQuantile(q, wet)
    for b in batches:
        wq.count(b)
    for b in batches:
        wq.collect(b)
    return wq.value()


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.99, 1.0])
def test_wet_quantile_is_numpys_percentile(q):
    rng = np.random.default_rng(7)
    x = rng.gamma(0.3, 3.0, (40, 32, 32)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0.0
    x[3, 5, :] = np.nan
    x[::7] = np.round(x[::7], 1)  # many ties
    wet = x[np.isfinite(x) & (x > 0.1)].astype(np.float64)
    got = _two_passes([x[i : i + 6] for i in range(0, 40, 6)], q)
    assert got == pytest.approx(np.percentile(wet, 100 * q), rel=1e-12)


def test_wet_quantile_small_and_empty():
    assert math.isnan(_two_passes([np.zeros((2, 4, 4)), np.full((1, 4, 4), 0.1)]))  # 0.1 is not wet
    assert _two_passes([np.array([[0.5]])]) == 0.5
    assert _two_passes([np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])]) == pytest.approx(10.0)
    wq = M.WetQuantile(0.9)
    wq.count(np.ones(3))
    with pytest.raises(RuntimeError):
        wq.value()


def test_fss_accumulator_hand_computed():
    # window 1: P_f, P_o are the binary fields, so FSS = 1 − (FA + M) / (2 H + FA + M)
    f = np.array([[[5.0, 0.0, 5.0], [0.0, 5.0, 0.0]]])
    o = np.array([[[5.0, 5.0, 0.0], [0.0, 5.0, 0.0]]])
    acc = M.FssAccumulator(4.0, 1)
    acc.add(f, o)
    h, fa, miss = 2, 1, 1
    assert acc.value() == pytest.approx(1 - (fa + miss) / (2 * h + fa + miss))


def test_fss_accumulator_streams_and_skips_incomplete_samples():
    rng = np.random.default_rng(8)
    f, o = rng.gamma(0.4, 4, (6, 20, 20)), rng.gamma(0.4, 4, (6, 20, 20))
    o[2, 0, 0] = np.nan
    thr = float(np.percentile(o[np.isfinite(o) & (o > 0.1)], 90))
    acc = M.FssAccumulator(thr, 1)
    acc.add(f[:3], o[:3])
    acc.add(f[3:, None], o[3:, None])
    keep = [0, 1, 3, 4, 5]
    assert acc.n_samples == 5
    assert acc.value() == pytest.approx(M.fss(f[keep], o[keep], thr, 1))
    assert math.isnan(M.FssAccumulator(float("nan")).value())
    none = M.FssAccumulator(1e9)
    none.add(f, np.nan_to_num(o))
    assert math.isnan(none.value())


@pytest.mark.filterwarnings("ignore:At least one of the provided spatial dims")
def test_fss_p90_w1_against_scores():
    sc = pytest.importorskip("scores")
    import scores.spatial  # noqa: F401
    import xarray as xr

    rng = np.random.default_rng(9)
    f, o = rng.gamma(0.4, 4, (4, 24, 24)), rng.gamma(0.4, 4, (4, 24, 24))
    thr = _two_passes([o[:2], o[2:]])
    acc = M.FssAccumulator(thr, 1)
    acc.add(f, o)
    dims = ("n", "y", "x")
    ref = sc.spatial.fss_2d(xr.DataArray(f, dims=dims), xr.DataArray(o, dims=dims), event_threshold=thr,
                            window_size=(1, 1), spatial_dims=("y", "x"), zero_padding=False, reduce_dims=["n"],
                            threshold_operator=np.greater_equal)
    assert acc.value() == pytest.approx(float(ref))
