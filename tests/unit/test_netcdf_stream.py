"""NetCDF written with netCDF4 directly: as xarray's to_netcdf would, at once or step by step."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from harpnet_cli.core.ensemble_stats import ensemble_products
from harpnet_cli.fields import FineForecast
from harpnet_cli.grids import GridSpec
from harpnet_cli.io.netcdf_stream import NetcdfStream, write_dataset
from harpnet_cli.io.netcdf_writer import dataset_for, encoding_for, layout_for

REF = datetime(2020, 1, 1)


def forecast(steps: int = 3, members: list[int | None] | None = None) -> FineForecast:
    spec = GridSpec.from_bbox(30, 32, -100, -98)
    members = members or [None]
    data = np.random.default_rng(0).random((len(members), steps, *spec.fine_shape)).astype(np.float32)
    data[0, 0, :3, :3] = np.nan
    return FineForecast(data, spec.fine_lat(), spec.fine_lon(), spec.fine_lat_bounds(), spec.fine_lon_bounds(),
                        [REF + timedelta(hours=3 * k) for k in range(steps)],
                        [REF + timedelta(hours=3 * k + 3) for k in range(steps)], members, REF,
                        {"title": "t", "comment": "a note"})


def structure_of(path: Path) -> dict[str, object]:
    """Everything of a file's structure: dimensions, and per variable its type, dimensions, attributes,
    fill value, chunking and compression."""
    with netCDF4.Dataset(path) as nc:
        return {
            "dims": {k: len(v) for k, v in nc.dimensions.items()},
            "attrs": {k: str(nc.getncattr(k)) for k in nc.ncattrs()},
            "vars": {name: (str(v.dtype), v.dimensions, {k: str(v.getncattr(k)) for k in v.ncattrs()},
                            v.chunking(), v.filters()) for name, v in nc.variables.items()},
        }


@pytest.mark.parametrize("ensemble", [False, True])
def test_write_dataset_writes_what_xarray_writes(tmp_path: Path, ensemble: bool) -> None:
    """The layout written by netCDF4 directly is the file xarray writes of the same dataset."""
    fc = forecast(members=[1, 2] if ensemble else None)
    products = ensemble_products(fc.data, thresholds=(0.5,)) if ensemble else None
    ds = dataset_for(fc, products)
    ds.to_netcdf(tmp_path / "xarray.nc", format="NETCDF4", engine="netcdf4", encoding=encoding_for(ds))
    layout = layout_for(fc, products)
    write_dataset(tmp_path / "direct.nc", layout, encoding_for(layout))
    assert structure_of(tmp_path / "direct.nc") == structure_of(tmp_path / "xarray.nc")
    xr.testing.assert_identical(xr.open_dataset(tmp_path / "direct.nc"), xr.open_dataset(tmp_path / "xarray.nc"))


def test_a_stream_written_step_by_step_equals_the_whole(tmp_path: Path) -> None:
    fc = forecast(steps=4)
    whole = layout_for(fc)
    write_dataset(tmp_path / "whole.nc", whole, encoding_for(whole))

    def step(k: int) -> FineForecast:
        return dataclasses.replace(fc, data=fc.data[:, k:k + 1], starts=fc.starts[k:k + 1], ends=fc.ends[k:k + 1])

    one = dataclasses.replace(fc, data=np.zeros((1, 4, 1, 1), np.float32), lat=fc.lat[:1], lon=fc.lon[:1],
                              lat_bounds=fc.lat_bounds[:1], lon_bounds=fc.lon_bounds[:1])
    first = layout_for(step(0))
    stream = NetcdfStream(tmp_path / "stream.nc", layout_for(one), first, encoding_for(first))
    for k in (0, 2, 1, 3):
        stream.write(k, layout_for(step(k)))
    stream.close()
    assert structure_of(tmp_path / "stream.nc") == structure_of(tmp_path / "whole.nc")
    xr.testing.assert_identical(xr.open_dataset(tmp_path / "stream.nc"), xr.open_dataset(tmp_path / "whole.nc"))


def test_closing_an_incomplete_stream_is_an_error(tmp_path: Path) -> None:
    fc = forecast(steps=2)
    first = dataset_for(dataclasses.replace(fc, data=fc.data[:, :1], starts=fc.starts[:1], ends=fc.ends[:1]))
    stream = NetcdfStream(tmp_path / "s.nc", dataset_for(fc), first, encoding_for(first))
    stream.write(0, first)
    with pytest.raises(RuntimeError, match="1 of 2 time steps were never written"):
        stream.close()


def test_writing_imports_no_xarray(tmp_path: Path) -> None:
    """The CLI's NetCDF path never imports xarray (and with it pandas and dask: ~1.4 s of a fresh process)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom datetime import datetime\nfrom harpnet_cli.fields import FineForecast\n"
            "from harpnet_cli.grids import GridSpec\nfrom harpnet_cli.io.netcdf_writer import write_netcdf\n"
            "g = GridSpec.from_bbox(30, 31, -100, -99)\n"
            "fc = FineForecast(np.zeros((1, 1, *g.fine_shape), np.float32), g.fine_lat(), g.fine_lon(), "
            "g.fine_lat_bounds(), g.fine_lon_bounds(), [datetime(2020, 1, 1)], [datetime(2020, 1, 1, 3)], [None])\n"
            f"write_netcdf({str(tmp_path / 'o.nc')!r}, fc)\n"
            "print(sorted(m for m in ('xarray', 'pandas', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "o.nc").exists()
