"""The training store: layout, commit/recovery after a crash, statistics and batched reads."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.grids import GridSpec
from harpnet_cli.io import store as store_mod
from harpnet_cli.io.store import TEST, TRAIN, VAL, TrainingStore

GRID = GridSpec(lat0=30.0, lon0=-100.0, ny=32, nx=32).to_dict()  # 128 x 128 fine cells
ORIGIN = np.array([[0, 0], [0, 64], [64, 0], [64, 64]], dtype=np.int32)
STATE = ["u", "v"]
TIMING = ("created",)
ZARR3 = int(zarr.__version__.split(".")[0]) >= 3


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing on the way catches it."""


def terrain(n_tiles: int = len(ORIGIN)) -> np.ndarray:
    rng = np.random.default_rng(99)
    return rng.uniform(0, 3000, (n_tiles, 1, 64, 64)).astype(np.float32)


def unit_data(seed: int, k: int | None = None, cc: int = 2) -> dict[str, np.ndarray]:
    """One work unit: gamma precipitation with ~60 % zeros, random tiles and splits."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 30)) if k is None else k
    fine = rng.standard_gamma(0.6, (k, 1, 64, 64), dtype=np.float32) * (rng.random((k, 1, 64, 64)) > 0.6)
    coarse = rng.standard_gamma(0.6, (k, cc, 18, 18), dtype=np.float32) * (rng.random((k, cc, 18, 18)) > 0.5)
    return {
        "coarse": 2 * coarse,
        "fine": 2 * fine,
        "tile": rng.integers(0, len(ORIGIN), k),
        "time": np.full(k, 1_600_000_000 + 10_800 * seed, dtype=np.int64),
        "split": rng.choice([TRAIN, TRAIN, TEST, VAL], k),
        "state": rng.normal(size=(k, len(STATE))).astype(np.float32),
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks, so that a few small units cross chunk boundaries in every array."""
    for name, value in {"SAMPLE_CHUNK": 16, "ROW_CHUNK": 32, "STATE_CHUNK": 16, "UNIT_CHUNK": 4}.items():
        monkeypatch.setattr(store_mod, name, value)


def new_store(path: Path, **kwargs: Any) -> TrainingStore:
    options: dict[str, Any] = {
        "grid": GRID,
        "tile_terrain": terrain(),
        "tile_origin": ORIGIN,
        "coarse_channels": 2,
        "state_names": STATE,
        "manifest": {"sources": ["a.grib2"], "command": "harpnet prepare", "version": "0.1.0"},
    }
    return TrainingStore.create(path, **{**options, **kwargs})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one unit of three samples, built once and copied by :func:`small_store`."""
    path = tmp_path_factory.mktemp("template") / "s.zarr"
    new_store(path).append("unit-0", **unit_data(0, k=3))
    return path


@pytest.fixture
def small_store(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template store."""
    return Path(shutil.copytree(template, tmp_path / "s.zarr"))


def fill(store: TrainingStore, seeds: range, k: int | None = None) -> dict[str, np.ndarray]:
    """Append one unit per seed (``k`` samples each, random when None); return the concatenated data."""
    units = [unit_data(s, k) for s in seeds]
    for s, data in zip(seeds, units, strict=True):
        store.append(f"unit-{s}", **data)
    return {name: np.concatenate([u[name] for u in units]) for name in units[0]}


def raw(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array (full on-disk length) and the group attributes, read with plain zarr."""
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in sorted(group.array_keys())}, group.attrs.asdict()


def without_timing(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in attrs.items() if k not in TIMING}
    out["commit"] = {k: v for k, v in out["commit"].items() if k != "updated"}
    return out


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A store of six units (seeds 0..5) plus 15 rows of ``fine`` written but never committed."""
    path = tmp_path_factory.mktemp("filled") / "s.zarr"
    store = new_store(path)
    data = fill(store, range(6))
    store._write_rows("fine", len(store), unit_data(12, k=15)["fine"])  # as if killed before the commit
    return path, data


# -- layout ---------------------------------------------------------------------------------------
def test_create_open_round_trip(filled: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, data = filled
    again = TrainingStore.open(path)
    assert len(again) == len(data["fine"]) and again.mode == "r"
    assert again.done_units() == {f"unit-{i}" for i in range(6)}
    assert again.unit_keys() == [f"unit-{i}" for i in range(6)]
    assert again.grid == GRID and again.state_names == STATE and again.coarse_channels == 2
    assert again.manifest["command"] == "harpnet prepare"
    assert again.counts == {} and again.stats == {} and not again.is_complete
    for name in ("coarse", "fine", "tile", "time", "split", "state"):
        np.testing.assert_array_equal(getattr(again, name)[:], data[name])
    np.testing.assert_array_equal(again.terrain[:], terrain())
    np.testing.assert_array_equal(again.tile_origin[:], ORIGIN)


def test_shapes_dtypes_chunks_and_codec(filled: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = filled
    store = TrainingStore.open(path)
    n = len(store)
    expected = {
        "coarse": ((n, 2, 18, 18), np.float32, (256, 2, 18, 18)),
        "fine": ((n, 1, 64, 64), np.float32, (256, 1, 64, 64)),
        "tile": ((n,), np.int32, (65536,)),
        "time": ((n,), np.int64, (65536,)),
        "split": ((n,), np.int8, (65536,)),
        "state": ((n, 2), np.float32, (8192, 2)),
        "terrain": ((4, 1, 64, 64), np.float32, (4, 1, 64, 64)),
        "tile_origin": ((4, 2), np.int32, (4, 2)),
    }
    for name, (shape, dtype, chunks) in expected.items():
        view = getattr(store, name)
        assert (view.shape, view.dtype, view.chunks) == (shape, np.dtype(dtype), chunks), name
        assert view[:].shape == shape and view[:].dtype == dtype
    meta = json.loads((path / "fine" / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["compressor"]["id"] == "blosc"
    assert meta["compressor"]["cname"] == "zstd"
    assert json.loads((path / ".zattrs").read_text())["format"] == "harpnet-store"


def test_no_state_columns(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s.zarr", state_names=[], coarse_channels=1)
    data = unit_data(1, k=5, cc=1)
    store.append("a", **{**data, "state": None})
    assert store.state.shape == (5, 0) and store.read(np.array([4, 0]))["state"].shape == (2, 0)
    assert TrainingStore.open(tmp_path / "s.zarr").compute_stats()["state_mean"] in ([], None)


# -- creating: refusals -----------------------------------------------------------------------------
def test_create_refuses_non_empty_path_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    fill(new_store(path), range(2))
    with pytest.raises(UsageError) as err:
        new_store(path)
    assert "--overwrite" in one_line(err)
    assert len(TrainingStore.open(path)) > 0  # untouched
    fresh = new_store(path, overwrite=True)
    assert len(fresh) == 0 and fresh.done_units() == set()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_create_accepts_empty_folder_and_refuses_other_things(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert len(new_store(tmp_path / "empty")) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError) as err:
        new_store(other, overwrite=True)
    assert "not a HARPNET training store" in one_line(err)
    assert (other / "precious.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        new_store(tmp_path / "file", overwrite=True)
    with pytest.raises(UsageError) as err:
        new_store(tmp_path / "missing" / "s.zarr")
    assert "does not exist" in one_line(err)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tile_terrain": np.zeros((4, 64, 64))}, "tile_terrain"),
        ({"tile_origin": ORIGIN[:3]}, "tile_origin"),
        ({"tile_origin": ORIGIN + 1}, "inside"),
        ({"manifest": {"when": object()}}, "manifest"),
        ({"state_names": ["u", "u"]}, "unique"),
        ({"coarse_channels": 0}, "coarse_channels"),
        ({"grid": {"ny": 4}}, "GridSpec"),
    ],
)
def test_create_validates(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_store(tmp_path / "s.zarr", **change)
    assert not (tmp_path / "s.zarr").exists()


# -- opening: bad paths -----------------------------------------------------------------------------
def _set_attr(path: Path, key: str, value: Any) -> None:
    zarr.open_group(str(path), mode="r+").attrs[key] = value


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: shutil.rmtree(p), "no such"),
        (lambda p: (shutil.rmtree(p), p.write_text("x")), "a file"),
        (lambda p: (shutil.rmtree(p), p.mkdir()), "not a Zarr"),
        (lambda p: _set_attr(p, "format", "something-else"), "not a HARPNET"),
        (lambda p: _set_attr(p, "format_version", 2), "newer"),
        (lambda p: _set_attr(p, "commit", {"n": "x"}), "commit record"),
        (lambda p: _set_attr(p, "commit", {"n": 10_000, "units": 1, "updated": ""}), "damaged"),
        (lambda p: _set_attr(p, "commit", {"n": 2, "units": 1, "updated": ""}), "unit_end"),
        (lambda p: shutil.rmtree(p / "fine"), "missing array"),
        (lambda p: (p / ".zattrs").write_text("{not json"), "not a"),
        (lambda p: (p / "tile" / ".zarray").write_text("{not json"), "damaged"),
    ],
)
@pytest.mark.parametrize("mode", ["r", "a"])
def test_open_bad_store_is_input_data_error(small_store: Path, damage: Any, message: str, mode: str) -> None:
    path = small_store
    damage(path)
    with pytest.raises(InputDataError) as err:
        TrainingStore.open(path, mode=mode)  # type: ignore[arg-type]
    text = one_line(err)
    assert text.startswith(str(path)) and message in text


# -- appending --------------------------------------------------------------------------------------
def _partial(k: int) -> np.ndarray:
    """``k`` fine targets whose western quarter is unobserved (NaN), as ``prepare --max-missing`` keeps them."""
    fine = np.ones((k, 1, 64, 64), np.float32)
    fine[..., :16] = np.nan
    return fine


def test_partly_unobserved_training_samples_are_kept_and_left_out_of_the_stats(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s.zarr")
    data = {**unit_data(0, k=4), "fine": _partial(4), "split": np.array([TRAIN, TRAIN, TRAIN, TRAIN])}
    store.append("partial", **data)
    store.append("whole", **{**unit_data(1, k=2), "fine": np.full((2, 1, 64, 64), 3.0, np.float32),
                             "split": np.zeros(2, int)})
    fine = np.asarray(store.fine[:6])
    assert np.isnan(fine[:4, ..., :16]).all() and np.isfinite(fine[4:]).all()
    stats = store.compute_stats("train")
    assert stats["count"] == 6
    observed = np.concatenate([np.ones(4 * 64 * 48), np.full(2 * 64 * 64, 3.0)])
    assert stats["fine_log1p_mean"] == pytest.approx(np.log1p(observed).mean())
    assert stats["fine_wet_fraction"] == 1.0
    json.dumps(stats, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fine": np.zeros((4, 1, 32, 32), np.float32)}, "fine has shape"),
        ({"coarse": np.zeros((4, 1, 18, 18), np.float32)}, "coarse has shape"),
        ({"tile": np.array([0, 1, 2, 4])}, "tile indices"),
        ({"tile": np.array([0, 1, 2, 2**32])}, "tile indices"),  # would wrap to 0 as int32
        ({"tile": np.zeros(4)}, "tile has dtype"),
        ({"split": np.array([0, 1, 2, 3])}, "split codes"),
        ({"split": np.array([0, 1, 2, 256])}, "split codes"),  # would wrap to 0 as int8
        ({"state": None}, "state has shape"),
        ({"fine": np.full((4, 1, 64, 64), np.inf, np.float32)}, "non-finite"),
        ({"coarse": np.full((4, 2, 18, 18), np.nan, np.float32)}, "non-finite"),
        ({"fine": np.full((4, 1, 64, 64), np.nan, np.float32), "split": np.zeros(4, int)}, "unobserved everywhere"),
        ({"fine": _partial(4), "split": np.array([TRAIN, TRAIN, TEST, TRAIN])}, "only training samples"),
        ({"fine": _partial(4), "split": np.array([TRAIN, VAL, TRAIN, TRAIN])}, "only training samples"),
    ],
)
def test_append_validates(small_store: Path, change: dict[str, Any], message: str) -> None:
    store = TrainingStore.open(small_store, mode="a")
    with pytest.raises(ValueError, match=message):
        store.append("u", **{**unit_data(0, k=4), **change})
    assert len(store) == 3 and store.done_units() == {"unit-0"}
    assert raw(small_store)[0]["fine"].shape[0] == 3  # nothing was written


@pytest.mark.parametrize("key", ["", "x" * 65, "é" * 33, "a\x00b"])
def test_append_rejects_bad_unit_keys(small_store: Path, key: str) -> None:
    with pytest.raises(ValueError, match="unit key"):
        TrainingStore.open(small_store, mode="a").append(key, **unit_data(0, k=1))


def test_duplicate_unit_is_refused(small_store: Path) -> None:
    store = TrainingStore.open(small_store, mode="a")
    store.append("é-unit", **unit_data(0, k=2))
    with pytest.raises(ValueError, match="already committed"):
        store.append("é-unit", **unit_data(0, k=2))
    with pytest.raises(ValueError, match="already committed"):
        TrainingStore.open(small_store, mode="a").append("unit-0", **unit_data(0, k=2))
    assert TrainingStore.open(small_store).done_units() == {"unit-0", "é-unit"}


def test_time_as_datetime64(small_store: Path) -> None:
    store = TrainingStore.open(small_store, mode="a")
    when = np.array(["2020-06-01T03:00", "2020-06-01T06:00"], dtype="datetime64[m]")
    store.append("dt", **{**unit_data(1, k=2), "time": when})
    np.testing.assert_array_equal(store.time[-2:], [1590980400, 1590991200])


def test_empty_units(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s.zarr")
    store.append("empty-first", **unit_data(0, k=0))
    store.append("full", **unit_data(1, k=3))
    store.append("empty-last", **unit_data(2, k=0))
    again = TrainingStore.open(tmp_path / "s.zarr", mode="a")
    assert len(again) == 3 and again.unit_keys() == ["empty-first", "full", "empty-last"]
    np.testing.assert_array_equal(again.fine[:], unit_data(1, k=3)["fine"])
    assert again.read(np.array([], dtype=np.int64))["fine"].shape == (0, 1, 64, 64)


def test_read_only_store_refuses_writes(small_store: Path) -> None:
    store = TrainingStore.open(small_store)
    with pytest.raises(ValueError, match="read-only"):
        store.append("u", **unit_data(0, k=1))
    with pytest.raises(ValueError, match="read-only"):
        store.finalize(stats={}, counts={})


# -- crash and recovery -----------------------------------------------------------------------------
def test_killed_between_write_and_commit_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_chunks: None
) -> None:
    path = tmp_path / "s.zarr"
    store = new_store(path)
    data = fill(store, range(3), k=7)
    n = len(store)

    def killed(self: TrainingStore, *args: object) -> None:
        raise Killed

    original = TrainingStore._commit
    monkeypatch.setattr(TrainingStore, "_commit", killed)
    with pytest.raises(Killed):
        store.append("unit-3", **unit_data(3, k=40))
    monkeypatch.setattr(TrainingStore, "_commit", original)

    arrays, attrs = raw(path)
    assert len(arrays["fine"]) == n + 40 and attrs["commit"]["n"] == n  # written, not committed
    reader = TrainingStore.open(path)
    assert len(reader) == n and reader.fine.shape[0] == n and "unit-3" not in reader.done_units()
    np.testing.assert_array_equal(reader.fine[:], data["fine"])

    writer = TrainingStore.open(path, mode="a")
    arrays, _ = raw(path)
    assert {name: len(a) for name, a in arrays.items() if name not in ("terrain", "tile_origin")} == {
        "coarse": n,
        "fine": n,
        "tile": n,
        "time": n,
        "split": n,
        "state": n,
        "unit_key": 3,
        "unit_end": 3,
    }
    writer.append("unit-3", **unit_data(3, k=40))
    np.testing.assert_array_equal(TrainingStore.open(path).fine[n:], unit_data(3, k=40)["fine"])


def test_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_chunks: None) -> None:
    straight = new_store(tmp_path / "a.zarr")
    fill(straight, range(10))

    resumed = new_store(tmp_path / "b.zarr")
    fill(resumed, range(5))
    original = TrainingStore._commit

    def killed_on_5(self: TrainingStore, n: int, units: int, *rest: object) -> None:
        if units == 6:
            raise Killed
        original(self, n, units, *rest)

    monkeypatch.setattr(TrainingStore, "_commit", killed_on_5)
    with pytest.raises(Killed):
        fill(resumed, range(5, 10))
    monkeypatch.setattr(TrainingStore, "_commit", original)
    resumed = TrainingStore.open(tmp_path / "b.zarr", mode="a")
    assert resumed.done_units() == {f"unit-{i}" for i in range(5)}
    fill(resumed, range(5, 10))

    arrays_a, attrs_a = raw(tmp_path / "a.zarr")
    arrays_b, attrs_b = raw(tmp_path / "b.zarr")
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert without_timing(attrs_a) == without_timing(attrs_b)
    assert len(arrays_a["fine"]) > 10 * 16 and len(arrays_a["unit_key"]) > 2 * 4  # many chunk boundaries
    assert not list((tmp_path / "b.zarr").rglob("*.partial"))


def fail_writes(monkeypatch: pytest.MonkeyPatch, pattern: str) -> None:
    """Make the zarr store layer raise ENOSPC when it writes a key matching ``pattern``."""
    error = OSError(28, "No space left on device")
    if ZARR3:
        original_set = zarr.storage.LocalStore.set

        async def set_(self: Any, key: str, value: Any) -> None:
            if fnmatch.fnmatch(key, pattern):
                raise error
            await original_set(self, key, value)

        monkeypatch.setattr(zarr.storage.LocalStore, "set", set_)
    else:
        original_setitem = zarr.storage.DirectoryStore.__setitem__

        def setitem(self: Any, key: str, value: Any) -> None:
            if fnmatch.fnmatch(key, pattern):
                raise error
            original_setitem(self, key, value)

        monkeypatch.setattr(zarr.storage.DirectoryStore, "__setitem__", setitem)


@pytest.mark.parametrize("pattern", [".zattrs", "fine/*[0-9]", "unit_end/.zarray"])
def test_disk_error_propagates_and_store_reopens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str) -> None:
    path = tmp_path / "s.zarr"
    store = new_store(path)
    data = fill(store, range(2), k=5)
    n = len(store)
    fail_writes(monkeypatch, pattern)
    with pytest.raises(OSError, match="No space left"):
        store.append("unit-2", **unit_data(2, k=30))
    monkeypatch.undo()
    assert len(store) == n  # the object still reflects the last commit

    again = TrainingStore.open(path, mode="a")
    assert len(again) == n and "unit-2" not in again.done_units()
    np.testing.assert_array_equal(again.fine[:], data["fine"])
    again.append("unit-2", **unit_data(2, k=30))
    assert len(TrainingStore.open(path)) == n + 30


def test_failed_append_can_continue_on_same_object(small_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TrainingStore.open(small_store, mode="a")
    monkeypatch.setattr(TrainingStore, "_commit", lambda *a: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        store.append("bad", **unit_data(5, k=50))
    monkeypatch.undo()
    store.append("good", **unit_data(6, k=2))
    assert store.unit_keys() == ["unit-0", "good"]
    np.testing.assert_array_equal(store.fine[-2:], unit_data(6, k=2)["fine"])
    assert raw(small_store)[0]["fine"].shape[0] == len(store)


# -- finalize, statistics, reads ----------------------------------------------------------------------
def test_finalize_and_append_after(small_store: Path) -> None:
    store = TrainingStore.open(small_store, mode="a")
    store.finalize(stats=store.compute_stats(), counts={"train": 3, "skipped": 0})
    again = TrainingStore.open(small_store, mode="a")
    assert again.is_complete and again.counts == {"train": 3, "skipped": 0}
    assert again.stats["split"] == "train"
    with pytest.raises(ValueError, match="stats"):
        again.finalize(stats={"x": float("nan")}, counts={})
    again.append("more", **unit_data(7, k=1))
    assert not again.is_complete and not TrainingStore.open(small_store).is_complete


def _numpy_stats(data: dict[str, np.ndarray], split: int) -> dict[str, Any]:
    sel = data["split"] == split
    coarse = np.log1p(data["coarse"][sel, 0].astype(np.float64))
    fine = np.log1p(data["fine"][sel].astype(np.float64))
    ter = terrain()[np.unique(data["tile"][sel])].astype(np.float64)
    return {
        "count": int(sel.sum()),
        "coarse_log1p_mean": coarse.mean(),
        "coarse_log1p_std": coarse.std(),
        "fine_log1p_mean": fine.mean(),
        "fine_log1p_std": fine.std(),
        "terrain_mean": ter.mean(),
        "terrain_std": ter.std(),
        "fine_wet_fraction": float((data["fine"][sel] > 0.1).mean()),
        "state_mean": data["state"][sel].astype(np.float64).mean(axis=0),
        "state_std": data["state"][sel].astype(np.float64).std(axis=0),
    }


@pytest.mark.parametrize("chunk", [50, 4096])
@pytest.mark.parametrize("split", [TRAIN, VAL])
def test_compute_stats_matches_numpy(filled: tuple[Path, dict[str, np.ndarray]], chunk: int, split: int) -> None:
    path, data = filled
    store = TrainingStore.open(path)
    got = store.compute_stats(split, chunk=chunk)
    want = _numpy_stats(data, split)
    assert got["count"] == want.pop("count") and got["split"] == store_mod.SPLIT_NAMES[split]
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=key)
    json.dumps(got, allow_nan=False)


def test_compute_stats_of_empty_split(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s.zarr")
    store.append("a", **{**unit_data(0, k=3), "split": np.zeros(3, int)})
    stats = store.compute_stats("test")
    assert store.compute_stats("train")["count"] == 3
    assert stats["count"] == 0 and stats["fine_log1p_mean"] is None and stats["fine_wet_fraction"] is None
    json.dumps(stats, allow_nan=False)


def test_indices_and_shuffled_read(filled: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, data = filled
    store = TrainingStore.open(path)
    for split in (TRAIN, TEST, VAL):
        np.testing.assert_array_equal(store.indices(split), np.flatnonzero(data["split"] == split))
    np.testing.assert_array_equal(store.indices("validation"), store.indices(VAL))
    with pytest.raises(ValueError, match="unknown split"):
        store.indices(3)
    rng = np.random.default_rng(5)
    idx = np.concatenate([rng.permutation(len(store))[:40], [3, 3, len(store) - 1]])
    batch = store.read(idx)
    for name in ("coarse", "fine", "state", "time", "tile"):
        np.testing.assert_array_equal(batch[name], data[name][idx], err_msg=name)
    np.testing.assert_array_equal(batch["terrain"], terrain()[data["tile"][idx]])
    assert batch["time"].dtype == np.int64 and batch["fine"].dtype == np.float32
    with pytest.raises(IndexError):
        store.read(np.array([len(store)]))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(-60, 59), max_size=20), st.integers(-70, 70), st.integers(-70, 70), st.integers(1, 4))
def test_store_array_indexing_matches_numpy(
    filled: tuple[Path, dict[str, np.ndarray]], rows: list[int], start: int, stop: int, step: int
) -> None:
    path, data = filled
    view = TrainingStore.open(path).fine
    expected = data["fine"]
    n = len(expected)
    rows = [r % n - (n if r < 0 else 0) for r in rows]
    np.testing.assert_array_equal(view[np.array(rows, dtype=int)], expected[rows])
    for key in (slice(start, stop, step), slice(start, stop, -step), (slice(start, stop), 0, 5)):
        np.testing.assert_array_equal(view[key], expected[key])
    mask = np.zeros(n, bool)
    mask[rows] = True
    np.testing.assert_array_equal(view[mask], expected[mask])
    np.testing.assert_array_equal(view[-1], expected[-1])
    np.testing.assert_array_equal(view[..., 3], expected[..., 3])


def test_view_hides_uncommitted_rows(filled: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, data = filled
    view = TrainingStore.open(path).fine
    n = len(data["fine"])
    assert zarr.open_group(str(path), mode="r")["fine"].shape[0] == n + 15
    assert len(view) == n and view[n - 5 : n + 100].shape == (5, 1, 64, 64)
    np.testing.assert_array_equal(np.asarray(view), data["fine"])
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            view[bad]
    with pytest.raises(IndexError):
        view[np.array([0, n])]


def test_xarray_opens_the_store_with_named_dimensions(tiny_store):
    import xarray as xr

    from harpnet_cli.io.store import ARRAY_DIMENSIONS

    ds = xr.open_zarr(tiny_store, consolidated=False, mask_and_scale=False)
    for name, dims in ARRAY_DIMENSIONS.items():
        assert ds[name].dims == dims, name
    assert ds.sizes["sample"] == ds["fine"].shape[0] and ds.sizes["fine_y"] == 64


def test_unit_counts_are_committed_with_each_unit_and_survive_a_kill(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The tally a resumed prepare reports: the counts of every committed unit, none of a killed one."""
    path = tmp_path / "s.zarr"
    store = new_store(path)
    store.append("unit-0", **unit_data(0, k=3), counts={"dry_kept": 2, "wet": 1})
    store.append("unit-1", **unit_data(1, k=2), counts={"wet": 2, "missing_data": 4})
    monkeypatch.setattr(TrainingStore, "_commit", lambda *args: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        store.append("unit-2", **unit_data(2, k=2), counts={"wet": 100})
    monkeypatch.undo()
    resumed = TrainingStore.open(path, mode="a")
    assert resumed.tally == {"dry_kept": 2, "wet": 3, "missing_data": 4}
    resumed.append("unit-2", **unit_data(2, k=2), counts={"wet": 1})
    assert TrainingStore.open(path).tally == {"dry_kept": 2, "wet": 4, "missing_data": 4}
