"""Whole-domain inference: the identity spoof model round trip and exact block conservation."""

import numpy as np

from harpnet_cli.core.inference import downscale_domain, downscale_domain_members
from harpnet_cli.core.remap import conserve_blocks
from harpnet_cli.core.tiling import Patcher
from harpnet_cli.testing.models import IdentityDownscaler


def test_identity_model_over_a_domain_equals_nearest_upsampling():
    rng = np.random.default_rng(0)
    coarse = rng.gamma(0.5, 3.0, size=(1, 32, 52)).astype(np.float32)
    terrain = np.zeros((1, 120, 200), dtype=np.float32)
    out = downscale_domain(IdentityDownscaler(), coarse, terrain, Patcher((30, 50)), batch_size=5)
    expected = np.repeat(np.repeat(coarse[0, 1:-1, 1:-1], 4, 0), 4, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_conserve_blocks_restores_block_means_exactly():
    rng = np.random.default_rng(1)
    coarse = rng.gamma(0.5, 3.0, size=(6, 7))
    coarse[0, 0] = 0.0
    fine = rng.random((24, 28)).astype(np.float32)
    fine[4:8, 4:8] = 0.0  # the model put nothing under a wet cell: spread it uniformly
    out = conserve_blocks(fine, coarse, 4)
    np.testing.assert_allclose(out.reshape(6, 4, 7, 4).mean(axis=(1, 3)), coarse, rtol=1e-6)
    assert (out[:4, :4] == 0).all()
    np.testing.assert_allclose(out[4:8, 4:8], coarse[1, 1], rtol=1e-6)
    assert (out >= 0).all()


class NumpyIdentity:
    """The identity model on numpy arrays (a TileModel, as an ONNX graph is): no torch involved."""

    def __init__(self, members: int = 0) -> None:
        self.members, self.calls = members, 0

    def predict(self, coarse: np.ndarray, static: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert coarse.dtype == static.dtype == np.float32 and coarse.ndim == static.ndim == 4
        up = np.repeat(np.repeat(coarse[:, :1, 1:-1, 1:-1], 4, -2), 4, -1)
        return np.stack([up * (m + 1) for m in range(self.members)]) if self.members else up


def test_a_numpy_tile_model_runs_like_a_torch_one():
    rng = np.random.default_rng(2)
    coarse = rng.gamma(0.5, 3.0, size=(1, 32, 52)).astype(np.float32)
    terrain = np.zeros((1, 120, 200), dtype=np.float32)
    patcher = Patcher((30, 50))
    model = NumpyIdentity()
    out = downscale_domain(model, coarse, terrain, patcher, batch_size=5)
    want = downscale_domain(IdentityDownscaler(), coarse, terrain, patcher, batch_size=5)
    np.testing.assert_allclose(out, want, atol=1e-6)
    assert model.calls == -(-len(patcher) // 5)
    members = downscale_domain_members(NumpyIdentity(members=3), 3, coarse, terrain, patcher, batch_size=4)
    assert members.shape == (3, 120, 200)
    for m in range(3):  # (M, B, 1, H, W) read as M members, each stitched like one model
        np.testing.assert_allclose(members[m], want * (m + 1), rtol=1e-6, atol=1e-5)
