"""``harpnet downscale --model ENSEMBLE`` (HARPNET-E) end to end: NetCDF and GRIB2 products."""

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.io.ensembles import save_ensemble
from harpnet_cli.testing.fixtures import synthetic_hourly, write_gfs_grib, write_gfs_sequence
from harpnet_cli.testing.models import make_random_checkpoint
from harpnet_cli.workflows.models import load_model

runner = CliRunner()
BOX = "31,33,-99,-96"
TINY = {"channels": [8, 16], "bridge": 16}
M = 3


def downscale(*args):
    return runner.invoke(app, ["downscale", *map(str, args), "--device", "cpu"], env={"COLUMNS": "200"})


def block_mean(a: np.ndarray) -> np.ndarray:
    *lead, h, w = a.shape
    return a.reshape(*lead, h // 4, 4, w // 4, 4).mean(axis=(-3, -1))


def make_ensemble(path, n=M, **overrides):
    members = []
    for i in range(n):
        ckpt = make_random_checkpoint(path.parent / f"m{i}.pt", seed=10 + i, **{**TINY, **overrides})
        model, meta = load_model(ckpt)
        members.append({"epoch": i + 1, "config": meta["config"], "model": model.state_dict(), "test_loss": None})
    return save_ensemble(path, members, {"epochs": list(range(1, n + 1))})


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    return make_ensemble(tmp_path_factory.mktemp("ens") / "ens.pt")


@pytest.fixture(scope="module")
def gfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("gfs")
    hourly = synthetic_hourly(6, seed=7)
    files = write_gfs_sequence(d, hourly, (3, 6))
    expected = np.stack([hourly[a:b].sum(0)[::-1] for a, b in ((0, 3), (3, 6))])
    return files, expected


@pytest.fixture(scope="module")
def members_nc(tmp_path_factory, ens, gfs):
    out = tmp_path_factory.mktemp("members") / "members.nc"
    res = downscale(*gfs[0], "-o", out, "-m", ens, "--bbox", BOX, "--members")
    assert res.exit_code == 0, res.output
    return xr.open_dataset(out, engine="netcdf4")


def expected_box(expected, ds):
    """The coarse input cells under the fine output (fixture grid rows south -> north)."""
    from harpnet_cli.testing.fixtures import box_axes

    lat, lon = box_axes()
    clat = block_mean(ds["latitude"].values[None, :, None].repeat(4, 2))[0, :, 0]
    clon = block_mean(ds["longitude"].values[None, None, :].repeat(4, 1))[0, 0]
    iy = np.searchsorted(np.sort(lat), clat - 1e-6)
    ix = np.searchsorted(lon, clon - 1e-6)
    return expected[:, iy][:, :, ix]


def test_mean_and_spread_netcdf_conserve(tmp_path, ens, gfs, members_nc):
    out = tmp_path / "out.nc"
    res = downscale(*gfs[0], "-o", out, "-m", ens, "--bbox", BOX)
    assert res.exit_code == 0, res.output
    assert f"x {M} member(s)" in res.output and "mass ratio 1.00" in res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    mean, spread = ds["precipitation_amount"], ds["precipitation_amount_spread"]
    assert mean.dims == spread.dims == ("time", "latitude", "longitude")
    assert "Ensemble mean" in mean.attrs["long_name"] and mean.attrs["standard_name"] == "precipitation_amount"
    assert "standard deviation" in spread.attrs["long_name"] and "standard_name" not in spread.attrs
    assert spread.attrs["units"] == "kg m-2" and int(ds.attrs["harpnet_ensemble_size"]) == M
    assert ds.attrs["harpnet_ensemble_epochs"] == "1, 2, 3"
    assert float(spread.min()) >= 0 and float(spread.max()) > 0  # the members differ
    np.testing.assert_allclose(block_mean(mean.values), expected_box(gfs[1], ds), atol=2e-3, rtol=1e-4)
    # the file's mean and spread are those of the --members file
    members = members_nc["precipitation_amount"].values.astype(np.float64)  # (time, realization, lat, lon)
    np.testing.assert_allclose(mean.values, members.mean(1), atol=1e-4)
    np.testing.assert_allclose(spread.values, members.std(1), atol=1e-4)


def test_members_realization_axis_each_conserves(ens, gfs, members_nc):
    p = members_nc["precipitation_amount"]
    assert p.dims == ("time", "realization", "latitude", "longitude") and p.shape[1] == M
    assert list(members_nc["realization"].values) == list(range(M))
    assert "precipitation_amount_spread" not in members_nc
    want = expected_box(gfs[1], members_nc)
    for m in range(M):
        np.testing.assert_allclose(block_mean(p.values[:, m]), want, atol=2e-3, rtol=1e-4)


def test_probabilities_in_unit_interval_non_increasing(tmp_path, ens, gfs):
    out = tmp_path / "p.nc"
    res = downscale(*gfs[0], "-o", out, "-m", ens, "--bbox", BOX, "--probabilities", "10,0.5,2")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out, engine="netcdf4")
    p = ds["probability_of_precipitation_amount_above_threshold"]
    assert p.dims == ("time", "threshold", "latitude", "longitude") and p.attrs["units"] == "1"
    thr = ds["threshold"]
    assert list(thr.values) == [0.5, 2.0, 10.0] and "standard_name" not in thr.attrs  # one precipitation_amount
    assert thr.attrs["units"] == "kg m-2"
    v = p.values
    assert np.nanmin(v) >= 0 and np.nanmax(v) <= 1 and np.nanmax(v) > 0
    assert (np.diff(v, axis=1) <= 0).all()
    np.testing.assert_allclose(np.unique(v) * M, np.round(np.unique(v) * M), atol=1e-6)  # k of M members
    assert "precipitation_amount_spread" in ds  # probabilities come on top of mean and spread


def _grib_keys(path):
    from harpnet_cli.io.grib_writer import _eccodes

    eccodes = _eccodes()
    keys = []
    with open(path, "rb") as f:
        while (gid := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                pdt = eccodes.codes_get(gid, "productDefinitionTemplateNumber")
                row = {"pdt": pdt, "endStep": eccodes.codes_get(gid, "endStep"),
                       "values": eccodes.codes_get_values(gid)}
                if pdt == 12:
                    row["derived"] = eccodes.codes_get(gid, "derivedForecast")
                    row["size"] = eccodes.codes_get(gid, "numberOfForecastsInEnsemble")
                if pdt == 11:
                    row["member"] = eccodes.codes_get(gid, "perturbationNumber")
                if pdt == 9:
                    row["threshold"] = eccodes.codes_get(gid, "scaledValueOfLowerLimit") / 10 ** eccodes.codes_get(
                        gid, "scaleFactorOfLowerLimit")
                keys.append(row)
            finally:
                eccodes.codes_release(gid)
    return keys


def test_grib2_one_file_per_product(tmp_path, ens, gfs):
    out = tmp_path / "out.grib2"
    res = downscale(*gfs[0], "-o", out, "-m", ens, "--bbox", BOX, "--probabilities", "1,5", "--percentiles", "10,90")
    assert res.exit_code == 0, res.output
    assert not out.exists() and "6 files" in res.output
    expect = {"mean": (12, 0, None), "spread": (12, 4, None), "prob_gt_1mm": (9, None, 1.0),
              "prob_gt_5mm": (9, None, 5.0), "p10": (10, None, None), "p90": (10, None, None)}
    for name, (pdt, derived, threshold) in expect.items():
        msgs = _grib_keys(tmp_path / f"out_{name}.grib2")
        assert [(r["pdt"], r.get("derived"), r.get("threshold")) for r in msgs] == [(pdt, derived, threshold)] * 2
        assert [r["endStep"] for r in msgs] == [3, 6]
        assert all(r["size"] == M for r in msgs if r["pdt"] == 12)
    p1 = np.stack([r["values"] for r in _grib_keys(tmp_path / "out_prob_gt_1mm.grib2")])
    p5 = np.stack([r["values"] for r in _grib_keys(tmp_path / "out_prob_gt_5mm.grib2")])
    assert p1.min() >= 0 and p1.max() <= 100 and (p1 >= p5 - 1e-6).all()
    q10 = np.stack([r["values"] for r in _grib_keys(tmp_path / "out_p10.grib2")])
    q90 = np.stack([r["values"] for r in _grib_keys(tmp_path / "out_p90.grib2")])
    assert (q90 >= q10 - 0.01).all()

    out = tmp_path / "members.grib2"
    res = downscale(*gfs[0], "-o", out, "-m", ens, "--bbox", BOX, "--members")
    assert res.exit_code == 0, res.output
    msgs = _grib_keys(out)  # one product: the file itself
    assert [(r["pdt"], r["member"]) for r in msgs] == [(11, m) for m in range(M)] * 2


def test_product_template_field_and_stdout_stream(tmp_path, ens, gfs):
    for name in ("mean", "spread", "p50"):
        (tmp_path / name).mkdir()
    res = downscale(*gfs[0], "-o", tmp_path / "{product}" / "h.nc", "-m", ens, "--bbox", BOX, "--percentiles", "50")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "p50" / "h.nc", engine="netcdf4")
    assert ds.attrs["harpnet_product"] == "p50" and "precipitation_amount" not in ds
    assert list(ds["precipitation_amount_percentile"].dims) == ["time", "percentile", "latitude", "longitude"]
    single = make_random_checkpoint(tmp_path / "one.pt", seed=1, **TINY)
    res = downscale(*gfs[0], "-o", tmp_path / "x_{product}.nc", "-m", single, "--bbox", BOX)
    assert res.exit_code == 2 and "{product}" in res.output
    # a stream holds every product (valid GRIB2 for grib_ls, pygrib, wgrib2 and GDAL)
    res = runner.invoke(app, ["downscale", *map(str, gfs[0]), "-o", "-", "-m", str(ens), "--bbox", BOX,
                              "--device", "cpu", "--percentiles", "50"])
    assert res.exit_code == 0
    assert res.stdout_bytes.count(b"GRIB") == res.stdout_bytes.count(b"7777") == 2 * 3


def test_grib2_template_one_file_per_step_and_product(tmp_path, ens, gfs):
    res = downscale(*gfs[0], "-o", tmp_path / "h_{product}_f{lead:03d}.grib2", "-m", ens, "--bbox", BOX,
                    "--probabilities", "1")
    assert res.exit_code == 0, res.output
    for lead in (3, 6):
        for name, pdt in (("mean", 12), ("spread", 12), ("prob_gt_1mm", 9)):
            msgs = _grib_keys(tmp_path / f"h_{name}_f{lead:03d}.grib2")
            assert [r["pdt"] for r in msgs] == [pdt] and {r["endStep"] for r in msgs} == {lead}


def test_gefs_input_times_ensemble_model(tmp_path, ens):
    hourly = synthetic_hourly(3, members=2, seed=6)
    f = write_gfs_grib(tmp_path / "gefs.grib2", hourly, [(0, 3)], perturbation_numbers=[0, 1])
    res = downscale(f, "-o", tmp_path / "m.nc", "-m", ens, "--bbox", BOX, "--members")
    assert res.exit_code != 0 and "two member axes" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = downscale(f, "-o", tmp_path / "s.nc", "-m", ens, "--bbox", BOX)
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "s.nc", engine="netcdf4")
    assert int(ds.attrs["harpnet_ensemble_size"]) == 2 * M and "realization" not in ds.dims


def test_refusals_are_one_line(tmp_path, gfs):
    ckpt = make_random_checkpoint(tmp_path / "single.pt", seed=1, **TINY)
    for flag in (["--members"], ["--probabilities", "1"], ["--percentiles", "50"]):
        res = downscale(*gfs[0], "-o", tmp_path / "x.nc", "-m", ckpt, "--bbox", BOX, *flag)
        assert res.exit_code == 2 and "need members: a stochastic model" in res.output, res.output
    res = downscale(*gfs[0], "-o", tmp_path / "x.grib2", "-m", ckpt, "--bbox", BOX, "--percentiles", "2.5")
    assert res.exit_code == 2 and "whole numbers" in res.output, res.output
    wind = make_ensemble(tmp_path / "wind.pt", n=2, coarse_inputs=["precip", "u", "v"])
    res = downscale(*gfs[0], "-o", tmp_path / "x.nc", "-m", wind, "--bbox", BOX)
    assert res.exit_code == 2 and "u, v" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    res = downscale(*gfs[0], "-o", tmp_path / "x.nc", "-m", wind, "--bbox", BOX, "--probabilities", "1,x")
    assert res.exit_code == 2
