"""The element bound of the streams between stages (``Space``): room in elements, not chunks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest

from aiopipe._core.engine._channel import (
    MAX_CHUNK,
    Inbox,
    Outbox,
    SendClock,
    Space,
    chunk_limit,
    create_channel,
)

pytestmark = pytest.mark.anyio


async def test_single_elements_fill_the_whole_bound() -> None:
    """Sixteen one-element sends fit a 16-element stream; the seventeenth waits for receives."""
    space = Space(16)
    for _ in range(16):
        assert space.fits(1)
        space.used += 1
    assert not space.fits(1)
    taken = anyio.Event()

    async def send_one_more() -> None:
        await space.take(1)
        taken.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_one_more)
            await anyio.wait_all_tasks_blocked()
            assert not taken.is_set()
            space.give(1)  # room for it, but a sender wakes only once the stream is half empty
            await anyio.wait_all_tasks_blocked()
            assert not taken.is_set()
            space.give(7)
            await taken.wait()
    assert space.used == 9


async def test_waiters_are_served_first_come_first_served() -> None:
    space = Space(4)
    space.used = 4
    order: list[str] = []

    async def sender(name: str, n: int) -> None:
        await space.take(n)
        order.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, "big", 3)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(sender, "small", 1)
            await anyio.wait_all_tasks_blocked()
            space.give(1)  # room for "small" only, but "big" came first: nobody goes yet
            await anyio.wait_all_tasks_blocked()
            assert order == []
            assert not space.fits(1)  # a newcomer queues behind the waiters too
            space.give(2)  # room for 3: "big" goes, then "small" does not fit until more frees
            await anyio.wait_all_tasks_blocked()
            assert order == ["big"]
            space.give(3)
    assert order == ["big", "small"]
    assert space.used == 2  # 4 - 1 - 2 + 3 (big) - 3 + 1 (small)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    space = Space(2)
    space.used = 2
    got: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def sender(name: str, n: int) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await space.take(n)
            got.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, "cancelled", 2)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(sender, "next", 2)
            await anyio.wait_all_tasks_blocked()
            scopes[0].cancel()
            await anyio.wait_all_tasks_blocked()
            space.give(2)
    assert got == ["next"]  # the room went to the next waiter, not to the one that left
    assert space.used == 2


async def test_when_the_last_receiver_closes_waiting_senders_go_on() -> None:
    """They then find the stream broken and stop, instead of waiting for room for ever."""
    send, receive = anyio.create_memory_object_stream[list[int]](8)
    space = Space(1)
    space.used = 1
    other = receive.clone()
    outcome: list[str] = []

    async def sender() -> None:
        await space.take(1)
        try:
            send.send_nowait([1])
        except anyio.BrokenResourceError:
            outcome.append("broken")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await anyio.wait_all_tasks_blocked()
            receive.close()
            space.receiver_closed(receive)  # one receiver is still open: keep waiting
            await anyio.wait_all_tasks_blocked()
            assert outcome == []
            other.close()
            space.receiver_closed(other)
    assert outcome == ["broken"]
    send.close()


@contextmanager
def _ends(buffer: int) -> Iterator[tuple[Outbox, Inbox]]:
    from aiopipe._core.observe._stats import StageStats

    send, receive, space = create_channel(buffer)
    stats = StageStats("s", 1, buffer)
    outbox, inbox = Outbox(send, space, stats, 0, SendClock()), Inbox(receive, space, stats, 0)
    try:
        yield outbox, inbox
    finally:
        outbox.close()
        inbox.close()


async def test_small_sends_join_the_newest_untaken_chunk() -> None:
    """``append`` adds to the stream's newest chunk until a receiver takes it, within the chunk
    limit and the bound; the receiver then sees one chunk holding every send."""
    told: list[tuple[int, int, int]] = []
    with anyio.fail_after(5), _ends(4) as (outbox, inbox):  # chunks of at most 4
        first = [0]
        await outbox.send(first, at=("r", "m", 0))  # type: ignore[arg-type]
        assert outbox.append(first, [1], lambda *a: told.append(a))
        assert outbox.append(first, [2, 3])
        assert not outbox.append(first, [4])  # the chunk is full (limit 4)
        assert not outbox.append([0, 1, 2, 3], [4])  # not the stream's chunk
        assert told == [(1, 0, 1)]  # outputs 1.. of the stage: its index is known now
        assert await inbox.receive() == [0, 1, 2, 3]
        assert inbox.position(3) == ("r", "m", 3)
        second = [4]
        await outbox.send(second)
        assert await inbox.receive() == [4]
        assert not outbox.append(second, [5])  # taken: a new send is needed


async def test_append_respects_the_bound() -> None:
    with anyio.fail_after(5), _ends(4) as (outbox, inbox):  # 4 elements in all
        a, b = [0, 1], [2]
        await outbox.send(a)
        await outbox.send(b)
        assert outbox.append(b, [3])
        assert not outbox.append(b, [4])  # the stream holds 4: no room
        assert await inbox.receive() == [0, 1]
        assert await inbox.receive() == [2, 3]


async def test_append_respects_the_chunk_limit() -> None:
    """A stream bigger than MAX_CHUNK has room left when its chunk is full: still no join."""
    assert chunk_limit(2 * MAX_CHUNK) == MAX_CHUNK
    with anyio.fail_after(5), _ends(2 * MAX_CHUNK) as (outbox, inbox):
        a = list(range(MAX_CHUNK - 1))
        await outbox.send(a)
        assert outbox.append(a, [-1])
        assert not outbox.append(a, [-2])  # MAX_CHUNK elements: full
        assert len(await inbox.receive()) == MAX_CHUNK


async def test_default_buffer_has_room_for_one_output_per_worker() -> None:
    import aiopipe as ap

    wide = ap.from_iterable(range(50)).map(abs, workers=600, name="wide").map(abs, name="narrow")
    with anyio.fail_after(30):
        async with wide.open() as run:
            got = [x async for x in run]
            sizes = {s.name: s.buffer_size for s in run.stats()}
    assert sorted(got) == list(range(50))
    assert sizes["wide"] == 600  # more workers than the default of 512 source elements
    assert sizes["narrow"] == 512
