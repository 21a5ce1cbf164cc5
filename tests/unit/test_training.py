"""Pure training pieces: losses, epoch order, rank split, seeding, one step."""

import numpy as np
import pytest
import torch

from harpnet_cli.core.training import (
    DEFAULT_LOSS,
    LOSSES,
    AdaptiveStep,
    batch_slices,
    epoch_lr,
    epoch_order,
    get_loss,
    rank_share,
    rng_state,
    seed_everything,
    set_rng_state,
    state_dict_digest,
    train_step,
)


def test_losses_values():
    p = torch.tensor([[[[0.0, 1.0], [3.0, 0.0]]]])
    t = torch.tensor([[[[0.0, 0.0], [1.0, 0.0]]]])
    assert get_loss("mse")(p, t).item() == pytest.approx((1 + 4) / 4)
    assert get_loss("mae")(p, t).item() == pytest.approx((1 + 2) / 4)
    expect = (np.log1p(1.0) ** 2 + (np.log1p(3.0) - np.log1p(1.0)) ** 2) / 4
    assert get_loss("mse_log1p")(p, t).item() == pytest.approx(expect, rel=1e-6)
    assert all(get_loss(n)(t, t).item() == 0 for n in LOSSES)
    assert DEFAULT_LOSS in LOSSES


ERRORS = {  # the per-pixel error of each loss, in NumPy
    "mse": lambda p, t: (p - t) ** 2,
    "mae": lambda p, t: np.abs(p - t),
    "mse_log1p": lambda p, t: (np.log1p(p) - np.log1p(t)) ** 2,
    "crps": lambda p, t: np.abs(p - t),  # one member: the CRPS is its absolute error
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_leave_out_unobserved_pixels(name):
    assert set(ERRORS) == set(LOSSES)
    rng = np.random.default_rng(0)
    p, t = rng.random((3, 1, 8, 8)), 4 * rng.random((3, 1, 8, 8))
    observed = rng.random((3, 1, 8, 8)) > 0.3
    pred = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    loss = get_loss(name)(pred, torch.tensor(np.where(observed, t, np.nan), dtype=torch.float32))
    loss.backward()
    assert loss.item() == pytest.approx(ERRORS[name](p, t)[observed].mean(), rel=1e-5)
    assert torch.isfinite(pred.grad).all() and (pred.grad[torch.from_numpy(~observed)] == 0).all()
    assert (pred.grad[torch.from_numpy(observed)] != 0).any()
    whole = get_loss(name)(pred, torch.tensor(t, dtype=torch.float32))  # fully observed: the plain mean
    assert whole.item() == pytest.approx(ERRORS[name](p, t).mean(), rel=1e-5)


def test_epoch_lr_schedules():
    assert [epoch_lr(1e-3, e, 4, "constant") for e in (1, 4)] == [1e-3, 1e-3]
    cosine = [epoch_lr(1e-3, e, 4, "cosine") for e in (1, 2, 3, 4)]
    assert cosine == pytest.approx([1e-3, 1e-3 * (1 + np.sqrt(0.5)) / 2, 5e-4, 1e-3 * (1 - np.sqrt(0.5)) / 2])
    with pytest.raises(ValueError, match="constant, cosine"):
        epoch_lr(1e-3, 1, 4, "step")


def test_unknown_loss_lists_known():
    with pytest.raises(ValueError, match="mse_log1p"):
        get_loss("huber")


def test_epoch_order_is_deterministic_permutation_and_chunk_local():
    idx = np.arange(0, 2000, 2)  # 1000 samples over 8 chunks of 256
    a = epoch_order(idx, seed=1, epoch=3)
    assert np.array_equal(a, epoch_order(idx, seed=1, epoch=3))
    assert np.array_equal(np.sort(a), idx)
    assert not np.array_equal(a, epoch_order(idx, seed=1, epoch=4))
    assert not np.array_equal(a, epoch_order(idx, seed=2, epoch=3))
    # buffer of 1 chunk: each chunk's samples come out contiguously (7 changes for 8 chunks)
    b = epoch_order(idx, seed=1, epoch=3, buffer_chunks=1)
    assert np.count_nonzero(np.diff(b // 256)) == 7
    # buffer of 4 chunks: a batch of 64 touches at most 2 windows of 4 chunks
    assert max(len(np.unique(a[s:s + 64] // 256)) for s in range(0, 1000, 64)) <= 8
    assert len(epoch_order(np.array([], dtype=int), seed=0, epoch=0)) == 0


def test_rank_share_like_distributed_sampler():
    order = np.arange(10)[::-1]
    parts = [rank_share(order, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert set(np.concatenate(parts)) == set(range(10))
    assert np.array_equal(rank_share(order, 0, 1), order)
    with pytest.raises(ValueError):
        rank_share(order, 3, 3)


def test_batch_slices():
    assert batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert batch_slices(10, 4, max_batches=1) == [slice(0, 4)]


def test_seed_everything_and_rng_state_round_trip():
    seed_everything(5)
    a = (np.random.random(), torch.rand(3))  # noqa: NPY002
    seed_everything(5)
    b = (np.random.random(), torch.rand(3))  # noqa: NPY002
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    state = rng_state()
    assert all(isinstance(v, int) for v in state["torch"])
    x = torch.rand(4)
    set_rng_state(state)
    assert torch.equal(x, torch.rand(4))


def test_train_step_micro_batches_give_the_same_gradient():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    coarse, target = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)

    def net(c, s):
        return model(c)

    start = {k: v.clone() for k, v in model.state_dict().items()}
    whole = train_step(net, opt, get_loss("mse"), coarse, coarse, target)
    after_whole = state_dict_digest(model)
    model.load_state_dict(start)
    parts = train_step(net, opt, get_loss("mse"), coarse, coarse, target, micro_batch=1)
    assert parts == pytest.approx(whole, rel=1e-5)
    w = model.state_dict()["weight"]
    model.load_state_dict(start)
    train_step(net, opt, get_loss("mse"), coarse, coarse, target)
    assert state_dict_digest(model) == after_whole
    torch.testing.assert_close(w, model.state_dict()["weight"], rtol=1e-5, atol=1e-6)


def test_adaptive_step_halves_the_micro_batch_on_out_of_memory_and_keeps_it():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    coarse, target = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    sizes = []

    def net(c, s):  # "runs out of memory" above 2 samples
        sizes.append(len(c))
        if len(c) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return model(c)

    start = {k: v.clone() for k, v in model.state_dict().items()}
    halvings = []
    step = AdaptiveStep(lambda micro, batch: halvings.append((micro, batch)))
    loss = step(net, opt, get_loss("mse"), coarse, coarse, target)
    assert step.micro_batch == 2 and halvings == [(4, 8), (2, 8)]
    after = state_dict_digest(model)
    model.load_state_dict(start)
    assert train_step(net, opt, get_loss("mse"), coarse, coarse, target, micro_batch=2) == loss
    assert state_dict_digest(model) == after  # the retried batch's step is the micro-batched one
    sizes.clear()
    step(net, opt, get_loss("mse"), coarse, coarse, target)  # the next batch starts at the reduced size
    assert sizes == [2, 2, 2, 2] and len(halvings) == 2

    def never(c, s):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        AdaptiveStep()(never, opt, get_loss("mse"), coarse, coarse, target)


def test_mixed_batches_interleave_every_batch_once(tmp_path):
    from harpnet_cli.workflows.batches import BatchSequence, MixedBatches

    class Numbered(BatchSequence):
        def __init__(self, tag: float, n: int) -> None:
            super().__init__()
            self.tag, self.n_batches = tag, n

        def batch(self, k):
            t = torch.full((1,), self.tag + k)
            return t, t, t

    parts = [Numbered(0.0, 5), Numbered(100.0, 3)]
    mixed = MixedBatches(parts, seed=4)
    got = [float(b[0]) for b in mixed]
    assert sorted(got) == [0, 1, 2, 3, 4, 100, 101, 102] and len(mixed) == 8
    assert [g for g in got if g < 100] == [0, 1, 2, 3, 4]  # each part keeps its own order
    assert got == [float(b[0]) for b in MixedBatches(parts, seed=4)]
    assert got != sorted(got)  # interleaved, not one store after the other


def test_train_config_list_options_take_commas(tmp_path):
    from harpnet_cli.config import TrainConfig

    cfg = TrainConfig.from_sources(None, {"store": tmp_path, "run_dir": tmp_path,
                                          "derived_inputs": ["precip_nearest,terrain_anomaly"]})
    assert cfg.derived_inputs == ["precip_nearest", "terrain_anomaly"]
    cfg = TrainConfig.from_sources(None, {"store": tmp_path, "run_dir": tmp_path,
                                          "derived_inputs": ["precip_nearest", " terrain_anomaly "]})
    assert cfg.derived_inputs == ["precip_nearest", "terrain_anomaly"]
    with pytest.raises(ValueError, match="derived_inputs"):
        TrainConfig.from_sources(None, {"store": tmp_path, "run_dir": tmp_path, "derived_inputs": ["slope,x"]})


def test_fair_crps_of_members_matches_the_metric_and_skips_unobserved_pixels():
    from harpnet_cli.core.metrics import crps_ensemble

    rng = np.random.default_rng(3)
    members, truth = 3 * rng.random((5, 2, 1, 6, 6)), 3 * rng.random((2, 1, 6, 6))
    observed = rng.random((2, 1, 6, 6)) > 0.25
    pred = torch.tensor(members, dtype=torch.float32, requires_grad=True)
    loss = get_loss("crps")(pred, torch.tensor(np.where(observed, truth, np.nan), dtype=torch.float32))
    loss.backward()
    expect = crps_ensemble(members, truth, fair=True)[observed].mean()
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    assert (pred.grad[:, torch.from_numpy(~observed)] == 0).all()
    # identical members are no better than one member: the fair spread term rewards only real spread
    same = torch.tensor(np.repeat(members[:1], 5, axis=0), dtype=torch.float32)
    one = get_loss("crps")(same[0], torch.tensor(truth, dtype=torch.float32))
    assert get_loss("crps")(same, torch.tensor(truth, dtype=torch.float32)).item() == pytest.approx(one.item())
