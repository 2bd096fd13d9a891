"""``Run``: one open pipeline. Its coordinator owns every stage task; leaving it stops them all."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Generic, NoReturn, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..observe._stats import PipelineStats, RunView, StageStats
from ._channel import (
    Chunk,
    DownstreamClosed,
    Inbox,
    Outbox,
    SendClock,
    Space,
    UpstreamFailed,
    create_channel,
)
from ._coordinator import describe_error, pipeline_coordinator
from ._policy import SkippedError
from ._stage import RunContext, Runner, Source, Stage, annotate, failed_element, resolve_buffers
from ._state import STATE_VERSION, Position, Unresumable, check_state, resolve, shifted

__all__ = ["Run", "RunOpener", "check_state"]

T = TypeVar("T")


class _Start:
    """The position of a stage that has sent nothing yet in this run: its restored state (or
    its fresh start), and that of every stage before it."""

    def __init__(self, slot: int, origin: list[Any]) -> None:
        self.slot = slot
        self.origin = origin

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> Any:
        for i in range(self.slot):
            out[i] = self.origin[i]
        return self.origin[self.slot]


class Run(Generic[T]):
    """An open pipeline: an async iterator of its outputs, with ``stats()`` and ``state_dict()``."""

    def __init__(
        self,
        stages: Sequence[Stage],
        state: dict[str, Any] | None,
        *,
        progress: bool = False,
        trace: str | os.PathLike[str] | None = None,
        seeds: list[int] | None = None,
    ) -> None:
        self._stages = tuple(stages)
        self._progress = progress
        self._trace = trace
        # ``state`` was checked by RunOpener: each stage's saved state (None: from the start).
        at = state.get("at") if state is not None else None
        self._origin: list[Any] = list(at) if at is not None else [None] * len(self._stages)
        if seeds is None:
            seeds = list(state["seeds"]) if state is not None else []
        self._ctx = RunContext(resume_seeds=seeds)
        self._resumed_at = int(state.get("delivered", 0)) if state is not None else 0
        self._delivered = self._resumed_at
        self._coord = pipeline_coordinator()
        self._clock = SendClock()
        self._buffers = resolve_buffers(self._stages)
        self._stats = [
            StageStats(s.name, s.workers, b)
            for s, b in zip(self._stages, self._buffers, strict=True)
        ]
        self._consumer = StageStats("consumer", 1, 0)
        self._runners: dict[int, Runner] = {}
        self._chunk: Chunk = []
        self._pos = 0
        # The position of _chunk[0] in the last stage's output (see _state).
        self._stamp: Position | None = self.start(len(self._stages) - 1)
        self._raised: BaseException | None = None  # a stage error the consumer has received
        self._inbox: Inbox | None = None  # the consumer's end of the last stage's stream
        self._spaces: list[Space] = []  # element bound of each stage's output stream
        self._t0 = 0.0
        self._consumer_started = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def _start(self) -> None:
        await self._coord.__aenter__()
        try:
            self._start_stages()
        except BaseException as exc:
            self._close_out()  # e.g. progress=True without tqdm: fails after the streams
            await self._coord.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    def _start_stages(self) -> None:
        self._t0 = time.perf_counter()
        self._consumer_started = self._consumer.worker_started()
        upstream: MemoryObjectReceiveStream[Chunk] | None = None
        for pos, stage in enumerate(self._stages):
            runner = stage.runner(self._ctx)
            runner.slot = pos
            self._runners[pos] = runner
            send, receive, space = create_channel(self._buffers[pos])
            self._spaces.append(space)
            self._stats[pos].output = space
            saved = self._origin[pos]
            if saved is not None:
                space.skip = int(saved.get("skip", 0))
                runner.restore(saved)
            for w in range(stage.task_count):
                inbox = upstream.clone() if upstream is not None else None
                self._coord.start_soon(
                    self._worker, pos, runner, w, inbox, send.clone(), name=f"{stage.name}#{w}"
                )
            send.close()
            if upstream is not None:
                upstream.close()
            upstream = receive
        assert upstream is not None  # a pipeline has at least one stage
        last = len(self._stages) - 1
        self._inbox = Inbox(upstream, self._spaces[last], self._consumer, 0, self.start(last))
        if self._trace is not None:
            for s in (*self._stats, self._consumer):
                s.spans = []
            from ..observe._trace import sample_fills

            self._coord.start_soon(sample_fills, self._stats, name="aiopipe trace")
        if self._progress:
            from ..observe._progress import ProgressBar  # lazily: it imports an optional extra

            self._coord.start_soon(ProgressBar(self.view()).run, name="aiopipe progress")

    async def _worker(
        self,
        pos: int,
        runner: Runner,
        w: int,
        inbox_stream: MemoryObjectReceiveStream[Chunk] | None,
        outbox_stream: MemoryObjectSendStream[Chunk],
    ) -> None:
        stage, stats, space = self._stages[pos], self._stats[pos], self._spaces[pos]
        outbox = Outbox(outbox_stream, space, stats, w, self._clock)
        inbox = None
        if inbox_stream is not None:
            inbox = Inbox(inbox_stream, self._spaces[pos - 1], stats, w, self.start(pos - 1))
        started = stats.worker_started()
        try:
            if inbox is None:
                assert isinstance(runner, Source), f"{stage.name} needs an input"
                await runner.produce(w, outbox)
            else:
                await runner.work(w, inbox, outbox)
        except DownstreamClosed:
            pass  # the next stage stopped listening (take): a normal end
        except UpstreamFailed:
            space.failed = True  # pass the abnormal end on; the run holds the error
        except BaseException as exc:
            # Marked before the stream closes: downstream must not take this end for the end
            # of input (emit a partial batch, drain a shuffle buffer).
            space.failed = True
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            stats.errors += 1
            err = _surfaced(exc, stage.name)
            annotate(err, stage.name, None)
            self._note_origin(err, pos)
            if err is exc:
                raise
            raise err from exc
        finally:
            # Closing our ends on the way out is the QueueRunner rule: the last worker of a
            # stage to finish ends its output, and a stage that stops listening stops upstream.
            outbox_stream.close()
            if inbox is not None:
                inbox.close()
            stats.worker_stopped(started, w)

    def _note_origin(self, exc: BaseException, pos: int) -> None:
        """Say which file and record a failing element came from, when the stages between the
        reader and the failing stage keep elements one to one (map, prefetch)."""
        index = failed_element(exc, self._stages[pos].name)
        if index is None:
            return
        source = pos - 1
        while source >= 0 and self._stages[source].one_to_one:
            source -= 1
        runner = self._runners.get(source)
        where = runner.origin(index) if runner is not None else None
        if where is not None:
            exc.add_note(
                f"aiopipe: element {index} of '{self._stages[pos].name}' came from {where}"
            )

    async def _stop(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close_out()
        if exc is not None and exc is self._raised:
            # The consumer got a stage's error and lets it propagate: stop quietly, as on a
            # normal exit (a KeyboardInterrupt from a stage must not look like a cancellation).
            exc_type = exc = tb = None
        try:
            await self._coord.__aexit__(exc_type, exc, tb)
        except BaseException as err:
            if err is not self._raised:
                raise
        finally:
            self._ctx.threads.close()
            self._consumer.worker_stopped(self._consumer_started)
            if self._trace is not None:
                from ..observe._trace import write_trace

                write_trace(self._trace, self.view())
        if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
            self._note_undelivered(exc)

    def _note_undelivered(self, exc: BaseException) -> None:
        """The consumer's own exception propagates; a stage error it never received rides
        along as a note instead of vanishing."""
        stage_error = self._coord.exception
        if stage_error is not None and stage_error is not exc and stage_error is not self._raised:
            exc.add_note(f"aiopipe: also raised: {describe_error(stage_error)}")

    def _close_out(self) -> None:
        if self._inbox is not None:
            self._inbox.close()

    # -- consuming ---------------------------------------------------------------------------
    async def receive(self) -> T:
        """The next output; ``anyio.EndOfStream`` at the end, or the stage error that ended it."""
        while self._pos >= len(self._chunk):
            await self._refill()
        item: T = self._chunk[self._pos]
        self._pos += 1
        self._delivered += 1
        return item

    def __aiter__(self) -> Run[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream as exc:
            if exc is self._raised:
                raise  # an OutOfRangeError from a stage is an error, not our end of input
            raise StopAsyncIteration from None

    async def receive_chunk(self) -> list[T]:
        """All outputs available now (at least one): the cheap way to drain many small items."""
        while self._pos >= len(self._chunk):
            await self._refill()
        chunk = self._chunk[self._pos :] if self._pos else self._chunk
        self._pos = len(self._chunk)
        self._delivered += len(chunk)
        return chunk

    async def _receive_marked(self) -> list[tuple[Chunk, Position | None]]:
        """Every output ready (at least one), as chunks with their positions: what ``iter_sync``
        hands its thread, which then knows the position of each element it returns."""
        while self._pos >= len(self._chunk):
            await self._refill()
        first = self._chunk[self._pos :] if self._pos else self._chunk
        got = [(first, shifted(self._stamp, self._pos))]
        self._pos = len(self._chunk)
        n = len(first)
        while (chunk := self._take_ready()) is not None:
            got.append((chunk, self._stamp))
            n += len(chunk)
        self._delivered += n
        return got

    async def _refill(self) -> None:
        inbox = self._inbox
        if inbox is None:
            raise RuntimeError("the run is not open")
        try:
            chunk = await inbox.receive()
        except UpstreamFailed:
            chunk = None
        if chunk is None:
            # Raised here, outside any handler, so that a stage's error reaches the consumer
            # without our UpstreamFailed chained in front of it.
            self._end()
        self._took(chunk, inbox)

    def _take_ready(self) -> Chunk | None:
        """The next chunk if one is ready now (it becomes the current chunk, all taken)."""
        inbox = self._inbox
        chunk = inbox.receive_nowait() if inbox is not None else None
        if chunk is not None:
            self._took(chunk, inbox)  # type: ignore[arg-type]
            self._pos = len(chunk)
        return chunk

    def receive_ready(self) -> list[T]:
        """Every output that is ready now, without waiting (possibly none)."""
        got: list[T] = []
        if self._pos < len(self._chunk):
            got = self._chunk[self._pos :]
            self._pos = len(self._chunk)
        while (chunk := self._take_ready()) is not None:
            got.extend(chunk)
        self._delivered += len(got)
        return got

    def _took(self, chunk: Chunk, inbox: Inbox) -> None:
        self._chunk, self._pos, self._stamp = chunk, 0, inbox.stamp
        self._consumer.items_out += len(chunk)

    def _end(self) -> NoReturn:
        exc = self._coord.exception
        if exc is not None and self._raised is None:
            self._raised = exc
            raise exc
        if self._spaces[-1].failed and self._raised is None:
            # The last stage ended abnormally with no error recorded: never a quiet end.
            raise RuntimeError("aiopipe: the pipeline stopped without an error being recorded")
        raise anyio.EndOfStream

    # -- introspection -----------------------------------------------------------------------
    @property
    def resumed_at(self) -> int:
        """Outputs delivered before this run, by the run whose state it resumed (0 if none)."""
        return self._resumed_at

    @property
    def raised(self) -> BaseException | None:
        """The stage error this run has handed to the consumer, if any."""
        return self._raised

    def view(self) -> RunView:
        """A read-only view of this run for observers (trace, progress)."""
        from .._cardinality import cardinality

        return RunView(
            tuple(self._stats), self._consumer, self._t0, cardinality(self._stages), self.stats
        )

    def stats(self) -> PipelineStats:
        """A snapshot of every stage and of the consumer (see ``PipelineStats``)."""
        now = time.perf_counter()
        elapsed = now - self._t0
        skips = [self._ctx.errors.skipped(stage) for stage in self._stages]
        snaps = [s.snapshot(now, elapsed, n) for s, n in zip(self._stats, skips, strict=True)]
        snaps.append(self._consumer.snapshot(now, elapsed))
        return PipelineStats(snaps, elapsed)

    def errors(self) -> list[SkippedError]:
        """The most recent elements skipped under ``on_error="skip"`` (stage, element, origin,
        exception), oldest first; ``stats()`` counts every one."""
        return self._ctx.errors.recent()

    def state_dict(self) -> dict[str, Any]:
        """A small JSON-serialisable dict; ``pipe.open(state=...)`` resumes right after the
        last output this run delivered: exactly the outputs not yet delivered follow."""
        return self._state_at(shifted(self._stamp, self._pos), self._delivered)

    def position(self) -> Position | None:
        """The position (see ``_state``) of the next output this run would deliver: what a
        stage running this run nested inside its own records, to resolve with ``_state_at``."""
        return shifted(self._stamp, self._pos)

    @property
    def last_index(self) -> int:
        return len(self._stages) - 1

    def start(self, index: int) -> Position:
        """The position of stage ``index`` before it sends anything in this run."""
        return (_Start(index, self._origin), None, 0)

    def _state_at(self, at: Position | None, delivered: int) -> dict[str, Any]:
        """The state at position ``at`` of the last stage (call in the run's event loop)."""
        for stage in self._stages:
            if not stage.resumable:
                raise Unresumable(
                    f"aiopipe: stage '{stage.name}' cannot save its state, so this pipeline "
                    f"cannot be resumed exactly: {stage.why_unresumable()}"
                )
        out: dict[int, Any] = {}
        resolve(at, out)
        return {
            "aiopipe_state": STATE_VERSION,
            "stages": [s.name for s in self._stages],
            "params": [s.params() for s in self._stages],
            "seeds": list(self._ctx.drawn),
            "delivered": delivered,
            "at": [out.get(i) for i in range(len(self._stages))],
        }


def _surfaced(exc: BaseException, stage: str) -> BaseException:
    """The exception to hand the consumer for ``exc``.

    ``StopIteration`` and ``StopAsyncIteration`` cannot travel as themselves: raised from
    ``__anext__`` they would end the consumer's ``async for`` quietly, and from a coroutine Python
    turns them into a bare RuntimeError. Like PEP 479, they become a ``RuntimeError`` whose cause
    is the original.
    """
    if isinstance(exc, StopIteration | StopAsyncIteration):
        err = RuntimeError(
            f"stage '{stage}' raised {type(exc).__name__}, which would end iteration silently; "
            f"raise another exception to signal an error"
        )
        for note in getattr(exc, "__notes__", ()):
            err.add_note(note)
        return err
    return exc


class RunOpener(Generic[T]):
    """What ``Pipeline.open()`` returns: ``async with`` it to run the pipeline."""

    def __init__(
        self,
        stages: Sequence[Stage],
        state: dict[str, Any] | None,
        *,
        progress: bool = False,
        trace: str | os.PathLike[str] | None = None,
        seeds: list[int] | None = None,
    ) -> None:
        # A bad state is a build-time error, not a run-time one.
        self._state = check_state(stages, state) if state is not None else None
        self._stages = stages
        self._progress = progress
        self._trace = trace
        self._seeds = seeds  # a nested run's seeds, given by its outer run (see _nested)
        self._run: Run[T] | None = None

    async def __aenter__(self) -> Run[T]:
        if self._run is not None:
            raise RuntimeError("this open() was already entered; call pipe.open() again")
        run: Run[T] = Run(
            self._stages, self._state, progress=self._progress, trace=self._trace, seeds=self._seeds
        )
        self._run = run
        await run._start()
        return run

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._run is not None
        await self._run._stop(exc_type, exc, tb)
