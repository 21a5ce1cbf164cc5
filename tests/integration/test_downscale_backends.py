"""``downscale --backend``: ONNX Runtime and torch give the same fields; the CPU default never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from typer.testing import CliRunner

from harpnet_cli import devices
from harpnet_cli.cli import app
from harpnet_cli.config import DownscaleConfig
from harpnet_cli.core.model import onnx as onnx_model
from harpnet_cli.errors import UsageError
from harpnet_cli.io.default_model import ENV_VAR
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint, make_random_ensemble
from harpnet_cli.workflows.downscale import choose_backend, run_downscale

TINY = {"channels": [8, 16], "bridge": 16}
BBOX = (31.0, 34.0, -99.0, -95.0)


@pytest.fixture(scope="module")
def gfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gfs") / "gfs.t18z.pgrb2.0p25.f006"
    return write_gfs_grib(path, synthetic_hourly(6, seed=11), [(0, 3), (3, 6)])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    out = {"plain": make_random_checkpoint(folder / "plain.pt", seed=1, **TINY),
           "stochastic": make_random_checkpoint(folder / "sto.pt", seed=2, noise_scales=[0.0, 4.0], **TINY)}
    out["ensemble"] = make_random_ensemble(folder / "ens.pt", first_seed=3, **TINY)
    return out


def read(path: Path) -> tuple[np.ndarray, str]:
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(nc["precipitation_amount"][:], np.nan), nc.getncattr("harpnet_runtime")


@pytest.mark.parametrize(("kind", "extra"), [("plain", {}), ("stochastic", {"samples": 3, "seed": 5, "members": True}),
                                             ("ensemble", {"members": True})])
def test_both_backends_give_the_same_field(tmp_path: Path, gfs: Path, models: dict[str, Path], kind: str,
                                           extra: dict) -> None:
    fields = {}
    for backend in ("onnx", "torch"):
        cfg = DownscaleConfig(inputs=[gfs], output=tmp_path / f"{backend}.nc", model=models[kind], bbox=BBOX,
                              device="cpu", backend=backend, **extra)
        res = run_downscale(cfg)
        assert 0.999 < res.mass_ratio < 1.001
        fields[backend], runtime = read(cfg.output)
        assert runtime.startswith("onnxruntime " if backend == "onnx" else "torch ")
    got, want = fields["onnx"], fields["torch"]
    assert got.shape == want.shape and np.nanmax(want) > 1.0
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.nanmax(want)))


def test_the_default_cpu_run_never_imports_torch(tmp_path: Path, gfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled model ships its graph: a fresh process downscales without torch's ~2 s import."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    code = textwrap.dedent(f"""
        import json, sys
        from harpnet_cli.config import DownscaleConfig
        from harpnet_cli.workflows.downscale import run_downscale
        for samples in (None, 2):
            run_downscale(DownscaleConfig(inputs=[{str(gfs)!r}], output={str(tmp_path)!r} + f"/out{{samples}}.nc",
                                          bbox={BBOX!r}, device="auto", samples=samples))
        print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
    assert read(tmp_path / "outNone.nc")[1].startswith("onnxruntime")


def test_torch_is_chosen_where_onnx_runtime_cannot_serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def cfg(**kw: object) -> DownscaleConfig:
        return DownscaleConfig(inputs=[tmp_path / "in.grib2"], output=tmp_path / "out.nc", **kw)

    monkeypatch.setattr(devices, "accelerator_possible", lambda *a: False)
    monkeypatch.setattr(devices, "native_bf16", lambda *a: False)
    assert choose_backend(cfg()) == "onnx"
    assert choose_backend(cfg(device="cpu", bf16=True)) == "onnx"  # emulated bf16 would run float32 anyway
    assert choose_backend(cfg(backend="torch")) == "torch"
    assert choose_backend(cfg(device="cuda")) == "torch"
    monkeypatch.setattr(devices, "native_bf16", lambda *a: True)
    assert choose_backend(cfg(bf16=True)) == "torch"  # native bfloat16 is torch's
    monkeypatch.setattr(devices, "accelerator_possible", lambda *a: True)
    assert choose_backend(cfg()) == "torch"  # a GPU may be there: torch decides
    with pytest.raises(UsageError, match="CPU only"):
        choose_backend(cfg(backend="onnx", device="cuda"))
    monkeypatch.setattr(onnx_model, "runtime_available", lambda: False)
    monkeypatch.setattr(devices, "accelerator_possible", lambda *a: False)
    assert choose_backend(cfg()) == "torch"
    with pytest.raises(UsageError, match="onnxruntime is not installed"):
        choose_backend(cfg(backend="onnx"))


def test_the_cli_refuses_onnx_on_a_gpu_in_one_line(tmp_path: Path, gfs: Path) -> None:
    res = CliRunner().invoke(app, ["downscale", str(gfs), "-o", str(tmp_path / "o.nc"), "--backend", "onnx",
                                   "--device", "cuda"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: --backend onnx runs on the CPU only; drop --device cuda or use --backend torch"]
    res = CliRunner().invoke(app, ["downscale", str(gfs), "-o", str(tmp_path / "o.nc"), "--backend", "tpu"])
    assert res.exit_code == 2 and "backend" in res.output and not (tmp_path / "o.nc").exists()


def test_bf16_on_onnx_runtime_warns_and_runs_float32(tmp_path: Path, gfs: Path, models: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "native_bf16", lambda *a: False)
    res = CliRunner().invoke(app, ["downscale", str(gfs), "-o", str(tmp_path / "o.nc"), "-m", str(models["plain"]),
                                   "--bbox", "31,34,-99,-95", "--backend", "onnx", "--bf16"])
    assert res.exit_code == 0, res.output
    assert "no native bfloat16" in res.output
    assert read(tmp_path / "o.nc")[1].startswith("onnxruntime")
