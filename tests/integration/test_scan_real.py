"""Metadata scans, window plans and window loads on the real files in ../shared/data (see DATA.md there).

Skipped cleanly when the shared data directory is absent.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyproj  # noqa: F401  # load PROJ before anything loads ecCodes
import pytest

from harpnet_cli.core.accumulation import to_interval_series
from harpnet_cli.core.qc import qc_mask
from harpnet_cli.core.windows import WindowPlan, WindowUnit, compute_window, plan_windows
from harpnet_cli.errors import InputDataError
from harpnet_cli.fields import FieldRef, SourceGrid
from harpnet_cli.io.readers import load_field, read_accumulations, scan_file, scan_files

pytestmark = pytest.mark.shared

H = timedelta(hours=1)
MRMS = "train/mrms-gaugecorr-2016-09-20"


def window_amount(unit: WindowUnit) -> tuple[np.ndarray, SourceGrid]:
    """The unit's amount and grid, its fields read from the files."""
    return compute_window(unit, load_field)


@pytest.fixture(scope="module")
def mrms_files(shared_data: Path) -> list[Path]:
    """The 72 hourly GaugeCorr files, 2016-09-20 00Z … 2016-09-22 23Z (each the hour ending at its stamp)."""
    files = sorted((shared_data / MRMS).glob("MRMS_GaugeCorr_QPE_01H_00.00_*.grib2"))
    if len(files) != 72:
        pytest.skip(f"expected 72 MRMS GaugeCorr files in {MRMS}, found {len(files)}")
    return files


@pytest.fixture(scope="module")
def mrms_refs(mrms_files: list[Path]) -> list[FieldRef]:
    """Their refs."""
    return scan_files(mrms_files)


@pytest.fixture(scope="module")
def mrms_plan(mrms_refs: list[FieldRef]) -> WindowPlan:
    """Their 3-hour plan."""
    return plan_windows(mrms_refs)


def test_scanning_72_mrms_files_reads_headers_only(mrms_files: list[Path]) -> None:
    started = time.perf_counter()
    refs = scan_files(mrms_files)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"scan took {elapsed:.2f} s"  # about 0.4 s; decoding the values takes about 40 s
    assert len(refs) == 72 and {r.period for r in refs} == {H} and {r.kind for r in refs} == {"interval"}
    assert refs[0].end == datetime(2016, 9, 20) and refs[-1].end == datetime(2016, 9, 22, 23)
    assert len({r.grid for r in refs}) == 1 and refs[0].grid.startswith("regular_ll 3500x7000 ")


def test_mrms_plan_has_23_complete_windows(mrms_plan: WindowPlan, mrms_files: list[Path]) -> None:
    # DATA.md counts 24 complete windows, but 72 files ending 00Z 20 Sep … 23Z 22 Sep cover the hour
    # 23-00Z alone, 23 complete windows (00Z 20 Sep → 21Z 22 Sep) and the hours ending 22Z and 23Z.
    units = mrms_plan.units
    assert len(units) == 23
    assert units[0].key == "2016-09-20T03" and units[-1].key == "2016-09-22T21"
    assert [u.end for u in units] == [datetime(2016, 9, 20, 3) + 3 * k * H for k in range(23)]
    assert mrms_plan.dropped == {"incomplete": 2}
    used = {r.path for u in units for r, _ in u.terms}
    assert used == set(mrms_files[1:70])  # neither the first file nor the last two
    assert all(len(u.terms) == 3 and not u.differenced for u in units)


def test_loading_one_mrms_window(mrms_plan: WindowPlan) -> None:
    import eccodes

    unit = mrms_plan.units[0]  # 2016-09-20 00-03Z
    data, grid = window_amount(unit)
    assert data.shape == (3500, 7000) and data.dtype == np.float32
    assert grid.lat[0] == pytest.approx(54.995) and grid.lon[0] == pytest.approx(230.005)
    missing = np.isnan(data)
    assert 0.34 < missing.mean() < 0.36  # no coverage: ocean, Canada, Mexico, radar gaps
    assert float(np.nanmin(data)) >= 0.0 and float(np.nanmax(data)) == pytest.approx(193.3, abs=0.1)
    assert 0.1 < float(np.nanmean(data)) < 1.0  # DATA.md: 72-h covered mean 6.4 mm, i.e. 0.27 mm per window
    with open(unit.terms[0][0].path, "rb") as handle:  # the raw -3 of one hour are NaN in the window
        gid = eccodes.codes_grib_new_from_file(handle)
        raw = eccodes.codes_get_values(gid).reshape(3500, 7000)
        eccodes.codes_release(gid)
    assert missing[raw == -3.0].all() and 0.3 < (raw == -3.0).mean() < 0.4
    bad, counts = qc_mask(data)
    assert counts["implausible"] == 0 and 0 < counts["spike"] < 500 and not bad[missing].any()


def test_real_wrf_running_totals_give_windows(shared_data: Path) -> None:
    path = shared_data / "real" / "wrf_d01_allvars_cropped.nc"
    refs = scan_file(path)
    assert {r.kind for r in refs} == {"running"} and refs[0].start == datetime(2005, 9, 20, 12)
    plan = plan_windows(refs)
    assert [u.key for u in plan.units] == ["2005-09-21T03", "2005-09-21T06", "2005-09-21T09"]
    assert plan.dropped == {"incomplete": 1}
    (series,) = to_interval_series(read_accumulations([path]))
    for k, unit in enumerate(plan.units):
        data, grid = window_amount(unit)
        np.testing.assert_allclose(data, series.data[k], atol=1e-4)
        assert grid.lat.shape == (8, 10) and grid.description == "WRF Lambert conformal 30 km"


def test_real_moving_nest_and_six_hour_stage_iv_are_refused(shared_data: Path) -> None:
    nest = shared_data / "real" / "ci_test_file.nc"
    with pytest.raises(InputDataError, match="moving nest: the grid moves between times"):
        scan_file(nest)
    stage4 = shared_data / "real" / "ST4.2002030112.06h.grb"
    with pytest.raises(InputDataError, match="6-hour accumulations .* cannot be split") as info:
        plan_windows(scan_file(stage4))
    assert str(info.value).startswith(str(stage4))
