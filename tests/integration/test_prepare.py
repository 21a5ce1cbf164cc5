"""``harpnet prepare``: synthetic and file sources into a store; resume; workers; bad input."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from harpnet_cli.cli import app
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.store import TrainingStore
from harpnet_cli.splits import TEST, TRAIN, VAL

runner = CliRunner()
#: a small box over the Colorado Rockies (25 x 33 coarse cells, 6 tiles)
BOX = "36,42,-112,-104"


def prepare(*args):
    return runner.invoke(app, ["prepare", *map(str, args)])


def arrays(path) -> dict[str, np.ndarray]:
    s = TrainingStore.open(path)
    n = len(s)
    return {name: np.asarray(getattr(s, name)[:n]) for name in ("coarse", "fine", "tile", "time", "split", "state")}


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "store.zarr"
    res = prepare("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3)
    assert res.exit_code == 0, res.output
    return out, res.output


def test_synthetic_store_contents(synthetic_store):
    out, summary = synthetic_store
    s = TrainingStore.open(out)
    assert s.is_complete and len(s) > 0
    a = arrays(out)
    assert a["coarse"].shape[1:] == (1, 18, 18) and a["fine"].shape[1:] == (1, 64, 64)
    assert (a["fine"] >= 0).all() and np.isfinite(a["fine"]).all()
    assert a["state"].shape[1] >= 2 and s.state_names[:2] == ["u", "v"]
    # every tile of one time stamp is in one split
    for t in np.unique(a["time"]):
        assert len(np.unique(a["split"][a["time"] == t])) == 1
    # the coarse input is the block mean of the fine target where they overlap (16 x 16 centre)
    centre = a["coarse"][:, 0, 1:-1, 1:-1]
    block = a["fine"][:, 0].reshape(-1, 16, 4, 16, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(block, centre, rtol=2e-3, atol=1e-3)
    assert s.stats["coarse_log1p_std"] > 0
    assert s.manifest["grid"]["ny"] == GridSpec.from_bbox(36, 42, -112, -104).ny
    assert "samples" in summary and "dry fraction" in summary


def test_synthetic_splits_follow_water_years(synthetic_store):
    out, _ = synthetic_store
    a = arrays(out)
    times = a["time"].astype("datetime64[s]")
    assert (times[a["split"] == VAL] > np.datetime64("2005-10-01")).all()
    assert (times[a["split"] != VAL] <= np.datetime64("2005-10-01")).all()
    assert set(np.unique(a["split"])) <= {TRAIN, TEST, VAL}


def test_resume_after_a_kill_equals_an_uninterrupted_run(synthetic_store, tmp_path, monkeypatch):
    import harpnet_cli.workflows.prepare as wf

    reference, reference_summary = synthetic_store
    out = tmp_path / "store.zarr"
    real = wf.compute_unit
    calls = {"n": 0}

    def dies_at_the_fifth(cfg, vs, unit):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(cfg, vs, unit)

    monkeypatch.setattr(wf, "compute_unit", dies_at_the_fifth)
    args = ("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3)
    assert prepare(*args).exit_code == 130
    assert not TrainingStore.open(out).is_complete
    monkeypatch.setattr(wf, "compute_unit", real)
    res = prepare(*args)
    assert res.exit_code == 0, res.output
    assert "resum" in res.output
    a, b = arrays(reference), arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert TrainingStore.open(out).stats == TrainingStore.open(reference).stats
    # the resumed run reports the whole store: counts and dry fraction as the uninterrupted run's
    assert TrainingStore.open(out).counts["dropped"] == TrainingStore.open(reference).counts["dropped"]

    def figures(summary):
        return re.search(r"(\d+ samples \(.*\), dry fraction [\d.]+%)", summary).group(1)

    assert figures(res.output) == figures(reference_summary)


def test_complete_store_is_not_redone_and_other_options_are_refused(synthetic_store):
    out, _ = synthetic_store
    res = prepare("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3)
    assert res.exit_code == 2 and "already complete" in res.output
    res = prepare("synthetic", "-o", out, "--samples", 13, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3)
    assert res.exit_code == 2 and "other options" in res.output


@pytest.mark.slow
def test_two_workers_give_the_same_store(synthetic_store, tmp_path):
    reference, _ = synthetic_store
    out = tmp_path / "w2.zarr"
    res = prepare("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3,
                  "--workers", 2)
    assert res.exit_code == 0, res.output
    a, b = arrays(reference), arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_dask_scheduler_gives_the_same_store(synthetic_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    reference, _ = synthetic_store
    out = tmp_path / "dask.zarr"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        res = prepare("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3,
                      "--scheduler", c.scheduler_address)
    assert res.exit_code == 0, res.output
    a, b = arrays(reference), arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_plots_are_written(tmp_path):
    res = prepare("synthetic", "-o", tmp_path / "s.zarr", "--samples", 2, "--bbox", BOX, "--plot", tmp_path / "png")
    assert res.exit_code == 0, res.output
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.parametrize("content", [b"", b"not a file we know\n"])
def test_bad_input_file_is_one_line_and_leaves_no_store(tmp_path, content):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(content)
    res = prepare(bad, "-o", tmp_path / "s.zarr")
    assert res.exit_code == 3, res.output
    assert "bad.nc" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "s.zarr").exists()


def test_synthetic_cannot_be_mixed_with_files(tmp_path):
    res = prepare("synthetic", tmp_path / "x.nc", "-o", tmp_path / "s.zarr")
    assert res.exit_code == 2 and "synthetic" in res.output


def test_conus404_hourly_files_into_three_hour_windows(tmp_path):
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_conus404_hourly

    hourly = synthetic_hourly(9, 150, 130, seed=21)  # 4 km Lambert grid, about 600 x 520 km
    files = write_conus404_hourly(tmp_path / "c404", hourly, datetime(2010, 7, 1, 1), skip=[4])  # no 05Z
    out = tmp_path / "c404.zarr"
    res = prepare(*files, "-o", out, "--bbox", "36.5,40.5,-99,-95", "--keep-dry", 1.0)
    assert res.exit_code == 0, res.output
    assert "incomplete" in res.output  # the 03-06Z window lacks an hour
    s = TrainingStore.open(out)
    a = arrays(out)
    ends = np.unique(a["time"].astype("datetime64[s]"))
    assert list(ends) == [np.datetime64("2010-07-01T03:00"), np.datetime64("2010-07-01T09:00")]
    assert len(s) == 2 * 4  # 17 x 17 coarse cells: 2 x 2 tiles per window, all kept
    # each window is the sum of its three hours, conservatively remapped: totals agree
    centre = a["coarse"][:, 0, 1:-1, 1:-1]
    block = a["fine"][:, 0].reshape(-1, 16, 4, 16, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(block, centre, rtol=1e-3, atol=1e-3)
    assert 0.5 < a["fine"].mean() / (hourly[:3].mean() * 3) < 2.0
    assert s.manifest["source_kind"] == "files"


def test_fill_values_in_observations_are_missing_not_dry(tmp_path):
    """-9999 in a CONUS404-like hour is missing data (its tiles dropped), never a dry 0 mm."""
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_conus404_hourly

    hourly = synthetic_hourly(3, 150, 130, seed=5)
    hourly[1, :, :] = -9999.0
    files = write_conus404_hourly(tmp_path / "c404", hourly, datetime(2010, 7, 1, 1))
    out = tmp_path / "f.zarr"
    res = prepare(*files, "-o", out, "--bbox", "36.5,40.5,-99,-95", "--keep-dry", 1.0)
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(out)
    assert len(s) == 0 and s.counts["dropped"]["missing_data"] == 4


def test_negative_observations_are_refused_in_one_line(tmp_path):
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_conus404_hourly

    hourly = synthetic_hourly(3, 150, 130, seed=5)
    hourly[2] = -hourly[2] - 1.0
    files = write_conus404_hourly(tmp_path / "c404", hourly, datetime(2010, 7, 1, 1))
    res = prepare(*files, "-o", tmp_path / "n.zarr", "--bbox", "36.5,40.5,-99,-95")
    assert res.exit_code == 3 and "negative amounts" in res.output and "Traceback" not in res.output, res.output
    assert res.output.strip().splitlines()[-1].startswith(f"error: {files[2]}")


def test_moving_nest_is_refused(tmp_path):
    from harpnet_cli.testing.fixtures import synthetic_hourly, write_wrf_netcdf

    f = write_wrf_netcdf(tmp_path / "wrfout_d02.nc", synthetic_hourly(3, 10, 12, seed=7), moving=True)
    res = prepare(f, "-o", tmp_path / "s.zarr")
    assert res.exit_code == 3
    assert "moving nest" in res.output and "wrfout_d02.nc" in res.output
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.shared
@pytest.mark.slow
def test_real_mrms_gauge_corrected_hours(shared_data, tmp_path):
    files = sorted((shared_data / "train" / "mrms-gaugecorr-2016-09-20").glob("*.grib2"))
    out = tmp_path / "mrms.zarr"
    res = prepare(*files, "-o", out, "--bbox", "38,42,-95,-87", "--keep-dry", 0.5)  # the Midwest floods
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(out)
    a = arrays(out)
    assert len(np.unique(a["time"])) <= 23 and len(s) > 0
    assert (a["fine"] >= 0).all() and np.isfinite(a["fine"]).all()
    assert a["fine"].max() < 300  # quality control
    assert s.counts["windows_dropped"]["incomplete"] == 2
    assert s.manifest["validation_start"] is None  # three days: no validation year


def test_disk_full_is_one_line_and_the_store_resumes(synthetic_store, tmp_path, monkeypatch):
    import errno

    reference, _ = synthetic_store
    out = tmp_path / "full.zarr"
    real = TrainingStore.append
    calls = {"n": 0}

    def disk_full(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "fine"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TrainingStore, "append", disk_full)
    args = ("synthetic", "-o", out, "--samples", 12, "--bbox", BOX, "--keep-dry", 0.5, "--seed", 3)
    res = prepare(*args)
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == f"error: {out / 'fine'}: No space left on device"
    s = TrainingStore.open(out)
    assert len(s.done_units()) == 3 and not s.is_complete
    monkeypatch.setattr(TrainingStore, "append", real)
    assert prepare(*args).exit_code == 0
    a, b = arrays(reference), arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_unknown_variable_is_one_line(tmp_path):
    from harpnet_cli.testing.fixtures import synthetic_hourly, write_cf_netcdf

    f = write_cf_netcdf(tmp_path / "obs.nc", synthetic_hourly(6, seed=1), period_hours=3)
    res = prepare(f, "-o", tmp_path / "s.zarr", "--variable", "nope")
    assert res.exit_code == 3
    assert "obs.nc" in res.output and "nope" in res.output and "Traceback" not in res.output


def test_interpolate_remap_option(tmp_path):
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_conus404_hourly

    files = write_conus404_hourly(tmp_path / "c404", synthetic_hourly(3, 150, 130, seed=5), datetime(2010, 7, 1, 1))
    out = tmp_path / "i.zarr"
    res = prepare(*files, "-o", out, "--bbox", "36.5,40.5,-99,-95", "--keep-dry", 1.0, "--remap", "interpolate")
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(out)
    assert len(s) == 4 and s.manifest["remap"] == "interpolate"


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    """A real kill -9 of the process while it writes, then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["synthetic", "--samples", "40", "--bbox", BOX, "--keep-dry", "0.5", "--seed", "9"]
    ref = tmp_path / "ref.zarr"
    assert prepare(*args[:1], "-o", ref, *args[1:]).exit_code == 0
    out = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "harpnet_cli", "-q", "prepare", args[0], "-o", str(out), *args[1:]]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(TrainingStore.open(out).done_units()) >= 5:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        except Exception:  # the store is not there yet
            pass
        time.sleep(0.05)
    proc.wait()
    if not killed:
        pytest.skip("the run finished before it could be killed")
    assert not TrainingStore.open(out).is_complete
    assert subprocess.run(cmd).returncode == 0
    a, b = arrays(ref), arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def gappy_mrms(tmp_path_factory):
    """Nine MRMS-like hours (3-hour windows ending 21Z on 20 September, 00Z and 03Z on the 21st)
    whose western 1.5° lie outside the network's coverage."""
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_mrms_series

    box = (36.0, 42.0, -100.0, -92.0)
    hourly = synthetic_hourly(9, 121, 161, seed=5)  # 0.05° cells
    hourly[:, :, :30] = np.nan  # west of 98.5° W: no coverage (written as MRMS's -3)
    return write_mrms_series(tmp_path_factory.mktemp("gappy"), hourly, datetime(2016, 9, 20, 19), box=box,
                             step=0.05)


GAPPY_AREA = ("--bbox", "36.5,41.5,-99.5,-92.5", "--keep-dry", 1.0, "--test-fraction", 0)


def test_max_missing_keeps_partly_observed_training_tiles(gappy_mrms, tmp_path):
    whole, partial = tmp_path / "whole.zarr", tmp_path / "partial.zarr"
    assert prepare(*gappy_mrms, "-o", whole, *GAPPY_AREA).exit_code == 0
    res = prepare(*gappy_mrms, "-o", partial, *GAPPY_AREA, "--max-missing", 0.5)
    assert res.exit_code == 0, res.output
    w, p = arrays(whole), arrays(partial)
    assert np.isfinite(w["fine"]).all() and (w["split"] == TRAIN).all()
    n_partial = len(p["fine"]) - len(w["fine"])  # the western tiles come back
    assert n_partial > 0 and len(w["fine"]) > 0
    unobserved = np.isnan(p["fine"][:, 0])
    frac = unobserved.mean(axis=(1, 2))
    assert (frac > 0).sum() == n_partial and frac.max() <= 0.5
    assert np.isfinite(p["coarse"]).all()  # inputs are filled, as downscale fills gaps
    # unobserved cells are whole coarse cells, and observed cells still nest in their coarse input
    blocks = unobserved.reshape(-1, 16, 4, 16, 4)
    assert (blocks.all(axis=(2, 4)) == blocks.any(axis=(2, 4))).all()
    mean = p["fine"][:, 0].reshape(-1, 16, 4, 16, 4).mean(axis=(2, 4))  # NaN over unobserved cells
    seen = ~blocks.any(axis=(2, 4))
    np.testing.assert_allclose(mean[seen], p["coarse"][:, 0, 1:-1, 1:-1][seen], rtol=1e-3, atol=1e-3)
    store = TrainingStore.open(partial)
    assert store.counts["dropped"]["partial"] == n_partial
    assert store.stats["count"] == len(p["fine"]) and np.isfinite(store.stats["fine_log1p_mean"])


def test_max_missing_leaves_test_and_validation_tiles_whole(gappy_mrms, tmp_path):
    out = tmp_path / "val.zarr"
    res = prepare(*gappy_mrms, "-o", out, *GAPPY_AREA, "--max-missing", 0.5, "--validation-start", "2016-09-20")
    assert res.exit_code == 0, res.output
    a = arrays(out)
    assert len(a["fine"]) and (a["split"] == VAL).all() and np.isfinite(a["fine"]).all()


def test_partly_observed_tiles_train_and_evaluate(gappy_mrms, tmp_path):
    import json

    store = tmp_path / "partial.zarr"  # 20 September trains (with partial tiles), the 21st validates
    res = prepare(*gappy_mrms, "-o", store, *GAPPY_AREA, "--max-missing", 0.5, "--validation-start", "2016-09-21")
    assert res.exit_code == 0, res.output
    a = arrays(store)
    assert np.isnan(a["fine"][a["split"] == TRAIN]).any() and (a["split"] == VAL).any()
    res = runner.invoke(app, ["train", str(store), "-o", str(tmp_path / "run"), "--epochs", "1",
                              "--batch-size", "4", "--preset", "lite", "--loss", "mae"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "run" / "history.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["train_loss"]) and record["train_samples"] == (a["split"] == TRAIN).sum()
    # scores and the fitted ratio baseline use whole tiles only: as if the partial ones were dropped
    whole = tmp_path / "whole.zarr"
    assert prepare(*gappy_mrms, "-o", whole, *GAPPY_AREA, "--validation-start", "2016-09-21").exit_code == 0
    rows = []
    for data in (store, whole):
        out = tmp_path / f"{data.stem}.json"
        res = runner.invoke(app, ["evaluate", str(tmp_path / "run" / "checkpoints" / "epoch_001.pt"), "--data",
                                  str(data), "--split", "validation", "--json", str(out)])
        assert res.exit_code == 0, res.output
        rows.append(json.loads(out.read_text())["rows"])
    assert rows[0].keys() == rows[1].keys() and "ratio" in rows[0]
    for name in rows[0]:
        assert rows[0][name]["continuous"] == rows[1][name]["continuous"], name


def test_overlap_cuts_more_tiles_shifted_by_whole_coarse_cells(tmp_path):
    stores = {}
    for overlap in (16, 32):
        out = tmp_path / f"o{overlap}.zarr"
        res = prepare("synthetic", "-o", out, "--samples", 1, "--bbox", BOX, "--keep-dry", 1.0, "--overlap", overlap)
        assert res.exit_code == 0, res.output
        stores[overlap] = TrainingStore.open(out)
    origins = {k: np.asarray(s.tile_origin[:]) for k, s in stores.items()}
    assert len(origins[32]) > len(origins[16])
    assert (origins[32] % 4 == 0).all() and stores[32].manifest["tile"]["overlap"] == 32
    steps = np.diff(np.unique(origins[32][:, 1]))
    assert steps.max() <= 64 - 32 + 4  # neighbours overlap by at least 32 cells, give or take alignment
    # the same field cut two ways: a tile at the same origin holds the same values
    a, b = arrays(tmp_path / "o16.zarr"), arrays(tmp_path / "o32.zarr")
    shared = [(i, j) for i, o in enumerate(origins[16]) for j, p in enumerate(origins[32]) if (o == p).all()]
    assert shared
    for i, j in shared:
        np.testing.assert_array_equal(a["fine"][a["tile"] == i], b["fine"][b["tile"] == j])


@pytest.mark.parametrize("overlap", ["30", "64", "-4"])
def test_bad_overlap_is_one_line(tmp_path, overlap):
    res = prepare("synthetic", "-o", tmp_path / "s.zarr", "--samples", 1, "--bbox", BOX, "--overlap", overlap)
    assert res.exit_code == 2 and "overlap" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "s.zarr").exists()


def test_windows_of_several_lengths_from_the_same_hours(tmp_path):
    """Twelve hours give 1-hour windows every hour, 3-hour windows every 3 hours and 6-hour windows every 3
    hours (--window-step 3); each window records its length, and the validation split holds no window that
    begins before the validation start together with training windows after it."""
    from datetime import datetime

    from harpnet_cli.testing.fixtures import synthetic_hourly, write_conus404_hourly

    hourly = synthetic_hourly(12, 150, 130, seed=22)
    files = write_conus404_hourly(tmp_path / "c404", hourly, datetime(2010, 7, 1, 1))  # hours ending 01Z..12Z
    out = tmp_path / "multi.zarr"
    res = prepare(*files, "-o", out, "--bbox", "36.5,40.5,-99,-95", "--keep-dry", 1.0, "--periods", "1,3,6",
                  "--window-step", 3, "--validation-start", "2010-07-01", "--test-fraction", 0)
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(out)
    a = arrays(out)
    assert s.state_names == ["log_period_hours"]
    hours = np.rint(np.exp(a["state"][:, 0])).astype(int)
    per_window = 4  # 2 x 2 tiles, all kept
    assert {h: int((hours == h).sum()) // per_window for h in (1, 3, 6)} == {1: 12, 3: 4, 6: 3}
    # a 6-hour window is the sum of the two 3-hour windows inside it (same tiles, conservative remapping)
    ends = a["time"].astype("datetime64[s]")
    six = (hours == 6) & (ends == np.datetime64("2010-07-01T06:00"))
    threes = (hours == 3) & ((ends == np.datetime64("2010-07-01T03:00")) | (ends == np.datetime64("2010-07-01T06:00")))
    np.testing.assert_allclose(a["fine"][six], a["fine"][threes].reshape(2, 4, 1, 64, 64).sum(axis=0), rtol=1e-4,
                               atol=1e-3)
    assert s.manifest["plan_key"]["periods"] == [1, 3, 6] and s.manifest["plan_key"]["window_step"] == 3


def test_synthetic_windows_of_several_lengths(tmp_path):
    out = tmp_path / "syn.zarr"
    res = prepare("synthetic", "-o", out, "--samples", 6, "--bbox", BOX, "--keep-dry", 1.0, "--periods", "3,24",
                  "--seed", 5)
    assert res.exit_code == 0, res.output
    s = TrainingStore.open(out)
    a = arrays(out)
    assert s.state_names[-1] == "log_period_hours" and s.state_names[:2] == ["u", "v"]
    hours = np.rint(np.exp(a["state"][:, -1])).astype(int)
    assert set(hours) == {3, 24}
    # a 24-hour window holds eight 3-hour states: far wetter on average than a 3-hour one
    assert a["fine"][hours == 24].mean() > 2 * a["fine"][hours == 3].mean()
    res = prepare("synthetic", "-o", tmp_path / "bad.zarr", "--samples", 2, "--bbox", BOX, "--periods", "1,3")
    assert res.exit_code == 2 and "multiples of 3" in res.output


def test_a_window_length_that_does_not_divide_the_day_is_refused(tmp_path):
    res = prepare("synthetic", "-o", tmp_path / "s.zarr", "--samples", 1, "--bbox", BOX, "--periods", "3,5")
    assert res.exit_code == 2 and "5 h does not divide 24 hours" in res.output
