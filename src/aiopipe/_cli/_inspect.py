"""``aiopipe inspect FILE...``: what is in a TFRecord or text file, and is it intact.

TFRecord files of ``tf.train.Example`` / ``SequenceExample`` records also get their feature
names, kinds and value counts (``_examples``).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from .. import CorruptRecordError
from .._core.stages._urls import is_url, remote
from ..readers import TextLines, TFRecords
from ..tfrecord import masked_crc32c
from ._errors import CliError
from ._examples import ExampleSummary, sniff

__all__ = ["inspect_files"]

AUTO = "auto"
HEAD_BYTES = 1 << 16
# zlib's window bits for TensorFlow's two compressed formats.
WBITS = {"GZIP": zlib.MAX_WBITS | 16, "ZLIB": zlib.MAX_WBITS}


@dataclass
class Summary:
    """Sizes and the first records, gathered in one streaming pass."""

    show: int
    count: int = 0
    total: int = 0
    smallest: int = 0
    largest: int = 0
    first: list[Any] = field(default_factory=list)

    def add(self, record: Any, size: int) -> None:
        self.smallest = size if self.count == 0 else min(self.smallest, size)
        self.largest = max(self.largest, size)
        self.count += 1
        self.total += size
        if len(self.first) < self.show:
            self.first.append(record)

    def sizes(self) -> str:
        if self.count == 0:
            return "no records"
        mean = self.total / self.count
        return f"sizes min {self.smallest} / mean {mean:.1f} / max {self.largest} bytes"


def inspect_files(
    paths: list[str], *, fmt: str, compression: str | None, show: int, width: int
) -> int:
    """Print a summary of each file; returns 1 if any could not be read whole, else 0."""
    failed = 0
    for path in paths:
        try:
            _inspect_one(path, fmt, compression, show, width)
        except CorruptRecordError as exc:
            _error(f"{path}: corrupt record at offset {exc.offset}: {exc}")
            failed += 1
        except OSError as exc:
            _error(f"{path}: {exc.strerror or exc}")
            failed += 1
        except CliError as exc:
            _error(str(exc))
            failed += 1
    return 1 if failed else 0


def _error(message: str) -> None:
    print(f"aiopipe: error: {message}", file=sys.stderr)


def _inspect_one(path: str, fmt: str, compression: str | None, show: int, width: int) -> None:
    if is_url(path):  # s3://, gs://, http(s)://: the head by a ranged GET, records streamed
        head = anyio.run(remote("_lane").head_bytes, path, HEAD_BYTES)
    else:
        with open(path, "rb") as f:  # fail early and plainly on a missing file or a directory
            head = f.read(HEAD_BYTES)
    if fmt == AUTO:
        fmt, guessed = _sniff(path, head)
        compression = guessed if compression == AUTO else compression
    elif compression == AUTO:
        compression = _tfrecord_compression(head)[0]
    summary = Summary(show)
    examples: ExampleSummary | None = None
    if fmt == "tfrecord":

        def add(record: bytes) -> None:
            nonlocal examples
            if summary.count == 0 and (found := sniff(record)) is not None:
                examples = ExampleSummary(found)
            if examples is not None:
                examples.add(record)
            summary.add(record, len(record))

        _summarize(TFRecords(compression=compression), path, add)
        kind = f"TFRecord ({compression or 'uncompressed'})"
        checks = f"CRC ok ({2 * summary.count} checksums)" if summary.count else "CRC ok"
    else:
        _summarize(TextLines(encoding=None), path, lambda line: summary.add(line, len(line)))
        kind, checks = "text", "no checksums in text files"
    print(f"{path}: {kind}, {summary.count} records, {summary.sizes()}, {checks}")
    if examples is not None:
        print("\n".join(examples.lines(summary.count)))
    for i, record in enumerate(summary.first):
        shown = _shorten(record, width) if examples is None else examples.describe(record)
        print(f"  [{i}] {shown}")


def _summarize(reader: TFRecords | TextLines, path: str, add: Callable[[Any], None]) -> None:
    if not is_url(path):
        for record in reader.iter_records(path):
            add(record)
        return

    async def stream() -> None:
        async for record in reader(path):
            add(record)

    anyio.run(stream)


def _sniff(path: str, head: bytes) -> tuple[str, str | None]:
    """("tfrecord", compression) when the first record's length checksum matches, else text."""
    if not head:
        return "text", None
    compression, matched = _tfrecord_compression(head)
    if matched:
        return "tfrecord", compression
    if b"\0" not in head:
        return "text", None
    raise CliError(
        f"{path}: neither a TFRecord file (the first record's length checksum does not match) "
        "nor a text file; if it is a damaged TFRecord file, pass --format tfrecord to see where"
    )


def _tfrecord_compression(head: bytes) -> tuple[str | None, bool]:
    """The compression under which ``head`` starts a TFRecord, and whether one does.

    The magic bytes are only a guess (an uncompressed length can look like a zlib header), so the
    length checksum of the first record decides.
    """
    guess = _guess_compression(head)
    for compression in dict.fromkeys((guess, None)):
        data = head if compression is None else _inflate(head, compression)
        if data is not None and _length_crc_matches(data):
            return compression, True
    return guess, False


def _guess_compression(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "GZIP"
    if len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
        return "ZLIB"  # a zlib header: deflate method and the header checksum
    return None


def _inflate(head: bytes, compression: str) -> bytes | None:
    try:
        return zlib.decompressobj(WBITS[compression]).decompress(head, 12)
    except zlib.error:
        return None


def _length_crc_matches(data: bytes) -> bool:
    return len(data) >= 12 and masked_crc32c(data[:8]) == int.from_bytes(data[8:12], "little")


def _shorten(record: bytes, width: int) -> str:
    """A record as text if it is UTF-8, else as a bytes literal, cut to ``width`` characters."""
    try:
        text: str = repr(record.decode("utf-8"))
    except UnicodeDecodeError:
        text = repr(record)
    if len(text) <= width:
        return text
    return f"{text[:width]}... ({len(record)} bytes)"
