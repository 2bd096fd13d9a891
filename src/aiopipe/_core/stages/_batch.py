"""``batch`` and ``unbatch`` (the batcher of ``tf.train.batch``, with ``dynamic_pad``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..engine._channel import Inbox, Outbox
from ..engine._stage import RunContext, Runner, Stage, annotate, buffer_arg, positive
from ..engine._state import Position, resolve
from ..processes._fused import Producer, batch_of_rows, hint, last_made
from ._collate import collate, uncollate

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

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Batcher(self, last_made(ctx))

    def params(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "drop_remainder": self.drop_remainder}

    def scale(self, upstream: int, batches: list[int]) -> int:
        batches.append(self.batch_size)
        return upstream * self.batch_size

    def collate(self, items: list[Any]) -> Any:
        if self.collate_fn is not None:
            return self.collate_fn(items)
        return collate(items, pad=self.pad, padding_value=self.padding_value)


class _Batcher(Runner):
    """Its mark for a chunk of batches is the input position where each batch starts (and
    where the next would): a batch boundary holds nothing, so that is the whole state."""

    def __init__(self, stage: BatchStage, maker: Producer | None = None) -> None:
        self.stage = stage
        self.maker = maker  # a process map made before us in this run (maybe right before)
        self.held: list[Any] = []
        self.index = 0  # input index of held[0]
        # The default collate of a process map's rows may be a view of them (see _fused).
        self.fused = stage.collate_fn is None and not stage.pad

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        resolve(mark[k], out)
        return {}

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        size = self.stage.batch_size
        if self.fused and self.maker is not None and self.maker.slot == self.slot - 1:
            self.maker.align(size, 0)  # before its first slice; the first rows confirm it
        held_at = inbox.stamp  # the input position of held[0]
        while (chunk := await inbox.receive()) is not None:
            # Fewer than a batch are held: chunk[i] is input index base + i.
            base = self.index + len(self.held)
            if not self.held:
                held_at = inbox.stamp
            if self.fused and self.index == 0 and not self.held and chunk:
                hint(chunk[0], self.slot, size)  # first chunk: align the map's slices early
            self.held.extend(chunk)
            out: list[Any] = []
            starts: list[Position | None] = [held_at]
            t0 = time.perf_counter()
            while len(self.held) >= size:
                out.append(self._collate(self.held[:size]))
                del self.held[:size]
                held_at = inbox.position(self.index - base)
                starts.append(held_at)
                if time.perf_counter() - t0 > FLUSH_S:
                    await outbox.send(out, at=(self, starts, 0))
                    out, starts, t0 = [], [held_at], time.perf_counter()
            await outbox.send(out, at=(self, starts, 0))
        if self.held and not self.stage.drop_remainder:
            await outbox.send([self._collate(self.held)], at=(self, [held_at, inbox.after], 0))

    def _collate(self, items: list[Any]) -> Any:
        try:
            batch = batch_of_rows(items, self.slot) if self.fused else None
            if batch is None:
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

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Unbatcher(self.name)

    def scale(self, upstream: int, batches: list[int]) -> int:
        return upstream // batches.pop() if batches else 1


class _Unbatcher(Runner):
    def __init__(self, name: str) -> None:
        self.name = name

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        index = 0
        while (chunk := await inbox.receive()) is not None:
            for i, batch in enumerate(chunk):
                try:
                    rows = uncollate(batch)
                except Exception as exc:
                    annotate(exc, self.name, index)
                    raise
                index += 1
                # A replay mark: the rows follow from their batch.
                await outbox.send(rows, at=(self, ({}, inbox.position(i)), 0))
