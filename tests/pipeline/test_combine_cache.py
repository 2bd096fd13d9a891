"""``pipe.cache(path=None)``: the first complete pass is kept and replayed, never half of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


class Counted:
    """A map function that counts its calls, so a test sees whether upstream ran again."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, x: int) -> int:
        self.calls += 1
        if x == self.fail_at:
            raise ArithmeticError(f"bad {x}")
        return x * 3


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


EXPECTED = [x * 3 for x in range(600)]


def listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


async def test_memory_cache_computes_once() -> None:
    fn = Counted()
    cached = ap.from_iterable(range(600)).map(fn).cache()
    assert await collect(cached) == EXPECTED
    assert await collect(cached) == EXPECTED
    assert await collect(cached.repeat(3)) == EXPECTED * 3
    assert fn.calls == 600
    assert len(cached) == 600


async def test_memory_cache_is_not_changed_by_a_consumer() -> None:
    cached = ap.from_iterable(range(10)).cache()
    assert await collect(cached) == list(range(10))
    with anyio.fail_after(10):
        async with cached.open() as run:
            chunk = await run.receive_chunk()
            chunk.clear()
    assert await collect(cached) == list(range(10))


async def test_memory_cache_under_repeat_fills_on_the_first_pass() -> None:
    fn = Counted()
    assert await collect(ap.from_iterable(range(600)).map(fn).cache().repeat(4)) == EXPECTED * 4
    assert fn.calls == 600


async def test_partial_pass_keeps_nothing() -> None:
    fn = Counted()
    cached = ap.from_iterable(range(600)).map(fn).cache()
    assert await collect(cached.take(5)) == EXPECTED[:5]
    assert await collect(cached) == EXPECTED  # computed again, in full
    calls = fn.calls
    assert await collect(cached) == EXPECTED
    assert fn.calls == calls


async def test_file_cache_survives_the_pipeline_object(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    fn = Counted()
    assert await collect(ap.from_iterable(range(600)).map(fn).cache(path)) == EXPECTED
    assert fn.calls == 600
    assert listing(tmp_path) == [path]
    again = Counted()
    assert await collect(ap.from_iterable(range(600)).map(again).cache(path)) == EXPECTED
    assert again.calls == 0


async def test_file_cache_partial_or_failed_pass_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    cached = ap.from_iterable(range(600)).map(Counted()).cache(path)
    assert await collect(cached.take(3)) == EXPECTED[:3]
    assert listing(tmp_path) == []
    failing = ap.from_iterable(range(600)).map(Counted(fail_at=400)).cache(path)
    with anyio.fail_after(10), pytest.raises(ArithmeticError) as info:
        await failing.collect()
    assert any("on element 400" in n for n in info.value.__notes__)
    assert listing(tmp_path) == []


async def test_damaged_cache_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    await collect(ap.from_iterable(range(600)).cache(path))
    path.write_bytes(path.read_bytes()[:-20])
    with anyio.fail_after(10), pytest.raises(ValueError, match=r"damaged.*remove it to rebuild"):
        await ap.from_iterable(range(600)).cache(path).collect()
    path.write_bytes(b"something else")
    with anyio.fail_after(10), pytest.raises(ValueError, match=r"not an aiopipe cache file"):
        await ap.from_iterable(range(600)).cache(path).collect()


async def test_cached_run_resumes_exactly(tmp_path: Path) -> None:
    pipe = ap.from_iterable(range(100)).shuffle(100).cache(tmp_path / "c").batch(7)
    with anyio.fail_after(10):
        async with pipe.open() as run:
            [await run.receive() for _ in range(4)]
            state = json.loads(json.dumps(run.state_dict()))
            tail = [b.tolist() async for b in run]
        async with pipe.open(state=state) as resumed:
            again = [b.tolist() async for b in resumed]
    assert again == tail


def test_cache_validates_at_build_time(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cache\(path=\) needs a file path or None, got int"):
        ap.from_iterable([1]).cache(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"no folder"):
        ap.from_iterable([1]).cache(tmp_path / "missing" / "c")
