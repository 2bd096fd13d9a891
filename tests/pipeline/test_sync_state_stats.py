"""iter_sync (plain for loops), checkpoint/resume, and the stats snapshot."""

from __future__ import annotations

import gc
import json
import threading
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap


class Boom(Exception):
    pass


def _threads() -> int:
    return threading.active_count()


# -- iter_sync -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iter_sync_yields_everything_and_joins(backend: str) -> None:
    before = _threads()
    out = list(ap.from_iterable(range(1000)).map(lambda x: x + 1).iter_sync(backend=backend))
    assert out == list(range(1, 1001))
    assert _threads() == before


def test_iter_sync_break_inside_with_stops_and_joins() -> None:
    before = _threads()
    with ap.from_iterable(range(10), epochs=None).batch(4).iter_sync() as it:
        for i, batch in enumerate(it):
            assert batch.shape == (4,)
            if i == 5:
                break
    assert _threads() == before


def test_iter_sync_stage_error_is_the_same_object() -> None:
    err = Boom("at 77")

    def fn(x: int) -> int:
        if x == 77:
            raise err
        return x

    before = _threads()
    seen: list[int] = []
    with pytest.raises(Boom) as info:
        for x in ap.from_iterable(range(100)).map(fn).iter_sync():
            seen.append(x)
    assert info.value is err
    assert "on element 77" in info.value.__notes__[0]
    assert seen == list(range(77))
    assert _threads() == before


def test_iter_sync_consumer_error_propagates_and_joins() -> None:
    before = _threads()
    mine = RuntimeError("mine")
    with pytest.raises(RuntimeError) as info, ap.from_iterable(range(10**6)).iter_sync() as it:
        for x in it:
            if x == 3:
                raise mine
    assert info.value is mine
    assert _threads() == before


def test_iter_sync_close_and_garbage_collection_join() -> None:
    before = _threads()
    it = ap.from_iterable(range(10**6)).iter_sync()
    assert next(it) == 0
    it.close()
    assert _threads() == before
    with pytest.raises(StopIteration):
        next(it)
    it2 = ap.from_iterable(range(10**6)).iter_sync()
    assert next(it2) == 0
    del it2
    gc.collect()
    assert _threads() == before


def test_iter_sync_bad_backend() -> None:
    with pytest.raises(ValueError, match="'asyncio' or 'trio'"):
        ap.from_iterable([1]).iter_sync(backend="curio")


# -- checkpoint and resume -------------------------------------------------------------------------
def _pipe() -> ap.Pipeline[Any]:
    return (
        ap.from_arrays(np.arange(300), epochs=2, shuffle=True)  # seed drawn per run
        .map(lambda x: int(x) * 10)
        .shuffle(32)
        .batch(7)
    )


@pytest.mark.anyio
@pytest.mark.parametrize("stop_after", [0, 1, 13, 85])
async def test_resume_delivers_exactly_what_would_have_followed(stop_after: int) -> None:
    with anyio.fail_after(10):
        async with _pipe().open() as run:
            head = [await run.receive() for _ in range(stop_after)]
            state = json.loads(json.dumps(run.state_dict()))  # JSON-serialisable
            tail = [b async for b in run]
        async with _pipe().open(state=state) as resumed:
            again = [b async for b in resumed]
    assert len(head) + len(tail) == -(-600 // 7)
    assert [b.tolist() for b in again] == [b.tolist() for b in tail]


def test_resume_through_iter_sync() -> None:
    pipe = ap.from_iterable(range(100)).shuffle(10, seed=3)
    with pipe.iter_sync() as it:
        head = [next(it) for _ in range(30)]
        state = it.state_dict()
        tail = list(it)
    resumed = list(_open_sync(pipe, state))
    assert resumed == tail
    assert sorted(head + tail) == list(range(100))


def _open_sync(pipe: ap.Pipeline[Any], state: dict[str, Any]) -> list[Any]:
    async def main() -> list[Any]:
        async with pipe.open(state=state) as run:
            return [x async for x in run]

    return anyio.run(main)


def test_state_from_another_pipeline_is_rejected_at_build() -> None:
    async def main() -> dict[str, Any]:
        async with ap.from_iterable(range(3)).open() as run:
            await run.receive()
            return run.state_dict()

    state = anyio.run(main)
    with pytest.raises(ValueError, match="different pipeline"):
        ap.from_iterable(range(3)).map(abs).open(state=state)
    with pytest.raises(ValueError, match=r"run\.state_dict"):
        ap.from_iterable(range(3)).open(state={"delivered": 1})


# -- stats ---------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_stats_counts_every_stage_and_the_consumer() -> None:
    with anyio.fail_after(10):
        async with ap.from_iterable(range(1000)).map(abs, name="map(abs)").batch(10).open() as run:
            total = sum([len(b) async for b in run])
            stats = run.stats()
    assert total == 1000
    assert [s.name for s in stats] == ["from_iterable", "map(abs)", "batch", "consumer"]
    assert stats.by_name("from_iterable").items_out == 1000
    assert stats.by_name("map(abs)").items_in == 1000
    assert stats.by_name("map(abs)").items_out == 1000
    assert stats.by_name("batch").items_out == 100
    assert stats.by_name("consumer").items_in == 100
    assert all(s.errors == 0 and s.buffer_used == 0 for s in stats)
    assert all(s.busy_s >= 0 and s.blocked_s >= 0 and s.starved_s >= 0 for s in stats)
    table = str(stats)
    assert "map(abs)" in table
    assert "bottleneck:" in table


@pytest.mark.anyio
async def test_stats_count_errors() -> None:
    def bad(x: int) -> int:
        raise Boom

    with anyio.fail_after(5):
        async with ap.from_iterable([1]).map(bad).open() as run:
            with pytest.raises(Boom):
                await run.receive()
            assert run.stats().by_name("map(bad)").errors == 1


@pytest.mark.anyio
async def test_idle_workers_of_a_wide_stage_are_not_busy() -> None:
    import time

    def fast(x: int) -> int:
        return x

    def slow(x: int) -> int:
        time.sleep(0.002)  # holds the event loop: the slow stage is unmistakable
        return x

    pipe = (
        ap.from_iterable(range(200))
        .map(fast, workers=8, name="pre")
        .map(slow)
        .map(fast, workers=8, name="post")
        .batch(8)
    )
    with anyio.fail_after(20):
        async with pipe.open() as run:
            async for _ in run:
                pass
            stats = run.stats()
    # post's 8 workers mostly wait for one another's receive: that is starved time, not work
    assert stats.bottleneck is not None
    assert stats.bottleneck.name == "map(slow)"
    assert stats.by_name("post").starved_s > stats.by_name("post").busy_s


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iter_sync_resumes_from_its_own_state(backend: str) -> None:
    pipe = _pipe()  # its shuffle seeds are drawn per run and recorded in the state
    with pipe.iter_sync(backend=backend) as it:
        for _ in range(5):
            next(it)
        for _ in range(5):  # round trips to the loop: the pump runs ahead meanwhile
            it.stats()
        state = json.loads(json.dumps(it.state_dict()))
        rest_here = list(it)
    assert state["delivered"] == 5  # what this iterator returned, not what the pump took
    resumed = list(pipe.iter_sync(backend=backend, state=state))
    assert len(resumed) == len(rest_here)
    for a, b in zip(resumed, rest_here, strict=True):
        np.testing.assert_array_equal(a, b)


def test_iter_sync_rejects_a_foreign_state_before_starting_a_thread() -> None:
    before = _threads()
    with pytest.raises(ValueError, match="different pipeline"):
        ap.from_iterable(range(3)).iter_sync(state=_pipe_state())
    assert _threads() == before


def _pipe_state() -> dict[str, Any]:
    with _pipe().iter_sync() as it:
        next(it)
        return it.state_dict()
