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
    worker happens to receive.
    """

    def __init__(self) -> None:
        self.pending: deque[tuple[int, list[Any], Position | None]] = deque()
        self.next_index = 0
        self.done = False
        self.after: Position | None = None  # the position after the last input received
        self._receiving = anyio.Lock()
        # Set (and replaced) whenever a receive ends: every waiting worker wakes at once. Queuing
        # them on the lock instead passed it on one worker per event-loop turn: with 256
        # workers on slow I/O (read(parallel=256) of URLs), a median of 196 sat in that convoy
        # and only ~70 requests were in flight.
        self._received = anyio.Event()

    async def take(
        self, inbox: Inbox, size: int, cap: Callable[[int, int], int] | None = None
    ) -> tuple[int, list[Any], Position | None] | None:
        """Up to ``size`` elements (waiting for input if none are here); None at the end."""
        if self.after is None and not self.pending:
            self.after = inbox.stamp  # where the input starts
        while not self.pending:
            if self.done:
                return None
            if self._receiving.locked():
                # A sibling is receiving: waiting for input, starved, not busy.
                t0 = time.perf_counter()
                await self._received.wait()
                inbox.waited(t0)
                continue
            async with self._receiving:
                # One worker receives at a time, so input indexes follow stream order.
                try:
                    chunk = await inbox.receive()
                finally:
                    self._received.set()
                    self._received = anyio.Event()
                if chunk is None:
                    self.done = True
                    self.after = inbox.after
                    return None
                self.pending.append((self.next_index, chunk, inbox.stamp))
                self.after = inbox.after
                self.next_index += len(chunk)
        if cap is not None:
            size = cap(self.pending[0][0], size)
        return self.take_nowait(size)

    def untaken(self) -> tuple[int, Position | None]:
        """The input index and position of the next element not taken yet."""
        if self.pending:
            base, _, at = self.pending[0]
            return base, at
        return self.next_index, self.after

    def take_nowait(self, size: int) -> tuple[int, list[Any], Position | None] | None:
        """Up to ``size`` elements already received, or None if there are none."""
        if not self.pending:
            return None
        base, items, at = self.pending[0]
        if len(items) <= size:
            self.pending.popleft()
            return base, items, at
        self.pending[0] = (base + size, items[size:], shifted(at, size))
        return base, items[:size], at
