"""``harpnet downscale --samples N``: a stochastic model's members, end to end (NetCDF, GRIB2, the API)."""

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import harpnet
from harpnet_cli.cli import app
from harpnet_cli.config import DEFAULT_SAMPLES
from harpnet_cli.io.default_model import ENV_VAR, MODEL_FILE, STOCHASTIC_FILE
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib, write_gfs_sequence
from harpnet_cli.testing.models import make_random_checkpoint

runner = CliRunner()
BOX = "31,33,-99,-96"
TINY = {"channels": [8, 16], "bridge": 16}
SCALES = [1.0, 4.0]


def downscale(*args, env=None):
    return runner.invoke(app, ["downscale", *map(str, args), "--device", "cpu"], env={"COLUMNS": "200", **(env or {})})


def block_mean(a: np.ndarray) -> np.ndarray:
    *lead, h, w = a.shape
    return a.reshape(*lead, h // 4, 4, w // 4, 4).mean(axis=(-3, -1))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A folder laid out like the bundled default: model.pt (deterministic) and stochastic.pt."""
    d = tmp_path_factory.mktemp("default")
    make_random_checkpoint(d / MODEL_FILE, seed=1, **TINY)
    make_random_checkpoint(d / STOCHASTIC_FILE, seed=2, noise_scales=SCALES, **TINY)
    return d


@pytest.fixture(scope="module")
def gfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("gfs")
    return write_gfs_sequence(d, synthetic_hourly(6, seed=7), (3, 6))


def members(path) -> np.ndarray:
    p = xr.open_dataset(path, engine="netcdf4")["precipitation_amount"]
    assert p.dims == ("time", "realization", "latitude", "longitude")
    return p.values


def test_members_keep_each_cell_differ_and_repeat_with_the_seed(tmp_path, models, gfs):
    sto = models / STOCHASTIC_FILE
    runs = {}
    for name, extra in {"a": ["--samples", 4], "b": ["--samples", 4], "c": ["--samples", 4, "--seed", 9],
                        "two": ["--samples", 2]}.items():
        res = downscale(*gfs, "-o", tmp_path / f"{name}.nc", "-m", sto, "--bbox", BOX, "--members", *extra)
        assert res.exit_code == 0, res.output
        runs[name] = members(tmp_path / f"{name}.nc")
    a = runs["a"]
    assert a.shape[1] == 4
    ds = xr.open_dataset(tmp_path / "a.nc", engine="netcdf4")
    assert ds.attrs["harpnet_samples"] == "4" and ds.attrs["harpnet_seed"] == "0"
    assert "stochastic model, 4 sample(s)" in ds.attrs["source"]
    first = block_mean(a[:, 0])
    for m in range(1, 4):  # every member keeps each coarse cell's amount, and they differ below it
        np.testing.assert_allclose(block_mean(a[:, m]), first, atol=2e-3, rtol=1e-4)
        wet = first.repeat(4, -2).repeat(4, -1) > 0.1
        assert np.abs(a[:, m] - a[:, 0])[wet].mean() > 1e-3
    np.testing.assert_array_equal(runs["b"], a)  # the same seed, the same members
    assert np.abs(runs["c"] - a).max() > 1e-3  # another seed, other members
    np.testing.assert_allclose(runs["two"], a[:, :2], rtol=1e-5, atol=1e-6)  # member k does not depend on N
    assert not np.array_equal(a[0], a[1])  # steps draw their own noise


def test_mean_spread_probabilities_and_percentiles_from_the_samples(tmp_path, models, gfs):
    sto = models / STOCHASTIC_FILE
    every = tmp_path / "every.nc"
    assert downscale(*gfs, "-o", every, "-m", sto, "--bbox", BOX, "--members", "--samples", 5).exit_code == 0
    out = tmp_path / "p.nc"
    res = downscale(*gfs, "-o", out, "-m", sto, "--bbox", BOX, "--samples", 5, "--probabilities", "0.5,2",
                    "--percentiles", "10,50,90")
    assert res.exit_code == 0, res.output
    assert "x 5 member(s)" in res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    m = members(every)
    np.testing.assert_allclose(ds["precipitation_amount"].values, m.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds["precipitation_amount_spread"].values, m.std(axis=1), rtol=1e-4, atol=1e-5)
    p = ds["probability_of_precipitation_amount_above_threshold"].values
    np.testing.assert_allclose(p[:, 1], (m > 2.0).mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(np.unique(p) * 5, np.round(np.unique(p) * 5), atol=1e-6)  # k of 5 samples
    q = ds["precipitation_amount_percentile"]
    assert q.dims[:2] == ("time", "percentile")
    np.testing.assert_allclose(q.values[:, 1], np.percentile(m, 50, axis=1), rtol=1e-4, atol=1e-5)


def test_ensemble_input_times_samples(tmp_path, models):
    hourly = synthetic_hourly(3, members=2, seed=6)
    f = write_gfs_grib(tmp_path / "gefs.grib2", hourly, [(0, 3)], perturbation_numbers=[0, 1])
    out = tmp_path / "m.nc"
    res = downscale(f, "-o", out, "-m", models / STOCHASTIC_FILE, "--bbox", BOX, "--samples", 3, "--members")
    assert res.exit_code == 0, res.output
    m = members(out)
    assert m.shape[1] == 2 * 3
    np.testing.assert_allclose(block_mean(m[:, 0]), block_mean(m[:, 2]), atol=2e-3, rtol=1e-4)  # input member 0
    assert np.abs(block_mean(m[:, 0]) - block_mean(m[:, 3])).max() > 1e-2  # input member 1 differs


def test_grib2_members_are_template_4_11(tmp_path, models, gfs):
    from harpnet_cli.io.grib_writer import _eccodes

    out = tmp_path / "m.grib2"
    res = downscale(*gfs, "-o", out, "-m", models / STOCHASTIC_FILE, "--bbox", BOX, "--samples", 3, "--members")
    assert res.exit_code == 0, res.output
    eccodes = _eccodes()
    seen = []
    with open(out, "rb") as fh:
        while (gid := eccodes.codes_grib_new_from_file(fh)) is not None:
            seen.append((eccodes.codes_get(gid, "productDefinitionTemplateNumber"),
                         eccodes.codes_get(gid, "perturbationNumber"),
                         eccodes.codes_get(gid, "numberOfForecastsInEnsemble")))
            eccodes.codes_release(gid)
    assert sorted(seen) == sorted((11, k, 3) for k in range(3) for _ in range(2))


def test_the_default_stochastic_model_serves_samples_and_probabilities(tmp_path, models, gfs):
    env = {ENV_VAR: str(models / MODEL_FILE)}
    res = downscale(*gfs, "-o", tmp_path / "p.nc", "--bbox", BOX, "--probabilities", "1", env=env)
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "p.nc", engine="netcdf4")
    assert ds.attrs["harpnet_samples"] == str(DEFAULT_SAMPLES)
    assert ds.attrs["harpnet_checkpoint"].endswith(STOCHASTIC_FILE)
    res = downscale(*gfs, "-o", tmp_path / "d.nc", "--bbox", BOX, env=env)  # no samples: the deterministic default
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "d.nc", engine="netcdf4")
    assert "harpnet_samples" not in ds.attrs and ds.attrs["harpnet_checkpoint"].endswith(MODEL_FILE)


def test_a_stochastic_model_without_samples_draws_the_default_number(tmp_path, models, gfs):
    res = downscale(*gfs, "-o", tmp_path / "s.nc", "-m", models / STOCHASTIC_FILE, "--bbox", BOX)
    assert res.exit_code == 0, res.output
    assert f"x {DEFAULT_SAMPLES} member(s)" in res.output
    ds = xr.open_dataset(tmp_path / "s.nc", engine="netcdf4")
    assert "precipitation_amount_spread" in ds and ds.attrs["harpnet_samples"] == str(DEFAULT_SAMPLES)


def test_samples_refused_in_one_line(tmp_path, models, gfs):
    res = downscale(*gfs, "-o", tmp_path / "x.nc", "-m", models / MODEL_FILE, "--bbox", BOX, "--samples", 3)
    assert res.exit_code == 2 and "--samples needs a stochastic model" in res.output
    assert len(res.output.strip().splitlines()) == 1
    for bad in ("0", "-2", "x"):
        res = downscale(*gfs, "-o", tmp_path / "x.nc", "--bbox", BOX, "--samples", bad)
        assert res.exit_code == 2, res.output
    assert not (tmp_path / "x.nc").exists()


def test_plot_shows_the_probability_beside_the_mean(tmp_path, models, gfs):
    png = tmp_path / "p.png"
    res = downscale(*gfs, "-o", tmp_path / "p.nc", "-m", models / STOCHASTIC_FILE, "--bbox", BOX, "--samples", 3,
                    "--plot", png)
    assert res.exit_code == 0, res.output
    import matplotlib.image as mpimg

    h, w = mpimg.imread(png).shape[:2]
    plain = tmp_path / "d.png"
    assert downscale(*gfs, "-o", tmp_path / "d.nc", "-m", models / MODEL_FILE, "--bbox", BOX,
                     "--plot", plain).exit_code == 0
    assert w > 1.3 * mpimg.imread(plain).shape[1]  # a third panel


def test_api_returns_every_sample(tmp_path, models, gfs):
    import cfgrib  # noqa: F401  (the reader harpnet.downscale takes DataArrays from)

    da = xr.open_dataset(gfs[0], engine="cfgrib", indexpath="")["tp"]
    out = harpnet.downscale(da, model=models / STOCHASTIC_FILE, bbox=BOX, samples=3, seed=4)
    assert out.dims == ("time", "realization", "latitude", "longitude") and out.sizes["realization"] == 3
    assert list(out["realization"].values) == [0, 1, 2]
    again = harpnet.downscale(da, model=models / STOCHASTIC_FILE, bbox=BOX, samples=3, seed=4)
    np.testing.assert_array_equal(out.values, again.values)
    other = harpnet.downscale(da, model=models / STOCHASTIC_FILE, bbox=BOX, samples=3, seed=5)
    assert np.abs(other.values - out.values).max() > 1e-3
    res = downscale(gfs[0], "-o", tmp_path / "cli.nc", "-m", models / STOCHASTIC_FILE, "--bbox", BOX, "--samples", 3,
                    "--seed", 4, "--members")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(members(tmp_path / "cli.nc"), out.values, rtol=1e-5, atol=1e-4)  # the CLI's members
