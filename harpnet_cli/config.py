"""Validated configuration of each verb, built once by the CLI and passed down."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from harpnet_cli.formats import AMOUNT_UNITS, OUTPUT_FORMATS, format_for, option_choices, spoken, stream_format
from harpnet_cli.grids import DOMAINS, parse_bbox
from harpnet_cli.registry import (
    DEFAULT_LOSS,
    DERIVED_INPUTS,
    EXTRA_INPUTS,
    LOSSES,
    LR_SCHEDULES,
    PRESETS,
    REMAP_METHODS,
    SCORED_SPLITS,
    one_of,
)

#: GRIB2 data packings (the ``grib2`` format's ``packing`` option), the first the default.
GRIB_PACKINGS = option_choices("grib2", "packing")
#: Writer options of :data:`~harpnet_cli.formats.OUTPUT_FORMATS` -> the DownscaleConfig field holding each.
OPTION_FIELDS = {"packing": "grib_packing", "units": "units"}
#: Samples a stochastic model draws per input member when the run does not say (``--samples``).
DEFAULT_SAMPLES = 10
#: Most samples one run may draw per input member.
MAX_SAMPLES = 1000

# The choices of the registries (harpnet_cli.registry) as Literal types: pydantic validates against
# them and names them in its messages; the type checkers see plain strings.
if TYPE_CHECKING:
    PresetName: TypeAlias = str
    LossName: TypeAlias = str
    ScheduleName: TypeAlias = str
    ExtraInput: TypeAlias = str
    DerivedInput: TypeAlias = str
    RemapMethod: TypeAlias = str
    ScoredSplit: TypeAlias = str
else:
    PresetName = Literal[PRESETS]
    LossName = Literal[tuple(LOSSES)]
    ScheduleName = Literal[tuple(LR_SCHEDULES)]
    ExtraInput = Literal[tuple(EXTRA_INPUTS)]
    DerivedInput = Literal[tuple(DERIVED_INPUTS)]
    RemapMethod = Literal[tuple(REMAP_METHODS)]
    ScoredSplit = Literal[SCORED_SPLITS]


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


def field_choices(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The values a ``Literal`` field of a config model accepts, in order (e.g. ``("all", "last")``).

    Parameters
    ----------
    model : type of BaseModel
        A config model, e.g. :class:`EnsembleConfig`.
    name : str
        One of its fields, typed as a ``Literal`` or a union of them.

    Returns
    -------
    tuple of str
    """

    def values(annotation: object) -> tuple[str, ...]:
        args = get_args(annotation)
        return tuple(a for arg in args for a in (values(arg) if get_args(arg) else (arg,)))

    return values(model.model_fields[name].annotation)


class _ReadsInputs(BaseModel):
    """Validators shared by the verbs that read precipitation files and take an area."""

    @field_validator("bbox", mode="before", check_fields=False)
    @classmethod
    def _parse_bbox(cls, v: object) -> object:
        """Accept ``"S,N,W,E"`` text."""
        return parse_bbox(v) if isinstance(v, str) else v

    @field_validator("accumulation", mode="before", check_fields=False)
    @classmethod
    def _parse_accumulation(cls, v: object) -> object:
        """Accept ``"3h"``-style text (and the ISO 8601 ``"PT3H"`` a dumped config holds)."""
        if isinstance(v, str) and not v.strip().upper().startswith("P"):
            return parse_duration(v)
        return v


class DownscaleConfig(_ReadsInputs):
    """Everything ``harpnet downscale`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[Path] = Field(min_length=1)
    """Input files (GRIB1/GRIB2/NetCDF/WRF); several are combined into a time series. The single
    word ``example`` is a synthetic GFS-like 0.25° CONUS input generated on the fly."""
    output: Path
    """Output NetCDF file, written to a temporary file and renamed."""
    model: Path | None = None
    """Checkpoint or ensemble to run. None means the default model
    (:func:`harpnet_cli.io.default_model.default_model_path`)."""
    plot: Path | None = None
    """Also write a PNG of the input and the output over shaded terrain (written atomically)."""
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
    backend: Literal["auto", "torch", "onnx"] = "auto"
    """What runs the network: ``onnx`` (ONNX Runtime: CPU only, about twice torch's speed there,
    and torch is not imported), ``torch``, or ``auto``: ONNX Runtime on the CPU when it is
    installed and neither native bfloat16 (``--bf16``) nor a GPU calls for torch."""
    overwrite: bool = False
    """Replace an existing output file."""
    variable: str | None = None
    """NetCDF variable holding precipitation, when it has no standard name."""
    accumulation: timedelta | None = None
    """Accumulation period of NetCDF inputs that do not state it."""
    command_line: str = ""
    """The command line, recorded in the output's history attribute."""
    output_format: str | None = Field(default=None, validate_default=True)
    """A name in :data:`harpnet_cli.formats.OUTPUT_FORMATS` (``netcdf`` or ``grib2``); None (before
    validation) means from the suffix of ``output`` (:func:`harpnet_cli.formats.format_for`: .grib2,
    .grb2, .grib → GRIB2; otherwise NetCDF, GRIB2 for ``-``)."""
    grib_packing: str = GRIB_PACKINGS[0]
    """GRIB2 data packing, one of :data:`GRIB_PACKINGS` (see :mod:`harpnet_cli.io.grib_writer`)."""
    skip_existing: bool = False
    """Leave outputs that exist alone and do only the missing ones (idempotent cron runs)."""
    wait: bool = False
    """Wait for another process writing the same output instead of failing with exit code 4."""
    samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    """Members to draw from a stochastic model per input member, in one batched pass; None: none
    for a deterministic model, :data:`DEFAULT_SAMPLES` for a stochastic one. Without ``--model``
    it selects the default stochastic model."""
    seed: int = Field(default=0, ge=0)
    """Seed of a stochastic model's noise: the same seed gives the same members."""
    members: bool = False
    """Ensemble or stochastic model only: write every member (``realization`` axis; GRIB2 template
    4.11) instead of the ensemble mean and spread."""
    probabilities: tuple[float, ...] = ()
    """Ensemble or stochastic model only: thresholds (per window, in :attr:`units`: kg m-2 = mm, or inches) for
    exceedance probabilities, increasing; empty for none."""
    percentiles: tuple[float, ...] = ()
    """Ensemble or stochastic model only: percentiles (0…100) of the members' distribution to write (NetCDF
    ``precipitation_amount_percentile``, GRIB2 template 4.10, whole numbers only), increasing;
    empty for none."""
    units: str = "mm"
    """Unit of the NetCDF amounts, of ``--probabilities`` thresholds and of ``--plot``: ``mm``
    (kg m-2) or ``in`` (inches, CF ``lwe_thickness_of_precipitation_amount``). GRIB2 is always
    written in kg m-2, the unit WMO fixes for its parameter."""
    allow_extreme: bool = False
    """Keep input amounts above the world-record bound for their window instead of masking them
    (or refusing a field with many); see :mod:`harpnet_cli.plausibility`."""

    @field_validator("probabilities", "percentiles", mode="before")
    @classmethod
    def _parse_numbers(cls, v: object, info: ValidationInfo) -> object:
        """Accept ``"1,10,25"`` text; None means none."""
        if v is None:
            return ()
        if isinstance(v, str):
            try:
                return tuple(float(t) for t in v.split(",") if t.strip())
            except ValueError:
                example = "1,10,25" if info.field_name == "probabilities" else "10,50,90"
                raise ValueError(f"--{info.field_name} takes numbers such as {example}, got {v!r}") from None
        return v

    @field_validator("probabilities")
    @classmethod
    def _check_thresholds(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        """Finite, non-negative and distinct; sorted increasing."""
        if any(not 0 <= t < float("inf") for t in v):  # NaN fails too
            raise ValueError(f"--probabilities thresholds must be finite and >= 0, got {list(v)}")
        if len(set(v)) < len(v):
            raise ValueError(f"--probabilities thresholds must be distinct, got {list(v)}")
        return tuple(sorted(v))

    @field_validator("percentiles")
    @classmethod
    def _check_percentiles(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        """In 0…100 and distinct; sorted increasing."""
        if any(not 0 <= q <= 100 for q in v):  # NaN fails too
            raise ValueError(f"--percentiles must be in 0...100, got {list(v)}")
        if len(set(v)) < len(v):
            raise ValueError(f"--percentiles must be distinct, got {list(v)}")
        return tuple(sorted(v))

    @field_validator("units")
    @classmethod
    def _known_units(cls, v: str) -> str:
        """One of :data:`harpnet_cli.formats.AMOUNT_UNITS`."""
        if v not in AMOUNT_UNITS:
            raise ValueError(f"Input should be {spoken(AMOUNT_UNITS, quote=True)}")
        return v

    @property
    def thresholds_mm(self) -> tuple[float, ...]:
        """``probabilities`` in kg m-2 (= mm), whatever :attr:`units` they were given in."""
        per_mm = AMOUNT_UNITS[self.units].per_mm
        return tuple(t / per_mm for t in self.probabilities)

    @property
    def ensemble_products(self) -> bool:
        """Whether the run asks for ensemble products beyond the mean and spread (ensemble or stochastic model)."""
        return bool(self.members or self.probabilities or self.percentiles)

    @property
    def to_stdout(self) -> bool:
        """True when the output is ``-`` (GRIB2 streamed to standard output)."""
        return str(self.output) == "-"

    @property
    def writer_options(self) -> dict[str, str]:
        """The options of the output format's writer, from their fields (GRIB2: ``packing``)."""
        assert self.output_format is not None
        return {name: getattr(self, OPTION_FIELDS[name]) for name in OUTPUT_FORMATS[self.output_format].options}

    @field_validator("output_format")
    @classmethod
    def _resolve_format(cls, v: str | None, info: ValidationInfo) -> str:
        """A registered format, or the one the output's suffix selects; only a streaming format goes to stdout."""
        output = info.data.get("output")
        if v is None:
            v = format_for(output)
        elif v not in OUTPUT_FORMATS:
            raise ValueError(f"Input should be {spoken(OUTPUT_FORMATS, quote=True)}")
        fmt = OUTPUT_FORMATS[v]
        if not fmt.streams and output is not None and str(output) == "-":
            raise ValueError(f"{fmt.label} cannot be written to standard output (it is not a stream format); "
                             f"give a file name, or --format {stream_format()}")
        return v

    @field_validator("grib_packing")
    @classmethod
    def _known_packing(cls, v: str) -> str:
        """One of the GRIB2 packings."""
        if v not in GRIB_PACKINGS:
            raise ValueError(f"Input should be {spoken(GRIB_PACKINGS, quote=True)}")
        return v

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
        if self.overwrite and self.skip_existing:
            raise ValueError("give --overwrite or --skip-existing, not both")
        if self.output_format == "grib2" and any(q != int(q) for q in self.percentiles):
            raise ValueError(f"GRIB2 percentiles must be whole numbers (percentileValue is one octet), got "
                             f"{list(self.percentiles)}")
        return self


class PrepareConfig(_ReadsInputs):
    """Everything ``harpnet prepare`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[str] = Field(min_length=1)
    """Input files (CONUS404/WRF hourly NetCDF or Zarr, MRMS/Stage IV/AORC-like grids), or the
    single word ``synthetic``."""
    output: Path
    """The store (a Zarr directory)."""
    source_kind: Literal["auto", "files", "synthetic"] = "auto"
    """``auto``: ``synthetic`` when the only source is that word, else files (their format is
    detected per file)."""
    bbox: tuple[float, float, float, float] | None = None
    """Area (south, north, west, east); None means ``domain``."""
    domain: str = "conus"
    """Named domain used when no bbox is given."""
    remap: RemapMethod = "conservative"
    """Area-weighted remapping, or the seed's bilinear interpolation."""
    keep_dry: float = Field(default=0.1, ge=0.0, le=1.0)
    """Fraction of all-dry tiles kept (the rest are dropped): enough dry examples for the
    model to learn that dry stays dry without letting them dominate the corpus."""
    dry_threshold_mm: float = Field(default=0.1, ge=0.0)
    """A tile whose fine target never reaches this 3-hour amount is dry."""
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Fraction of time stamps (all tiles of one time together) drawn into the test split."""
    validation_start: date | None = None
    """Samples from this date on form the validation split. None: the last water year
    (1 Oct – 30 Sep) in the data, when the data span more than one water year."""
    seed: int = 42
    """Seed of the splits, the dry-tile sampling and the synthetic world."""
    samples: int = Field(default=2000, ge=1)
    """Synthetic samples (full-domain 3-hour fields) to generate."""
    workers: int = Field(default=1, ge=1)
    """Worker processes computing units in parallel (the store is written by one process)."""
    scheduler: str | None = None
    """Address of a Dask scheduler to compute units on instead of local processes."""
    variable: str | None = None
    """NetCDF precipitation variable when it has no standard name."""
    accumulation: timedelta | None = None
    """Accumulation period of files that do not state it."""
    max_3h_mm: float = Field(default=300.0, gt=0)
    """Quality control of observations: 3-hour amounts above this are artefacts (the tile is
    dropped, or with ``max_missing`` the cells are unobserved); see :mod:`harpnet_cli.core.qc`.
    Windows of other lengths scale it (and the spike threshold) by ``sqrt(hours / 3)``."""
    periods: list[int] = Field(default_factory=lambda: [3], min_length=1)
    """Window lengths in hours, each dividing 24 (1, 2, 3, 4, 6, 8, 12, 24), cut from the same
    hourly sources; every sample records its length (state ``log_period_hours``) for
    ``train --extra-inputs period``. Synthetic samples draw their length from these (3-hour
    multiples only) and sum as many 3-hour states under a slowly turning flow."""
    window_step: int | None = Field(default=None, ge=1)
    """Hours between the ends of consecutive windows longer than this (a divisor of 24): e.g. 3
    gives 24-hour windows every 3 hours from few days of data. None: windows side by side."""
    overlap: int = Field(default=16, ge=0, lt=64, multiple_of=4)
    """Overlap of neighbouring tiles in fine cells (a multiple of 4, below the 64-cell tile): 16
    covers the domain once with seams to spare; 32 cuts about twice as many tiles from the same
    fields, each shifted by whole coarse cells (more, correlated training examples from few
    fields). Scores depend on it, so compare models on stores cut alike."""
    max_missing: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Training tiles with up to this fraction of fine cells unobserved (outside an observing
    network's coverage, or removed by quality control) are kept: the unobserved cells are NaN in
    the target and ignored by the loss, and their coarse input is filled from the nearest observed
    cell as ``downscale`` fills gaps. 0 drops every tile that touches missing data. Test and
    validation tiles are always complete, so their scores stay like for like."""
    plot: Path | None = None
    """Folder for PNG plots of a few samples."""
    overwrite: bool = False
    """Replace an existing store instead of resuming it."""
    command_line: str = ""
    """The command line, recorded in the manifest."""

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, v: str) -> str:
        """Only named domains, case-insensitive."""
        if v.lower() not in DOMAINS:
            raise ValueError(f"unknown domain {v!r}; known: {', '.join(sorted(DOMAINS))}")
        return v.lower()

    @field_validator("periods", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        """``"1,3,24"`` as ``[1, 3, 24]`` (the CLI's form)."""
        if isinstance(v, str):
            try:
                return [int(x) for x in v.split(",") if x.strip()]
            except ValueError:
                raise ValueError(f"window lengths must be whole hours separated by commas, got {v!r}") from None
        return v

    @field_validator("periods")
    @classmethod
    def _day_divisors(cls, v: list[int]) -> list[int]:
        """Window lengths that tile the day, in increasing order, each once."""
        bad = [p for p in v if p < 1 or 24 % p]
        if bad:
            raise ValueError(f"window length {bad[0]} h does not divide 24 hours")
        return sorted(set(v))

    @field_validator("window_step")
    @classmethod
    def _step_divides_day(cls, v: int | None) -> int | None:
        """A step that tiles the day."""
        if v is not None and 24 % v:
            raise ValueError(f"window step {v} h does not divide 24 hours")
        return v

    @model_validator(mode="after")
    def _kind(self) -> PrepareConfig:
        """Resolve ``auto`` and check that ``synthetic`` stands alone."""
        is_synthetic = [s.lower() == "synthetic" for s in self.sources]
        if any(is_synthetic) and len(self.sources) > 1:
            raise ValueError("'synthetic' cannot be mixed with input files")
        if self.source_kind == "synthetic" and not all(is_synthetic):
            raise ValueError("--source synthetic takes no input files: use the word 'synthetic' alone")
        if self.source_kind == "auto":
            object.__setattr__(self, "source_kind", "synthetic" if all(is_synthetic) else "files")
        if self.source_kind == "synthetic" and any(p % 3 for p in self.periods):
            raise ValueError("synthetic windows are sums of 3-hour states: --periods must be multiples of 3")
        return self

    @property
    def synthetic(self) -> bool:
        """True for the synthetic world."""
        return self.source_kind == "synthetic"

    def plan_key(self) -> dict[str, object]:
        """The options that determine the store's content: a resumed run must match them."""
        keys = ("sources", "source_kind", "bbox", "domain", "remap", "keep_dry", "dry_threshold_mm",
                "test_fraction", "validation_start", "seed", "samples", "variable", "accumulation", "max_3h_mm",
                "max_missing", "overlap", "periods", "window_step")
        return self.model_dump(mode="json", include=set(keys))


class TrainConfig(BaseModel):
    """Everything ``harpnet train`` needs (written to ``RUN_DIR/config.toml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: Path
    """The training store written by ``harpnet prepare``."""
    run_dir: Path
    """Run folder: ``config.toml``, ``history.jsonl`` and ``checkpoints/epoch_NNN.pt``."""
    preset: PresetName = "lite"
    """U-Net size: ``lite`` (0.52 M parameters, the default), ``compact`` (2.1 M) or ``harpnet-v1``
    (the seed, 134 M)."""
    channels: list[int] | None = None
    """Encoder channels per level overriding the preset (small models for tests); None: the preset's."""
    bridge: int | None = Field(default=None, ge=1)
    """Bridge channels overriding the preset; None: the preset's."""
    epochs: int = Field(default=20, ge=1)
    """Total epochs (a resumed run continues up to this number)."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    """Samples per optimisation step per process (DDP: the global batch is this times the ranks)."""
    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate (of the first epoch under ``lr_schedule`` cosine)."""
    lr_schedule: ScheduleName = "constant"
    """``constant`` (the seed's) or ``cosine``: the rate falls from ``lr`` towards 0 along half a
    cosine over ``epochs``, set at the start of each epoch from its number (a resumed run sees the
    same rates; resuming with more epochs stretches the rest of the curve)."""
    loss: LossName = DEFAULT_LOSS
    """``mse`` (seed: squared error in mm), ``mae`` (absolute error in mm) or ``mse_log1p``."""
    seed: int = 42
    """Seeds weight initialisation, dropout and the per-epoch data order."""
    device: str = "auto"
    """``auto`` (CUDA → MPS → CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (DDP: the local rank's GPU)."""
    workers: int = Field(default=0, ge=0)
    """DataLoader worker processes reading the store; 0 reads in the training process."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for torch; None picks the usable cores (divided among local DDP ranks)."""
    resume: bool = False
    """Continue from the last complete checkpoint in ``run_dir``."""
    init: Path | None = None
    """Start from this checkpoint's weights (fine-tuning) with a fresh optimizer; the architecture
    and the input statistics are the checkpoint's, not the preset's or the store's."""
    mix: Path | None = None
    """A second store whose training samples are mixed into every epoch (for example synthetic
    tiles while fine-tuning on real ones, so the synthetic skill is not forgotten)."""
    mix_ratio: float = Field(default=1.0, gt=0, le=100)
    """Samples drawn from ``mix`` per training sample of ``store`` in each epoch."""
    augment: bool = False
    """Turn each training sample by a random one of the tile's eight symmetries (flips and
    transposes of coarse patch, terrain and target together; wind turned with them)."""
    extra_inputs: list[ExtraInput] = Field(default_factory=list)
    """Extra coarse inputs from the store's state: ``wind`` adds u and v (broadcast over the tile)."""
    derived_inputs: list[DerivedInput] = Field(default_factory=list)
    """Channels the model derives from its inputs (see ``ModelConfig.derived_inputs``)."""
    noise_scales: list[float] = Field(default_factory=list)
    """A **stochastic** model: the smoothing lengths (fine cells, 0 = white) of the noise fields it
    turns into members (``ModelConfig.noise_scales``), e.g. ``0,1,2,4``; train it with ``loss crps``.
    With ``init`` a deterministic checkpoint's weights are kept and the noise amplitudes learned."""
    members: int = Field(default=4, ge=2, le=64)
    """Members drawn per training sample for the ``crps`` loss."""
    amp: bool | None = None
    """bfloat16 autocast; None: on for CUDA, off elsewhere."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""
    max_batches: int | None = Field(default=None, ge=1)
    """Train on at most this many batches per epoch (smoke runs)."""
    shuffle_chunks: int = Field(default=4, ge=1)
    """Samples are shuffled within windows of this many store chunks (after shuffling chunk order)."""
    command_line: str = ""
    """The command line, recorded in ``config.toml``."""

    @field_validator("noise_scales")
    @classmethod
    def _non_negative_scales(cls, value: list[float]) -> list[float]:
        """Smoothing lengths are >= 0."""
        if any(v < 0 for v in value):
            raise ValueError("noise scales are smoothing lengths in fine cells, >= 0")
        return value

    @model_validator(mode="after")
    def _stochastic_with_crps(self) -> TrainConfig:
        """A stochastic model trains with the CRPS of its members, and only it does."""
        if self.noise_scales and self.loss != "crps":
            raise ValueError("a stochastic model (--noise-scales) trains with --loss crps")
        if self.loss == "crps" and not self.noise_scales:
            raise ValueError("--loss crps needs a stochastic model: give --noise-scales (e.g. 0,1,2,4)")
        return self

    @field_validator("extra_inputs", "derived_inputs", "noise_scales", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """``--derived-inputs a,b`` means ``--derived-inputs a --derived-inputs b``."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return value

    @classmethod
    def from_sources(cls, config_file: Path | None, options: dict[str, object]) -> TrainConfig:
        """Merge a TOML file (``--config``) with command-line options; options given win.

        Parameters
        ----------
        config_file : Path or None
            TOML with field names as keys (``-`` or ``_``); may hold ``store``/``run_dir``.
        options : dict
            Command-line values; None (or an empty list) means "not given".

        Returns
        -------
        TrainConfig

        Raises
        ------
        UsageError
            If the file cannot be read or parsed.
        """
        import sys

        from harpnet_cli.errors import UsageError

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        merged: dict[str, object] = {}
        if config_file is not None:
            try:
                with open(config_file, "rb") as f:
                    data = tomllib.load(f)
            except OSError as exc:
                raise UsageError(f"{config_file}: cannot read the config: {exc.strerror or exc}") from None
            except tomllib.TOMLDecodeError as exc:
                raise UsageError(f"{config_file}: invalid TOML: {exc}") from None
            tables = {"resolved", "model", "grid"}  # what a run's own config.toml adds: not options
            merged.update({k.replace("-", "_"): v for k, v in data.items() if k not in tables})
        merged.update({k: v for k, v in options.items() if v is not None and v != []})
        return cls.model_validate(merged)


class EvaluateConfig(_ReadsInputs):
    """Everything ``harpnet evaluate`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path
    """A checkpoint, a run directory (every epoch is scored) or an ensemble file."""
    data: Path
    """The training store whose split is scored (its TRAIN split fits the ratio baseline)."""
    split: ScoredSplit = "test"
    """The split scored."""
    json_path: Path | None = None
    """Write the scores as JSON (schema ``harpnet-evaluate/1``)."""
    csv_path: Path | None = None
    """Write per-tile MAE/MSE of every row as CSV."""
    plots: Path | None = None
    """Folder for PNG plots."""
    batch_size: int = Field(default=256, ge=1, le=65536)
    """Samples per read and model call."""
    max_samples: int | None = Field(default=None, ge=1)
    """Score at most this many samples (evenly spaced over the split)."""
    device: str = "cpu"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    bbox: tuple[float, float, float, float] | None = None
    """Score only tiles whose centre lies in this box (south, north, west, east), degrees."""
    climatology: Path | None = None
    """A PRISM normal (``..._bil.zip``) for the extra ``ratio_prism`` static-ratio baseline."""
    period: float | None = Field(default=None, gt=0)
    """Score only samples of windows this many hours long (stores made with ``prepare --periods``)."""
    samples: int = Field(default=10, ge=2, le=1000)
    """Members drawn per sample from a stochastic model (scored as an ensemble)."""
    seed: int = 0
    """Seed of a stochastic model's noise."""


class EnsembleConfig(BaseModel):
    """Everything ``harpnet ensemble`` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runs: list[Path] = Field(min_length=1)
    """Training run folders (``checkpoints/epoch_NNN.pt``, ``history.jsonl``) and/or single
    checkpoint files; several runs (e.g. seeds) make a seed ensemble. A legacy ``run_dir`` key is
    read as a one-item list."""
    data: Path
    """The training store whose ``split`` scores the selection."""
    epochs: Literal["all", "last"] = "all"
    """Candidates from each run folder: every epoch checkpoint, or only the last (a seed ensemble)."""
    split: ScoredSplit | Literal["train"] = "test"
    """The store split that scores the selection (greedy ranking, member and ensemble MAE)."""
    output: Path
    """The ensemble file (``members``) or checkpoint (``soup``)."""
    select: str = "greedy"
    """``all``, ``greedy`` or ``best-N`` (the N checkpoints with the lowest test loss)."""
    mode: Literal["members", "soup"] = "members"
    """``members``: one file with every member (HARPNET-E); ``soup``: averaged weights, one checkpoint."""
    batch_size: int = Field(default=256, ge=1, le=65536)
    """Samples per read and model call."""
    max_samples: int | None = Field(default=2048, ge=1)
    """Score the selection on at most this many ``split`` samples (evenly spaced); None: all."""
    device: str = "cpu"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    overwrite: bool = False
    """Replace an existing output."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_run_dir(cls, data: object) -> object:
        """Accept the single-run ``run_dir`` key of earlier versions as ``runs=[run_dir]``."""
        if isinstance(data, dict) and "run_dir" in data and "runs" not in data:
            data = {**data, "runs": [data["run_dir"]]}
            del data["run_dir"]
        return data

    @property
    def run_dir(self) -> Path:
        """The first of :attr:`runs` (the only one in a single-run ensemble)."""
        return self.runs[0]

    @field_validator("epochs", "split", mode="before")
    @classmethod
    def _check_choice(cls, v: object, info: ValidationInfo) -> object:
        """A one-line message naming the option and its choices (``--epochs``, ``--split``)."""
        choices = field_choices(cls, info.field_name or "")
        if v not in choices:
            raise ValueError(f"--{info.field_name} must be {one_of(choices)}, got {v!r}")
        return v

    @field_validator("select")
    @classmethod
    def _check_select(cls, v: str) -> str:
        """``all``, ``greedy`` or ``best-N`` with N >= 1."""
        if v in ("all", "greedy"):
            return v
        if v.startswith("best-") and v[5:].isdigit() and int(v[5:]) >= 1:
            return v
        raise ValueError(f"--select must be all, greedy or best-N (e.g. best-3), got {v!r}")
