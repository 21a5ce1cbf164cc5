"""Output planning and writing: folders of templates, the terminal, and outputs written step by step."""

from __future__ import annotations

import dataclasses
import io
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from harpnet_cli.errors import UsageError
from harpnet_cli.fields import FineForecast
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.outputs import OutputWriter, make_folders, plan_outputs, refuse_terminal, template_root

REF = datetime(2020, 3, 25, 18)


def forecast(steps: int = 3) -> FineForecast:
    spec = GridSpec.from_bbox(30, 31, -100, -99)
    data = np.random.default_rng(1).random((1, steps, *spec.fine_shape)).astype(np.float32)
    return FineForecast(data, spec.fine_lat(), spec.fine_lon(), spec.fine_lat_bounds(), spec.fine_lon_bounds(),
                        [REF + timedelta(hours=3 * k) for k in range(steps)],
                        [REF + timedelta(hours=3 * k + 3) for k in range(steps)], [None], REF, {"title": "t"})


def step(fc: FineForecast, k: int) -> FineForecast:
    return dataclasses.replace(fc, data=fc.data[:, k:k + 1], starts=[fc.starts[k]], ends=[fc.ends[k]])


def plans(template: Path, fc: FineForecast):  # noqa: ANN201
    return plan_outputs(template, starts=fc.starts, ends=fc.ends, members=[None], reference_time=REF)


def test_templates_create_their_folders(tmp_path: Path) -> None:
    fc = forecast()
    template = tmp_path / "out" / "{init:%Y%m%d%H}" / "sub_{lead:03d}" / "h.grib2"
    planned = plans(template, fc)
    make_folders(planned, template)
    assert all(p.path.parent.is_dir() for p in planned)
    make_folders(planned, template)  # again: the folders exist, fine
    assert template_root(template) == tmp_path / "out"


def test_a_symlinked_folder_named_by_the_template_is_refused(tmp_path: Path) -> None:
    fc = forecast(1)
    (tmp_path / "out").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "out" / "2020032518")
    template = tmp_path / "out" / "{init:%Y%m%d%H}" / "h_{lead:03d}.nc"
    with pytest.raises(UsageError, match="symbolic link"):
        make_folders(plans(template, fc), template)


def test_a_plain_output_makes_no_folder(tmp_path: Path) -> None:
    fc = forecast(1)
    make_folders(plans(tmp_path / "no" / "such" / "out.nc", fc), tmp_path / "no" / "such" / "out.nc")
    assert not (tmp_path / "no").exists()


class FakeTerminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_binary_output_to_a_terminal_is_refused() -> None:
    with pytest.raises(UsageError, match="terminal"):
        refuse_terminal(FakeTerminal())
    refuse_terminal(io.BytesIO())  # a pipe or a file is fine


@pytest.mark.parametrize(("suffix", "fmt", "mode"), [(".nc", "netcdf", "netcdf"), (".grib2", "grib2", "grib")])
def test_a_multi_step_file_grows_step_by_step(tmp_path: Path, suffix: str, fmt: str, mode: str) -> None:
    fc = forecast(3)
    (plan,) = plans(tmp_path / f"out{suffix}", fc)
    with OutputWriter(plan, fmt, starts=fc.starts, ends=fc.ends, overwrite=False) as writer:
        assert writer.mode == mode
        assert writer.add(0, step(fc, 0)) is None
        assert writer.add(1, step(fc, 1)) is None
        assert not plan.path.exists()  # renamed into place only when complete
        assert writer.add(2, step(fc, 2)) == plan.path
    if fmt == "netcdf":
        np.testing.assert_allclose(xr.open_dataset(plan.path)["precipitation_amount"].values, fc.data[0], rtol=1e-6)


def test_one_step_files_are_written_as_their_step_arrives(tmp_path: Path) -> None:
    fc = forecast(3)
    planned = plans(tmp_path / "h_{lead:03d}.nc", fc)
    writers = [OutputWriter(p, "netcdf", starts=[fc.starts[p.steps[0]]], ends=[fc.ends[p.steps[0]]], overwrite=False)
               for p in planned]
    assert writers[0].add(0, step(fc, 0)) == planned[0].path
    assert planned[0].path.exists() and not planned[1].path.exists()


@pytest.mark.parametrize(("suffix", "fmt"), [(".nc", "netcdf"), (".grib2", "grib2")])
def test_an_incomplete_output_leaves_nothing(tmp_path: Path, suffix: str, fmt: str) -> None:
    fc = forecast(3)
    (plan,) = plans(tmp_path / f"out{suffix}", fc)
    with pytest.raises(KeyboardInterrupt), OutputWriter(plan, fmt, starts=fc.starts, ends=fc.ends,
                                                        overwrite=False) as writer:
        writer.add(0, step(fc, 0))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with OutputWriter(plan, fmt, starts=fc.starts, ends=fc.ends, overwrite=False) as writer:
        writer.add(0, step(fc, 0))  # left without the other steps: removed, no error of its own
    assert list(tmp_path.iterdir()) == []
