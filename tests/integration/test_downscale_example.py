"""``harpnet downscale example``, the default model and ``--plot``, end to end on CPU."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.default_model import ENV_VAR
from harpnet_cli.io.readers import read_accumulations
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.downscale import EXAMPLE_REFERENCE_TIME, write_example_input

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = {"channels": [4, 8], "bridge": 16}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("default") / "model.pt", seed=2, **SMALL)


@pytest.fixture
def default_model(monkeypatch: pytest.MonkeyPatch, checkpoint: Path) -> Path:
    monkeypatch.setenv(ENV_VAR, str(checkpoint))
    return checkpoint


def downscale(*args: object):
    return runner.invoke(app, ["downscale", *map(str, args)])


def test_example_input_is_a_deterministic_gfs_like_grib2_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = write_example_input(tmp_path / "a")
    assert "synthetic" in path.name and path.read_bytes()[:4] == b"GRIB"
    accs = read_accumulations([path])
    ref = EXAMPLE_REFERENCE_TIME
    assert [(a.start, a.end) for a in accs] == [(ref, ref + timedelta(hours=3)), (ref, ref + timedelta(hours=6))]
    assert all(a.reference_time == datetime(2000, 1, 1) for a in accs)
    padded = GridSpec.from_domain("conus").padded(1)
    assert accs[0].data.shape == padded.coarse_shape == (106, 242)
    again = read_accumulations([write_example_input(tmp_path / "b")])
    for a, b in zip(accs, again, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    series = to_interval_series(accs)[0]
    assert series.data.shape == (2, 106, 242) and np.nanmin(series.data) >= 0
    wet = (series.data > 0.1).mean(axis=(1, 2))
    assert ((wet > 0.1) & (wet < 0.6)).all()  # showers and bands, neither dry nor rain everywhere


@pytest.mark.slow
def test_quick_start_example_with_the_default_model_and_a_plot(tmp_path: Path, default_model: Path) -> None:
    out, png = tmp_path / "out.nc", tmp_path / "out.png"
    res = downscale("example", "-o", out, "--plot", png)
    assert res.exit_code == 0, res.output
    assert "416x960 fine" in res.output and "mass ratio 1.00" in res.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    ds = xr.open_dataset(out, engine="netcdf4")
    assert ds["precipitation_amount"].shape == (2, 416, 960)
    assert ds.attrs["harpnet_checkpoint"] == str(default_model)
    assert "synthetic" in ds.attrs["comment"] and "synthetic" in ds.attrs["input_files"]
    assert ds["time"].values[0] == np.datetime64("2000-01-01T03:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc", "out.png"]


def test_no_default_model_is_one_usage_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere.pt"))
    res = downscale("example", "-o", tmp_path / "o.nc")
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "no default model is installed" in res.output
    assert "--model" in res.output and "nowhere.pt" in res.output
    assert not (tmp_path / "o.nc").exists()


def test_example_must_be_the_only_input(tmp_path: Path, default_model: Path) -> None:
    res = downscale("example", "example", "-o", tmp_path / "o.nc")
    assert res.exit_code == 2 and "only input" in res.output


def test_default_model_runs_on_real_files_when_no_model_is_given(tmp_path: Path, default_model: Path) -> None:
    grib = write_gfs_grib(tmp_path / "gfs.f003", synthetic_hourly(3, seed=5), [(0, 3)])
    res = downscale(grib, "-o", tmp_path / "o.nc", "--bbox", "30,40,-100,-90")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "o.nc", engine="netcdf4")
    assert ds.attrs["harpnet_checkpoint"] == str(default_model)
    assert "comment" not in ds.attrs or "synthetic" not in ds.attrs["comment"]


def test_plot_shows_the_wettest_step_with_its_input(tmp_path: Path, default_model: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import harpnet_cli.io.plots as plots

    hourly = synthetic_hourly(6, seed=6)
    hourly[3:] *= 5.0  # the second window is much wetter
    grib = write_gfs_grib(tmp_path / "gfs.f006", hourly, [(0, 3), (0, 6)])
    seen = {}
    original = plots.plot_downscaled

    def spy(path, coarse, fine, terrain, lat, lon, *, title, overwrite, units, probability=None):
        seen.update(coarse=coarse, fine=fine, title=title, units=units)
        return original(path, coarse, fine, terrain, lat, lon, title=title, overwrite=overwrite, dpi=40, units=units)

    monkeypatch.setattr(plots, "plot_downscaled", spy)
    png = tmp_path / "p.png"
    res = downscale(grib, "-o", tmp_path / "o.nc", "--bbox", "30,40,-100,-90", "--plot", png)
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "step 2 of 2, the wettest" in seen["title"] and "2020-03-26 00:00 UTC" in seen["title"]
    assert grib.name in seen["title"] and seen["units"] == "mm"  # the input is named in the title
    expected = hourly[3:6].sum(0)[::-1]  # rows south -> north
    np.testing.assert_allclose(seen["coarse"], expected, atol=2e-3, rtol=1e-4)
    assert seen["fine"].shape == (164, 164)


def test_existing_plot_is_refused_before_any_work(tmp_path: Path, default_model: Path) -> None:
    png = tmp_path / "p.png"
    png.write_text("keep me")
    res = downscale("example", "-o", tmp_path / "o.nc", "--plot", png)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert png.read_text() == "keep me" and not (tmp_path / "o.nc").exists()
