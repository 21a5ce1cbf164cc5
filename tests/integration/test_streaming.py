"""Operations (issue 19): outputs written step by step, templates that create their folders, flat
memory, ``-o -`` to a terminal, ``--bf16`` on CPUs without bfloat16, and larger inference tiles."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.config import DownscaleConfig
from harpnet_cli.core.tiling import choose_tile
from harpnet_cli.io.outputs import OutputWriter
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_sequence
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows import downscale as workflow
from harpnet_cli.workflows.reporting import NullReporter

runner = CliRunner()
BBOX = ("--bbox", "31,35,-99,-95")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", seed=1)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A GFS run f003..f009 (three 3-hour steps)."""
    return write_gfs_sequence(tmp_path_factory.mktemp("gfs"), synthetic_hourly(9, seed=4), (3, 6, 9))


def downscale(*args):
    return runner.invoke(app, ["downscale", *map(str, args)])


def test_the_readme_crontab_template_creates_the_cycle_folder(tmp_path, series, checkpoint):
    template = tmp_path / "harpnet" / "{init:%Y%m%d%H}" / "harpnet_f{lead:03d}.grib2"
    res = downscale(*series, "-m", checkpoint, *BBOX, "--skip-existing", "-o", template)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "harpnet" / "2020032518").iterdir()) == [
        "harpnet_f003.grib2", "harpnet_f006.grib2", "harpnet_f009.grib2"]


def test_each_step_is_written_as_soon_as_it_is_done(tmp_path, series, checkpoint, monkeypatch):
    events: list[str] = []
    step, add = workflow._ModelRunner.step, OutputWriter.add

    def record_step(self, *args, **kwargs):
        events.append("model")
        return step(self, *args, **kwargs)

    def record_add(self, k, *args, **kwargs):
        written = add(self, k, *args, **kwargs)
        if written is not None:
            assert written.exists()
            events.append(f"wrote {written.name}")
        return written

    monkeypatch.setattr(workflow._ModelRunner, "step", record_step)
    monkeypatch.setattr(OutputWriter, "add", record_add)
    res = downscale(*series, "-m", checkpoint, *BBOX, "-o", tmp_path / "h_f{lead:03d}.nc")
    assert res.exit_code == 0, res.output
    assert events == ["model", "wrote h_f003.nc", "model", "wrote h_f006.nc", "model", "wrote h_f009.nc"]


def test_a_killed_run_keeps_finished_steps_and_a_rerun_completes_it(tmp_path, series, checkpoint, monkeypatch):
    step = workflow._ModelRunner.step
    calls = []

    def killed_at_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    out = tmp_path / "out"
    template = out / "h_f{lead:03d}.grib2"
    with monkeypatch.context() as m:
        m.setattr(workflow._ModelRunner, "step", killed_at_the_third)
        res = downscale(*series, "-m", checkpoint, *BBOX, "-o", template)
    assert res.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["h_f003.grib2", "h_f006.grib2"]  # no partial, no temporary
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = downscale(*series, "-m", checkpoint, *BBOX, "-o", template, "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "1 step(s)" in res.output and "2 existing skipped" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["h_f003.grib2", "h_f006.grib2", "h_f009.grib2"]
    assert all((out / name).read_bytes() == data for name, data in before.items())


def test_memory_does_not_grow_with_the_steps(tmp_path, checkpoint):
    """Fields are read step by step and steps are written as they are done: the peak of a 16-step
    run is that of a 4-step one (reading every field first held ~12 MB more here)."""
    box = (10.0, 60.0, -140.0, -50.0)  # a wide source grid (201 x 361), a small target
    hourly = synthetic_hourly(48, 201, 361, seed=2)
    peaks = {}
    for steps in (1, 4, 16):  # the first run pays one-time costs (the terrain asset): a warm-up
        files = write_gfs_sequence(tmp_path / f"in{steps}", hourly, range(3, 3 * steps + 1, 3), box=box)
        cfg = DownscaleConfig(inputs=files, output=tmp_path / f"out{steps}.nc", model=checkpoint,
                              bbox=(31, 33, -99, -97), threads=1)
        tracemalloc.start()
        workflow.run_downscale(cfg, NullReporter())
        peaks[steps] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert xr.open_dataset(tmp_path / f"out{steps}.nc")["precipitation_amount"].shape[0] == steps
    assert peaks[16] - peaks[4] < 2_000_000, peaks


def test_binary_output_to_a_terminal_is_refused_in_one_line(tmp_path, series, checkpoint):
    parent, child = pty.openpty()
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        res = subprocess.run([sys.executable, "-m", "harpnet_cli", "downscale", str(series[0]), "-o", "-",
                              "-m", str(checkpoint)], stdout=child, stderr=subprocess.PIPE, env=env, timeout=300)
    finally:
        os.close(child)
        os.close(parent)
    assert res.returncode == 2
    err = res.stderr.decode()
    assert "terminal" in err and len(err.strip().splitlines()) == 1


def test_bf16_without_native_bfloat16_warns_and_runs_float32(tmp_path, series, checkpoint, monkeypatch):
    from harpnet_cli import devices

    monkeypatch.setattr(devices, "native_bf16", lambda *a: False)
    outs = {}
    for flag in ((), ("--bf16",)):
        out = tmp_path / f"out{len(flag)}.nc"
        res = downscale(series[0], "-m", checkpoint, *BBOX, "-o", out, *flag)
        assert res.exit_code == 0, res.output
        outs[flag] = xr.open_dataset(out)["precipitation_amount"].values
    assert "no native bfloat16" in res.output
    np.testing.assert_array_equal(outs[()], outs[("--bf16",)])


def test_the_model_runs_on_the_tile_chosen_for_the_domain(tmp_path, series, checkpoint):
    cfg = DownscaleConfig(inputs=series, output=tmp_path / "o.nc", model=checkpoint, bbox=(30.5, 39.5, -99.5, -90.5))
    from harpnet_cli.io.model_files import ModelFile

    lazy, _ = workflow._read_series(cfg, __import__("contextlib").ExitStack())
    engine = workflow.StepDownscaler.prepare(cfg, ModelFile(checkpoint), lazy, NullReporter())
    tile, overlap = choose_tile(engine.spec.fine_shape, native=64, multiple=16)
    assert tile > 64 and engine.patcher.tile == tile and engine.patcher.overlap == overlap
    assert engine.runner.config.tile == tile and engine.runner.tile_batch >= 1
    (k, fine, _), = list(engine.run(lazy, [0], lambda n: None))
    assert fine.shape == (1, *engine.spec.fine_shape) and np.isfinite(fine).all()
