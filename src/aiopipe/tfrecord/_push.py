"""TFRecord parsing fed chunk by chunk (object storage): the push twin of ``iter_batches``.

The bytes of a remote object arrive as ranges; ``FrameDecoder.feed`` takes each one as it comes
and appends the records it completes, with the same checks and errors as reading a local file
(``_framing`` does the cutting and the CRCs). ``Inflater`` does the same for GZIP/ZLIB.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

from .._core.engine._errors import CorruptRecordError
from ._compression import Compression, window_bits
from ._framing import (
    _BAD_HEADER,
    _data_crc_error,
    _first_bad_data,
    _raise_for_length,
    _split,
    _truncated,
)
from ._stream import _INFLATE_LIMIT, _bad_stream

__all__ = ["FrameDecoder", "Inflater"]


class FrameDecoder:
    """Checked TFRecord frames from pushed chunks of the uncompressed stream."""

    def __init__(self, path: str, *, verify: bool, keys: bool, compression: Compression) -> None:
        self.path, self.keys, self.verify = path, keys, verify
        self.inflater = Inflater(path, compression) if compression else None
        self.parts: list[bytes] = []
        self.have = 0
        self.need = 12
        self.base = 0  # stream offset of the first unconsumed byte
        self.known: dict[int, int] | None = {} if verify else None
        self.first_checked = False

    def feed(self, chunk: bytes, out: list[Any]) -> None:
        if self.inflater is not None:
            for piece in self.inflater.feed(chunk):
                self._frames(piece, out)
        else:
            self._frames(chunk, out)

    def end(self, out: list[Any]) -> None:
        if self.inflater is not None:
            self.inflater.end()
        if self.have:
            raise _truncated(b"".join(self.parts), self.base, self.path)

    def _frames(self, data: bytes, out: list[Any]) -> None:
        if not data:
            return
        self.parts.append(data)
        self.have += len(data)
        if self.have < self.need:
            return
        buf = b"".join(self.parts) if len(self.parts) > 1 else self.parts[0]
        if not self.first_checked and len(buf) >= 12:
            _raise_for_length(buf, 0, 0, self.path)
            self.first_checked = True
        pos, need = 0, 0
        while not need:
            starts, records, end, need, uniform = _split(buf, pos, self.known)
            if self.verify and records:
                bad = _first_bad_data(buf, starts, records, end, uniform)
                if bad >= 0:
                    self._emit(starts[:bad], records[:bad], out)
                    raise _data_crc_error(buf, starts[bad], self.base, self.path)
            self._emit(starts, records, out)
            pos = end
        if need == _BAD_HEADER:
            _raise_for_length(buf, pos, self.base, self.path)
        self.base += pos
        rest = buf[pos:]
        self.parts = [rest] if rest else []
        self.have = len(rest)
        self.need = need

    def _emit(self, starts: list[int], records: list[bytes], out: list[Any]) -> None:
        if not self.keys:
            out.extend(records)
            return
        base, path = self.base, self.path
        out.extend((f"{path}:{base + s}", r) for s, r in zip(starts, records, strict=True))


class Inflater:
    """GZIP/ZLIB inflation of pushed chunks, each step's output bounded (no zip bombs)."""

    def __init__(self, path: str, compression: Literal["GZIP", "ZLIB"]) -> None:
        self.path, self.compression = path, compression
        self.wbits = window_bits(compression)
        self.z = zlib.decompressobj(self.wbits)
        self.consumed = 0
        self.midstream = False

    def feed(self, chunk: bytes) -> list[bytes]:
        outs: list[bytes] = []
        data = chunk
        while True:
            self.midstream = self.midstream or bool(data)
            try:
                out = self.z.decompress(data, _INFLATE_LIMIT)
            except zlib.error as exc:
                raise _bad_stream(exc, chunk, self.consumed, self.path, self.compression) from None
            if out:
                outs.append(out)
            if self.z.eof:  # concatenated streams (appended gzip members) follow one another
                data = self.z.unused_data
                self.z = zlib.decompressobj(self.wbits)
                self.midstream = False
                if not data:
                    break
                continue
            data = self.z.unconsumed_tail
            if not data and len(out) < _INFLATE_LIMIT:
                break
        self.consumed += len(chunk)
        return outs

    def end(self) -> None:
        if self.midstream:
            raise CorruptRecordError(
                f"{self.path}: the {self.compression} stream ends early after {self.consumed} "
                "compressed bytes (the file is truncated)",
                path=self.path,
                offset=self.consumed,
            )
