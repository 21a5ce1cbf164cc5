"""ecCodes, imported once and quietly: what it prints goes to a private file, never to the user's terminal.

The ecCodes C library writes ``ECCODES ERROR : …`` lines to the process's standard error (file
descriptor 2) when it meets a damaged message, behind Python's back and whatever the outcome.
HARPNET promises one line per failure, so on first import this module points ecCodes' log at an
anonymous temporary file (``codes_context_set_logging``, the library's own hook). Some of its
code prints with ``fprintf(stderr, …)`` all the same (``ECCODES WARNING : … Date is not valid``,
ECC-1777), so the readers also hold :func:`captured` while they work on a message: file
descriptor 2 points at the same file for that time (microseconds for a header, the decoding of
one field at most) and is restored at once, also on an error. The readers :func:`drain` the file
around each message: an error logged while a precipitation message was read makes that message
corrupt, and the first logged line becomes the detail of the one-line error.

pyproj is imported first (see :mod:`harpnet_cli.io`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

import pyproj  # noqa: F401  # before eccodes: once eckit's bundled PROJ is loaded, pyproj crashes

# isort: split
import eccodes

__all__ = ["captured", "drain", "eccodes", "errors_in"]

_LOCK = threading.Lock()
#: Where ecCodes logs (kept open for the life of the process: ecCodes holds its ``FILE *``).
_LOG = tempfile.TemporaryFile("a+", encoding="utf-8", errors="replace")
eccodes.codes_context_set_logging(_LOG)

_PREFIX = "ECCODES ERROR"
_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Point file descriptor 2 at the ecCodes log for the block (re-entrant; restored on any exit)."""
    global _depth, _saved_fd
    with _LOCK:
        if _depth == 0:
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            _saved_fd = os.dup(2)
            os.dup2(_LOG.fileno(), 2)
        _depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def drain() -> list[str]:
    """The lines ecCodes logged since the last call (errors, warnings and debug), and forget them."""
    with _LOCK:
        _LOG.flush()
        _LOG.seek(0)
        text = _LOG.read()
        _LOG.seek(0)
        _LOG.truncate(0)
    return [line.strip() for line in text.splitlines() if line.strip()]


def errors_in(lines: list[str]) -> list[str]:
    """The error lines among logged ``lines``, without ecCodes' prefix (``"No final 7777 in message!"``)."""
    out = []
    for line in lines:
        if line.startswith(_PREFIX):
            out.append(line[len(_PREFIX):].lstrip(" :").strip())
    return out
