"""``.read()``: parallel interleaved reading of real files, keys, errors, custom readers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


def write_text_files(root: Path, files: int, lines: int) -> list[Path]:
    paths = []
    for f in range(files):
        p = root / f"part-{f:03d}.csv"
        p.write_text("a,b\n" + "".join(f"{f},{i}\n" for i in range(lines)))
        paths.append(p)
    return paths


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(20):
        return await pipe.collect()


@pytest.mark.parametrize("parallel", [1, 3, 8])
async def test_parallel_read_interleaves_but_keeps_each_file_in_order(
    tmp_path: Path, parallel: int
) -> None:
    write_text_files(tmp_path, files=6, lines=3000)
    pipe = ap.from_files(str(tmp_path / "*.csv")).read(
        ap.readers.TextLines(skip_header_lines=1), parallel=parallel
    )
    rows = [tuple(map(int, line.split(","))) for line in await collect(pipe)]
    assert len(rows) == 6 * 3000
    for f in range(6):
        assert [i for g, i in rows if g == f] == list(range(3000))


async def test_read_default_name_and_keys(tmp_path: Path) -> None:
    (p,) = write_text_files(tmp_path, files=1, lines=2)
    pipe = ap.from_files(p).read(ap.readers.TextLines(), keys=True)
    assert pipe.stage_names == ["from_files", "read(TextLines)"]
    assert await collect(pipe) == [(f"{p}:1", "a,b"), (f"{p}:2", "0,0"), (f"{p}:3", "0,1")]


async def test_many_small_files_through_decode_raw_and_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(500, 4, 4, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        (tmp_path / f"{i:05d}.raw").write_bytes(img.tobytes())
    decode = ap.decode.raw(np.uint8, shape=(4, 4, 3))
    pipe = (
        ap.from_files(str(tmp_path / "*.raw"))
        .read(ap.readers.WholeFile(), parallel=2)
        .map(decode)
        .batch(64)
    )
    batches = await collect(pipe)
    got = np.concatenate(batches)
    assert got.shape == images.shape
    # parallel lanes may interleave files; the multiset of images is exactly the input
    assert sorted(x.tobytes() for x in got) == sorted(x.tobytes() for x in images)


async def test_read_error_names_the_file_and_element(tmp_path: Path) -> None:
    good = tmp_path / "a.tfrecord"
    ap.tfrecord.write(good, [b"x" * 10] * 5)
    bad = tmp_path / "b.tfrecord"
    data = bytearray(good.read_bytes())
    data[-1] ^= 0xFF  # break the last record's data CRC
    bad.write_bytes(bytes(data))
    pipe = ap.from_files([good, bad]).read(ap.readers.TFRecords())
    got: list[bytes] = []
    with anyio.fail_after(10), pytest.raises(ap.CorruptRecordError) as info:
        async with pipe.open() as run:
            async for record in run:
                got.append(record)
    assert info.value.path == str(bad)
    note = info.value.__notes__[0]
    assert note.startswith("aiopipe: raised in stage 'read(TFRecords)' on element 1")
    assert str(bad) in note
    assert len(got) == 9  # every good record, including the 4 before the corrupt one


async def test_missing_file_is_file_not_found_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "gone.txt"
    p.write_text("x\n")
    pipe = ap.from_files(p).read(ap.readers.TextLines())
    p.unlink()  # matched at build time, gone at run time
    with anyio.fail_after(5), pytest.raises(FileNotFoundError, match=r"gone\.txt"):
        await pipe.collect()


async def test_custom_async_reader(tmp_path: Path) -> None:
    async def numbers(path: str) -> AsyncIterator[int]:
        count = int(Path(path).read_text())  # noqa: ASYNC240 - a tiny test file
        for i in range(count):
            await anyio.lowlevel.checkpoint()
            yield i

    for n in (3, 5):
        (tmp_path / f"{n}.n").write_text(str(n))
    pipe = ap.from_files(str(tmp_path / "*.n")).read(numbers, keys=True)
    assert pipe.stage_names[-1] == "read(numbers)"
    out = await collect(pipe)
    assert out[:3] == [
        (str(tmp_path / "3.n") + ":0", 0),
        (str(tmp_path / "3.n") + ":1", 1),
        (str(tmp_path / "3.n") + ":2", 2),
    ]
    assert [r for _, r in out[3:]] == [0, 1, 2, 3, 4]


async def test_custom_reader_error_names_record(tmp_path: Path) -> None:
    async def flaky(path: str) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise OSError("disk went away")

    (tmp_path / "f").write_text("")
    with anyio.fail_after(5), pytest.raises(OSError, match="disk went away") as info:
        await ap.from_files(tmp_path / "f").read(flaky).collect()
    assert info.value.__notes__[0].endswith(f"on element 0 (record 2 of {tmp_path / 'f'})")


async def test_stalled_file_does_not_stall_the_others(tmp_path: Path) -> None:
    release = anyio.Event()
    for name in ("slow", "fast1", "fast2"):
        (tmp_path / name).write_text(name)

    async def reader(path: str) -> AsyncIterator[str]:
        if path.endswith("slow"):
            await release.wait()
        yield Path(path).name

    pipe = ap.from_files([tmp_path / "slow", tmp_path / "fast1", tmp_path / "fast2"]).read(
        reader, parallel=2
    )
    with anyio.fail_after(5):
        async with pipe.open() as run:
            first = [await run.receive(), await run.receive()]
            release.set()
            rest = [x async for x in run]
    assert first == ["fast1", "fast2"]
    assert rest == ["slow"]


@pytest.mark.parametrize("parallel", [1, 2])
async def test_decode_error_downstream_names_file_and_line(tmp_path: Path, parallel: int) -> None:
    for f in range(3):
        bad = "1,2,3\n" if f == 1 else ""
        body = "x,y\n" + "".join(f"{i},{i}\n" for i in range(500)) + bad
        (tmp_path / f"p{f}.csv").write_text(body)
    pipe = (
        ap.from_files(str(tmp_path / "*.csv"))
        .read(ap.readers.TextLines(skip_header_lines=1), parallel=parallel)
        .map(ap.decode.csv([0, 0]))
        .prefetch(8)
        .batch(10)
    )
    with anyio.fail_after(10), pytest.raises(ap.DecodeError, match="expected 2 fields") as info:
        await pipe.collect()
    assert info.value.__notes__[-1].endswith(f"came from line 502 of {tmp_path / 'p1.csv'}")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
async def test_threaded_read_stalled_file_does_not_stall_the_other_lanes(tmp_path: Path) -> None:
    """A named pipe with no writer stalls its lane in ``open``, inside a worker thread.

    Hundreds of page-cache files first put the read stage in its one-hop-at-a-time mode; the
    other lane must still notice the stuck hop and read every file that is not behind the pipe.
    """
    fast = [tmp_path / f"f{i:04d}" for i in range(1300)]
    for i, p in enumerate(fast):
        p.write_bytes(i.to_bytes(2, "little"))
    fifo = tmp_path / "stalled"
    os.mkfifo(fifo)
    pipe = ap.from_files([*fast[:300], fifo, *fast[300:]]).read(ap.readers.WholeFile(), parallel=2)

    def feed_fifo() -> None:
        with open(fifo, "wb") as f:
            f.write(b"from the pipe")

    with anyio.fail_after(20):
        async with pipe.open() as run:
            got = [await run.receive() for _ in range(300 + 700)]
            assert b"from the pipe" not in got  # still stalled: the others went past it
            await anyio.to_thread.run_sync(feed_fifo)
            got += [x async for x in run]
    expected = [i.to_bytes(2, "little") for i in range(1300)] + [b"from the pipe"]
    assert sorted(got) == sorted(expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
async def test_leaving_a_run_does_not_wait_for_a_read_stuck_on_storage(tmp_path: Path) -> None:
    """A read that never returns (a pipe with no writer) cannot hang the shutdown."""
    (tmp_path / "a").write_bytes(b"a")
    fifo = tmp_path / "stalled"
    os.mkfifo(fifo)
    pipe = ap.from_files([tmp_path / "a", fifo]).read(ap.readers.WholeFile())
    try:
        with anyio.fail_after(10):
            async with pipe.open() as run:
                assert await run.receive() == b"a"
                # The lane is now blocked opening the pipe; leave with it in flight.
    finally:
        release_reader(fifo)


def release_reader(fifo: Path) -> None:
    """Open the pipe for writing if a reader waits on it, letting an abandoned thread finish."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody is reading it
        return
    os.close(fd)
