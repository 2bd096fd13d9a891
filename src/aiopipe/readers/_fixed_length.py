"""``FixedLengthRecords``: records of a fixed size (TensorFlow's ``FixedLengthRecordReader``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, final

from .._core.engine._errors import CorruptRecordError
from .._core.stages._reader import BlockingReader, Decoder
from ._validate import check_count, check_storage_options

__all__ = ["FixedLengthRecords"]

_CHUNK_BYTES = 1 << 20


@final
class FixedLengthRecords(BlockingReader):
    """``record_bytes``-long records between a header and a footer of fixed sizes.

    Record i starts at ``header_bytes + i * (hop_bytes or record_bytes)``; records are read while
    one fits before the footer. Without ``hop_bytes``, bytes left over between the last record and
    the footer raise :class:`~aiopipe.CorruptRecordError` before any record is read. An empty file
    yields nothing. Keys are ``"path:i"``, i counting from 0. ``s3://``/``gs://``/``http(s)://``
    paths are streamed in ranges; ``storage_options`` override the environment's credentials.
    """

    def __init__(
        self,
        record_bytes: int,
        *,
        header_bytes: int = 0,
        footer_bytes: int = 0,
        hop_bytes: int = 0,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.record_bytes = check_count("record_bytes", record_bytes, minimum=1)
        self.header_bytes = check_count("header_bytes", header_bytes, minimum=0)
        self.footer_bytes = check_count("footer_bytes", footer_bytes, minimum=0)
        self.hop_bytes = check_count("hop_bytes", hop_bytes, minimum=0)
        self.storage_options = check_storage_options(storage_options)

    def decoder(self, path: str, *, keys: bool, size: int | None) -> Decoder:
        if size is None:
            raise CorruptRecordError(
                f"{path}: FixedLengthRecords needs the object's size, and the server did not "
                "report it (no Content-Range or Content-Length)",
                path=path,
                offset=0,
            )
        return _FixedDecoder(self, path, keys, self._count(path, size))

    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        return self.iter_records_from(path, 0, keys=keys)

    def iter_records_from(self, path: str, start: int, *, keys: bool = False) -> Iterator[Any]:
        """Record ``start`` is at a known byte offset: a resumed read seeks to it."""
        with open(path, "rb") as f:
            count = self._count(path, os.fstat(f.fileno()).st_size)
            index = start
            for batch in self._batches(f, path, count, start):
                if keys:
                    for record in batch:
                        yield f"{path}:{index}", record
                        index += 1
                else:
                    yield from batch

    def _count(self, path: str, size: int) -> int:
        """How many records ``path`` holds; raises for a malformed layout."""
        if size == 0:
            return 0
        body = size - self.header_bytes - self.footer_bytes
        if body < 0:
            raise CorruptRecordError(
                f"{path}: a file of {size} bytes cannot hold header_bytes={self.header_bytes} "
                f"plus footer_bytes={self.footer_bytes}",
                path=path,
                offset=size,
            )
        if self.hop_bytes:
            if body < self.record_bytes:
                return 0
            return (body - self.record_bytes) // self.hop_bytes + 1
        count, left = divmod(body, self.record_bytes)
        if left:
            raise CorruptRecordError(
                f"{path}: {left} bytes left over after {count} records of record_bytes="
                f"{self.record_bytes} (body of {body} bytes between a {self.header_bytes}-byte "
                f"header and a {self.footer_bytes}-byte footer); set hop_bytes to allow that",
                path=path,
                offset=self.header_bytes + count * self.record_bytes,
            )
        return count

    def _batches(self, f: BinaryIO, path: str, count: int, skip: int = 0) -> Iterator[list[bytes]]:
        """Records ``skip ..`` in lists, each list cut from one large read."""
        size, step = self.record_bytes, self.hop_bytes or self.record_bytes
        per_read = max(1, _CHUNK_BYTES // step)
        for first in range(skip, count, per_read):
            n = min(per_read, count - first)
            start = self.header_bytes + first * step
            span = (n - 1) * step + size
            f.seek(start)
            chunk = f.read(span)
            if len(chunk) < span:
                raise CorruptRecordError(
                    f"{path}: the file shrank while being read: expected {span} bytes at "
                    f"offset {start}, got {len(chunk)}",
                    path=path,
                    offset=start + len(chunk),
                )
            yield [chunk[i : i + size] for i in range(0, span - size + 1, step)]

    def describe(self, path: str, index: int) -> str:
        offset = self.header_bytes + index * (self.hop_bytes or self.record_bytes)
        return f"record {index} of {path} (byte offset {offset})"

    def __repr__(self) -> str:
        return (
            f"FixedLengthRecords({self.record_bytes}, header_bytes={self.header_bytes}, "
            f"footer_bytes={self.footer_bytes}, hop_bytes={self.hop_bytes})"
        )


class _FixedDecoder:
    """Records cut at fixed offsets from pushed chunks; bytes before the next record dropped."""

    def __init__(self, reader: FixedLengthRecords, path: str, keys: bool, count: int) -> None:
        self.size = reader.record_bytes
        self.step = reader.hop_bytes or reader.record_bytes
        self.header = reader.header_bytes
        self.path, self.keys, self.count = path, keys, count
        self.buf = b""
        self.buf_start = 0  # object offset of buf[0]
        self.index = 0  # next record

    def feed(self, chunk: bytes, out: list[Any]) -> None:
        buf = self.buf + chunk if self.buf else chunk
        size, step, header, start0 = self.size, self.step, self.header, self.buf_start
        end = start0 + len(buf)
        i = self.index
        while i < self.count:
            s = header + i * step
            if s + size > end:
                break
            record = buf[s - start0 : s - start0 + size]
            out.append((f"{self.path}:{i}", record) if self.keys else record)
            i += 1
        self.index = i
        keep_from = min(header + i * step, end) if i < self.count else end
        self.buf = buf[max(0, keep_from - start0) :]
        self.buf_start = max(start0, keep_from)

    def end(self, out: list[Any]) -> None:
        if self.index < self.count:
            offset = self.header + self.index * self.step
            raise CorruptRecordError(
                f"{self.path}: the object ended before record {self.index} of {self.count} "
                f"(byte offset {offset}): it changed while being read",
                path=self.path,
                offset=offset,
            )
