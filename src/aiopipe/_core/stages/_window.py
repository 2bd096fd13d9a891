"""``window``: lists of consecutive elements, with tf.data's ``Dataset.window`` semantics.

Window ``k`` starts at input ``k * shift`` and holds inputs ``start, start + stride, ...``,
``size`` of them; near the end windows hold what is left (at least one element) unless
``drop_remainder``.
"""

from __future__ import annotations

from typing import Any

from ..engine._channel import Inbox, Outbox
from ..engine._inputs import InputPositions
from ..engine._stage import RunContext, Runner, Stage, buffer_arg, positive
from ..engine._state import Position

__all__ = ["WindowStage"]


class WindowStage(Stage):
    def __init__(
        self,
        size: int,
        *,
        shift: int | None,
        stride: int,
        drop_remainder: bool,
        buffer: int | None,
    ) -> None:
        self.size = positive("window(size)", size)
        self.shift = self.size if shift is None else positive("window(shift=)", shift)
        self.stride = positive("window(stride=)", stride)
        self.drop_remainder = bool(drop_remainder)
        self.span = (self.size - 1) * self.stride + 1  # inputs a full window covers
        self.name = f"window({self.size})"
        self.buffer = buffer_arg("window", buffer)

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Windower(self)

    def params(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "shift": self.shift,
            "stride": self.stride,
            "drop_remainder": self.drop_remainder,
        }

    def scale(self, upstream: int, batches: list[int]) -> int:
        return upstream * self.size


class _Windower(Runner):
    """A window is a function of the inputs from its first one on, so the state before a
    chunk of windows is the input position of the next window's first element (and, when
    ``shift`` skips inputs not yet received, how many to drop first) plus the windows made: a
    replay mark. A resumed window re-reads from there; the state holds no element."""

    def __init__(self, stage: WindowStage) -> None:
        self.stage = stage
        # held[0] is input number `base`; the next window starts at input `start` (>= base).
        self.held: list[Any] = []
        self.base = 0
        self.start = 0
        self.made = 0  # windows so far
        self.inputs = InputPositions(None)

    def restore(self, state: dict[str, Any]) -> None:
        self.made = int(state["made"])
        self.start = int(state["gap"])  # input 0 of the resumed input is the saved position

    def _mark(self) -> Position:
        """The position of the next window: its first input's, or the end and a gap."""
        gap = max(0, self.start - self.inputs.received)
        own = {"made": self.made, "gap": gap}
        return (self, (own, self.inputs.at(self.start - gap)), 0)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        st = self.stage
        self.inputs = InputPositions(inbox.stamp)
        while (chunk := await inbox.receive()) is not None:
            self.inputs.add(inbox, len(chunk))
            self.held.extend(chunk)
            self._trim()
            at = self._mark()
            out: list[list[Any]] = []
            # Windows by offset into what is held; the consumed head is dropped once per chunk.
            lo = self.start - self.base
            while lo + st.span <= len(self.held):
                out.append(self.held[lo : lo + st.span : st.stride])
                lo += st.shift
            self.start = self.base + lo
            self.made += len(out)
            self._trim()
            await outbox.send(out, at=at)
        if not st.drop_remainder:
            at = self._mark()
            out = []
            while self.start < self.base + len(self.held):
                out.append(self._window(self.base + len(self.held) - self.start))
                self._advance()
            self.made += len(out)
            await outbox.send(out, at=at)

    def _window(self, span: int) -> list[Any]:
        lo = self.start - self.base
        return self.held[lo : lo + span : self.stage.stride]

    def _advance(self) -> None:
        """Move to the next window's start and forget the inputs no window needs any more."""
        self.start += self.stage.shift
        self._trim()

    def _trim(self) -> None:
        drop = min(self.start - self.base, len(self.held))
        if drop > 0:
            del self.held[:drop]
            self.base += drop
