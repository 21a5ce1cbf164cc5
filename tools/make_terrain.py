"""Build the packaged global land-elevation asset ``harpnet_cli/assets/terrain_etopo5.npz``.

Source: NOAA NGDC ETOPO5 (5 arc-minute global relief, public domain), as shipped in netCDF form
by Debian's ``ferret-datasets`` package (``/usr/share/ferret-vis/data/etopo5.cdf``, variable
``ROSE`` in metres, 2161 latitudes -90…90 by 4320 longitudes 0…359.92). To get the file by hand::

    apt-get download ferret-datasets
    dpkg -x ferret-datasets_*.deb x
    python tools/make_terrain.py x/usr/share/ferret-vis/data/etopo5.cdf

Run without a path, the script does those two steps itself in a temporary directory.

Rule: land elevation = ``max(ROSE, 0)`` rounded to whole metres. Oceans (and every other point
below sea level, including the few land depressions such as the Dead Sea shore or Death Valley)
become 0 m. ETOPO5 does not separate dry land below sea level from water, so no better rule is
available from this source.

Encoding: int16 metres, south → north rows, longitudes ``i / 12`` degrees east (``i = 0…4319``),
differenced along longitude (each row starts from 0) and zlib-compressed with
``numpy.savez_compressed``; ``harpnet_cli.io.terrain`` undoes the differencing with a cumulative
sum. A JSON string ``meta`` records the provenance. The Ferret file's longitude axis ends at
359.92 rather than 359.9167 (a rounding of its last value); the true ETOPO5 spacing of exactly
5' is used instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SCRIPT_VERSION = "1"
NY, NX = 2161, 4320
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "harpnet_cli" / "assets" / "terrain_etopo5.npz"


def fetch_etopo5(workdir: Path) -> Path:
    """Download Debian's ``ferret-datasets`` into ``workdir`` and unpack it.

    Parameters
    ----------
    workdir : Path
        Empty scratch directory.

    Returns
    -------
    Path
        The extracted ``etopo5.cdf``.
    """
    subprocess.run(["apt-get", "download", "ferret-datasets"], cwd=workdir, check=True)
    deb = next(workdir.glob("ferret-datasets_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(workdir / "x")], check=True)
    return workdir / "x" / "usr" / "share" / "ferret-vis" / "data" / "etopo5.cdf"


def read_relief(path: Path) -> np.ndarray:
    """Read ``ROSE`` and check its axes.

    Parameters
    ----------
    path : Path
        ``etopo5.cdf``.

    Returns
    -------
    numpy.ndarray
        ``(2161, 4320)`` float32 metres, south → north, 0°E eastwards; missing values as NaN.
    """
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        lat = np.asarray(ds["ETOPO05_Y"][:], dtype=np.float64)
        lon = np.asarray(ds["ETOPO05_X"][:], dtype=np.float64)
        rose = np.ma.filled(ds["ROSE"][:].astype(np.float32), np.nan)
    if rose.shape != (NY, NX):
        raise SystemExit(f"{path}: ROSE has shape {rose.shape}, expected {(NY, NX)}")
    if not (
        np.allclose(lat, -90 + np.arange(NY) / 12, atol=1e-6)
        and np.allclose(lon, np.arange(NX) / 12, atol=0.01)
    ):
        raise SystemExit(f"{path}: axes are not the 5' ETOPO5 grid")
    return rose


def land_elevation(rose: np.ndarray) -> np.ndarray:
    """``max(ROSE, 0)`` as int16 metres; missing values become 0.

    Parameters
    ----------
    rose : (ny, nx) float relief in metres.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` int16.
    """
    return np.rint(np.clip(np.nan_to_num(rose, nan=0.0), 0, 32767)).astype(np.int16)


def encode(elev: np.ndarray) -> np.ndarray:
    """Difference along longitude (row starts from 0); exact inverse is ``cumsum(axis=1)``."""
    return np.diff(elev, axis=1, prepend=np.int16(0)).astype(np.int16)


def write_asset(elev: np.ndarray, out: Path, source: Path) -> None:
    """Write the compressed asset with its provenance and check it decodes back exactly."""
    meta = {
        "name": "land elevation (m)",
        "source": "NOAA NGDC ETOPO5 5-minute global relief (public domain), "
        "via Debian ferret-datasets etopo5.cdf (variable ROSE)",
        "source_file": source.name,
        "resolution_deg": 1 / 12,
        "lat": "-90 + j/12, j = 0..2160 (south -> north, grid points)",
        "lon": "i/12 degrees east, i = 0..4319",
        "rule": "max(ROSE, 0) rounded to whole metres; water and land below sea level -> 0",
        "encoding": "int16 differenced along longitude (cumsum(axis=1) to decode), npz/zlib",
        "script": f"tools/make_terrain.py v{SCRIPT_VERSION}",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, dlon=encode(elev), meta=np.array(json.dumps(meta)))
    with np.load(out) as npz:
        back = np.cumsum(npz["dlon"], axis=1, dtype=np.int32).astype(np.int16)
    if not np.array_equal(back, elev):
        raise SystemExit("round trip failed")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("etopo5", nargs="?", type=Path, help="path to etopo5.cdf (downloaded if omitted)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.etopo5 or fetch_etopo5(Path(tmp))
        elev = land_elevation(read_relief(source))
        write_asset(elev, args.out, source)
    size = args.out.stat().st_size
    print(
        f"wrote {args.out} ({size / 1e6:.2f} MB): land {np.mean(elev > 0):.1%} of points, max {elev.max()} m"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
