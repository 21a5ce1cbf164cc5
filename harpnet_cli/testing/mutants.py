"""Seeded mutants of small input files, for fuzzing ``harpnet downscale`` (``tests/integration/test_fuzz.py``).

:class:`MutantFactory` writes a few well-formed inputs once with :mod:`harpnet_cli.testing.fixtures`
(a GFS pair f003/f006, a GEFS 0.5° member file, ECMWF GRIB1 in metres, an MRMS hour, a CF NetCDF
and a WRF file) and turns a seed into one :class:`Mutant`: those files damaged in one of the ways
of :data:`KINDS` — truncation, byte flips in each GRIB section or anywhere in a NetCDF/HDF5 file,
broken section lengths, garbage between messages, fill values, NaN and inf, scaled or negative
amounts, wrong units, duplicated and conflicting messages, gaps, a negative time range, NaN
coordinates, duplicate or reset WRF times. The kind is ``seed % len(KINDS)``, so any run of
consecutive seeds visits every kind; the rest of the mutation is drawn from ``seed``.

Every mutant must end in an output that passes the plausibility rules or a one-line error
(:func:`check_outcome`), never a traceback, a hang or a partial file.
"""

from __future__ import annotations

import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from harpnet_cli.plausibility import FILL_VALUES, record_mm
from harpnet_cli.testing import fixtures as fx

#: The box of the GRIB and CF inputs (17 x 17 cells of 0.25°) and the domain the mutants run on.
BOX = (32.0, 36.0, -97.0, -93.0)
BBOX_ARG = "32.5,35.5,-96.5,-93.5"
#: Units a mutant may give a NetCDF variable.
UNITS = ("mm", "M", "MM", "m", "kg m-2", "kg/m2", "in", "inches", "furlongs", "kg m-2 s-1", "mm/h", "", "K")


@dataclass
class Mutant:
    """One damaged input set and how to run it."""

    seed: int
    kind: str
    what: str
    """What was done, for the failure message."""
    inputs: list[Path]
    args: list[str] = field(default_factory=list)
    """Further ``downscale`` options (``--bbox``)."""

    def describe(self) -> str:
        """``"seed 17 (grib_flip): flipped 3 byte(s) in section 4 of message 2 of f006"``."""
        return f"seed {self.seed} ({self.kind}): {self.what}"


class MutantFactory:
    """Writes the well-formed inputs once into ``folder`` and a mutant per seed beside them.

    Parameters
    ----------
    folder : Path
        An empty folder (the factory's own).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        base = folder / "base"
        base.mkdir(parents=True, exist_ok=True)
        self.hourly = fx.synthetic_hourly(6, 17, 17, seed=11)
        self.gfs = fx.write_gfs_sequence(base / "gfs", self.hourly, (3, 6), box=BOX)
        self.gefs = fx.write_gfs_grib(base / "gefs.pgrb2a.0p50.f006", fx.synthetic_hourly(6, 9, 9, seed=12, members=2),
                                      [(0, 6)], box=BOX, perturbation_numbers=[1, 2], step=0.5)
        self.ecmwf = fx.write_ecmwf_grib(base / "ecmwf_tp.grib1", self.hourly, steps=(0, 6), box=BOX)
        self.mrms = fx.write_mrms_grib(base / "MRMS_GaugeCorr_QPE_01H_00.00_20200325-210000.grib2",
                                       self.hourly[0], datetime(2020, 3, 25, 21), box=BOX)
        self.cf = fx.write_cf_netcdf(base / "cf.nc", self.hourly, 3, box=BOX)
        self.wrf = fx.write_wrf_netcdf(base / "wrfout_d01.nc", fx.synthetic_hourly(6, 10, 12, seed=13) + 0.05)

    def make(self, seed: int) -> Mutant:
        """The mutant of ``seed``, written into ``folder/m<seed>/``."""
        kind = sorted(KINDS)[seed % len(KINDS)]
        out = self.folder / f"m{seed}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        rng = random.Random(seed)  # noqa: S311  (mutants, not secrets)
        what, inputs, args = KINDS[kind](self, rng, np.random.default_rng(seed), out)
        return Mutant(seed, kind, what, inputs, args)

    # -- helpers ----------------------------------------------------------------------------------
    def copy_gfs(self, out: Path) -> list[Path]:
        """The f003/f006 pair copied into ``out``."""
        return [Path(shutil.copy(p, out / p.name)) for p in self.gfs]


# -- GRIB byte surgery --------------------------------------------------------------------------
def grib_messages(data: bytes) -> list[tuple[int, int]]:
    """``(offset, length)`` of each GRIB message in ``data`` (editions 1 and 2)."""
    out = []
    at = data.find(b"GRIB")
    while at >= 0 and at + 16 <= len(data):
        edition = data[at + 7]
        length = int.from_bytes(data[at + 8:at + 16], "big") if edition == 2 else int.from_bytes(
            data[at + 4:at + 7], "big")
        if length <= 0:
            break
        out.append((at, length))
        at = data.find(b"GRIB", at + length)
    return out


def grib2_sections(data: bytes, offset: int, length: int) -> list[tuple[int, int, int]]:
    """``(number, offset, length)`` of the sections of the GRIB2 message at ``offset`` (0 and 8 included)."""
    sections = [(0, offset, 16)]
    at = offset + 16
    end = offset + length
    while at + 4 <= end:
        if data[at:at + 4] == b"7777":
            sections.append((8, at, 4))
            break
        size = int.from_bytes(data[at:at + 4], "big")
        if size < 5 or at + size > end:
            break
        sections.append((data[at + 4], at, size))
        at += size
    return sections


def _grib_flip(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
               out: Path) -> tuple[str, list[Path], list[str]]:
    """Flip 1-4 bytes inside one section of one message of the GFS pair."""
    paths = f.copy_gfs(out)
    target = rng.choice(paths)
    data = bytearray(target.read_bytes())
    msg_index = rng.randrange(len(grib_messages(bytes(data))))
    offset, length = grib_messages(bytes(data))[msg_index]
    sections = grib2_sections(bytes(data), offset, length)
    number, start, size = rng.choice(sections)
    flips = rng.randint(1, 4)
    for _ in range(flips):
        at = start + rng.randrange(size)
        data[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    target.write_bytes(bytes(data))
    return (f"flipped {flips} byte(s) in section {number} of message {msg_index + 1} of {target.name}", paths,
            ["--bbox", BBOX_ARG])


def _grib_section_length(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
                         out: Path) -> tuple[str, list[Path], list[str]]:
    """Write a wrong length into one section (or the message) of the GFS pair."""
    paths = f.copy_gfs(out)
    target = rng.choice(paths)
    data = bytearray(target.read_bytes())
    offset, length = rng.choice(grib_messages(bytes(data)))
    number, start, _ = rng.choice([s for s in grib2_sections(bytes(data), offset, length) if s[0] not in (8,)])
    value = rng.choice([0, 1, 5, 0xFFFFFFFF, rng.randrange(1 << 24), length * 2])
    if number == 0:
        data[start + 8:start + 16] = struct.pack(">Q", value)
    else:
        data[start:start + 4] = struct.pack(">I", value & 0xFFFFFFFF)
    target.write_bytes(bytes(data))
    return f"length of section {number} set to {value} in {target.name}", paths, ["--bbox", BBOX_ARG]


def _truncate(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
              out: Path) -> tuple[str, list[Path], list[str]]:
    """Cut one input (GRIB, NetCDF or WRF) at a random byte."""
    source = rng.choice([*f.gfs, f.ecmwf, f.cf, f.wrf, f.gefs])
    target = Path(shutil.copy(source, out / source.name))
    data = target.read_bytes()
    keep = rng.randrange(1, len(data))
    target.write_bytes(data[:keep])
    inputs = [target] if source not in f.gfs else [target, *(Path(shutil.copy(p, out / p.name)) for p in f.gfs
                                                             if p != source)]
    return f"{target.name} cut to {keep} of {len(data)} bytes", inputs, _args_for(source, f)


def _garbage(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
             out: Path) -> tuple[str, list[Path], list[str]]:
    """Garbage before, between or after the messages of a GRIB file, or a message repeated or reordered."""
    paths = f.copy_gfs(out)
    target = paths[1]
    data = target.read_bytes()
    msgs = grib_messages(data)
    junk = bytes(nrng.integers(0, 256, rng.choice([1, 7, 64, 3000]), dtype=np.uint8))
    how = rng.choice(["prepend", "between", "append", "repeat", "reverse", "GRIB-in-junk", "concatenate"])
    parts = [data[o:o + n] for o, n in msgs]
    if how == "prepend":
        data = junk + data
    elif how == "between":
        data = parts[0] + junk + b"".join(parts[1:])
    elif how == "append":
        data = data + junk
    elif how == "repeat":
        data = data + parts[0]
    elif how == "reverse":
        data = b"".join(reversed(parts))
    elif how == "GRIB-in-junk":
        data = data + b"GRIB" + junk
    else:
        data = paths[0].read_bytes() + data
        paths = [target]
    target.write_bytes(data)
    return f"{how} ({len(junk)} bytes) in {target.name}", paths, ["--bbox", BBOX_ARG]


def _grib_values(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
                 out: Path) -> tuple[str, list[Path], list[str]]:
    """A GFS-like pair whose f006 values hold fill values, NaN, inf, scaled or negative amounts."""
    f003 = f.hourly[:3].sum(0).astype(np.float64)
    f006 = f.hourly[:6].sum(0).astype(np.float64)
    how = rng.choice(["fill", "fill", "nan", "inf", "scale", "negative", "huge-cells", "zero", "constant"])
    fraction = rng.choice([0.01, 0.2, 1.0])
    cells = nrng.random(f006.shape) < fraction
    packing = rng.choice(["grid_simple", "grid_complex", "grid_ieee", "grid_ccsds"])
    bits = rng.choice([12, 16, 24])
    bitmap = False
    if how == "fill":
        value = rng.choice([*FILL_VALUES, 9.97e36])
        f006[cells] = value
        what = f"fill value {value:g} in {cells.mean():.0%} of the cells"
    elif how in ("nan", "inf"):
        f006[cells] = np.nan if how == "nan" else rng.choice([np.inf, -np.inf])
        packing = "grid_ieee"
        what = f"{how} in {cells.mean():.0%} of the cells (no bitmap)"
    elif how == "scale":
        factor = rng.choice([10.0, 1000.0, 1e6, 0.001])
        f006 = f006 * factor
        f003 = f003 * factor
        what = f"amounts x{factor:g}"
    elif how == "negative":
        value = rng.choice([-0.05, -0.5, -5.0, -1e4])
        f006[cells] = value
        what = f"{value:g} mm in {cells.mean():.0%} of the cells"
    elif how == "huge-cells":
        f006[cells] = rng.choice([800.0, 5000.0, 3.0e4])
        what = f"{f006[cells][0]:g} mm in {cells.mean():.0%} of the cells"
    elif how == "zero":
        f006[:] = 0.0
        f003[:] = 0.0
        what = "all zero"
    else:
        f006[:] = 7.25
        f003[:] = 2.5
        what = "constant fields"
    bitmap = rng.random() < 0.3 and how not in ("nan", "inf")
    paths = [fx.write_apcp_fields(out / "f003.grib2", [((0, 3), f003)], box=BOX, packing=packing, bits=bits),
             fx.write_apcp_fields(out / "f006.grib2", [((0, 6), f006)], box=BOX, packing=packing, bits=bits,
                                  bitmap=bitmap)]
    return f"{what}; {packing} {bits} bits, bitmap {bitmap}", paths, ["--bbox", BBOX_ARG]


def _grib_series(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
                 out: Path) -> tuple[str, list[Path], list[str]]:
    """Duplicated, conflicting, reset or missing messages in a GFS-like series."""
    h = f.hourly.astype(np.float64)
    how = rng.choice(["duplicate", "conflict", "reset", "gap", "member-mix", "bitmap-all", "step0-only"])
    f3, f6 = h[:3].sum(0), h[:6].sum(0)
    fields: list[tuple[tuple[int, int], np.ndarray]]
    if how == "duplicate":
        fields = [((0, 3), f3), ((0, 6), f6), ((0, 6), f6.copy())]
    elif how == "conflict":
        fields = [((0, 3), f3), ((0, 6), f6), ((0, 6), f6 + 3.0)]
    elif how == "reset":
        fields = [((0, 3), f3), ((0, 6), f6 - f3 * rng.choice([0.5, 1.0, 2.0]))]
    elif how == "gap":
        fields = [((0, 3), f3), ((0, 12), f6 * 2), ((0, 6), f6)][:: rng.choice([1, -1])][:2]
    elif how == "member-mix":
        path = fx.write_apcp_fields(out / "a.grib2", [((0, 3), f3)], box=BOX, member=1)
        fx.write_apcp_fields(out / "b.grib2", [((0, 6), f6)], box=BOX, member=2)
        return "members 1 and 2 with different windows", [path, out / "b.grib2"], ["--bbox", BBOX_ARG]
    elif how == "bitmap-all":
        fields = [((0, 3), np.full_like(f3, np.nan)), ((0, 6), f6)]
    else:
        fields = [((0, 0), np.zeros_like(f3))]
    path = fx.write_apcp_fields(out / "series.grib2", fields, box=BOX)
    return how, [path], ["--bbox", BBOX_ARG]


def _rdpa(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
          out: Path) -> tuple[str, list[Path], list[str]]:
    """An RDPA-like 24-hour analysis (negative lengthOfTimeRange), sometimes with odd units of time."""
    amount = fx.synthetic_hourly(24, 30, 30, seed=rng.randrange(100)).sum(0)
    path = fx.write_rdpa_grib(out / "CMC_RDPA_APCP-024.grib2", amount, datetime(2024, 1, 1, 12),
                              hours=rng.choice([24, 6, 1, 1 << 20]))
    if rng.random() < 0.3:
        data = bytearray(path.read_bytes())
        offset, length = grib_messages(bytes(data))[0]
        number, start, size = [s for s in grib2_sections(bytes(data), offset, length) if s[0] == 4][0]
        data[start + rng.randrange(9, size)] ^= 0xFF
        path.write_bytes(bytes(data))
    return "RDPA-like analysis", [path], ["--bbox", "43.5,45.5,-76,-73"]


def _ecmwf(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
           out: Path) -> tuple[str, list[Path], list[str]]:
    """ECMWF GRIB1 tp in metres: a flipped byte, or values in mm written as metres."""
    path = Path(shutil.copy(f.ecmwf, out / f.ecmwf.name))
    data = bytearray(path.read_bytes())
    msgs = grib_messages(bytes(data))
    offset, length = rng.choice(msgs)
    if rng.random() < 0.5:
        at = offset + rng.randrange(8, min(length, 120))
        data[at] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(data))
        return f"flipped byte {at - offset} of a GRIB1 message", [path], ["--bbox", BBOX_ARG]
    hourly = f.hourly * 1000.0  # mm written where metres are expected
    fx.write_ecmwf_grib(path, hourly, steps=(0, 6), box=BOX)
    return "ECMWF tp x1000 (mm written as metres)", [path], ["--bbox", BBOX_ARG]


def _mrms_gefs(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
               out: Path) -> tuple[str, list[Path], list[str]]:
    """An MRMS hour with sentinels, or a GEFS member file with a flipped byte."""
    if rng.random() < 0.5:
        field_ = f.hourly[0].astype(np.float64)
        cells = nrng.random(field_.shape) < rng.choice([0.05, 0.5, 1.0])
        field_[cells] = rng.choice([np.nan, 9999.0, -1.0, 1e20])
        path = fx.write_mrms_grib(out / f.mrms.name, field_, datetime(2020, 3, 25, 21), box=BOX)
        return "MRMS hour with sentinels", [path], ["--bbox", BBOX_ARG]
    path = Path(shutil.copy(f.gefs, out / f.gefs.name))
    data = bytearray(path.read_bytes())
    at = rng.randrange(16, len(data))
    data[at] ^= rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return f"GEFS members, byte {at} flipped", [path], ["--bbox", BBOX_ARG]


# -- NetCDF -------------------------------------------------------------------------------------
def _cf_edit(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
             out: Path) -> tuple[str, list[Path], list[str]]:
    """A CF file with wrong units, fill values, NaN/inf, NaN coordinates, odd times or scaled values."""
    import netCDF4

    path = Path(shutil.copy(f.cf, out / "cf.nc"))
    how = rng.choice(["units", "fill", "default-fill", "nan", "nan-coords", "times", "scale", "negative", "bounds"])
    args = ["--bbox", BBOX_ARG]
    with netCDF4.Dataset(path, "a") as ds:
        var = ds["precip"]
        var.set_auto_mask(False)
        values = np.asarray(var[:], dtype=np.float64)
        cells = nrng.random(values.shape) < rng.choice([0.01, 0.3, 1.0])
        if how == "units":
            var.units = rng.choice(UNITS)
            what = f"units {var.units!r}"
        elif how == "fill":
            value = rng.choice(FILL_VALUES)
            values[cells] = value
            var[:] = values
            what = f"fill value {value:g} without saying so"
        elif how == "default-fill":
            values[cells] = 9.969209968386869e36
            var[:] = values
            var.delncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            what = "NetCDF default fill"
        elif how == "nan":
            values[cells] = rng.choice([np.nan, np.inf])
            var[:] = values
            what = "non-finite values"
        elif how == "nan-coords":
            name = rng.choice(["lat", "lon"])
            coord = ds[name]
            coord.set_auto_mask(False)
            c = np.asarray(coord[:])
            c[rng.randrange(c.size)] = np.nan
            coord[:] = c
            what = f"NaN in {name}"
        elif how == "times":
            t = np.asarray(ds["time"][:])
            t[-1] = t[0] if rng.random() < 0.5 else -t[-1]
            ds["time"][:] = t
            what = "repeated or negative time"
        elif how == "scale":
            var[:] = values * rng.choice([1000.0, 25.4, 1e-3])
            what = "scaled values"
        elif how == "negative":
            values[cells] = -values[cells] - 0.5
            var[:] = values
            what = "negative values"
        else:
            ds["time_bnds"][:] = np.asarray(ds["time_bnds"][:])[:, ::-1]
            what = "time bounds reversed"
    return what, [path], args


def _nc_flip(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
             out: Path) -> tuple[str, list[Path], list[str]]:
    """Flip bytes anywhere in a NetCDF-4/HDF5 (CF or WRF) file."""
    source = rng.choice([f.cf, f.wrf])
    path = Path(shutil.copy(source, out / source.name))
    data = bytearray(path.read_bytes())
    flips = rng.randint(1, 8)
    for _ in range(flips):
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return f"{flips} byte(s) flipped in {path.name}", [path], _args_for(source, f)


def _wrf_edit(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
              out: Path) -> tuple[str, list[Path], list[str]]:
    """A WRF file whose totals reset, whose times repeat, whose grid has NaN or whose units are wrong."""
    import netCDF4

    path = Path(shutil.copy(f.wrf, out / f.wrf.name))
    how = rng.choice(["reset", "duplicate-time", "nan-xlat", "units", "fill", "bucket"])
    with netCDF4.Dataset(path, "a") as ds:
        if how == "reset":
            k = rng.randrange(1, ds["RAINNC"].shape[0])
            for name in ("RAINNC", "RAINC"):
                v = np.asarray(ds[name][:])
                v[k:] = v[k:] - v[k - 1] * rng.choice([0.3, 1.0])
                ds[name][:] = v
            what = f"totals reset at time {k}"
        elif how == "duplicate-time":
            t = np.asarray(ds["Times"][:])
            k = rng.randrange(1, t.shape[0])
            t[k] = t[k - 1]
            ds["Times"][:] = t
            what = f"time {k} repeats time {k - 1}"
        elif how == "nan-xlat":
            v = np.asarray(ds["XLAT"][:])
            v[0, rng.randrange(v.shape[1]), rng.randrange(v.shape[2])] = np.nan
            ds["XLAT"][:] = v
            what = "NaN in XLAT"
        elif how == "units":
            ds["RAINNC"].units = rng.choice(UNITS)
            what = f"RAINNC units {ds['RAINNC'].units!r}"
        elif how == "fill":
            v = np.asarray(ds["RAINNC"][:])
            v[:, : rng.randrange(1, v.shape[1] + 1)] = rng.choice([1e20, 9.96921e36, -9999.0])
            ds["RAINNC"][:] = v
            what = "fill values in RAINNC"
        else:
            ds.setncattr("BUCKET_MM", np.float32(1.0))
            v = np.asarray(ds["RAINNC"][:])
            ds["RAINNC"][:] = np.mod(v, 1.0)
            what = "RAINNC in a 1-mm bucket without I_RAINNC"
    return what, [path], []


def _misc(f: MutantFactory, rng: random.Random, nrng: np.random.Generator,
          out: Path) -> tuple[str, list[Path], list[str]]:
    """Files that are no precipitation input at all: a GeoTIFF, text, empty, a directory, a mix of grids."""
    how = rng.choice(["geotiff", "text", "empty", "directory", "mixed-grids", "netcdf-no-precip"])
    if how == "geotiff":
        return how, [fx.write_geotiff_like(out / "apcp.tif")], []
    if how == "text":
        path = out / "notes.txt"
        path.write_text("GRIB2 file follows\n" * 3)
        return how, [path], []
    if how == "empty":
        path = out / "empty.grib2"
        path.write_bytes(b"")
        return how, [path], []
    if how == "directory":
        (out / "folder").mkdir()
        return how, [out / "folder"], []
    if how == "mixed-grids":
        return how, [f.gfs[0], Path(shutil.copy(f.gefs, out / f.gefs.name))], ["--bbox", BBOX_ARG]
    import netCDF4

    path = out / "t2m.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("t2m", "f4", ("x",))[:] = [1, 2, 3]
    return how, [path], []


def _args_for(source: Path, f: MutantFactory) -> list[str]:
    """The ``--bbox`` of inputs on :data:`BOX`; none for the WRF grid (its own extent)."""
    return [] if source == f.wrf else ["--bbox", BBOX_ARG]


Maker = Callable[[MutantFactory, random.Random, np.random.Generator, Path], tuple[str, list[Path], list[str]]]
#: Kinds of mutation, by name.
KINDS: dict[str, Maker] = {
    "grib_flip": _grib_flip, "grib_flip_2": _grib_flip, "grib_section_length": _grib_section_length,
    "truncate": _truncate, "garbage": _garbage, "grib_values": _grib_values, "grib_values_2": _grib_values,
    "grib_series": _grib_series, "rdpa": _rdpa, "ecmwf": _ecmwf, "mrms_gefs": _mrms_gefs, "cf_edit": _cf_edit,
    "cf_edit_2": _cf_edit, "nc_flip": _nc_flip, "wrf_edit": _wrf_edit, "misc": _misc,
}


def check_outcome(exit_code: int, output: str, out_dir: Path, out: Path) -> list[str]:
    """What is wrong with one run of a mutant (empty when it is fine).

    Parameters
    ----------
    exit_code : int
        The run's exit code.
    output : str
        Everything it printed (standard output and error).
    out_dir : Path
        The folder it wrote into (nothing else may be left there).
    out : Path
        The output file (NetCDF or GRIB2).

    Returns
    -------
    list of str
        Problems: a traceback or Python warning, an exit code other than 0, 2 or 3, an error that
        is not one line, a file left behind, or an output with values that break the rules (not
        finite, negative, above the world-record amount of their window).
    """
    problems = []
    lines = [line for line in output.splitlines() if line.strip()]
    if "Traceback" in output or "Warning:" in output or "ECCODES" in output:
        problems.append("traceback, Python warning or ecCodes chatter in the output")
    if exit_code not in (0, 2, 3):
        problems.append(f"exit code {exit_code}")
    errors = [line for line in lines if line.startswith("error:")]
    left = sorted(p.name for p in out_dir.iterdir() if p != out)
    if left:
        problems.append(f"left behind: {left}")
    if exit_code == 0:
        if errors:
            problems.append("exit 0 with an error line")
        if not out.is_file():
            problems.append("exit 0 without an output")
        else:
            problems += _check_values(out)
    elif exit_code in (2, 3):
        if len(errors) != 1 or lines[-1] != errors[0]:
            problems.append(f"the error is not one last line: {lines[-3:]}")
        if out.exists():
            problems.append("an output was written despite the error")
    return problems


def _check_values(out: Path) -> list[str]:
    """Problems with the values of a written output (NetCDF or GRIB2)."""
    if out.suffix == ".nc":
        import netCDF4

        with netCDF4.Dataset(out) as ds:
            data = np.ma.filled(ds["precipitation_amount"][:].astype(np.float64), np.nan)
            bounds = np.asarray(ds["time_bnds"][:], dtype=np.float64)
            unit = 24.0 if str(ds["time"].units).startswith("days") else 1.0  # hours (or days) since …
            hours = [float(b[1] - b[0]) * unit for b in bounds]
    else:
        from harpnet_cli.io.ecc import eccodes

        fields, hours = [], []
        with open(out, "rb") as handle:
            while (gid := eccodes.codes_grib_new_from_file(handle)) is not None:
                values = eccodes.codes_get_values(gid)
                if eccodes.codes_get(gid, "bitmapPresent"):
                    values[values == eccodes.codes_get(gid, "missingValue")] = np.nan
                fields.append(values)
                hours.append(float(eccodes.codes_get(gid, "lengthOfTimeRange")))
                eccodes.codes_release(gid)
        data = np.stack(fields)
    problems = []
    if np.isinf(data).any():
        problems.append("infinite values in the output")
    with np.errstate(invalid="ignore"):
        if (data < 0).any():
            problems.append(f"negative values in the output (down to {np.nanmin(data):g})")
        for k, h in enumerate(hours):
            step = data[..., k, :, :] if data.ndim == 4 else data[k]
            if np.isfinite(step).any() and np.nanmax(step) > record_mm(timedelta(hours=h)) + 0.01:
                problems.append(f"step {k}: {np.nanmax(step):g} mm above the record for {h:g} h")
    return problems
