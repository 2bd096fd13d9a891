"""``WholeFile``: each file is one record (TensorFlow's ``WholeFileReader``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any, final

from .._core._reader import BlockingReader

__all__ = ["WholeFile", "read_whole"]

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows only: no newline translation
_SPILL = 1 << 20


def read_whole(path: str) -> bytes:
    """The bytes of ``path``, in as few system calls as the file allows.

    ``open(path, "rb").read()`` builds a buffered file object and reads twice; on many small files
    that costs ~60 % more than ``os.open`` + ``fstat`` + one ``os.read`` (measured on W2). Asking
    for one byte more than ``fstat`` reports lets a short read prove the end of a regular file, so
    a file that grew meanwhile, or a pipe (size 0), falls through to reading until EOF.
    """
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        st = os.fstat(fd)
        data = os.read(fd, st.st_size + 1)
        if len(data) <= st.st_size and stat.S_ISREG(st.st_mode):
            return data
        parts = [data]
        while chunk := os.read(fd, _SPILL):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


@final
class WholeFile(BlockingReader):
    """The whole content of each file as one ``bytes`` record; the key is the path."""

    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        data = read_whole(path)
        yield (path, data) if keys else data

    def describe(self, path: str, index: int) -> str:
        return path
