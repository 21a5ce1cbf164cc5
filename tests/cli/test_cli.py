"""The command line itself: help, version, exit codes, completions, lazy imports."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harpnet_cli import __version__
from harpnet_cli.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"harpnet {__version__}"


def test_help_lists_exit_codes_and_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "downscale" in res.output
    assert "Exit codes" in res.output


@pytest.mark.parametrize("name", sorted(c.name or c.callback.__name__ for c in app.registered_commands))
def test_every_command_has_help(name):
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0, res.output
    command = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == name)
    assert command.callback.__doc__, f"{name} has no help text"


def test_train_help_shows_the_config_defaults_and_registry_choices():
    from harpnet_cli.config import TrainConfig
    from harpnet_cli.registry import LOSSES, PRESETS, one_of

    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"{one_of(PRESETS)}. [default: {TrainConfig.model_fields['preset'].default}]" in text
    assert f"{one_of(LOSSES)}. [default: {TrainConfig.model_fields['loss'].default}]" in text
    assert f"[default: {TrainConfig.model_fields['epochs'].default}]" in text and "[default: off]" in text


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from harpnet_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['downscale', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'xarray', 'eccodes', 'cfgrib', 'netCDF4', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_command_is_a_usage_error():
    assert runner.invoke(app, ["bogus"]).exit_code == 2


def test_bad_bbox_is_a_usage_error_in_one_line(tmp_path):
    res = runner.invoke(app, ["downscale", "x.grib2", "-o", str(tmp_path / "o.nc"), "--bbox", "1,2,3"])
    assert res.exit_code == 2
    assert "S,N,W,E" in res.output
    assert "Traceback" not in res.output


def test_bbox_and_domain_together_is_a_usage_error(tmp_path):
    res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc"), "--bbox", "30,40,-100,-90",
                              "--domain", "conus"])
    assert res.exit_code == 2
    assert "not both" in res.output


def test_unknown_domain(tmp_path):
    res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc"), "--domain", "mars"])
    assert res.exit_code == 2
    assert "conus" in res.output


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.nc"
    out.write_text("keep me")
    res = runner.invoke(app, ["downscale", "x", "-o", str(out), "--model", "m.pt"])
    assert res.exit_code == 2
    assert "--overwrite" in res.output
    assert out.read_text() == "keep me"


def test_missing_model_is_a_clear_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HARPNET_DEFAULT_MODEL", str(tmp_path / "no-default.pt"))  # as if none were installed
    res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc")])
    assert res.exit_code == 2
    assert "--model" in res.output
    assert not (tmp_path / "o.nc").exists()


def test_completions_are_current():
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_completions.py"), "--check"], check=True)


def test_bash_completion_completes_commands_and_options():
    env = {**os.environ, "_HARPNET_COMPLETE": "complete_bash", "COMP_WORDS": "harpnet down", "COMP_CWORD": "1"}
    out = subprocess.run([sys.executable, "-m", "harpnet_cli"], env=env, capture_output=True, text=True).stdout
    assert "downscale" in out
    env.update(COMP_WORDS="harpnet downscale --over", COMP_CWORD="2")
    out = subprocess.run([sys.executable, "-m", "harpnet_cli"], env=env, capture_output=True, text=True).stdout
    assert "--overwrite" in out


def test_os_errors_and_unexpected_errors_are_one_line(tmp_path, monkeypatch):
    import harpnet_cli.workflows.downscale as wf

    def denied(cfg, reporter=None):
        raise PermissionError(13, "Permission denied", str(tmp_path / "o.nc"))

    monkeypatch.setattr(wf, "run_downscale", denied)
    res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc"), "-m", "m.pt"])
    assert res.exit_code == 1
    assert res.output.strip() == f"error: {tmp_path / 'o.nc'}: Permission denied"

    def bug(cfg, reporter=None):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(wf, "run_downscale", bug)
    res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc"), "-m", "m.pt"])
    assert res.exit_code == 1
    assert "RuntimeError: first line" in res.output and "second line" not in res.output
    assert "--debug" in res.output
    res = runner.invoke(app, ["--debug", "downscale", "x", "-o", str(tmp_path / "o.nc"), "-m", "m.pt"])
    assert isinstance(res.exception, RuntimeError)  # --debug lets the traceback through
