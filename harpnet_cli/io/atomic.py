"""Write outputs through a temporary file and rename, so no half-written file is ever left."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harpnet_cli.errors import UsageError


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` cannot be written.

    Raises
    ------
    UsageError
        If the file exists and ``overwrite`` is False, or its folder does not exist.
    """
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UsageError(f"{path} is a directory")
    if not path.parent.exists():
        raise UsageError(f"{path.parent} does not exist (folder of the output {path.name})")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file is removed if the block raises (including KeyboardInterrupt), so an
    interrupted run leaves neither a partial output nor a stray temporary file.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    """
    final = Path(path)
    check_writable(final, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        if final.exists() and not overwrite:  # appeared while we worked
            raise UsageError(f"{final} appeared while writing; pass --overwrite to replace it")
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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
