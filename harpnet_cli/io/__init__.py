"""Readers and writers of file formats: the only package that imports xarray, ecCodes and netCDF4.

pyproj is imported first, on purpose: the ecCodes wheel (through eckitlib) bundles its own PROJ
library, and if it is loaded before pyproj, pyproj's CRS look-ups fail ("no database context
specified") and the process can crash at exit.
"""

import pyproj  # noqa: F401  (must precede any ecCodes import; see above)
