"""Sources and transforms through the public API, on asyncio and trio."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


# -- sources -------------------------------------------------------------------------------------
async def test_from_iterable_sync_and_async() -> None:
    async def agen() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    assert await collect(ap.from_iterable(range(1000))) == list(range(1000))
    assert await collect(ap.from_iterable(agen())) == [0, 1, 2, 3, 4]


async def test_from_iterable_epochs() -> None:
    assert await collect(ap.from_iterable([1, 2], epochs=3)) == [1, 2, 1, 2, 1, 2]
    forever = ap.from_iterable([7, 8], epochs=None).take(5)
    assert await collect(forever) == [7, 8, 7, 8, 7]


async def test_from_iterable_forever_on_empty_ends() -> None:
    assert await collect(ap.from_iterable([], epochs=None)) == []


def test_from_iterable_iterator_with_epochs_is_a_build_error() -> None:
    with pytest.raises(TypeError, match=r"re-iterable"):
        ap.from_iterable(iter([1, 2]), epochs=2)
    with pytest.raises(TypeError, match=r"re-iterable"):
        ap.from_iterable((x for x in range(3)), epochs=None)


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_bad_epochs(epochs: Any) -> None:
    with pytest.raises(ValueError, match="epochs must be a positive int or None"):
        ap.from_iterable([1], epochs=epochs)


async def test_from_arrays_rows_and_tuples() -> None:
    a = np.arange(6).reshape(3, 2)
    rows = await collect(ap.from_arrays(a))
    assert [r.tolist() for r in rows] == [[0, 1], [2, 3], [4, 5]]
    pairs = await collect(ap.from_arrays(np.arange(3), ["a", "b", "c"]))
    assert [(int(x), y) for x, y in pairs] == [(0, "a"), (1, "b"), (2, "c")]


def test_from_arrays_length_mismatch_names_both() -> None:
    with pytest.raises(ValueError, match="array 0 has 3 rows but array 1 has 4"):
        ap.from_arrays(np.arange(3), np.arange(4))


async def test_from_arrays_shuffle_each_epoch_is_a_permutation_and_seeded() -> None:
    pipe = ap.from_arrays(np.arange(50), epochs=3, shuffle=True, seed=7)
    out = [int(x) for x in await collect(pipe)]
    epochs = [out[i * 50 : (i + 1) * 50] for i in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    again = [
        int(x) for x in await collect(ap.from_arrays(np.arange(50), epochs=3, shuffle=True, seed=7))
    ]
    assert again == out
    other = [int(x) for x in await collect(ap.from_arrays(np.arange(50), shuffle=True, seed=8))]
    assert other != epochs[0]


async def test_from_files_globs_sorted_and_missing(tmp_path: Path) -> None:
    for name in ["b.txt", "a.txt", "c.csv"]:
        (tmp_path / name).write_text(name)
    paths = await collect(ap.from_files([str(tmp_path / "*.txt"), tmp_path / "c.csv"]))
    assert [os.path.basename(p) for p in paths] == ["a.txt", "b.txt", "c.csv"]
    assert all(isinstance(p, str) for p in paths)
    with pytest.raises(FileNotFoundError, match=r"no file matches .*\*\.json"):
        ap.from_files(str(tmp_path / "*.json"))
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        ap.from_files(tmp_path / "nope.txt")


# -- transforms ----------------------------------------------------------------------------------
async def test_map_sync_async_and_names() -> None:
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    assert await collect(ap.from_iterable(range(300)).map(double)) == [2 * x for x in range(300)]
    assert ap.from_iterable([1]).map(double).stage_names == ["from_iterable", "map(double)"]


@pytest.mark.parametrize("executor", [None, "thread"])
async def test_map_ordered_with_workers_keeps_order(executor: str | None) -> None:
    import time

    def slow_sync(x: int) -> int:
        time.sleep(0.0005 * (x % 3))
        return x * x

    async def slow_async(x: int) -> int:
        await anyio.sleep(0.0005 * (x % 3))
        return x * x

    fn = slow_sync if executor else slow_async
    out = await collect(ap.from_iterable(range(200)).map(fn, workers=8, executor=executor))
    assert out == [x * x for x in range(200)]


async def test_map_unordered_runs_concurrently_and_loses_nothing() -> None:
    started = 0
    all_in = anyio.Event()

    async def wait_for_all(x: int) -> int:
        # Every one of the 4 calls must be in flight at once for any of them to finish.
        nonlocal started
        started += 1
        if started == 4:
            all_in.set()
        await all_in.wait()
        return x

    out = await collect(ap.from_iterable(range(4)).map(wait_for_all, workers=4, ordered=False))
    assert sorted(out) == [0, 1, 2, 3]


def _square(x: int) -> int:
    return x * x


async def test_map_process_executor() -> None:
    out = await collect(ap.from_iterable(range(50)).map(_square, workers=2, executor="process"))
    assert out == [x * x for x in range(50)]


def test_map_process_executor_needs_picklable_fn() -> None:
    with pytest.raises(ValueError, match="picklable"):
        ap.from_iterable([1]).map(lambda x: x, executor="process")


async def test_map_custom_executor_gets_slices() -> None:
    calls: list[int] = []

    class Recording:
        async def submit(self, fn: Any, /, *args: Any) -> Any:
            calls.append(len(args[1]))
            await anyio.lowlevel.checkpoint()
            return fn(*args)

    out = await collect(ap.from_iterable(range(100)).map(_square, workers=3, executor=Recording()))
    assert out == [x * x for x in range(100)]
    assert sum(calls) == 100


def test_map_bad_executor() -> None:
    with pytest.raises(
        ValueError, match=r"executor=\) must be None, 'inline', 'thread', 'process'"
    ):
        ap.from_iterable([1]).map(abs, executor="gpu")

    async def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="is async"):
        ap.from_iterable([1]).map(f, executor="thread")


async def test_filter_and_flat_map() -> None:
    async def is_even(x: int) -> bool:
        return x % 2 == 0

    async def agen(x: int) -> AsyncIterator[int]:
        for i in range(x):
            yield i

    assert await collect(ap.from_iterable(range(10)).filter(is_even)) == [0, 2, 4, 6, 8]
    assert await collect(ap.from_iterable(range(10)).filter(lambda x: x > 6)) == [7, 8, 9]
    assert await collect(ap.from_iterable([1, 2, 3]).flat_map(range)) == [0, 0, 1, 0, 1, 2]
    assert await collect(ap.from_iterable([2, 3]).flat_map(agen)) == [0, 1, 0, 1, 2]
    big = await collect(ap.from_iterable([5000]).flat_map(range))
    assert big == list(range(5000))


async def test_flat_map_non_iterable_result() -> None:
    with (
        anyio.fail_after(5),
        pytest.raises(TypeError, match="must return a sync or async iterable"),
    ):
        await ap.from_iterable([1]).flat_map(lambda x: x).collect()


async def test_batch_and_drop_remainder() -> None:
    out = await collect(ap.from_iterable(range(10)).batch(4))
    assert [b.tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    out = await collect(ap.from_iterable(range(10)).batch(4, drop_remainder=True))
    assert len(out) == 2
    pairs = await collect(ap.from_iterable([(i, float(i)) for i in range(3)]).batch(3))
    ((ints, floats),) = pairs
    assert ints.dtype.kind == "i"
    assert floats.dtype.kind == "f"


async def test_batch_custom_collate() -> None:
    out = await collect(ap.from_iterable(range(6)).batch(3, collate=lambda xs: sum(xs)))
    assert out == [3, 12]


async def test_take_skip_shard_prefetch() -> None:
    src = ap.from_iterable(range(20))
    assert await collect(src.take(3)) == [0, 1, 2]
    assert await collect(src.take(0)) == []
    assert await collect(src.skip(17)) == [17, 18, 19]
    assert await collect(src.skip(100)) == []
    assert await collect(src.shard(3, 1)) == list(range(1, 20, 3))
    assert await collect(src.prefetch(2)) == list(range(20))
    # Shard keeps its stride across chunk boundaries.
    assert await collect(ap.from_iterable(range(2000)).shard(7, 6)) == list(range(6, 2000, 7))


async def test_take_stops_an_infinite_upstream() -> None:
    produced = 0

    def count(x: int) -> int:
        nonlocal produced
        produced += 1
        return x

    out = await collect(ap.from_iterable([1], epochs=None).map(count).take(3))
    assert out == [1, 1, 1]
    assert produced < 10_000  # it stopped: an infinite source did not run away


async def test_then_custom_stage_with_workers() -> None:
    async def doubler(
        inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[int]
    ) -> None:
        async with inbox, outbox:
            async for x in inbox:
                await outbox.send(2 * x)

    out = await collect(ap.from_iterable(range(500)).then(doubler, workers=3))
    assert sorted(out) == [2 * x for x in range(500)]
    one = await collect(ap.from_iterable(range(500)).then(doubler))
    assert one == [2 * x for x in range(500)]


async def test_then_stage_may_stop_early() -> None:
    async def first_two(
        inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[int]
    ) -> None:
        async with inbox, outbox:
            for _ in range(2):
                await outbox.send(await inbox.receive())

    out = await collect(ap.from_iterable(range(10**6)).then(first_two))
    assert out == [0, 1]


async def test_pipeline_is_immutable_and_reopenable() -> None:
    base = ap.from_iterable(range(5))
    mapped = base.map(lambda x: x + 1)
    assert await collect(base) == [0, 1, 2, 3, 4]
    assert await collect(mapped) == [1, 2, 3, 4, 5]
    assert await collect(mapped) == [1, 2, 3, 4, 5]
    assert "map(<lambda>)" in repr(mapped)


async def test_receive_and_end_of_stream() -> None:
    with anyio.fail_after(5):
        async with ap.from_iterable([1, 2]).open() as run:
            assert await run.receive() == 1
            assert await run.receive() == 2
            with pytest.raises(anyio.EndOfStream):
                await run.receive()


# -- build-time validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.map(abs, workers=0), r"map\(workers=\) must be a positive int"),
        (lambda p: p.map(abs, buffer=0), r"map\(buffer=\) must be a positive int"),
        (lambda p: p.batch(0), r"batch\(batch_size\) must be a positive int"),
        (lambda p: p.prefetch(0), r"prefetch\(n\) must be a positive int"),
        (lambda p: p.shuffle(0), r"shuffle\(buffer_size\) must be a positive int"),
        (lambda p: p.shuffle(4, min_after_dequeue=4), r"min_after_dequeue in \[0, buffer_size=4\)"),
        (
            lambda p: p.shuffle(4, min_after_dequeue=-1),
            r"min_after_dequeue in \[0, buffer_size=4\)",
        ),
        (lambda p: p.read(ap.readers.TextLines(), parallel=0), r"read\(parallel=\) must be"),
        (lambda p: p.take(-1), r"take\(n\) needs a non-negative int, got -1"),
        (lambda p: p.skip(-2), r"skip\(n\) needs a non-negative int, got -2"),
        (lambda p: p.shard(0, 0), r"shard\(num_shards\) must be a positive int"),
        (lambda p: p.shard(3, 3), r"shard\(index\) must be an int in \[0, 3\)"),
        (lambda p: p.then(lambda i, o: None, workers=0), r"then\(workers=\) must be"),
        (lambda p: p.filter(abs, buffer=-1), r"filter\(buffer=\) must be a positive int"),
    ],
)
def test_bad_arguments_fail_at_build_time(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(ap.from_iterable([1]))


def test_not_callable_fn_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="map needs a callable"):
        ap.from_iterable([1]).map(3)  # type: ignore[call-overload]
