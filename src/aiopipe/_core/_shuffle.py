"""``shuffle``: the random-shuffle buffer of ``shuffle_batch`` (a RandomShuffleQueue as a stage)."""

from __future__ import annotations

import random
from typing import Any

from ._channel import Inbox, Outbox
from ._sources import _check_seed
from ._stage import RunContext, Runner, Stage, buffer_arg, positive

__all__ = ["ShuffleStage"]


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

    def runner(self, ctx: RunContext) -> Runner:
        return _Shuffler(self, ctx.seed_for(self.seed))


class _Shuffler(Runner):
    def __init__(self, stage: ShuffleStage, seed: int) -> None:
        self.keep = stage.min_after_dequeue
        # Python's Mersenne Twister: seeded draws are stable across runs, platforms and backends.
        self.rng = random.Random(seed)
        self.held: list[Any] = []

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        held, keep, below = self.held, self.keep, self.rng.randrange
        while (chunk := await inbox.receive()) is not None:
            out: list[Any] = []
            for x in chunk:
                held.append(x)
                if len(held) > keep:
                    out.append(_pop_at(held, below(len(held))))
            await outbox.send(out)
        out = []
        while held:
            out.append(_pop_at(held, below(len(held))))
        await outbox.send(out)


def _pop_at(held: list[Any], i: int) -> Any:
    # Swap with the last element and pop: O(1) instead of list.pop(i)'s O(n).
    x = held[i]
    held[i] = held[-1]
    held.pop()
    return x
