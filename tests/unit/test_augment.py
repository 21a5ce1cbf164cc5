"""The tile symmetries used by ``train --augment`` keep the coarse/fine nesting and turn wind."""

import numpy as np
import pytest
import torch

from harpnet_cli.core.augment import N_TRANSFORMS, augment_batch, draw_codes, transform
from harpnet_cli.workflows.batches import StoreBatches, vector_channels


def nested_sample(rng, wind=False):
    """A coarse patch (18 x 18) and a fine target whose cells each hold their coarse cell's value."""
    coarse = torch.from_numpy(rng.random((1, 1, 18, 18)).astype(np.float32))
    if wind:
        u, v = rng.normal(size=2)
        coarse = torch.cat([coarse, torch.full((1, 1, 18, 18), u), torch.full((1, 1, 18, 18), v)], dim=1).float()
    fine = coarse[:, :1, 1:-1, 1:-1].repeat_interleave(4, -2).repeat_interleave(4, -1)
    return coarse, fine


def test_codes_are_the_eight_distinct_symmetries_and_zero_is_identity():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = [transform(x, c) for c in range(N_TRANSFORMS)]
    assert torch.equal(outs[0], x)
    assert len({tuple(o.flatten().tolist()) for o in outs}) == N_TRANSFORMS


@pytest.mark.parametrize("code", range(N_TRANSFORMS))
def test_every_transform_keeps_fine_cells_inside_their_coarse_cell(code):
    rng = np.random.default_rng(code)
    coarse, fine = nested_sample(rng)
    terrain = torch.from_numpy(rng.random((1, 1, 64, 64)).astype(np.float32))
    c, t, f = augment_batch(coarse, terrain, fine, np.array([code]))
    expected = c[:, :1, 1:-1, 1:-1].repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert torch.equal(f, expected)
    # the terrain moves with the target: the same permutation of cells
    assert torch.equal(transform(terrain, code), t)
    assert sorted(t.flatten().tolist()) == sorted(terrain.flatten().tolist())


@pytest.mark.parametrize("code", range(N_TRANSFORMS))
def test_wind_is_turned_with_the_field(code):
    """A field rising towards where the wind blows still rises towards the turned wind."""
    u, v = 0.7, -1.9
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float32)  # rows run north, columns east
    fine = torch.from_numpy(u * cols + v * rows)[None, None]
    coarse = torch.cat([torch.zeros(1, 1, 18, 18), torch.full((1, 1, 18, 18), u),
                        torch.full((1, 1, 18, 18), v)], dim=1)
    c, _, f = augment_batch(coarse, torch.zeros(1, 1, 64, 64), fine, np.array([code]), vector_channels(["wind"]))
    u2, v2 = float(c[0, 1, 0, 0]), float(c[0, 2, 0, 0])
    f = f[0, 0].numpy()
    assert np.allclose(f[0, 1] - f[0, 0], u2) and np.allclose(f[1, 0] - f[0, 0], v2)
    assert np.hypot(u2, v2) == pytest.approx(np.hypot(u, v))


def test_each_sample_gets_its_own_code():
    rng = np.random.default_rng(5)
    pairs = [nested_sample(rng) for _ in range(3)]
    coarse = torch.cat([p[0] for p in pairs])
    fine = torch.cat([p[1] for p in pairs])
    codes = np.array([0, 3, 6])
    c, _, f = augment_batch(coarse, torch.zeros(3, 1, 64, 64), fine, codes)
    for i, code in enumerate(codes):
        assert torch.equal(c[i], transform(coarse[i : i + 1], int(code))[0])
        assert torch.equal(f[i], transform(fine[i : i + 1], int(code))[0])
    with pytest.raises(ValueError, match="2 codes for a batch of 3"):
        augment_batch(coarse, torch.zeros(3, 1, 64, 64), fine, np.array([0, 1]))


def test_draws_are_seeded_and_cover_all_codes():
    a = draw_codes(4000, [1, 2, 0, 0, 7])
    assert np.array_equal(a, draw_codes(4000, [1, 2, 0, 0, 7]))
    assert not np.array_equal(a, draw_codes(4000, [1, 3, 0, 0, 7]))
    assert np.bincount(a, minlength=8).min() > 400


def test_vector_channels_follow_the_extra_inputs():
    assert vector_channels([]) == []
    assert vector_channels(["wind"]) == [(1, 2)]


def tiny_store(path):
    """Eight wet samples over one tile."""
    from harpnet_cli.grids import GridSpec
    from harpnet_cli.io.store import TRAIN, TrainingStore

    rng = np.random.default_rng(3)
    store = TrainingStore.create(path, grid=GridSpec(lat0=30.0, lon0=-100.0, ny=16, nx=16).to_dict(),
                                 tile_terrain=rng.uniform(0, 3000, (1, 1, 64, 64)).astype(np.float32),
                                 tile_origin=np.zeros((1, 2), dtype=np.int32), coarse_channels=1, state_names=[],
                                 manifest={"sources": ["x"], "command": "test", "version": "0"})
    store.append("unit-0", coarse=rng.gamma(0.6, 2, (8, 1, 18, 18)).astype(np.float32),
                 fine=rng.gamma(0.6, 2, (8, 1, 64, 64)).astype(np.float32), tile=np.zeros(8, dtype=np.int64),
                 time=np.full(8, 1_600_000_000, dtype=np.int64), split=np.full(8, TRAIN),
                 state=np.zeros((8, 0), dtype=np.float32))
    return path


def test_store_batches_augment_reproducibly(tmp_path):
    path = tiny_store(tmp_path / "s.zarr")
    order = np.arange(8)
    plain = StoreBatches(path, order, 8).batch(0)
    one = StoreBatches(path, order, 8, augment_seed=[1, 1, 0, 0]).batch(0)
    again = StoreBatches(path, order, 8, augment_seed=[1, 1, 0, 0]).batch(0)
    other = StoreBatches(path, order, 8, augment_seed=[1, 2, 0, 0]).batch(0)
    assert all(torch.equal(x, y) for x, y in zip(one, again, strict=True))
    assert not torch.equal(one[2], plain[2]) and not torch.equal(one[2], other[2])
    # the same samples, moved: per-sample totals are kept
    assert torch.allclose(one[2].sum((1, 2, 3)), plain[2].sum((1, 2, 3)))
