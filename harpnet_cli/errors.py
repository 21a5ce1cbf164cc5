"""Exceptions the CLI turns into one-line messages and documented exit codes.

Exit codes (documented in the README and ``harpnet --help``):

* 0 — success
* 1 — runtime failure (:class:`HarpnetError` and anything unexpected)
* 2 — usage error (:class:`UsageError`; Typer/Click use 2 for bad options too)
* 3 — bad input data (:class:`InputDataError`)
* 4 — an output is being written by another harpnet process
  (:class:`harpnet_cli.io.pipes.LockedError`; ``--wait`` waits instead)
* 130 — interrupted by Ctrl-C (SIGINT); no partial output is left
* 143 — terminated by SIGTERM (what ``timeout`` and schedulers send; :class:`Terminated`);
  no partial output is left
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


class HarpnetError(Exception):
    """A failure the user should see as one line (exit code 1)."""

    exit_code = EXIT_FAILURE


class UsageError(HarpnetError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = EXIT_USAGE


class InputDataError(HarpnetError):
    """An input file is unreadable, inconsistent or not precipitation (exit code 3).

    Parameters
    ----------
    path : str or Path or None
        The offending file; it is named at the start of the message.
    message : str
        What is wrong with it, in one line.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class Terminated(BaseException):
    """Raised by the CLI's SIGTERM handler (exit code 143).

    A :class:`BaseException`, like :class:`KeyboardInterrupt`, so that no ``except Exception``
    swallows it on its way out through the ``finally`` blocks that delete temporary files.
    """

    exit_code = EXIT_TERMINATED


def validation_message(exc: ValidationError) -> str:
    """A pydantic validation error in one line: ``setting: problem`` for each problem, ``; `` between.

    The setting is the configuration key (for most options the option's name in snake case, as in
    ``config.toml``).
    """
    return "; ".join(_one_problem(error) for error in exc.errors())


def _one_problem(error: Any) -> str:
    """One pydantic error as ``setting: problem``."""
    msg = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {msg}" if where else msg
