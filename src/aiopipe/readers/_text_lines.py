"""``TextLines``: one record per line of a text file (TensorFlow's ``TextLineReader``)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any, final

from .._core._errors import CorruptRecordError
from .._core._reader import BlockingReader
from ._validate import check_count

__all__ = ["TextLines"]

_BUFFER_BYTES = 1 << 20


@final
class TextLines(BlockingReader):
    """Lines of text files without their endings (LF or CRLF); a last line without one counts.

    ``encoding=None`` yields ``bytes``; otherwise each line is decoded (the encoding must keep
    ``"\\n"`` a single byte, as UTF-8 and Latin-1 do). ``skip_header_lines`` lines are skipped at
    the top of each file. Keys are ``"path:N"``, N the 1-based line number in the file.
    """

    resyncs = True  # a line that does not decode is one bad record; the next line is fine

    def __init__(self, *, skip_header_lines: int = 0, encoding: str | None = "utf-8") -> None:
        self.skip_header_lines = check_count("skip_header_lines", skip_header_lines, minimum=0)
        self.encoding = _check_encoding(encoding)

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
