"""Every reader gives the same records and keys from a URL, cut in tiny ranges, as from a file."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap
from aiopipe.testing import ObjectServer
from aiopipe.tfrecord._writing import write

pytestmark = pytest.mark.anyio

TEXT = (
    b"header\r\nalpha\r\n\r\nbeta\ngamma\r\n" + "d\u00e9j\u00e0 vu\n".encode() + b"last, no newline"
)


def _readers(o: dict[str, Any] | None = None) -> dict[str, Any]:
    r = ap.readers
    return {
        "lines": r.TextLines(skip_header_lines=1, storage_options=o),
        "lines-bytes": r.TextLines(encoding=None, storage_options=o),
        "fixed": r.FixedLengthRecords(5, header_bytes=2, footer_bytes=3, storage_options=o),
        "fixed-hop": r.FixedLengthRecords(6, header_bytes=1, hop_bytes=4, storage_options=o),
        "whole": r.WholeFile(storage_options=o),
        "tfrecord": r.TFRecords(storage_options=o),
        "tfrecord-gzip": r.TFRecords(compression="GZIP", storage_options=o),
    }


def _payload(kind: str, tmp: Path) -> bytes:
    if kind.startswith("lines") or kind == "whole":
        return TEXT
    if kind == "fixed":
        return b"HH" + bytes(range(40)) + b"FFF"
    if kind == "fixed-hop":
        return bytes(range(37))
    path = tmp / "r.tfrecord"
    write(path, [bytes([i]) * (i * 3) for i in range(30)])
    data = path.read_bytes()
    return gzip.compress(data) if kind == "tfrecord-gzip" else data


@pytest.mark.parametrize("kind", list(_readers()))
@pytest.mark.parametrize("step", [1, 3, 64])
async def test_same_as_local(server: ObjectServer, tmp_path: Path, kind: str, step: int) -> None:
    data = _payload(kind, tmp_path)
    local = tmp_path / "x.bin"
    local.write_bytes(data)
    server.objects["/x.bin"] = data
    reader = _readers({"range_bytes": step, "readahead": 3})[kind]
    url = f"{server.url}/x.bin"
    with anyio.fail_after(30):
        want = await ap.from_files(str(local)).read(reader, keys=True).collect()
        got = await ap.from_files([url]).read(reader, keys=True).collect()
    assert [r for _, r in got] == [r for _, r in want]
    assert [k.replace(url, "P") for k, _ in got] == [k.replace(str(local), "P") for k, _ in want]
