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
