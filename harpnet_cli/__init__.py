"""HARPNET: downscaling of coarse precipitation forecasts to 0.0625°.

Only the version lives here, so that ``import harpnet_cli`` (and ``harpnet --help``) never
imports torch, xarray or ecCodes. Importing the package asks OpenMP to let waiting threads sleep
(``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets it or torch is already loaded): spinning
threads make the model several times slower on a host where other jobs run (see
:func:`harpnet_cli.devices.prefer_passive_waiting`).
"""

from harpnet_cli.devices import prefer_passive_waiting

__version__ = "0.1.0"

prefer_passive_waiting()
