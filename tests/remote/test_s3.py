"""s3:// paths against moto's real S3 server: listings, every built-in reader, credentials."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap
from aiopipe.tfrecord._writing import write

BUCKET = "aiopipe-test"  # the bucket conftest.py creates

pytestmark = pytest.mark.anyio


def _tfrecord_bytes(tmp_path: Path, records: list[bytes], compression: str | None = None) -> bytes:
    path = tmp_path / "x.tfrecord"
    write(path, records, compression=compression)
    return path.read_bytes()


@pytest.fixture(scope="module")
def objects(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Objects uploaded through the S3 API once for the module."""
    tmp = tmp_path_factory.mktemp("s3")
    records = [f"record-{i:04d}-".encode() * (1 + i % 7) for i in range(2000)]
    plain = _tfrecord_bytes(tmp, records)
    zipped = _tfrecord_bytes(tmp, records, "GZIP")
    put = s3.put_object
    for i in range(3):
        put(Bucket=BUCKET, Key=f"train/part-{i}.tfrecord", Body=plain)
    put(Bucket=BUCKET, Key="train/part-9.tfrecord.gz", Body=zipped)
    put(Bucket=BUCKET, Key="train/sub/part-5.tfrecord", Body=plain)  # * stays in one segment
    put(Bucket=BUCKET, Key="text/a b.csv", Body=b"h1,h2\n1,2\r\n3,4\n5,6")
    put(Bucket=BUCKET, Key="fixed.bin", Body=b"HEAD" + bytes(range(100)) + b"FT")
    put(Bucket=BUCKET, Key="empty.bin", Body=b"")
    return {"records": records, "plain": plain}


async def test_glob_over_listing_reads_every_record(aws_env: str, objects: dict[str, Any]) -> None:
    pipe = ap.from_files(f"s3://{BUCKET}/train/part-*.tfrecord")
    paths = await pipe.collect()
    assert paths == [f"s3://{BUCKET}/train/part-{i}.tfrecord" for i in range(3)]
    reader = ap.readers.TFRecords(storage_options={"range_bytes": 4096, "readahead": 3})
    with anyio.fail_after(30):
        got = await pipe.read(reader, parallel=2).collect()
    assert sorted(got) == sorted(objects["records"] * 3)


async def test_gzip_keys_and_ranges_match_local_reading(
    aws_env: str, objects: dict[str, Any], tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/train/part-9.tfrecord.gz"
    reader = ap.readers.TFRecords(compression="GZIP", storage_options={"range_bytes": 1000})
    with anyio.fail_after(30):
        got = await ap.from_files([url]).read(reader, keys=True).collect()
    local = tmp_path / "l.tfrecord"
    local.write_bytes(gzip.compress(objects["plain"]))
    want = (
        await ap.from_files(str(local))
        .read(ap.readers.TFRecords(compression="GZIP"), keys=True)
        .collect()
    )
    assert [r for _, r in got] == objects["records"]
    assert [k.rpartition(":")[2] for k, _ in got] == [k.rpartition(":")[2] for k, _ in want]


async def test_text_fixed_whole_and_empty_objects(aws_env: str, objects: dict[str, Any]) -> None:
    with anyio.fail_after(30):
        lines = (
            await ap.from_files([f"s3://{BUCKET}/text/a b.csv"])
            .read(ap.readers.TextLines(skip_header_lines=1), keys=True)
            .collect()
        )
        fixed = (
            await ap.from_files([f"s3://{BUCKET}/fixed.bin"])
            .read(ap.readers.FixedLengthRecords(25, header_bytes=4, footer_bytes=2))
            .collect()
        )
        whole = (
            await ap.from_files([f"s3://{BUCKET}/fixed.bin", f"s3://{BUCKET}/empty.bin"])
            .read(ap.readers.WholeFile())
            .collect()
        )
        empty = (
            await ap.from_files([f"s3://{BUCKET}/empty.bin"]).read(ap.readers.TFRecords()).collect()
        )
    url = f"s3://{BUCKET}/text/a b.csv"
    assert lines == [(f"{url}:2", "1,2"), (f"{url}:3", "3,4"), (f"{url}:4", "5,6")]
    assert fixed == [bytes(range(i, i + 25)) for i in range(0, 100, 25)]
    assert whole == [b"HEAD" + bytes(range(100)) + b"FT", b""]
    assert empty == []


async def test_missing_object_and_missing_glob(aws_env: str, objects: dict[str, Any]) -> None:
    url = f"s3://{BUCKET}/train/nope.tfrecord"
    with anyio.fail_after(30), pytest.raises(FileNotFoundError, match=url):
        await ap.from_files([url]).read(ap.readers.TFRecords()).collect()
    with pytest.raises(FileNotFoundError, match="no object matches"):
        ap.from_files(f"s3://{BUCKET}/train/*.parquet")


async def test_wrong_bucket_is_missing(aws_env: str, objects: dict[str, Any]) -> None:
    with anyio.fail_after(30), pytest.raises(FileNotFoundError, match="s3://no-such-bucket/x"):
        await ap.from_files(["s3://no-such-bucket/x"]).read(ap.readers.WholeFile()).collect()


async def test_storage_options_override_the_environment(
    moto_url: str, objects: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    opts = {"endpoint_url": moto_url, "access_key_id": "a", "secret_access_key": "b"}
    paths = ap.from_files(f"s3://{BUCKET}/train/part-[01].tfrecord", storage_options=opts)
    reader = ap.readers.TFRecords(storage_options=opts)
    with anyio.fail_after(30):
        got = await paths.read(reader).collect()
    assert len(got) == 2 * len(objects["records"])


def test_plain_http_endpoint_needs_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopipe.remote._options import resolve_options

    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://example.invalid")
    assert not resolve_options("s3", None).allow_http
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    assert resolve_options("s3", None).allow_http
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert resolve_options("s3", None).allow_http
    assert not resolve_options("s3", {"allow_http": False}).allow_http


def test_bad_storage_options_fail_at_build_time() -> None:
    with pytest.raises(ValueError, match=r"unknown key.*'endpoint'"):
        ap.readers.TFRecords(storage_options={"endpoint": "x"})
    with pytest.raises(ValueError, match="readahead"):
        ap.readers.WholeFile(storage_options={"readahead": 0})


async def test_reader_called_on_a_url(aws_env: str, objects: dict[str, Any]) -> None:
    reader = ap.readers.TFRecords(storage_options={"range_bytes": 5000})
    with anyio.fail_after(30):
        got = [r async for r in reader(f"s3://{BUCKET}/train/part-0.tfrecord")]
    assert got == objects["records"]
