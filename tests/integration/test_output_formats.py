"""The writer registry: a registered format is chosen by suffix or --format and its writer is called."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.config import GRIB_PACKINGS, DownscaleConfig
from harpnet_cli.formats import OUTPUT_FORMATS, OutputFormat, format_for, spoken
from harpnet_cli.io import grib_writer
from harpnet_cli.io.writers import get_writer
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()
BBOX = ("--bbox", "31,33,-99,-96")
TINY = {"channels": [8, 16], "bridge": 16}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=1, **TINY)


@pytest.fixture(scope="module")
def gfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gfs") / "gfs.t18z.pgrb2.0p25.f006"
    return write_gfs_grib(path, synthetic_hourly(6, seed=7), [(0, 3), (3, 6)])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Register a ``fake`` format (suffix ``.fake``) whose writer records its calls and writes a marker."""
    calls: list[dict[str, Any]] = []

    def write(target: Path, fc: Any, *, overwrite: bool = False, products: Any = None, **options: Any) -> None:
        calls.append({"target": target, "fc": fc, "overwrite": overwrite, "products": products, "options": options})
        Path(target).write_text("fake\n")

    module = types.ModuleType("fake_harpnet_writer")
    module.write = write  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_harpnet_writer", module)
    monkeypatch.setitem(OUTPUT_FORMATS, "fake", OutputFormat("fake", "fake_harpnet_writer:write", "Fake",
                                                            "a test format", suffixes=(".fake",)))
    return calls


def downscale(*args: object) -> Any:
    return runner.invoke(app, ["downscale", *map(str, args), "--device", "cpu"])


def test_a_registered_writer_is_chosen_by_its_suffix(tmp_path: Path, gfs: Path, checkpoint: Path,
                                                     fake: list[dict[str, Any]]) -> None:
    out = tmp_path / "x.FAKE"
    res = downscale(gfs, "-o", out, "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert [c["target"] for c in fake] == [out] and out.read_text() == "fake\n"
    call = fake[0]
    assert call["fc"].data.shape[:2] == (1, 2) and call["products"] is None and call["options"] == {}
    assert np.isfinite(call["fc"].data).any() and not call["overwrite"]


def test_format_option_picks_a_registered_writer_whatever_the_suffix(tmp_path: Path, gfs: Path, checkpoint: Path,
                                                                     fake: list[dict[str, Any]]) -> None:
    res = downscale(gfs, "-o", tmp_path / "x.nc", "--format", "fake", "-m", checkpoint, *BBOX)
    assert res.exit_code == 0, res.output
    assert [c["target"] for c in fake] == [tmp_path / "x.nc"]


def test_a_format_that_cannot_stream_is_refused_for_stdout(gfs: Path, checkpoint: Path,
                                                           fake: list[dict[str, Any]]) -> None:
    res = downscale(gfs, "-o", "-", "--format", "fake", "-m", checkpoint, *BBOX)
    assert res.exit_code == 2 and not fake
    assert "Fake cannot be written to standard output (it is not a stream format); give a file name, or " \
           "--format grib2" in res.output


def test_format_choices_are_the_registry() -> None:
    command = typer.main.get_command(app).commands["downscale"]  # type: ignore[attr-defined]
    option = next(p for p in command.params if "--format" in p.opts)
    assert option.help == f"{spoken(OUTPUT_FORMATS)}, overriding the output's suffix."
    assert list(OUTPUT_FORMATS) == ["netcdf", "grib2"]
    for name in OUTPUT_FORMATS:
        assert DownscaleConfig(inputs=[Path("a")], output=Path("out.x"), output_format=name).output_format == name
        assert callable(get_writer(name))
    res = runner.invoke(app, ["downscale", "a.grib2", "-o", "x.nc", "--format", "tiff"])
    assert res.exit_code == 2 and "output_format: Input should be 'netcdf' or 'grib2'" in res.output
    packing = next(p for p in command.params if "--grib-packing" in p.opts)
    assert packing.default == GRIB_PACKINGS[0] and spoken(GRIB_PACKINGS) in str(packing.help)
    assert set(GRIB_PACKINGS) == set(grib_writer.PACKING_TYPES)


def test_suffixes_come_from_the_registry() -> None:
    for name, fmt in OUTPUT_FORMATS.items():
        for suffix in fmt.suffixes:
            assert format_for(f"out{suffix}") == name and format_for(f"OUT{suffix.upper()}") == name
    assert format_for("-") == "grib2" and format_for("out.tif") == "netcdf"
    with pytest.raises(ValueError, match="unknown output format 'tiff'; known: netcdf, grib2"):
        get_writer("tiff")
