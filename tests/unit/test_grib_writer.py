"""GRIB2 writer: read back with ecCodes, cfgrib and HARPNET's own reader."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest

from harpnet_cli.errors import UsageError
from harpnet_cli.fields import FineForecast
from harpnet_cli.io import grib_writer
from harpnet_cli.io.grib_writer import (
    ccsds_available,
    compare_packings,
    scaled_threshold,
    version_code,
    write_grib2,
    write_grib2_percentiles,
    write_grib2_probabilities,
)
from harpnet_cli.io.readers import read_accumulations

REF = datetime(2020, 3, 25, 18)
TOL = 0.005 + 1e-6  # decimalScaleFactor 2
PACKINGS = ["simple", "complex", "ccsds"]
INT_KEYS = {"centre", "typeOfFirstFixedSurface", "typeOfProcessedData"}  # keys ecCodes returns as names


def make_fc(south: float = 30.0, north: float = 31.0, west: float = -100.0, east: float = -99.0, *,
            members: list[int | None] | None = None, steps: int = 2, hours: float = 3.0, seed: int = 0,
            reference: datetime | None = REF, nan: bool = False) -> FineForecast:
    """A forecast on the fine 0.0625° grid of a box (edges on multiples of 0.0625)."""
    members = [None] if members is None else members
    lat = np.arange(south + 0.03125, north, 0.0625)
    lon = np.arange(west + 0.03125, east, 0.0625)
    rng = np.random.default_rng(seed)
    shape = (len(members), steps, lat.size, lon.size)
    data = ((rng.random(shape) < 0.6) * rng.gamma(0.8, 4.0, shape)).astype(np.float32)
    if nan:
        data[:, :, :3, :2] = np.nan
    start = reference or REF
    starts = [start + timedelta(hours=hours * k) for k in range(steps)]
    ends = [s + timedelta(hours=hours) for s in starts]
    return FineForecast(data=data, lat=lat, lon=lon, lat_bounds=np.stack([lat - 0.03125, lat + 0.03125], 1),
                        lon_bounds=np.stack([lon - 0.03125, lon + 0.03125], 1), starts=starts, ends=ends,
                        members=members, reference_time=reference,
                        attrs={"harpnet_checkpoint_sha256": "ab" + "0" * 62})


def messages(path: Path | bytes, keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every message's keys (when defined), ``values`` and 2-D ``lat``/``lon`` from ecCodes."""
    blob = path if isinstance(path, bytes) else path.read_bytes()
    out = []
    for message in grib_writer._split_messages(blob):
        gid = eccodes.codes_new_from_message(message)
        try:
            row = {k: eccodes.codes_get(gid, k, int if k in INT_KEYS else None)
                   for k in keys if eccodes.codes_is_defined(gid, k)}
            ni, nj = eccodes.codes_get(gid, "Ni"), eccodes.codes_get(gid, "Nj")
            values = eccodes.codes_get_values(gid)
            values[values == eccodes.codes_get(gid, "missingValue")] = np.nan
            row["values"] = values.reshape(nj, ni)
            row["lat"] = eccodes.codes_get_array(gid, "latitudes").reshape(nj, ni)
            row["lon"] = eccodes.codes_get_array(gid, "longitudes").reshape(nj, ni)
            out.append(row)
        finally:
            eccodes.codes_release(gid)
    return out


def south_to_north(msg: dict[str, Any]) -> np.ndarray:
    """A decoded field with rows south → north."""
    values: np.ndarray = msg["values"]
    return values if msg["lat"][0, 0] < msg["lat"][-1, 0] else values[::-1]


# -- grid, parameter, time ------------------------------------------------------------------------
@pytest.mark.parametrize("rows", ["north_to_south", "south_to_north"])
def test_deterministic_keys_and_values(tmp_path: Path, rows: str) -> None:
    fc = make_fc()
    path = write_grib2(tmp_path / "a.grib2", fc, rows=rows)  # type: ignore[arg-type]
    keys = ("discipline", "parameterCategory", "parameterNumber", "productDefinitionTemplateNumber", "stepRange",
            "iDirectionIncrementInDegrees", "jDirectionIncrementInDegrees", "gridType", "jScansPositively",
            "latitudeOfFirstGridPointInDegrees", "longitudeOfFirstGridPointInDegrees",
            "longitudeOfLastGridPointInDegrees", "typeOfStatisticalProcessing", "typeOfFirstFixedSurface",
            "dataDate", "dataTime", "yearOfEndOfOverallTimeInterval", "dayOfEndOfOverallTimeInterval",
            "hourOfEndOfOverallTimeInterval", "centre", "typeOfGeneratingProcess", "generatingProcessIdentifier",
            "backgroundProcess", "packingType", "decimalScaleFactor", "perturbationNumber", "shapeOfTheEarth",
            "productionStatusOfProcessedData")
    msgs = messages(path, keys)  # type: ignore[arg-type]
    assert len(msgs) == 2
    first = msgs[0]
    # no GRIB input, so no centre: 0/1/52, which ecCodes names under every centre
    assert (first["discipline"], first["parameterCategory"], first["parameterNumber"]) == (0, 1, 52)
    assert first["shapeOfTheEarth"] == 6 and first["productionStatusOfProcessedData"] == 2
    assert first["productDefinitionTemplateNumber"] == 8 and "perturbationNumber" not in first
    assert [m["stepRange"] for m in msgs] == ["0-3", "3-6"]
    assert first["iDirectionIncrementInDegrees"] == first["jDirectionIncrementInDegrees"] == 0.0625
    assert first["gridType"] == "regular_ll"
    assert first["jScansPositively"] == int(rows == "south_to_north")
    assert first["latitudeOfFirstGridPointInDegrees"] == (30.03125 if rows == "south_to_north" else 30.96875)
    assert first["longitudeOfFirstGridPointInDegrees"] == 260.03125
    assert first["longitudeOfLastGridPointInDegrees"] == 260.96875
    assert (first["typeOfStatisticalProcessing"], first["typeOfFirstFixedSurface"]) == (1, 1)
    assert (first["dataDate"], first["dataTime"]) == (20200325, 1800)
    assert [(m["yearOfEndOfOverallTimeInterval"], m["dayOfEndOfOverallTimeInterval"],
             m["hourOfEndOfOverallTimeInterval"]) for m in msgs] == [(2020, 25, 21), (2020, 26, 0)]
    assert first["centre"] == 255 and first["typeOfGeneratingProcess"] == 13  # no input centre: HARPNET's keys
    assert first["generatingProcessIdentifier"] == version_code(grib_writer.__version__)
    assert first["backgroundProcess"] == 0xAB
    assert first["packingType"] == "grid_complex_spatial_differencing"
    for k, msg in enumerate(msgs):
        np.testing.assert_allclose(south_to_north(msg), fc.data[0, k], atol=TOL)
    # a known point: (30.53125 N, 99.46875 W) is row 8, column 8 of the south → north array
    j = int(np.argmin(np.abs(first["lat"][:, 0] - 30.53125)))
    i = int(np.argmin(np.abs(first["lon"][0] - (360 - 99.46875))))
    assert first["lat"][j, i] == pytest.approx(30.53125) and first["lon"][j, i] == pytest.approx(260.53125)
    assert first["values"][j, i] == pytest.approx(fc.data[0, 0, 8, 8], abs=TOL)


@pytest.mark.parametrize("packing", PACKINGS)
def test_packing_precision_and_missing(tmp_path: Path, packing: str) -> None:
    if packing == "ccsds" and not ccsds_available():
        pytest.skip("ecCodes built without libaec")
    fc = make_fc(nan=True)
    fc.data[0, 1, 5, 5] = 512.37  # a large amount widens the range
    path = write_grib2(tmp_path / "p.grib2", fc, packing=packing)  # type: ignore[arg-type]
    msgs = messages(path, ("packingType", "bitmapPresent", "numberOfMissing"))  # type: ignore[arg-type]
    for k, msg in enumerate(msgs):
        assert msg["packingType"] == grib_writer.PACKING_TYPES[packing]
        assert msg["bitmapPresent"] == 1 and msg["numberOfMissing"] == 6
        got = south_to_north(msg)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(fc.data[0, k]))
        np.testing.assert_allclose(got, fc.data[0, k], atol=TOL)


@pytest.mark.parametrize(("west", "east", "first", "last"), [
    (179.0, 181.0, 179.03125, 180.96875),  # across the date line (lon continuous past 180)
    (-181.0, -179.0, 179.03125, 180.96875),  # the same box written from -180…180 longitudes
    (-1.0, 1.0, 359.03125, 0.96875),  # west of Greenwich
])
def test_longitudes_0_360(tmp_path: Path, west: float, east: float, first: float, last: float) -> None:
    fc = make_fc(30.0, 30.5, west, east, steps=1)
    path = write_grib2(tmp_path / "x.grib2", fc, rows="south_to_north")
    (msg,) = messages(path, ("longitudeOfFirstGridPointInDegrees", "longitudeOfLastGridPointInDegrees", "Ni"))  # type: ignore[arg-type]
    assert msg["longitudeOfFirstGridPointInDegrees"] == first
    assert msg["longitudeOfLastGridPointInDegrees"] == last
    assert msg["Ni"] == 32
    np.testing.assert_allclose((msg["lon"][0] - fc.lon + 180.0) % 360.0 - 180.0, 0.0, atol=1e-6)
    np.testing.assert_allclose(msg["values"], fc.data[0, 0], atol=TOL)
    # HARPNET's reader gives the same axis (unwrapped past 360) and values
    (acc,) = _read_tp(tmp_path, fc, rows="south_to_north")
    np.testing.assert_allclose((acc.grid.lon - fc.lon + 180.0) % 360.0 - 180.0, 0.0, atol=1e-6)
    assert np.all(np.diff(acc.grid.lon) > 0)  # continuous across 0° / 180°
    np.testing.assert_allclose(acc.data, fc.data[0, 0], atol=TOL)


def _read_tp(tmp_path: Path, fc: FineForecast, **kwargs: Any) -> list[Any]:
    """Write with ``parameter="tp"`` and read with HARPNET's reader (which needs ecCodes ``units``)."""
    path = write_grib2(tmp_path / "tp.grib2", fc, parameter="tp", overwrite=True, **kwargs)
    return read_accumulations([path])  # type: ignore[list-item]


def test_minute_steps_and_no_reference_time(tmp_path: Path) -> None:
    fc = make_fc(reference=None, hours=0.5, steps=3)
    path = write_grib2(tmp_path / "m.grib2", fc)
    msgs = messages(path, ("stepRange", "dataTime", "stepUnits", "minuteOfEndOfOverallTimeInterval"))  # type: ignore[arg-type]
    assert [m["stepRange"] for m in msgs] == ["0m-30m", "30m-60m", "60m-90m"]
    assert msgs[0]["dataTime"] == 1800  # the first window's start stands in for the reference time
    assert [m["minuteOfEndOfOverallTimeInterval"] for m in msgs] == [30, 0, 30]


def test_a_window_before_the_reference_time_is_written_from_its_start(tmp_path: Path) -> None:
    """An analysis whose window ends at its reference time (RDPA): GRIB2 steps cannot be negative, so the
    messages take the window's start as their reference time and keep the true window."""
    fc = make_fc()
    fc.reference_time = REF + timedelta(hours=1)
    path = write_grib2(tmp_path / "b.grib2", fc)
    msgs = messages(path, ("stepRange", "dataTime"))  # type: ignore[arg-type]
    assert msgs[0]["dataTime"] == int(f"{fc.starts[0]:%H%M}") and msgs[0]["stepRange"].startswith("0-")


# -- ensembles and probabilities ------------------------------------------------------------------
def test_ensemble_members(tmp_path: Path) -> None:
    fc = make_fc(members=[0, 1, 2])
    path = write_grib2(tmp_path / "e.grib2", fc)
    keys = ("productDefinitionTemplateNumber", "perturbationNumber", "numberOfForecastsInEnsemble",
            "typeOfEnsembleForecast", "stepRange")
    msgs = messages(path, keys)  # type: ignore[arg-type]
    assert [(m["stepRange"], m["perturbationNumber"]) for m in msgs] == [
        ("0-3", 0), ("0-3", 1), ("0-3", 2), ("3-6", 0), ("3-6", 1), ("3-6", 2)]
    assert {m["productDefinitionTemplateNumber"] for m in msgs} == {11}
    assert {m["numberOfForecastsInEnsemble"] for m in msgs} == {3}
    assert [m["typeOfEnsembleForecast"] for m in msgs[:3]] == [1, 3, 3]
    for msg, (t, m) in zip(msgs, [(t, m) for t in range(2) for m in range(3)], strict=True):
        np.testing.assert_allclose(south_to_north(msg), fc.data[m, t], atol=TOL)


@pytest.mark.parametrize(("statistic", "derived"), [("mean", 0), ("spread", 4)])
def test_ensemble_statistics(tmp_path: Path, statistic: str, derived: int) -> None:
    fc = make_fc(members=[0, 1, 2])
    path = write_grib2(tmp_path / "s.grib2", fc, statistic=statistic)
    msgs = messages(path, ("productDefinitionTemplateNumber", "derivedForecast", "numberOfForecastsInEnsemble"))  # type: ignore[arg-type]
    assert len(msgs) == 2
    assert {(m["productDefinitionTemplateNumber"], m["derivedForecast"], m["numberOfForecastsInEnsemble"])
            for m in msgs} == {(12, derived, 3)}
    expected = fc.data.mean(axis=0) if statistic == "mean" else fc.data.std(axis=0)
    for k, msg in enumerate(msgs):
        np.testing.assert_allclose(south_to_north(msg), expected[k], atol=TOL)


def test_precomputed_statistic_and_unknown_statistic(tmp_path: Path) -> None:
    fc = make_fc()
    path = write_grib2(tmp_path / "s.grib2", fc, statistic="mean", ensemble_size=30)
    msgs = messages(path, ("derivedForecast", "numberOfForecastsInEnsemble"))  # type: ignore[arg-type]
    assert (msgs[0]["derivedForecast"], msgs[0]["numberOfForecastsInEnsemble"]) == (0, 30)
    with pytest.raises(ValueError, match="unknown ensemble statistic 'median'"):
        write_grib2(tmp_path / "u.grib2", fc, statistic="median")


def test_probabilities(tmp_path: Path) -> None:
    fc = make_fc(members=[0, 1, 2, 3], nan=True)
    path = write_grib2_probabilities(tmp_path / "p.grib2", fc, [0.254, 5.0])
    keys = ("productDefinitionTemplateNumber", "probabilityType", "scaleFactorOfLowerLimit", "scaledValueOfLowerLimit",
            "forecastProbabilityNumber", "totalNumberOfForecastProbabilities", "stepRange", "typeOfGeneratingProcess")
    msgs = messages(path, keys)  # type: ignore[arg-type]
    assert len(msgs) == 4
    assert [(m["stepRange"], m["scaleFactorOfLowerLimit"], m["scaledValueOfLowerLimit"]) for m in msgs] == [
        ("0-3", 3, 254), ("0-3", 0, 5), ("3-6", 3, 254), ("3-6", 0, 5)]
    assert {(m["productDefinitionTemplateNumber"], m["probabilityType"], m["totalNumberOfForecastProbabilities"],
             m["typeOfGeneratingProcess"]) for m in msgs} == {(9, 3, 2, 5)}
    for msg, (t, thr) in zip(msgs, [(t, thr) for t in range(2) for thr in (0.254, 5.0)], strict=True):
        expected = (fc.data[:, t] > thr).mean(axis=0) * 100.0
        got = south_to_north(msg)
        assert np.isnan(got[:3, :2]).all()
        np.testing.assert_allclose(got[3:], expected[3:], atol=TOL)


def test_probabilities_validation(tmp_path: Path) -> None:
    fc = make_fc(members=[0, 1])
    with pytest.raises(ValueError, match="thresholds"):
        write_grib2_probabilities(tmp_path / "p.grib2", fc, [])
    with pytest.raises(ValueError, match="shape"):
        write_grib2_probabilities(tmp_path / "p.grib2", fc, [1.0], probabilities=np.zeros((2, 2, 16, 16)))
    assert scaled_threshold(0.254) == (3, 254) and scaled_threshold(25.0) == (0, 25)


def test_percentiles_validation(tmp_path: Path) -> None:
    fc = make_fc(members=[0, 1])
    _, steps, height, width = fc.data.shape
    with pytest.raises(ValueError, match="whole numbers in 0...100"):
        write_grib2_percentiles(tmp_path / "q.grib2", fc, [12.5], np.zeros((1, steps, height, width)))
    with pytest.raises(ValueError, match=r"percentile fields have shape \(1, .*\(percentiles, steps, lat, lon\)"):
        write_grib2_percentiles(tmp_path / "q.grib2", fc, [10, 90], np.zeros((1, steps, height, width)))
    assert not (tmp_path / "q.grib2").exists()


# -- other readers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", ["north_to_south", "south_to_north"])
def test_cfgrib_reads_it(tmp_path: Path, rows: str) -> None:
    import cfgrib

    fc = make_fc(members=[0, 1, 2], nan=True)
    path = write_grib2(tmp_path / "c.grib2", fc, parameter="tp", rows=rows)  # type: ignore[arg-type]
    # cfgrib puts the control (typeOfEnsembleForecast 1, "cf") and the perturbed members apart
    import xarray as xr

    parts = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
    assert len(parts) == 2
    ds = xr.concat([p if "number" in p.dims else p.expand_dims("number") for p in parts], dim="number")
    ds = ds.sortby("number")
    var = ds["tp"]
    assert var.attrs["GRIB_units"] == "kg m**-2"
    assert ds["number"].values.tolist() == [0, 1, 2]
    assert [s / np.timedelta64(1, "h") for s in ds["step"].values] == [3.0, 6.0]
    assert ds["time"].values == np.datetime64(REF)
    data = var.transpose("number", "step", "latitude", "longitude").values
    lat = ds["latitude"].values
    if lat[0] > lat[-1]:
        data, lat = data[:, :, ::-1], lat[::-1]
    np.testing.assert_allclose(lat, fc.lat)
    np.testing.assert_allclose(ds["longitude"].values % 360, fc.lon % 360)
    np.testing.assert_allclose(data, fc.data, atol=TOL)


@pytest.mark.parametrize("origin", [None, "centre 7, subCentre 0, generatingProcessIdentifier 96",
                                    "centre 98, subCentre 0, generatingProcessIdentifier 153"])
def test_cfgrib_names_total_precipitation_under_every_centre(tmp_path: Path, origin: str | None) -> None:
    import cfgrib

    fc = make_fc()
    if origin is not None:
        fc.attrs["input_grib_origin"] = origin
    path = write_grib2(tmp_path / "c.grib2", fc)
    (ds,) = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
    (name,) = list(ds.data_vars)
    assert name == "tp" and ds[name].attrs["GRIB_units"] == "kg m**-2"
    assert ds[name].attrs["GRIB_stepType"] == "accum"
    np.testing.assert_allclose(ds[name].values[:, ::-1], fc.data[0], atol=TOL)


def test_input_centre_is_kept_and_marked_post_processed_research(tmp_path: Path) -> None:
    fc = make_fc()
    fc.attrs["input_grib_origin"] = "centre 7, subCentre 0, generatingProcessIdentifier 96"
    keys = ("centre", "subCentre", "generatingProcessIdentifier", "backgroundProcess", "typeOfGeneratingProcess",
            "productionStatusOfProcessedData", "shapeOfTheEarth", "parameterNumber")
    (first, _) = messages(write_grib2(tmp_path / "n.grib2", fc), keys)  # type: ignore[arg-type]
    assert first["centre"] == 7 and first["parameterNumber"] == 8  # NCEP: 0/1/8, named tp / APCP
    assert (first["subCentre"], first["generatingProcessIdentifier"], first["backgroundProcess"]) == (0, 96, 255)
    assert (first["typeOfGeneratingProcess"], first["productionStatusOfProcessedData"]) == (13, 2)
    assert first["shapeOfTheEarth"] == 6


def test_input_origin_reads_the_first_message_of_grib_inputs(tmp_path: Path) -> None:
    fc = make_fc()
    fc.attrs["input_grib_origin"] = "centre 7, subCentre 3, generatingProcessIdentifier 96"
    a = write_grib2(tmp_path / "a.grib2", fc)
    (tmp_path / "b.nc").write_bytes(b"CDF\x01")
    assert grib_writer.input_origin([a, tmp_path / "b.nc"]) == "centre 7, subCentre 3, generatingProcessIdentifier 96"
    other = write_grib2(tmp_path / "o.grib2", make_fc())
    assert grib_writer.input_origin([a, other]) is None  # inputs disagree
    assert grib_writer.input_origin([tmp_path / "b.nc"]) is None


@pytest.mark.parametrize("rows", ["north_to_south", "south_to_north"])
def test_harpnet_reader_reads_tp(tmp_path: Path, rows: str) -> None:
    fc = make_fc(members=[0, 1, 2], nan=True)
    accs = _read_tp(tmp_path, fc, rows=rows)
    assert len(accs) == 6
    for acc in accs:
        m, t = acc.member, fc.starts.index(acc.start)
        assert acc.end == fc.ends[t] and acc.reference_time == REF
        lat, data = acc.grid.lat, acc.data
        if lat[0] > lat[-1]:
            lat, data = lat[::-1], data[::-1]
        np.testing.assert_allclose(lat, fc.lat, atol=1e-6)
        np.testing.assert_allclose(acc.grid.lon % 360, fc.lon % 360, atol=1e-6)
        np.testing.assert_allclose(data, fc.data[m, t], atol=TOL)  # NaN where NaN


def test_harpnet_reader_reads_apcp(tmp_path: Path) -> None:
    fc = make_fc()
    accs = read_accumulations([write_grib2(tmp_path / "a.grib2", fc)])  # type: ignore[list-item]
    assert [(a.start, a.end) for a in accs] == list(zip(fc.starts, fc.ends, strict=True))
    np.testing.assert_allclose(accs[0].data[::-1], fc.data[0, 0], atol=TOL)


def test_harpnet_reader_skips_probabilities_and_spread(tmp_path: Path) -> None:
    from harpnet_cli.errors import InputDataError as Bad

    fc = make_fc(members=[0, 1, 2])
    probs = write_grib2_probabilities(tmp_path / "p.grib2", fc, [1.0])
    with pytest.raises(Bad, match="no precipitation"):
        read_accumulations([probs])  # type: ignore[list-item]
    spread = write_grib2(tmp_path / "s.grib2", fc, statistic="spread")
    with pytest.raises(Bad, match="no precipitation"):
        read_accumulations([spread])  # type: ignore[list-item]
    mean = write_grib2(tmp_path / "m.grib2", fc, statistic="mean")
    assert len(read_accumulations([mean])) == len(fc.starts)  # type: ignore[list-item]


# -- streams, atomicity -----------------------------------------------------------------------------
def test_stream_gets_concatenated_messages(tmp_path: Path) -> None:
    fc = make_fc(members=[0, 1])
    buffer = io.BytesIO()
    assert write_grib2(buffer, fc) is None
    file = write_grib2(tmp_path / "f.grib2", fc)
    blob = buffer.getvalue()
    assert blob == file.read_bytes()  # type: ignore[union-attr]
    assert blob.count(b"GRIB") >= 4 and blob.startswith(b"GRIB") and blob.endswith(b"7777")
    assert len(messages(blob)) == 4


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    fc = make_fc(steps=1)
    target = tmp_path / "o.grib2"
    target.write_bytes(b"old")
    with pytest.raises(UsageError, match="exists"):
        write_grib2(target, fc)
    assert target.read_bytes() == b"old"
    write_grib2(target, fc, overwrite=True)
    assert target.read_bytes().startswith(b"GRIB")


def test_no_temporary_file_left_after_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fc = make_fc()
    calls = {"n": 0}
    real = grib_writer._set_data

    def fail_second(gid: int, field: np.ndarray, packing: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        real(gid, field, packing)

    monkeypatch.setattr(grib_writer, "_set_data", fail_second)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_grib2(tmp_path / "t.grib2", fc)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("change", "match"), [
    ({"lat": np.array([30.0, 30.0625, 30.2])}, "regular"),
    ({"members": [0, None]}, "member number"),
])
def test_bad_forecasts(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    fc = make_fc(members=[0, 1], south=30.0, north=30.1875)
    for key, value in change.items():
        setattr(fc, key, value)
    with pytest.raises(ValueError, match=match):
        write_grib2(tmp_path / "bad.grib2", fc)


def test_inf_and_unknown_packing_refused(tmp_path: Path) -> None:
    fc = make_fc()
    with pytest.raises(ValueError, match="unknown GRIB packing 'jpeg'"):
        write_grib2(tmp_path / "x.grib2", fc, packing="jpeg")  # type: ignore[arg-type]
    fc.data[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        write_grib2(tmp_path / "x.grib2", fc)


def test_compare_packings() -> None:
    rows = compare_packings(make_fc(members=[0, 1], nan=True))
    names = [r["packing"] for r in rows]
    assert names[:2] == ["simple", "complex"] and ("ccsds" in names) == ccsds_available()
    for row in rows:
        assert row["bytes"] > 0 and row["max_abs_error"] <= TOL


def test_version_code() -> None:
    assert version_code("0.1.0") == 10 and version_code("1.2.3") == 123
    assert version_code("3.0.0") == 255 and version_code("0.1.dev4") == 255


# -- optional external tools --------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("grib_ls") is None, reason="grib_ls not installed")
def test_grib_ls(tmp_path: Path) -> None:
    path = write_grib2(tmp_path / "g.grib2", make_fc(members=[0, 1]))
    out = subprocess.run(["grib_ls", "-p", "perturbationNumber,stepRange", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "4 of 4 messages" in out


@pytest.mark.skipif(shutil.which("cdo") is None, reason="cdo not installed")
def test_cdo(tmp_path: Path) -> None:
    path = write_grib2(tmp_path / "g.grib2", make_fc())
    out = subprocess.run(["cdo", "-s", "ntime", str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"
