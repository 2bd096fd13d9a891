"""The ``aiopipe`` command, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import aiopipe as ap

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def aiopipe(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopipe", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "data.tfrecord"
    ap.tfrecord.write(path, [b"first", b"second record", b"x" * 500])
    return path


@pytest.mark.parametrize("command", [[], ["inspect"], ["report"]])
def test_help(command: list[str]) -> None:
    proc = aiopipe(*command, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: aiopipe")
    if not command:
        for sub in ("demo", "bench", "inspect", "report"):
            assert sub in proc.stdout


def test_inspect_a_tfrecord_file(records: Path) -> None:
    proc = aiopipe("inspect", records)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f"{records}: TFRecord (uncompressed), 3 records, "
        "sizes min 5 / mean 172.7 / max 500 bytes, CRC ok (6 checksums)"
    )
    assert lines[1] == "  [0] 'first'"
    assert lines[2] == "  [1] 'second record'"
    assert lines[3].startswith("  [2] 'xxxx")
    assert lines[3].endswith("... (500 bytes)")
    assert proc.stderr == ""


def test_inspect_a_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "data.tfrecord.gz"
    ap.tfrecord.write(path, [b"a", b"bc"], compression="GZIP")
    proc = aiopipe("inspect", "-n", "0", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{path}: TFRecord (GZIP), 2 records")


def test_inspect_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    proc = aiopipe("inspect", path, "--show", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{path}: text, 3 records, sizes min 3 / mean 3.0 / max 3 bytes, "
        "no checksums in text files",
        "  [0] 'a,b'",
    ]


def test_inspect_a_corrupt_file_is_one_line_and_fails(records: Path) -> None:
    data = bytearray(records.read_bytes())
    second = 12 + 5 + 4  # the first record: 12 bytes of header, 5 of data, 4 of CRC
    data[second + 12] ^= 0xFF  # the second record's first data byte
    records.write_bytes(bytes(data))
    proc = aiopipe("inspect", records)
    assert_one_line_error(proc, str(records), f"corrupt record at offset {second}")


def test_inspect_a_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(aiopipe("inspect", tmp_path / "nope.tfrecord"), "nope.tfrecord")


def test_bad_arguments_are_one_line() -> None:
    proc = aiopipe("inspect", "--show", "-2", "x")
    assert proc.returncode == 2
    assert_one_line_error(proc, "--show")
    assert_one_line_error(aiopipe("frobnicate"), "invalid choice")


def test_report_renders_a_png_from_a_real_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"

    async def main() -> None:
        async def slowish(x: int) -> int:
            await anyio.sleep(0.001)
            return x

        async with ap.from_iterable(range(100)).map(slowish).batch(5).open(trace=trace) as run:
            async for _ in run:
                pass

    anyio.run(main)
    out = tmp_path / "stages.png"
    proc = aiopipe("report", trace, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert out.stat().st_size > 10_000


def test_report_rejects_what_is_not_a_trace(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text("{not json")
    assert_one_line_error(aiopipe("report", bogus), "not a trace-event JSON file")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"traceEvents": []}))
    assert_one_line_error(aiopipe("report", empty), "no aiopipe stage tracks")


def test_an_installed_copy_does_not_offer_bench(tmp_path: Path) -> None:
    """Installed without the source tree, ``bench`` is not offered rather than failing."""
    import shutil

    site = tmp_path / "site-packages"
    shutil.copytree(Path(ap.__file__).parent, site / "aiopipe")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aiopipe", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
            check=False,
        )

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr
    commands = [line.split()[0] for line in helped.stdout.splitlines() if line.startswith("    ")]
    assert "inspect" in commands
    assert "bench" not in commands
    for args in (["bench"], ["bench", "--help"]):
        proc = run(*args)
        assert proc.returncode == 2
        assert "invalid choice: 'bench'" in proc.stderr
        assert "Traceback" not in proc.stderr
    here = aiopipe("--help").stdout.splitlines()  # from the checkout it is there
    assert "bench" in [line.split()[0] for line in here if line.startswith("    ")]


def test_demo_gets_its_own_arguments() -> None:
    proc = aiopipe("demo", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: aiopipe demo")
