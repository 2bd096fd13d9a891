"""``window``: lists of consecutive elements, with tf.data's ``Dataset.window`` semantics.

Window ``k`` starts at input ``k * shift`` and holds inputs ``start, start + stride, ...``,
``size`` of them; near the end windows hold what is left (at least one element) unless
``drop_remainder``.
"""

from __future__ import annotations

from typing import Any

from ._channel import Inbox, Outbox
from ._stage import RunContext, Runner, Stage, buffer_arg, positive

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

    def runner(self, ctx: RunContext) -> Runner:
        return _Windower(self)

    def scale(self, upstream: int, batches: list[int]) -> int:
        return upstream * self.size


class _Windower(Runner):
    def __init__(self, stage: WindowStage) -> None:
        self.stage = stage
        # held[0] is input number `base`; the next window starts at input `start` (>= base).
        self.held: list[Any] = []
        self.base = 0
        self.start = 0

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        st = self.stage
        while (chunk := await inbox.receive()) is not None:
            self.held.extend(chunk)
            self._trim()
            out: list[list[Any]] = []
            # Windows by offset into what is held; the consumed head is dropped once per chunk.
            lo = self.start - self.base
            while lo + st.span <= len(self.held):
                out.append(self.held[lo : lo + st.span : st.stride])
                lo += st.shift
            self.start = self.base + lo
            self._trim()
            await outbox.send(out)
        if not st.drop_remainder:
            out = []
            while self.start < self.base + len(self.held):
                out.append(self._window(self.base + len(self.held) - self.start))
                self._advance()
            await outbox.send(out)

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
