"""gs:// paths against gcp-storage-emulator: objects uploaded through the GCS JSON API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap
from aiopipe.tfrecord._writing import write

pytestmark = pytest.mark.anyio

BUCKET = "aiopipe-gcs"


def _call(url: str, data: bytes, content_type: str) -> Any:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


@pytest.fixture(scope="module")
def gcs_objects(gcs_url: str, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    _call(f"{gcs_url}/storage/v1/b", json.dumps({"name": BUCKET}).encode(), "application/json")
    records = [f"g-{i}".encode() * (1 + i % 3) for i in range(500)]
    path = tmp_path_factory.mktemp("g") / "x.tfrecord"
    write(path, records)
    for key in ("data/a.tfrecord", "data/b.tfrecord", "other/c.tfrecord"):
        name = urllib.parse.quote(key, safe="")
        upload = f"{gcs_url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name}"
        _call(upload, path.read_bytes(), "application/octet-stream")
    return records


async def test_gs_glob_and_ranges(
    gcs_url: str, gcs_objects: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    paths = ap.from_files(f"gs://{BUCKET}/data/*.tfrecord")
    assert await paths.collect() == [
        f"gs://{BUCKET}/data/a.tfrecord",
        f"gs://{BUCKET}/data/b.tfrecord",
    ]
    reader = ap.readers.TFRecords(storage_options={"range_bytes": 777})
    with anyio.fail_after(30):
        got = await paths.read(reader, parallel=2).collect()
    assert sorted(got) == sorted(gcs_objects * 2)


async def test_gs_missing_object(
    gcs_url: str, gcs_objects: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_url)
    url = f"gs://{BUCKET}/data/none.tfrecord"
    with anyio.fail_after(30), pytest.raises(FileNotFoundError, match=url):
        await ap.from_files([url]).read(ap.readers.TFRecords()).collect()


async def test_unsupported_credentials_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    creds = tmp_path / "sa.json"
    creds.write_text(json.dumps({"type": "service_account"}))
    reader = ap.readers.WholeFile(storage_options={"credentials": str(creds)})
    with anyio.fail_after(30), pytest.raises(PermissionError, match=r"'service_account'.*token"):
        await ap.from_files(["gs://b/k"]).read(reader).collect()
