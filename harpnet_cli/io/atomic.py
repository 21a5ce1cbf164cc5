"""Write outputs through a temporary file and rename, so no half-written file is ever left.

Safe in shared folders:

* the temporary file lives in a private folder (``.NAME.XXXXXXXX.part/``, mode 0700, made with
  ``mkdir``, which never follows a link) beside the output, and is created there with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` before the writer opens it: nobody else can swap it for a
  symbolic link, so the writer never writes through one;
* the rename replaces whatever is at the output's path — a symbolic link there is replaced by
  the file, never written through (and an existing link counts as an existing output, which
  needs ``--overwrite``);
* a killed run (``kill -9``) leaves its ``.NAME.XXXXXXXX.part`` folder behind; the next run on
  the same output removes it (:func:`remove_stale_temporaries`, called under the output's lock;
  only entries of this naming pattern, links never followed);
* a full disk is one line naming the output, "no space left on device", whatever library was
  writing (netCDF/HDF5 reports only "NetCDF: HDF error", so the free space is looked at).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harpnet_cli.errors import HarpnetError, UsageError

#: Suffix of the private folders of temporary files (``.NAME.XXXXXXXX.part``).
TEMP_SUFFIX = ".part"
#: Free space below which a failed write is taken to have filled the disk (bytes).
FULL_BELOW = 1 << 20


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` cannot be written.

    Raises
    ------
    UsageError
        If the file (or a symbolic link, even a dangling one) exists and ``overwrite`` is False,
        it is a directory, or its folder does not exist.
    """
    if os.path.lexists(path) and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    if not path.parent.exists():
        raise UsageError(f"{path.parent} does not exist (folder of the output {path.name})")


def temporary_pattern(path: str | os.PathLike[str]) -> re.Pattern[str]:
    """The names of the temporaries of ``path`` (``.NAME.`` + 8 characters of :mod:`tempfile` + ``.part``)."""
    return re.compile(rf"\.{re.escape(Path(path).name)}\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")


def remove_stale_temporaries(path: str | os.PathLike[str]) -> int:
    """Remove the temporaries a killed run left beside ``path``; call it while holding the output's lock.

    Only entries named by :func:`temporary_pattern` are touched: folders (removed with their
    content, links inside never followed) and regular files (of older versions). A symbolic link
    with such a name is not ours and is left alone.

    Returns
    -------
    int
        Entries removed.
    """
    final = Path(path)
    pattern = temporary_pattern(final)
    removed = 0
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(entry.path).st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(entry.path)  # fd-based on Linux: never follows a link inside
            elif stat.S_ISREG(mode):
                os.unlink(entry.path)
            else:
                continue
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file (already created, empty) is in a private folder removed whatever happens,
    including KeyboardInterrupt, so an interrupted run leaves neither a partial output nor a
    stray temporary file.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        Whether an existing ``path`` may be replaced.

    Raises
    ------
    HarpnetError
        The disk filled up while writing (one line naming ``path``).
    """
    final = Path(path)
    check_writable(final, overwrite)
    folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent))
    tmp = folder / final.name
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        yield tmp
        _fsync_file(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the usual mode of a new file
        if os.path.lexists(final) and not overwrite:  # appeared while we worked
            raise UsageError(f"{final} appeared while writing; pass --overwrite to replace it")
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except HarpnetError:
        raise
    except Exception as exc:
        if disk_full(exc, folder):
            raise HarpnetError(f"{final}: cannot write: no space left on device") from None
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """Whether a failed write ran out of space.

    True for an ``OSError`` with ``ENOSPC`` or ``EDQUOT`` anywhere in the exception's chain; for
    other errors (libraries that lose ``errno``, such as netCDF/HDF5's "NetCDF: HDF error"), when
    less than :data:`FULL_BELOW` bytes are free in ``folder``.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        fs = os.statvfs(folder)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < FULL_BELOW


def _fsync_file(path: Path) -> None:
    """Flush a finished temporary file to disk (opened without following a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
