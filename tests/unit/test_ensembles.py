"""The ensemble artefact, EnsembleDownscaler and weight soups on tiny models."""

import pytest
import torch

from harpnet_cli.core.model.ensemble import EnsembleDownscaler, average_state_dicts
from harpnet_cli.core.model.wrapper import Downscaler
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.ensembles import is_ensemble, save_ensemble
from harpnet_cli.workflows.models import load_ensemble_models

CFG = {"channels": [4, 8], "bridge": 8}


def tiny(seed):
    torch.manual_seed(seed)
    return Downscaler.from_config(CFG).eval()


def member(m, epoch):
    return {"epoch": epoch, "config": m.current_config().model_dump(mode="json"), "model": m.state_dict(),
            "test_loss": 0.1 * epoch}


def test_round_trip_weights_only_and_forward(tmp_path):
    a, b = tiny(0), tiny(1)
    path = save_ensemble(tmp_path / "e.pt", [member(a, 1), member(b, 2)], {"method": "all"})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "harpnet-ensemble" and raw["mode"] == "members" and raw["selection"]["method"] == "all"
    assert is_ensemble(path)
    models, mode, meta = load_ensemble_models(path)
    assert mode == "members" and [m["epoch"] for m in meta["members"]] == [1, 2]
    for loaded, orig in zip(models, (a, b), strict=True):
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in orig.state_dict().items())
    coarse, static = torch.rand(2, 1, 18, 18), torch.rand(2, 1, 64, 64) * 1000
    out = EnsembleDownscaler(models)(coarse, static)
    assert out.shape == (2, 2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(out[1], b(coarse, static))


def test_soup_average_exact():
    a, b = tiny(0), tiny(1)
    sa, sb = a.state_dict(), b.state_dict()
    sb = {k: v + 1 if not v.is_floating_point() else v for k, v in sb.items()}
    soup = average_state_dicts([sa, sb])
    for k, v in soup.items():
        if v.is_floating_point():
            assert torch.equal(v, ((sa[k].double() + sb[k].double()) / 2).to(v.dtype))
        else:
            assert torch.equal(v, torch.maximum(sa[k], sb[k]))
    model = Downscaler.from_config(CFG)
    model.load_state_dict(soup)  # loads strictly
    with pytest.raises(ValueError):
        average_state_dicts([])


@pytest.mark.parametrize("content", [b"", b"junk", None])
def test_bad_file_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:  # a valid torch file that is not an ensemble
        torch.save({"format": "harpnet-checkpoint"}, path)
    else:
        path.write_bytes(content)
    assert not is_ensemble(path)
    with pytest.raises(InputDataError) as err:
        load_ensemble_models(path)
    assert "\n" not in str(err.value)
