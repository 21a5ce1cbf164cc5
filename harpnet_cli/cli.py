"""The ``harpnet`` command line: options → config → one workflow call → report.

Heavy libraries (torch, xarray, ecCodes) are imported inside the commands, so ``harpnet --help``
and ``harpnet --version`` start fast and work without them. The options' defaults are the config
models' field defaults (:mod:`harpnet_cli.config`) and their choices the registries' names
(:mod:`harpnet_cli.registry`), both light to import.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.core import Context as ClickContext
from typer._click.exceptions import ClickException
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from harpnet_cli import __version__
from harpnet_cli.config import (
    DEFAULT_SAMPLES,
    DownscaleConfig,
    EnsembleConfig,
    EvaluateConfig,
    PrepareConfig,
    TrainConfig,
    field_choices,
)
from harpnet_cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    HarpnetError,
    Terminated,
    validation_message,
)
from harpnet_cli.formats import AMOUNT_UNITS, OUTPUT_FORMATS, option_choices, output_help, spoken
from harpnet_cli.grids import DOMAINS
from harpnet_cli.registry import (
    DERIVED_INPUTS,
    EXTRA_INPUTS,
    LOSSES,
    LR_SCHEDULES,
    PRESETS,
    REMAP_METHODS,
    SCORED_SPLITS,
    one_of,
)

#: GRIB2 packings (the registry's ``grib2`` ``packing`` option), the first the default.
GRIB_PACKINGS = option_choices("grib2", "packing")

if TYPE_CHECKING:
    from pydantic import BaseModel


def _default(model: type[BaseModel], name: str) -> Any:
    """The default of a config field: what leaving its option out means."""
    return model.model_fields[name].default


def _default_factory(model: type[BaseModel], name: str) -> Any:
    """The default of a config field made by a factory (a list)."""
    factory = model.model_fields[name].default_factory
    assert factory is not None
    return factory()  # type: ignore[call-arg]


def _shown(model: type[BaseModel], name: str) -> str:
    """`` [default: X]`` for the help of an option that is None when not given (so ``--config`` can set it).

    Escaped, so that the help's Rich markup shows it instead of taking it for a style tag.
    """
    value = _default(model, name)
    return escape(f" [default: {('on' if value else 'off') if isinstance(value, bool) else value}]")


EXIT_CODES_HELP = ("Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 bad input data, "
                   "4 output locked by another harpnet process, 130 Ctrl-C, 143 SIGTERM.")

# No emoji codes (a file named "root:x:0" must print as it is) and no highlighting of paths.
stderr = Console(stderr=True, emoji=False, highlight=False)
# Tables are not cut to 80 columns when stdout is a file or a pipe (cron logs, scripts).
stdout = Console(emoji=False, highlight=False, width=None if sys.stdout.isatty() else 200)


class Settings:
    """Global flags shared by every command (``ctx.obj``)."""

    def __init__(self, quiet: bool = False, verbose: bool = False, debug: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.debug = debug


class RichReporter:
    """The CLI's :class:`~harpnet_cli.workflows.reporting.Reporter`: Rich on stderr.

    With ``defer`` (``downscale`` without ``-v``) information and warnings wait until the command
    succeeds (:meth:`flush`, before the summary): a failing run prints its one error line alone.
    """

    def __init__(self, settings: Settings, defer: bool = False) -> None:
        self.settings = settings
        self.defer = defer and not settings.verbose
        self.pending: list[str] = []

    def _say(self, markup: str) -> None:
        """Print now, or keep for :meth:`flush`."""
        if self.defer:
            self.pending.append(markup)
        else:
            stderr.print(markup, soft_wrap=True)

    def flush(self) -> None:
        """Print what was kept back (the command succeeded)."""
        for markup in self.pending:
            stderr.print(markup, soft_wrap=True)
        self.pending.clear()

    def info(self, message: str) -> None:
        """Print an informational line unless ``--quiet``."""
        if not self.settings.quiet:
            self._say(f"[dim]{escape(message)}[/dim]")

    def warning(self, message: str) -> None:
        """Print a warning unless ``--quiet``."""
        if not self.settings.quiet:
            self._say(f"[yellow]warning:[/yellow] {escape(message)}")

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A Rich progress bar on stderr (none with ``--quiet`` or when stderr is not a terminal)."""
        if self.settings.quiet or not stderr.is_terminal:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=stderr, transient=True) as bar:
            task = bar.add_task(description, total=total, rate="")

            def advance(n: int) -> None:
                bar.advance(task, n)
                speed = bar.tasks[0].speed
                bar.update(task, rate=f"{speed:.1f}/s" if speed else "")

            yield advance


#: Global flags that may also follow the subcommand (``harpnet downscale ... -v``).
GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose", "--debug")
#: Commands whose ``--json`` flag makes a failure print a JSON error object.
JSON_COMMANDS = ("downscale", "info")
_JSON_KEY = "harpnet.json"


def _fail(message: str, code: int, ctx: ClickContext | None = None) -> typer.Exit:
    """Print ``error: message`` on stderr (and the JSON error object after ``--json``); return the exit to raise.

    The JSON object, ``{"error": message, "exit_code": code}``, goes where the command's JSON summary
    would have gone: stdout, or stderr with ``-o -``.
    """
    stderr.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    where = None if ctx is None else ctx.find_root().meta.get(_JSON_KEY)
    if where is not None:
        import json

        typer.echo(json.dumps({"error": message, "exit_code": code}), err=where == "stderr")
    return typer.Exit(code)


def _json_target(args: list[str]) -> str | None:
    """``"stdout"`` or ``"stderr"`` when a command of :data:`JSON_COMMANDS` has ``--json``, else None."""
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in JSON_COMMANDS or "--json" not in args:
        return None
    streams = any(a in ("-o", "--output") and b == "-" for a, b in zip(args, args[1:], strict=False))
    return "stderr" if streams or "--output=-" in args else "stdout"


def _hoist_global_flags(args: list[str], commands: set[str]) -> list[str]:
    """Move :data:`GLOBAL_FLAGS` given after the subcommand in front of it (``--`` ends the search).

    Examples
    --------
    >>> _hoist_global_flags(["downscale", "a.grb", "-v", "-o", "x.nc"], {"downscale"})
    ['-v', 'downscale', 'a.grb', '-o', 'x.nc']
    """
    at = next((i for i, a in enumerate(args) if a in commands), None)
    if at is None:
        return args
    end = args.index("--") if "--" in args[at:] else len(args)
    moved = [a for a in args[at + 1:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[at + 1:end] if a not in GLOBAL_FLAGS]
    return [*args[:at], *moved, args[at], *rest, *args[end:]]


def _plain_usage_error(exc: ClickException) -> bool:
    """Whether to print a usage error as one plain ``error:`` line (stderr is not a terminal)."""
    return isinstance(exc, ClickUsageError) and not stderr.is_terminal


class HarpnetGroup(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # the global flags: no <bool> in the help
            if isinstance(param, TyperOption) and param.is_flag:
                param.metavar = ""

    def get_help_option(self, ctx: ClickContext) -> Any:
        """``-h/--help`` with no metavar."""
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """Accept the global flags after the subcommand too, and note a ``--json`` request."""
        args = _hoist_global_flags(list(args), set(self.commands))
        ctx.meta[_JSON_KEY] = _json_target(args)
        try:
            return super().parse_args(ctx, args)
        except ClickUsageError as exc:
            if _plain_usage_error(exc) or ctx.meta[_JSON_KEY]:
                raise _fail(exc.format_message(), exc.exit_code, ctx) from None
            raise

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the command; map exceptions to exit codes (tracebacks only with ``--debug``)."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except ClickException as exc:
            if _plain_usage_error(exc) or ctx.meta.get(_JSON_KEY):
                raise _fail(exc.format_message(), exc.exit_code, ctx) from None
            raise
        except Exception as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
            if settings.debug:
                raise
            if isinstance(exc, HarpnetError):
                raise _fail(str(exc), exc.exit_code, ctx) from None
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                raise _fail(validation_message(exc), EXIT_USAGE, ctx) from None
            if isinstance(exc, OSError) and exc.strerror:  # permission denied, disk full, ...
                where = f"{exc.filename}: " if exc.filename else ""
                raise _fail(f"{where}{exc.strerror}", EXIT_FAILURE, ctx) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise _fail(f"internal error ({type(exc).__name__}: {first}); run with --debug for the traceback",
                        EXIT_FAILURE, ctx) from None
        except KeyboardInterrupt:
            raise _fail("interrupted; no output was written", EXIT_INTERRUPTED, ctx) from None
        except Terminated:
            raise _fail("terminated (SIGTERM); no partial output was left", EXIT_TERMINATED, ctx) from None


#: Help metavars by value type (what the Typer default ``<list[Path]>``/``<bool>`` would show).
METAVARS: dict[type, str] = {Path: "PATH", int: "N", float: "X", str: "TEXT"}


#: Choices of options, from the registries: ``"command.option"`` or ``"option"`` (Python parameter name)
#: -> values. Shell completion offers them and the help shows them as the metavar.
OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "format_": tuple(OUTPUT_FORMATS),
    "grib_packing": GRIB_PACKINGS,
    "units": tuple(AMOUNT_UNITS),
    "domain": tuple(sorted(DOMAINS)),
    "device": ("auto", "cpu", "cuda", "mps"),
    "backend": field_choices(DownscaleConfig, "backend"),
    "preset": tuple(PRESETS),
    "loss": tuple(LOSSES),
    "lr_schedule": tuple(LR_SCHEDULES),
    "source": field_choices(PrepareConfig, "source_kind"),
    "remap": tuple(REMAP_METHODS),
    "evaluate.split": tuple(SCORED_SPLITS),
    "ensemble.split": field_choices(EnsembleConfig, "split"),
    "ensemble.select": ("all", "greedy", "best-3"),
    "ensemble.mode": ("members", "soup"),
    "ensemble.epochs": ("all", "last"),
    "extra_inputs": tuple(EXTRA_INPUTS),
    "derived_inputs": tuple(DERIVED_INPUTS),
}


def option_choices_of(command: str, option: str) -> tuple[str, ...]:
    """The choices of ``command``'s option ``option`` (Python parameter name); empty for free values."""
    return OPTION_CHOICES.get(f"{command}.{option}", OPTION_CHOICES.get(option, ()))


class HarpnetCommand(TyperCommand):
    """A command whose help shows plain metavars (``FILE...``, ``PATH``, ``N``, ``a|b``, nothing for flags)
    and whose options with registry choices complete them in the shell."""

    def get_help_option(self, ctx: ClickContext) -> Any:
        """``-h/--help`` with no metavar."""
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            choices = option_choices_of(self.name or "", param.name or "")
            if isinstance(param, TyperOption) and choices:
                from typer._click.shell_completion import CompletionItem

                # instance-level: the choices come from the registries, not from a Choice type
                def offer(ctx: ClickContext, incomplete: str, choices: tuple[str, ...] = choices) -> list[Any]:
                    return [CompletionItem(c) for c in choices if c.startswith(incomplete)]

                param.shell_complete = offer  # type: ignore[method-assign]
            if isinstance(param, TyperOption) and param.metavar is None:
                param.metavar = "" if param.is_flag else "|".join(choices) if choices else _metavar(param)
            elif isinstance(param, TyperArgument):
                label = f"{param.metavar or param.name.upper()}" + ("..." if param.nargs != 1 else "")
                # instance-level: Typer's arguments show their Python type unless told otherwise
                param.metavar = label
                def usage(ctx: ClickContext, label: str = label) -> list[str]:
                    return [label]

                param.get_usage_pieces = usage  # type: ignore[method-assign]
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]


def _metavar(param: TyperOption) -> str:
    """The metavar of an option without choices, by type (:data:`METAVARS`)."""
    annotation = param.type_descriptor.annotation
    for kind, label in METAVARS.items():
        if annotation is kind or (isinstance(annotation, type) and issubclass(annotation, kind)):
            return label
    return "TEXT"


app = typer.Typer(
    name="harpnet",
    cls=HarpnetGroup,
    help="Downscale 0.25° precipitation forecasts (GFS, GEFS, ECMWF) to 0.0625°.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    """``--version``: print and stop."""
    if value:
        typer.echo(f"harpnet {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_version,
                                          is_eager=True)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print more detail: messages as they come, "
                                          "downscale's time per stage (read, remap, model, write).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    """Global options."""
    ctx.obj = Settings(quiet=quiet, verbose=verbose, debug=debug)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    if quiet:
        level = logging.ERROR
    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", force=True,
                        handlers=[RichHandler(console=stderr, show_time=False, show_path=debug)])
    # library warnings (numpy's "invalid value encountered", xarray, torch) are not for the user: --debug shows them
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if debug else logging.CRITICAL)


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def downscale(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="GRIB1/GRIB2/NetCDF/WRF files; several form a time series. "
                                                      "The word 'example' is a synthetic GFS-like 0.25° CONUS "
                                                      "input made on the fly.",
                                                 metavar="FILE", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help=f"Output file: {output_help()}; a template such as "
                                         "'out/h_{init:%Y%m%d%H}_f{lead:03d}.grib2' writes one file per step "
                                         "(fields init, valid, lead, member, product).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Checkpoint (.pt) to run, or an ensemble from "
                                               "'harpnet ensemble' (all members in one pass; writes the "
                                               "ensemble mean and spread). Default: the installed default "
                                               "model (see 'harpnet info').")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG of the input and the output side "
                                                             "by side over shaded terrain (the wettest step).",
                                              metavar="PNG")] = None,
    samples: Annotated[int | None, typer.Option(help="Draw N members per input member from a stochastic model "
                                                     "(the default stochastic model without --model), in one "
                                                     "batched pass; the output holds their mean and spread "
                                                     f"(default {DEFAULT_SAMPLES} with a stochastic --model).",
                                                metavar="N", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples' noise: the same seed, the same members.")
                    ] = _default(DownscaleConfig, "seed"),
    members: Annotated[bool, typer.Option("--members", help="Ensemble or --samples: write every member "
                                                            "(realization axis; GRIB2 4.11) instead of mean and "
                                                            "spread.")] = False,
    probabilities: Annotated[str | None, typer.Option(help="Ensemble or --samples: also write the probability of "
                                                           "exceeding each threshold per window, in --units "
                                                           "(NetCDF 0-1; GRIB2 4.9 in %), e.g. 1,10,25.",
                                                      metavar="T1,T2,...")] = None,
    percentiles: Annotated[str | None, typer.Option(help="Ensemble or --samples: also write these percentiles of the "
                                                         "members (NetCDF; GRIB2 4.10, whole numbers), e.g. "
                                                         "10,50,90.", metavar="P1,P2,...")] = None,
    units: Annotated[str, typer.Option(help=f"Amount unit of NetCDF, --probabilities and --plot: "
                                            f"{spoken(AMOUNT_UNITS)} (GRIB2 stays kg m-2 by WMO rule).")
                     ] = next(iter(AMOUNT_UNITS)),
    bbox: Annotated[str | None, typer.Option(help="Target box S,N,W,E in degrees.", metavar="S,N,W,E")] = None,
    domain: Annotated[str | None, typer.Option(help=f"Named domain: {one_of(sorted(DOMAINS))}. Default: conus when "
                                                    "the input covers it, else the input's extent.")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA → MPS → CPU), cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Tiles per model call.")] = 64,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: usable cores).")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast: faster on CPUs with AVX-512 BF16 and "
                                                      "on GPUs; mass conservation stays float32.")] = False,
    backend: Annotated[str, typer.Option(help="What runs the network; auto: ONNX Runtime on the CPU, torch on a GPU "
                                              "or with native --bf16.")] = "auto",
    variable: Annotated[str | None, typer.Option(help="NetCDF precipitation variable, if not found by "
                                                      "its standard name.")] = None,
    accumulation: Annotated[str | None, typer.Option(help="Accumulation period of NetCDF inputs that do not "
                                                          "state it, e.g. 3h.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    format_: Annotated[str | None, typer.Option("--format", help=f"{spoken(OUTPUT_FORMATS)}, overriding the "
                                                                 "output's suffix.")] = None,
    grib_packing: Annotated[str, typer.Option(help=f"GRIB2 packing: {spoken(GRIB_PACKINGS)} (all keep "
                                                   "0.01 mm).")] = GRIB_PACKINGS[0],
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Do only the outputs that do not exist "
                                                                       "yet (idempotent cron runs).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another harpnet writing the same output instead "
                                                      "of exiting with code 4.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON summary (files, steps, members, domain, "
                                                       "model sha256, seconds, mass ratio) on stdout, or on "
                                                       "stderr with -o -.")] = False,
    allow_extreme: Annotated[bool, typer.Option("--allow-extreme", help="Keep input amounts above the world-record "
                                                                        "rainfall for their window (masked, or the "
                                                                        "field refused, by default).")] = False,
) -> None:
    """Downscale precipitation files to the 0.0625° grid with the bundled model (or --model).

    A first try: harpnet downscale example -o out.nc --plot out.png

    GFS: harpnet downscale gfs.t00z.pgrb2.0p25.f003 gfs.t00z.pgrb2.0p25.f006 -o out.nc

    In a pipe (an input '-' reads GRIB from stdin): curl -s URL | harpnet downscale - -o - > out.grib2

    Probabilities: harpnet downscale gfs.f006 -o p.nc --samples 20 --probabilities 1,10,25 --percentiles 10,50,90
    """
    from harpnet_cli.workflows.downscale import run_downscale

    cfg = DownscaleConfig.model_validate({
        "inputs": inputs, "output": output, "model": model, "plot": plot, "bbox": bbox, "domain": domain,
        "device": device, "batch_size": batch_size, "threads": threads, "bf16": bf16, "backend": backend,
        "variable": variable, "accumulation": accumulation, "overwrite": overwrite, "output_format": format_,
        "grib_packing": grib_packing, "skip_existing": skip_existing, "wait": wait, "members": members,
        "probabilities": probabilities, "percentiles": percentiles, "units": units, "samples": samples, "seed": seed,
        "command_line": shlex.join(["harpnet", *sys.argv[1:]]), "allow_extreme": allow_extreme,
    })
    reporter = RichReporter(ctx.obj, defer=True)  # a failure prints its error line alone
    res = run_downscale(cfg, reporter)
    reporter.flush()
    if json_:
        import json

        typer.echo(json.dumps(res.to_json()), err=cfg.to_stdout)
    elif not ctx.obj.quiet:
        (stderr if cfg.to_stdout else stdout).print(escape(res.summary()), soft_wrap=True)
    if ctx.obj.verbose and res.timings:
        stderr.print(escape(f"timings: {res.timing_text()}"), soft_wrap=True)


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def prepare(
    ctx: typer.Context,
    sources: Annotated[list[str], typer.Argument(help="Hourly CONUS404/WRF NetCDF or Zarr, MRMS/Stage IV/AORC-like "
                                                      "GRIB or NetCDF files, or the word 'synthetic'.",
                                                 metavar="SOURCE", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The training store (a Zarr directory).")],
    source: Annotated[str, typer.Option("--source", help=f"{one_of(field_choices(PrepareConfig, 'source_kind'))}.")
                      ] = _default(PrepareConfig, "source_kind"),
    samples: Annotated[int, typer.Option(help="Synthetic samples (full-domain 3-hour fields).")
                       ] = _default(PrepareConfig, "samples"),
    seed: Annotated[int, typer.Option(help="Seed of splits, dry-tile sampling and the synthetic world.")
                    ] = _default(PrepareConfig, "seed"),
    bbox: Annotated[str | None, typer.Option(help="Area S,N,W,E in degrees.", metavar="S,N,W,E")] = None,
    domain: Annotated[str, typer.Option(help=f"Named domain when no --bbox: {one_of(sorted(DOMAINS))}.")
                      ] = _default(PrepareConfig, "domain"),
    remap: Annotated[str, typer.Option(help=one_of(f"{k} ({v})" for k, v in REMAP_METHODS.items()) + ".")
                     ] = _default(PrepareConfig, "remap"),
    keep_dry: Annotated[float, typer.Option(help="Fraction of all-dry tiles kept.")
                        ] = _default(PrepareConfig, "keep_dry"),
    test_fraction: Annotated[float, typer.Option(help="Fraction of time stamps in the test split.")
                             ] = _default(PrepareConfig, "test_fraction"),
    validation_start: Annotated[str | None, typer.Option(help="Validation from this date (YYYY-MM-DD); "
                                                              "default: the last water year.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = _default(PrepareConfig, "workers"),
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (a cluster) instead of "
                                                       "local workers.")] = None,
    variable: Annotated[str | None, typer.Option(help="NetCDF precipitation variable.")] = None,
    accumulation: Annotated[str | None, typer.Option(help="Accumulation period of files that do not state "
                                                          "it, e.g. 1h.")] = None,
    max_3h: Annotated[float, typer.Option(help="Quality control: 3-hour amounts (mm) above this are "
                                               "artefacts; their tiles are dropped.")] = _default(PrepareConfig,
                                                                                                   "max_3h_mm"),
    overlap: Annotated[int, typer.Option(help="Overlap of neighbouring tiles in fine cells (multiple of 4); 32 "
                                              "cuts about twice as many tiles.")] = _default(PrepareConfig, "overlap"),
    periods: Annotated[str, typer.Option(help="Window lengths in hours, comma-separated, each dividing 24 (e.g. "
                                              "1,3,6,12,24); synthetic samples draw theirs from these.",
                                         metavar="H,H,...")] = ",".join(map(str, _default_factory(PrepareConfig,
                                                                                                "periods"))),
    window_step: Annotated[int | None, typer.Option(help="Hours between the ends of longer windows (e.g. 3: "
                                                         "24-hour windows every 3 hours); default side by side.",
                                                    metavar="H")] = None,
    max_missing: Annotated[float, typer.Option(help="Keep training tiles with up to this fraction of fine "
                                                    "cells unobserved (ignored by the loss); 0 drops them.")
                           ] = _default(PrepareConfig, "max_missing"),
    plot: Annotated[Path | None, typer.Option(help="Write PNG plots of a few samples to this folder.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again instead of resuming.")] = False,
) -> None:
    """Build a training store from high-resolution precipitation or the synthetic world.

    A killed run resumes where it stopped when run again with the same options.
    Example: harpnet prepare synthetic -o corpus.zarr --samples 500
    """
    from harpnet_cli.workflows.prepare import run_prepare

    resolved = [s if s.lower() == "synthetic" else str(Path(s).resolve()) for s in sources]
    cfg = PrepareConfig.model_validate({
        "sources": resolved, "output": output, "source_kind": source, "samples": samples, "seed": seed,
        "bbox": bbox, "domain": domain, "remap": remap, "keep_dry": keep_dry, "test_fraction": test_fraction,
        "validation_start": validation_start, "workers": workers, "scheduler": scheduler, "variable": variable,
        "accumulation": accumulation, "max_3h_mm": max_3h, "max_missing": max_missing, "overlap": overlap,
        "periods": periods, "window_step": window_step, "plot": plot, "overwrite": overwrite,
        "command_line": shlex.join(["harpnet", *sys.argv[1:]]),
    })
    res = run_prepare(cfg, RichReporter(ctx.obj))
    if not ctx.obj.quiet:
        per_split = ", ".join(f"{k} {v}" for k, v in res.samples.items())
        stdout.print(escape(f"{res.output}: {sum(res.samples.values())} samples ({per_split}), dry fraction "
                            f"{res.dry_fraction:.1%}, {res.units_done} unit(s) done"
                            + (f", {res.units_skipped} resumed" if res.units_skipped else "")
                            + f", {res.seconds:.1f} s"), soft_wrap=True)


class TrainReporter(RichReporter):
    """:class:`RichReporter` plus the training hooks: epoch and batch bars, one line per epoch."""

    @contextlib.contextmanager
    def training(self, first_epoch: int, epochs: int) -> Iterator[Any]:
        """Epoch and batch bars with loss, samples/s and ETA (none with ``--quiet`` or no terminal)."""
        from types import SimpleNamespace

        if self.settings.quiet or not stderr.is_terminal:
            yield SimpleNamespace(start_epoch=lambda epoch, batches: None, advance=lambda n, loss, speed: None)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeRemainingColumn())
        with Progress(*columns, console=stderr, transient=True) as bar:
            ep = bar.add_task("epochs", total=epochs - first_epoch + 1, status="")
            batch = bar.add_task("batches", total=1, status="")
            state = {"started": False}

            def start_epoch(epoch: int, batches: int) -> None:
                if state["started"]:
                    bar.advance(ep, 1)
                state["started"] = True
                bar.reset(batch, total=batches, description=f"epoch {epoch}/{epochs}", status="")

            def advance(n: int, loss: float, speed: float) -> None:
                bar.update(batch, advance=n, status=f"loss {loss:.4g}, {speed:.1f} samples/s")

            yield SimpleNamespace(start_epoch=start_epoch, advance=advance)

    def log_epoch(self, line: str) -> None:
        """One plain line per epoch on stderr (also with ``--quiet`` and without a terminal)."""
        stderr.print(escape(line), soft_wrap=True, highlight=False)


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def train(
    ctx: typer.Context,
    store: Annotated[Path, typer.Argument(help="Training store from harpnet prepare.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints, history.jsonl, "
                                                                "config.toml.")],
    preset: Annotated[str | None, typer.Option(help=f"{one_of(PRESETS)}.{_shown(TrainConfig, 'preset')}")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs in all (with --resume: up to this)."
                                                    + _shown(TrainConfig, "epochs"))] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per step per process."
                                                        + _shown(TrainConfig, "batch_size"))] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate." + _shown(TrainConfig, "lr"))] = None,
    lr_schedule: Annotated[str | None, typer.Option(help=f"{one_of(LR_SCHEDULES)} (from --lr towards 0 over the "
                                                         f"epochs).{_shown(TrainConfig, 'lr_schedule')}")] = None,
    loss: Annotated[str | None, typer.Option(help=f"Training loss: {one_of(LOSSES)}.{_shown(TrainConfig, 'loss')}")
                    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, dropout and data order."
                                                  + _shown(TrainConfig, "seed"))] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps."
                                                    + _shown(TrainConfig, "device"))] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes."
                                                     + _shown(TrainConfig, "workers"))] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in -o.")] = False,
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune: start from this checkpoint's weights "
                                                             "(its architecture and input statistics).")] = None,
    mix: Annotated[Path | None, typer.Option("--mix", help="A second store whose training samples are mixed "
                                                           "into every epoch.")] = None,
    mix_ratio: Annotated[float | None, typer.Option(help="Samples from --mix per training sample of STORE."
                                                         + _shown(TrainConfig, "mix_ratio"))] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="Turn each training tile by a "
                       "random flip/transpose (terrain and wind with it)." + _shown(TrainConfig, "augment"))] = None,
    extra_inputs: Annotated[list[str] | None, typer.Option("--extra-inputs", help="Extra coarse inputs: " + one_of(
                            f"{k} ({', '.join(v)})" for k, v in EXTRA_INPUTS.items()) + ".")] = None,
    derived_inputs: Annotated[list[str] | None, typer.Option("--derived-inputs", help="Channels computed from "
                              f"the inputs: {', '.join(DERIVED_INPUTS)} (repeat or a,b).")] = None,
    noise_scales: Annotated[str | None, typer.Option(help="A stochastic model: smoothing lengths (fine cells, 0 = "
                                                          "white) of its noise fields, e.g. 0,1,2,4; train it with "
                                                          "--loss crps (with --init, from a deterministic "
                                                          "model's weights).", metavar="S,S,...")] = None,
    members: Annotated[int | None, typer.Option(help="Members drawn per sample for --loss crps."
                                                     + _shown(TrainConfig, "members"), metavar="K")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bfloat16 autocast."
                                                                     + escape(" [default: on CUDA only]"))] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of options (e.g. a run's "
                                                                 "config.toml); options given here win.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: usable cores).")] = None,
    max_batches: Annotated[int | None, typer.Option(help="At most this many batches per epoch (smoke "
                                                         "runs).")] = None,
) -> None:
    """Train a downscaler on a store; checkpoints after every epoch.

    Ctrl-C keeps the finished epochs; --resume continues. Under torchrun it trains with DDP.
    Example: harpnet train corpus.zarr -o runs/compact --epochs 20
    """
    from harpnet_cli.workflows.train import run_train

    cfg = TrainConfig.from_sources(config, {
        "store": store, "run_dir": output, "preset": preset, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "lr_schedule": lr_schedule, "loss": loss, "seed": seed, "device": device, "workers": workers,
        "resume": resume or None, "init": init, "mix": mix, "mix_ratio": mix_ratio, "augment": augment,
        "derived_inputs": derived_inputs, "noise_scales": noise_scales, "members": members,
        "extra_inputs": extra_inputs, "amp": amp, "compile": compile_ or None, "threads": threads,
        "max_batches": max_batches, "command_line": shlex.join(["harpnet", *sys.argv[1:]]),
    })
    res = run_train(cfg, TrainReporter(ctx.obj))
    if res.is_main and not ctx.obj.quiet:
        test = "n/a" if res.test_loss is None else f"{res.test_loss:.4g}"
        stdout.print(escape(f"{res.run_dir}: epochs {res.first_epoch}-{res.last_epoch}, test loss {test}, "
                            f"{res.samples_per_s:.1f} samples/s, {res.seconds:.1f} s, last {res.checkpoint}"),
                     soft_wrap=True)


def _pct(value: float | None, signed: bool = False) -> str:
    """A number for the evaluate table (``-`` when undefined)."""
    if value is None:
        return "-"
    return f"{100 * value:+.1f}%" if signed else f"{value:.4g}"


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def evaluate(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A checkpoint, a run directory (every epoch is scored) or an "
                                               "ensemble file.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="The training store (its TRAIN split fits the ratio "
                                                      "baseline).")],
    split: Annotated[str, typer.Option(help=f"{one_of(SCORED_SPLITS)}.")] = _default(EvaluateConfig, "split"),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write scores as JSON "
                                                                  "(harpnet-evaluate/1).")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write per-tile MAE/MSE as CSV.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for PNG plots.")] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per read and model call.")
                          ] = _default(EvaluateConfig, "batch_size"),
    max_samples: Annotated[int | None, typer.Option(help="Score at most this many samples.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = _default(EvaluateConfig, "device"),
    bbox: Annotated[str | None, typer.Option(help="Score only tiles whose centre lies in S,N,W,E "
                                                  "(degrees).")] = None,
    climatology: Annotated[Path | None, typer.Option(help="A PRISM normal (..._bil.zip): adds the "
                                                          "ratio_prism static-ratio baseline.")] = None,
    period: Annotated[float | None, typer.Option(help="Score only windows this many hours long (a store made with "
                                                      "prepare --periods).", metavar="H")] = None,
    samples: Annotated[int, typer.Option(help="Members drawn per sample from a stochastic model.", metavar="N")
                       ] = _default(EvaluateConfig, "samples"),
    seed: Annotated[int, typer.Option(help="Seed of a stochastic model's noise.")] = _default(EvaluateConfig, "seed"),
) -> None:
    """Score a model, run or ensemble against bilinear, bicubic and ratio baselines on a store split.

    Example: harpnet evaluate runs/compact --data corpus.zarr --json scores.json --plots plots/

    Held-out West box with a PRISM ratio baseline: harpnet evaluate runs/compact --data corpus.zarr
    --bbox 31,49,-125,-102 --climatology PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip
    """
    from rich.table import Table

    from harpnet_cli.core.metrics.summary import SUMMARY_COLUMNS
    from harpnet_cli.workflows.evaluate import run_evaluate

    cfg = EvaluateConfig.model_validate({
        "model": model, "data": data, "split": split, "json_path": json_path, "csv_path": csv_path,
        "plots": plots, "batch_size": batch_size, "max_samples": max_samples, "device": device,
        "bbox": bbox, "climatology": climatology, "period": period, "samples": samples, "seed": seed,
    })
    res = run_evaluate(cfg, RichReporter(ctx.obj))
    if ctx.obj.quiet:
        return
    p90 = _pct(res.fss_p90_threshold_mm)
    per = f"mm per {res.period:g} h" if res.period is not None else "mm per window"
    table = Table(title=f"{res.split} split, {res.n_samples} samples ({per}); p90 of wet truth = {p90}")
    table.add_column("row", justify="left")
    for column in SUMMARY_COLUMNS:
        table.add_column(column.heading, justify="right")
    for name, s in res.summary.items():
        table.add_row(escape(name), *(_pct(s[c.key], c.signed) for c in SUMMARY_COLUMNS))
    stdout.print(table)
    if res.ensemble:
        e = res.ensemble
        skill = ", ".join(f"{b['threshold_mm']:g} mm {_pct(b['brier_skill'])}" for b in e["brier"])
        ranks = e["rank_histogram"]
        flat = [round(v * len(ranks), 2) for v in ranks]
        stdout.print(escape(f"ensemble: {e['n_members']} members, fair CRPS {_pct(e['crps_fair'])}, spread/skill "
                            f"{_pct(e['spread_skill_ratio'])}, rank histogram / uniform {min(flat)}..{max(flat)}, "
                            f"Brier skill vs conservative bilinear {skill}"), soft_wrap=True)
    for p in res.outputs:
        stdout.print(escape(f"wrote {p}"), soft_wrap=True)


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def ensemble(
    ctx: typer.Context,
    runs: Annotated[list[Path], typer.Argument(help="Training run folders (e.g. one per seed) and/or checkpoint "
                                                    "files.", metavar="RUN_DIR", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="The training store (--split scores the selection).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Ensemble file (members) or checkpoint "
                                                                "(soup).")],
    select: Annotated[str, typer.Option(help="all, greedy or best-N.")] = _default(EnsembleConfig, "select"),
    mode: Annotated[str, typer.Option(help="members (HARPNET-E, one file) or soup (averaged weights, "
                                           "a checkpoint; one architecture).")] = _default(EnsembleConfig, "mode"),
    epochs: Annotated[str, typer.Option(help="all (every epoch checkpoint of each run) or last (a seed "
                                             "ensemble).")] = _default(EnsembleConfig, "epochs"),
    split: Annotated[str, typer.Option(help="Store split that scores the selection: "
                                            f"{one_of(field_choices(EnsembleConfig, 'split'))}.")
                     ] = _default(EnsembleConfig, "split"),
    max_samples: Annotated[int, typer.Option(help="Samples of --split used to score the selection.")
                           ] = _default(EnsembleConfig, "max_samples"),
    batch_size: Annotated[int, typer.Option(help="Samples per read and model call.")
                          ] = _default(EnsembleConfig, "batch_size"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = _default(EnsembleConfig, "device"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Combine checkpoints of one or more runs into an ensemble (members) or a weight soup.

    Example: harpnet ensemble runs/s1 runs/s2 --epochs last --select all --data corpus.zarr -o seeds.pt
    """
    from harpnet_cli.workflows.ensemble import run_ensemble

    cfg = EnsembleConfig.model_validate({
        "runs": runs, "data": data, "output": output, "select": select, "mode": mode, "epochs": epochs,
        "split": split, "max_samples": max_samples, "batch_size": batch_size, "device": device,
        "overwrite": overwrite,
    })
    res = run_ensemble(cfg, RichReporter(ctx.obj))
    if not ctx.obj.quiet:
        stdout.print(escape(res.summary()), soft_wrap=True)


@app.command(cls=HarpnetCommand, epilog=EXIT_CODES_HELP)
def info(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Describe this checkpoint or ensemble "
                                                                     "instead of the default model.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON (harpnet-info/1) on "
                                                       "stdout.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Also print the training data, the commands that built "
                                                      "the model and every score table.")] = False,
) -> None:
    """Show the model 'harpnet downscale' would run, where it was trained, its scores, the device, versions.

    Example: harpnet info; harpnet info --full; harpnet info --json
    """
    from harpnet_cli.workflows.info import run_info

    res = run_info(model)
    if json_:
        import json

        typer.echo(json.dumps(res.to_json(), indent=2, default=str))
    elif not ctx.obj.quiet:
        _print_info(res, full)


def _print_info(res: Any, full: bool = False) -> None:
    """Print an :class:`~harpnet_cli.workflows.info.InfoResult`: a key/value grid and the first score table
    (at most about 25 lines), or with ``full`` the training text, the build commands and every table."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    m = res.model
    if m is None:
        grid.add_row("model", f"no default model is installed (no file {escape(res.default_location)}); "
                              "give 'harpnet downscale' a --model")
    else:
        grid.add_row("model", escape(f"{m.path} ({m.source})" + (f": {m.name}" if m.name else "")))
        grid.add_row("sha256", m.sha256)
        kind = f"{m.kind}" + (f" of {m.members} members" if m.members else "") + f", {m.weights_dtype} weights"
        each = " each" if m.members else ""
        grid.add_row("kind", escape(f"{kind}; {m.preset} preset, {m.parameters:,} parameters{each}"))
        if m.scope:
            grid.add_row("trained for", escape(m.scope))
        if full and m.trained_on:
            grid.add_row("trained on", escape(str(m.trained_on)))
        if m.created:
            grid.add_row("created", escape(str(m.created)))
        if res.stochastic:
            grid.add_row("samples", escape(f"{res.stochastic} (stochastic: --samples, --probabilities, --percentiles)"))
        if full and m.built_with:
            variables = any("$" in c for c in m.built_with)
            grid.add_row("built with", escape("the commands below" + (" ($NAMES are variables of "
                                                                      "tools/train_default.sh)" if variables else "")))
            for command in m.built_with:
                grid.add_row("", escape(command))
    grid.add_row("device", escape(res.device))
    grid.add_row("versions", escape(", ".join(f"{k} {v}" for k, v in res.versions.items())))
    stdout.print(grid)
    tables = res.score_tables()
    for t in tables if full else tables[:1]:
        table = Table(title=escape(t.title), title_justify="left")
        table.add_column("")
        for c in t.columns:
            table.add_column(escape(c), justify="right")
        for name, cells in t.rows:
            table.add_row(escape(name), *(escape(c) for c in cells))
        stdout.print(table)
    if not full and (len(tables) > 1 or (m is not None and (m.built_with or m.trained_on))):
        stdout.print(escape(f"{len(tables) - 1} more score table(s), the training data and the commands that "
                            "built the model: harpnet info --full (or --json)"), soft_wrap=True)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C (temporary files removed, locks released)."""
    raise Terminated()


def main() -> None:
    """Console-script entry point; SIGTERM (e.g. from ``timeout``) exits 143 with nothing half-written."""
    import signal

    from harpnet_cli.process import exit_process

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app(prog_name="harpnet")
    except SystemExit as done:
        exit_process(done.code)  # without the interpreter's teardown once a workflow allows it
    except Terminated:
        stderr.print("[bold red]error:[/bold red] terminated (SIGTERM)", soft_wrap=True)
        sys.exit(EXIT_TERMINATED)
