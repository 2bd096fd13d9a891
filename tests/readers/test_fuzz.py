"""Reader fuzz (issue 11): arbitrary and mutated bytes in a real file either give the records the
format defines or a clear aiopipe error; never a hang, another exception type, or silent loss."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiopipe as ap

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
backends = st.sampled_from(["asyncio", "trio"])


@contextmanager
def _file(data: bytes) -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="aiopipe-fuzz-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def read_all(reader: Any, path: str, backend: str) -> list[Any]:
    async def main() -> list[Any]:
        with anyio.fail_after(10):
            return [r async for r in reader(path)]

    return anyio.run(main, backend=backend)


def assert_clear(exc: BaseException, path: str) -> None:
    """The error names the file and, for a corrupt record, where in it."""
    if isinstance(exc, ap.CorruptRecordError):
        assert exc.path == path
        assert isinstance(exc.offset, int)
        assert exc.offset >= 0
        assert path in str(exc)
    elif isinstance(exc, UnicodeDecodeError):
        assert any(path in n for n in getattr(exc, "__notes__", ())) or path in str(exc)
    else:
        assert isinstance(exc, ap.DecodeError), f"{type(exc).__name__}: {exc}"


def outcome(reader: Any, data: bytes, backend: str) -> tuple[list[Any] | None, str]:
    """``(records, "")`` or ``(None, error text)``; any other exception fails the test."""
    with _file(data) as path:
        try:
            return read_all(reader, path, backend), ""
        except (ap.CorruptRecordError, ap.DecodeError, UnicodeDecodeError) as exc:
            assert_clear(exc, path)
            return None, str(exc)


# -- TextLines ---------------------------------------------------------------------------------


def text_model(data: bytes, skip: int, encoding: str | None) -> list[Any] | None:
    """TextLines per API.md: split on b"\\n", drop one trailing "\\r"; None when undecodable."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [line.removesuffix(b"\r") for line in lines][skip:]
    if encoding is None:
        return lines
    try:
        return [line.decode(encoding) for line in lines]
    except UnicodeDecodeError:
        return None


text_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"\xc3\xa9", b"\xff", b"1"]), max_size=60
    ).map(b"".join),
)


@FUZZ
@given(
    data=text_bytes,
    skip=st.integers(0, 3),
    encoding=st.sampled_from(["utf-8", "latin-1", None]),
    backend=backends,
)
def test_text_lines(data: bytes, skip: int, encoding: str | None, backend: str) -> None:
    got, error = outcome(
        ap.readers.TextLines(skip_header_lines=skip, encoding=encoding), data, backend
    )
    want = text_model(data, skip, encoding)
    assert got == want, error


# -- WholeFile -----------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2000), backend=backends)
def test_whole_file(data: bytes, backend: str) -> None:
    got, error = outcome(ap.readers.WholeFile(), data, backend)
    assert got == [data], error


# -- FixedLengthRecords ----------------------------------------------------------------------------


def fixed_model(data: bytes, record: int, header: int, footer: int, hop: int) -> list[bytes] | None:
    if not data:
        return []
    body = len(data) - header - footer
    if body < 0:
        return None
    if hop:
        count = (body - record) // hop + 1 if body >= record else 0
    else:
        count, left = divmod(body, record)
        if left:
            return None
    step = hop or record
    return [data[header + i * step : header + i * step + record] for i in range(count)]


@FUZZ
@given(
    data=st.binary(max_size=200),
    record=st.integers(1, 9),
    header=st.integers(0, 5),
    footer=st.integers(0, 5),
    hop=st.integers(0, 10),
    backend=backends,
)
def test_fixed_length_records(
    data: bytes, record: int, header: int, footer: int, hop: int, backend: str
) -> None:
    reader = ap.readers.FixedLengthRecords(
        record, header_bytes=header, footer_bytes=footer, hop_bytes=hop
    )
    got, error = outcome(reader, data, backend)
    assert got == fixed_model(data, record, header, footer, hop), error


# -- TFRecords --------------------------------------------------------------------------------

compressions = st.sampled_from([None, "GZIP", "ZLIB"])


def tfrecord_bytes(records: list[bytes], compression: str | None) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.tfrecord")
        ap.tfrecord.write(path, records, compression=compression)
        with open(path, "rb") as f:
            return f.read()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one byte flipped, one byte inserted or deleted, or cut short."""
    if not data:
        return draw(st.binary(min_size=1, max_size=20))
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        bit = 1 << draw(st.integers(0, 7))
        return data[:at] + bytes([data[at] ^ bit]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + 1 :]
    return data[:at]


records_st = st.lists(st.binary(max_size=40), max_size=8)


@FUZZ
@given(records=records_st, compression=compressions, verify=st.booleans(), backend=backends)
def test_tfrecords_valid_files_round_trip(
    records: list[bytes], compression: str | None, verify: bool, backend: str
) -> None:
    data = tfrecord_bytes(records, compression)
    got, error = outcome(
        ap.readers.TFRecords(compression=compression, verify=verify), data, backend
    )
    assert got == records, error


@FUZZ
@given(records=records_st, compression=compressions, data=st.data(), backend=backends)
def test_tfrecords_one_mutation_is_never_silent(
    records: list[bytes], compression: str | None, data: st.DataObject, backend: str
) -> None:
    """With verify=True a damaged file gives the same records or a clear error."""
    original = tfrecord_bytes(records, compression)
    damaged = data.draw(mutated(original))
    reader = ap.readers.TFRecords(compression=compression, verify=True)
    got, _error = outcome(reader, damaged, backend)
    if got is not None and original.startswith(damaged):
        # Cut short: the format has no end marker, so a file cut between frames (an empty file
        # included) is a valid shorter file; its records must be a prefix, unchanged.
        assert got == records[: len(got)], f"silently changed: {got!r} from {records!r}"
        return
    assert got is None or got == records, f"silently changed: {got!r} from {records!r}"


@FUZZ
@given(records=records_st, compression=compressions, data=st.data(), backend=backends)
def test_tfrecords_unverified_mutation_is_records_or_clear_error(
    records: list[bytes], compression: str | None, data: st.DataObject, backend: str
) -> None:
    """verify=False may pass changed record bytes through, but never fails another way."""
    damaged = data.draw(mutated(tfrecord_bytes(records, compression)))
    got, _ = outcome(ap.readers.TFRecords(compression=compression, verify=False), damaged, backend)
    assert got is None or all(isinstance(r, bytes) for r in got)


@FUZZ
@given(
    blob=st.binary(max_size=300), compression=compressions, verify=st.booleans(), backend=backends
)
def test_tfrecords_arbitrary_bytes(
    blob: bytes, compression: str | None, verify: bool, backend: str
) -> None:
    got, _ = outcome(ap.readers.TFRecords(compression=compression, verify=verify), blob, backend)
    if not blob:
        assert got == []


@pytest.mark.parametrize("compression", [None, "GZIP", "ZLIB"])
def test_tfrecords_every_truncation_of_a_file_errors_or_keeps_everything(
    compression: str | None,
) -> None:
    """Exhaustively: cutting a small file anywhere loses no record silently. (An uncompressed
    file cut between two frames, or an empty file, is a valid shorter file: the format has no
    end marker.)"""
    records = [b"alpha", b"", b"gamma" * 5]
    data = tfrecord_bytes(records, compression)
    frame_ends = {sum(16 + len(r) for r in records[:i]) for i in range(len(records) + 1)}
    silent = []
    for cut in range(len(data)):
        got, _ = outcome(ap.readers.TFRecords(compression=compression), data[:cut], "asyncio")
        valid_shorter = cut == 0 or (compression is None and cut in frame_ends)
        if got is not None and got != records and not valid_shorter:
            silent.append((cut, len(got)))
    assert silent == [], f"cut at (offset, records) gave fewer records and no error: {silent}"
