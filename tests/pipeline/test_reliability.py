"""Issue 11's defects, one test each (each failed before its fix), on both backends."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from anyio import wait_all_tasks_blocked
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import aiopipe as ap

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("workers", [1, 2])
async def test_two_failing_stages_end_with_the_first_error_and_the_second_as_a_note(
    workers: int,
) -> None:
    """Defect 1: the downstream failure waits (shielded) for the upstream one, then raises."""
    down_waiting, upstream_failed = anyio.Event(), anyio.Event()

    async def up(x: int) -> int:
        if x == 300:
            await down_waiting.wait()  # the downstream fn is inside its shield by now
            upstream_failed.set()
            raise KeyError(x)
        return x

    async def down(x: int) -> int:
        if x == 0:
            with anyio.CancelScope(shield=True):
                down_waiting.set()
                await upstream_failed.wait()
            raise TypeError("down")
        return x

    with anyio.fail_after(10), pytest.raises(KeyError) as info:
        await ap.from_iterable(range(1000)).map(up).map(down, workers=workers).collect()
    notes = info.value.__notes__
    assert notes[0] == "aiopipe: raised in stage 'map(up)' on element 300"
    assert any(n.startswith("aiopipe: also raised: TypeError: down") for n in notes), notes


async def test_leaving_open_waits_for_the_sync_call_in_a_thread() -> None:
    """Defect 2: exit waits for the call in progress, and no thread of the run is left."""
    before = set(threading.enumerate())
    token = anyio.lowlevel.current_token()
    started, release = anyio.Event(), threading.Event()
    finished: list[int] = []

    def blocking(x: int) -> int:
        if x == 1:
            anyio.from_thread.run_sync(started.set, token=token)
            release.wait(5)
            finished.append(x)
        return x

    with anyio.fail_after(10):
        async with ap.from_iterable(range(100)).map(blocking, executor="thread").open() as run:
            async for x in run:
                if x == 0:
                    await started.wait()
                    threading.Timer(0.05, release.set).start()
                    break
    assert finished == [1]  # the call had finished when exit returned
    # Not counted: the test's own Timer, and the I/O thread of trio's guest mode, in which
    # anyio's pytest plugin runs trio tests.
    ours = [t for t in threading.enumerate() if not t.name.startswith(("Thread", "Trio thread"))]
    assert [t for t in ours if t not in before] == []


@pytest.mark.parametrize("workers", [1, 2])
async def test_stop_iteration_from_a_sync_fn_is_an_error_not_an_end(workers: int) -> None:
    """Defect 3: map() swallowed it: elements vanished, or the ordered map deadlocked."""

    def fn(x: int) -> int:
        if x == 3:
            raise StopIteration
        return x

    with anyio.fail_after(10), pytest.raises(RuntimeError, match="raised StopIteration") as info:
        await ap.from_iterable(range(100_000)).map(fn, workers=workers).collect()
    assert "aiopipe: raised in stage 'map(fn)' on element 3" in info.value.__notes__


async def test_stop_async_iteration_from_an_async_fn_is_an_error() -> None:
    """Defect 4: it ended the consumer's ``async for`` quietly."""

    async def fn(x: int) -> int:
        if x == 3:
            raise StopAsyncIteration
        return x

    got: list[int] = []
    with anyio.fail_after(10), pytest.raises(RuntimeError, match="StopAsyncIteration") as info:
        async with ap.from_iterable(range(10)).map(fn).open() as run:
            async for x in run:
                got.append(x)
    assert got == [0, 1, 2]
    assert isinstance(info.value.__cause__, StopAsyncIteration)


async def passthrough(inbox: MemoryObjectReceiveStream[Any], outbox: MemoryObjectSendStream[Any]):
    async for x in inbox:
        await outbox.send(x)


async def test_a_custom_stage_before_take_ends_quietly() -> None:
    """Defect 5: BrokenResourceError at exit when the consumer paused before leaving."""
    for _ in range(10):
        with anyio.fail_after(10):
            async with ap.from_iterable(range(10_000)).then(passthrough).take(5).open() as run:
                got = [x async for x in run]
                await wait_all_tasks_blocked()
        assert got == [0, 1, 2, 3, 4]


def test_a_custom_stage_before_take_ends_quietly_through_iter_sync() -> None:
    for _ in range(10):
        with ap.from_iterable(range(10_000)).then(passthrough).take(5).iter_sync() as it:
            assert list(it) == [0, 1, 2, 3, 4]


async def test_a_failing_generator_is_not_an_end_of_input_for_batch() -> None:
    """Defect 6: a short batch arrived before the error; the source dropped pulled elements."""

    def source() -> Iterator[int]:
        yield from range(300)
        raise ValueError("source broke at 300")

    batches: list[Any] = []
    with anyio.fail_after(10), pytest.raises(ValueError, match="source broke") as info:
        async with ap.from_iterable(source()).batch(256).open() as run:
            async for b in run:
                batches.append(b)
    # Full batches only (the error may overtake the one in flight), never the partial one.
    assert all(len(b) == 256 for b in batches), [len(b) for b in batches]
    assert "aiopipe: raised in stage 'from_iterable' on element 300" in info.value.__notes__


@pytest.mark.parametrize("workers", [1, 3])
async def test_a_failing_map_is_not_an_end_of_input_for_batch_or_shuffle(workers: int) -> None:
    def fn(x: int) -> int:
        if x == 300:
            raise ValueError("map broke")
        return x

    for tail, full in ((lambda p: p.batch(256), 256), (lambda p: p.shuffle(10_000), None)):
        got: list[Any] = []
        with anyio.fail_after(10), pytest.raises(ValueError, match="map broke"):
            async with tail(ap.from_iterable(range(1000)).map(fn, workers=workers)).open() as run:
                async for item in run:
                    got.append(item)
        if full is None:
            assert got == []  # a shuffle that has not seen its input end emits nothing
        else:
            assert all(len(b) == full for b in got)


def test_a_read_stuck_on_storage_does_not_block_interpreter_exit(tmp_path: Path) -> None:
    """Defect 8: the abandoned thread was not a daemon, so the interpreter never exited."""
    import subprocess
    import sys

    fifo = tmp_path / "never.fifo"
    os.mkfifo(fifo)
    script = f"""
import anyio, aiopipe as ap
async def main():
    with anyio.move_on_after(0.2):
        await ap.from_files([{str(fifo)!r}]).read(ap.readers.WholeFile()).collect()
anyio.run(main)
print("left")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "left"
    assert proc.stderr == ""


async def test_buffers_after_batch_hold_elements_not_hundreds_of_batches() -> None:
    """Defect 9: each stage after batch() defaulted to 512 *batches*."""
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield i

    with anyio.fail_after(10):
        async with ap.from_iterable(source()).batch(256).map(len).prefetch(2).open() as run:
            await run.receive()
            for _ in range(5):
                await wait_all_tasks_blocked()
            ahead = pulled
    # source 512 + batch's own partial + 4 batches + map's 4 batches + prefetch 2, with slack
    assert ahead < 8_000, ahead


async def test_error_notes_name_the_true_origin_with_parallel_reads(tmp_path: Path) -> None:
    """Defect 10: lanes' sends interleave; origins were assigned before the send."""
    paths = []
    for f in range(4):
        path = tmp_path / f"f{f}.txt"
        path.write_text("".join(f"{f}:{i}\n" for i in range(3000)))
        paths.append(path)
    bad = "2:2345"

    def check(line: str) -> str:
        if line == bad:
            raise ValueError(line)
        return line

    with anyio.fail_after(20), pytest.raises(ValueError) as info:
        await (
            ap.from_files(paths)
            .read(ap.readers.TextLines(), parallel=4)
            .prefetch(64)
            .map(check)
            .collect()
        )
    origin = [n for n in info.value.__notes__ if "came from" in n]
    assert origin, info.value.__notes__
    assert origin[0].endswith(f"came from line 2346 of {paths[2]}"), origin


async def test_flat_map_closes_the_users_async_generator_when_the_run_is_left() -> None:
    """Defect 11: their ``finally`` ran only at garbage collection."""
    closed: list[int] = []

    async def expand(x: int) -> AsyncIterator[int]:
        try:
            for i in range(1000):
                yield x * 1000 + i
        finally:
            closed.append(x)

    with anyio.fail_after(10):
        async with ap.from_iterable(range(3)).flat_map(expand).open() as run:
            await run.receive()
        assert closed == [0]  # closed by the time the block is left


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_base_exceptions_from_a_stage_arrive_unwrapped(exc_type: type) -> None:
    """Defect 12: a BaseExceptionGroup on trio; escaped the event loop on asyncio."""
    err = exc_type("from the stage")

    def fn(x: int) -> int:
        if x == 3:
            raise err
        return x

    with anyio.fail_after(10), pytest.raises(exc_type) as info:
        await ap.from_iterable(range(10)).map(fn).collect()
    assert info.value is err
    assert "aiopipe: raised in stage 'map(fn)'" in info.value.__notes__


async def test_the_consumer_sees_no_internal_exception_chained_before_a_stage_error() -> None:
    """Defect 14: tracebacks began with WouldBlock -> EndOfStream -> ..."""
    err = ValueError("the user's")

    async def fn(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        raise err

    with anyio.fail_after(10), pytest.raises(ValueError) as info:
        async with ap.from_iterable(range(10)).map(fn).open() as run:
            async for _ in run:
                pass
    assert info.value is err
    chain, exc = [], info.value.__context__
    while exc is not None:
        chain.append(type(exc).__name__)
        exc = exc.__context__
    assert not {"WouldBlock", "EndOfStream", "BrokenResourceError"} & set(chain), chain


def test_ctrl_c_in_a_plain_for_loop_stops_the_pipeline_thread() -> None:
    """Defect 15: the loop's thread lived as long as the KeyboardInterrupt object."""
    import _thread

    before = {t.ident for t in threading.enumerate()}
    kept: list[BaseException] = []

    def slow(x: int) -> int:
        if x == 2:
            threading.Timer(0.05, _thread.interrupt_main).start()
            time.sleep(0.5)
        return x

    it = ap.from_iterable(range(100)).map(slow, executor="thread").iter_sync()
    try:
        for _ in it:
            pass
    except KeyboardInterrupt as exc:
        kept.append(exc)  # keeps the traceback, and so the iterator, alive
    assert kept
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == [], left


async def test_a_sync_fn_with_workers_runs_in_parallel_and_keeps_the_loop_responsive() -> None:
    """Defect 16: ``map(load, workers=4)`` ran on the event loop, one call at a time."""
    running, peak = 0, 0
    lock = threading.Lock()

    def load(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return x

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.005)
            ticks += 1

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            got = await ap.from_iterable(range(40)).map(load, workers=4).collect()
            tg.cancel_scope.cancel()
    assert got == list(range(40))
    assert peak == 4
    assert ticks > 0  # the loop ran other tasks while the calls were in flight


async def test_a_slow_sync_fn_with_one_worker_leaves_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    where: list[int] = []

    def slow(x: int) -> int:
        where.append(threading.get_ident())
        time.sleep(0.005)
        return x

    with anyio.fail_after(20):
        assert await ap.from_iterable(range(10)).map(slow).collect() == list(range(10))
    assert loop_thread not in where


async def test_a_cheap_sync_fn_runs_inline() -> None:
    loop_thread = threading.get_ident()
    where: list[int] = []

    def cheap(x: int) -> int:
        where.append(threading.get_ident())
        return x

    await ap.from_iterable(range(5000)).map(cheap).collect()
    assert where.count(loop_thread) > 4000  # after the first measuring call


async def test_executor_inline_keeps_a_sync_fn_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    where: set[int] = set()

    def slow(x: int) -> int:
        where.add(threading.get_ident())
        time.sleep(0.003)
        return x

    await ap.from_iterable(range(5)).map(slow, executor="inline").collect()
    assert where == {loop_thread}


async def test_from_arrays_takes_a_dict_of_arrays() -> None:
    """Defect 17: accepted at build time, then a bare KeyError: 0 at run time."""
    x, y = np.arange(5), np.arange(5) * 10
    rows = await ap.from_arrays({"x": x, "y": y}).collect()
    assert [(int(r["x"]), int(r["y"])) for r in rows] == [(i, 10 * i) for i in range(5)]
    batch = await ap.from_arrays({"x": x, "y": y}).batch(5).collect()
    np.testing.assert_array_equal(batch[0]["y"], y)
    with pytest.raises(ValueError, match=r"array 'x' has 5 rows but array 'y' has 4"):
        ap.from_arrays({"x": x, "y": y[:4]})
    with pytest.raises(TypeError, match="use from_iterable"):
        ap.from_arrays(iter(range(3)))


async def test_a_source_that_finished_early_is_not_shown_busy() -> None:
    """Defect 18: stats showed finished sources 100 % busy and named them the bottleneck."""

    async def slow_consumer_step(x: int) -> int:
        await anyio.sleep(0.002)
        return x

    with anyio.fail_after(20):
        async with ap.from_arrays(np.arange(100)).map(slow_consumer_step).open() as run:
            async for _ in run:
                pass
            stats = run.stats()
    source = stats.by_name("from_arrays")
    assert source.busy_fraction < 0.5
    assert stats.bottleneck is not None
    assert stats.bottleneck.name != "from_arrays"
    assert str(stats).splitlines()[2].split()[4] != "100%"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_base_exception_in_a_stage_reaches_a_plain_for_loop(backend: str) -> None:
    """A KeyboardInterrupt from a stage broke iter_sync's portal ("portal is not running")."""

    def fn(x: int) -> int:
        if x == 10:
            raise KeyboardInterrupt("in stage")
        return x

    with (
        pytest.raises(KeyboardInterrupt, match="in stage"),
        ap.from_iterable(range(100)).map(fn).iter_sync(backend=backend) as it,
    ):
        list(it)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iter_sync_raises_at_exit_an_error_the_loop_never_asked_for(backend: str) -> None:
    """The pump had taken the error, so leaving without next() lost it."""
    started = threading.Event()

    def fn(x: int) -> int:
        if x == 1:
            started.set()
            raise ValueError("not lost")
        return x

    with (
        pytest.raises(ValueError, match="not lost"),
        ap.from_iterable(range(4)).map(fn, executor="thread").iter_sync(backend=backend) as it,
    ):
        assert started.wait(10)
        stats = it.stats()  # a round trip to the loop: the pump has had its turn
        assert stats is not None


async def test_process_workers_are_gone_after_a_cancel_during_start_up() -> None:
    """Defect 7: workers still starting were orphaned on trio, reaped only by GC on asyncio."""
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    # Processes from before (a test server another module started for the session) are not ours.
    before = {p.pid for p in me.children(recursive=True)}
    with anyio.move_on_after(0.05):
        await ap.from_iterable(range(100)).map(abs, workers=2, executor="process").collect()

    def workers() -> list[Any]:
        # multiprocessing's fork server and resource tracker live as long as this process, by
        # design; the workers they start must not.
        helpers = ("forkserver", "resource_tracker")
        return [
            p
            for p in me.children(recursive=True)
            if p.pid not in before and not any(h in " ".join(p.cmdline()) for h in helpers)
        ]

    with anyio.fail_after(10):
        while workers():  # noqa: ASYNC110 - polling another process
            await anyio.sleep(0.01)


class NeedsTwo(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


def needs_two(x: int) -> int:
    if x == 5:
        raise NeedsTwo(7, "bad")
    return x


async def test_exception_with_a_custom_init_survives_a_process_worker() -> None:
    """Defect 13: it came back as a TypeError from unpickling, with no element note."""
    with anyio.fail_after(60), pytest.raises(Exception) as info:
        await ap.from_iterable(range(10)).map(needs_two, executor="process").collect()
    assert type(info.value).__name__ == "NeedsTwo"
    assert "code 7: bad" in str(info.value)
    assert any("on element 5" in n for n in info.value.__notes__)


def test_process_workers_leave_quietly_when_the_run_stops_mid_stream(tmp_path: Path) -> None:
    """A worker process whose parent closed its socket mid-message (the consumer left after a
    few batches) printed a ConnectionResetError traceback: shutdown noise, which aiopipe
    promises never to make."""
    import subprocess
    import sys

    script = tmp_path / "early.py"
    script.write_text(
        """
import anyio, numpy as np, aiopipe as ap

async def main():
    for _ in range(6):
        pipe = ap.from_arrays(np.arange(20_000)).map(abs, workers=2, executor="process")
        async with pipe.batch(10).open() as run:
            for _ in range(5):
                await run.receive()

if __name__ == "__main__":
    anyio.run(main)
    print("left")
"""
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "left"
    assert proc.stderr == ""
