"""``then``: a custom stage written against plain anyio memory object streams.

A stage *object* (an instance whose class has ``async __call__(inbox, outbox)``) may opt in to
exact resume by also defining ``state_dict() -> dict`` and ``load_state_dict(state)``. The
protocol, in the terms of ``_state``:

- A stage's code cannot be resumed in the middle of ``__call__``; it can only be started again
  from the top, where it asks for input. So the points where its state is taken are those: when
  the stage asks for input (``receive``/``receive_nowait``/``async for``) after it has sent
  something, aiopipe calls ``state_dict()`` and pairs the dict with how many inputs the stage had
  received. Between sends it is not called, so its cost is per burst of outputs, not per input.
- Each output is marked with the last such snapshot and how many outputs the stage sent since
  it: resuming there loads the dict, restores the upstream at that input, and drops those
  outputs as the stage makes them again (the engine's "skip"; a replay of at most one burst).
- So the dict must hold whatever the stage keeps, at that point, from input it has already
  received (a running sum, the previous element), and the outputs must follow from the dict and
  the input alone (not from timing). It is copied as JSON at once: it may share live lists.
- The count is exact because the user's inbox is a counting wrapper: an element counts as
  received when ``receive`` returns it, and the feeder keeps, for the elements it has fed, the
  input position each chunk started at.
- A fresh run loads the dict the object returned when the pipeline was built, so every run of
  the pipeline starts from the same state.

Only one copy (``workers=1``) may be stateful: with several, which copy got which input, and the
order their outputs interleave in, depend on timing.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self, cast

import anyio
import anyio.lowlevel
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import (
    MemoryObjectReceiveStream,
    MemoryObjectSendStream,
    MemoryObjectStreamStatistics,
)

from ..engine._channel import MAX_CHUNK, YIELD_S, DownstreamClosed, Inbox, Outbox
from ..engine._stage import RunContext, Runner, Stage, buffer_arg, fn_name, positive
from ..engine._state import Position, resolve, shifted

__all__ = ["CustomStage"]

StageFn = Callable[[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]], Awaitable[None]]

# The stage's state where it asked for input: (its dict as JSON, inputs received since the
# epoch began, the input position of the next one). JSON: a copy that the stage's later changes
# to its lists cannot reach, and checked at once.
Snapshot = tuple[str, int, Position | None]
# An output's mark: the last snapshot before it, and how many outputs the stage sent since.
Mark = tuple[Snapshot, int]

HOW_TO_OPT_IN = (
    "to make it resumable, pass an object whose class defines `async __call__(inbox, outbox)`, "
    "`state_dict() -> dict` and `load_state_dict(state)` (see Pipeline.then)"
)


class CustomStage(Stage):
    def __init__(self, fn: StageFn, *, workers: int, name: str | None, buffer: int | None) -> None:
        if not callable(fn):
            raise TypeError(f"then needs `async def stage(inbox, outbox)`, got {type(fn).__name__}")
        self.fn = fn
        self.workers = positive("then(workers=)", workers)
        self.buffer = buffer_arg("then", buffer)
        self.name = name if name is not None else f"then({fn_name(fn)})"
        self.tasks = self.workers + 2  # the copies, a feeder and a drainer
        self.resumable = _stateful(fn, self.name)
        if self.resumable and self.workers > 1:
            raise ValueError(
                f"then(workers={self.workers}): stage '{self.name}' saves its state "
                f"(state_dict/load_state_dict), which is exact only with workers=1: with several "
                f"copies, which copy receives which element and the order their outputs come "
                f"out in depend on timing"
            )
        # The dict every fresh run starts from, as JSON: a run must not see what a previous
        # run of the same pipeline left in the object.
        self.initial = _as_json(fn.state_dict(), self.name) if self.resumable else ""  # type: ignore[attr-defined]
        # Set while a run uses the object: its state is one, so two runs at once would mix it.
        self.in_use = False

    def runner(self, ctx: RunContext) -> Runner:
        return _CustomRunner(self)

    def params(self) -> dict[str, Any]:
        # A state holds the dict of one class: refuse it for an object of another.
        if self.resumable:
            return {"name": self.name, "class": type(self.fn).__qualname__}
        return {"name": self.name}

    def why_unresumable(self) -> str:
        return f"it is a plain function; {HOW_TO_OPT_IN}"

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        custom, received = state.get("custom"), state.get("received")
        if (
            not isinstance(custom, dict)
            or isinstance(received, bool)
            or not isinstance(received, int)
        ):
            raise ValueError(
                f"state is damaged: stage '{self.name}' expects {{'custom': dict, "
                f"'received': int}}, got {state!r:.80}"
            )


def _stateful(fn: object, name: str) -> bool:
    """Whether ``fn`` opts in to the state protocol (both methods, or neither)."""
    has = [callable(getattr(fn, m, None)) for m in ("state_dict", "load_state_dict")]
    if has[0] != has[1]:
        missing = "load_state_dict" if has[0] else "state_dict"
        raise TypeError(
            f"then: stage '{name}' ({type(fn).__name__}) defines only one of state_dict() and "
            f"load_state_dict(); define {missing}() too, or neither"
        )
    return has[0]


def _as_json(state: object, name: str) -> str:
    if not isinstance(state, dict):
        raise TypeError(
            f"stage '{name}': state_dict() must return a dict, got {type(state).__name__}"
        )
    try:
        return json.dumps(state)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"stage '{name}': state_dict() must return a JSON-serialisable dict ({exc})"
        ) from None


class _CustomRunner(Runner):
    """N user copies on element streams, plus a feeder and a drainer task pumping chunks."""

    def __init__(self, stage: CustomStage) -> None:
        self.stage = stage
        self.copies: list[tuple[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]]] = []
        # Set when the next stage stopped listening (take is satisfied): a user copy whose send
        # then fails with BrokenResourceError has simply nobody left to send to.
        self.downstream_gone = False
        # The state protocol (stateful stages only).
        self.custom = stage.initial  # the dict to load before the copy starts, as JSON
        self.base = 0  # inputs received before this run (a resumed one)
        self.received = 0  # inputs the copy has received in this run
        self.fed = 0  # inputs the feeder has put in the copy's stream
        # (fed before it, position) of each chunk fed whose elements may not all be received.
        self.fed_chunks: deque[tuple[int, Position | None]] = deque()
        self.snap: Snapshot = ("{}", 0, None)  # the last snapshot (set as the run starts)
        self.sent = 0  # outputs sent since it
        self.resumed = 0.0  # when the stateful copy last let other tasks run

    def restore(self, state: dict[str, Any]) -> None:
        self.custom = _as_json(state["custom"], self.stage.name)
        self.base = int(state["received"])

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        marks: tuple[Mark, ...] = mark
        if k < len(marks):
            snap, sent = marks[k]
        else:  # past the chunk's end: more outputs after the last one's snapshot
            snap, sent = marks[-1]
            sent += k - len(marks) + 1
        custom, received, up = snap
        resolve(up, out)
        state = {"custom": json.loads(custom), "received": received}
        return {**state, "skip": sent} if sent else state

    def _streams(self, capacity: int, start: Position | None) -> None:
        """The element streams around the user's copies, made by the first worker to run (all
        of them before any awaits): sized like the stage's own chunks, so that the stage holds
        about its buffer, not two fixed 256-element streams more."""
        self.in_send, in_recv = anyio.create_memory_object_stream[Any](capacity)
        out_send, self.out_recv = anyio.create_memory_object_stream[Any](capacity)
        # One clone per user copy, made now so that no copy can see the streams end early.
        self.copies = [(in_recv.clone(), out_send.clone()) for _ in range(self.stage.workers)]
        in_recv.close()
        out_send.close()
        self.fed_chunks.append((0, start))
        self.snap = (self.custom, self.base, start)

    def role(self, worker: int) -> str:
        """What task ``worker`` of this stage does: tasks 0..workers-1 run the user's copies, the
        next one feeds their element stream from our chunks, the last drains theirs into ours."""
        copies = self.stage.workers
        return "copy" if worker < copies else "feeder" if worker == copies else "drainer"

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        if not self.copies:
            self._streams(outbox.limit, inbox.stamp)
        role = self.role(worker)
        if role == "copy":
            mine_in, mine_out = self.copies[worker]
            try:
                with mine_in, mine_out:
                    if self.stage.resumable:
                        await self._run_stateful(mine_in, mine_out)
                    else:
                        await self.stage.fn(mine_in, mine_out)
            except anyio.BrokenResourceError:
                if not self.downstream_gone:
                    raise
        elif role == "feeder":
            await self._feed(inbox)
        elif self.stage.resumable:
            await self._drain_marked(outbox)
        else:
            await self._drain(outbox)

    async def _run_stateful(
        self, inbox: MemoryObjectReceiveStream[Any], outbox: MemoryObjectSendStream[Any]
    ) -> None:
        stage, fn = self.stage, cast(Any, self.stage.fn)
        if stage.in_use:
            raise RuntimeError(
                f"stage '{stage.name}': its object is in use by another run of this pipeline; "
                f"a stateful stage holds one state, so build one pipeline (and object) per run"
            )
        stage.in_use = True
        try:
            fn.load_state_dict(json.loads(self.custom))
            await fn(_CountingInbox(inbox, self), _MarkingOutbox(outbox, self))
        finally:
            stage.in_use = False

    def asks(self) -> None:
        """The stage asks for input: after a send, that is where its state is taken (see the
        module docstring)."""
        if not self.sent:
            return
        custom = _as_json(self.stage.fn.state_dict(), self.stage.name)  # type: ignore[attr-defined]
        n = self.received
        chunks = self.fed_chunks
        while len(chunks) > 1 and chunks[1][0] <= n:
            chunks.popleft()  # every element before the next chunk was received
        fed_before, at = chunks[0]
        self.snap, self.sent = (custom, self.base + n, shifted(at, n - fed_before)), 0

    async def pause(self) -> None:
        """Before a stream operation of the stateful copy: let the other tasks run if it has
        not for a while. Not on every call, as anyio's streams do: that made the drainer wake
        for each output and hand them on one at a time (over 10x slower)."""
        now = time.perf_counter()
        if now - self.resumed > YIELD_S:
            await anyio.lowlevel.checkpoint()
            self.resumed = time.perf_counter()

    def mark(self) -> Mark:
        """The mark of the output being sent."""
        return self.snap, self.sent

    async def _feed(self, inbox: Inbox) -> None:
        with self.in_send:
            while (chunk := await inbox.receive()) is not None:
                self.fed_chunks.append((self.fed, inbox.stamp))
                self.fed += len(chunk)
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
        try:
            with self.out_recv:
                while (chunk := await self._next_chunk()) is not None:
                    await self._send(outbox, chunk, None)
        finally:
            self._drainer_gone()

    async def _drain_marked(self, outbox: Outbox) -> None:
        """As ``_drain``, for elements sent as ``(element, mark)``: a chunk's mark is the
        tuple of its elements' marks."""
        try:
            with self.out_recv:
                while (pairs := await self._next_chunk()) is not None:
                    marks = tuple(m for _, m in pairs)
                    await self._send(outbox, [x for x, _ in pairs], (self, marks, 0))
        finally:
            self._drainer_gone()

    def _drainer_gone(self) -> None:
        # However the drainer ended (the next stage left, the run was cancelled, input ended),
        # its end of the copies' stream is closed: a copy whose send then fails with
        # BrokenResourceError has nobody to send to, which is not an error of the stage. (A
        # copy that sends without a checkpoint sees that before it sees the cancellation.)
        self.downstream_gone = True

    async def _next_chunk(self) -> list[Any] | None:
        """What the copies sent, as a chunk (at least one element); None once they all ended."""
        try:
            x = self.out_recv.receive_nowait()  # no checkpoint per element when ready
        except anyio.WouldBlock:
            try:
                x = await self.out_recv.receive()
            except anyio.EndOfStream:
                return None
        except anyio.EndOfStream:
            return None
        chunk = [x]
        while len(chunk) < MAX_CHUNK:
            try:
                chunk.append(self.out_recv.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        return chunk

    async def _send(self, outbox: Outbox, chunk: list[Any], at: Position | None) -> None:
        try:
            await outbox.send(chunk, at=at)
        except DownstreamClosed:
            self.downstream_gone = True
            raise


class _Wrapper:
    """What the stateful copy's two stream wrappers share: closing and statistics are the
    wrapped memory object stream's."""

    _stream: MemoryObjectReceiveStream[Any] | MemoryObjectSendStream[Any]

    def close(self) -> None:
        self._stream.close()

    async def aclose(self) -> None:
        self._stream.close()

    def statistics(self) -> MemoryObjectStreamStatistics:
        return self._stream.statistics()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _CountingInbox(_Wrapper, ObjectReceiveStream[Any]):
    """The stateful copy's inbox: a memory object receive stream that counts what it returns."""

    _stream: MemoryObjectReceiveStream[Any]

    def __init__(self, stream: MemoryObjectReceiveStream[Any], runner: _CustomRunner) -> None:
        self._stream = stream
        self._runner = runner

    def receive_nowait(self) -> Any:
        self._runner.asks()
        x = self._stream.receive_nowait()
        self._runner.received += 1
        return x

    async def receive(self) -> Any:
        runner = self._runner
        runner.asks()
        await runner.pause()  # before taking an element: a cancellation here loses nothing
        try:
            x = self._stream.receive_nowait()
        except anyio.WouldBlock:
            x = await self._stream.receive()
            runner.resumed = time.perf_counter()
        runner.received += 1
        return x

    def clone(self) -> _CountingInbox:
        return _CountingInbox(self._stream.clone(), self._runner)


class _MarkingOutbox(_Wrapper, ObjectSendStream[Any]):
    """The stateful copy's outbox: a memory object send stream that sends each element with
    its mark."""

    _stream: MemoryObjectSendStream[Any]

    def __init__(self, stream: MemoryObjectSendStream[Any], runner: _CustomRunner) -> None:
        self._stream = stream
        self._runner = runner

    def send_nowait(self, item: Any) -> None:
        self._stream.send_nowait((item, self._runner.mark()))
        self._runner.sent += 1

    async def send(self, item: Any) -> None:
        runner = self._runner
        await runner.pause()
        pair = (item, runner.mark())
        runner.sent += 1
        try:
            self._stream.send_nowait(pair)
        except anyio.WouldBlock:
            await self._stream.send(pair)
            runner.resumed = time.perf_counter()

    def clone(self) -> _MarkingOutbox:
        return _MarkingOutbox(self._stream.clone(), self._runner)
