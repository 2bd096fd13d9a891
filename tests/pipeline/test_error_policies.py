"""Error policies: on_error="skip" within max_errors, retries with backoff; no silent drop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


def bad_on(*bad: int) -> Any:
    def check(x: int) -> int:
        if x in bad:
            raise ValueError(f"bad {x}")
        return x

    return check


async def run_all(pipe: ap.Pipeline[Any]) -> tuple[list[Any], ap.Run[Any]]:
    out: list[Any] = []
    with anyio.fail_after(20):
        async with pipe.open() as run:
            async for x in run:
                out.append(x)
    return out, run


@pytest.mark.parametrize("workers", [1, 3])
async def test_map_skip_counts_and_keeps_every_skipped_element(workers: int) -> None:
    pipe = ap.from_iterable(range(1000)).map(
        bad_on(3, 500, 999), workers=workers, on_error="skip", name="check"
    )
    out, run = await run_all(pipe)
    assert out == [x for x in range(1000) if x not in (3, 500, 999)]
    assert run.stats().by_name("check").skipped == 3
    errors = run.errors()
    assert [(e.stage, e.element) for e in errors] == [("check", 3), ("check", 500), ("check", 999)]
    assert [str(e.exception) for e in errors] == ["bad 3", "bad 500", "bad 999"]
    assert "skipped" in str(run.stats()).splitlines()[0]


async def test_map_skip_with_an_async_fn() -> None:
    async def check(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return bad_on(1, 2)(x)  # type: ignore[no-any-return]

    out, run = await run_all(ap.from_iterable(range(6)).map(check, on_error="skip"))
    assert out == [0, 3, 4, 5]
    assert len(run.errors()) == 2


async def test_past_max_errors_the_error_is_raised_with_a_note() -> None:
    pipe = ap.from_iterable(range(100)).map(bad_on(1, 2, 3), on_error="skip", max_errors=2)
    with anyio.fail_after(10), pytest.raises(ValueError, match="bad 3") as info:
        await pipe.collect()
    assert "max_errors=2 ran out" in info.value.__notes__[-1]
    assert "aiopipe: raised in stage 'map(check)' on element 3" in info.value.__notes__


async def test_max_errors_as_a_fraction_of_the_elements_seen() -> None:
    bad = set(range(0, 1000, 20))  # 5 %
    out, _ = await run_all(
        ap.from_iterable(range(1000)).map(bad_on(*bad), on_error="skip", max_errors=0.1)
    )
    assert len(out) == 950
    with anyio.fail_after(10), pytest.raises(ValueError, match="ran out"):
        await (
            ap.from_iterable(range(1000))
            .map(bad_on(*bad), on_error="skip", max_errors=0.01)
            .collect()
        )


async def test_retries_recover_a_transient_error_with_backoff() -> None:
    failures = {7: 2}  # element 7 fails twice, then works

    def flaky(x: int) -> int:
        if failures.get(x, 0):
            failures[x] -= 1
            raise ConnectionResetError(f"flaky {x}")
        return x

    out, run = await run_all(ap.from_iterable(range(20)).map(flaky, retries=3))
    assert out == list(range(20))
    assert run.errors() == []


async def test_retries_run_out_and_other_types_are_not_retried() -> None:
    calls = 0

    def always(x: int) -> int:
        nonlocal calls
        calls += 1
        raise TimeoutError("never")

    with anyio.fail_after(10), pytest.raises(TimeoutError):
        await ap.from_iterable([1]).map(always, retries=2).collect()
    assert calls == 3

    calls = 0
    with anyio.fail_after(10), pytest.raises(TimeoutError):
        await ap.from_iterable([1]).map(always, retries=2, retry_on=KeyError).collect()
    assert calls == 1


async def test_retry_then_skip() -> None:
    out, run = await run_all(
        ap.from_iterable(range(5)).map(bad_on(2), retries=1, retry_on=ValueError, on_error="skip")
    )
    assert out == [0, 1, 3, 4]
    assert [e.element for e in run.errors()] == [2]


async def test_filter_skip() -> None:
    def pred(x: int) -> bool:
        return bad_on(4)(x) % 2 == 0

    out, run = await run_all(ap.from_iterable(range(10)).filter(pred, on_error="skip"))
    assert out == [0, 2, 6, 8]
    assert [e.element for e in run.errors()] == [4]


async def test_flat_map_skip_keeps_what_the_element_yielded_before_failing() -> None:
    def expand(x: int) -> Iterator[int]:
        yield x * 10
        if x == 1:
            raise ValueError("half way")
        yield x * 10 + 1

    out, run = await run_all(ap.from_iterable(range(3)).flat_map(expand, on_error="skip"))
    assert out == [0, 1, 10, 20, 21]
    assert run.stats().by_name("flat_map(expand)").skipped == 1


def write_tfrecords(path: Path, n: int) -> list[bytes]:
    records = [f"{path.name}-{i}".encode() for i in range(n)]
    ap.tfrecord.write(path, records)
    return records


@pytest.mark.parametrize("parallel", [1, 3])
async def test_read_skip_passes_over_the_rest_of_a_corrupt_file(
    tmp_path: Path, parallel: int
) -> None:
    good = [write_tfrecords(tmp_path / f"good{i}.tfrecord", 50) for i in range(3)]
    bad_path = tmp_path / "bad.tfrecord"
    bad = write_tfrecords(bad_path, 50)
    raw = bytearray(bad_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte in the middle: a CRC mismatch
    bad_path.write_bytes(bytes(raw))
    paths = [*(tmp_path / f"good{i}.tfrecord" for i in range(3)), bad_path]
    out, run = await run_all(
        ap.from_files(paths).read(ap.readers.TFRecords(), parallel=parallel, on_error="skip")
    )
    assert sorted(r for r in out if not r.startswith(b"bad")) == sorted(r for g in good for r in g)
    delivered_bad = [r for r in out if r.startswith(b"bad")]
    assert delivered_bad == bad[: len(delivered_bad)]  # a prefix, in order
    assert 10 < len(delivered_bad) < 50
    [err] = run.errors()
    assert isinstance(err.exception, ap.CorruptRecordError)
    assert err.origin is not None
    assert str(bad_path) in err.origin
    assert any("skipped the rest of" in n for n in err.exception.__notes__)


async def test_read_skip_of_an_undecodable_text_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a1\na2\n")
    (tmp_path / "b.txt").write_bytes(b"b1\n\xff\xfe\nb3\n")
    out, run = await run_all(
        ap.from_files(str(tmp_path / "*.txt")).read(ap.readers.TextLines(), on_error="skip")
    )
    assert out == ["a1", "a2", "b1", "b3"]  # text resynchronises: one bad line is skipped
    [err] = run.errors()
    assert isinstance(err.exception, ap.CorruptRecordError)
    assert err.origin == f"line 2 of {tmp_path / 'b.txt'}"


class FlakyLines(ap.BlockingReader):
    """Lines of a file; the first read of each file fails after ``fail_after`` lines."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.failed: set[str] = set()
        self.lock = threading.Lock()

    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        with open(path) as f:
            for i, line in enumerate(f):
                with self.lock:
                    first = path not in self.failed
                    if first and i == self.fail_after:
                        self.failed.add(path)
                        raise ConnectionResetError(f"{path}: connection reset")
                yield line.rstrip("\n")


@pytest.mark.parametrize("parallel", [1, 2])
async def test_a_retried_file_delivers_each_record_exactly_once(
    tmp_path: Path, parallel: int
) -> None:
    for f in range(3):
        (tmp_path / f"f{f}.txt").write_text("".join(f"{f}-{i}\n" for i in range(2000)))
    reader = FlakyLines(fail_after=1500)
    out, run = await run_all(
        ap.from_files(str(tmp_path / "*.txt")).read(reader, parallel=parallel, retries=2)
    )
    assert sorted(out) == sorted(f"{f}-{i}" for f in range(3) for i in range(2000))
    assert len(reader.failed) == 3
    assert run.errors() == []


async def test_an_async_reader_is_retried_from_where_it_failed(tmp_path: Path) -> None:
    attempts: dict[str, int] = {}

    async def reader(path: str) -> Any:
        attempts[path] = attempts.get(path, 0) + 1
        for i in range(10):
            if i == 5 and attempts[path] == 1:
                raise OSError("transient")
            yield (path, i)

    out, _ = await run_all(ap.from_iterable(["p", "q"]).read(reader, retries=1))
    assert out == [(p, i) for p in "pq" for i in range(10)]


def test_policy_arguments_are_checked_when_the_pipeline_is_built() -> None:
    p = ap.from_iterable(range(3))
    with pytest.raises(ValueError, match=r"on_error=\) must be 'raise' or 'skip', got 'ignore'"):
        p.map(abs, on_error="ignore")
    with pytest.raises(ValueError, match=r"max_errors=\) needs on_error='skip'"):
        p.filter(bool, max_errors=3)
    with pytest.raises(ValueError, match=r"max_errors=\) must be a count"):
        p.map(abs, on_error="skip", max_errors=1.5)
    with pytest.raises(ValueError, match=r"retries=\) must be a non-negative int"):
        p.flat_map(list, retries=-1)
    with pytest.raises(ValueError, match=r"retry_on=\) must be an exception class"):
        p.read(ap.readers.TextLines(), retries=1, retry_on="OSError")  # type: ignore[arg-type]


async def test_base_exceptions_are_never_skipped() -> None:
    def fn(x: int) -> int:
        if x == 2:
            raise KeyboardInterrupt
        return x

    with anyio.fail_after(10), pytest.raises(KeyboardInterrupt):
        await ap.from_iterable(range(5)).map(fn, on_error="skip").collect()
