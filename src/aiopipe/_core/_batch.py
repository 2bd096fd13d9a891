"""``batch`` and ``unbatch`` (the batcher of ``tf.train.batch``, with ``dynamic_pad``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ._channel import Inbox, Outbox
from ._collate import collate, uncollate
from ._stage import RunContext, Runner, Stage, annotate, buffer_arg, positive

__all__ = ["BatchStage", "UnbatchStage"]

FLUSH_S = 0.001


class BatchStage(Stage):
    def __init__(
        self,
        batch_size: int,
        *,
        drop_remainder: bool,
        pad: bool,
        padding_value: Any,
        collate_fn: Callable[[Sequence[Any]], Any] | None,
        name: str | None,
        buffer: int | None,
    ) -> None:
        self.batch_size = positive("batch(batch_size)", batch_size)
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"batch(collate=) needs a callable, got {type(collate_fn).__name__}")
        if collate_fn is not None and pad:
            raise ValueError("batch(pad=True) pads inside ap.collate; pad in your collate= instead")
        self.drop_remainder = bool(drop_remainder)
        self.pad = bool(pad)
        self.padding_value = padding_value
        self.collate_fn = collate_fn
        self.name = name if name is not None else "batch"
        self.buffer = buffer_arg("batch", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _Batcher(self)

    def scale(self, upstream: int, batches: list[int]) -> int:
        batches.append(self.batch_size)
        return upstream * self.batch_size

    def collate(self, items: list[Any]) -> Any:
        if self.collate_fn is not None:
            return self.collate_fn(items)
        return collate(items, pad=self.pad, padding_value=self.padding_value)


class _Batcher(Runner):
    def __init__(self, stage: BatchStage) -> None:
        self.stage = stage
        self.held: list[Any] = []
        self.index = 0  # input index of held[0]

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        size = self.stage.batch_size
        while (chunk := await inbox.receive()) is not None:
            self.held.extend(chunk)
            out: list[Any] = []
            t0 = time.perf_counter()
            while len(self.held) >= size:
                out.append(self._collate(self.held[:size]))
                del self.held[:size]
                if time.perf_counter() - t0 > FLUSH_S:
                    await outbox.send(out)
                    out, t0 = [], time.perf_counter()
            await outbox.send(out)
        if self.held and not self.stage.drop_remainder:
            await outbox.send([self._collate(self.held)])

    def _collate(self, items: list[Any]) -> Any:
        try:
            batch = self.stage.collate(items)
        except Exception as exc:
            end = self.index + len(items) - 1
            annotate(exc, self.stage.name, self.index, f"the batch of elements {self.index}..{end}")
            raise
        self.index += len(items)
        return batch


class UnbatchStage(Stage):
    def __init__(self, name: str | None, buffer: int | None) -> None:
        self.name = name if name is not None else "unbatch"
        self.buffer = buffer_arg("unbatch", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _Unbatcher(self.name)

    def scale(self, upstream: int, batches: list[int]) -> int:
        return upstream // batches.pop() if batches else 1


class _Unbatcher(Runner):
    def __init__(self, name: str) -> None:
        self.name = name

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        index = 0
        while (chunk := await inbox.receive()) is not None:
            for batch in chunk:
                try:
                    rows = uncollate(batch)
                except Exception as exc:
                    annotate(exc, self.name, index)
                    raise
                index += 1
                await outbox.send(rows)
