"""``then``: a custom stage written against plain anyio memory object streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._channel import MAX_CHUNK, DownstreamClosed, Inbox, Outbox
from ._stage import RunContext, Runner, Stage, buffer_arg, fn_name, positive

__all__ = ["CustomStage"]

StageFn = Callable[[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]], Awaitable[None]]


class CustomStage(Stage):
    def __init__(self, fn: StageFn, *, workers: int, name: str | None, buffer: int | None) -> None:
        if not callable(fn):
            raise TypeError(f"then needs `async def stage(inbox, outbox)`, got {type(fn).__name__}")
        self.fn = fn
        self.workers = positive("then(workers=)", workers)
        self.buffer = buffer_arg("then", buffer)
        self.name = name if name is not None else f"then({fn_name(fn)})"
        self.tasks = self.workers + 2  # the copies, a feeder and a drainer

    def runner(self, ctx: RunContext) -> Runner:
        return _CustomRunner(self)


class _CustomRunner(Runner):
    """N user copies on element streams, plus a feeder and a drainer task pumping chunks."""

    def __init__(self, stage: CustomStage) -> None:
        self.stage = stage
        self.copies: list[tuple[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]]] = []
        # Set when the next stage stopped listening (take is satisfied): a user copy whose send
        # then fails with BrokenResourceError has simply nobody left to send to.
        self.downstream_gone = False

    def _streams(self, capacity: int) -> None:
        """The element streams around the user's copies, made by the first worker to run (all
        of them before any awaits): sized like the stage's own chunks, so that the stage holds
        about its buffer, not two fixed 256-element streams more."""
        self.in_send, in_recv = anyio.create_memory_object_stream[Any](capacity)
        out_send, self.out_recv = anyio.create_memory_object_stream[Any](capacity)
        # One clone per user copy, made now so that no copy can see the streams end early.
        self.copies = [(in_recv.clone(), out_send.clone()) for _ in range(self.stage.workers)]
        in_recv.close()
        out_send.close()

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        if not self.copies:
            self._streams(outbox.limit)
        copies = self.stage.workers
        if worker < copies:
            mine_in, mine_out = self.copies[worker]
            try:
                with mine_in, mine_out:
                    await self.stage.fn(mine_in, mine_out)
            except anyio.BrokenResourceError:
                if not self.downstream_gone:
                    raise
        elif worker == copies:
            await self._feed(inbox)
        else:
            await self._drain(outbox)

    async def _feed(self, inbox: Inbox) -> None:
        with self.in_send:
            while (chunk := await inbox.receive()) is not None:
                try:
                    for x in chunk:
                        # No checkpoint per element while there is room (anyio's send has one):
                        # a task switch per element made this stage 20x slower than the rest.
                        try:
                            self.in_send.send_nowait(x)
                        except anyio.WouldBlock:
                            await self.in_send.send(x)
                except anyio.BrokenResourceError:
                    return  # every copy closed its inbox: it wants no more input
                await anyio.lowlevel.checkpoint()

    async def _drain(self, outbox: Outbox) -> None:
        with self.out_recv:
            while True:
                try:
                    x = self.out_recv.receive_nowait()  # no checkpoint per element when ready
                except anyio.WouldBlock:
                    try:
                        x = await self.out_recv.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                chunk = [x]
                while len(chunk) < MAX_CHUNK:
                    try:
                        chunk.append(self.out_recv.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    await outbox.send(chunk)
                except DownstreamClosed:
                    self.downstream_gone = True
                    raise
