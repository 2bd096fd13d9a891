"""Chunked transport between stages over bounded anyio memory object streams.

Stages exchange *chunks* (lists of elements), not single elements: a send or receive costs the same
for one element as for hundreds, so the per-element cost of the transport almost vanishes. A send or
receive first tries the ``*_nowait`` form and only awaits (and only then reads the clock) when the
buffer is full or empty, which is also where blocked/starved time is measured.

Capacity is counted in elements, by a :class:`Space` shared by a stream's senders and receivers:
a stream of ``buffer`` elements carries chunks of at most ``chunk_limit(buffer)`` elements and
holds at most ``buffer`` elements, however they are chunked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..observe._stats import StageStats
from ._state import Late, Position, shifted

__all__ = [
    "DownstreamClosed",
    "Inbox",
    "Outbox",
    "SendClock",
    "Space",
    "UpstreamFailed",
    "chunk_limit",
    "create_channel",
]

MAX_CHUNK = 1024
# A worker whose sends never wait yields to the event loop after this much time: without it a
# busy stage fed by a deep buffer runs its whole input before any other task (the consumer
# included) gets the loop back.
YIELD_S = 0.002


class SendClock:
    """Sends made by every worker of one run: if others sent since our last send, the loop went
    round in between, and we were not hogging it (64 fetch workers, W2b). One per run, owned by
    it (a run's tasks all live on one event loop)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


Chunk = list[Any]
# Told, as a piece of a send enters the stream: (first output index, offset in the send, length).
OnSent = Callable[[int, int, int], None]


class DownstreamClosed(Exception):
    """Internal: the next stage stopped receiving (``take`` is satisfied); end quietly."""


class UpstreamFailed(Exception):
    """Internal: the stream ended because the stage before failed or was cancelled.

    It is not the end of input: a batcher must not emit its partial batch, nor a shuffle drain its
    buffer. The run already holds the real error; the receiving worker ends quietly.
    """


def chunk_limit(buffer: int) -> int:
    """The largest chunk a stream of ``buffer`` elements carries: all of it, up to MAX_CHUNK.

    Halving it (so that two chunks fit) doubled the hops of every element. Whole-buffer chunks
    ran W1 1.43x faster on asyncio, 1.29x on trio and 1.18x through ``iter_sync`` (medians of 9
    pairs, ``benchmarks/ab_engine.py``). A sender still works on its next chunk while the
    receiver works on the last: the room comes back when a chunk is taken, not when it is done.
    """
    return max(1, min(MAX_CHUNK, buffer))


def create_channel(
    buffer: int,
) -> tuple[MemoryObjectSendStream[Chunk], MemoryObjectReceiveStream[Chunk], Space]:
    """A stream holding at most ``buffer`` elements, as chunks, and the Space that bounds it.

    The anyio stream itself is bounded in chunks only as a backstop (a chunk holds at least one
    element, so ``buffer`` chunks never bind before the Space does).
    """
    send, receive = anyio.create_memory_object_stream[Chunk](buffer)
    return send, receive, Space(buffer)


class Space:
    """Room left in a stream, in elements; senders wait here for it, first come first served.

    anyio bounds a stream in items, and ours carry chunks of 1..limit elements. Bounding chunks
    would let a stage that sends one element at a time hold only a couple of them: 128 fetches in
    flight on W2b waited on a buffer of two, and ``prefetch(16)`` of single items held two. So a
    send takes room for its chunk here, and a receive gives it back and wakes the senders it now
    has room for. A send that fits costs two integer operations and no checkpoint.
    """

    __slots__ = (
        "_event",
        "_waiters",
        "capacity",
        "closed",
        "failed",
        "skip",
        "stamps",
        "tail",
        "used",
    )

    def __init__(self, capacity: int) -> None:
        """Call inside the event loop that will use it."""
        self.capacity = capacity
        self.used = 0
        self.closed = False  # every receiver has gone: let waiting sends fail on the stream
        # A sender ended abnormally (error or cancellation): the end of this stream is not the
        # end of input, and receivers must not treat it as one.
        self.failed = False
        self._waiters: deque[tuple[int, anyio.Event]] = deque()
        # The position (see _state) of the first element of each chunk in the stream, by the
        # chunk's id: set as a chunk goes in, taken as it comes out.
        self.stamps: dict[int, Position] = {}
        # Outputs the stage drops before sending anything (a resumed stage replaying to its
        # position), shared by all of its workers.
        self.skip = 0
        # The newest chunk in the stream while no receiver has taken it: small sends may join
        # it (``Outbox.append``) instead of costing a chunk and a wake-up each.
        self.tail: Chunk | None = None
        # The running backend's Event class, looked up once: ``anyio.Event()`` finds the backend
        # on every call, which made up a third of the cost of a wait on W1.
        self._event: Callable[[], anyio.Event] = type(anyio.Event())

    def fits(self, n: int) -> bool:
        return not self._waiters and self.used + n <= self.capacity

    async def take(self, n: int) -> None:
        """Room for ``n`` elements, waiting for receivers to free it (call when it does not fit)."""
        if self.closed:
            return
        entry = (n, self._event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry[1].is_set():
                self.give(n)  # granted as we were cancelled: pass the room on
            else:
                self._waiters.remove(entry)
            raise

    def give(self, n: int) -> None:
        """``n`` elements were received: wake the waiting senders that now fit, in order.

        Only once the stream is down to half full, though: waking a sender for every chunk
        received ping-pongs the two tasks one chunk at a time, while a woken sender that finds half
        the room free can send several chunks per wakeup. A waiter for more than is free then (a
        chunk can fill the whole stream) is woken by a later receive, at the latest when the
        stream is empty.
        """
        self.used -= n
        waiters = self._waiters
        if not waiters or self.used > self.capacity // 2:
            return
        while waiters and self.used + waiters[0][0] <= self.capacity:
            m, event = waiters.popleft()
            self.used += m
            event.set()

    def receiver_closed(self, stream: MemoryObjectReceiveStream[Chunk]) -> None:
        """A receiving end was closed; when it was the last, no sender may wait any more."""
        if stream.statistics().open_receive_streams == 0 and not self.closed:
            self.closed = True
            while self._waiters:
                self._waiters.popleft()[1].set()


class Outbox:
    """A worker's sending end: splits chunks to the stream's limit and accounts for them."""

    __slots__ = (
        "_clock",
        "_limit",
        "_resumed",
        "_sent_at",
        "_space",
        "_stats",
        "_stream",
        "_worker",
    )

    def __init__(
        self,
        stream: MemoryObjectSendStream[Chunk],
        space: Space,
        stats: StageStats,
        worker: int,
        clock: SendClock,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._space = space
        self._limit = chunk_limit(space.capacity)
        self._stats = stats
        self._worker = worker
        self._resumed = time.perf_counter()  # when this worker last let others run
        self._sent_at = 0  # the clock's count after this worker's last send

    @property
    def limit(self) -> int:
        """The largest chunk this stream carries in one piece."""
        return self._limit

    async def send(
        self, items: Chunk, on_sent: OnSent | None = None, at: Position | Late | None = None
    ) -> None:
        """Send ``items`` on (nothing if empty); DownstreamClosed when nobody listens.

        ``at`` is the position of ``items[0]`` in the stage's output (see ``_state``): what
        ``state_dict()`` resolves when the consumer stops in this chunk.

        ``on_sent(first, offset, n)`` is called as each piece enters the stream: ``items[offset :
        offset + n]`` became outputs ``first ..`` of the stage. Pieces of concurrent workers
        interleave, so this is the only moment an output's index is known.
        """
        if self._space.skip:
            items, on_sent, at = self._skipped(items, on_sent, at)
        n = len(items)
        if n == 0:
            return
        if n > self._limit:
            for i in range(0, n, self._limit):
                piece = items[i : i + self._limit]
                await self._send(piece, _shifted(on_sent, i) if on_sent else None, shifted(at, i))
            return
        await self._send(items, on_sent, at)

    def _skipped(
        self, items: Chunk, on_sent: OnSent | None, at: Position | Late | None
    ) -> tuple[Chunk, OnSent | None, Position | Late | None]:
        """Drop what a resumed stage re-made but had already delivered before."""
        dropped = min(self._space.skip, len(items))
        self._space.skip -= dropped
        if isinstance(at, Late):
            at = at.get()  # made even if nothing of it goes on: the stage's ledger counts it
        if on_sent is not None:
            on_sent = _shifted(on_sent, dropped)
        return items[dropped:], on_sent, shifted(at, dropped)

    def append(self, chunk: Chunk, items: Chunk, on_sent: OnSent | None = None) -> bool:
        """Add ``items`` to ``chunk`` if it is still the newest chunk in the stream, untaken, with
        room for them; False (nothing done) otherwise, and the caller sends them as usual.

        A stage whose workers each send a few elements at a time (a read's lanes of one record
        per object) then costs downstream one chunk and one wake-up for many sends, not one per
        send. Only the caller knows whether the elements may share ``chunk``'s position: a
        chunk's elements are ``shifted`` from the position of its first.
        """
        space = self._space
        n = len(items)
        if (
            space.tail is not chunk
            or space.skip
            or space.closed
            or len(chunk) + n > self._limit
            or not space.fits(n)
        ):
            return False
        chunk.extend(items)
        space.used += n
        if on_sent is not None:
            on_sent(self._stats.items_out, 0, n)
        self._stats.items_out += n
        return True

    async def send_before_failing(
        self, items: Chunk, on_sent: OnSent | None = None, at: Position | Late | None = None
    ) -> None:
        """Send the outputs made before a failure, which the caller raises next.

        Nothing here may take that failure's place: when nobody listens any more, or the run is
        being cancelled, the items are dropped (the run is ending anyway) and the caller goes on
        to raise its error, which the run then reports.
        """
        if self._space.skip:
            items, on_sent, at = self._skipped(items, on_sent, at)
        if not items:
            return
        try:
            if len(items) <= self._limit and self._space.fits(len(items)):
                # No yield on the way: the failure is reported before any other task runs, so
                # it stays the first error of the run.
                self._space.used += len(items)
                self._put(items, on_sent, at)
            else:
                await self.send(items, on_sent, at)
        except (DownstreamClosed, anyio.get_cancelled_exc_class()):
            pass

    async def _send(self, items: Chunk, on_sent: OnSent | None, at: Position | Late | None) -> None:
        n = len(items)
        space = self._space
        if space.fits(n):
            space.used += n
        else:
            await self._wait_room(n)
        self._put(items, on_sent, at)
        clock = self._clock
        clock.count += 1
        if clock.count - self._sent_at > 1:  # others ran since our last send
            self._resumed = time.perf_counter()
        elif time.perf_counter() - self._resumed > YIELD_S:
            await anyio.lowlevel.checkpoint()
            self._resumed = time.perf_counter()
        self._sent_at = clock.count

    def _put(self, items: Chunk, on_sent: OnSent | None, at: Position | Late | None) -> None:
        """Into the stream, room already taken."""
        n = len(items)
        if at is not None:
            # A Late position is made now, in stream order (see Late).
            self._space.stamps[id(items)] = at.get() if isinstance(at, Late) else at
        try:
            self._stream.send_nowait(items)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._space.stamps.pop(id(items), None)
            raise DownstreamClosed from None
        self._space.tail = items
        if on_sent is not None:
            on_sent(self._stats.items_out, 0, n)
        self._stats.items_out += n

    async def _wait_room(self, n: int) -> None:
        t0 = time.perf_counter()
        try:
            await self._space.take(n)
        finally:
            self.waited(t0)
            self._resumed = time.perf_counter()

    def waited(self, started: float) -> None:
        """Count time since ``started`` as blocked (waiting on downstream, not working)."""
        self._stats.waited("blocked", started, self._worker)

    def close(self) -> None:
        self._stream.close()


def _shifted(on_sent: OnSent, by: int) -> OnSent:
    return lambda first, offset, n: on_sent(first, offset + by, n)


class Inbox:
    """A worker's receiving end: returns whole chunks, ``None`` at the end of input.

    It also knows where in the upstream's output the last chunk it returned starts
    (:attr:`stamp`), so a stage can say which input position its state depends on.
    """

    __slots__ = ("_count", "_space", "_stats", "_stream", "_worker", "stamp")

    def __init__(
        self,
        stream: MemoryObjectReceiveStream[Chunk],
        space: Space,
        stats: StageStats,
        worker: int,
        start: Position | None = None,
    ) -> None:
        self._stream = stream
        self._space = space
        self._stats = stats
        self._worker = worker
        # Before the first chunk: where the upstream starts (its restored state, if any).
        self.stamp: Position | None = start
        self._count = 0  # length of the last chunk returned

    def position(self, i: int) -> Position | None:
        """The position of element ``i`` of the last chunk returned (``len`` of it: the end)."""
        return shifted(self.stamp, i)

    @property
    def after(self) -> Position | None:
        """The position right after everything this inbox returned."""
        return shifted(self.stamp, self._count)

    async def receive(self) -> Chunk | None:
        items: Chunk | None
        try:
            items = self._stream.receive_nowait()
        except anyio.WouldBlock:
            items = await self._wait_receive()
            if items is None:
                return None
        except anyio.EndOfStream:
            return self._ended()
        return self._took(items)

    def receive_nowait(self) -> Chunk | None:
        """A chunk if one is ready now, else None (the end is for ``receive`` to report)."""
        try:
            items = self._stream.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return None
        return self._took(items)

    def _took(self, items: Chunk) -> Chunk:
        n = len(items)
        space = self._space
        if items is space.tail:
            space.tail = None
        space.give(n)
        self.stamp = space.stamps.pop(id(items), None)
        self._count = n
        self._stats.items_in += n
        return items

    async def _wait_receive(self) -> Chunk | None:
        t0 = time.perf_counter()
        try:
            return await self._stream.receive()
        except anyio.EndOfStream:
            pass
        finally:
            self.waited(t0)
        return self._ended()

    def _ended(self) -> Chunk | None:
        if self._space.failed:
            raise UpstreamFailed
        self.stamp, self._count = self.after, 0
        return None

    def waited(self, started: float) -> None:
        """Count time since ``started`` as starved (waiting for input, not working)."""
        self._stats.waited("starved", started, self._worker)

    def close(self) -> None:
        self._stream.close()
        self._space.receiver_closed(self._stream)

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
