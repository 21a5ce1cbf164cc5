"""HARPNET: downscaling of coarse precipitation forecasts to 0.0625°.

Only the version lives here, so that ``import harpnet_cli`` (and ``harpnet --help``) never
imports torch, xarray or ecCodes.
"""

__version__ = "0.1.0"
