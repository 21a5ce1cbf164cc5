"""Ensemble statistics and the one-pass member run."""

import numpy as np
import pytest
import torch

from harpnet_cli.core.ensemble_stats import ensemble_products, exceedance_probability, mean_and_spread
from harpnet_cli.core.inference import downscale_domain, downscale_domain_members
from harpnet_cli.core.model.ensemble import EnsembleDownscaler
from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig
from harpnet_cli.core.tiling import Patcher


def test_mean_spread_population_and_nan():
    x = np.array([[1.0, 2.0, np.nan], [3.0, 2.0, 1.0]], dtype=np.float32)
    mean, spread = mean_and_spread(x)
    np.testing.assert_allclose(mean[:2], [2.0, 2.0])
    np.testing.assert_allclose(spread[:2], [1.0, 0.0])  # ddof=0
    assert np.isnan(mean[2]) and np.isnan(spread[2]) and mean.dtype == np.float32


def test_exceedance_fraction_strict_monotone_nan():
    x = np.array([[0.0, 5.0, np.nan], [1.0, 10.0, 3.0], [2.0, 10.0, 3.0], [3.0, 0.0, 3.0]])
    p = exceedance_probability(x, [0.0, 1.0, 10.0])
    np.testing.assert_allclose(p[:, 0], [0.75, 0.5, 0.0])
    np.testing.assert_allclose(p[:, 1], [0.75, 0.75, 0.0])  # strictly above: 10 is not > 10
    assert np.isnan(p[:, 2]).all() and (np.diff(p[:, :2], axis=0) <= 0).all()


def test_products_gather_mean_spread_and_probabilities():
    x = np.random.default_rng(1).gamma(0.5, 2.0, (4, 2, 3, 5)).astype(np.float32)
    x[1, 0, 0, 0] = np.nan
    p = ensemble_products(x, thresholds=(0.5, 2.0))
    mean, spread = mean_and_spread(x)
    assert p.size == 4 and not p.every_member and p.thresholds == (0.5, 2.0)
    np.testing.assert_array_equal(p.mean, mean)
    np.testing.assert_array_equal(p.spread, spread)
    np.testing.assert_array_equal(p.probabilities, exceedance_probability(x, [0.5, 2.0]))
    assert p.probabilities.shape == (2, 2, 3, 5) and np.isnan(p.mean[0, 0, 0])
    members = ensemble_products(x, every_member=True)
    assert members.mean is None and members.spread is None and members.probabilities is None and members.size == 4


@pytest.mark.parametrize("batch_size", [3, 64])
def test_one_pass_equals_separate_runs(batch_size):
    cfg = ModelConfig(channels=[8, 16], bridge=16)
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        members.append(Downscaler(cfg).eval())
    patcher = Patcher((10, 12), tile=cfg.tile, ratio=cfg.ratio, buffer=cfg.buffer)
    rng = np.random.default_rng(0)
    coarse = rng.gamma(0.5, 2.0, (1, 12, 14)).astype(np.float32)
    static = rng.normal(500, 100, (1, 40, 48)).astype(np.float32)
    got = downscale_domain_members(EnsembleDownscaler(members), 2, coarse, static, patcher, batch_size=batch_size)
    assert got.shape == (2, 40, 48)
    for m, model in enumerate(members):
        want = downscale_domain(model, coarse, static, patcher, batch_size=batch_size)
        np.testing.assert_allclose(got[m], want, rtol=1e-5, atol=1e-6)
