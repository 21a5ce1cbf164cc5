"""The readers on the real operational files in ../shared/data/real (see DATA.md there).

Skipped cleanly when the shared data directory is absent.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyproj  # noqa: F401  # load PROJ before anything loads ecCodes (e.g. xarray's cfgrib plugin)
import pytest

from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.errors import InputDataError
from harpnet_cli.io.readers import detect_format, read_accumulations

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL = SHARED / "real"
H = timedelta(hours=1)

pytestmark = pytest.mark.shared


def real(name: str) -> Path:
    """A real file, or skip when the shared data is absent."""
    path = REAL / name
    if not path.exists():
        pytest.skip(f"shared data file {name} is absent")
    return path


def test_every_real_file_is_read_or_refused_with_one_line() -> None:
    if not REAL.is_dir():
        pytest.skip("shared data directory is absent")
    for path in sorted(p for p in REAL.iterdir() if p.is_file()):
        try:
            accs = read_accumulations([path])
        except InputDataError as exc:
            assert path.name == "ci_test_file.nc", str(exc)
            continue
        assert accs and all(a.data.dtype == np.float32 and a.data.ndim == 2 for a in accs), path.name
        assert all(a.data.shape == a.grid.shape for a in accs), path.name
        assert all(np.nanmin(a.data) >= 0 for a in accs if a.end > a.start), path.name


def test_gfs_f006_two_identical_six_hour_messages() -> None:
    path = real("gfs.20200325.t18z.pgrb2.0p25.f006")
    (acc,) = read_accumulations([path])  # the second 0-6 h message is the same field
    assert "duplicate" in acc.label
    assert (acc.start, acc.end) == (datetime(2020, 3, 25, 18), datetime(2020, 3, 26, 0))
    assert acc.data.shape == (721, 1440) and acc.reference_time == datetime(2020, 3, 25, 18)
    assert acc.grid.lat[0] == 90.0 and acc.grid.lat[-1] == -90.0  # north to south, kept as stored
    assert acc.grid.lon[0] == 0.0 and acc.grid.lon[-1] == 359.75
    assert float(acc.data.max()) == pytest.approx(143.8, abs=0.1)
    conus = acc.data[np.ix_((acc.grid.lat >= 24) & (acc.grid.lat <= 50),
                            (acc.grid.lon >= 235) & (acc.grid.lon <= 294))]
    assert float(conus.max()) == pytest.approx(73.8, abs=0.1)
    (series,) = to_interval_series([acc])
    assert series.ends[0] - series.starts[0] == 6 * H


def test_gfs_f012_bucket_and_running_total() -> None:
    path = real("gfs.20200330.t18z.pgrb2.0p25.f012")
    accs = read_accumulations([path])
    ref = datetime(2020, 3, 30, 18)
    assert sorted(((a.start - ref) / H, (a.end - ref) / H) for a in accs) == [(0, 12), (6, 12)]
    assert accs[0].grid.lat.tolist() == [-21.25, -21.0]  # south to north in this subset
    (series,) = to_interval_series(accs)
    assert (series.starts[0] - ref) / H == 6 and (series.ends[0] - ref) / H == 12
    assert float(series.data.max()) == pytest.approx(1.3125)


def test_ecmwf_tp_metres_steps_0_and_120() -> None:
    path = real("tp_sfc.grib")
    accs = read_accumulations([path])
    ref = datetime(2016, 9, 25)
    assert [((a.start - ref) / H, (a.end - ref) / H) for a in accs] == [(0, 0), (0, 120)]
    assert float(accs[0].data.max()) == 0.0
    (series,) = to_interval_series(accs)
    assert series.data.shape == (1, 7, 12) and series.ends[0] - series.starts[0] == 120 * H
    assert float(series.data.max()) == pytest.approx(104.7, abs=0.1)  # 0.1047 m


def test_moving_nest_is_refused() -> None:
    path = real("ci_test_file.nc")
    with pytest.raises(InputDataError, match="moving nest: the grid moves between times") as info:
        read_accumulations([path])
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_wrf_fixed_grid_running_totals() -> None:
    path = real("wrf_d01_allvars_cropped.nc")
    assert detect_format(path) == "wrf"
    (series,) = to_interval_series(read_accumulations([path]))
    assert series.data.shape == (3, 8, 10) and series.grid.lat.shape == (8, 10)
    assert all(e - s == 3 * H for s, e in zip(series.starts, series.ends, strict=True))
    assert series.starts[0] == datetime(2005, 9, 21, 0) and series.ends[-1] == datetime(2005, 9, 21, 9)
    assert (series.data >= 0).all() and float(series.data.max()) == pytest.approx(0.198, abs=0.002)


def test_nam_270_three_hour_buckets_on_lambert_grid() -> None:
    path = real("NAM.nc")
    accs = read_accumulations([path])
    assert len(accs) == 270
    assert accs[0].start == datetime(2024, 1, 1, 0) and accs[-1].end == datetime(2024, 2, 3, 18)
    lat, lon = accs[0].grid.lat, accs[0].grid.lon
    assert lat.shape == lon.shape == (25, 21)
    assert 39.5 < lat.min() and lat.max() < 42.5 and -80.6 < lon.min() and lon.max() < -77.2
    (series,) = to_interval_series(accs)
    assert series.data.shape == (270, 25, 21)
    assert all(e - s == 3 * H for s, e in zip(series.starts, series.ends, strict=True))
    assert float(series.data.max()) == pytest.approx(19.875)


def test_mrms_multisensor_one_hour_is_fast() -> None:
    path = real("MultiSensor_QPE_01H_Pass2_00.00_20210706-000000.grib2")
    started = time.perf_counter()
    (acc,) = read_accumulations([path])
    assert time.perf_counter() - started < 5.0
    assert (acc.start, acc.end) == (datetime(2021, 7, 5, 23), datetime(2021, 7, 6, 0))
    assert acc.data.shape == (3500, 7000)
    assert acc.grid.lat[0] == pytest.approx(54.995) and acc.grid.lat[-1] == pytest.approx(20.005)
    assert acc.grid.lon[0] == pytest.approx(230.005) and acc.grid.lon[-1] == pytest.approx(299.995)
    assert float(np.nanmax(acc.data)) == pytest.approx(81.4) and float(np.nanmin(acc.data)) >= 0


def test_mrms_no_coverage_becomes_nan() -> None:
    name = "MRMS_GaugeCorr_QPE_01H_00.00_20160920-000000.grib2"
    path = SHARED / "train" / "mrms-gaugecorr-2016-09-20" / name
    if not path.exists():
        pytest.skip("shared MRMS GaugeCorr file is absent")
    (acc,) = read_accumulations([path])  # category 6 number 9, -3 where there is no coverage
    assert (acc.start, acc.end) == (datetime(2016, 9, 19, 23), datetime(2016, 9, 20, 0))
    assert 0.30 < np.isnan(acc.data).mean() < 0.40
    assert float(np.nanmin(acc.data)) >= 0


def test_stage_iv_six_hours_polar_stereographic_with_missing() -> None:
    path = real("ST4.2002030112.06h.grb")
    (acc,) = read_accumulations([path])
    assert (acc.start, acc.end) == (datetime(2002, 3, 1, 6), datetime(2002, 3, 1, 12))
    assert acc.data.shape == (881, 1121) and acc.grid.lat.shape == acc.grid.lon.shape == (881, 1121)
    assert int(np.isnan(acc.data).sum()) == 272559
    assert float(np.nanmax(acc.data)) == pytest.approx(91.75)
    assert 19.7 < acc.grid.lat.min() and acc.grid.lat.max() < 58.0
