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


# -- the face: flags anywhere, one-line errors, JSON errors, help, completion -------------------------
@pytest.mark.parametrize("name", sorted(c.name or c.callback.__name__ for c in app.registered_commands))
def test_help_shows_plain_metavars(name):
    res = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<list[" not in res.output and "<bool>" not in res.output and "<path>" not in res.output
    assert "<int>" not in res.output and "<str>" not in res.output


def test_downscale_help_examples_need_no_model_file():
    res = runner.invoke(app, ["downscale", "--help"], env={"COLUMNS": "200"})
    assert "FILE..." in res.output and "-o out.nc" in res.output
    assert "model.pt" not in res.output.split("Arguments")[0]  # the examples run on a fresh install
    assert "grib2|netcdf" in res.output.replace("netcdf|grib2", "grib2|netcdf")  # --format's choices


def test_global_flags_after_the_subcommand(tmp_path, monkeypatch):
    import harpnet_cli.workflows.downscale as wf

    seen = {}

    def fake(cfg, reporter=None):
        seen["settings"] = reporter.settings
        raise wf.UsageError("stop here")

    monkeypatch.setattr(wf, "run_downscale", fake)
    for flags, attr in ((["-q"], "quiet"), (["--verbose"], "verbose"), (["--debug"], "debug")):
        res = runner.invoke(app, ["downscale", "x", "-o", str(tmp_path / "o.nc"), *flags])
        assert getattr(seen["settings"], attr), (flags, res.output)
    from harpnet_cli.cli import _hoist_global_flags

    assert _hoist_global_flags(["downscale", "a", "--", "-v"], {"downscale"}) == ["downscale", "a", "--", "-v"]


def test_an_error_is_one_line_without_the_model_line(tmp_path):
    res = runner.invoke(app, ["downscale", str(tmp_path / "missing.grib2"), "-o", str(tmp_path / "o.nc")])
    assert res.exit_code in (2, 3)
    assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("error:"), res.output
    res = runner.invoke(app, ["downscale", str(tmp_path / "missing.grib2"), "-o", str(tmp_path / "o.nc"), "-v"])
    assert "model:" in res.output  # -v says everything, as it comes


def test_usage_errors_are_one_plain_line_without_a_terminal(tmp_path):
    for args in (["downscale", "x"], ["downscale", "x", "-o", "o.nc", "--bogus"], ["bogus"], ["--bogus"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("error: "), (args, res.output)


def test_json_error_object(tmp_path):
    import json

    res = runner.invoke(app, ["downscale", str(tmp_path / "missing.grib2"), "-o", str(tmp_path / "o.nc"), "--json"])
    assert res.exit_code == 3
    error = json.loads(res.stdout.strip().splitlines()[-1])
    assert error["exit_code"] == 3 and "missing.grib2" in error["error"]
    res = runner.invoke(app, ["downscale", "x", "--json"])  # usage error: no -o
    assert json.loads(res.stdout.strip().splitlines()[-1])["exit_code"] == 2
    res = runner.invoke(app, ["downscale", str(tmp_path / "missing.grib2"), "-o", "-", "--json"])
    assert res.stdout == "" and json.loads(res.stderr.strip().splitlines()[-1])["exit_code"] == 3


def test_verbose_prints_the_stage_timings(tmp_path):
    res = runner.invoke(app, ["downscale", "example", "-o", str(tmp_path / "o.nc"), "--bbox", "38,40,-106,-104",
                              "--device", "cpu", "-v"])
    assert res.exit_code == 0, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("timings:")]
    for stage in ("read", "remap", "model", "write"):
        assert f"{stage} " in line
    quiet = runner.invoke(app, ["downscale", "example", "-o", str(tmp_path / "q.nc"), "--bbox", "38,40,-106,-104",
                                "--device", "cpu"])
    assert "timings:" not in quiet.output


def complete(words: str) -> list[str]:
    env = {**os.environ, "_HARPNET_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    out = subprocess.run([sys.executable, "-m", "harpnet_cli"], env=env, capture_output=True, text=True).stdout
    return [line.split(",", 1)[-1] for line in out.splitlines()]


@pytest.mark.parametrize(("words", "expected"), [
    ("harpnet downscale x --format ", {"netcdf", "grib2"}),
    ("harpnet downscale x --grib-packing c", {"complex", "ccsds"}),
    ("harpnet downscale x --units ", {"mm", "in"}),
    ("harpnet train s --preset ", None),
    ("harpnet evaluate m --split ", {"test", "validation"}),
])
def test_completion_offers_option_values(words, expected):
    from harpnet_cli.registry import PRESETS

    got = set(complete(words))
    assert got == (expected if expected is not None else set(PRESETS)), got
