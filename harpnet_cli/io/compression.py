"""gzip-compressed inputs: the first bytes and the whole content of a ``.gz`` file, in memory.

Observation archives are often shipped gzip-compressed (DWD's RADOLAN composites, NWRFC's
Delft-FEWS NetCDF exports). Readers that can take bytes (NetCDF through ``netCDF4``'s
``memory=``, RADOLAN) read them without a temporary file; :func:`harpnet_cli.io.readers.detect_format`
looks at the decompressed first bytes, so a file is recognised by what it holds, not by its name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from harpnet_cli.errors import InputDataError

#: The two magic bytes of a gzip member.
GZIP_MAGIC = b"\x1f\x8b"
#: Largest decompressed size accepted (a guard against a decompression bomb): 4 GiB.
MAX_DECOMPRESSED = 4 << 30


def is_gzip(head: bytes) -> bool:
    """True when ``head`` (the first raw bytes of a file) starts a gzip stream."""
    return head.startswith(GZIP_MAGIC)


def gunzip_head(path: Path, size: int) -> bytes:
    """The first ``size`` decompressed bytes of a gzip file.

    Raises
    ------
    InputDataError
        A corrupt or truncated gzip stream.
    """
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputDataError(path, f"corrupt gzip file ({exc})") from None


def gunzip(path: Path) -> bytes:
    """The whole decompressed content of a gzip file.

    Raises
    ------
    InputDataError
        A corrupt or truncated gzip stream, or one larger than :data:`MAX_DECOMPRESSED`.
    """
    out = bytearray()
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                out += chunk
                if len(out) > MAX_DECOMPRESSED:
                    raise InputDataError(path, f"gzip file decompresses to more than {MAX_DECOMPRESSED >> 30} GiB")
    except (OSError, EOFError, zlib.error) as exc:
        raise InputDataError(path, f"corrupt or truncated gzip file ({exc})") from None
    return bytes(out)


def read_bytes(path: Path) -> bytes:
    """A file's content, decompressed when it is gzip."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gunzip(path) if is_gzip(magic) else path.read_bytes()
