"""The PRISM normal reader (ESRI BIL in a zip) on synthetic fixtures and, when present, the real file."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from harpnet_cli.errors import InputDataError
from harpnet_cli.io.prism import decode_bil, parse_header, read_prism
from harpnet_cli.testing.fixtures import write_prism_bil_zip

PRISM = Path("train") / "prism-normal" / "PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip"


def _field(ny: int = 7, nx: int = 11) -> np.ndarray:
    """Rows north → south as in the file; a few no-data cells."""
    a = np.arange(ny * nx, dtype=np.float32).reshape(ny, nx) / 10 + 0.5
    a[0, :3] = np.nan
    a[-1, -1] = np.nan
    return a


@pytest.mark.parametrize("byteorder", ["I", "M"])
def test_round_trip_geometry_and_nodata(tmp_path, byteorder):
    data = _field()
    path = write_prism_bil_zip(tmp_path / "p.zip", data, west=-110.0, north=45.0, step=0.5, byteorder=byteorder)
    r = read_prism(path)
    assert r.data.dtype == np.float32 and r.data.shape == (7, 11)
    np.testing.assert_allclose(r.lat, 45.0 - 0.5 * np.arange(7)[::-1])  # ascending, cell centres
    np.testing.assert_allclose(r.lon, -110.0 + 0.5 * np.arange(11))
    np.testing.assert_array_equal(r.data, data[::-1])  # south → north, NaN where -9999
    assert np.isnan(r.data[-1, :3]).all() and np.isnan(r.data[0, -1])
    assert r.grid.is_regular and r.grid.shape == (7, 11)


def test_header_is_read_not_hard_coded(tmp_path):
    data = _field(3, 5)
    path = write_prism_bil_zip(tmp_path / "p.zip", data, west=10.0, north=-20.0, step=0.25, nodata=-1.0,
                               name="other")
    r = read_prism(path)
    assert r.lat[-1] == pytest.approx(-20.0) and r.lon[0] == pytest.approx(10.0)
    assert r.lon[1] - r.lon[0] == pytest.approx(0.25)
    assert np.isnan(r.data).sum() == 4


def test_unzipped_bil_beside_its_header(tmp_path):
    path = write_prism_bil_zip(tmp_path / "p.zip", _field())
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "x")
    bil = next((tmp_path / "x").glob("*.bil"))
    np.testing.assert_array_equal(read_prism(bil).data, read_prism(path).data)


def test_parse_header_and_int_rasters():
    hdr = "BYTEORDER M\nNROWS 2\nNCOLS 2\nNBITS 16\nPIXELTYPE SIGNEDINT\nULXMAP 0\nULYMAP 1\nXDIM 1\nYDIM 1\n" \
          "NODATA -5\n"
    assert parse_header(hdr)["PIXELTYPE"] == "SIGNEDINT"
    lat, lon, v = decode_bil(np.array([[1, -5], [3, 4]], dtype=">i2").tobytes(), hdr)
    np.testing.assert_array_equal(lat, [0.0, 1.0])
    np.testing.assert_array_equal(v, [[3, 4], [1, np.nan]])


def _one_line_error(path: Path, match: str) -> None:
    with pytest.raises(InputDataError, match=match) as info:
        read_prism(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg and info.value.exit_code == 3


def test_bad_files_give_one_line_naming_the_file(tmp_path):
    _one_line_error(tmp_path / "missing.zip", "no such file")
    (tmp_path / "text.zip").write_text("not a zip")
    _one_line_error(tmp_path / "text.zip", "not a zip")
    with zipfile.ZipFile(tmp_path / "nohdr.zip", "w") as zf:
        zf.writestr("a.bil", b"\0" * 16)
    _one_line_error(tmp_path / "nohdr.zip", "no header")
    good = write_prism_bil_zip(tmp_path / "good.zip", _field())
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "short.zip", "w") as dst:
        for n in src.namelist():
            body = src.read(n)
            dst.writestr(n, body[:-4] if n.endswith(".bil") else body)
    _one_line_error(tmp_path / "short.zip", "bytes, the header describes")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "nosize.zip", "w") as dst:
        for n in src.namelist():
            body = src.read(n)
            dst.writestr(n, body.replace(b"NROWS", b"XROWS") if n.endswith(".hdr") else body)
    _one_line_error(tmp_path / "nosize.zip", "lacks NROWS")


def test_real_prism_normal(shared_data):
    path = shared_data / PRISM
    if not path.is_file():
        pytest.skip(f"{PRISM} is not present")
    r = read_prism(path)
    assert r.data.shape == (621, 1405)
    assert r.lat[-1] == pytest.approx(49.916667, abs=1e-5) and r.lon[0] == pytest.approx(-125.0)
    assert r.lat[1] - r.lat[0] == pytest.approx(1 / 24) and r.lon[-1] == pytest.approx(-125 + 1404 / 24)
    valid = r.data[np.isfinite(r.data)]
    assert 0.3 < np.isnan(r.data).mean() < 0.6  # ocean, Canada and Mexico
    assert valid.min() >= 0 and 10 < valid.max() < 100  # mm per day
    olympics = r.data[np.argmin(abs(r.lat - 47.8)), np.argmin(abs(r.lon + 123.7))]
    phoenix = r.data[np.argmin(abs(r.lat - 33.45)), np.argmin(abs(r.lon + 112.07))]
    assert olympics > 5 * phoenix  # the north is at the top of the file: rows were flipped right
