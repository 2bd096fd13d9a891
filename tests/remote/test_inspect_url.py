"""``aiopipe inspect`` on URLs, through the real CLI process against the ObjectServer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiopipe.testing import ObjectServer
from aiopipe.tfrecord._writing import write


def test_inspect_reads_urls(server: ObjectServer, tmp_path: Path) -> None:
    path = tmp_path / "x.tfrecord"
    write(path, [b"abc", b"defg"], compression="GZIP")
    server.objects["/d/x.tfrecord.gz"] = path.read_bytes()
    server.objects["/d/t.txt"] = b"one\ntwo\n"
    urls = [f"{server.url}/d/x.tfrecord.gz", f"{server.url}/d/t.txt", f"{server.url}/d/none"]
    proc = subprocess.run(
        [sys.executable, "-m", "aiopipe", "inspect", *urls], capture_output=True, text=True
    )
    assert f"{urls[0]}: TFRecord (GZIP), 2 records" in proc.stdout
    assert f"{urls[1]}: text, 2 records" in proc.stdout
    assert f"{urls[2]}: no such object (HTTP 404)" in proc.stderr
    assert proc.returncode == 1
