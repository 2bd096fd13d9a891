"""``repeat``: the whole upstream pipeline again, ``count`` times or forever."""

from __future__ import annotations

from typing import Any

import anyio

from ..engine._channel import Outbox
from ..engine._stage import RunContext, Runner, Source, Stage
from ..engine._state import shifted
from ._nested import NestedOpener, check_nested, nested_params, nested_state, next_marked

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

    resumable = True

    def __init__(self, pipe: Any, count: int | None) -> None:
        self.pipe = pipe
        self.count = check_count(count)
        times = "forever" if self.count is None else f"{self.count}x"
        self.name = f"repeat({times}: {' -> '.join(pipe.stage_names)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Repeater(self, NestedOpener(ctx))

    def params(self) -> dict[str, Any]:
        return {"count": self.count, "nested": nested_params([self.pipe])}

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        done = state.get("pass")
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise ValueError(f"{self.name}: the state is damaged (pass={done!r:.80})")
        check_nested(self.pipe, state.get("run"), f"{self.name}, pass {done}")


class _Repeater(Source):
    """Its mark: (pass, outputs of that pass before the chunk, the pass's run, the chunk's
    position in it). Pass ``p`` is nested run ``p`` of the opener, so its seeds are the same
    in a resumed run."""

    def __init__(self, stage: RepeatSource, opener: NestedOpener) -> None:
        self.stage = stage
        self.opener = opener
        self.first = 0  # the pass to start with
        self.got = 0  # outputs of that pass before the restored state
        self.state: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        done, got, run, at = mark
        return {"pass": done, "got": got + k, "run": nested_state(run, shifted(at, k))}

    def restore(self, state: dict[str, Any]) -> None:
        self.first, self.got, self.state = int(state["pass"]), int(state["got"]), state["run"]

    async def produce(self, worker: int, outbox: Outbox) -> None:
        done = self.first
        while self.stage.count is None or done < self.stage.count:
            got, self.got = self.got, 0
            state, self.state = self.state, None
            async with self.opener.open(self.stage.pipe, done, state) as run:
                while (marked := await next_marked(run)) is not None:
                    chunk, at = marked
                    mark = (done, got, run, at)
                    got += len(chunk)
                    await outbox.send(chunk, at=(self, mark, 0))
            done += 1
            if got == 0:
                return  # an empty pass repeated is still empty: end instead of spinning
            await anyio.lowlevel.checkpoint()
