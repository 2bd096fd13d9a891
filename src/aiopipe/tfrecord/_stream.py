"""The uncompressed bytes of a TFRecord file, as an iterator of large chunks.

Files are read 1 MiB per system call; compressed files are inflated chunk by chunk with each
step's output bounded, so neither many small reads nor a zip bomb can hurt.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO, Literal

from .._core.engine._errors import CorruptRecordError
from ._compression import Compression, mismatch_hint, window_bits

__all__ = ["CHUNK_BYTES", "open_stream"]

CHUNK_BYTES = 1 << 20  # bytes per read() call: large enough to amortise the call
_INFLATE_LIMIT = 4 << 20  # bound on one inflate step's output


def open_stream(f: BinaryIO, path: str, compression: Compression) -> Iterator[bytes]:
    """The uncompressed bytes of ``f`` as an iterator of large chunks."""
    if compression is None:
        return _read_chunks(f)
    return _inflate(_read_chunks(f), path, compression)


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


def _inflate(
    chunks: Iterator[bytes], path: str, compression: Literal["GZIP", "ZLIB"]
) -> Iterator[bytes]:
    wbits = window_bits(compression)
    inflater = zlib.decompressobj(wbits)
    consumed = 0  # compressed bytes before the current chunk
    midstream = False  # input went into the current stream and its end was not seen yet
    for chunk in chunks:
        data = chunk
        while True:
            midstream = midstream or bool(data)
            try:
                out = inflater.decompress(data, _INFLATE_LIMIT)
            except zlib.error as exc:
                raise _bad_stream(exc, chunk, consumed, path, compression) from None
            if out:
                yield out
            if inflater.eof:
                # Concatenated streams (e.g. appended gzip members) are read one after another.
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits)
                midstream = False
                if not data:
                    break
                continue
            data = inflater.unconsumed_tail
            # A capped output with no input left may still hold bytes inside zlib: go round.
            if not data and len(out) < _INFLATE_LIMIT:
                break
        consumed += len(chunk)
    if midstream:
        raise CorruptRecordError(
            f"{path}: the {compression} stream ends early after {consumed} compressed bytes "
            "(the file is truncated)",
            path=path,
            offset=consumed,
        )


def _bad_stream(
    exc: zlib.error, chunk: bytes, consumed: int, path: str, compression: Compression
) -> CorruptRecordError:
    hint = mismatch_hint(chunk[:16], compression) if consumed == 0 else ""
    return CorruptRecordError(
        f"{path}: bad {compression} stream near compressed byte {consumed} (zlib: {exc}){hint}",
        path=path,
        offset=consumed,
    )
