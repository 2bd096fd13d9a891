"""Where the input elements a stage still holds sit in its input stream (see ``_state``).

A stage that holds elements across chunks (a window, buckets, an interleave cycle) describes
its state by the input index of each element it holds and re-reads its input from the oldest
of them when it resumes. For that it needs the input *position* of the oldest one: this keeps
``(first index, position)`` of every chunk received that may still hold it.
"""

from __future__ import annotations

from collections import deque

from ._channel import Inbox
from ._state import Position, shifted

__all__ = ["InputPositions"]


class InputPositions:
    """The positions of a stage's input elements by index, for indexes that only grow."""

    __slots__ = ("chunks", "end", "received")

    def __init__(self, start: Position | None, received: int = 0) -> None:
        # (index of the chunk's first element, its position) of each chunk still needed.
        self.chunks: deque[tuple[int, Position | None]] = deque()
        self.received = received  # input elements received: the index of the next one
        self.end = start  # the position right after everything received

    def add(self, inbox: Inbox, n: int) -> None:
        """The inbox just returned a chunk of ``n`` elements."""
        self.chunks.append((self.received, inbox.stamp))
        self.received += n
        self.end = inbox.after

    def at(self, index: int) -> Position | None:
        """The position of input element ``index`` (``received`` or more: the end of what was
        received). Forgets the chunks before it: later calls must not ask for less."""
        chunks = self.chunks
        while len(chunks) > 1 and chunks[1][0] <= index:
            chunks.popleft()
        if index < self.received and chunks and chunks[0][0] <= index:
            base, at = chunks[0]
            return shifted(at, index - base)
        return self.end
