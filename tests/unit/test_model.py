"""Shapes, invariants and configuration of the downscaling model (CPU, small batches)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from harpnet_cli.core.model.blocks import fold_batchnorm
from harpnet_cli.core.model.config import PRESETS, get_preset
from harpnet_cli.core.model.unet import AttentionResUNet, decoder_dropout
from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig, conserve_mass, widen_inputs
from harpnet_cli.testing.models import IdentityDownscaler

HARPNET_V1_PARAMS = 134_164_934  # 2 inputs (precip + terrain), 1 output
LITE_PARAMS = 525_437  # widths 8/16/32/64 + 128, 2 inputs
COMPACT_PARAMS = 2_096_501


def _inputs(batch: int = 2, coarse_channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coarse = 10.0 * torch.rand(batch, coarse_channels, 18, 18, generator=g) ** 3  # skewed like rain
    terrain = 3000.0 * torch.rand(batch, 1, 64, 64, generator=g)
    return coarse, terrain


@pytest.fixture(scope="module")
def compact() -> Downscaler:
    torch.manual_seed(0)
    return Downscaler(ModelConfig()).eval()


def test_lite_is_the_default_and_preset_sizes() -> None:
    cfg = ModelConfig()
    assert cfg.preset == "lite"
    assert cfg.channels == list(PRESETS["lite"]["channels"])
    assert Downscaler(cfg).param_count() == LITE_PARAMS
    assert Downscaler(ModelConfig(preset="compact")).param_count() == COMPACT_PARAMS


def test_harpnet_v1_shapes_and_parameter_count_on_meta() -> None:
    with torch.device("meta"):
        model = Downscaler(ModelConfig(preset="harpnet-v1"))
        out = model(torch.empty(3, 1, 18, 18), torch.empty(3, 1, 64, 64))
    assert model.param_count() == HARPNET_V1_PARAMS
    assert model.config.channels == [64, 128, 256, 512, 1024] and model.config.bridge == 2048
    assert out.shape == (3, 1, 64, 64)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="compact, harpnet-v1"):
        get_preset("huge")
    with pytest.raises(ValidationError, match="unknown model preset 'huge'"):
        ModelConfig(preset="huge")


def test_compact_forward_backward(compact: Downscaler) -> None:
    model = Downscaler(compact.config).train()
    coarse, terrain = _inputs(batch=3)
    out = model(coarse, terrain)
    assert out.shape == (3, 1, 64, 64) and out.dtype == torch.float32
    out.log1p().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_output_non_negative_and_conserves_mass(compact: Downscaler) -> None:
    coarse, terrain = _inputs(batch=4)
    with torch.no_grad():
        out = compact(coarse, terrain)
    assert (out >= 0).all()
    centre = coarse[:, :1, 1:-1, 1:-1]
    block_mean = F.avg_pool2d(out.double(), 4).float()
    torch.testing.assert_close(block_mean, centre, rtol=1e-5, atol=1e-7)


def test_dry_coarse_cell_gives_exact_zeros(compact: Downscaler) -> None:
    coarse, terrain = _inputs(batch=2)
    coarse[0, 0, 1, 1] = 0.0  # -> fine [0:4, 0:4]
    coarse[1, 0, 5, 9] = 0.0  # -> fine [16:20, 32:36]
    with torch.no_grad():
        out = compact(coarse, terrain)
    assert torch.equal(out[0, 0, 0:4, 0:4], torch.zeros(4, 4))
    assert torch.equal(out[1, 0, 16:20, 32:36], torch.zeros(4, 4))
    assert (out[0, 0, 4:8, 4:8] > 0).all()


def test_all_dry_tile_is_all_zero(compact: Downscaler) -> None:
    _, terrain = _inputs(batch=1)
    with torch.no_grad():
        out = compact(torch.zeros(1, 1, 18, 18), terrain)
    assert torch.equal(out, torch.zeros(1, 1, 64, 64))


def test_conserve_mass_layer_directly() -> None:
    w = torch.rand(2, 1, 8, 12) + 0.01
    c = torch.tensor([[[[1.0, 0.0, 3.0], [0.5, 2.0, 0.0]]]]).repeat(2, 1, 1, 1)
    fine = conserve_mass(w, c, 4)
    torch.testing.assert_close(F.avg_pool2d(fine, 4), c)
    assert torch.equal(fine[:, :, 0:4, 4:8], torch.zeros(2, 1, 4, 4))


def test_without_conservation_output_is_positive_intensity() -> None:
    torch.manual_seed(1)
    model = Downscaler(ModelConfig(conserve=False)).eval()
    coarse, terrain = _inputs()
    with torch.no_grad():
        out = model(coarse, terrain)
    assert out.shape == (2, 1, 64, 64) and (out >= 0).all()


def test_decoder_dropout_falls_linearly_from_bottom_to_top() -> None:
    rates = decoder_dropout(4, 0.5, 0.1)
    assert rates == pytest.approx([0.5, 0.5 - 0.4 / 3, 0.5 - 0.8 / 3, 0.1])
    assert decoder_dropout(5, 0.5, 0.1) == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    net = AttentionResUNet(2, channels=(4, 8, 16), bridge=32)
    assert [up.dropout.p for up in net.decoder] == pytest.approx([0.5, 0.3, 0.1])


def test_extra_coarse_channel_is_a_config_change_only() -> None:
    cfg = ModelConfig(coarse_inputs=["precip", "cape"], static_inputs=["terrain", "slope"])
    assert cfg.coarse_mean == [0.3, 0.0] and cfg.coarse_std == [0.8, 1.0]
    assert cfg.static_mean == [500.0, 0.0]
    model = Downscaler(cfg).eval()
    assert model.net.encoder[0].conv1.in_channels == 4
    coarse, terrain = _inputs(batch=2, coarse_channels=2)
    static = torch.cat([terrain, torch.rand_like(terrain)], dim=1)
    with torch.no_grad():
        out = model(coarse, static)
    assert out.shape == (2, 1, 64, 64)
    torch.testing.assert_close(F.avg_pool2d(out, 4), coarse[:, :1, 1:-1, 1:-1], rtol=1e-5, atol=1e-7)


def test_widened_inputs_start_as_the_old_model() -> None:
    """A new coarse input (the window length) added to trained weights leaves the output unchanged."""
    torch.manual_seed(3)
    old = Downscaler(ModelConfig(preset="lite", derived_inputs=["precip_nearest"]))
    with torch.no_grad():  # trained-looking weights: a non-zero head, so the output is not plain bilinear
        old.net.head.weight.normal_(0.0, 0.3)
    old.eval()
    cfg = old.config.model_copy(update={"coarse_inputs": ["precip", "log_period_hours"],
                                        "coarse_mean": [0.3, 1.5], "coarse_std": [0.8, 0.9]})
    new = Downscaler(cfg)
    assert cfg.input_names == ["precip", "log_period_hours", "terrain", "precip_nearest"]
    state = widen_inputs(old.state_dict(), old.config.input_names, cfg.input_names, new.state_dict())
    new.load_state_dict(state)
    new.eval()
    coarse, terrain = _inputs(batch=2)
    period = torch.full_like(coarse, 3.2)  # any value: its weights are zero
    with torch.no_grad():
        want = old(coarse, terrain)
        got = new(torch.cat([coarse, period], dim=1), terrain)
    torch.testing.assert_close(got, want)
    assert not torch.equal(want, old.bilinear(coarse))
    first = state["net.encoder.0.conv1.weight"]
    assert first.shape[1] == 4 and not first[:, 1].any() and first[:, 0].any()


def test_no_static_inputs() -> None:
    model = Downscaler(ModelConfig(static_inputs=[], channels=[4, 8], bridge=16)).eval()
    coarse, _ = _inputs()
    with torch.no_grad():
        assert model(coarse, None).shape == (2, 1, 64, 64)


def test_coarse_cells_map_to_their_fine_pixels() -> None:
    """Bilinear ×4 then a 4-pixel crop puts coarse cell (j, i) at fine pixels [4(j-1):4j, ...]."""
    cfg = ModelConfig(coarse_inputs=["precip", "x"], channels=[4, 8], bridge=16)
    model = Downscaler(cfg)
    coarse = torch.zeros(1, 2, 18, 18)
    coarse[0, 1] = torch.arange(18.0)  # value = column index i; linear, so bilinear is exact
    x = model.normalise_inputs(coarse, torch.zeros(1, 1, 64, 64))
    expected = (torch.arange(64.0) + 0.5) / 4 + 0.5  # fine pixel q lies in coarse column 1 + q // 4
    torch.testing.assert_close(x[0, 1, 7], expected)
    assert x[0, 1, 0, 1:3].mean() == pytest.approx(1.0)  # the centre of cell 1 is between pixels 1, 2


def test_eval_is_deterministic_and_batch_independent(compact: Downscaler) -> None:
    coarse, terrain = _inputs(batch=4)
    with torch.no_grad():
        a = compact(coarse, terrain)
        b = compact(coarse, terrain)
        single = compact(coarse[2:3], terrain[2:3])
    assert torch.equal(a, b)
    torch.testing.assert_close(single, a[2:3], rtol=1e-5, atol=1e-6)


def test_train_mode_uses_dropout() -> None:
    torch.manual_seed(0)
    model = Downscaler(ModelConfig(output="softplus"))  # a zero last layer would hide the dropout
    model.train()
    coarse, terrain = _inputs(batch=2)
    with torch.no_grad():
        assert not torch.equal(model(coarse, terrain), model(coarse, terrain))


@pytest.mark.parametrize(
    ("coarse_shape", "static_shape", "match"),
    [
        ((2, 1, 16, 16), (2, 1, 64, 64), "coarse input must be"),
        ((2, 2, 18, 18), (2, 1, 64, 64), "coarse input must be"),
        ((2, 1, 18, 18), (2, 1, 72, 72), "static input must be"),
        ((2, 1, 18, 18), (3, 1, 64, 64), "batch sizes differ"),
    ],
)
def test_wrong_shapes_are_explained(
    compact: Downscaler, coarse_shape: tuple[int, ...], static_shape: tuple[int, ...], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        compact(torch.zeros(coarse_shape), torch.zeros(static_shape))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"coarse_mean": [0.1, 0.2]}, "coarse_mean has 2 values"),
        ({"static_std": [0.0]}, "static_std must be positive"),
        ({"tile": 60}, "multiple of 2\\*\\*levels"),
        ({"coarse_inputs": ["precip", "precip"]}, "duplicate"),
        ({"coarse_inputs": []}, "at least 1 item"),
        ({"dropout_bottom": 1.0}, "less than 1"),
        ({"norm": "layer"}, "'batch' or 'group'"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_config_validation(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelConfig(**overrides)


def test_group_norm_variant_runs() -> None:
    model = Downscaler(ModelConfig(norm="group", channels=[4, 8], bridge=12)).eval()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    coarse, terrain = _inputs()
    with torch.no_grad():
        assert model(coarse, terrain).shape == (2, 1, 64, 64)


def test_bf16_autocast_still_conserves(compact: Downscaler) -> None:
    coarse, terrain = _inputs(batch=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = compact(coarse, terrain)
    assert out.dtype == torch.float32
    torch.testing.assert_close(F.avg_pool2d(out, 4), coarse[:, :1, 1:-1, 1:-1], rtol=1e-5, atol=1e-7)


def test_channels_last_gives_the_same_output(compact: Downscaler) -> None:
    coarse, terrain = _inputs(batch=2)
    cl = Downscaler(compact.config).eval()
    cl.load_state_dict(compact.state_dict())
    cl.to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(cl(coarse, terrain), compact(coarse, terrain), rtol=1e-4, atol=1e-5)


def test_identity_spoof_repeats_the_centre() -> None:
    coarse, terrain = _inputs(batch=2)
    out = IdentityDownscaler()(coarse, terrain)
    assert out.shape == (2, 1, 64, 64)
    assert torch.equal(out[:, :, 4:8, 8:12], coarse[:, :, 2:3, 3:4].expand(2, 1, 4, 4))
    torch.testing.assert_close(F.avg_pool2d(out, 4), coarse[:, :1, 1:-1, 1:-1])


def test_for_inference_folds_batchnorm_and_matches(compact: Downscaler) -> None:
    fast = Downscaler(compact.config)
    fast.load_state_dict(compact.state_dict())
    assert fast.for_inference() is fast and fast.inference_only and not fast.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    coarse, terrain = _inputs(batch=3)
    with torch.no_grad():
        out = fast(coarse, terrain)
        torch.testing.assert_close(out, compact(coarse, terrain), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(F.avg_pool2d(out, 4), coarse[:, :1, 1:-1, 1:-1], rtol=1e-5, atol=1e-7)


def test_fold_batchnorm_needs_eval() -> None:
    with pytest.raises(RuntimeError, match="eval"):
        fold_batchnorm(AttentionResUNet(2, channels=(4,), bridge=8))


def test_untrained_bilinear_residual_model_is_conservative_bilinear() -> None:
    """The zero-initialised last layer makes a fresh model equal the strongest baseline exactly."""
    from harpnet_cli.core.baselines import bilinear

    torch.manual_seed(3)
    model = Downscaler(ModelConfig()).eval()
    assert model.config.output == "bilinear-residual"
    coarse, terrain = _inputs()
    coarse[0, 0, 5:9, 7:12] = 0.0  # a dry patch stays exactly dry
    with torch.no_grad():
        out = model(coarse, terrain)
    want = bilinear(coarse[:, 0].double().numpy(), mass_conserving=True)
    torch.testing.assert_close(out[:, 0].double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5)
    assert torch.equal(out[0, 0, 16:28, 24:40], torch.zeros(12, 16))


def test_bilinear_residual_output_learns_a_correction() -> None:
    """The last layer gets a gradient at zero, and a non-zero correction moves mass inside blocks."""
    model = Downscaler(ModelConfig(dropout_bottom=0.0, dropout_top=0.0))
    coarse, terrain = _inputs()
    out = model(coarse, terrain)
    out.pow(2).mean().backward()
    assert model.net.head.weight.grad is not None and model.net.head.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.net.head.bias.fill_(0.5)
        model.net.head.weight.normal_(0, 0.3)
        moved = model.eval()(coarse, terrain)
    torch.testing.assert_close(F.avg_pool2d(moved, 4), F.avg_pool2d(out.detach(), 4), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(moved, out.detach(), atol=1e-3)
