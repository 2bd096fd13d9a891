"""A conformance battery for TF-style queues: the behaviour every queue kind shares.

Each check is an async function taking a ``QueueKind`` (how to build the queue and its elements);
it raises ``AssertionError`` on a violation. ``check_queue(kind)`` runs them all; ``QUEUE_CHECKS``
lists them, so a test suite can parametrise over them. Checks order tasks with events and
``anyio.wait_all_tasks_blocked()``, never with sleeps, and guard against hangs with
``anyio.fail_after``. They run under any anyio backend.

The kind's queue must let a consumer take any held element while open (for a RandomShuffleQueue:
``min_after_dequeue=0``); checks compare in order only where the order is determined.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio import wait_all_tasks_blocked

from .._core.engine._errors import OutOfRangeError, QueueClosedError

__all__ = ["QUEUE_CHECKS", "QueueKind", "QueueLike", "check_queue"]

_TIMEOUT = 5.0


class QueueLike(Protocol):
    """The queue protocol the battery exercises (every aiopipe queue has it)."""

    @property
    def capacity(self) -> int: ...
    def size(self) -> int: ...
    def is_closed(self) -> bool: ...
    def statistics(self) -> tuple[int, int, int, int, bool]: ...
    def close(self, *, cancel_pending_enqueues: bool = False) -> None: ...
    async def enqueue(self, item: Any) -> None: ...
    async def enqueue_many(self, items: Iterable[Any]) -> None: ...
    def enqueue_nowait(self, item: Any) -> None: ...
    async def dequeue(self) -> Any: ...
    def dequeue_nowait(self) -> Any: ...
    async def dequeue_many(self, n: int) -> list[Any]: ...
    async def dequeue_up_to(self, n: int) -> list[Any]: ...
    def __aiter__(self) -> AsyncIterator[Any]: ...


def _identity(i: int) -> Any:
    return i


@dataclass(frozen=True)
class QueueKind:
    """How to build a queue of one kind for the battery.

    ``make(capacity)`` returns a fresh queue; ``item(i)`` the i-th test element (distinct, equal
    to itself, and in priority order for ordered kinds); ``ordered`` says elements come out in the
    order they went in; ``many_over_capacity`` says ``dequeue_many(n)`` accepts ``n > capacity``.
    """

    name: str
    make: Callable[[int], QueueLike]
    item: Callable[[int], Any] = field(default=_identity)
    ordered: bool = True
    many_over_capacity: bool = True

    def items(self, start: int, stop: int) -> list[Any]:
        return [self.item(i) for i in range(start, stop)]


class _Outcome:
    """What a background call returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False


async def _capture(outcome: _Outcome, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    try:
        outcome.value = await fn(*args)
    except Exception as exc:
        outcome.error = exc
    finally:
        outcome.done = True


def _same(kind: QueueKind, got: list[Any], expected: list[Any], what: str) -> None:
    # Unordered kinds are compared as multisets (by repr, which any element has).
    ok = got == expected if kind.ordered else sorted(map(repr, got)) == sorted(map(repr, expected))
    if not ok:
        raise AssertionError(f"{kind.name}: {what}: expected {expected!r}, got {got!r}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@contextmanager
def _raises(kind: QueueKind, exc_type: type[BaseException], match: str = "") -> Iterator[None]:
    try:
        yield
    except exc_type as exc:
        if match not in str(exc):
            raise AssertionError(f"{kind.name}: {exc!r} does not say {match!r}") from exc
    else:
        raise AssertionError(f"{kind.name}: expected {exc_type.__name__}")


async def check_basic_operations(kind: QueueKind) -> None:
    """enqueue/dequeue, their nowait forms, size, capacity, statistics."""
    q = kind.make(3)
    _check(q.capacity == 3 and q.size() == 0 and not q.is_closed(), f"{kind.name}: fresh state")
    await q.enqueue(kind.item(0))
    await q.enqueue(kind.item(1))
    q.enqueue_nowait(kind.item(2))
    _check(q.size() == 3, f"{kind.name}: size after 3 enqueues is {q.size()}")
    _check(tuple(q.statistics()) == (3, 3, 0, 0, False), f"{kind.name}: {q.statistics()}")
    with _raises(kind, anyio.WouldBlock):
        q.enqueue_nowait(kind.item(3))
    got = [await q.dequeue(), q.dequeue_nowait(), await q.dequeue()]
    _same(kind, got, kind.items(0, 3), "dequeued")
    with _raises(kind, anyio.WouldBlock):
        q.dequeue_nowait()
    _check(q.size() == 0, f"{kind.name}: size after draining is {q.size()}")


async def check_many_operations(kind: QueueKind) -> None:
    """enqueue_many, dequeue_many, dequeue_up_to, n == 0 and n < 0."""
    q = kind.make(8)
    await q.enqueue_many(kind.items(0, 5))
    first, second = await q.dequeue_many(2), await q.dequeue_up_to(2)
    _check(len(first) == 2 and len(second) == 2, f"{kind.name}: got {first!r}, {second!r}")
    _same(kind, [*first, *second, await q.dequeue()], kind.items(0, 5), "dequeued groups")
    _check(await q.dequeue_many(0) == [], f"{kind.name}: dequeue_many(0)")
    _check(await q.dequeue_up_to(0) == [], f"{kind.name}: dequeue_up_to(0)")
    with _raises(kind, ValueError, "-1"):
        await q.dequeue_many(-1)
    with _raises(kind, ValueError, "-2"):
        await q.dequeue_up_to(-2)
    await q.enqueue_many([])
    _check(q.size() == 0, f"{kind.name}: size is {q.size()}, expected 0")
    q.close()
    _check(await q.dequeue_many(0) == [], f"{kind.name}: dequeue_many(0) when closed")


async def check_enqueue_waits_for_room(kind: QueueKind) -> None:
    """A full queue blocks enqueue until a dequeue frees room."""
    q = kind.make(2)
    await q.enqueue_many(kind.items(0, 2))
    done = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, done, q.enqueue, kind.item(2))
        await wait_all_tasks_blocked()
        _check(not done.done and q.statistics()[2] == 1, f"{kind.name}: producer not waiting")
        got = [await q.dequeue()]
    _check(done.done and done.error is None, f"{kind.name}: producer did not finish")
    _same(kind, got + await q.dequeue_many(2), kind.items(0, 3), "dequeued")


async def check_dequeue_waits_for_elements(kind: QueueKind) -> None:
    """An empty queue blocks dequeue until an enqueue."""
    q = kind.make(2)
    got = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, got, q.dequeue)
        await wait_all_tasks_blocked()
        _check(not got.done and q.statistics()[3] == 1, f"{kind.name}: consumer not waiting")
        await q.enqueue(kind.item(7))
    _check(got.value == kind.item(7), f"{kind.name}: consumer got {got.value!r}")
    _check(q.size() == 0, f"{kind.name}: element handed over but size is {q.size()}")


async def check_consumers_served_in_arrival_order(kind: QueueKind) -> None:
    """Blocked consumers get elements in the order they started waiting."""
    q = kind.make(4)
    outcomes = [_Outcome() for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for outcome in outcomes:
            tg.start_soon(_capture, outcome, q.dequeue)
            await wait_all_tasks_blocked()
        for i in range(3):
            await q.enqueue(kind.item(i))
    _check(
        [o.value for o in outcomes] == kind.items(0, 3),
        f"{kind.name}: consumers got {[o.value for o in outcomes]!r}",
    )


async def check_producers_served_in_arrival_order(kind: QueueKind) -> None:
    """Blocked producers go in in the order they started waiting."""
    q = kind.make(1)
    await q.enqueue(kind.item(0))
    async with anyio.create_task_group() as tg:
        for i in range(1, 4):
            tg.start_soon(q.enqueue, kind.item(i))
            await wait_all_tasks_blocked()
        _check(q.statistics()[2] == 3, f"{kind.name}: {q.statistics()}")
        got = [await q.dequeue() for _ in range(4)]
    _check(got == kind.items(0, 4), f"{kind.name}: producers went in as {got!r}")


async def check_enqueue_many_is_contiguous(kind: QueueKind) -> None:
    """No other enqueue lands between the elements of one enqueue_many."""
    q = kind.make(1)
    await q.enqueue(kind.item(0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.enqueue_many, kind.items(1, 4))
        await wait_all_tasks_blocked()
        tg.start_soon(q.enqueue, kind.item(4))
        await wait_all_tasks_blocked()
        got = [await q.dequeue() for _ in range(5)]
    _check(got == kind.items(0, 5), f"{kind.name}: got {got!r}")


async def check_dequeue_many_beyond_capacity(kind: QueueKind) -> None:
    """dequeue_many(n) with n > capacity fills progressively (kinds that allow it)."""
    if not kind.many_over_capacity:
        return
    q = kind.make(2)
    got = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, got, q.dequeue_many, 5)
        await wait_all_tasks_blocked()
        await q.enqueue_many(kind.items(0, 5))
    _check(got.error is None, f"{kind.name}: dequeue_many(5) raised {got.error!r}")
    _same(kind, got.value, kind.items(0, 5), "dequeue_many(5) on capacity 2")


async def check_close_rejects_enqueues_and_drains(kind: QueueKind) -> None:
    """After close: enqueues fail, held elements stay dequeueable, then OutOfRangeError."""
    q = kind.make(8)
    await q.enqueue_many(kind.items(0, 2))
    q.close()
    _check(q.is_closed(), f"{kind.name}: is_closed() after close()")
    with _raises(kind, QueueClosedError, "closed"):
        await q.enqueue(kind.item(9))
    with _raises(kind, QueueClosedError, "closed"):
        await q.enqueue_many([kind.item(9)])
    with _raises(kind, QueueClosedError, "closed"):
        q.enqueue_nowait(kind.item(9))
    with _raises(kind, OutOfRangeError, "requested 5, current size 2"):
        await q.dequeue_many(5)
    _check(q.size() == 2, f"{kind.name}: a failed dequeue_many took elements")
    _same(kind, await q.dequeue_up_to(5), kind.items(0, 2), "dequeue_up_to after close")
    with _raises(kind, OutOfRangeError, "requested 1, current size 0"):
        await q.dequeue()
    with _raises(kind, OutOfRangeError):
        await q.dequeue_up_to(3)
    with _raises(kind, OutOfRangeError):
        q.dequeue_nowait()
    q.close()
    _check(q.is_closed() and q.size() == 0, f"{kind.name}: second close changed state")


async def check_close_wakes_blocked_consumers(kind: QueueKind) -> None:
    """A blocked dequeue that can no longer be satisfied raises OutOfRangeError at close."""
    q = kind.make(4)
    many, one = _Outcome(), _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, many, q.dequeue_many, 3)
        await wait_all_tasks_blocked()
        tg.start_soon(_capture, one, q.dequeue)
        await wait_all_tasks_blocked()
        await q.enqueue(kind.item(0))
        _check(not many.done and not one.done, f"{kind.name}: served too early")
        q.close()
    _check(isinstance(many.error, OutOfRangeError), f"{kind.name}: dequeue_many got {many.error!r}")
    _check("requested 3, current size 1" in str(many.error), f"{kind.name}: {many.error}")
    _check(one.value == kind.item(0), f"{kind.name}: the element went back, dequeue got it")


async def check_close_lets_blocked_enqueues_finish(kind: QueueKind) -> None:
    """A plain close lets enqueues that were already blocked complete when room frees."""
    q = kind.make(1)
    await q.enqueue(kind.item(0))
    put = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, put, q.enqueue, kind.item(1))
        await wait_all_tasks_blocked()
        q.close()
        await wait_all_tasks_blocked()
        _check(not put.done, f"{kind.name}: blocked enqueue ended at close: {put.error!r}")
        got = [await q.dequeue(), await q.dequeue()]
    _check(put.error is None and got == kind.items(0, 2), f"{kind.name}: got {got!r}")
    with _raises(kind, OutOfRangeError):
        await q.dequeue()


async def check_cancelling_close_fails_blocked_enqueues(kind: QueueKind) -> None:
    """close(cancel_pending_enqueues=True) fails blocked enqueues; inserted elements stay."""
    q = kind.make(2)
    await q.enqueue(kind.item(0))
    put = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, put, q.enqueue_many, kind.items(1, 4))
        await wait_all_tasks_blocked()
        q.close(cancel_pending_enqueues=True)
    _check(isinstance(put.error, QueueClosedError), f"{kind.name}: enqueue got {put.error!r}")
    _check(q.statistics()[2] == 0, f"{kind.name}: {q.statistics()}")
    _same(kind, await q.dequeue_up_to(2), kind.items(0, 2), "after a cancelling close")


async def check_dequeue_up_to_returns_rest_at_close(kind: QueueKind) -> None:
    """A blocked dequeue_up_to returns what remains when the queue closes."""
    q = kind.make(4)
    await q.enqueue_many(kind.items(0, 2))
    got = _Outcome()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_capture, got, q.dequeue_up_to, 3)
        await wait_all_tasks_blocked()
        _check(not got.done, f"{kind.name}: dequeue_up_to(3) returned while open")
        q.close()
    _check(got.error is None, f"{kind.name}: dequeue_up_to raised {got.error!r}")
    _same(kind, got.value, kind.items(0, 2), "dequeue_up_to at close")


async def check_cancelled_dequeue_leaves_no_trace(kind: QueueKind) -> None:
    """A dequeue_many cancelled from outside puts back what it took, in order."""
    q = kind.make(4)
    await q.enqueue_many(kind.items(0, 2))
    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_dequeue_in_scope, q, scope)
        await wait_all_tasks_blocked()
        _check(q.statistics()[3] == 1, f"{kind.name}: {q.statistics()}")
        scope.cancel()
    _check(tuple(q.statistics())[:4] == (2, 4, 0, 0), f"{kind.name}: {q.statistics()}")
    await q.enqueue(kind.item(2))
    _same(kind, await q.dequeue_many(3), kind.items(0, 3), "after a cancelled dequeue_many")


async def _dequeue_in_scope(q: QueueLike, scope: anyio.CancelScope) -> None:
    with scope:
        await q.dequeue_many(3)


async def check_cancelled_enqueue_leaves_no_trace(kind: QueueKind) -> None:
    """An enqueue cancelled while blocked never goes in."""
    q = kind.make(1)
    await q.enqueue(kind.item(0))
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(q.enqueue, kind.item(1))
            await wait_all_tasks_blocked()
            scope.cancel()
    _check(tuple(q.statistics())[:4] == (1, 1, 0, 0), f"{kind.name}: {q.statistics()}")
    _check(await q.dequeue() == kind.item(0), f"{kind.name}: wrong element")
    with _raises(kind, anyio.WouldBlock):
        q.dequeue_nowait()
    await q.enqueue(kind.item(2))
    _check(await q.dequeue() == kind.item(2), f"{kind.name}: queue unusable after a cancel")


async def check_async_iteration(kind: QueueKind) -> None:
    """``async for`` yields until the queue is closed and empty, even when closed while waiting."""
    q = kind.make(4)
    got: list[Any] = []

    async def consume() -> None:
        async for item in q:
            got.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await q.enqueue_many(kind.items(0, 3))
        await wait_all_tasks_blocked()
        q.close()
    _same(kind, got, kind.items(0, 3), "async for")


async def check_statistics(kind: QueueKind) -> None:
    """statistics() is a frozen named tuple of size, capacity, waiters and closed."""
    q = kind.make(2)
    stats = q.statistics()
    fields: tuple[str, ...] = getattr(stats, "_fields", ())
    expected = ("size", "capacity", "waiting_producers", "waiting_consumers", "closed")
    _check(fields == expected, f"{kind.name}: statistics fields {fields!r}")
    with _raises(kind, AttributeError):
        setattr(stats, expected[0], 3)
    q.close()
    _check(q.statistics()[4] is True, f"{kind.name}: closed not reported")


QUEUE_CHECKS: tuple[Callable[[QueueKind], Awaitable[None]], ...] = (
    check_basic_operations,
    check_many_operations,
    check_enqueue_waits_for_room,
    check_dequeue_waits_for_elements,
    check_consumers_served_in_arrival_order,
    check_producers_served_in_arrival_order,
    check_enqueue_many_is_contiguous,
    check_dequeue_many_beyond_capacity,
    check_close_rejects_enqueues_and_drains,
    check_close_wakes_blocked_consumers,
    check_close_lets_blocked_enqueues_finish,
    check_cancelling_close_fails_blocked_enqueues,
    check_dequeue_up_to_returns_rest_at_close,
    check_cancelled_dequeue_leaves_no_trace,
    check_cancelled_enqueue_leaves_no_trace,
    check_async_iteration,
    check_statistics,
)


async def check_queue(kind: QueueKind) -> None:
    """Run every check of the battery on ``kind``, each guarded by a timeout."""
    for check in QUEUE_CHECKS:
        with anyio.fail_after(_TIMEOUT):
            await check(kind)
