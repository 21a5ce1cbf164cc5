"""HARPNET's Python API: downscale coarse precipitation arrays to 0.0625°.

``import harpnet`` is light: the model, torch and xarray load on the first call.

Examples
--------
>>> import xarray as xr
>>> import harpnet
>>> tp = xr.open_dataarray("gfs.t00z.pgrb2.0p25.f006", engine="cfgrib",  # doctest: +SKIP
...                        filter_by_keys={"shortName": "tp", "stepType": "accum"})
>>> fine = harpnet.downscale(tp, domain="conus")  # doctest: +SKIP
>>> fine.sel(latitude=39.75, longitude=-105.0, method="nearest").item()  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harpnet_cli import __version__

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["__version__", "downscale"]


def downscale(data: Any, *, model: str | Path | None = None, domain: str | None = None,
              bbox: tuple[float, float, float, float] | str | None = None,
              accumulation: timedelta | str | None = None, samples: int | None = None, seed: int = 0,
              lat: Any = None, lon: Any = None, time: datetime | list[datetime] | None = None,
              reference_time: datetime | None = None, units: str | None = None, device: str = "auto",
              threads: int | None = None, batch_size: int = 64, bf16: bool = False,
              backend: str = "auto") -> xr.DataArray:
    """Downscale coarse precipitation amounts to the 0.0625° grid, as ``harpnet downscale`` does.

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray
        Coarse amounts on any lat/lon grid. A DataArray from cfgrib (or any with ``latitude`` /
        ``longitude`` coordinates, a ``units`` attribute and cfgrib's ``time``/``step``/
        ``valid_time``) carries everything; members along ``number`` are kept. A numpy array
        ``(ny, nx)``, ``(T, ny, nx)`` or ``(M, T, ny, nx)`` needs ``lat``, ``lon`` and ``time``.
    model : str or Path, optional
        Checkpoint or ensemble; the installed default model when None.
    domain : str, optional
        ``"conus"`` or ``"global"``; with neither ``domain`` nor ``bbox``: conus when the input
        covers it, else the input's extent.
    bbox : (south, north, west, east) or "S,N,W,E", optional
        Target box; a box over all longitudes wraps across the date line.
    accumulation : timedelta or str, optional
        Window length (``"3h"``) ending at each valid time; without it, fields with a forecast
        reference time are taken as accumulated since that time (cfgrib's GRIB accumulations).
    samples : int, optional
        Members to draw per input member from a stochastic model (the default stochastic model
        when ``model`` is None), returned along ``realization``.
    seed : int
        Seed of the samples' noise: the same seed gives the same members.
    lat, lon : array_like, optional
        Axes ``(ny,)``, ``(nx,)`` (or both ``(ny, nx)``) of a numpy array.
    time : datetime or list of datetime, optional
        End of each window of a numpy array.
    reference_time : datetime, optional
        Forecast reference time of a numpy array.
    units : str, optional
        Units of a numpy array (default ``kg m-2``); of a DataArray without a ``units`` attribute.
    device, threads, batch_size, bf16, backend
        As the ``harpnet downscale`` options (``backend``: ``"auto"``, ONNX Runtime on the CPU;
        ``"onnx"``; ``"torch"``).

    Returns
    -------
    xarray.DataArray
        ``precipitation_amount`` in kg m-2 ``(time, latitude, longitude)`` (``realization``
        first for an ensemble input; after ``time`` for every sample with ``samples``): the
        variable ``harpnet downscale -o out.nc`` writes, with the same numbers, its CF attributes
        and the file's provenance attributes.

    Raises
    ------
    harpnet_cli.errors.HarpnetError
        A bad input or option, in one line (``samples`` with a deterministic model among them).
    """
    from harpnet_cli.workflows.api import downscale_array

    return downscale_array(data, model=model, domain=domain, bbox=bbox, accumulation=accumulation, samples=samples,
                           seed=seed, lat=lat, lon=lon, time=time, reference_time=reference_time, units=units,
                           device=device, threads=threads, batch_size=batch_size, bf16=bf16, backend=backend)
