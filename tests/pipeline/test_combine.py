"""zip, concatenate, repeat and sample_from through the public API, on asyncio and trio."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


class Boom(ValueError):
    pass


def failing_at(n: int) -> ap.Pipeline[int]:
    def fn(x: int) -> int:
        if x == n:
            raise Boom(f"bad {x}")
        return x

    return ap.from_iterable(range(n + 10)).map(fn)


async def assert_error_reaches_consumer(pipe: ap.Pipeline[Any]) -> None:
    """The nested stage's exception arrives as itself, with the note saying where it came from."""
    with anyio.fail_after(10), pytest.raises(Boom) as info:
        await pipe.collect()
    notes = getattr(info.value, "__notes__", [])
    assert any("raised in stage 'map(fn)' on element" in n for n in notes), notes


async def assert_early_exit_stops_everything(pipe: ap.Pipeline[Any], closed: list[str]) -> None:
    """Leave after one output: every nested run is stopped, no task is left behind."""
    before = len(anyio.get_running_tasks())
    with anyio.fail_after(10):
        async with pipe.open() as run:
            await run.receive()
    assert len(anyio.get_running_tasks()) == before
    assert closed, "the nested source was not closed when the run was left"


def endless(closed: list[str], tag: str) -> ap.Pipeline[str]:
    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield tag
                await anyio.lowlevel.checkpoint()
        finally:
            closed.append(tag)

    return ap.from_iterable(gen())


# -- zip -----------------------------------------------------------------------------------------
async def test_zip_tuples_end_with_the_shortest() -> None:
    a = ap.from_iterable(range(1000))
    b = ap.from_iterable(range(100, 137)).map(str)
    c = ap.from_arrays(np.arange(600) * 2)
    got = await collect(ap.zip(a, b, c))
    assert got == [(i, str(100 + i), 2 * i) for i in range(37)]
    assert await collect(ap.zip(ap.from_iterable(range(3)))) == [(0,), (1,), (2,)]
    assert await collect(ap.zip(a, ap.from_iterable([]))) == []


async def test_zip_of_batches_and_further_stages() -> None:
    pipe = ap.zip(ap.from_iterable(range(10)), ap.from_iterable(range(10, 20))).map(sum).batch(4)
    got = [b.tolist() for b in await collect(pipe)]
    assert got == [[10, 12, 14, 16], [18, 20, 22, 24], [26, 28]]


async def test_zip_error_and_early_exit() -> None:
    await assert_error_reaches_consumer(ap.zip(ap.from_iterable(range(100)), failing_at(5)))
    closed: list[str] = []
    await assert_early_exit_stops_everything(
        ap.zip(endless(closed, "a"), endless(closed, "b")), closed
    )
    assert sorted(closed) == ["a", "b"]


def test_zip_validates_at_build_time() -> None:
    with pytest.raises(ValueError, match=r"zip needs at least 1 pipeline"):
        ap.zip()
    with pytest.raises(TypeError, match=r"zip: argument 1 must be an aiopipe Pipeline, got list"):
        ap.zip(ap.from_iterable([1]), [1, 2])  # type: ignore[arg-type]


# -- concatenate ---------------------------------------------------------------------------------
async def test_concatenate_in_order() -> None:
    got = await collect(
        ap.concatenate(
            ap.from_iterable(range(3)),
            ap.from_iterable([]),
            ap.from_iterable(range(300)).map(lambda x: -x),
        )
    )
    assert got == [0, 1, 2] + [-x for x in range(300)]


async def test_concatenate_error_and_early_exit() -> None:
    await assert_error_reaches_consumer(ap.concatenate(ap.from_iterable([1, 2]), failing_at(3)))
    closed: list[str] = []
    never = ap.from_iterable(range(5)).map(lambda x: x)
    await assert_early_exit_stops_everything(ap.concatenate(endless(closed, "a"), never), closed)


def test_concatenate_validates_at_build_time() -> None:
    with pytest.raises(TypeError, match=r"concatenate: argument 0 must be an aiopipe Pipeline"):
        ap.concatenate(range(3))  # type: ignore[arg-type]


# -- repeat --------------------------------------------------------------------------------------
async def test_repeat_count_and_forever() -> None:
    pipe = ap.from_iterable(range(3)).map(lambda x: x * 10)
    assert await collect(pipe.repeat(3)) == [0, 10, 20] * 3
    assert await collect(pipe.repeat(0)) == []
    assert await collect(pipe.repeat(1)) == [0, 10, 20]
    assert await collect(pipe.repeat().take(8)) == [0, 10, 20, 0, 10, 20, 0, 10]
    assert await collect(pipe.repeat(2).repeat(2)) == [0, 10, 20] * 4


async def test_repeat_forever_of_an_empty_pipeline_ends() -> None:
    assert await collect(ap.from_iterable(range(5)).filter(lambda x: x > 9).repeat()) == []


async def test_repeat_reshuffles_each_pass_and_resumes_exactly() -> None:
    pipe = ap.from_iterable(range(50)).shuffle(50).repeat(3).batch(4)
    with anyio.fail_after(10):
        async with pipe.open() as run:
            head = [await run.receive() for _ in range(11)]
            state = json.loads(json.dumps(run.state_dict()))
            tail = [b.tolist() async for b in run]
        async with pipe.open(state=state) as resumed:
            again = [b.tolist() async for b in resumed]
    assert again == tail
    flat = [x for b in head for x in b.tolist()] + [x for b in tail for x in b]
    passes = [flat[i : i + 50] for i in range(0, 150, 50)]
    assert all(sorted(p) == list(range(50)) for p in passes)
    assert passes[0] != passes[1] or passes[1] != passes[2]  # a fresh order per pass


async def test_repeat_error_and_early_exit() -> None:
    await assert_error_reaches_consumer(failing_at(4).repeat(3))
    closed: list[str] = []
    await assert_early_exit_stops_everything(endless(closed, "a").repeat(), closed)


@pytest.mark.parametrize("count", [-1, 1.5, True, "2"])
def test_repeat_validates_count(count: Any) -> None:
    with pytest.raises(ValueError, match=r"repeat\(count\) needs a non-negative int or None"):
        ap.from_iterable([1]).repeat(count)


# -- sample_from ---------------------------------------------------------------------------------
def tagged(tag: str, n: int) -> ap.Pipeline[tuple[str, int]]:
    return ap.from_iterable(range(n)).map(lambda i: (tag, i))


async def test_sample_from_is_seeded_and_keeps_each_order() -> None:
    pipes = [tagged("a", 300), tagged("b", 300)]
    one = await collect(ap.sample_from(pipes, [0.8, 0.2], seed=7).take(200))
    two = await collect(ap.sample_from(pipes, [0.8, 0.2], seed=7).take(200))
    other = await collect(ap.sample_from(pipes, [0.8, 0.2], seed=8).take(200))
    assert one == two != other
    counts = Counter(tag for tag, _ in one)
    assert 130 <= counts["a"] <= 190, counts  # ~160 expected
    for tag in "ab":  # each pipeline's elements arrive in their own order
        seq = [i for t, i in one if t == tag]
        assert seq == list(range(len(seq)))


async def test_sample_from_exhausted_pipelines_drop_out() -> None:
    got = await collect(ap.sample_from([tagged("a", 5), tagged("b", 200)], seed=1))
    assert sorted(got) == sorted([("a", i) for i in range(5)] + [("b", i) for i in range(200)])


async def test_sample_from_stop_on_empty() -> None:
    got = await collect(
        ap.sample_from([tagged("a", 5), tagged("b", 1000)], seed=1, stop_on_empty=True)
    )
    assert sum(1 for t, _ in got if t == "a") == 5
    assert len(got) < 100  # it ended soon after "a" ran dry, not after all of "b"


async def test_sample_from_zero_weight_never_chosen() -> None:
    got = await collect(ap.sample_from([tagged("a", 50), tagged("b", 50)], [1, 0], seed=3))
    assert got == [("a", i) for i in range(50)]


async def test_sample_from_unseeded_resumes_exactly() -> None:
    pipe = ap.sample_from([tagged("a", 100), tagged("b", 100).shuffle(20)]).batch(3)
    with anyio.fail_after(10):
        async with pipe.open() as run:
            [await run.receive() for _ in range(20)]
            state = json.loads(json.dumps(run.state_dict()))
            tail = [list(map(list, b)) async for b in run]
        async with pipe.open(state=state) as resumed:
            again = [list(map(list, b)) async for b in resumed]
    assert again == tail
    assert len(tail) == -(-200 // 3) - 20


async def test_sample_from_error_and_early_exit() -> None:
    await assert_error_reaches_consumer(ap.sample_from([failing_at(3)], seed=0))
    closed: list[str] = []
    await assert_early_exit_stops_everything(
        ap.sample_from([endless(closed, "a"), endless(closed, "b")], seed=0), closed
    )


def test_sample_from_validates_at_build_time() -> None:
    a = tagged("a", 1)
    with pytest.raises(ValueError, match=r"sample_from got 2 pipelines but 3 weights"):
        ap.sample_from([a, a], [1, 1, 1])
    with pytest.raises(ValueError, match=r"weights\[1\] must be finite and >= 0, got -1.0"):
        ap.sample_from([a, a], [1, -1])
    with pytest.raises(ValueError, match=r"at least one weight > 0"):
        ap.sample_from([a, a], [0, 0])
    with pytest.raises(TypeError, match=r"needs a list of pipelines"):
        ap.sample_from(a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed must be a non-negative int"):
        ap.sample_from([a], seed=-3)
