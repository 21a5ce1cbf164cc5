"""The chunked Zarr training store: written by ``harpnet prepare``, read by ``harpnet train``.

Layout
------
A store is a directory that *is* a Zarr group, kept in Zarr format 2 on disk so that zarr 2.18 and
zarr 3 both read and write it. ``N`` samples, ``T`` tiles, ``U`` completed work units:

===========  ===============  =======  ==========================================================
array        shape            dtype    meaning
===========  ===============  =======  ==========================================================
coarse       (N, Cc, 18, 18)  float32  coarse inputs, channel 0 precipitation in mm per 3 h: the
                                       tile's 16 x 16 coarse cells plus a 1-cell buffer ring
fine         (N, 1, 64, 64)   float32  fine targets, mm per 3 h; NaN marks unobserved cells, in
                                       training samples only (``prepare --max-missing``)
tile         (N,)             int32    row of ``terrain`` / ``tile_origin``
time         (N,)             int64    window end, seconds since 1970-01-01 UTC
split        (N,)             int8     :data:`TRAIN` 0, :data:`TEST` 1, :data:`VAL` 2
state        (N, S)           float32  extra per-sample state, named by ``state_names``
terrain      (T, 1, 64, 64)   float32  fine terrain of each tile (m)
tile_origin  (T, 2)           int32    (y0, x0) fine-pixel offset of each tile in the domain
unit_key     (U,)             |S64     keys of the completed work units (UTF-8), commit order
unit_end     (U,)             int64    committed sample count after each unit
===========  ===============  =======  ==========================================================

Group attributes: ``format``, ``format_version``, ``created``, ``manifest``, ``grid``,
``state_names``, ``split_names``, ``counts``, ``stats``, ``complete`` and the commit record
``commit = {"n": N, "units": U, "updated": ISO time, "tally": {name: int}}``: ``tally`` sums the
per-unit counts handed to :meth:`TrainingStore.append` (tiles dropped, dry tiles kept, …) over
every committed unit, so a resumed run reports the whole store (:attr:`TrainingStore.tally`).

Commit protocol
---------------
:meth:`TrainingStore.append` grows and writes every sample array and the two unit arrays first,
and rewrites the commit record last. Both zarr versions write each key (chunk, array metadata,
attributes) through a temporary file and a rename, so a run killed at any moment leaves every
file either old or new: the arrays may be *longer* than ``commit.n`` but never shorter, and
committed samples are never damaged (a partly filled chunk is replaced whole). Readers only
look at the first ``n`` rows; :meth:`TrainingStore.open` in mode ``"a"`` truncates the arrays
back to the commit record and removes left-over temporary files. Durability against power loss
(fsync) is left to the file system. Each commit rewrites the group attribute file, manifest
included, so keep the manifest compact (a summary of the sources, not 100 000 file names).

Chunks and reading
------------------
``coarse``/``fine`` are chunked by 256 samples (``fine``: 4 MiB raw per chunk), ``state`` by
8192 rows, the 1-D arrays by 65536, all Blosc-zstd level 3 with byte shuffle. An append rewrites
the last, partly filled chunk of each array, so tiny units cost about as much as 256-sample ones.
:meth:`TrainingStore.read` decodes every touched chunk once: a batch drawn from a few chunks is
cheap, a fully shuffled batch decodes one chunk per sample (shuffle chunk order, then within a
buffer of chunks).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from numbers import Integral
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harpnet_cli.errors import InputDataError, UsageError
from harpnet_cli.grids import RATIO, GridSpec
from harpnet_cli.splits import SPLIT_NAMES, TEST, TRAIN, VAL

FORMAT = "harpnet-store"
FORMAT_VERSION = 1


FINE_TILE = 64
BUFFER = 1
COARSE_TILE = FINE_TILE // RATIO + 2 * BUFFER
SAMPLE_CHUNK = 256
ROW_CHUNK = 65536
UNIT_CHUNK = 8192
STATE_CHUNK = 8192
MAX_UNIT_KEY_BYTES = 64
#: numcodecs Blosc settings of every array: zstd, level 3, byte shuffle.
COMPRESSOR: dict[str, Any] = {"cname": "zstd", "clevel": 3, "shuffle": 1}
WET_THRESHOLD_MM = 0.1

SAMPLE_ARRAYS = ("coarse", "fine", "tile", "time", "split", "state")
UNIT_ARRAYS = ("unit_key", "unit_end")
TILE_ARRAYS = ("terrain", "tile_origin")
_UNITS_ATTR = {"coarse": "mm per 3 h", "fine": "mm per 3 h", "terrain": "m", "time": "seconds since 1970-01-01 UTC"}


# -- zarr 2 / zarr 3 ------------------------------------------------------------------------------
def _zarr() -> Any:
    """The zarr module, imported on first use (keeps ``harpnet --help`` light)."""
    import zarr

    return zarr


def _zarr3() -> bool:
    """Whether the installed zarr is version 3 or later."""
    return int(_zarr().__version__.split(".")[0]) >= 3


def _create_group(path: Path) -> Any:
    """A new, empty Zarr group at ``path``, in Zarr format 2 under either zarr version."""
    if _zarr3():
        return _zarr().open_group(str(path), mode="w", zarr_format=2)
    return _zarr().open_group(str(path), mode="w")


def _update_attrs(group: Any, values: Mapping[str, Any]) -> None:
    """Merge ``values`` into the group attributes in ONE write of the attribute file.

    zarr 3's ``attrs.update`` writes once per key, so it would not be atomic; its
    ``Group.update_attributes`` is. zarr 2's ``attrs.update`` writes once.
    """
    if _zarr3():
        group.update_attributes(dict(values))
    else:
        group.attrs.update(dict(values))


#: Dimension names of every array (``_ARRAY_DIMENSIONS``, the Zarr-v2 convention ``xr.open_zarr`` reads):
#: samples along ``sample``, commit units along ``unit``, the per-tile tables along ``tile_index``.
ARRAY_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "coarse": ("sample", "coarse_channel", "coarse_y", "coarse_x"),
    "fine": ("sample", "fine_channel", "fine_y", "fine_x"),
    "tile": ("sample",),
    "time": ("sample",),
    "split": ("sample",),
    "state": ("sample", "state_variable"),
    "unit_key": ("unit",),
    "unit_end": ("unit",),
    "terrain": ("tile_index", "terrain_channel", "fine_y", "fine_x"),
    "tile_origin": ("tile_index", "yx"),
}


def _create_array(group: Any, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> Any:
    """Create one array compressed with :data:`COMPRESSOR` (Blosc), fill value 0 / ``b""``, with its
    dimension names (:data:`ARRAY_DIMENSIONS`) in ``_ARRAY_DIMENSIONS`` so that ``xr.open_zarr`` reads it."""
    from numcodecs import Blosc

    compressor = Blosc(**COMPRESSOR)
    fill: Any = b"" if dtype.startswith("S") else 0
    if _zarr3():
        array = group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, compressors=compressor, fill_value=fill
        )
    else:
        array = group.create_dataset(name, shape=shape, chunks=chunks, dtype=dtype, compressor=compressor,
                                     fill_value=fill)
    dims = ARRAY_DIMENSIONS.get(name, tuple(f"{name}_dim_{i}" for i in range(len(shape))))
    array.attrs["_ARRAY_DIMENSIONS"] = list(dims)
    return array


# -- helpers ------------------------------------------------------------------------------------
def _now() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _one_line(exc: BaseException) -> str:
    """First line of an exception's message, with its type when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _json_checked(value: Any, what: str) -> Any:
    """Return ``value`` after checking it is strict JSON (no NaN, plain types only).

    Raises
    ------
    ValueError
        If ``value`` cannot be stored as a Zarr attribute.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {_one_line(exc)}") from None
    return value


def split_code(split: int | str) -> int:
    """Split code (0, 1, 2) from a code or a name in :data:`SPLIT_NAMES`.

    Raises
    ------
    ValueError
        For anything else.
    """
    codes = {name: code for code, name in SPLIT_NAMES.items()}
    if isinstance(split, str) and split in codes:
        return codes[split]
    if isinstance(split, Integral) and not isinstance(split, bool) and int(split) in SPLIT_NAMES:
        return int(split)
    raise ValueError(f"unknown split {split!r}; use 0/1/2 or one of {', '.join(codes)}")


def _layout(coarse_channels: int, n_state: int) -> dict[str, tuple[tuple[int, ...], str, int]]:
    """Per growing array: the shape after axis 0, the dtype and the chunk length along axis 0."""
    return {
        "coarse": ((coarse_channels, COARSE_TILE, COARSE_TILE), "float32", SAMPLE_CHUNK),
        "fine": ((1, FINE_TILE, FINE_TILE), "float32", SAMPLE_CHUNK),
        "tile": ((), "int32", ROW_CHUNK),
        "time": ((), "int64", ROW_CHUNK),
        "split": ((), "int8", ROW_CHUNK),
        "state": ((n_state,), "float32", STATE_CHUNK),
        "unit_key": ((), f"S{MAX_UNIT_KEY_BYTES}", UNIT_CHUNK),
        "unit_end": ((), "int64", UNIT_CHUNK),
    }


def _check_target(path: Path, overwrite: bool) -> None:
    """Refuse to create a store over anything but nothing, an empty folder or (with overwrite) a store.

    Raises
    ------
    UsageError
        With one line saying why.
    """
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} does not exist (folder of the store {path.name})")
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise UsageError(f"{path} exists and is not a directory")
    if not any(path.iterdir()):
        return
    if not overwrite:
        raise UsageError(f"{path} exists and is not empty; pass --overwrite to replace it")
    if not _is_store(path):
        raise UsageError(f"{path} is not a HARPNET training store; refusing to overwrite it")


def _is_store(path: Path) -> bool:
    """Whether ``path`` holds a Zarr group whose ``format`` attribute is :data:`FORMAT`."""
    try:
        return bool(_zarr().open_group(str(path), mode="r").attrs.get("format") == FORMAT)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``, replacing an empty folder or an old store."""
    if final.is_dir() and any(final.iterdir()):
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    if final.is_dir():
        final.rmdir()
    os.rename(tmp, final)


def _check_tiles(terrain: np.ndarray, origin: np.ndarray, grid: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Validate the per-tile tables against each other and the grid.

    Parameters
    ----------
    terrain : (T, 1, 64, 64) array_like
        Fine terrain per tile (m).
    origin : (T, 2) array_like of int
        ``(y0, x0)`` of each tile in the fine grid of ``grid``.
    grid : mapping
        ``GridSpec.to_dict()``; extra keys are allowed.

    Returns
    -------
    terrain : (T, 1, 64, 64) float32
    origin : (T, 2) int32

    Raises
    ------
    ValueError
        If shapes, values or the grid are wrong.
    """
    try:
        spec = GridSpec(**{k: grid[k] for k in ("lat0", "lon0", "ny", "nx")})
    except (KeyError, TypeError):
        raise ValueError(f"grid must be a GridSpec.to_dict() (lat0, lon0, ny, nx), got {dict(grid)}") from None
    ter = np.asarray(terrain)
    org = np.asarray(origin)
    if ter.ndim != 4 or ter.shape[1:] != (1, FINE_TILE, FINE_TILE) or ter.dtype.kind not in "fiu":
        raise ValueError(f"tile_terrain must be numeric with shape (T, 1, 64, 64), got {ter.shape} {ter.dtype}")
    if org.shape != (len(ter), 2) or org.dtype.kind not in "iu":
        raise ValueError(f"tile_origin must be integers with shape ({len(ter)}, 2), got {org.shape} {org.dtype}")
    if not np.isfinite(ter).all():
        raise ValueError("tile_terrain has non-finite values")
    limit = np.array(spec.fine_shape) - FINE_TILE
    if len(org) and ((org < 0).any() or (org > limit).any()):
        raise ValueError(f"tile_origin must keep every 64 x 64 tile inside the {spec.fine_shape} fine grid")
    return ter.astype(np.float32), org.astype(np.int32)


class _Moments:
    """Running count, mean and sum of squared deviations per channel (Chan et al. pairwise update).

    Parameters
    ----------
    channels : int
        Number of channels ``C``; blocks are folded in with :meth:`add`.
    """

    def __init__(self, channels: int = 1) -> None:
        self.count = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, x: np.ndarray) -> None:
        """Fold in a block ``x`` of shape ``(m, C)``: ``m`` observations of ``C`` channels."""
        m = x.shape[0]
        if m == 0:
            return
        mean_b = x.mean(axis=0, dtype=np.float64)
        m2_b = np.square(x - mean_b.astype(x.dtype)).sum(axis=0, dtype=np.float64)
        n = self.count + m
        delta = mean_b - self.mean
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * m / n)
        self.mean = self.mean + delta * (m / n)
        self.count = n

    def result(self) -> tuple[list[float] | None, list[float] | None]:
        """Per-channel mean and population standard deviation, or ``(None, None)`` when empty."""
        if self.count == 0:
            return None, None
        return self.mean.tolist(), np.sqrt(self.m2 / self.count).tolist()


class StoreArray:
    """Read-only view of one store array, cut at the committed length.

    Supports ``len``, ``shape``, ``dtype``, ``chunks``, ``numpy.asarray`` and indexing whose first
    entry is an int, a slice, an integer array or a boolean mask (any order, duplicates allowed);
    later entries are passed to zarr (ints and slices).

    Parameters
    ----------
    array : zarr.Array
        The underlying array (possibly longer than ``length`` after an unrecovered crash).
    length : int
        Number of rows visible along axis 0.
    """

    def __init__(self, array: Any, length: int) -> None:
        self._array = array
        self._length = length

    @property
    def shape(self) -> tuple[int, ...]:
        """``(length, *trailing shape)``."""
        return (self._length, *tuple(self._array.shape[1:]))

    @property
    def dtype(self) -> np.dtype:
        """Element type."""
        return np.dtype(self._array.dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        """Chunk shape on disk."""
        return tuple(self._array.chunks)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"StoreArray(shape={self.shape}, dtype={self.dtype}, chunks={self.chunks})"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)

    def __getitem__(self, key: Any) -> Any:
        keys = key if isinstance(key, tuple) else (key,)
        first, rest = (keys[0], keys[1:]) if keys else (slice(None), ())
        if first is Ellipsis:
            first, rest = slice(None), (Ellipsis, *rest)
        if isinstance(first, Integral) and not isinstance(first, bool):
            return self._array[(self._row(int(first)),) + rest]
        if isinstance(first, slice):
            start, stop, step = first.indices(self._length)
            if step == 1:
                return self._array[(slice(start, max(start, stop)),) + rest]
            first = np.arange(start, stop, step)
        return self._take(np.asarray(first), rest)

    def _row(self, i: int) -> int:
        """Row ``i`` counted from the end when negative; IndexError outside the committed rows."""
        j = i + self._length if i < 0 else i
        if not 0 <= j < self._length:
            raise IndexError(f"index {i} is out of range for {self._length} rows")
        return j

    def _take(self, rows: np.ndarray, rest: tuple[Any, ...]) -> np.ndarray:
        """Rows by integer array or boolean mask, read chunk by chunk in sorted order."""
        if rows.dtype == bool:
            if rows.shape != (self._length,):
                raise IndexError(f"boolean index of shape {rows.shape} does not match {self._length} rows")
            rows = np.flatnonzero(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise IndexError(f"unsupported index {rows!r}")
        rows = np.where(rows < 0, rows + self._length, rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= self._length):
            raise IndexError(f"index out of range for {self._length} rows")
        return _gather(self._array, rows, rest)


def _gather(array: Any, rows: np.ndarray, rest: tuple[Any, ...] = ()) -> np.ndarray:
    """``array[rows, *rest]`` for any order of ``rows`` (1-D ints), reading each chunk once."""
    if len(rows) == 0:
        return np.asarray(array[(slice(0, 0),) + rest])
    uniq, inverse = np.unique(rows, return_inverse=True)
    if uniq[-1] - uniq[0] + 1 == len(uniq):  # one contiguous run: a plain slice is fastest
        values = array[(slice(int(uniq[0]), int(uniq[-1]) + 1),) + rest]
    else:
        values = array.oindex[(uniq,) + rest]
    return np.asarray(values)[inverse.reshape(-1)]


# -- the store ----------------------------------------------------------------------------------
class TrainingStore:
    """A HARPNET training store: create with :meth:`create`, open with :meth:`open`.

    Parameters
    ----------
    path : Path
        The store folder.
    mode : {"r", "a"}
        Read-only, or read and append.
    group : zarr.Group
        The open group.
    """

    def __init__(self, path: Path, mode: Literal["r", "a"], group: Any) -> None:
        self._path = path
        self._mode = mode
        self._group = group
        self._attrs: dict[str, Any] = dict(group.attrs.asdict())
        self._arrays: dict[str, Any] = {name: group[name] for name in (*SAMPLE_ARRAYS, *UNIT_ARRAYS, *TILE_ARRAYS)}
        self._n = int(self._attrs["commit"]["n"])
        self._units = int(self._attrs["commit"]["units"])
        self._tally: dict[str, int] = {str(k): int(v) for k, v in self._attrs["commit"].get("tally", {}).items()}
        self._done: set[str] | None = None
        self._columns: dict[str, np.ndarray] = {}
        self._terrain_cache: np.ndarray | None = None

    # -- creating and opening -----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        grid: Mapping[str, Any],
        tile_terrain: np.ndarray,
        tile_origin: np.ndarray,
        coarse_channels: int = 1,
        state_names: Sequence[str] = (),
        manifest: Mapping[str, Any],
        overwrite: bool = False,
    ) -> TrainingStore:
        """Create an empty store (built beside ``path`` and renamed into place) and open it for appending.

        Parameters
        ----------
        path : path-like
            The store folder; it must not exist, be empty, or (with ``overwrite``) be a store.
        grid : mapping
            ``GridSpec.to_dict()`` of the domain (extra keys are kept).
        tile_terrain : (T, 1, 64, 64) array_like
            Fine terrain per tile (m).
        tile_origin : (T, 2) array_like of int
            ``(y0, x0)`` fine-pixel offset of each tile in the domain's fine grid.
        coarse_channels : int
            ``Cc``, channels of ``coarse`` (channel 0 is precipitation).
        state_names : sequence of str
            Names of the ``S`` columns of ``state`` (may be empty).
        manifest : mapping
            JSON-able provenance: sources, grid, command line, package version, options.
        overwrite : bool
            Replace an existing store.

        Returns
        -------
        TrainingStore
            Open in mode ``"a"``.

        Raises
        ------
        UsageError
            If ``path`` cannot be used (one line).
        ValueError
            If the tables, grid, names or manifest are invalid.
        """
        final = Path(path)
        _check_target(final, overwrite)
        if coarse_channels < 1:
            raise ValueError(f"coarse_channels must be at least 1, got {coarse_channels}")
        terrain, origin = _check_tiles(tile_terrain, tile_origin, grid)
        attrs = cls._initial_attrs(grid, manifest, state_names)
        tmp = final.parent / f".{final.name}.creating-{uuid.uuid4().hex[:8]}"
        try:
            group = _create_group(tmp)
            cls._create_arrays(group, coarse_channels, len(attrs["state_names"]), terrain, origin)
            _update_attrs(group, attrs)
            _move_into_place(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(final, mode="a")

    @staticmethod
    def _initial_attrs(grid: Mapping[str, Any], manifest: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
        """Group attributes of a new, empty store."""
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            raise ValueError(f"state_names must be unique, got {names}")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _now(),
            "manifest": _json_checked(dict(manifest), "manifest"),
            "grid": _json_checked(dict(grid), "grid"),
            "state_names": names,
            "split_names": [SPLIT_NAMES[code] for code in sorted(SPLIT_NAMES)],
            "counts": {},
            "stats": {},
            "complete": False,
            "commit": {"n": 0, "units": 0, "updated": _now()},
        }

    @staticmethod
    def _create_arrays(group: Any, cc: int, n_state: int, terrain: np.ndarray, origin: np.ndarray) -> None:
        """Create the empty growing arrays and write the per-tile tables."""
        for name, (tail, dtype, chunk) in _layout(cc, n_state).items():
            chunks = (chunk, *(max(1, d) for d in tail))
            array = _create_array(group, name, (0, *tail), chunks, dtype)
            if name in _UNITS_ATTR:
                array.attrs["units"] = _UNITS_ATTR[name]
        t = max(1, len(terrain))
        _create_array(group, "terrain", terrain.shape, (min(t, SAMPLE_CHUNK), 1, FINE_TILE, FINE_TILE), "float32")
        _create_array(group, "tile_origin", origin.shape, (t, 2), "int32")
        group["terrain"].attrs["units"] = _UNITS_ATTR["terrain"]
        if len(terrain):
            group["terrain"][:] = terrain
            group["tile_origin"][:] = origin

    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: Literal["r", "a"] = "r") -> TrainingStore:
        """Open a store; in mode ``"a"`` undo the writes of an interrupted :meth:`append`.

        Parameters
        ----------
        path : path-like
            The store folder.
        mode : {"r", "a"}
            ``"r"`` reads; ``"a"`` also appends and finalizes, and first truncates arrays that
            are longer than the committed length (a run killed between writing and committing).

        Returns
        -------
        TrainingStore

        Raises
        ------
        InputDataError
            If ``path`` is not a readable store of a format version this code knows, or is damaged.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        root = Path(path)
        group = cls._open_group(root, mode)
        try:
            cls._check_header(root, group)
            store = cls(root, mode, group)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputDataError(root, f"damaged training store ({_one_line(exc)})") from None
        store._check_arrays()
        if mode == "a":
            store._recover()
        return store

    @staticmethod
    def _open_group(root: Path, mode: str) -> Any:
        """The Zarr group at ``root``, or InputDataError."""
        if not root.exists():
            raise InputDataError(root, "no such training store")
        if not root.is_dir():
            raise InputDataError(root, "not a training store (a file, not a folder)")
        try:
            group = _zarr().open_group(str(root), mode="r" if mode == "r" else "r+")
            group.attrs.asdict()  # zarr 2 reads the attribute file lazily
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputDataError(root, f"not a Zarr training store ({_one_line(exc)})") from None
        return group

    @staticmethod
    def _check_header(root: Path, group: Any) -> None:
        """Check the format, version and commit record, and that every array is there."""
        attrs = group.attrs.asdict()
        if attrs.get("format") != FORMAT:
            raise InputDataError(root, f"not a HARPNET training store (format attribute {attrs.get('format')!r})")
        version = attrs.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise InputDataError(root, f"bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise InputDataError(
                root, f"store format version {version} is newer than this harpnet reads ({FORMAT_VERSION}); upgrade"
            )
        commit = attrs.get("commit")
        if not (isinstance(commit, dict) and all(isinstance(commit.get(k), int) for k in ("n", "units"))):
            raise InputDataError(root, "commit record missing or damaged")
        present = set(group.array_keys())
        missing = [a for a in (*SAMPLE_ARRAYS, *UNIT_ARRAYS, *TILE_ARRAYS) if a not in present]
        if missing:
            raise InputDataError(root, f"store is missing array(s) {', '.join(missing)}")

    def _check_arrays(self) -> None:
        """Check trailing shapes and that no array is shorter than the commit record says."""
        layout = _layout(self.coarse_channels, len(self.state_names))
        for name, (tail, _, _) in layout.items():
            shape = tuple(self._arrays[name].shape)
            if shape[1:] != tail:
                expected = ", ".join(["N", *map(str, tail)])
                raise InputDataError(self._path, f"array {name} has shape {shape}, expected ({expected})")
            if shape[0] < self._committed(name):
                raise InputDataError(
                    self._path, f"array {name} holds {shape[0]} rows but {self._committed(name)} are committed; damaged"
                )
        t = self._arrays["terrain"].shape[0]
        if tuple(self._arrays["terrain"].shape) != (t, 1, FINE_TILE, FINE_TILE) or self._arrays[
            "tile_origin"
        ].shape != (t, 2):
            raise InputDataError(self._path, "terrain and tile_origin do not match")
        if self._units and int(self._arrays["unit_end"][self._units - 1]) != self._n:
            raise InputDataError(self._path, "unit_end does not match the committed sample count; damaged")

    def _committed(self, name: str) -> int:
        """Committed rows of a growing array: ``n`` for sample arrays, ``units`` for unit arrays."""
        return self._units if name in UNIT_ARRAYS else self._n

    def _recover(self) -> None:
        """Truncate arrays to the commit record and delete temporary files of interrupted writes."""
        for name in (*SAMPLE_ARRAYS, *UNIT_ARRAYS):
            self._resize(name, self._committed(name))
        for leftover in self._path.rglob("*.partial"):
            leftover.unlink(missing_ok=True)

    # -- appending ------------------------------------------------------------------------------
    def append(
        self,
        unit: str,
        *,
        coarse: np.ndarray,
        fine: np.ndarray,
        tile: np.ndarray,
        time: np.ndarray,
        split: np.ndarray,
        state: np.ndarray | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Append the ``k`` samples of one work unit (``k`` may be 0) and commit them.

        Parameters
        ----------
        unit : str
            Key of the work unit (non-empty, at most 64 bytes of UTF-8).
        coarse : (k, Cc, 18, 18) array_like
            Coarse inputs, mm per 3 h in channel 0.
        fine : (k, 1, 64, 64) array_like
            Fine targets, mm per 3 h.
        tile : (k,) array_like of int
            Tile index of each sample, in ``[0, T)``.
        time : (k,) array_like of int or datetime64
            Window end, seconds since 1970-01-01 UTC.
        split : (k,) array_like of int
            :data:`TRAIN`, :data:`TEST` or :data:`VAL`.
        state : (k, S) array_like or None
            Extra state; None is allowed when ``S == 0``.
        counts : mapping of str to int, optional
            The unit's counts (tiles dropped, kept, …), added to :attr:`tally` in the same commit.

        Raises
        ------
        ValueError
            If the unit is already committed, the store is read-only or an array is invalid.
        OSError
            From the file system; the store then reopens in its last committed state.
        """
        if self._mode != "a":
            raise ValueError(f"{self._path} is open read-only")
        key = self._unit_key(unit)
        data = self._check_samples(unit, coarse, fine, tile, time, split, state)
        n, u = self._n, self._units
        k = len(data["fine"])
        for name, values in data.items():
            self._write_rows(name, n, values)
        self._write_rows("unit_key", u, np.array([key], dtype=f"S{MAX_UNIT_KEY_BYTES}"))
        self._write_rows("unit_end", u, np.array([n + k], dtype=np.int64))
        tally = dict(self._tally)
        for name, value in (counts or {}).items():
            tally[str(name)] = tally.get(str(name), 0) + int(value)
        self._commit(n + k, u + 1, tally)
        if self._done is not None:
            self._done.add(unit)
        self._columns.clear()

    def _unit_key(self, unit: str) -> bytes:
        """The unit key as bytes, after checking it is new and fits."""
        if not isinstance(unit, str) or not unit or "\x00" in unit:
            raise ValueError(f"unit key must be a non-empty string without NUL, got {unit!r}")
        key = unit.encode("utf-8")
        if len(key) > MAX_UNIT_KEY_BYTES:
            raise ValueError(f"unit key {unit!r} is longer than {MAX_UNIT_KEY_BYTES} bytes")
        if unit in self._done_set():
            raise ValueError(f"unit {unit!r} is already committed")
        return key

    def _check_samples(self, unit: str, *arrays: Any) -> dict[str, np.ndarray]:
        """Validate and cast the arrays of one unit (in :data:`SAMPLE_ARRAYS` order)."""
        fine = np.asarray(arrays[1])
        k = fine.shape[0] if fine.ndim else -1
        layout = _layout(self.coarse_channels, len(self.state_names))
        raw: dict[str, np.ndarray] = {}
        for name, value in zip(SAMPLE_ARRAYS, arrays, strict=True):
            tail, dtype, _ = layout[name]
            if value is None and name == "state" and not tail[0]:
                value = np.zeros((max(k, 0), 0), np.float32)
            arr = np.asarray(value)
            if name == "time" and arr.dtype.kind == "M":
                arr = arr.astype("datetime64[s]").astype(np.int64)
            if arr.shape != (k, *tail):
                raise ValueError(f"unit {unit!r}: {name} has shape {arr.shape}, expected {(max(k, 0), *tail)}")
            if arr.dtype.kind not in ("fiu" if dtype == "float32" else "iu"):
                raise ValueError(f"unit {unit!r}: {name} has dtype {arr.dtype}, expected {dtype}")
            if arr.dtype.kind == "f" and (np.isinf(arr) if name == "fine" else ~np.isfinite(arr)).any():
                raise ValueError(f"unit {unit!r}: {name} has non-finite values")  # NaN fine: unobserved
            raw[name] = arr
        self._check_codes(unit, raw)
        self._check_unobserved(unit, raw)
        return {name: arr.astype(layout[name][1], copy=False) for name, arr in raw.items()}

    @staticmethod
    def _check_unobserved(unit: str, data: Mapping[str, np.ndarray]) -> None:
        """NaN (unobserved) target cells only in training samples, never a whole target."""
        nan = np.isnan(data["fine"])
        partial = nan.any(axis=(1, 2, 3))
        if not partial.any():
            return
        if (np.asarray(data["split"])[partial] != TRAIN).any():
            raise ValueError(f"unit {unit!r}: only training samples may have unobserved (NaN) fine cells")
        if nan.all(axis=(1, 2, 3)).any():
            raise ValueError(f"unit {unit!r}: a fine target is unobserved everywhere")

    def _check_codes(self, unit: str, data: Mapping[str, np.ndarray]) -> None:
        """Tile indices in range and split codes known (checked before the cast narrows them)."""
        n_tiles = self._arrays["terrain"].shape[0]
        if len(data["tile"]) and (data["tile"].min() < 0 or data["tile"].max() >= n_tiles):
            raise ValueError(f"unit {unit!r}: tile indices must lie in [0, {n_tiles})")
        if len(data["split"]) and not np.isin(data["split"], (TRAIN, TEST, VAL)).all():
            raise ValueError(f"unit {unit!r}: split codes must be {TRAIN}, {TEST} or {VAL}")

    def _resize(self, name: str, rows: int) -> None:
        """Set the length of a growing array (no write when it already has it)."""
        array = self._arrays[name]
        if array.shape[0] != rows:
            array.resize((rows, *tuple(array.shape[1:])))

    def _write_rows(self, name: str, start: int, values: np.ndarray) -> None:
        """Grow ``name`` to ``start + len(values)`` rows and write ``values`` there."""
        self._resize(name, start + len(values))
        if len(values):
            self._arrays[name][start : start + len(values)] = values

    def _commit(self, n: int, units: int, tally: Mapping[str, int]) -> None:
        """Write the commit record (the last write of an append); the unit is durable after it."""
        self._set_attrs({"commit": {"n": n, "units": units, "updated": _now(), "tally": dict(tally)},
                         "complete": False})
        self._n, self._units, self._tally = n, units, dict(tally)

    def _set_attrs(self, values: Mapping[str, Any]) -> None:
        """Update group attributes in one write and mirror them in memory."""
        _update_attrs(self._group, values)
        self._attrs.update(values)

    def finalize(self, *, stats: Mapping[str, Any], counts: Mapping[str, Any]) -> None:
        """Store normalisation statistics and counts and mark the store complete.

        Parameters
        ----------
        stats : mapping
            JSON-able statistics, usually from :meth:`compute_stats`.
        counts : mapping
            JSON-able counts (samples per split, skipped windows, ...).
        """
        if self._mode != "a":
            raise ValueError(f"{self._path} is open read-only")
        stats = _json_checked(dict(stats), "stats")
        counts = _json_checked(dict(counts), "counts")
        self._set_attrs({"stats": stats, "counts": counts, "complete": True})

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"TrainingStore({str(self._path)!r}, mode={self._mode!r}, n={self._n}, units={self._units})"

    @property
    def tally(self) -> dict[str, int]:
        """The per-unit counts given to :meth:`append`, summed over every committed unit (a copy)."""
        return dict(self._tally)

    def done_units(self) -> set[str]:
        """Keys of the committed work units (a copy)."""
        return set(self._done_set())

    def _done_set(self) -> set[str]:
        """The cached set of committed unit keys, read once from ``unit_key``."""
        if self._done is None:
            keys = self._arrays["unit_key"][: self._units] if self._units else []
            self._done = {k.decode("utf-8") for k in np.asarray(keys).tolist()}
        return self._done

    def unit_keys(self) -> list[str]:
        """Keys of the committed work units in commit order."""
        keys = self._arrays["unit_key"][: self._units] if self._units else []
        return [k.decode("utf-8") for k in np.asarray(keys).tolist()]

    def _column(self, name: str) -> np.ndarray:
        """A committed 1-D sample array (``split``, ``tile``) cached in memory until the next append."""
        if name not in self._columns:
            self._columns[name] = np.asarray(self._arrays[name][: self._n])
        return self._columns[name]

    def _terrain(self) -> np.ndarray:
        """All tile terrain, ``(T, 1, 64, 64)``, cached."""
        if self._terrain_cache is None:
            self._terrain_cache = np.asarray(self._arrays["terrain"][:])
        return self._terrain_cache

    def indices(self, split: int | str) -> np.ndarray:
        """Sorted sample indices of one split, shape ``(n_split,)`` int64."""
        return np.flatnonzero(self._column("split") == split_code(split)).astype(np.int64)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """A batch of committed samples in the order given (duplicates allowed).

        Parameters
        ----------
        indices : (B,) array_like of int
            Sample indices in ``[0, len(self))``; any order. Chunks are read once each, in sorted
            order, so batches drawn from few chunks are cheap.

        Returns
        -------
        dict
            ``coarse`` (B, Cc, 18, 18), ``fine`` (B, 1, 64, 64), ``terrain`` (B, 1, 64, 64)
            gathered by tile, ``state`` (B, S), ``time`` (B,) int64 and ``tile`` (B,) int32.
        """
        rows = np.asarray(indices).reshape(-1)
        if rows.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers, got {rows.dtype}")
        if len(rows) and (rows.min() < 0 or rows.max() >= self._n):
            raise IndexError(f"indices must lie in [0, {self._n})")
        out = {name: _gather(self._arrays[name], rows) for name in ("coarse", "fine", "state", "time", "tile")}
        out["terrain"] = self._terrain()[out["tile"]]
        return out

    def compute_stats(self, split: int | str = TRAIN, chunk: int = 4096) -> dict[str, Any]:
        """Normalisation statistics of one split, streamed ``chunk`` samples at a time.

        Means and population standard deviations of ``log1p`` of the coarse precipitation
        (channel 0) and of the fine targets, of the terrain of the distinct tiles the split uses
        (each tile once), and of each state column; the fraction of fine pixels above
        :data:`WET_THRESHOLD_MM`; the sample count. Memory holds one block of ``chunk`` samples.

        Returns
        -------
        dict
            JSON-able; means and stds are None when the split has no samples.
        """
        code = split_code(split)
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        moments = {"coarse": _Moments(), "fine": _Moments(), "state": _Moments(len(self.state_names))}
        wet = 0
        splits = self._column("split")
        for start in range(0, self._n, chunk):
            mask = splits[start : start + chunk] == code
            if mask.any():
                wet += self._fold_block(start, mask, moments)
        used = np.unique(self._column("tile")[splits == code])
        terrain = _Moments()
        terrain.add(self._terrain()[used].reshape(-1, 1))
        return self._stats_dict(code, moments, terrain, wet, len(used))

    def _fold_block(self, start: int, mask: np.ndarray, moments: Mapping[str, _Moments]) -> int:
        """Add the selected samples of rows ``start : start + len(mask)``; return their wet pixel count."""
        stop = start + len(mask)
        select = slice(None) if mask.all() else mask
        coarse = np.asarray(self._arrays["coarse"][start:stop, 0])[select]
        fine = np.asarray(self._arrays["fine"][start:stop])[select]
        fine = fine[np.isfinite(fine)]  # unobserved cells of partial training tiles left out
        moments["coarse"].add(np.log1p(coarse).reshape(-1, 1))
        moments["fine"].add(np.log1p(fine).reshape(-1, 1))
        moments["state"].add(np.asarray(self._arrays["state"][start:stop])[select])
        return int(np.count_nonzero(fine > WET_THRESHOLD_MM))

    def _stats_dict(
        self, code: int, moments: Mapping[str, _Moments], terrain: _Moments, wet: int, n_tiles: int
    ) -> dict[str, Any]:
        """Assemble the JSON-able result of :meth:`compute_stats`."""
        count = moments["coarse"].count // (COARSE_TILE * COARSE_TILE)
        stats: dict[str, Any] = {"split": SPLIT_NAMES[code], "count": count, "tiles": n_tiles}
        for name in ("coarse", "fine"):
            mean, std = moments[name].result()
            stats[f"{name}_log1p_mean"] = None if mean is None else mean[0]
            stats[f"{name}_log1p_std"] = None if std is None else std[0]
        mean, std = terrain.result()
        stats["terrain_mean"] = None if mean is None else mean[0]
        stats["terrain_std"] = None if std is None else std[0]
        stats["state_mean"], stats["state_std"] = moments["state"].result()
        stats["fine_wet_fraction"] = wet / moments["fine"].count if count else None
        stats["wet_threshold_mm"] = WET_THRESHOLD_MM
        return stats

    # -- properties -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The store folder."""
        return self._path

    @property
    def mode(self) -> str:
        """``"r"`` or ``"a"``."""
        return self._mode

    def _view(self, name: str) -> StoreArray:
        """Read-only view of a growing array cut at its committed length."""
        return StoreArray(self._arrays[name], self._committed(name))

    @property
    def coarse(self) -> StoreArray:
        """Coarse inputs, ``(N, Cc, 18, 18)`` float32."""
        return self._view("coarse")

    @property
    def fine(self) -> StoreArray:
        """Fine targets, ``(N, 1, 64, 64)`` float32."""
        return self._view("fine")

    @property
    def tile(self) -> StoreArray:
        """Tile index per sample, ``(N,)`` int32."""
        return self._view("tile")

    @property
    def time(self) -> StoreArray:
        """Window end per sample, ``(N,)`` int64 seconds since 1970-01-01 UTC."""
        return self._view("time")

    @property
    def split(self) -> StoreArray:
        """Split code per sample, ``(N,)`` int8."""
        return self._view("split")

    @property
    def state(self) -> StoreArray:
        """Extra state per sample, ``(N, S)`` float32."""
        return self._view("state")

    @property
    def terrain(self) -> StoreArray:
        """Fine terrain per tile, ``(T, 1, 64, 64)`` float32 (m)."""
        return StoreArray(self._arrays["terrain"], self.n_tiles)

    @property
    def tile_origin(self) -> StoreArray:
        """``(y0, x0)`` of each tile in the domain's fine grid, ``(T, 2)`` int32."""
        return StoreArray(self._arrays["tile_origin"], self.n_tiles)

    @property
    def n_tiles(self) -> int:
        """Number of tiles ``T``."""
        return int(self._arrays["terrain"].shape[0])

    @property
    def coarse_channels(self) -> int:
        """Number of coarse channels ``Cc``."""
        return int(self._arrays["coarse"].shape[1])

    @property
    def grid(self) -> dict[str, Any]:
        """The grid dict given at creation (``GridSpec.to_dict()``)."""
        return dict(self._attrs["grid"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The provenance dict given at creation."""
        return dict(self._attrs["manifest"])

    @property
    def counts(self) -> dict[str, Any]:
        """Counts stored by :meth:`finalize` (empty before)."""
        return dict(self._attrs.get("counts") or {})

    @property
    def stats(self) -> dict[str, Any]:
        """Statistics stored by :meth:`finalize` (empty before)."""
        return dict(self._attrs.get("stats") or {})

    @property
    def state_names(self) -> list[str]:
        """Names of the ``state`` columns."""
        return list(self._attrs.get("state_names") or [])

    @property
    def is_complete(self) -> bool:
        """Whether :meth:`finalize` ran after the last append."""
        return bool(self._attrs.get("complete", False))

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of all group attributes."""
        return json.loads(json.dumps(self._attrs))


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SPLIT_NAMES",
    "TEST",
    "TRAIN",
    "VAL",
    "StoreArray",
    "TrainingStore",
    "split_code",
]
