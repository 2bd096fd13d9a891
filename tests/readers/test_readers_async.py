"""The async face of every reader: ``async for r in reader(path)`` and ``reader.keyed(path)``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(records: Any) -> list[Any]:
    with anyio.fail_after(5):
        return [r async for r in records]


async def test_text_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"h\r\n" + b"".join(b"row %d\r\n" % i for i in range(5000)))
    reader = ap.readers.TextLines(skip_header_lines=1)
    assert await collect(reader(path)) == [f"row {i}" for i in range(5000)]
    keyed = await collect(reader.keyed(path))
    assert keyed[0] == (f"{path}:2", "row 0")
    assert keyed[-1] == (f"{path}:5001", "row 4999")


@pytest.mark.parametrize("compression", [None, "GZIP", "ZLIB"])
async def test_tfrecords(tmp_path: Path, compression: str | None) -> None:
    path = tmp_path / "r.tfrecord"
    records = [bytes([i % 256]) * (i % 700) for i in range(3000)]
    ap.tfrecord.write(path, records, compression=compression)
    reader = ap.readers.TFRecords(compression=compression)
    assert await collect(reader(str(path))) == records
    keyed = await collect(reader.keyed(path))
    offsets = [int(key.rsplit(":", 1)[1]) for key, _ in keyed]
    assert [r for _, r in keyed] == records
    assert offsets[:3] == [0, 16, 17 + 16]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps == [16 + len(r) for r in records[:-1]]
    assert keyed[5][0] == f"{path}:{offsets[5]}"


def corrupt_second_record(tmp_path: Path) -> Path:
    path = tmp_path / "bad.tfrecord"
    ap.tfrecord.write(path, [b"hello", b"world"])
    raw = bytearray(path.read_bytes())
    raw[21 + 13] ^= 1
    path.write_bytes(bytes(raw))
    return path


async def test_tfrecords_corruption_reaches_the_consumer(tmp_path: Path) -> None:
    path = corrupt_second_record(tmp_path)
    with anyio.fail_after(5), pytest.raises(ap.CorruptRecordError) as info:
        async for _ in ap.readers.TFRecords()(path):
            pass
    assert info.value.offset == 21
    assert info.value.path == str(path)


async def test_records_before_a_corrupt_one_reach_the_consumer(tmp_path: Path) -> None:
    path = corrupt_second_record(tmp_path)
    got: list[bytes] = []
    with anyio.fail_after(5):
        try:
            async for record in ap.readers.TFRecords()(path):
                got.append(record)
        except ap.CorruptRecordError:
            pass
    assert got == [b"hello"]


async def test_fixed_length_and_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"xx" + b"abcdef")
    fixed = ap.readers.FixedLengthRecords(2, header_bytes=2)
    assert await collect(fixed(path)) == [b"ab", b"cd", b"ef"]
    assert await collect(fixed.keyed(path)) == [
        (f"{path}:0", b"ab"),
        (f"{path}:1", b"cd"),
        (f"{path}:2", b"ef"),
    ]
    whole = ap.readers.WholeFile()
    assert await collect(whole(path)) == [b"xxabcdef"]
    assert await collect(whole.keyed(path)) == [(str(path), b"xxabcdef")]


async def test_missing_file_raises_in_the_async_path(tmp_path: Path) -> None:
    with anyio.fail_after(5), pytest.raises(FileNotFoundError, match=r"absent\.txt"):
        await collect(ap.readers.TextLines()(tmp_path / "absent.txt"))


async def test_breaking_out_early_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "many.tfrecord"
    ap.tfrecord.write(path, [b"r"] * 10_000)
    with anyio.fail_after(5):
        records = ap.readers.TFRecords()(path)
        async for _ in records:
            break
        await records.aclose()  # type: ignore[attr-defined]


def test_readers_are_exported() -> None:
    assert set(ap.readers.__all__) == {"FixedLengthRecords", "TFRecords", "TextLines", "WholeFile"}
    assert {"decode", "readers", "tfrecord"} <= set(ap.__all__)
    assert callable(ap.readers.TFRecords())  # reader(path) gives its records
