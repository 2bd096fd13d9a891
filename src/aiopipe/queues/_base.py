"""Machinery shared by every queue kind: waiters, hand-off, closing, cancellation.

A queue holds *entries* in a kind-specific store (a deque, a list, a heap) and two FIFO lines of
waiters: producers that found no room and consumers that found nothing they may take. Every state
change runs ``_pump``, which, in the task that made the change, moves elements from the head
producer into the store while there is room and hands stored elements to the head consumer, until
nothing moves. Waiters therefore never race each other: they are served strictly in arrival order,
an ``enqueue_many`` goes in contiguously, and a ``dequeue_many`` larger than the capacity fills
progressively while the producers behind it refill the store.

Speed: an operation that needs no waiting completes without suspending (like ``asyncio.Queue``'s
fast path), and every ``CHECKPOINT_EVERY``-th such operation on a queue first takes a full anyio
checkpoint (before acting, so a cancellation there leaves no trace). A tight producer/consumer loop
thus still yields to the event loop and notices cancellation, without paying a scheduler round trip
per element. An operation that has to wait is always a cancellation point.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from typing import Generic, NamedTuple, Self, TypeVar

import anyio
from anyio.lowlevel import checkpoint

from .._core.engine._errors import OutOfRangeError, QueueClosedError

__all__ = ["CHECKPOINT_EVERY", "Getter", "QueueBase", "QueueStatistics"]

E = TypeVar("E")  # what users enqueue and dequeue
S = TypeVar("S")  # what the store holds (the element itself, or a heap entry)

# One full checkpoint per this many non-waiting operations: cheap enough that FIFOQueue beats
# asyncio.Queue, frequent enough that a busy loop still lets other tasks run.
CHECKPOINT_EVERY = 32


class QueueStatistics(NamedTuple):
    """A snapshot of a queue, from ``queue.statistics()``."""

    size: int
    capacity: int
    waiting_producers: int
    waiting_consumers: int
    closed: bool


class Getter(Generic[S]):
    """A consumer waiting for ``want`` entries; ``partial`` (up_to) accepts fewer once closed."""

    __slots__ = ("done", "error", "event", "partial", "taken", "want")

    def __init__(self, want: int, partial: bool) -> None:
        self.want = want
        self.partial = partial
        self.taken: list[S] = []
        self.done = False
        self.error: BaseException | None = None
        self.event: anyio.Event | None = None


class _Putter(Generic[S]):
    """A producer waiting to insert ``items`` (in order); ``inserted`` counts those already in."""

    __slots__ = ("done", "error", "event", "inserted", "items", "total")

    def __init__(self, items: deque[S]) -> None:
        self.items = items
        self.total = len(items)
        self.inserted = 0
        self.done = False
        self.error: BaseException | None = None
        self.event: anyio.Event | None = None


def _finish(waiter: Getter[S] | _Putter[S], error: BaseException | None = None) -> None:
    waiter.done = True
    waiter.error = error
    if waiter.event is not None:
        waiter.event.set()


def check_capacity(kind: str, capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"{kind} needs an int capacity (got {type(capacity).__name__})")
    if capacity < 1:
        raise ValueError(f"{kind} needs capacity >= 1 (got {capacity})")
    return capacity


def check_count(method: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{method} needs an int n (got {type(n).__name__})")
    if n < 0:
        raise ValueError(f"{method} needs n >= 0 (got {n})")
    return n


class QueueBase(ABC, Generic[E, S]):
    """The TF-style queue protocol on top of a store that subclasses provide.

    Subclasses implement the store hooks (``_size``, ``_push``, ``_can_take``, ``_take``,
    ``_put_back``) and may override ``_wrap``/``_unwrap``/``_finish_many`` (element <-> entry) and
    ``_serve`` (how a waiting consumer takes entries).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = check_capacity(type(self).__name__, capacity)
        self._closed = False
        self._getters: deque[Getter[S]] = deque()
        self._putters: deque[_Putter[S]] = deque()
        self._tick = 0

    # -- store hooks -----------------------------------------------------------------------
    @abstractmethod
    def _size(self) -> int: ...

    @abstractmethod
    def _push(self, entry: S) -> None: ...

    @abstractmethod
    def _can_take(self) -> bool:
        """True if a consumer may take one entry now (the kind's rule, e.g. min_after_dequeue)."""

    @abstractmethod
    def _take(self) -> S: ...

    @abstractmethod
    def _put_back(self, entries: list[S]) -> None:
        """Return entries a consumer had taken to the front of the store, in order."""

    @abstractmethod
    def _wrap(self, item: E) -> S:
        """Validate an element and turn it into a store entry."""

    @abstractmethod
    def _unwrap(self, entry: S) -> E: ...

    def _finish_many(self, entries: list[S]) -> list[E]:
        return [self._unwrap(e) for e in entries]

    def _serve(self, getter: Getter[S]) -> None:
        """Give ``getter`` every entry it may take now (element by element by default)."""
        taken = getter.taken
        while len(taken) < getter.want and self._can_take():
            taken.append(self._take())

    def _check_many(self, method: str, n: int) -> int:
        return check_count(method, n)

    # -- public surface ---------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """The most elements the queue holds."""
        return self._capacity

    def size(self) -> int:
        """The number of elements held now."""
        return self._size()

    def is_closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def statistics(self) -> QueueStatistics:
        """Size, capacity, waiting producers and consumers, and whether the queue is closed."""
        return QueueStatistics(
            self._size(), self._capacity, len(self._putters), len(self._getters), self._closed
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} size={self._size()}/{self._capacity} {state}>"

    async def enqueue(self, item: E) -> None:
        """Add ``item``, waiting while the queue is full; ``QueueClosedError`` once closed."""
        entry = self._wrap(item)
        await self._tick_checkpoint()
        if self._closed:
            raise self._closed_error()
        if not self._putters and self._size() < self._capacity:
            self._push(entry)
            if self._getters:
                self._pump()
            return
        await self._wait_put(deque((entry,)))

    async def enqueue_many(self, items: Iterable[E]) -> None:
        """Add ``items`` in order and contiguously, waiting for room as often as needed."""
        entries = deque(self._wrap(item) for item in items)
        await self._tick_checkpoint()
        if self._closed:
            raise self._closed_error()
        if not self._putters and self._size() + len(entries) <= self._capacity:
            for entry in entries:
                self._push(entry)
            if self._getters:
                self._pump()
        elif entries:
            await self._wait_put(entries)

    def enqueue_nowait(self, item: E) -> None:
        """Add ``item`` now, or raise ``anyio.WouldBlock`` (or ``QueueClosedError``)."""
        entry = self._wrap(item)
        if self._closed:
            raise self._closed_error()
        if self._putters or self._size() >= self._capacity:
            raise anyio.WouldBlock
        self._push(entry)
        if self._getters:
            self._pump()

    async def dequeue(self) -> E:
        """Remove and return one element, waiting while none may be taken."""
        await self._tick_checkpoint()
        if not self._getters and self._can_take():
            entry = self._take()
            if self._putters:
                self._pump()
            return self._unwrap(entry)
        return self._unwrap((await self._wait_get(1, partial=False))[0])

    def dequeue_nowait(self) -> E:
        """Remove one element now, or raise ``anyio.WouldBlock`` (``OutOfRangeError``: drained)."""
        if not self._getters and self._can_take():
            entry = self._take()
            if self._putters:
                self._pump()
            return self._unwrap(entry)
        if self._closed and not self._putters and not self._getters:
            raise self._out_of_range(1)
        raise anyio.WouldBlock

    async def dequeue_many(self, n: int) -> list[E]:
        """Return exactly ``n`` elements; ``OutOfRangeError`` (none taken) if closed with fewer."""
        n = self._check_many("dequeue_many", n)
        await self._tick_checkpoint()
        if n == 0:
            return []
        return self._finish_many(await self._wait_get(n, partial=False))

    async def dequeue_up_to(self, n: int) -> list[E]:
        """Like ``dequeue_many``, but once closed return the 1..n elements that remain."""
        n = self._check_many("dequeue_up_to", n)
        await self._tick_checkpoint()
        if n == 0:
            return []
        return self._finish_many(await self._wait_get(n, partial=True))

    def close(self, *, cancel_pending_enqueues: bool = False) -> None:
        """Refuse new enqueues; wake consumers that can no longer be satisfied.

        Blocked enqueues still complete as room frees, unless ``cancel_pending_enqueues``: then
        they fail at once with ``QueueClosedError`` (elements already inserted stay).
        """
        self._closed = True
        if cancel_pending_enqueues:
            putters, self._putters = self._putters, deque()
            for putter in putters:
                _finish(putter, self._cancelled_enqueue_error(putter))
        self._pump()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> E:
        try:
            return await self.dequeue()
        except OutOfRangeError:
            raise StopAsyncIteration from None

    # -- waiting ----------------------------------------------------------------------------
    async def _tick_checkpoint(self) -> None:
        self._tick += 1
        if self._tick >= CHECKPOINT_EVERY:
            self._tick = 0
            await checkpoint()

    async def _wait_put(self, entries: deque[S]) -> None:
        putter = _Putter(entries)
        self._putters.append(putter)
        self._pump()
        if not putter.done:
            putter.event = anyio.Event()
            try:
                await putter.event.wait()
            except BaseException:
                self._abandon_putter(putter)
                raise
        if putter.error is not None:
            raise putter.error

    async def _wait_get(self, n: int, *, partial: bool) -> list[S]:
        getter: Getter[S] = Getter(n, partial)
        self._getters.append(getter)
        self._pump()
        if not getter.done:
            getter.event = anyio.Event()
            try:
                await getter.event.wait()
            except BaseException:
                self._abandon_getter(getter)
                raise
        if getter.error is not None:
            raise getter.error
        return getter.taken

    def _abandon_putter(self, putter: _Putter[S]) -> None:
        # Cancelled from outside: withdraw what was not inserted yet. Elements already inserted
        # may have been dequeued by now, so they stay (as with a cancelling close).
        if not putter.done:
            self._putters.remove(putter)
            putter.done = True
            self._pump()

    def _abandon_getter(self, getter: Getter[S]) -> None:
        # Cancelled from outside: whatever the getter took (even if it was already fully served
        # when the cancellation arrived) goes back to the front, in order, and serves the others.
        if not getter.done:
            self._getters.remove(getter)
            getter.done = True
        elif getter.error is not None:
            return
        if getter.taken:
            self._put_back(getter.taken)
            getter.taken = []
        self._pump()

    # -- hand-off ---------------------------------------------------------------------------
    def _pump(self) -> None:
        """Move elements producers -> store -> consumers until nothing moves."""
        getters = self._getters
        while True:
            moved = self._admit_putters()
            if not getters:
                return
            getter = getters[0]
            before = len(getter.taken)
            self._serve(getter)
            if len(getter.taken) == getter.want:
                getters.popleft()
                _finish(getter)
            elif self._closed and not self._putters:
                # Nothing more can ever arrive for this consumer.
                getters.popleft()
                if getter.partial and getter.taken:
                    _finish(getter)
                else:
                    self._put_back(getter.taken)
                    getter.taken = []
                    _finish(getter, self._out_of_range(getter.want))
            elif len(getter.taken) == before and not moved:
                return

    def _admit_putters(self) -> int:
        moved = 0
        putters = self._putters
        while putters and self._size() < self._capacity:
            putter = putters[0]
            self._push(putter.items.popleft())
            putter.inserted += 1
            moved += 1
            if not putter.items:
                putters.popleft()
                _finish(putter)
        return moved

    # -- errors -----------------------------------------------------------------------------
    def _closed_error(self) -> QueueClosedError:
        return QueueClosedError(f"{type(self).__name__} is closed: cannot enqueue")

    def _cancelled_enqueue_error(self, putter: _Putter[S]) -> QueueClosedError:
        return QueueClosedError(
            f"{type(self).__name__} was closed with cancel_pending_enqueues=True while an enqueue"
            f" was waiting ({putter.inserted} of {putter.total} elements had gone in)"
        )

    def _out_of_range(self, requested: int) -> OutOfRangeError:
        return OutOfRangeError(
            f"{type(self).__name__} is closed and has insufficient elements"
            f" (requested {requested}, current size {self._size()})"
        )
