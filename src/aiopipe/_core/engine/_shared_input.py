"""One input stream shared by the N workers of a stage, handed out in indexed slices."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from ._channel import Inbox
from ._state import Position, shifted

__all__ = ["SharedInput"]


class SharedInput:
    """Workers take slices of ``size`` elements with the input index and the input position
    (see ``_state``) of the first one.

    Only one worker receives from the stream at a time, so indexes follow stream order whichever
    worker happens to receive. The others wait in line, and a received chunk wakes as many of
    them as it can feed, plus one to receive next: a lock would pass on one worker per
    event-loop turn (with 256 workers on slow I/O, read(parallel=256) of URLs, a median of 196
    sat in that convoy and only ~70 requests were in flight), and waking every waiter for
    every chunk cost O(workers) wake-ups per chunk (1,024 lanes on W6: most of them woke only
    to wait again).
    """

    def __init__(self) -> None:
        # Received chunks not yet all taken: (input index, elements, position). The first
        # one's elements before ``_head`` are taken (an offset, not a slice per take: slicing
        # made a chunk cost O(chunk**2) when workers take one element at a time).
        self.pending: deque[tuple[int, list[Any], Position | None]] = deque()
        self._head = 0
        self.next_index = 0
        self.done = False
        self.after: Position | None = None  # the position after the last input received
        self._receiving = False
        self._waiting: deque[anyio.Event] = deque()
        # The running backend's Event class, found on the first wait (anyio.Event() looks the
        # backend up on every call).
        self._event: Callable[[], anyio.Event] | None = None

    async def take(
        self, inbox: Inbox, size: int, cap: Callable[[int, int], int] | None = None
    ) -> tuple[int, list[Any], Position | None] | None:
        """Up to ``size`` elements (waiting for input if none are here); None at the end."""
        if self.after is None and not self.pending:
            self.after = inbox.stamp  # where the input starts
        while not self.pending:
            if self.done:
                return None
            if self._receiving:
                await self._wait_in_line(inbox)
            else:
                await self._receive(inbox)
        if cap is not None:
            size = cap(self.pending[0][0] + self._head, size)
        return self.take_nowait(size)

    async def _wait_in_line(self, inbox: Inbox) -> None:
        """A sibling is receiving: wait for it (starved, not busy)."""
        if self._event is None:
            self._event = type(anyio.Event())
        event = self._event()
        self._waiting.append(event)
        t0 = time.perf_counter()
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self._wake(1)  # woken as we were cancelled: pass the turn on
            else:
                self._waiting.remove(event)
            raise
        finally:
            inbox.waited(t0)

    async def _receive(self, inbox: Inbox) -> None:
        self._receiving = True
        chunk: list[Any] | None = None
        try:
            chunk = await inbox.receive()
        finally:
            self._receiving = False
            if chunk is None:
                # The end (every waiter must see it), or we failed or were cancelled (any
                # waiter may receive in our place).
                self._wake(len(self._waiting))
        if chunk is None:
            self.done = True
            self.after = inbox.after
            return
        self.pending.append((self.next_index, chunk, inbox.stamp))
        self.after = inbox.after
        self.next_index += len(chunk)
        # Enough waiters for what we do not take ourselves, plus one to receive next.
        self._wake(len(chunk))

    def _wake(self, n: int) -> None:
        waiting = self._waiting
        for _ in range(min(n, len(waiting))):
            waiting.popleft().set()

    def untaken(self) -> tuple[int, Position | None]:
        """The input index and position of the next element not taken yet."""
        if self.pending:
            base, _, at = self.pending[0]
            return base + self._head, shifted(at, self._head)
        return self.next_index, self.after

    def take_nowait(self, size: int) -> tuple[int, list[Any], Position | None] | None:
        """Up to ``size`` elements already received, or None if there are none."""
        if not self.pending:
            return None
        base, items, at = self.pending[0]
        head = self._head
        if len(items) - head <= size:
            self.pending.popleft()
            self._head = 0
            if head == 0:
                return base, items, at
            return base + head, items[head:], shifted(at, head)
        self._head = head + size
        return base + head, items[head : head + size], shifted(at, head)
