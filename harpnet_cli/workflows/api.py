"""The Python API behind :func:`harpnet.downscale`: arrays in memory → the CF DataArray the CLI writes.

The array becomes fields (:func:`harpnet_cli.io.arrays.dataarray_fields`), interval series
(:func:`harpnet_cli.core.accumulation.to_interval_series`) and then goes through the very steps
``harpnet downscale`` runs (:func:`harpnet_cli.workflows.downscale.downscale_forecast`); the result
is the ``precipitation_amount`` variable of the dataset the NetCDF writer would write
(:func:`harpnet_cli.io.netcdf_writer.dataset_for`), with the same numbers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from harpnet_cli.config import DownscaleConfig
from harpnet_cli.errors import UsageError, validation_message
from harpnet_cli.workflows.reporting import NullReporter, Reporter

if TYPE_CHECKING:
    import xarray as xr

#: The variable of the CLI's NetCDF output that :func:`downscale_array` returns.
VARIABLE = "precipitation_amount"


def downscale_array(data: Any, *, model: str | Path | None = None, domain: str | None = None,
                    bbox: tuple[float, float, float, float] | str | None = None,
                    accumulation: timedelta | str | None = None, samples: int | None = None, seed: int = 0,
                    lat: Any = None, lon: Any = None, time: datetime | list[datetime] | None = None,
                    reference_time: datetime | None = None, units: str | None = None, device: str = "auto",
                    threads: int | None = None, batch_size: int = 64, bf16: bool = False, backend: str = "auto",
                    reporter: Reporter | None = None) -> xr.DataArray:
    """Downscale coarse precipitation amounts held in memory (see :func:`harpnet.downscale`).

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray
        Coarse amounts. A DataArray carries its grid, times and units (cfgrib's layout: see
        :mod:`harpnet_cli.io.arrays`); a numpy array ``(ny, nx)``, ``(T, ny, nx)`` or
        ``(M, T, ny, nx)`` needs ``lat``, ``lon`` and ``time`` (window ends).
    model, domain, bbox, accumulation, device, threads, batch_size, bf16, backend
        As the ``harpnet downscale`` options (``model`` None: the default model).
    samples : int, optional
        Members to draw per input member from a stochastic model (the default stochastic model
        when ``model`` is None); every sample is returned along ``realization``.
    seed : int
        Seed of the samples' noise.
    lat, lon, time, reference_time
        The grid and times of a numpy array.
    units : str, optional
        Units of a numpy array (default ``kg m-2``), or of a DataArray without a ``units`` attribute.
    reporter : Reporter, optional
        Where warnings go (kept in a :class:`~harpnet_cli.workflows.reporting.NullReporter` by default).

    Returns
    -------
    xarray.DataArray
        ``precipitation_amount`` ``(time, latitude, longitude)`` (``realization`` first for an
        ensemble input; after ``time`` for the samples, input member major) in kg m-2 on the
        0.0625° grid, with the CF attributes and the output
        file's global attributes (provenance), ``forecast_reference_time`` and
        ``forecast_period`` as coordinates. An ensemble model gives the ensemble mean.

    Raises
    ------
    HarpnetError
        Bad input (:class:`~harpnet_cli.errors.InputDataError`) or options
        (:class:`~harpnet_cli.errors.UsageError`, e.g. ``samples`` with a deterministic model), in
        one line.
    """
    from harpnet_cli.core.accumulation import to_interval_series
    from harpnet_cli.core.ensemble_stats import ensemble_products
    from harpnet_cli.io.arrays import as_dataarray, dataarray_fields, output_variable
    from harpnet_cli.io.netcdf_writer import dataset_for
    from harpnet_cli.plausibility import gate_accumulations, gate_series
    from harpnet_cli.workflows.downscale import SeriesInMemory, downscale_forecast

    da = as_dataarray(data, lat=lat, lon=lon, time=time, reference_time=reference_time, units=units)
    name = str(da.encoding.get("source") or da.name or "array")
    try:
        cfg = DownscaleConfig.model_validate({
            "inputs": [Path(name)], "output": Path("memory.nc"), "model": model, "domain": domain, "bbox": bbox,
            "accumulation": accumulation, "device": device, "threads": threads, "batch_size": batch_size,
            "bf16": bf16, "backend": backend, "samples": samples, "seed": seed,
            "command_line": f"harpnet.downscale({Path(name).name})",
        })
    except ValidationError as exc:  # one line, as the command says it
        raise UsageError(validation_message(exc)) from None
    rep = reporter or NullReporter()
    fields = dataarray_fields(da, accumulation=cfg.accumulation, units=units)
    gate_accumulations(fields)  # the input checks of the command (harpnet_cli.plausibility), in place
    series = to_interval_series(fields)
    gate_series(series)
    fc, engine = downscale_forecast(cfg, [SeriesInMemory(s) for s in series], rep)
    products = None
    if engine.runner.is_ensemble:  # an ensemble model's mean and spread; a stochastic model's every sample
        products = ensemble_products(fc.data, every_member=engine.runner.samples is not None, thresholds=())
    return output_variable(dataset_for(fc, products), VARIABLE)
