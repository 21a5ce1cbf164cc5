"""Verification metrics: hand-computed values, properties, and cross-checks against ``scores``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harpnet_cli.core import metrics as M


# -- hand-computed ------------------------------------------------------------------------------
def test_continuous_by_hand() -> None:
    f = np.array([1.0, 2.0, 3.0, np.nan])
    o = np.array([2.0, 2.0, 5.0, 1.0])
    assert M.mae(f, o) == pytest.approx(1.0)  # |−1|, 0, |−2| → 3/3
    assert M.rmse(f, o) == pytest.approx(math.sqrt(5 / 3))
    assert M.bias(f, o) == pytest.approx(-1.0)
    # r of (1,2,3) with (2,2,5): dev (−1,0,1), (−1,−1,2): cov 3, var 2 and 6
    assert M.pearson_r(f, o) == pytest.approx(3 / math.sqrt(12))
    assert math.isnan(M.pearson_r(np.ones(3), np.arange(3.0)))
    assert math.isnan(M.mae(np.full(2, np.nan), np.ones(2)))


def test_contingency_by_hand() -> None:
    f = np.array([0.0, 1.0, 3.0, 3.0, 0.5, 2.0, np.nan])
    o = np.array([0.0, 2.0, 3.0, 0.0, 2.0, 2.0, 5.0])
    c = M.contingency(f, o, 2.0)  # events >= 2: f = F F T T F T; o = F T T F T T
    assert c == M.Contingency(hits=2, false_alarms=1, misses=2, correct_negatives=1)
    assert M.pod(c) == pytest.approx(0.5)
    assert M.far(c) == pytest.approx(1 / 3)
    assert M.csi(c) == pytest.approx(0.4)
    h_r = 3 * 4 / 6
    assert M.ets(c) == pytest.approx((2 - h_r) / (5 - h_r))
    assert M.frequency_bias(c) == pytest.approx(0.75)
    none = M.Contingency(0, 0, 0, 5)
    for fn in (M.pod, M.far, M.csi, M.ets, M.frequency_bias):
        assert math.isnan(fn(none))
    assert math.isnan(M.ets(M.Contingency(0, 0, 0, 0)))


def test_fss_by_hand() -> None:
    f = np.zeros((1, 3, 3))
    o = np.zeros((1, 3, 3))
    f[0, 0, 0] = 1.0
    o[0, 0, 1] = 1.0
    assert M.fss(f, o, 0.5, 1) == pytest.approx(0.0)  # disjoint at grid scale
    # window 2, valid: positions (0,0) both 1/4; (0,1) f 0, o 1/4; others 0
    assert M.fss(f, o, 0.5, 2) == pytest.approx(1 - (1 / 16) / (2 / 16 + 1 / 16))
    assert M.fss(f, o, 0.5, 3) == pytest.approx(1.0)
    assert math.isnan(M.fss(f * 0, o * 0, 0.5, 3))
    # zero padding, window 3: each field's fractions are 1/9 on the 4 (f) / 6 (o) cells in reach
    num, den = M.fss_components(f, o, 0.5, 3, mode="zero")
    assert den == pytest.approx((4 + 6) / 81)
    assert num == pytest.approx(2 / 81)  # the two cells in reach of only one event
    with pytest.raises(ValueError):
        M.fss(f, o, 0.5, 4)


def test_spectrum_by_hand() -> None:
    h = 16
    y = np.arange(h)[:, None] * np.ones((1, h))
    wave = np.cos(2 * np.pi * 3 * y / h)[None]
    k, p = M.radial_power_spectrum(wave)
    assert k[0] == 0 and k[-1] == h // 2
    # |FFT|² = (h²/2)² at (±3, 0); /(h²) → h²/4 each; annulus k=3 mean over its cells
    _, idx, counts = M.radial_bins(h, h)
    assert p[3] == pytest.approx(2 * h * h / 4 / counts[3])
    assert np.allclose(np.delete(p, 3), 0.0, atol=1e-20)
    k2, r = M.spectral_ratio(2 * wave, wave)
    assert r[3] == pytest.approx(4.0)
    assert np.isnan(M.spectral_ratio(wave, np.zeros_like(wave))[1]).all()


def test_mass_error_by_hand() -> None:
    coarse = np.zeros((1, 18, 18))
    coarse[0, 1:-1, 1:-1] = 2.0
    fine = np.full((1, 64, 64), 2.0)
    assert M.coarse_mass_error(fine, coarse) == 0.0
    fine[0, :4, :4] = 6.0  # one block mean 6 instead of 2: |4| / (256 * 2)
    assert M.coarse_mass_error(fine, coarse) == pytest.approx(4 / 512)
    assert M.block_residual(fine, coarse).shape == (1, 16, 16)


def test_crps_by_hand() -> None:
    members = np.array([[0.0], [2.0]])
    obs = np.array([1.0])
    # E|X−y| = 1; Σ_ij |xi−xj| = 4 → standard 4/(2·4) = 0.5, fair 4/(2·2) = 1
    assert M.crps_ensemble(members, obs)[0] == pytest.approx(0.5)
    assert M.crps_ensemble(members, obs, fair=True)[0] == pytest.approx(0.0)
    one = M.crps_ensemble(np.array([[3.0]]), np.array([1.0]))
    assert one[0] == pytest.approx(2.0)  # a single member: absolute error
    nan = M.crps_ensemble(np.array([[np.nan], [1.0]]), np.array([1.0]))
    assert np.isnan(nan[0])


def test_spread_skill_rank_brier_reliability_by_hand() -> None:
    members = np.array([[0.0, 1.0], [2.0, 3.0]])  # two points, 2 members
    obs = np.array([1.0, 1.0])
    # var(ddof=1) = 2 at both; ensemble means 1, 2 → mse 0.5
    assert M.spread_skill_ratio(members, obs, finite_correction=False) == pytest.approx(2.0)
    assert M.spread_skill_ratio(members, obs) == pytest.approx(2.0 * math.sqrt(1.5))
    ens = np.array([[0.0, 0.0, 1.0, 5.0], [1.0, 0.0, 2.0, 6.0], [2.0, 0.0, 3.0, 7.0]])
    ob = np.array([1.5, 0.0, 9.0, -1.0])
    # ranks: 2; tie with all 3 → 1/4 to 0..3; 3; 0
    hist = M.rank_histogram(ens, ob)
    assert hist == pytest.approx([1.25, 0.25, 1.25, 1.25])
    assert M.brier_score(np.array([0.1, 0.9, 0.5]), np.array([0, 1, 1])) == pytest.approx((0.01 + 0.01 + 0.25) / 3)
    mp, of, n = M.reliability(np.array([0.05, 0.15, 0.12, 1.0]), np.array([0, 1, 0, 1]), bins=10)
    assert n.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert mp[1] == pytest.approx(0.135) and of[1] == pytest.approx(0.5) and of[9] == 1.0
    assert np.isnan(mp[2])


# -- properties ----------------------------------------------------------------------------------
fields = arrays(np.float64, (2, 8, 8), elements=st.floats(0, 30, allow_nan=False))


@settings(max_examples=30, deadline=None)
@given(fields, fields, st.sampled_from(M.DEFAULT_THRESHOLDS), st.sampled_from([1, 3, 5]))
def test_scores_in_range(f: np.ndarray, o: np.ndarray, thr: float, window: int) -> None:
    c = M.contingency(f, o, thr)
    for v in (M.csi(c), M.pod(c), M.far(c)):
        assert math.isnan(v) or 0.0 <= v <= 1.0
    e = M.ets(c)
    assert math.isnan(e) or -1 / 3 - 1e-12 <= e <= 1.0 + 1e-12
    s = M.fss(f, o, thr, window)
    assert math.isnan(s) or -1e-12 <= s <= 1.0 + 1e-12
    assert M.crps_ensemble(np.stack([f, o]), o).min() >= -1e-12


@settings(max_examples=20, deadline=None)
@given(fields)
def test_perfect_forecast(o: np.ndarray) -> None:
    assert M.mae(o, o) == 0.0 and M.rmse(o, o) == 0.0 and M.bias(o, o) == 0.0
    for thr in M.DEFAULT_THRESHOLDS:
        c = M.contingency(o, o, thr)
        if c.hits:
            assert M.csi(c) == 1.0 and M.pod(c) == 1.0 and M.far(c) == 0.0 and M.frequency_bias(c) == 1.0
        s = M.fss(o, o, thr, 3)
        assert math.isnan(s) or s == 1.0
    k, r = M.spectral_ratio(o, o)
    assert np.all(np.isnan(r) | (r == 1.0))
    assert np.all(M.crps_ensemble(o[None], o) == 0.0)


# -- accumulator -------------------------------------------------------------------------------
def test_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    n = 7
    truth = rng.gamma(0.4, 4.0, (n, 64, 64))
    pred = np.clip(truth + rng.normal(0, 1.5, truth.shape), 0, None)
    pred[3, 5, 5] = np.nan  # sample 3 drops out of FSS and spectra only
    coarse = rng.gamma(0.5, 2.0, (n, 18, 18))
    tiles = np.array([0, 2, 2, 5, 0, 2, 1])
    acc = M.ScoreAccumulator("m", windows=(1, 5, 17))
    for sl in (slice(0, 2), slice(2, 3), slice(3, 7)):
        acc.add(pred[sl], truth[sl], coarse[sl], tiles[sl])
    d = json.loads(json.dumps(acc.to_dict(), allow_nan=False))
    assert d["schema"] == M.SCHEMA and d["n_samples"] == n and d["n_values"] == n * 64 * 64 - 1
    c = d["continuous"]
    assert c["mae"] == pytest.approx(M.mae(pred, truth))
    assert c["rmse"] == pytest.approx(M.rmse(pred, truth))
    assert c["bias"] == pytest.approx(M.bias(pred, truth), abs=1e-12)
    assert c["pearson_r"] == pytest.approx(M.pearson_r(pred, truth))
    for row, thr in zip(d["categorical"], M.DEFAULT_THRESHOLDS):
        one = M.contingency(pred, truth, thr)
        assert (row["hits"], row["false_alarms"], row["misses"], row["correct_negatives"]) == tuple(one)
        assert row["csi"] == pytest.approx(M.csi(one))
    keep = np.isfinite(pred).reshape(n, -1).all(axis=1)
    for row in d["fss"]:
        ref = M.fss(pred[keep], truth[keep], row["threshold_mm"], row["window"])
        assert row["fss"] == pytest.approx(ref) and row["n_samples"] == keep.sum()
    k, ratio = M.spectral_ratio(pred[keep], truth[keep])
    assert d["spectrum"]["ratio"] == pytest.approx(ratio.tolist())
    assert d["mass"]["abs_rel_error"] == pytest.approx(M.coarse_mass_error(pred, coarse))
    assert d["per_tile"]["tile"] == [0, 1, 2, 5]
    sel = tiles == 2
    assert d["per_tile"]["mae"][2] == pytest.approx(M.mae(pred[sel], truth[sel]))
    assert d["per_tile"]["mse"][2] == pytest.approx(M.rmse(pred[sel], truth[sel]) ** 2)


def test_accumulator_empty_is_json() -> None:
    d = M.ScoreAccumulator("empty").to_dict()
    json.dumps(d, allow_nan=False)
    assert d["continuous"]["mae"] is None and d["spectrum"] is None and d["per_tile"]["tile"] == []


# -- the evaluation table ------------------------------------------------------------------------
def test_summary_has_one_number_per_column_in_column_order() -> None:
    rng = np.random.default_rng(3)
    truth = rng.gamma(0.5, 4.0, (4, 64, 64))
    acc = M.ScoreAccumulator("x")
    coarse = np.pad(truth.reshape(4, 16, 4, 16, 4).mean(axis=(2, 4)), ((0, 0), (1, 1), (1, 1)))
    acc.add(truth * 1.1, truth, coarse=coarse)
    row = {**acc.to_dict(), "fss_p90_w1": 0.5}
    ref = M.ScoreAccumulator("ref")
    ref.add(truth * 1.2, truth)
    summary = M.summarise(row, {"bilinear": row, "ratio": ref.to_dict()})
    assert list(summary) == [c.key for c in M.SUMMARY_COLUMNS]
    assert len({c.heading for c in M.SUMMARY_COLUMNS}) == len(M.SUMMARY_COLUMNS)
    assert summary["mse_gain_vs_bilinear"] == pytest.approx(0.0) and summary["mse_gain_vs_ratio"] > 0
    assert summary["fss_p90_w1"] == 0.5 and summary["mass_error"] == pytest.approx(0.1, rel=1e-6)
    assert summary["csi_2p54"] is not None and summary["fss_2p54_w9"] is not None
    assert [c.heading for c in M.SUMMARY_COLUMNS if c.signed] == ["MSE vs bilinear", "MSE vs ratio"]


# -- cross-checks against the BoM ``scores`` package ---------------------------------------------
@pytest.fixture(scope="module")
def sc():  # noqa: ANN201
    mod = pytest.importorskip("scores")
    import scores.categorical  # noqa: F401
    import scores.continuous  # noqa: F401
    import scores.probability  # noqa: F401
    import scores.spatial  # noqa: F401

    return mod


def _da(a: np.ndarray, dims: tuple[str, ...]):  # noqa: ANN202
    import xarray as xr

    return xr.DataArray(a, dims=dims)


def test_against_scores_continuous(sc) -> None:  # noqa: ANN001
    rng = np.random.default_rng(2)
    f, o = rng.gamma(0.5, 3, (3, 9, 9)), rng.gamma(0.5, 3, (3, 9, 9))
    f[0, 0, 0] = np.nan
    dims = ("n", "y", "x")
    assert M.mae(f, o) == pytest.approx(float(sc.continuous.mae(_da(f, dims), _da(o, dims))))
    assert M.rmse(f, o) == pytest.approx(float(sc.continuous.rmse(_da(f, dims), _da(o, dims))))
    assert M.bias(f, o) == pytest.approx(float(sc.continuous.mean_error(_da(f, dims), _da(o, dims))))
    r = sc.continuous.correlation.pearsonr(_da(f.ravel(), ("p",)), _da(o.ravel(), ("p",)))
    assert M.pearson_r(f, o) == pytest.approx(float(r))


def test_against_scores_contingency(sc) -> None:  # noqa: ANN001
    from scores.categorical import BinaryContingencyManager

    rng = np.random.default_rng(3)
    f, o = rng.gamma(0.5, 3, (4, 16)), rng.gamma(0.5, 3, (4, 16))
    for thr in M.DEFAULT_THRESHOLDS[:3]:
        mgr = BinaryContingencyManager(
            _da((f >= thr).astype(float), ("a", "b")), _da((o >= thr).astype(float), ("a", "b"))
        )
        c = M.contingency(f, o, thr)
        assert M.pod(c) == pytest.approx(float(mgr.probability_of_detection()), nan_ok=True)
        assert M.far(c) == pytest.approx(float(mgr.false_alarm_ratio()), nan_ok=True)
        assert M.csi(c) == pytest.approx(float(mgr.threat_score()), nan_ok=True)
        assert M.ets(c) == pytest.approx(float(mgr.equitable_threat_score()), nan_ok=True)
        assert M.frequency_bias(c) == pytest.approx(float(mgr.frequency_bias()), nan_ok=True)


def test_fss_zero_mode_matches_uniform_filter() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(6)
    f, o = rng.gamma(0.4, 4, (3, 20, 20)), rng.gamma(0.4, 4, (3, 20, 20))
    for thr, w in [(0.254, 1), (2.54, 3), (6.35, 5), (0.254, 17)]:
        pf = ndimage.uniform_filter((f >= thr).astype(float), size=(1, w, w), mode="constant")
        po = ndimage.uniform_filter((o >= thr).astype(float), size=(1, w, w), mode="constant")
        ref = 1 - np.sum((pf - po) ** 2) / np.sum(pf**2 + po**2)
        assert M.fss(f, o, thr, w, mode="zero") == pytest.approx(ref)


@pytest.mark.filterwarnings("ignore:At least one of the provided spatial dims")
@pytest.mark.parametrize("mode", ["valid", "zero"])
def test_against_scores_fss(sc, mode: str) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    f, o = rng.gamma(0.4, 4, (3, 20, 20)), rng.gamma(0.4, 4, (3, 20, 20))
    # scores 2.7's zero padding also scores one extra row and column of window positions past
    # the far edge (H + 1 by W + 1 outputs); padding one row/column of zeros reproduces it here.
    pad = ((0, 0), (0, 1), (0, 1)) if mode == "zero" else ((0, 0), (0, 0), (0, 0))
    for thr, w in [(0.254, 1), (2.54, 3), (6.35, 5), (2.54, 4), (0.254, 17)]:
        ref = sc.spatial.fss_2d(
            _da(f, ("n", "y", "x")),
            _da(o, ("n", "y", "x")),
            event_threshold=thr,
            window_size=(w, w),
            spatial_dims=("y", "x"),
            zero_padding=mode == "zero",
            reduce_dims=["n"],
            threshold_operator=np.greater_equal,
        )
        assert M.fss(np.pad(f, pad), np.pad(o, pad), thr, w, mode=mode) == pytest.approx(float(ref))


def test_against_scores_probabilistic(sc) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    ens = np.round(rng.gamma(0.5, 2, (6, 40)), 1)
    ens[:, :8] = 0.0  # ties at zero
    obs = np.round(rng.gamma(0.5, 2, 40), 1)
    obs[:5] = 0.0
    fc, ob = _da(ens, ("m", "p")), _da(obs, ("p",))
    for fair, method in ((False, "ecdf"), (True, "fair")):
        ref = sc.probability.crps_for_ensemble(fc, ob, "m", method=method, preserve_dims=["p"])
        assert M.crps_ensemble(ens, obs, fair=fair) == pytest.approx(ref.values)
    hist = M.rank_histogram(ens, obs)
    ref_hist = sc.probability.rank_histogram(fc, ob, "m")
    assert hist / hist.sum() == pytest.approx(ref_hist.values)
    prob, binary = rng.uniform(size=50), (rng.uniform(size=50) < 0.3).astype(float)
    ref_bs = sc.probability.brier_score(_da(prob, ("p",)), _da(binary, ("p",)))
    assert M.brier_score(prob, binary) == pytest.approx(float(ref_bs))
