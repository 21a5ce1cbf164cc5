"""Write small, realistic precipitation input files for tests, with the project's own tools.

GRIB is built from ecCodes samples (``codes_grib_new_from_samples``), NetCDF with netCDF4. Every
writer takes *hourly* amounts ``(H, ny, nx)`` in mm and writes windows summed from them, so a test
knows the exact interval amounts a reader plus :func:`~harpnet_cli.core.accumulation.to_interval_series`
must give back (up to GRIB packing, ~1e-3 mm with 24 bits).

The default box is the exact 0.25° grid over 30–40 N, 100–90 W (41 × 41 points), which
end-to-end tests can reuse. Heavy libraries are imported inside the writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

#: Default box (south, north, west, east) in degrees, on the 0.25° grid.
BOX = (30.0, 40.0, -100.0, -90.0)
GFS_REFERENCE = datetime(2020, 3, 25, 18)
ECMWF_REFERENCE = datetime(2016, 9, 25, 0)
WRF_START = datetime(2005, 9, 21, 0)
_GRIB2_MISSING = 9999.0


def synthetic_hourly(hours: int, ny: int = 41, nx: int = 41, *, seed: int = 0,
                     members: int | None = None) -> np.ndarray:
    """Random hourly amounts: mostly dry, showers up to a few mm.

    Parameters
    ----------
    hours, ny, nx : int
        Number of hours and grid size.
    seed : int
        Random seed.
    members : int, optional
        When given, a leading member axis is added.

    Returns
    -------
    numpy.ndarray
        ``(hours, ny, nx)`` or ``(members, hours, ny, nx)`` float32 mm, ``>= 0``.
    """
    rng = np.random.default_rng(seed)
    shape = (hours, ny, nx) if members is None else (members, hours, ny, nx)
    wet = rng.random(shape) < 0.4
    return (wet * rng.gamma(0.8, 2.0, shape)).astype(np.float32)


def box_axes(box: tuple[float, float, float, float] = BOX,
             step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """1-D axes of a lat/lon box: latitudes north → south, longitudes west → east (−180…180).

    Returns
    -------
    lat : (ny,) numpy.ndarray
    lon : (nx,) numpy.ndarray
    """
    south, north, west, east = box
    lat = np.round(np.arange(north, south - step / 2, -step), 6)
    lon = np.round(np.arange(west, east + step / 2, step), 6)
    return lat, lon


def gfs_windows(forecast_hour: int) -> list[tuple[int, int]]:
    """The APCP windows a GFS 0.25° file carries at ``forecast_hour``.

    A 6-hour bucket restarting every 6 hours (f003: 0–3, f006: 0–6, f009: 6–9, …) and, from f006
    on, the running total since the start (f006 has 0–6 twice, like the real file).
    """
    bucket_start = 6 * ((forecast_hour - 1) // 6)
    windows = [(bucket_start, forecast_hour)]
    if forecast_hour >= 6:
        windows.append((0, forecast_hour))
    return windows


# -- GRIB ---------------------------------------------------------------------------------------
def _eccodes() -> Any:
    """The ecCodes module, imported after pyproj, its log kept off the terminal (:mod:`harpnet_cli.io.ecc`)."""
    from harpnet_cli.io.ecc import eccodes

    return eccodes


def _set_regular_ll(gid: int, lat: np.ndarray, lon: np.ndarray) -> None:
    """Describe a regular lat/lon grid (any scanning direction) on a GRIB handle."""
    eccodes = _eccodes()

    eccodes.codes_set(gid, "gridType", "regular_ll")
    eccodes.codes_set_long(gid, "Ni", lon.size)
    eccodes.codes_set_long(gid, "Nj", lat.size)
    eccodes.codes_set(gid, "jScansPositively", int(lat[-1] > lat[0]))
    eccodes.codes_set(gid, "latitudeOfFirstGridPointInDegrees", float(lat[0]))
    eccodes.codes_set(gid, "latitudeOfLastGridPointInDegrees", float(lat[-1]))
    eccodes.codes_set(gid, "longitudeOfFirstGridPointInDegrees", float(lon[0]))
    eccodes.codes_set(gid, "longitudeOfLastGridPointInDegrees", float(lon[-1]))
    eccodes.codes_set(gid, "iDirectionIncrementInDegrees", abs(float(lon[1] - lon[0])))
    eccodes.codes_set(gid, "jDirectionIncrementInDegrees", abs(float(lat[1] - lat[0])))


def _set_values(gid: int, field: np.ndarray, bits: int = 24) -> None:
    """Pack a ``(ny, nx)`` field; NaN cells go into the bitmap."""
    eccodes = _eccodes()

    values = np.asarray(field, dtype=np.float64).ravel()
    missing = ~np.isfinite(values)
    eccodes.codes_set(gid, "bitsPerValue", bits)
    if missing.any():
        eccodes.codes_set(gid, "bitmapPresent", 1)
        eccodes.codes_set(gid, "missingValue", _GRIB2_MISSING)
        values = np.where(missing, _GRIB2_MISSING, values)
    eccodes.codes_set_values(gid, values)


def _apcp_message(reference: datetime, window: tuple[int, int], lat: np.ndarray, lon: np.ndarray,
                  field: np.ndarray, member: int | None) -> int:
    """A GRIB2 APCP message (PDT 8, or 11 for a member) over ``window`` hours."""
    eccodes = _eccodes()

    gid = eccodes.codes_grib_new_from_samples("GRIB2")
    eccodes.codes_set(gid, "centre", 7)  # NCEP
    eccodes.codes_set(gid, "productDefinitionTemplateNumber", 8 if member is None else 11)
    eccodes.codes_set(gid, "discipline", 0)
    eccodes.codes_set(gid, "parameterCategory", 1)
    eccodes.codes_set(gid, "parameterNumber", 8)
    eccodes.codes_set(gid, "typeOfFirstFixedSurface", 1)
    eccodes.codes_set(gid, "typeOfStatisticalProcessing", 1)
    if member is not None:
        eccodes.codes_set(gid, "typeOfEnsembleForecast", 3 if member else 1)
        eccodes.codes_set(gid, "perturbationNumber", member)
    eccodes.codes_set(gid, "dataDate", int(f"{reference:%Y%m%d}"))
    eccodes.codes_set(gid, "dataTime", int(f"{reference:%H%M}"))
    eccodes.codes_set(gid, "stepUnits", 1)
    eccodes.codes_set(gid, "startStep", window[0])
    eccodes.codes_set(gid, "endStep", window[1])
    _set_regular_ll(gid, lat, lon)
    _set_values(gid, field)
    return gid


def write_gfs_grib(path: Path, hourly: np.ndarray, windows: Sequence[tuple[int, int]], *,
                   reference_time: datetime = GFS_REFERENCE, box: tuple[float, float, float, float] = BOX,
                   perturbation_numbers: Sequence[int] | None = None, step: float = 0.25) -> Path:
    """Write a GFS/GEFS-like GRIB2 file of APCP messages.

    Parameters
    ----------
    path : Path
        Output file.
    hourly : numpy.ndarray
        ``(H, ny, nx)`` hourly amounts in mm, or ``(M, H, ny, nx)`` with ``perturbation_numbers``.
        NaN cells are written as bitmap-missing.
    windows : sequence of (int, int)
        ``(start, end)`` forecast hours of each message, e.g. :func:`gfs_windows` ``(9)`` =
        ``[(6, 9), (0, 9)]``; a message's data is ``hourly[start:end].sum(0)``.
    reference_time : datetime
        Forecast reference time.
    box : (south, north, west, east)
        Lat/lon box on a 0.25° grid (north → south rows, 0…360 longitudes as GFS).
    perturbation_numbers : sequence of int, optional
        GEFS members (PDT 11 with ``perturbationNumber``); one per leading entry of ``hourly``.
    step : float
        Grid spacing in degrees (0.5 for GEFS ``pgrb2a``).

    Returns
    -------
    Path
        ``path``.
    """
    eccodes = _eccodes()

    lat, lon = box_axes(box, step)
    lon360 = np.round(lon % 360.0, 6)
    members = [None] if perturbation_numbers is None else list(perturbation_numbers)
    fields = hourly[np.newaxis] if perturbation_numbers is None else hourly
    _check_shape(fields[0], lat, lon)
    with open(path, "wb") as out:
        for member, member_hourly in zip(members, fields, strict=True):
            for window in windows:
                field = member_hourly[window[0]:window[1]].sum(axis=0)
                gid = _apcp_message(reference_time, window, lat, lon360, field, member)
                eccodes.codes_write(gid, out)
                eccodes.codes_release(gid)
    return path


def write_apcp_fields(path: Path, fields: Sequence[tuple[tuple[int, int], np.ndarray]], *,
                      reference_time: datetime = GFS_REFERENCE, box: tuple[float, float, float, float] = BOX,
                      step: float = 0.25, member: int | None = None, packing: str = "grid_simple", bits: int = 24,
                      bitmap: bool = True) -> Path:
    """Write GRIB2 APCP messages holding exactly the given values (fill values, NaN, inf included).

    Parameters
    ----------
    path : Path
        Output file.
    fields : sequence of ((int, int), numpy.ndarray)
        ``(start, end)`` forecast hours and the ``(ny, nx)`` values of each message (rows north →
        south as :func:`box_axes`), written as they are.
    reference_time, box, step, member
        As for :func:`write_gfs_grib`.
    packing : str
        ecCodes ``packingType``: ``grid_simple``, ``grid_complex``, ``grid_ieee`` (float32, so NaN
        and inf survive), …
    bits : int
        ``bitsPerValue`` of the scaled packings.
    bitmap : bool
        Write non-finite cells as bitmap-missing (as :func:`write_gfs_grib`); False writes every
        value into the data section, NaN and inf too (with ``grid_ieee`` they are stored as such).

    Returns
    -------
    Path
        ``path``.
    """
    eccodes = _eccodes()

    lat, lon = box_axes(box, step)
    with open(path, "wb") as out:
        for window, field in fields:
            _check_shape(field, lat, lon)
            values = np.asarray(field, dtype=np.float64)
            gid = _apcp_message(reference_time, window, lat, np.round(lon % 360.0, 6),
                                np.where(np.isfinite(values), values, 0.0), member)
            eccodes.codes_set(gid, "packingType", packing)
            if bitmap:
                _set_values(gid, values, bits)
            else:
                if packing != "grid_ieee":
                    eccodes.codes_set(gid, "bitsPerValue", bits)
                eccodes.codes_set(gid, "bitmapPresent", 0)
                eccodes.codes_set_values(gid, values.ravel())
            eccodes.codes_write(gid, out)
            eccodes.codes_release(gid)
    return path


def write_rdpa_grib(path: Path, amount: np.ndarray, valid_time: datetime, *, hours: int = 24,
                    first_point: tuple[float, float] = (44.0, -77.0), dx_m: float = 10000.0) -> Path:
    """Write an RDPA-like 24-hour analysis: Environment Canada's polar stereographic 10-km grid and
    its encoder's negative ``lengthOfTimeRange``.

    CaPA/RDPA analyses stamp the *end* of the window as the reference time, with forecast time 0,
    and write the window length as ``-24`` in a 32-bit two's complement (ecCodes reads
    4294967272 hours), where GRIB2 has an unsigned field.

    Parameters
    ----------
    path : Path
        Output file.
    amount : numpy.ndarray
        ``(ny, nx)`` amounts in mm, row 0 the southernmost (``jScansPositively``).
    valid_time : datetime
        End of the window (the reference time).
    hours : int
        Window length written (negated).
    first_point : (float, float)
        Latitude and longitude of the south-west grid point.
    dx_m : float
        Grid spacing in metres.

    Returns
    -------
    Path
        ``path``.
    """
    eccodes = _eccodes()

    ny, nx = amount.shape
    gid = eccodes.codes_grib_new_from_samples("polar_stereographic_pl_grib2")
    eccodes.codes_set(gid, "centre", 54)  # Montreal (CMC)
    eccodes.codes_set(gid, "productDefinitionTemplateNumber", 8)
    for key, code in (("discipline", 0), ("parameterCategory", 1), ("parameterNumber", 8),
                      ("typeOfFirstFixedSurface", 1), ("typeOfStatisticalProcessing", 1)):
        eccodes.codes_set(gid, key, code)
    eccodes.codes_set(gid, "dataDate", int(f"{valid_time:%Y%m%d}"))
    eccodes.codes_set(gid, "dataTime", int(f"{valid_time:%H%M}"))
    eccodes.codes_set(gid, "indicatorOfUnitOfTimeRange", 1)
    eccodes.codes_set(gid, "forecastTime", 0)
    eccodes.codes_set(gid, "indicatorOfUnitForTimeRange", 1)
    eccodes.codes_set_long(gid, "lengthOfTimeRange", 2**32 - hours)  # the encoder's "-24"
    grid: tuple[tuple[str, float | int], ...] = (
        ("Nx", nx), ("Ny", ny), ("latitudeOfFirstGridPointInDegrees", first_point[0]),
        ("longitudeOfFirstGridPointInDegrees", first_point[1] % 360.0), ("LaDInDegrees", 60.0),
        ("orientationOfTheGridInDegrees", 249.0), ("DxInMetres", dx_m), ("DyInMetres", dx_m),
        ("iScansNegatively", 0), ("jScansPositively", 1), ("projectionCentreFlag", 0))
    for key, value in grid:
        eccodes.codes_set(gid, key, value)
    _set_values(gid, amount)
    with open(path, "wb") as out:
        eccodes.codes_write(gid, out)
    eccodes.codes_release(gid)
    return path


def write_geotiff_like(path: Path) -> Path:
    """Write the first bytes of a GeoTIFF made from a GRIB file: TIFF magic and GDAL's ``GRIB_*`` tags.

    Enough to be told apart from GRIB by content (HARPNET does not read GeoTIFF).
    """
    tags = b"<GDALMetadata><Item name=\"GRIB_ELEMENT\">APCP</Item><Item name=\"GRIB_UNIT\">[kg/(m^2)]</Item>"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00" + bytes(64) + tags + b"GRIB\x00\x00\x00\x02" + bytes(256))
    return path


def write_gfs_sequence(directory: Path, hourly: np.ndarray, forecast_hours: Sequence[int] = (3, 6, 9), *,
                       reference_time: datetime = GFS_REFERENCE,
                       box: tuple[float, float, float, float] = BOX) -> list[Path]:
    """Write one GFS file per forecast hour, named like the real ones (``gfs.t18z.pgrb2.0p25.f003``).

    Each file carries the windows of :func:`gfs_windows`: a 6-hour bucket and, from f006, the
    running total. ``hourly`` is ``(H, ny, nx)`` with ``H >= max(forecast_hours)``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for hour in forecast_hours:
        path = directory / f"gfs.{reference_time:%Y%m%d}.t{reference_time:%H}z.pgrb2.0p25.f{hour:03d}"
        paths.append(write_gfs_grib(path, hourly, gfs_windows(hour), reference_time=reference_time, box=box))
    return paths


def write_ecmwf_grib(path: Path, hourly: np.ndarray, steps: Sequence[int] = (0, 6), *,
                     reference_time: datetime = ECMWF_REFERENCE,
                     box: tuple[float, float, float, float] = BOX, edition: int = 1) -> Path:
    """Write ECMWF ``tp`` running totals in metres (step 0 is the all-zero field).

    Parameters
    ----------
    path : Path
        Output file.
    hourly : numpy.ndarray
        ``(H, ny, nx)`` hourly amounts in mm; step ``s`` holds ``hourly[:s].sum(0) / 1000`` m.
    steps : sequence of int
        Forecast steps in hours.
    reference_time : datetime
        Forecast reference time.
    box : (south, north, west, east)
        Lat/lon box on a 0.25° grid (north → south rows, −180…180 longitudes as ECMWF open data).
    edition : {1, 2}
        GRIB1 (single ``step``, ``stepType=instant`` as ECMWF writes it) or GRIB2 (``0-step``).

    Returns
    -------
    Path
        ``path``.
    """
    eccodes = _eccodes()

    lat, lon = box_axes(box)
    _check_shape(hourly, lat, lon)
    sample = "regular_ll_sfc_grib1" if edition == 1 else "regular_ll_sfc_grib2"
    with open(path, "wb") as out:
        for step in steps:
            gid = eccodes.codes_grib_new_from_samples(sample)
            if edition == 2:
                eccodes.codes_set(gid, "productDefinitionTemplateNumber", 8)
            eccodes.codes_set(gid, "paramId", 228)
            if edition == 1:
                eccodes.codes_set(gid, "marsType", "fc")
            eccodes.codes_set(gid, "dataDate", int(f"{reference_time:%Y%m%d}"))
            eccodes.codes_set(gid, "dataTime", int(f"{reference_time:%H%M}"))
            eccodes.codes_set(gid, "stepUnits", 1)
            if edition == 2:
                eccodes.codes_set(gid, "startStep", 0)
            eccodes.codes_set(gid, "endStep", step)
            _set_regular_ll(gid, lat, lon)
            _set_values(gid, hourly[:step].sum(axis=0) / 1000.0)
            eccodes.codes_write(gid, out)
            eccodes.codes_release(gid)
    return path


def _check_shape(field: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
    """Refuse hourly data that does not match the box."""
    if field.shape[-2:] != (lat.size, lon.size):
        raise ValueError(f"hourly data is {field.shape[-2:]}, the box needs {(lat.size, lon.size)}")


# -- NetCDF -------------------------------------------------------------------------------------
def write_cf_netcdf(path: Path, hourly: np.ndarray, period_hours: int = 3, *,
                    start: datetime = GFS_REFERENCE, box: tuple[float, float, float, float] = BOX,
                    bounds: bool = True, cell_methods: bool = False, units: str = "kg m-2",
                    standard_name: str = "precipitation_amount", name: str = "precip") -> Path:
    """Write a CF lat/lon NetCDF of ``period_hours`` amounts (latitudes south → north).

    Parameters
    ----------
    path : Path
        Output file.
    hourly : numpy.ndarray
        ``(H, ny, nx)`` hourly amounts in mm (rows north → south as :func:`box_axes`); ``H`` a
        multiple of ``period_hours``. Written divided by 1000 when ``units == "m"``.
    period_hours : int
        Accumulation period of each time step.
    start : datetime
        Start of the first window; the time coordinate holds window ends.
    box : (south, north, west, east)
        Lat/lon box on a 0.25° grid.
    bounds : bool
        Write ``time_bnds`` (and ``time:bounds``).
    cell_methods : bool
        Write ``cell_methods = "time: sum (interval: N hours)"``.
    units, standard_name, name : str
        Attributes and name of the precipitation variable.

    Returns
    -------
    Path
        ``path``.
    """
    import netCDF4

    lat, lon = box_axes(box)
    _check_shape(hourly, lat, lon)
    steps = hourly.shape[0] // period_hours
    amounts = hourly[: steps * period_hours].reshape(steps, period_hours, lat.size, lon.size).sum(axis=1)
    ends = np.arange(1, steps + 1) * period_hours
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.Conventions = "CF-1.8"
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = f"hours since {start:%Y-%m-%d %H:%M:%S}"
        time.standard_name = "time"
        time[:] = ends
        if bounds:
            ds.createDimension("nv", 2)
            time.bounds = "time_bnds"
            ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([ends - period_hours, ends], 1)
        _coordinate(ds, "lat", lat[::-1], "latitude", "degrees_north")
        _coordinate(ds, "lon", lon, "longitude", "degrees_east")
        var = ds.createVariable(name, "f4", ("time", "lat", "lon"), fill_value=np.float32(-9999.0))
        var.units = units
        var.standard_name = standard_name
        if cell_methods:
            var.cell_methods = f"time: sum (interval: {period_hours} hours)"
        var[:] = amounts[:, ::-1, :] / (1000.0 if units == "m" else 1.0)
    return path


def _coordinate(ds: Any, name: str, values: np.ndarray, standard_name: str, units: str) -> None:
    """Add a 1-D CF coordinate variable."""
    var = ds.createVariable(name, "f8", (name,))
    var.standard_name = standard_name
    var.units = units
    var[:] = values


def wrf_lambert_grid(ny: int = 10, nx: int = 12, *, dx: float = 4000.0, cen_lat: float = 38.5,
                     cen_lon: float = -97.0, shift_cells: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """2-D XLAT/XLONG of a CONUS404-like Lambert grid (truelats 30/50, stand_lon −97, sphere).

    Parameters
    ----------
    ny, nx : int
        Grid size.
    dx : float
        Spacing in metres.
    cen_lat, cen_lon : float
        Grid centre.
    shift_cells : float
        Shift of the whole grid eastwards and northwards, in cells (a moving nest).

    Returns
    -------
    lat, lon : (ny, nx) numpy.ndarray
    """
    import pyproj

    lcc = pyproj.CRS.from_proj4("+proj=lcc +lat_1=30 +lat_2=50 +lat_0=38.5 +lon_0=-97 +R=6370000 +units=m")
    to_xy = pyproj.Transformer.from_crs(lcc.geodetic_crs, lcc, always_xy=True)
    x0, y0 = to_xy.transform(cen_lon, cen_lat)
    xs = x0 + dx * (np.arange(nx) - (nx - 1) / 2 + shift_cells)
    ys = y0 + dx * (np.arange(ny) - (ny - 1) / 2 + shift_cells)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = to_xy.transform(xx, yy, direction="INVERSE")
    return np.asarray(lat), np.asarray(lon)


def write_wrf_netcdf(path: Path, hourly: np.ndarray, step_hours: int = 1, *, start: datetime = WRF_START,
                     spinup_hours: int = 0, moving: bool = False, prec_acc: bool = False) -> Path:
    """Write a tiny WRF-layout file: ``Times``, ``XTIME``, ``XLAT``/``XLONG``, ``RAINNC``/``RAINC``.

    Parameters
    ----------
    path : Path
        Output file.
    hourly : numpy.ndarray
        ``(H, ny, nx)`` hourly amounts in mm; times are ``start + k * step_hours`` for
        ``k = 0 … H // step_hours``; the running total at time ``k`` is the sum of the first
        ``k * step_hours`` hours (70 % in ``RAINNC``, 30 % in ``RAINC``) plus ``spinup`` rain.
    step_hours : int
        Hours between output times.
    start : datetime
        First output time.
    spinup_hours : int
        Hours between ``SIMULATION_START_DATE`` and ``start``; the totals at ``start`` are then
        non-zero (1 mm everywhere), as in real output.
    moving : bool
        Shift the grid by 1/2 cell per output time, like a moving nest.
    prec_acc : bool
        Also write ``PREC_ACC_NC`` (amount over the ``step_hours`` ending at each time) and
        ``PREC_ACC_DT``.

    Returns
    -------
    Path
        ``path``.
    """
    import netCDF4

    times, ny, nx = hourly.shape[0] // step_hours + 1, hourly.shape[1], hourly.shape[2]
    cumulative = np.concatenate([np.zeros((1, ny, nx)), np.cumsum(hourly, axis=0)])[::step_hours][:times]
    totals = cumulative + (1.0 if spinup_hours else 0.0)
    stamps = [start + timedelta(hours=k * step_hours) for k in range(times)]
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        _wrf_attributes(ds, start - timedelta(hours=spinup_hours), step_hours, ny, nx, prec_acc)
        _wrf_dimensions_and_times(ds, stamps, spinup_hours)
        _wrf_coordinates(ds, times, ny, nx, moving)
        _wrf_field(ds, "RAINNC", 0.7 * totals, "ACCUMULATED TOTAL GRID SCALE PRECIPITATION")
        _wrf_field(ds, "RAINC", 0.3 * totals, "ACCUMULATED TOTAL CUMULUS PRECIPITATION")
        if prec_acc:
            _wrf_field(ds, "PREC_ACC_NC", np.diff(cumulative, axis=0, prepend=cumulative[:1]),
                       "ACCUMULATED GRID SCALE PRECIPITATION OVER prec_acc_dt PERIODS OF TIME")
    return path


def _wrf_attributes(ds: Any, simulation_start: datetime, step_hours: int, ny: int, nx: int,
                    prec_acc: bool) -> None:
    """Global attributes of a CONUS404-like run."""
    attrs = {"TITLE": " OUTPUT FROM WRF V4.1 MODEL (harpnet test fixture)",
             "SIMULATION_START_DATE": f"{simulation_start:%Y-%m-%d_%H:%M:%S}",
             "START_DATE": f"{simulation_start:%Y-%m-%d_%H:%M:%S}",
             "WEST-EAST_GRID_DIMENSION": nx + 1, "SOUTH-NORTH_GRID_DIMENSION": ny + 1,
             "DX": np.float32(4000.0), "DY": np.float32(4000.0), "MAP_PROJ": 1, "TRUELAT1": np.float32(30.0),
             "TRUELAT2": np.float32(50.0), "STAND_LON": np.float32(-97.0), "CEN_LAT": np.float32(38.5),
             "CEN_LON": np.float32(-97.0), "BUCKET_MM": np.float32(-1.0),
             "PREC_ACC_DT": np.float32(60.0 * step_hours if prec_acc else 0.0)}
    ds.setncatts(attrs)


def _wrf_dimensions_and_times(ds: Any, stamps: list[datetime], spinup_hours: int) -> None:
    """``Time``/``DateStrLen`` dimensions, the ``Times`` character array and ``XTIME``."""
    ds.createDimension("Time", None)
    ds.createDimension("DateStrLen", 19)
    text = np.array([list(f"{t:%Y-%m-%d_%H:%M:%S}") for t in stamps], dtype="S1")
    ds.createVariable("Times", "S1", ("Time", "DateStrLen"))[:] = text
    xtime = ds.createVariable("XTIME", "f4", ("Time",))
    xtime.description = "minutes since simulation start"
    xtime[:] = [60.0 * spinup_hours + (t - stamps[0]).total_seconds() / 60 for t in stamps]


def _wrf_coordinates(ds: Any, times: int, ny: int, nx: int, moving: bool) -> None:
    """``XLAT``/``XLONG`` with a ``Time`` dimension, shifting per time when ``moving``."""
    ds.createDimension("south_north", ny)
    ds.createDimension("west_east", nx)
    grids = [wrf_lambert_grid(ny, nx, shift_cells=0.5 * k if moving else 0.0) for k in range(times)]
    for name, index, units in (("XLAT", 0, "degree_north"), ("XLONG", 1, "degree_east")):
        var = ds.createVariable(name, "f4", ("Time", "south_north", "west_east"))
        var.units = units
        var.description = "LATITUDE, SOUTH IS NEGATIVE" if index == 0 else "LONGITUDE, WEST IS NEGATIVE"
        var[:] = np.stack([g[index] for g in grids])


def _wrf_field(ds: Any, name: str, data: np.ndarray, description: str) -> None:
    """A ``(Time, south_north, west_east)`` float32 field in mm."""
    var = ds.createVariable(name, "f4", ("Time", "south_north", "west_east"))
    var.units = "mm"
    var.description = description
    var[:] = data.astype(np.float32)


# -- streaming-scale layouts: one file per hour, MRMS GRIB2, CONUS404 Zarr ---------------------
MRMS_NO_COVERAGE = -3.0


def write_mrms_grib(path: Path, field: np.ndarray, valid_time: datetime, *,
                    box: tuple[float, float, float, float] = BOX, step: float = 0.25, number: int = 9) -> Path:
    """Write one MRMS-like 1-hour QPE message (NSSL discipline 209, category 6) ending at ``valid_time``.

    Parameters
    ----------
    path : Path
        Output file.
    field : numpy.ndarray
        ``(ny, nx)`` amounts in mm, rows north → south as :func:`box_axes`; NaN cells are written
        as MRMS's −3 ("no coverage"), not as bitmap-missing.
    valid_time : datetime
        End of the hour (``dataDate``/``dataTime``; step 0 as MRMS writes it).
    box : (south, north, west, east)
        Lat/lon box; longitudes written 0…360 as MRMS does.
    step : float
        Grid spacing in degrees.
    number : int
        ``parameterNumber``: 9 GaugeCorr QPE 01H, 37 MultiSensor QPE 01H Pass2.

    Returns
    -------
    Path
        ``path``.
    """
    eccodes = _eccodes()

    lat, lon = box_axes(box, step)
    _check_shape(field, lat, lon)
    gid = eccodes.codes_grib_new_from_samples("GRIB2")
    eccodes.codes_set(gid, "centre", 161)  # NOAA OAR, as MRMS
    eccodes.codes_set(gid, "discipline", 209)
    eccodes.codes_set(gid, "parameterCategory", 6)
    eccodes.codes_set(gid, "parameterNumber", number)
    eccodes.codes_set(gid, "dataDate", int(f"{valid_time:%Y%m%d}"))
    eccodes.codes_set(gid, "dataTime", int(f"{valid_time:%H%M}"))
    eccodes.codes_set(gid, "stepUnits", 1)
    eccodes.codes_set(gid, "endStep", 0)
    _set_regular_ll(gid, lat, np.round(lon % 360.0, 6))
    _set_values(gid, np.where(np.isfinite(field), field, MRMS_NO_COVERAGE))
    with open(path, "wb") as out:
        eccodes.codes_write(gid, out)
    eccodes.codes_release(gid)
    return path


def write_mrms_series(directory: Path, hourly: np.ndarray, first_end: datetime, *, skip: Sequence[int] = (),
                      box: tuple[float, float, float, float] = BOX, step: float = 0.25) -> list[Path]:
    """Write hourly MRMS-like files named like the real ones (``MRMS_GaugeCorr_QPE_01H_00.00_YYYYMMDD-HH0000.grib2``).

    File ``k`` holds ``hourly[k]``, the hour ending ``first_end + k`` hours; indices in ``skip``
    are not written (a missing hour).
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, field in enumerate(hourly):
        if k in skip:
            continue
        end = first_end + timedelta(hours=k)
        path = directory / f"MRMS_GaugeCorr_QPE_01H_00.00_{end:%Y%m%d-%H%M%S}.grib2"
        paths.append(write_mrms_grib(path, field, end, box=box, step=step))
    return paths


def write_conus404_hourly(directory: Path, hourly: np.ndarray, first_end: datetime, *, skip: Sequence[int] = (),
                          simulation_start: datetime | None = None) -> list[Path]:
    """Write CONUS404-layout hourly files (``wrf2d_d01_YYYY-MM-DD_HH:00:00``), one time each, with ``PREC_ACC_NC``.

    Each file has ``Times``, ``XTIME`` (minutes since the simulation start), ``XLAT``/``XLONG``
    ``(Time, south_north, west_east)`` on the Lambert grid of :func:`wrf_lambert_grid` (truelats
    30/50, stand_lon −97, 4 km), the CONUS404 global attributes with ``PREC_ACC_DT = 60`` and
    ``PREC_ACC_NC`` (mm over the hour ending at the file's time). No running totals.

    Parameters
    ----------
    directory : Path
        Output folder (created).
    hourly : numpy.ndarray
        ``(H, ny, nx)`` amounts in mm; file ``k`` holds ``hourly[k]``, the hour ending
        ``first_end + k`` hours.
    first_end : datetime
        Time of the first file.
    skip : sequence of int
        Indices not written (missing hours).
    simulation_start : datetime, optional
        ``SIMULATION_START_DATE``; default one day before ``first_end`` (CONUS404 restarts yearly).

    Returns
    -------
    list of Path
        The files written, in time order.
    """
    import netCDF4

    ny, nx = hourly.shape[1:]
    start = simulation_start or first_end - timedelta(days=1)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, field in enumerate(hourly):
        if k in skip:
            continue
        time = first_end + timedelta(hours=k)
        path = directory / f"wrf2d_d01_{time:%Y-%m-%d_%H:%M:%S}"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            _wrf_attributes(ds, start, 1, ny, nx, prec_acc=True)
            _wrf_dimensions_and_times(ds, [time], int((time - start) / timedelta(hours=1)))
            _wrf_coordinates(ds, 1, ny, nx, moving=False)
            _wrf_field(ds, "PREC_ACC_NC", field[np.newaxis],
                       "ACCUMULATED GRID SCALE PRECIPITATION OVER prec_acc_dt PERIODS OF TIME")
        paths.append(path)
    return paths


def write_conus404_zarr(path: Path, hourly: np.ndarray, first_end: datetime) -> Path:
    """Write a tiny CONUS404-like Zarr store: ``PREC_ACC_NC (time, y, x)``, 2-D ``XLAT``/``XLONG``, ``time``.

    Laid out as the public CONUS404 hourly store (one variable per array, chunked in time,
    ``XLAT``/``XLONG`` as 2-D coordinates, CF ``time``), on the grid of :func:`wrf_lambert_grid`.

    Parameters
    ----------
    path : Path
        Store directory (overwritten).
    hourly : numpy.ndarray
        ``(H, ny, nx)`` amounts in mm; step ``k`` is the hour ending ``first_end + k`` hours.
    first_end : datetime
        Time of the first step.

    Returns
    -------
    Path
        ``path``.
    """
    import xarray as xr

    steps, ny, nx = hourly.shape
    lat, lon = wrf_lambert_grid(ny, nx)
    times = np.array([np.datetime64(first_end + timedelta(hours=k), "ns") for k in range(steps)])
    precip = xr.DataArray(hourly.astype(np.float32), dims=("time", "y", "x"),
                          attrs={"units": "mm", "description": "ACCUMULATED GRID SCALE PRECIPITATION OVER "
                                                               "prec_acc_dt PERIODS OF TIME"})
    ds = xr.Dataset({"PREC_ACC_NC": precip},
                    coords={"time": ("time", times), "XLAT": (("y", "x"), lat.astype(np.float32)),
                            "XLONG": (("y", "x"), lon.astype(np.float32))},
                    attrs={"MAP_PROJ": 1, "DX": 4000.0, "TRUELAT1": 30.0, "TRUELAT2": 50.0, "STAND_LON": -97.0})
    ds.to_zarr(path, mode="w", encoding={"PREC_ACC_NC": {"chunks": (min(steps, 24), ny, nx)}},
               consolidated=False)
    return path


def write_prism_bil_zip(path: Path, data: np.ndarray, *, west: float = -125.0, north: float = 49.916666666667,
                        step: float = 1 / 24, nodata: float = -9999.0, byteorder: str = "I",
                        name: str = "PRISM_ppt_30yr_normal_4kmD1_0301_bil") -> Path:
    """Write a tiny PRISM-like normal: a zip of ``NAME.bil`` (float32 BIL) and ``NAME.hdr``.

    Same layout as PRISM's ``..._bil.zip`` (ESRI header with ``BYTEORDER``, ``NROWS``,
    ``NCOLS``, ``NBITS 32``, ``PIXELTYPE FLOAT``, ``ULXMAP``/``ULYMAP`` = centre of the
    upper-left cell, ``XDIM``/``YDIM``, ``NODATA``), with any size, origin and byte order.

    Parameters
    ----------
    path : Path
        The zip to write (overwritten).
    data : numpy.ndarray
        ``(ny, nx)`` values, rows **north → south** as in the file; NaN is written as ``nodata``.
    west, north : float
        Centre of the upper-left (north-west) cell, degrees.
    step : float
        Cell size, degrees (PRISM 4 km: 2.5′ = 1/24°).
    nodata : float
        The no-data value written to the header and the raster.
    byteorder : {"I", "M"}
        Little-endian (Intel, as PRISM) or big-endian (Motorola).

    Returns
    -------
    Path
        ``path``.
    """
    import zipfile

    values = np.where(np.isnan(data), nodata, data).astype("<f4" if byteorder == "I" else ">f4")
    ny, nx = values.shape
    header = (f"BYTEORDER      {byteorder}\nLAYOUT         BIL\nNROWS          {ny}\nNCOLS          {nx}\n"
              f"NBANDS         1\nNBITS          32\nBANDROWBYTES   {4 * nx}\nTOTALROWBYTES  {4 * nx}\n"
              f"PIXELTYPE      FLOAT\nULXMAP         {west:.12f}\nULYMAP         {north:.12f}\n"
              f"XDIM           {step:.12f}\nYDIM           {step:.12f}\nNODATA         {nodata:g}\n")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.bil", values.tobytes())
        zf.writestr(f"{name}.hdr", header)
        zf.writestr(f"{name}.prj", 'GEOGCS["GCS_North_American_1983"]')
    return path


# -- RADOLAN ------------------------------------------------------------------------------------
def write_radolan_binary(path: Path, amounts_mm: np.ndarray, end: datetime, *, product: str = "RW",
                         minutes: int = 60, missing: np.ndarray | None = None, compress: bool = False) -> Path:
    """Write a DWD RADOLAN binary composite (``raa01-…-bin``) of a ``(900, 900)`` field.

    Parameters
    ----------
    path : Path
        Output file.
    amounts_mm : numpy.ndarray
        ``(900, 900)`` amounts in mm, rows south → north; stored in 0.1 mm (``PR E-01``).
    end : datetime
        End of the window (the header's day/time and month/year).
    product : str
        Two-letter product (``RW``, ``SF``, …).
    minutes : int
        Window length written as ``INT``.
    missing : numpy.ndarray, optional
        ``(900, 900)`` bool, cells flagged no-data (bit ``0x2000``).
    compress : bool
        gzip the file, as DWD ships it.

    Returns
    -------
    Path
        ``path``.
    """
    import gzip

    header = (f"{product}{end:%d%H%M}10000{end:%m%y}BY{1620000 + 100:7d}VS 3SW   2.12.0PR E-01INT{minutes:4d}"
              f"GP 900x 900MS 10<tst>").encode("ascii")
    values = np.clip(np.rint(np.asarray(amounts_mm, dtype=np.float64) * 10.0), 0, 0x0FFF).astype("<u2")
    if missing is not None:
        values[missing] = 0x2000 | 0x29C4
    raw = header + b"\x03" + values.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_radolan_ascii(path: Path, amounts_mm: np.ndarray, *, missing: np.ndarray | None = None,
                        corner: tuple[float, float] = (-523462.0, -4658645.0)) -> Path:
    """Write an ESRI ASCII RW grid (``RW_YYYYMMDD-HHMM.asc``) of a ``(900, 900)`` field.

    ``amounts_mm`` has rows south → north; the file's first row is the northernmost, values are
    integers in 0.1 mm, ``-1`` no data. ``corner`` (x, y of the lower-left corner, m) other than
    RADOLAN's gives a grid the reader must refuse.
    """
    values = np.rint(np.asarray(amounts_mm, dtype=np.float64) * 10.0).astype(np.int64)
    if missing is not None:
        values[missing] = -1
    head = (f"ncols         900\nnrows         900\nxllcorner     {corner[0]:.0f}\nyllcorner     {corner[1]:.0f}\n"
            "cellsize      1000\nNODATA_value  -1\n")
    body = "\n".join(" ".join(map(str, row)) for row in values[::-1])
    path.write_text(head + body + "\n", encoding="ascii")
    return path
