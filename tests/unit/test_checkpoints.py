"""Checkpoint round trips, atomic writes and every way a checkpoint file can be bad."""

from __future__ import annotations

import hashlib
import os
import zipfile
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
import torch

from harpnet_cli.core.model.wrapper import Downscaler, ModelConfig, ModelStateError
from harpnet_cli.errors import InputDataError
from harpnet_cli.io import checkpoints
from harpnet_cli.io.checkpoints import checkpoint_sha256, save_checkpoint
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.models import load_model

SMALL = {"channels": [4, 8], "bridge": 16}


class Payload:
    """Runs code when unpickled (it must never be)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo this-must-not-run",))


@pytest.fixture
def small_model() -> Downscaler:
    torch.manual_seed(0)
    return Downscaler(ModelConfig(**SMALL))


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return make_random_checkpoint(tmp_path / "good.pt", **SMALL)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return 5 * torch.rand(3, 1, 18, 18, generator=g), 2000 * torch.rand(3, 1, 64, 64, generator=g)


def _payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _expect_bad(path: Path, match: str) -> InputDataError:
    with pytest.raises(InputDataError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and info.value.path == path
    assert "\n" not in str(info.value)
    return info.value


def test_round_trip_gives_identical_outputs(tmp_path: Path, small_model: Downscaler) -> None:
    optimizer = torch.optim.AdamW(small_model.parameters(), lr=1e-3)
    coarse, terrain = _inputs()
    small_model.train()
    small_model(coarse, terrain).mean().backward()
    optimizer.step()
    small_model.eval()
    path = save_checkpoint(
        tmp_path / "run" / "best.pt",
        small_model,
        optimizer,
        epoch=np.int64(7),
        losses=[np.float32(0.5), np.float64(0.25)],
        status=HTTPStatus.OK,  # an IntEnum: pickled as is, weights_only would refuse its class
        data=tmp_path / "corpus",
        history={"val": (1.0, 0.5)},
    )
    model, meta = load_model(path)
    assert not model.training
    for key, value in small_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with torch.no_grad():  # loaded weights are channels-last on CPU: same values, other summation order
        torch.testing.assert_close(model(coarse, terrain), small_model(coarse, terrain), rtol=1e-5, atol=1e-6)
    assert meta["format"] == "harpnet-checkpoint" and meta["format_version"] == 1
    assert meta["epoch"] == 7 and type(meta["epoch"]) is int
    assert meta["losses"] == [0.5, 0.25] and meta["data"] == str(tmp_path / "corpus")
    assert [type(v) for v in meta["losses"]] == [float, float]
    assert meta["status"] == 200 and type(meta["status"]) is int
    assert meta["history"] == {"val": [1.0, 0.5]}
    assert meta["config"] == small_model.config.model_dump(mode="json")
    resumed = torch.optim.AdamW(model.parameters(), lr=1e-3)
    resumed.load_state_dict(meta["optimizer"])
    assert "model" not in meta


def test_config_alone_rebuilds_the_model(good_file: Path) -> None:
    payload = _payload(good_file)
    rebuilt = Downscaler.from_config(payload["config"])
    rebuilt.load_state_dict(payload["model"], strict=True)
    assert rebuilt.config == ModelConfig(**SMALL)
    assert set(payload) >= {"format", "format_version", "harpnet_version", "config", "model"}
    assert "optimizer" not in payload


def test_saved_config_follows_the_normalisation_buffers(tmp_path: Path, small_model: Downscaler) -> None:
    small_model.coarse_mean.fill_(0.7)
    small_model.static_std.fill_(650.0)
    path = save_checkpoint(tmp_path / "m.pt", small_model)
    model, meta = load_model(path)
    assert meta["config"]["coarse_mean"] == pytest.approx([0.7])
    assert model.config.static_std == pytest.approx([650.0])
    assert float(model.static_std) == pytest.approx(650.0)


def test_random_checkpoints_are_reproducible(tmp_path: Path) -> None:
    a, _ = load_model(make_random_checkpoint(tmp_path / "a.pt", seed=5, **SMALL))
    b, _ = load_model(make_random_checkpoint(tmp_path / "b.pt", seed=5, **SMALL))
    c, _ = load_model(make_random_checkpoint(tmp_path / "c.pt", seed=6, **SMALL))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path, small_model: Downscaler) -> None:
    path = save_checkpoint(tmp_path / "m.pt", small_model)
    save_checkpoint(path, small_model, epoch=2)  # replace an existing file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_failed_write_keeps_the_old_file(
    tmp_path: Path, small_model: Downscaler, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "m.pt", small_model, epoch=1)
    before = path.read_bytes()

    def broken_save(obj: object, f: Path) -> None:
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_model, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_metadata_must_be_plain(tmp_path: Path, small_model: Downscaler) -> None:
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "m.pt", small_model, config={"a": 1})
    with pytest.raises(TypeError, match="unsupported type object"):
        save_checkpoint(tmp_path / "m.pt", small_model, thing=object())
    assert not list(tmp_path.iterdir())


def test_sha256(good_file: Path, tmp_path: Path) -> None:
    assert checkpoint_sha256(good_file) == hashlib.sha256(good_file.read_bytes()).hexdigest()
    with pytest.raises(InputDataError, match="no such checkpoint file"):
        checkpoint_sha256(tmp_path / "missing.pt")


# -- bad files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    _expect_bad(tmp_path / "nope.pt", "no such checkpoint file")


def test_directory(tmp_path: Path) -> None:
    _expect_bad(tmp_path, "not a file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _expect_bad(path, "empty file")


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    _expect_bad(path, "not a PyTorch checkpoint")


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_file(good_file: Path, tmp_path: Path, keep: float) -> None:
    data = good_file.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: int(len(data) * keep)])
    _expect_bad(path, "corrupt or truncated")


def test_zip_that_is_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _expect_bad(path, "corrupt or truncated")


@pytest.mark.parametrize("payload", [{"weights": torch.zeros(3)}, [1, 2, 3], {"format": "other"}])
def test_torch_file_that_is_not_a_harpnet_checkpoint(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    _expect_bad(path, "not a HARPNET checkpoint")


def test_newer_format_version(good_file: Path) -> None:
    payload = _payload(good_file)
    payload["format_version"] = checkpoints.FORMAT_VERSION + 1
    torch.save(payload, good_file)
    _expect_bad(good_file, "format_version 2 is newer .*upgrade harpnet")


def test_state_dict_missing_and_unexpected_keys_are_named(good_file: Path) -> None:
    payload = _payload(good_file)
    del payload["model"]["net.head.weight"]
    payload["model"]["net.extra.bias"] = torch.zeros(2)
    torch.save(payload, good_file)
    error = _expect_bad(good_file, "weights do not match the saved config")
    assert "missing net.head.weight" in str(error) and "unexpected net.extra.bias" in str(error)


def test_state_dict_of_another_size(good_file: Path) -> None:
    payload = _payload(good_file)
    payload["config"]["channels"] = [4, 16]
    torch.save(payload, good_file)
    _expect_bad(good_file, "wrong shape net\\.")


def test_invalid_config_in_checkpoint(good_file: Path) -> None:
    payload = _payload(good_file)
    payload["config"]["preset"] = "galactic"
    payload["config"]["channels"] = None
    torch.save(payload, good_file)
    _expect_bad(good_file, "invalid model config.*unknown model preset 'galactic'")


def test_pickled_code_is_refused(good_file: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    payload = _payload(good_file)
    payload["epoch"] = Payload()
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    _expect_bad(evil, "refusing to load code from a checkpoint")
    assert "this-must-not-run" not in capfd.readouterr().out


def test_pickled_numpy_scalar_is_refused(good_file: Path) -> None:
    payload = _payload(good_file)
    payload["loss"] = np.float32(1.0)  # what save_checkpoint converts; a raw one is not allowed
    torch.save(payload, good_file)
    _expect_bad(good_file, "refusing to load code from a checkpoint")


def test_load_to_explicit_device(good_file: Path) -> None:
    model, _ = load_model(good_file, device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_loaded_model_is_channels_last_on_cpu(good_file: Path) -> None:
    model, _ = load_model(good_file)
    weight = model.net.encoder[0].conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_inference_only_model_cannot_be_saved(tmp_path: Path, small_model: Downscaler) -> None:
    small_model.for_inference()
    with pytest.raises(ValueError, match="for_inference"):
        save_checkpoint(tmp_path / "m.pt", small_model)


# -- plain payloads, the model built outside io ----------------------------------------------------


def test_read_checkpoint_is_plain_data(good_file: Path) -> None:
    payload = checkpoints.read_checkpoint(good_file)
    assert payload["format"] == "harpnet-checkpoint" and isinstance(payload["config"], dict)
    assert all(isinstance(v, torch.Tensor) for v in payload["model"].values())
    model = Downscaler.from_state(payload["config"], payload["model"])
    for key, value in load_model(good_file)[0].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_write_checkpoint_from_plain_parts(tmp_path: Path, small_model: Downscaler) -> None:
    config = small_model.current_config().model_dump(mode="json")
    path = checkpoints.write_checkpoint(tmp_path / "plain.pt", config, small_model.state_dict(), None, epoch=3,
                                        config_note="a meta key that only starts like a parameter")
    model, meta = load_model(path)
    assert meta["epoch"] == 3 and meta["config"] == config and "optimizer" not in meta
    assert all(torch.equal(model.state_dict()[k], v) for k, v in small_model.state_dict().items())
    with pytest.raises(ValueError, match="reserved"):
        checkpoints.write_checkpoint(tmp_path / "x.pt", config, small_model.state_dict(), None, config={})


def test_from_state_names_what_is_wrong(good_file: Path) -> None:
    payload = _payload(good_file)
    with pytest.raises(ModelStateError) as info:
        Downscaler.from_state({**payload["config"], "tile": 62}, payload["model"])
    assert info.value.part == "config" and info.value.where == "config"
    with pytest.raises(ModelStateError) as info:
        Downscaler.from_state({**payload["config"], "dropout_top": 2.0}, payload["model"])
    assert info.value.part == "config" and info.value.where == "dropout_top"
    state = dict(payload["model"])
    del state["net.head.weight"]
    with pytest.raises(ModelStateError) as info:
        Downscaler.from_state(payload["config"], state)
    assert info.value.part == "weights" and info.value.reason == "missing net.head.weight"


def test_model_file_reads_once_and_knows_kind_and_hash(good_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harpnet_cli.io.model_files import ModelFile

    reads = []
    real = checkpoints.read_checkpoint_bytes
    monkeypatch.setattr("harpnet_cli.io.model_files.read_checkpoint_bytes", lambda p: reads.append(p) or real(p))
    f = ModelFile(good_file)
    assert not reads  # nothing read until asked
    assert not f.is_ensemble and f.sha256 == checkpoint_sha256(good_file)
    first = f.payload()
    assert first["format"] == "harpnet-checkpoint"
    assert reads == [good_file]
    assert f.payload() is first and not f.stochastic and reads == [good_file]  # kept, not read again


def test_model_file_that_cannot_be_read_is_no_ensemble_and_a_checkpoint_error(tmp_path: Path) -> None:
    from harpnet_cli.io.model_files import ModelFile

    f = ModelFile(tmp_path / "missing.pt")
    assert not f.is_ensemble
    with pytest.raises(InputDataError, match="no such checkpoint file"):
        f.payload()
    with pytest.raises(InputDataError, match="no such checkpoint file"):
        f.sha256  # noqa: B018


def test_peek_reads_the_config_without_torch_and_runs_no_code(tmp_path: Path) -> None:
    import os
    import pickle
    import subprocess
    import sys
    import zipfile

    from harpnet_cli.io.checkpoints import checkpoint_payload, peek_payload, read_checkpoint_bytes

    sto = make_random_checkpoint(tmp_path / "sto.pt", noise_scales=[1.0, 4.0], channels=[4, 8], bridge=16)
    data = read_checkpoint_bytes(sto)
    assert peek_payload(data)["config"] == checkpoint_payload(data, sto)["config"]
    code = ("import sys; from harpnet_cli.io.model_files import ModelFile; "
            f"f = ModelFile({str(sto)!r}); print(f.stochastic, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"config": {"noise_scales": [1.0]}, "x": Evil()}))
    peeked = peek_payload(evil.read_bytes())
    assert peeked["config"] == {"noise_scales": [1.0]} and not (tmp_path / "pwned").exists()
    assert peek_payload(b"not a zip") is None
