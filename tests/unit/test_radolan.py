"""The RADOLAN reader (binary composites, ESRI ASCII RW grids, tar archives, gzip) on files written by
harpnet_cli.testing, and the registry reaching it."""

from __future__ import annotations

import gzip
import io
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.errors import InputDataError
from harpnet_cli.io import radolan
from harpnet_cli.io.readers import detect_format, load_field, read_file, scan_file
from harpnet_cli.testing import fixtures as fx

END = datetime(2022, 10, 18, 3, 50)


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    """A (900, 900) field in mm: a north-south ramp so the row order is visible, some 0.1-mm steps."""
    rows = np.linspace(0.0, 40.0, 900)[:, None]
    return np.round(np.broadcast_to(rows, (900, 900)) + np.linspace(0, 1, 900)[None, :], 1)


def test_binary_composite_values_time_and_missing(tmp_path: Path, field: np.ndarray) -> None:
    missing = np.zeros((900, 900), bool)
    missing[:10, :] = True
    path = fx.write_radolan_binary(tmp_path / "raa01-sf_10000-2210180350-dwd---bin", field, END, product="SF",
                                   minutes=1440, missing=missing)
    assert detect_format(path) == "radolan"
    (acc,) = read_file(path)
    assert (acc.start, acc.end) == (END - timedelta(days=1), END)
    assert np.isnan(acc.data[:10]).all() and np.isfinite(acc.data[10:]).all()
    np.testing.assert_allclose(acc.data[10:], field[10:], atol=0.051)
    assert acc.grid.lat.shape == (900, 900)
    assert acc.grid.lat[-1, 450] > acc.grid.lat[0, 450]  # rows south -> north
    assert 46.9 < acc.grid.lat[0, 0] < 47.0 and 3.5 < acc.grid.lon[0, 0] < 3.7  # RADOLAN's south-west corner


def test_gzip_ascii_and_tar_archive_give_the_same_fields(tmp_path: Path, field: np.ndarray) -> None:
    plain = fx.write_radolan_binary(tmp_path / "a-bin", field, END)
    packed = fx.write_radolan_binary(tmp_path / "a-bin.gz", field, END, compress=True)
    ascii_ = fx.write_radolan_ascii(tmp_path / "RW_20221018-0350.asc", field)
    archive = tmp_path / "RW-20221018.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for hour in (2, 3):
            name = f"RW_20221018-{hour:02d}50.asc"
            (tmp_path / "members").mkdir(exist_ok=True)
            data = fx.write_radolan_ascii(tmp_path / "members" / name, field * hour).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    a, b, c = (read_file(p)[0] for p in (plain, packed, ascii_))
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.data, c.data, atol=1e-5)
    assert a.end == b.end == c.end == END
    accs = read_file(archive)
    assert [x.end for x in accs] == [END - timedelta(hours=1), END]
    np.testing.assert_allclose(accs[1].data, c.data * 3, atol=0.051)
    refs = scan_file(archive)
    data, grid = load_field(refs[1])
    np.testing.assert_array_equal(data, accs[1].data)


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:5000])
    return path


@pytest.mark.parametrize(("writer", "fragment"), [
    (lambda p, f: fx.write_radolan_binary(p, f, END, product="RX"), "product RX is not a precipitation amount"),
    (lambda p, f: _truncated(fx.write_radolan_binary(p, f, END)), "truncated RADOLAN"),
    (lambda p, f: fx.write_radolan_ascii(p.with_name("RW_20221018-0350.asc"), f, corner=(0.0, 0.0)),
     "unknown grid"),
    (lambda p, f: fx.write_radolan_ascii(p.with_name("grid.asc"), f), "without a RADOLAN file name"),
])
def test_damaged_or_foreign_files_are_one_line_errors(tmp_path: Path, field: np.ndarray, writer, fragment) -> None:
    path = writer(tmp_path / "x-bin", field)
    with pytest.raises(InputDataError) as info:
        read_file(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_accumulation_must_agree_with_the_product(tmp_path: Path, field: np.ndarray) -> None:
    path = fx.write_radolan_binary(tmp_path / "a-bin", field, END)
    assert read_file(path, accumulation=timedelta(hours=1))
    with pytest.raises(InputDataError, match="60-minute sum"):
        read_file(path, accumulation=timedelta(hours=3))


def test_gzip_of_a_format_that_cannot_read_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.grib2.gz"
    path.write_bytes(gzip.compress(b"GRIB\0\0\0\x02" + b"\0" * 100))
    with pytest.raises(InputDataError, match="gzip-compressed grib file: decompress it first"):
        read_file(path)


def test_module_is_registered_with_the_reader_functions() -> None:
    for name in ("sniff", "read", "scan", "load"):
        assert callable(getattr(radolan, name))
    assert radolan.READS_GZIP


@pytest.mark.shared
def test_real_radolan_files(shared_data: Path) -> None:
    folder = shared_data / "train" / "radolan-rw-2022-10-18"
    if not folder.exists():
        pytest.skip("RADOLAN files not present")
    (sf,) = read_file(folder / "raa01-sf_10000-1305270050-dwd---bin.gz")
    assert sf.end - sf.start == timedelta(days=1)
    assert 0 < np.nanmean(sf.data) < 50 and 0.1 < np.isnan(sf.data).mean() < 0.4
    hours = read_file(folder / "RW-20221018.tar.gz")
    assert len(hours) == 24 and all(h.end - h.start == timedelta(hours=1) for h in hours)
    assert hours[0].end == datetime(2022, 10, 18, 0, 50)
