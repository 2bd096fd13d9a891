"""``SharedInput``: one input stream shared by a stage's workers, handed out in indexed slices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from aiopipe._core.engine._channel import Inbox, Outbox, SendClock, create_channel
from aiopipe._core.engine._shared_input import SharedInput
from aiopipe._core.observe._stats import StageStats

pytestmark = pytest.mark.anyio


@contextmanager
def _ends(
    buffer: int = 64, counting: type[Inbox] = Inbox
) -> Iterator[tuple[Outbox, Any, StageStats]]:
    """An outbox, a factory of inboxes (one per worker, as the engine clones them), and the
    receiving stage's stats (its starved time counts the waits)."""
    send, receive, space = create_channel(buffer)
    stats = StageStats("s", 1, buffer)
    outbox = Outbox(send, space, stats, 0, SendClock())
    inboxes: list[Inbox] = []

    def inbox() -> Inbox:
        made = counting(receive.clone(), space, stats, len(inboxes))
        inboxes.append(made)
        return made

    try:
        yield outbox, inbox, stats
    finally:
        outbox.close()
        receive.close()
        for made in inboxes:
            made.close()


async def test_every_element_is_taken_once_in_index_order() -> None:
    shared = SharedInput()
    got: list[tuple[int, list[int]]] = []

    async def worker(inbox: Inbox, size: int) -> None:
        while (taken := await shared.take(inbox, size)) is not None:
            got.append((taken[0], taken[1]))

    with anyio.fail_after(10), _ends() as (outbox, inbox, _):
        async with anyio.create_task_group() as tg:
            for w in range(8):
                tg.start_soon(worker, inbox(), 1 + w % 3)
            await anyio.wait_all_tasks_blocked()
            start = 0
            for n in (1, 5, 2, 9, 3, 1, 7):
                await outbox.send(list(range(start, start + n)))
                start += n
                await anyio.wait_all_tasks_blocked()
            outbox.close()  # the end: every worker returns None
    flat = sorted(got)
    assert [x for _, xs in flat for x in xs] == list(range(start))
    assert all(base == xs[0] for base, xs in flat)  # the index is the element's input index


async def test_a_chunk_wakes_only_the_waiters_it_can_feed_and_one_more() -> None:
    """Sixteen workers wait; a chunk of two wakes two of them (one to take the element the
    receiver left, one to receive next), not all fifteen waiting."""
    shared = SharedInput()
    woke: list[int] = []
    waits = [0]

    class Counting(Inbox):
        def waited(self, started: float) -> None:
            waits[0] += 1

    async def worker(w: int, inbox: Inbox) -> None:
        while (taken := await shared.take(inbox, 1)) is not None:
            woke.extend(taken[1])

    with anyio.fail_after(10), _ends(counting=Counting) as (outbox, inbox, _):
        async with anyio.create_task_group() as tg:
            for w in range(16):
                tg.start_soon(worker, w, inbox())
            await anyio.wait_all_tasks_blocked()
            assert len(shared._waiting) == 15  # one receives, the rest wait in line
            before = waits[0]
            await outbox.send([0, 1])
            await anyio.wait_all_tasks_blocked()
            assert sorted(woke) == [0, 1]
            assert len(shared._waiting) == 15
            # The receiver's wait ended, and two waiters woke: three waits ended, not sixteen.
            assert waits[0] - before == 3
            outbox.close()


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    """A woken waiter cancelled (here it became the receiver before the cancellation reached
    it) hands its turn to the next in line, so someone receives the next chunk even while the
    other workers are busy elsewhere."""
    shared = SharedInput()
    got: list[int] = []
    busy = anyio.Event()
    doomed = anyio.CancelScope()

    async def first(inbox: Inbox) -> None:
        taken = await shared.take(inbox, 8)  # receives; its chunk wakes the doomed waiter
        assert taken is not None
        got.extend(taken[1])
        doomed.cancel()  # which has not run yet
        await busy.wait()  # busy with its element for a long time

    async def waiter(inbox: Inbox) -> None:
        with doomed:
            await shared.take(inbox, 1)

    async def worker(inbox: Inbox) -> None:
        while (taken := await shared.take(inbox, 8)) is not None:
            got.extend(taken[1])

    with anyio.fail_after(10), _ends() as (outbox, inbox, _):
        async with anyio.create_task_group() as tg:
            for task in (first, waiter, worker):
                tg.start_soon(task, inbox())
                await anyio.wait_all_tasks_blocked()
            assert len(shared._waiting) == 2  # the doomed waiter, then the last worker
            await outbox.send([0])
            await anyio.wait_all_tasks_blocked()
            assert got == [0]
            await outbox.send([1, 2])
            await anyio.wait_all_tasks_blocked()
            assert got == [0, 1, 2]  # the last worker was woken in its place, and received
            busy.set()
            outbox.close()
