"""Validated configuration of each verb, built once by the CLI and passed down."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harpnet_cli.grids import DOMAINS, parse_bbox


def parse_duration(text: str) -> timedelta:
    """Parse an accumulation period: ``3h``, ``90min``, ``1d`` or a bare number of hours.

    Raises
    ------
    ValueError
        If the text is not a positive duration.
    """
    units = {"min": 1 / 60, "m": 1 / 60, "h": 1.0, "hr": 1.0, "hours": 1.0, "d": 24.0, "days": 24.0}
    t = text.strip().lower()
    number = t.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = t[len(number):].strip() or "h"
    try:
        hours = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"cannot read the duration {text!r} (try 3h, 90min or 1d)") from None
    if hours <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return timedelta(hours=hours)


class DownscaleConfig(BaseModel):
    """Everything ``harpnet downscale`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[Path] = Field(min_length=1)
    """Input files (GRIB1/GRIB2/NetCDF/WRF); several are combined into a time series."""
    output: Path
    """Output NetCDF file, written to a temporary file and renamed."""
    model: Path | None = None
    """Checkpoint to run. None means the bundled default weights (not shipped yet)."""
    bbox: tuple[float, float, float, float] | None = None
    """Target box (south, north, west, east) in degrees; snapped outwards to 0.25° cells."""
    domain: str | None = None
    """A named domain (see ``harpnet_cli.grids.DOMAINS``). None with no bbox: ``conus`` when
    the input covers it, else the input's own extent."""
    device: str = "auto"
    """``auto`` (CUDA → MPS → CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    """Tiles per model call."""
    bf16: bool = False
    """Run the network in bfloat16 autocast (about 1.7x faster on CPUs with AVX-512 BF16; the
    mass-conservation layer stays in float32)."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for torch; None picks the usable cores."""
    overwrite: bool = False
    """Replace an existing output file."""
    variable: str | None = None
    """NetCDF variable holding precipitation, when it has no standard name."""
    accumulation: timedelta | None = None
    """Accumulation period of NetCDF inputs that do not state it."""
    command_line: str = ""
    """The command line, recorded in the output's history attribute."""

    @field_validator("bbox", mode="before")
    @classmethod
    def _parse_bbox(cls, v: object) -> object:
        """Accept ``"S,N,W,E"`` text."""
        return parse_bbox(v) if isinstance(v, str) else v

    @field_validator("accumulation", mode="before")
    @classmethod
    def _parse_accumulation(cls, v: object) -> object:
        """Accept ``"3h"``-style text."""
        return parse_duration(v) if isinstance(v, str) else v

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, v: str | None) -> str | None:
        """Only named domains, case-insensitive."""
        if v is not None and v.lower() not in DOMAINS:
            raise ValueError(f"unknown domain {v!r}; known: {', '.join(sorted(DOMAINS))}")
        return None if v is None else v.lower()

    @model_validator(mode="after")
    def _one_area(self) -> DownscaleConfig:
        """At most one of bbox and domain; a positive accumulation."""
        if self.bbox is not None and self.domain is not None:
            raise ValueError("give --bbox or --domain, not both")
        if self.accumulation is not None and self.accumulation <= timedelta(0):
            raise ValueError("--accumulation must be positive")
        return self
