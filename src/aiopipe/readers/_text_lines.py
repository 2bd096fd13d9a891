"""``TextLines``: one record per line of a text file (TensorFlow's ``TextLineReader``)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from typing import Any, final

from .._core.engine._errors import CorruptRecordError
from .._core.stages._reader import BlockingReader, Decoder
from ._validate import check_count, check_storage_options

__all__ = ["TextLines"]

_BUFFER_BYTES = 1 << 20


@final
class TextLines(BlockingReader):
    """Lines of text files without their endings (LF or CRLF); a last line without one counts.

    ``encoding=None`` yields ``bytes``; otherwise each line is decoded (the encoding must keep
    ``"\\n"`` a single byte, as UTF-8 and Latin-1 do). ``skip_header_lines`` lines are skipped at
    the top of each file. Keys are ``"path:N"``, N the 1-based line number in the file.
    ``s3://``/``gs://``/``http(s)://`` paths are streamed in ranges; ``storage_options``
    override the environment's credentials for them.
    """

    resyncs = True  # a line that does not decode is one bad record; the next line is fine

    def __init__(
        self,
        *,
        skip_header_lines: int = 0,
        encoding: str | None = "utf-8",
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.skip_header_lines = check_count("skip_header_lines", skip_header_lines, minimum=0)
        self.encoding = _check_encoding(encoding)
        self.storage_options = check_storage_options(storage_options)

    def decoder(self, path: str, *, keys: bool, size: int | None) -> Decoder:
        return _LineDecoder(self, path, keys)

    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        return self.iter_records_from(path, 0, keys=keys)

    def iter_records_from(self, path: str, start: int, *, keys: bool = False) -> Iterator[Any]:
        # Binary mode splits on b"\n" only, as TensorFlow does (a lone "\r" stays in the line).
        with open(path, "rb", buffering=_BUFFER_BYTES) as f:
            # Lines before ``start`` are passed over undecoded: a resumed file never trips again
            # on the bad line it skipped.
            skip, encoding = self.skip_header_lines + start, self.encoding
            offset = 0
            for number, raw in enumerate(f, 1):
                if number <= skip:
                    offset += len(raw)
                    continue
                line = raw.removesuffix(b"\n").removesuffix(b"\r")
                record = line if encoding is None else _decode(line, encoding, path, offset)
                yield (f"{path}:{number}", record) if keys else record
                offset += len(raw)

    def describe(self, path: str, index: int) -> str:
        return f"line {index + self.skip_header_lines + 1} of {path}"

    def __repr__(self) -> str:
        return f"TextLines(skip_header_lines={self.skip_header_lines}, encoding={self.encoding!r})"


class _LineDecoder:
    """Lines cut from pushed chunks: the unfinished last line waits for the next chunk."""

    def __init__(self, reader: TextLines, path: str, keys: bool) -> None:
        self.skip, self.encoding = reader.skip_header_lines, reader.encoding
        self.path, self.keys = path, keys
        self.tail = b""
        self.number = 0  # lines seen
        self.offset = 0  # byte offset of the start of ``tail``

    def feed(self, chunk: bytes, out: list[Any]) -> None:
        data = self.tail + chunk if self.tail else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self.tail = data
            return
        self.tail = data[cut + 1 :]
        self._lines(data[:cut].split(b"\n"), out, ended=True)

    def end(self, out: list[Any]) -> None:
        if self.tail:
            tail, self.tail = self.tail, b""
            self._lines([tail], out, ended=False)

    def _lines(self, raws: list[bytes], out: list[Any], *, ended: bool) -> None:
        skip, encoding, path, keys = self.skip, self.encoding, self.path, self.keys
        number, offset = self.number, self.offset
        append = out.append
        try:
            for raw in raws:
                number += 1
                size = len(raw) + ended
                if number > skip:
                    line = raw.removesuffix(b"\r")
                    record = line if encoding is None else _decode(line, encoding, path, offset)
                    append((f"{path}:{number}", record) if keys else record)
                offset += size
        finally:
            self.number, self.offset = number, offset


def _decode(line: bytes, encoding: str, path: str, offset: int) -> str:
    try:
        return line.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(
            f"{path}: the line at byte offset {offset} is not valid {encoding}: {exc}",
            path=path,
            offset=offset,
        ) from None


def _check_encoding(encoding: object) -> str | None:
    if encoding is None:
        return None
    if not isinstance(encoding, str):
        raise ValueError(f"encoding must be a str or None, got {type(encoding).__name__}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if "\r\n".encode(encoding, errors="replace") != b"\r\n":
        raise ValueError(
            f"TextLines splits lines on the byte b'\\n', which {encoding!r} does not use; "
            "pick an ASCII-compatible encoding (utf-8, latin-1, ...) or encoding=None for bytes"
        )
    return encoding
