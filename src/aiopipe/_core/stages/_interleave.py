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

from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..engine._channel import Inbox, Outbox
from ..engine._inputs import InputPositions
from ..engine._run import Run
from ..engine._stage import (
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
from ..engine._state import Position, resolve, shifted
from ._nested import NestedOpener, nested_state, next_marked

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

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Interleaver(self, ctx)

    def params(self) -> dict[str, Any]:
        # workers does not change the order, so a state resumes with any number of them.
        return {"cycle_length": self.cycle_length, "block_length": self.block_length}


# What a feed hands its reader: a piece of its sequence and where the piece starts in it (a
# position in its nested run's output, or a count of elements for an iterable).
Piece = tuple[list[Any], Any]


class _Feed:
    """One open inner sequence: what its task has produced and not yet been read."""

    def __init__(self, receive: MemoryObjectReceiveStream[Piece], index: int, initial: Any) -> None:
        self.receive = receive
        self.index = index  # the input element whose sequence this is
        self.initial = initial  # the saved state it resumed from (None: from the start)
        self.run: Run[Any] | None = None  # its nested run, when fn gave a Pipeline
        self.started = False  # a piece has arrived
        self.held: list[Any] = []
        self.at: Any = None  # where held[0] is in the sequence
        self.pos = 0
        self.error: BaseException | None = None

    def ready(self) -> bool:
        return self.pos < len(self.held)

    def snapshot(self) -> tuple[Any, ...]:
        """(input index, where the next element is read): an immutable part of a mark."""
        if not self.started:
            return (self.index, "state", self.initial)
        if self.run is not None:
            return (self.index, "run", self.run, shifted(self.at, self.pos))
        return (self.index, "count", self.at + self.pos)

    async def next(self) -> tuple[bool, Any]:
        """(True, element), or (False, None) at the end of the sequence (or its error)."""
        while self.pos >= len(self.held):
            try:
                (self.held, self.at), self.pos = await self.receive.receive(), 0
            except anyio.EndOfStream:
                if self.error is not None:
                    raise self.error from None
                return False, None
            self.started = True
        x = self.held[self.pos]
        self.pos += 1
        return True, x


class _Interleaver(Runner):
    """Its mark, taken whenever it has no output in hand: the current slot and how far its
    block is, the input elements taken, and for every open slot the input index of its
    element and where its sequence is read (a nested run's position, or a count for an
    iterable); plus the input position of the oldest of those elements. A resumed interleave
    re-reads its input from there, calls ``fn`` again for the elements whose sequences were
    open and replays at most one chunk of output. A nested run resumes from its own state and
    a sequence (list, range) by index; an iterator steps over what had been read of it (that
    part of it is computed again). ``fn`` must give the same sequence for the same element."""

    def __init__(self, stage: InterleaveStage, ctx: RunContext) -> None:
        self.stage = stage
        self.ctx = ctx
        self.opener = NestedOpener(ctx)
        self.limiter: anyio.CapacityLimiter | None = None
        self.index = 0  # input elements taken so far
        self.pending: list[Any] = []
        self.input_done = False
        self.slots: list[_Feed | None] = [None] * stage.cycle_length
        self.inputs = InputPositions(None)
        self.plan: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        cycle, block, taken, first, slots, up = mark
        resolve(up, out)
        state = {
            "cycle": cycle,
            "block": block,
            "taken": taken,
            "first": first,
            "slots": [None if s is None else [s[0] - first, _where(s)] for s in slots],
        }
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state

    def _mark(self, cycle: int, block: int) -> Position:
        """The position of the next output, ``block`` elements into slot ``cycle``'s turn."""
        if block >= self.stage.block_length:  # that turn is over: the next slot's begins
            cycle, block = (cycle + 1) % self.stage.cycle_length, 0
        slots = tuple(None if f is None else f.snapshot() for f in self.slots)
        first = min([s[0] for s in slots if s is not None], default=self.index)
        first = min(first, self.index)
        return (self, (cycle, block, self.index, first, slots, self.inputs.at(first)), 0)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        self.limiter = anyio.CapacityLimiter(self.stage.parallel)
        self.inputs = InputPositions(inbox.stamp)
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            try:
                cycle, block = await self._resume(tg, inbox) if self.plan else (0, 0)
                await self._cycle(tg, inbox, outbox, cycle, block)
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

    async def _resume(self, tg: TaskGroup, inbox: Inbox) -> tuple[int, int]:
        """Back to the saved state: re-read the input from the oldest open slot's element,
        reopen the open slots' sequences where they were, keep the rest of the input read."""
        plan, self.plan = self.plan, None
        assert plan is not None
        first, taken = int(plan["first"]), int(plan["taken"])
        wanted = {
            first + int(entry[0]): (slot, entry[1])
            for slot, entry in enumerate(plan["slots"])
            if entry is not None
        }
        self.inputs = InputPositions(inbox.stamp, first)
        n = first
        while n < taken:
            chunk = await inbox.receive()
            if chunk is None:
                raise ValueError(
                    f"{self.stage.name}: the saved state needs input up to element {taken}, "
                    f"but the input ended at {n}: it is not the input the state was saved with"
                )
            self.inputs.add(inbox, len(chunk))
            for j, x in enumerate(chunk):
                if n >= taken:
                    self.pending = list(reversed(chunk[j:]))  # past the saved state: new input
                    break
                got = wanted.get(n)
                if got is not None:
                    self.slots[got[0]] = self._start(tg, x, n, got[1])
                n += 1
        self.index = taken
        return int(plan["cycle"]), int(plan["block"])

    async def _cycle(
        self, tg: TaskGroup, inbox: Inbox, outbox: Outbox, cycle: int, block: int
    ) -> None:
        n, block_length = self.stage.cycle_length, self.stage.block_length
        slots = self.slots
        live = sum(f is not None for f in slots)
        out: list[Any] = []
        # The position of out[0]: taken whenever out is empty.
        at = self._mark(cycle, block)
        while not self.input_done or live > 0:
            if block == 0 and self._rounds(cycle, out):
                if len(out) >= outbox.limit:
                    out, at = await self._flush(out, outbox, at, cycle, block)
                continue
            feed = slots[cycle]
            if feed is not None:
                if feed.ready():  # the common case: a slice of what the feed has, no await
                    take = min(block_length - block, len(feed.held) - feed.pos)
                    out.extend(feed.held[feed.pos : feed.pos + take])
                    feed.pos += take
                    block += take
                    if len(out) >= outbox.limit:
                        out, at = await self._flush(out, outbox, at, cycle, block)
                    if block < block_length:
                        continue
                    block, cycle = 0, (cycle + 1) % n
                    continue
                if out:  # never hold output while waiting
                    out, at = await self._flush(out, outbox, at, cycle, block)
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
                    out, at = await self._flush(out, outbox, at, cycle, block)
                x, got = await self._next_input(inbox)
                if got:
                    slots[cycle] = self._start(tg, x, self.index, None)
                    self.index += 1
                    live += 1
                continue  # read from the new sequence at once, in the same slot
            block, cycle = 0, (cycle + 1) % n
        await outbox.send(out, at=at)

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

    async def _flush(
        self, out: list[Any], outbox: Outbox, at: Position, cycle: int, block: int
    ) -> tuple[list[Any], Position]:
        """Send ``out`` (which starts at ``at``); the position of the next output."""
        await outbox.send(out, at=at)
        return [], self._mark(cycle, block)

    async def _next_input(self, inbox: Inbox) -> tuple[Any, bool]:
        while not self.pending:
            chunk = await inbox.receive()
            if chunk is None:
                self.input_done = True
                return None, False
            self.inputs.add(inbox, len(chunk))
            self.pending = list(reversed(chunk))
        return self.pending.pop(), True

    def _start(self, tg: TaskGroup, x: Any, index: int, initial: Any) -> _Feed:
        send, receive = anyio.create_memory_object_stream[Piece](FEED_BUFFER)
        feed = _Feed(receive, index, initial)
        tg.start_soon(self._produce, x, feed, send)
        return feed

    async def _produce(self, x: Any, feed: _Feed, send: MemoryObjectSendStream[Piece]) -> None:
        from .._pipeline import Pipeline

        async with send:
            try:
                fn = self.stage.fn
                inner = await fn(x) if self.stage.is_async else fn(x)
                if isinstance(inner, Pipeline):
                    await self._from_pipeline(inner, feed, send)
                elif isinstance(inner, AsyncIterable):
                    await self._from_async(inner, self._skip(feed), send)
                elif isinstance(inner, Iterable):
                    await self._from_sync(inner, self._skip(feed), send)
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
                annotate(exc, self.stage.name, feed.index)
                feed.error = exc  # the reading task raises it, unwrapped

    def _skip(self, feed: _Feed) -> int:
        """How many elements of an iterable's sequence were read before the saved state."""
        saved = feed.initial
        if saved is None:
            return 0
        if isinstance(saved, bool) or not isinstance(saved, int) or saved < 0:
            raise ValueError(
                f"{self.stage.name}: the saved state of input {feed.index}'s sequence is "
                f"{saved!r:.80}, but fn now gives an iterable for it (a count was expected)"
            )
        return saved

    async def _from_pipeline(
        self, pipe: Any, feed: _Feed, send: MemoryObjectSendStream[Piece]
    ) -> None:
        saved = feed.initial
        if saved is not None and not isinstance(saved, dict):
            raise ValueError(
                f"{self.stage.name}: the saved state of input {feed.index}'s sequence is "
                f"{saved!r:.80}, but fn now gives a Pipeline for it"
            )
        # Seeded by input index: feeds open concurrently, in no fixed order.
        async with self.opener.open(pipe, feed.index, saved) as run:
            feed.run = run
            while True:
                assert self.limiter is not None
                async with self.limiter:
                    got = await next_marked(run)
                if got is None:
                    return
                await send.send(got)

    async def _from_async(
        self, inner: AsyncIterable[Any], skip: int, send: MemoryObjectSendStream[Piece]
    ) -> None:
        ait = aiter(inner)
        async with maybe_aclosing(ait):
            for n in range(skip):
                try:
                    await anext(ait)
                except StopAsyncIteration:
                    raise _shorter(self.stage.name, n, skip) from None
            count, done = skip, False
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
                    await send.send((piece, count))
                    count += len(piece)

    async def _from_sync(
        self, inner: Iterable[Any], skip: int, send: MemoryObjectSendStream[Piece]
    ) -> None:
        if skip and isinstance(inner, Sequence):
            # A list, a range: resumed by index, without reading what was read before.
            if len(inner) < skip:
                raise _shorter(self.stage.name, len(inner), skip)
            it: Iterator[Any] = map(inner.__getitem__, range(skip, len(inner)))
        else:
            it = iter(inner)
        try:
            if skip and not isinstance(inner, Sequence):
                # Step over what was read before the saved state.
                stepped = await self._call(_step, it, skip)
                if stepped < skip:
                    raise _shorter(self.stage.name, stepped, skip)
            count = skip
            while True:
                piece = await self._call(_piece, it)
                if not piece:
                    return
                await send.send((piece, count))
                count += len(piece)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on an iterator, under the limiter; in a thread when workers > 1."""
        assert self.limiter is not None
        async with self.limiter:
            if self.stage.parallel > 1:
                # Shielded: a generator must not be closed while a thread runs it.
                with anyio.CancelScope(shield=True):
                    return await self.ctx.threads.run(fn, *args)
            return fn(*args)


def _where(snapshot: tuple[Any, ...]) -> Any:
    """The saved form of where a slot's sequence is read (see ``_Feed.snapshot``)."""
    kind = snapshot[1]
    if kind == "run":
        return nested_state(snapshot[2], snapshot[3])
    return snapshot[2]  # a count, or the state it resumed from (None: the start)


def _shorter(name: str, got: int, want: int) -> ValueError:
    return ValueError(
        f"{name}: fn gave a sequence of {got} elements where the saved state had read {want}: "
        f"fn must give the same sequence for the same element to resume"
    )


def _piece(it: Iterator[Any]) -> list[Any]:
    return list(islice(it, PIECE))


def _step(it: Iterator[Any], n: int) -> int:
    """Step over up to ``n`` elements of ``it``; how many there were."""
    return sum(1 for _ in islice(it, n))
