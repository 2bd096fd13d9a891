"""``shuffle``: the random-shuffle buffer of ``shuffle_batch`` (a RandomShuffleQueue as a stage)."""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from ..engine._channel import Inbox, Outbox
from ..engine._stage import RunContext, Runner, Stage, buffer_arg, positive
from ..engine._state import Position, resolve, shifted
from ._sources import _check_seed

__all__ = ["ShuffleStage"]

DRAWS = 1024  # draws made at once, from (seed, block)


class ShuffleStage(Stage):
    def __init__(
        self,
        buffer_size: int,
        *,
        min_after_dequeue: int | None,
        seed: int | None,
        name: str | None,
        buffer: int | None,
    ) -> None:
        self.buffer_size = positive("shuffle(buffer_size)", buffer_size)
        if min_after_dequeue is None:
            min_after_dequeue = buffer_size - 1
        if (
            isinstance(min_after_dequeue, bool)
            or not isinstance(min_after_dequeue, int)
            or not 0 <= min_after_dequeue < buffer_size
        ):
            raise ValueError(
                f"shuffle needs min_after_dequeue in [0, buffer_size={buffer_size}), "
                f"got {min_after_dequeue!r}"
            )
        self.min_after_dequeue = min_after_dequeue
        self.seed = _check_seed(seed)
        self.name = name if name is not None else "shuffle"
        self.buffer = buffer_arg("shuffle", buffer)

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Shuffler(self, ctx.seed_for(self.seed))

    def params(self) -> dict[str, Any]:
        return {
            "buffer_size": self.buffer_size,
            "min_after_dequeue": self.min_after_dequeue,
            "seed": self.seed,
        }


class _Shuffler(Runner):
    """The buffer, and the input index of every element in it.

    Draws are a pure function of (seed, output number), so no generator state is saved. A mark
    (taken before each chunk of outputs) holds the output number, the number of inputs taken,
    the input index of every held element in buffer order, and the input position of the oldest
    of them: a resumed shuffle re-reads its input from there, keeps exactly the elements that
    were held, in their slots, and goes on as the original did. The state grows with the buffer,
    never with the position.
    """

    def __init__(self, stage: ShuffleStage, seed: int) -> None:
        self.keep = stage.min_after_dequeue
        self.seed = seed
        self.held: list[Any] = []
        self.idx: list[int] = []  # input index of held[i]
        self.made = 0  # outputs so far
        self.taken = 0  # inputs so far
        # Input chunks that may still have elements in the buffer, (first index, position), from
        # ``log_start`` on. Only appended to, and replaced (not cut) when compacted, so a mark
        # can keep a slice of it by reference.
        self.log: list[tuple[int, Position | None]] = []
        self.log_start = 0
        self.plan: dict[str, Any] | None = None  # a restored state, until the buffer is refilled
        self._block = -1
        self._draws = np.empty(0)

    def _draw(self, n: int) -> int:
        """A uniform index below ``n`` for output number ``self.made``."""
        block, i = divmod(self.made, DRAWS)
        if block != self._block:
            self._block = block
            self._draws = np.random.default_rng([self.seed, block]).random(DRAWS)
        return int(self._draws[i] * n)

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        made, taken, idx, first, up, snap, _ = mark
        state: dict[str, Any] = {"made": made, "taken": taken}
        if not _picked(idx, taken, snap, out):
            resolve(up, out)
            state.update(first=first, held=[i - first for i in idx])
        else:
            state["picked"] = len(idx)
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state
        self.made = int(state["made"])

    def _mark(self, end: Position | None) -> Position:
        """The position of the next output: the state now, re-read from the oldest held."""
        first = min(self.idx) if self.idx else self.taken
        log, start = self.log, self.log_start
        while start + 1 < len(log) and log[start + 1][0] <= first:
            start += 1
        if start > 64 and start > len(log) // 2:
            log = self.log = log[start:]  # marks made before keep the old list
            start = 0
        self.log_start = start
        if start < len(log) and log[start][0] <= first:
            base, at = log[start]
            up = shifted(at, first - base)
        else:
            up = end  # nothing held: input resumes right after what was taken
        snap = (log, start, len(log))
        return (self, (self.made, self.taken, tuple(self.idx), first, up, snap, end), 0)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        chunk = None
        if self.plan is not None:
            chunk = await self._refill(inbox)
            if len(self.held) > self.keep:  # the mark was taken right before this output
                first = self._mark(None)
                await outbox.send([self._pop(self._draw(len(self.held)))], at=first)
        held, idx, keep = self.held, self.idx, self.keep
        while chunk is not None or (chunk := await self._receive(inbox)) is not None:
            out: list[Any] = []
            at: Position | None = None
            for x in chunk:
                held.append(x)
                idx.append(self.taken)
                self.taken += 1
                if len(held) > keep:
                    if at is None:
                        at = self._mark(None)
                    out.append(self._pop(self._draw(len(held))))
            chunk = None
            await outbox.send(out, at=at)
        at = self._mark(inbox.after)
        out = []
        while held:
            out.append(self._pop(self._draw(len(held))))
        await outbox.send(out, at=at)

    async def _receive(self, inbox: Inbox) -> list[Any] | None:
        chunk = await inbox.receive()
        if chunk is not None:
            self.log.append((self.taken, inbox.stamp))
        return chunk

    def _pop(self, i: int) -> Any:
        # Swap with the last element and pop: O(1) instead of list.pop(i)'s O(n).
        held, idx = self.held, self.idx
        x = held[i]
        held[i] = held[-1]
        held.pop()
        idx[i] = idx[-1]
        idx.pop()
        self.made += 1
        return x

    async def _refill(self, inbox: Inbox) -> list[Any] | None:
        """Re-read the input from the oldest element the saved buffer held, back to the state
        it describes: the held elements in their slots, the others (already sent) dropped.
        Returns the part of the last chunk read that is new input."""
        plan, self.plan = self.plan, None
        assert plan is not None
        taken = int(plan["taken"])
        if "picked" in plan:
            # The source sends exactly the held elements first, in their slots' order.
            n = int(plan["picked"])
            first = taken - n
            slots = {first + slot: slot for slot in range(n)}
        else:
            first = int(plan["first"])
            slots = {first + int(r): slot for slot, r in enumerate(plan["held"])}
        self.held = [None] * len(slots)
        self.idx = [0] * len(slots)
        self.taken = first
        while self.taken < taken:
            chunk = await self._receive(inbox)
            if chunk is None:
                raise ValueError(
                    f"shuffle: the saved state needs input up to element {taken}, but the "
                    f"input ended at {self.taken}: it is not the input the state was saved with"
                )
            for i, x in enumerate(chunk):
                n = self.taken
                if n >= taken:
                    return chunk[i:]  # past the saved state: new input
                slot = slots.get(n)
                if slot is not None:
                    self.held[slot] = x
                    self.idx[slot] = n
                self.taken += 1
        return None


def _picked(
    idx: tuple[int, ...],
    taken: int,
    snap: tuple[list[tuple[int, Position | None]], int, int],
    out: dict[int, Any],
) -> bool:
    """When every held element, and the next input, comes straight from a source that can
    seek (through stages that keep elements one to one and save nothing), write the source's
    state as "send these rows first, then go on": a resume then makes only the held elements
    again, not everything since the oldest of them."""
    log, start, stop = snap
    entries = log[start:stop]
    if not entries:
        return False
    bases = [b for b, _ in entries]

    def position(i: int) -> Position | None:
        j = bisect.bisect_right(bases, i) - 1
        return shifted(entries[j][1], i - bases[j]) if j >= 0 else None

    then = position(taken)
    if then is None:
        return False
    source = then[0]
    row_number = getattr(source, "row_number", None)
    if row_number is None:
        return False
    rows = []
    for i in idx:
        at = position(i)
        if at is None or at[0] is not source:
            return False
        rows.append(row_number(at[1], at[2]))
    out[source.slot] = source.picked(rows, row_number(then[1], then[2]))  # type: ignore[attr-defined]
    return True
