"""Exact resume for a stage whose output order depends on timing (``map(ordered=False)``).

Such a stage works on *slices* of its input (``size`` elements from input index ``base``) and
sends each slice's results when they are done. Which slices were delivered is a set, not a
prefix: all inputs below a *frontier*, plus some finished slices beyond it. That set is its state
at a position, and it stays small (the slices in flight).

But the stages after it may resolve their own state to a position *behind* what they received
(a shuffle re-reads from its oldest held element, a batch replays its last chunk), and expect to
be fed the same elements again in the same order. So the state also lists, in order, every slice
sent after the position (the *replay*), and a resumed stage sends those first, in that order,
before anything new. Each send's mark links to the next one, so the replay is found by walking
forward from the position's mark.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from typing import Any

from ..engine._state import Position, resolve

__all__ = ["Ledger", "Sent"]


class Sent:
    """The mark of one send: the frontier before it, the slices sent before it (``log[:count]``,
    those at or past the frontier), the slice it carried, and the next send."""

    __slots__ = ("at", "count", "frontier", "log", "next", "slice")

    def __init__(
        self,
        frontier: int,
        at: Position | None,
        log: list[tuple[int, int]],
        piece: tuple[int, int],
    ) -> None:
        self.frontier = frontier
        self.at = at  # the input position of the frontier
        # The ledger's log of sends, shared: appended to after this send, never changed before
        # ``count`` (compaction makes a new list), so a mark costs O(1), not a copy of the set.
        self.log = log
        self.count = len(log)
        self.slice = piece  # (base, size) this send carried
        self.next: Sent | None = None

    def done(self) -> list[tuple[int, int]]:
        """The slices sent before this one at or past its frontier."""
        first = self.frontier
        return sorted(e for e in self.log[: self.count] if e[0] >= first)


class Ledger:
    """What an unordered stage has taken and sent, and how to resume it exactly."""

    def __init__(self, untaken: Callable[[], tuple[int, Position | None]]) -> None:
        self._untaken = untaken  # the next input index not taken yet, and its position
        self.pending: dict[int, tuple[int, Position | None]] = {}  # base -> (size, position)
        self._lowest: list[int] = []  # a heap of pending bases (some already gone): the frontier
        # Slices sent, in order, and since the last compaction: the marks' delivered sets.
        self.log: list[tuple[int, int]] = []
        self._kept = 0  # the log's length after the last compaction
        self.last: Sent | None = None
        # Set by restore: the slices to send first, in order, and the input ranges to drop.
        self.replay: list[tuple[int, int]] = []
        self.drop: dict[int, int] = {}
        self.start = 0  # the restored frontier: the input index the resumed input starts at
        self._bounds: list[int] = []
        self._drops: list[int] = []

    # -- running -----------------------------------------------------------------------------
    def taken(self, base: int, size: int, at: Position | None) -> None:
        self.pending[base] = (size, at)
        heapq.heappush(self._lowest, base)

    def sent(self, base: int, size: int) -> Sent:
        """The mark of the send of slice (base, size), made right before it enters the stream."""
        frontier, at = self._frontier()
        node = Sent(frontier, at, self.log, (base, size))
        if self.last is not None:
            self.last.next = node
        self.last = node
        got = self.pending.pop(base, None)
        if got is None or got[0] < size:  # a replayed slice computed in pieces
            for b in [b for b in self.pending if base <= b < base + size]:
                del self.pending[b]
        self.log.append((base, size))
        if len(self.log) > 2 * self._kept + 64:
            # Sends below the frontier are in every later mark's prefix: drop them, in a new
            # list (the marks made so far keep theirs).
            low, _ = self._frontier()
            self.log = [e for e in self.log if e[0] >= low]
            self._kept = len(self.log)
        return node

    def _frontier(self) -> tuple[int, Position | None]:
        lowest, pending = self._lowest, self.pending
        while lowest and lowest[0] not in pending:
            heapq.heappop(lowest)
        if lowest:
            base = lowest[0]
            return base, pending[base][1]
        return self._untaken()

    # -- saving ------------------------------------------------------------------------------
    @staticmethod
    def resolve(node: Sent, k: int, out: dict[int, Any]) -> dict[str, Any]:
        resolve(node.at, out)
        first = node.frontier
        replay: list[list[int]] = []
        walk: Sent | None = node
        while walk is not None:
            replay.append([walk.slice[0] - first, walk.slice[1]])
            walk = walk.next
        state: dict[str, Any] = {
            "frontier": first,
            "done": _merged([[b - first, n] for b, n in node.done()]),
            "replay": _merged(replay),
        }
        if k:
            state["skip"] = k
        return state

    # -- resuming ----------------------------------------------------------------------------
    def restore(self, state: dict[str, Any]) -> None:
        first = int(state["frontier"])
        self.start = first
        self.drop = {first + int(b): int(n) for b, n in state["done"]}
        self.replay = [(first + int(b), int(n)) for b, n in state["replay"]]
        self.log = sorted(self.drop.items())  # delivered before: in every mark's set
        self._kept = len(self.log)
        # Input indexes a slice must not straddle while resuming (starts and ends of ranges).
        edges = {b for b, _ in self.replay} | {b + n for b, n in self.replay}
        edges |= set(self.drop) | {b + n for b, n in self.drop.items()}
        self._bounds = sorted(edges)
        self._drops = sorted(self.drop)

    def limit(self, index: int, size: int) -> int:
        """The size of the next slice from ``index`` while resuming: up to the next bound."""
        bounds = self._bounds
        i = bisect.bisect_right(bounds, index)
        return min(size, bounds[i] - index) if i < len(bounds) else size

    def dropped(self, base: int) -> bool:
        """Whether the slice at ``base`` was delivered before the resume (it lies in a range
        sent beyond the saved frontier)."""
        i = bisect.bisect_right(self._drops, base) - 1
        return i >= 0 and base < self._drops[i] + self.drop[self._drops[i]]


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    """Adjacent ranges as one (slices sent one after another in input order): the state stays
    small when the order was mostly kept."""
    out: list[list[int]] = []
    for b, n in ranges:
        if out and out[-1][0] + out[-1][1] == b:
            out[-1][1] += n
        else:
            out.append([b, n])
    return out
