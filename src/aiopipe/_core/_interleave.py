"""``interleave``: elements of several inner sequences in tf.data's deterministic order.

``fn(x)`` gives each input element's inner sequence: a Pipeline (run as a nested run) or a sync
or async iterable. A cycle of ``cycle_length`` slots holds open inner sequences; the order is
exactly tf.data's ``Dataset.interleave``: at the current slot take up to ``block_length``
elements, then move to the next slot; a slot whose sequence ends is emptied and the cycle moves
on; an empty slot, when reached, opens the next input element's sequence and reads from it at
once; once input runs out, empty slots are skipped until every sequence has ended.

Every open sequence is produced by a feed task of its own into a small buffer, ``workers`` of
them at once (sync iterables then run on the run's threads), so the order never depends on
which feed is faster. A feed's error is handed to the reading task and raised there, as the
same object.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._channel import Inbox, Outbox
from ._nested import NestedOpener, next_chunk
from ._stage import (
    RunContext,
    Runner,
    Stage,
    annotate,
    buffer_arg,
    fn_name,
    is_async_callable,
    maybe_aclosing,
    positive,
)

__all__ = ["InterleaveStage"]

PIECE = 256  # elements a feed hands over at a time
FEED_BUFFER = 2  # pieces a feed may be ahead of the reader


class InterleaveStage(Stage):
    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        cycle_length: int,
        block_length: int,
        workers: int,
        buffer: int | None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"interleave needs a callable fn, got {type(fn).__name__}")
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.cycle_length = positive("interleave(cycle_length=)", cycle_length)
        self.block_length = positive("interleave(block_length=)", block_length)
        self.parallel = positive("interleave(workers=)", workers)
        self.name = f"interleave({fn_name(fn)})"
        self.buffer = buffer_arg("interleave", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _Interleaver(self, ctx)


class _Feed:
    """One open inner sequence: what its task has produced and not yet been read."""

    def __init__(self, receive: MemoryObjectReceiveStream[list[Any]]) -> None:
        self.receive = receive
        self.held: list[Any] = []
        self.pos = 0
        self.error: BaseException | None = None

    def ready(self) -> bool:
        return self.pos < len(self.held)

    async def next(self) -> tuple[bool, Any]:
        """(True, element), or (False, None) at the end of the sequence (or its error)."""
        while self.pos >= len(self.held):
            try:
                self.held, self.pos = await self.receive.receive(), 0
            except anyio.EndOfStream:
                if self.error is not None:
                    raise self.error from None
                return False, None
        x = self.held[self.pos]
        self.pos += 1
        return True, x


class _Interleaver(Runner):
    def __init__(self, stage: InterleaveStage, ctx: RunContext) -> None:
        self.stage = stage
        self.ctx = ctx
        self.opener = NestedOpener(ctx)
        self.limiter: anyio.CapacityLimiter | None = None
        self.index = 0  # input elements taken so far
        self.pending: list[Any] = []
        self.input_done = False
        self.slots: list[_Feed | None] = [None] * stage.cycle_length

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        self.limiter = anyio.CapacityLimiter(self.stage.parallel)
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            try:
                await self._cycle(tg, inbox, outbox)
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                # Raised outside the group, or it would arrive wrapped in an ExceptionGroup
                # (a KeyboardInterrupt or SystemExit too).
                error = exc
            finally:
                for feed in self.slots:
                    if feed is not None:
                        feed.receive.close()
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _cycle(self, tg: TaskGroup, inbox: Inbox, outbox: Outbox) -> None:
        n, block_length = self.stage.cycle_length, self.stage.block_length
        slots = self.slots
        cycle = block = live = 0
        out: list[Any] = []
        while not self.input_done or live > 0:
            if block == 0 and self._rounds(cycle, out):
                if len(out) >= outbox.limit:
                    out = await self._flush(out, outbox)
                continue
            feed = slots[cycle]
            if feed is not None:
                if feed.ready():  # the common case: a slice of what the feed has, no await
                    take = min(block_length - block, len(feed.held) - feed.pos)
                    out.extend(feed.held[feed.pos : feed.pos + take])
                    feed.pos += take
                    block += take
                    if len(out) >= outbox.limit:
                        out = await self._flush(out, outbox)
                    if block < block_length:
                        continue
                    block, cycle = 0, (cycle + 1) % n
                    continue
                if out:
                    out = await self._flush(out, outbox)  # never hold output while waiting
                more, x = await feed.next()
                if more:
                    out.append(x)
                    block += 1
                    if block < block_length:
                        continue
                else:
                    feed.receive.close()
                    slots[cycle] = None
                    live -= 1
            elif not self.input_done:
                if not self.pending and out:
                    out = await self._flush(out, outbox)
                x, got = await self._next_input(inbox)
                if got:
                    slots[cycle] = self._start(tg, x)
                    live += 1
                continue  # read from the new sequence at once, in the same slot
            block, cycle = 0, (cycle + 1) % n
        await outbox.send(out)

    def _rounds(self, cycle: int, out: list[Any]) -> bool:
        """Whole turns of the cycle from ``cycle``, at once, while every slot that takes part
        holds enough: the order is the one the element-by-element loop gives (a slot with
        elements in hand cannot end), at a fraction of the cost. False if not even one turn."""
        b = self.stage.block_length
        order = self.slots[cycle:] + self.slots[:cycle]
        if not self.input_done and None in order:
            return False  # an empty slot would open the next input's sequence
        feeds = [f for f in order if f is not None]
        if not feeds:
            return False
        k = min((len(f.held) - f.pos) // b for f in feeds)
        if k == 0:
            return False
        k = min(k, max(1, 256 // (b * len(feeds))))  # keep output chunks small
        segs = [f.held[f.pos : f.pos + k * b] for f in feeds]
        for f in feeds:
            f.pos += k * b
        if b == 1:
            out.extend(x for turn in zip(*segs, strict=True) for x in turn)
        else:
            for r in range(0, k * b, b):
                for seg in segs:
                    out.extend(seg[r : r + b])
        return True

    async def _flush(self, out: list[Any], outbox: Outbox) -> list[Any]:
        await outbox.send(out)
        return []

    async def _next_input(self, inbox: Inbox) -> tuple[Any, bool]:
        while not self.pending:
            chunk = await inbox.receive()
            if chunk is None:
                self.input_done = True
                return None, False
            self.pending = list(reversed(chunk))
        return self.pending.pop(), True

    def _start(self, tg: TaskGroup, x: Any) -> _Feed:
        send, receive = anyio.create_memory_object_stream[list[Any]](FEED_BUFFER)
        feed = _Feed(receive)
        tg.start_soon(self._produce, x, self.index, feed, send)
        self.index += 1
        return feed

    async def _produce(
        self,
        x: Any,
        index: int,
        feed: _Feed,
        send: MemoryObjectSendStream[list[Any]],
    ) -> None:
        from ._pipeline import Pipeline

        async with send:
            try:
                fn = self.stage.fn
                inner = await fn(x) if self.stage.is_async else fn(x)
                if isinstance(inner, Pipeline):
                    await self._from_pipeline(inner, index, send)
                elif isinstance(inner, AsyncIterable):
                    await self._from_async(inner, send)
                elif isinstance(inner, Iterable):
                    await self._from_sync(iter(inner), send)
                else:
                    raise TypeError(
                        f"{self.stage.name}: fn must return a Pipeline or a sync or async "
                        f"iterable, got {type(inner).__name__}"
                    )
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the reader is gone: the run is stopping
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                annotate(exc, self.stage.name, index)
                feed.error = exc  # the reading task raises it, unwrapped

    async def _from_pipeline(
        self, pipe: Any, index: int, send: MemoryObjectSendStream[list[Any]]
    ) -> None:
        # Seeded by input index: feeds open concurrently, in no fixed order.
        async with self.opener.open(pipe, index) as run:
            while True:
                assert self.limiter is not None
                async with self.limiter:
                    chunk = await next_chunk(run)
                if chunk is None:
                    return
                await send.send(chunk)

    async def _from_async(
        self, inner: AsyncIterable[Any], send: MemoryObjectSendStream[list[Any]]
    ) -> None:
        ait = aiter(inner)
        async with maybe_aclosing(ait):
            done = False
            while not done:
                piece: list[Any] = []
                assert self.limiter is not None
                async with self.limiter:
                    while len(piece) < PIECE:
                        try:
                            piece.append(await anext(ait))
                        except StopAsyncIteration:
                            done = True
                            break
                if piece:
                    await send.send(piece)

    async def _from_sync(self, it: Iterator[Any], send: MemoryObjectSendStream[list[Any]]) -> None:
        threaded = self.stage.parallel > 1
        try:
            while True:
                assert self.limiter is not None
                async with self.limiter:
                    if threaded:
                        # Shielded: a generator must not be closed while a thread runs it.
                        with anyio.CancelScope(shield=True):
                            piece = await self.ctx.threads.run(_piece, it)
                    else:
                        piece = _piece(it)
                if not piece:
                    return
                await send.send(piece)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


def _piece(it: Iterator[Any]) -> list[Any]:
    return list(islice(it, PIECE))
