"""Device selection and CPU thread configuration."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harpnet_cli import devices
from harpnet_cli.devices import configure_cpu_threads, select_device, usable_cpu_count
from harpnet_cli.errors import UsageError

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = devices._mps_available()


@pytest.mark.skipif(HAS_CUDA or HAS_MPS, reason="this machine has an accelerator")
def test_auto_picks_cpu_here(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="harpnet"):
        assert select_device() == torch.device("cpu")
    assert "Inference device: cpu" in caplog.text


@pytest.mark.parametrize("name", ["cpu", " CPU ", "Cpu"])
def test_explicit_cpu(name: str) -> None:
    assert select_device(name) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is available")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_when_unavailable_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError, match=f"device '{name}' asked for, but .*use --device cpu"):
        select_device(name)


@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_index_out_of_range() -> None:
    n = torch.cuda.device_count()
    with pytest.raises(UsageError, match=f"only {n} CUDA device"):
        select_device(f"cuda:{n}")


@pytest.mark.skipif(HAS_MPS, reason="MPS is available")
def test_mps_when_unavailable_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="MPS is not available"):
        select_device("mps")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "cuda:-1", ""])
def test_unknown_device_names(name: str) -> None:
    with pytest.raises(UsageError, match="unknown device"):
        select_device(name)


def test_importing_devices_does_not_import_torch() -> None:
    code = "import sys, harpnet_cli.devices; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_configure_cpu_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert configure_cpu_threads() == usable_cpu_count() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UsageError, match="at least 1"):
        configure_cpu_threads(0)


def test_usable_cpu_count_within_affinity() -> None:
    assert 1 <= usable_cpu_count() <= len(devices.os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert devices._cgroup_cpu_limit(tmp_path) == expected


def test_hyperthread_siblings_count_once(tmp_path: Path) -> None:
    for cpu, core in [(0, 0), (1, 1), (2, 0), (3, 1)]:  # 2 cores x 2 threads
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert devices._physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert devices._physical_cores({0, 2}, tmp_path) == 1
    assert devices._physical_cores({0, 7}, tmp_path) is None  # no sysfs entry: unknown


# -- busy hosts: the OpenMP wait policy -------------------------------------------------------------
def _policy_after(code: str, env: dict[str, str]) -> str:
    """``OMP_WAIT_POLICY`` in a fresh interpreter after running ``code``."""
    import os

    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                         env=full, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_importing_harpnet_cli_makes_waiting_threads_sleep() -> None:
    assert _policy_after("import harpnet_cli", {}) == "PASSIVE"


def test_an_explicit_wait_policy_is_kept() -> None:
    assert _policy_after("import harpnet_cli", {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_the_policy_is_not_set_after_torch_is_loaded() -> None:
    assert _policy_after("import torch\nimport harpnet_cli", {}) == "None"


# -- native bfloat16 -------------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "native"), [("fpu avx avx2 fma", False), ("avx2 avx512f avx512_bf16", True),
                                               ("avx2 amx_bf16 amx_tile", True)])
def test_native_bf16_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert devices.native_bf16(cpuinfo) is native
    assert devices.cpu_flags(cpuinfo) == set(flags.split())


def test_no_cpuinfo_means_no_native_bf16(tmp_path: Path) -> None:
    assert devices.native_bf16(tmp_path / "missing") is False


def test_accelerator_possible_without_importing_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    marker = tmp_path / "nvidiactl"
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cpu")
    assert not devices.accelerator_possible((marker,))  # a CPU build of torch
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0")
    assert not devices.accelerator_possible((marker,))  # no driver loaded
    marker.touch()
    assert devices.accelerator_possible((marker,))  # a driver: torch must be asked

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert not devices.accelerator_possible((marker,))  # no torch at all


@pytest.mark.parametrize(("policy", "spin"), [(None, False), ("PASSIVE", False), ("active", True), ("ACTIVE", True)])
def test_runtimes_spin_only_when_asked(monkeypatch: pytest.MonkeyPatch, policy: str | None, spin: bool) -> None:
    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    assert devices.spinning_allowed() is spin


def test_cpu_threads_checks_without_touching_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "usable_cpu_count", lambda: 7)
    assert devices.cpu_threads() == 7 and devices.cpu_threads(3) == 3
    with pytest.raises(UsageError, match="at least 1"):
        devices.cpu_threads(0)
