"""Pipeline and cron helpers: ``-`` as an input, templated output names, and output locks.

* :func:`spool_stdin` copies a GRIB stream from standard input to a temporary file, so that
  ``curl … | harpnet downscale - -o out.grib2`` works: the readers need a seekable file (ecCodes
  visits every message, netCDF4 needs random access). NetCDF/HDF5 on stdin is refused: it is
  not a stream format (the header may point anywhere in the file), a pipe gives no size to
  check a truncated transfer against, and a file path is always available for it.
* :func:`output_name` formats ``'out/harpnet_{init:%Y%m%d%H}_f{lead:03d}.grib2'``-style templates.
  The formatted part of a name cannot leave the folder the template names (no ``..`` and no
  absolute path comes out of a field).
* :class:`OutputLock` holds an ``fcntl`` lock on ``.{name}.lock`` beside an output, so two
  invocations (overlapping cron runs) never write the same file at once. The kernel drops the
  lock when the process exits or dies, so a lock file left behind by a killed run never blocks.
  The lock file is opened with ``O_NOFOLLOW`` and must be a regular file: a symbolic link planted
  at its name (``.o.nc.lock -> victim``) is refused, never followed, so a privileged cron job in
  a shared folder cannot be made to overwrite another file. Once the lock is held, temporaries a
  killed run left beside the output (:func:`harpnet_cli.io.atomic.remove_stale_temporaries`) are
  removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import string
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from harpnet_cli.errors import HarpnetError, InputDataError, UsageError

#: Exit code of :class:`LockedError` (documented beside those in :mod:`harpnet_cli.errors`).
EXIT_LOCKED = 4
#: How a stream spooled from standard input is named in messages and outputs.
STDIN_NAME = "-"
#: Files :func:`spool_stdin` made in this process (see :func:`is_spooled`).
_SPOOLED: set[Path] = set()

#: Fields :func:`output_name` knows.
TEMPLATE_FIELDS = ("init", "valid", "lead", "member")

_CHUNK = 1 << 20
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


class LockedError(HarpnetError):
    """Another harpnet process is writing the same output (exit code 4)."""

    exit_code = EXIT_LOCKED


def spool_stdin(max_bytes: int | None = None, *, stream: BinaryIO | None = None,
                directory: str | os.PathLike[str] | None = None) -> Path:
    """Copy a GRIB stream from standard input into a temporary file.

    Parameters
    ----------
    max_bytes : int, optional
        Refuse a stream longer than this (protects ``/tmp`` from an endless pipe).
    stream : binary stream, optional
        Read this instead of ``sys.stdin.buffer`` (tests).
    directory : path-like, optional
        Where the temporary file goes (default: ``$TMPDIR``).

    Returns
    -------
    Path
        A ``harpnet-stdin-*.grib`` file (created with ``O_EXCL``, never through a link); the caller
        deletes it (e.g. ``path.unlink()`` in a ``finally``). The readers name it ``-``
        (:func:`is_spooled`).

    Raises
    ------
    InputDataError
        Standard input is a terminal, empty, NetCDF/HDF5, not GRIB, or longer than ``max_bytes``.
    """
    source = stream if stream is not None else sys.stdin.buffer
    if stream is None and sys.stdin.isatty():
        raise InputDataError("-", "standard input is a terminal; pipe a GRIB stream into it")
    fd, name = tempfile.mkstemp(prefix="harpnet-stdin-", suffix=".grib", dir=directory)
    path = Path(name)
    try:
        total = 0
        head = b""
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                if len(head) < 16:
                    head += chunk[:16]
                    _check_head(head)
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise InputDataError("-", f"standard input is longer than {max_bytes} bytes")
                out.write(chunk)
        if total == 0:
            raise InputDataError("-", "standard input is empty")
        if not head.startswith(b"GRIB"):
            raise InputDataError("-", "standard input is not a GRIB stream")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    _SPOOLED.add(path)
    return path


def is_spooled(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file :func:`spool_stdin` made in this process (named ``-`` to the user)."""
    return Path(path) in _SPOOLED


def shown_path(path: str | os.PathLike[str]) -> Path:
    """How a path is named to the user: ``-`` for a file spooled from standard input, else itself."""
    return Path(STDIN_NAME) if is_spooled(path) else Path(path)


def _check_head(head: bytes) -> None:
    """Refuse NetCDF/HDF5 or non-GRIB data as soon as the first bytes are known."""
    if head.startswith(_NETCDF_MAGIC):
        raise InputDataError("-", "NetCDF on standard input is not supported; pass the file's path")
    if len(head) >= 4 and not head.startswith(b"GRIB"):
        raise InputDataError("-", "standard input is not a GRIB stream (it does not start with 'GRIB')")


def output_name(template: str, *, init: datetime | None, lead_hours: float, valid: datetime,
                member: int | None) -> Path:
    """Format an output file name template.

    Parameters
    ----------
    template : str
        A :meth:`str.format` template, e.g. ``'out/harpnet_{init:%Y%m%d%H}_f{lead:03d}.grib2'``.
        Fields: ``init`` (datetime), ``valid`` (datetime, the window end), ``lead`` (whole hours
        as an int, or a float when not whole) and ``member`` (int, or ``""`` for a deterministic run).
    init : datetime or None
        Forecast reference time; a template using ``{init}`` fails when it is None.
    lead_hours : float
        Hours from ``init`` to ``valid``.
    valid : datetime
        End of the accumulation window.
    member : int or None
        Ensemble member.

    Returns
    -------
    Path
        The formatted name.

    Raises
    ------
    ValueError
        Unknown or positional fields, a bad format spec, or ``{init}`` without a reference time.
    """
    used = _template_fields(template)
    unknown = sorted(used - set(TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join('{' + u + '}' for u in unknown)} in output template "
                         f"{template!r}; known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
    if "init" in used and init is None:
        raise ValueError(f"output template {template!r} uses {{init}} but the input has no reference time")
    lead: int | float = int(lead_hours) if float(lead_hours).is_integer() else float(lead_hours)
    values = {"init": init, "valid": valid, "lead": lead, "member": "" if member is None else member}
    try:
        name = template.format(**values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad output template {template!r}: {exc}") from None
    _check_inside(template, name)
    return Path(name)


def _check_inside(template: str, name: str) -> None:
    """Refuse a formatted name that leaves the folder the template names.

    The folder is the template's literal text before its first field (``out/2024/`` of
    ``out/2024/h_{init:%Y}.nc``); what the fields add may go into sub-folders of it, never up
    (``..``) nor to an absolute path.

    Raises
    ------
    ValueError
        When it does.
    """
    literal = next(iter(string.Formatter().parse(template)))[0]
    folder = literal[: literal.rfind("/") + 1] if "/" in literal else ""
    rest = name[len(folder):] if name.startswith(folder) else name
    parts = Path(rest).parts
    if not name.startswith(folder) or Path(rest).is_absolute() or ".." in parts:
        raise ValueError(f"output template {template!r} gives {name!r}, outside the folder "
                         f"{folder or './'!r} it names; fields may not add '..' or an absolute path")


def _template_fields(template: str) -> set[str]:
    """Top-level field names of a format template (``{init:%H}`` → ``init``)."""
    fields = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad output template {template!r}: {exc}") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = name.split(".")[0].split("[")[0]
        if not root or root.isdigit():
            raise ValueError(f"output template {template!r} has a positional field; name it, e.g. {{lead}}")
        fields.add(root)
    return fields


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of an output: ``.{name}.lock`` in the same folder."""
    final = Path(path)
    return final.with_name(f".{final.name}.lock")


class OutputLock:
    """An exclusive ``fcntl`` lock on an output, held for a ``with`` block.

    Parameters
    ----------
    path : path-like
        The output file; the lock is ``.{name}.lock`` beside it (see :func:`lock_path`).
    wait : bool
        Block until the other holder releases the lock instead of raising :class:`LockedError`.

    Examples
    --------
    >>> with OutputLock("out/today.grib2"):  # doctest: +SKIP
    ...     write_grib2("out/today.grib2", fc, overwrite=True)
    """

    def __init__(self, path: str | os.PathLike[str], wait: bool = False) -> None:
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock.

        Raises
        ------
        LockedError
            Another process (or another :class:`OutputLock` in this one) holds it and ``wait`` is False.
        UsageError
            The output's folder does not exist.
        """
        if self._fd is not None:
            return self
        if not self.lock_file.parent.is_dir():
            raise UsageError(f"{self.lock_file.parent} does not exist (folder of the output {self.path.name})")
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LockedError(f"{self.path} is being written by another harpnet process "
                                  f"(lock {self.lock_file}); retry later or pass --wait") from None
            except BaseException:
                os.close(fd)
                raise
            if self._still_linked(fd):
                break
            os.close(fd)  # the holder we waited for removed this file: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        from harpnet_cli.io.atomic import remove_stale_temporaries

        remove_stale_temporaries(self.path)  # under the lock: no other harpnet writes them
        return self

    def _open(self) -> int:
        """The lock file's descriptor, opened without following a link; only a regular file is accepted.

        Raises
        ------
        UsageError
            The lock path is a symbolic link or not a regular file.
        """
        refusal = (f"{self.lock_file} (the lock of {self.path.name}) is a symbolic link or not a regular file; "
                   "refusing to follow or use it: remove it")
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UsageError(refusal) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(refusal)
        os.set_blocking(fd, True)
        return fd

    def _still_linked(self, fd: int) -> bool:
        """Whether the locked descriptor is still the file at :attr:`lock_file` (never through a link)."""
        try:
            here, held = os.lstat(self.lock_file), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Remove the lock file and drop the lock.

        The file is unlinked while the lock is still held, and :meth:`acquire` checks after
        locking that its file is still the one on disk, so removing it never lets two holders in.
        A process that dies keeps no lock (the kernel drops it) and leaves a stale file that the
        next run simply locks.
        """
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._still_linked(fd):
                self.lock_file.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
