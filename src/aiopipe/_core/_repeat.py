"""``repeat``: the whole upstream pipeline again, ``count`` times or forever."""

from __future__ import annotations

from typing import Any

import anyio

from ._channel import Inbox, Outbox
from ._nested import NestedOpener, next_chunk
from ._stage import RunContext, Runner, Stage

__all__ = ["RepeatSource", "check_count"]


def check_count(count: object) -> int | None:
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"repeat(count) needs a non-negative int or None (forever), got {count!r}")
    return count


class RepeatSource(Stage):
    """Runs the upstream pipeline once per pass, as a nested run: every pass is a fresh run, so
    a ``seed=None`` shuffle upstream draws a new order each pass (tf.data's default)."""

    def __init__(self, pipe: Any, count: int | None) -> None:
        self.pipe = pipe
        self.count = check_count(count)
        times = "forever" if self.count is None else f"{self.count}x"
        self.name = f"repeat({times}: {' -> '.join(pipe.stage_names)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Repeater(self, NestedOpener(ctx))


class _Repeater(Runner):
    def __init__(self, stage: RepeatSource, opener: NestedOpener) -> None:
        self.stage = stage
        self.opener = opener

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        done = 0
        while self.stage.count is None or done < self.stage.count:
            got = 0
            async with self.opener.open(self.stage.pipe) as run:
                while (chunk := await next_chunk(run)) is not None:
                    got += len(chunk)
                    await outbox.send(chunk)
            done += 1
            if got == 0:
                return  # an empty pass repeated is still empty: end instead of spinning
            await anyio.lowlevel.checkpoint()
