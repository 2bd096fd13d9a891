"""``iter_sync``: a plain ``for`` loop over a pipeline running on an event loop in a thread.

A pump task on the loop moves whole chunks of outputs into a thread-safe queue, so the consumer
thread pays one queue hand-off per chunk, never a cross-thread call, and the loop keeps producing
while the training step runs.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from contextlib import AbstractAsyncContextManager, AbstractContextManager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._coordinator import describe_error
from ._run import Run
from ._state import Position, shifted
from ._threads import waker

if TYPE_CHECKING:
    from .._pipeline import Pipeline

__all__ = ["SyncIterator"]

T = TypeVar("T")
AHEAD_CHUNKS = 16  # hand-offs the pump may queue for the consumer thread (on top of the stages')


class _End:
    """Queue item: the pipeline ended, normally (``exc is None``) or with a stage error."""

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class _Handoff(Generic[T]):
    """What the pump task and the consumer thread share. The pump must not hold the iterator
    itself, or the iterator could never be garbage collected (and so never stopped by GC)."""

    def __init__(self, run: Run[T]) -> None:
        self.run = run
        self.queue: queue.SimpleQueue[_Batch[T] | _End] = queue.SimpleQueue()
        # Set while the pump waits for the consumer to make room: the consumer thread then
        # wakes it (without waiting for the loop) as soon as it takes something.
        self.wake: Callable[[], None] | None = None

    async def _room(self) -> None:
        """Wait until the consumer thread has room for another hand-off."""
        if self.queue.qsize() < AHEAD_CHUNKS:
            return
        room = anyio.Event()
        self.wake = waker(room)
        # Checked again now that the consumer can see ``wake``: it may have taken meanwhile.
        if self.queue.qsize() >= AHEAD_CHUNKS:
            await room.wait()
        self.wake = None

    def took(self) -> None:
        """Called by the consumer thread after each take: wake a pump waiting for room."""
        wake = self.wake
        if wake is not None and self.queue.qsize() < AHEAD_CHUNKS:
            self.wake = None
            wake()

    async def pump(self) -> None:
        while True:
            await self._room()
            try:
                marked = await self.run._receive_marked()
            except anyio.EndOfStream as exc:
                self.queue.put(_End(exc if exc is self.run.raised else None))
                return
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                # A KeyboardInterrupt or SystemExit from a stage too: the consumer thread gets
                # it, and the portal's event loop goes on to stop the run cleanly.
                self.queue.put(_End(exc))
                return
            # Everything ready goes in one hand-off (one wake-up of the consumer thread), with
            # where each chunk starts, so the thread knows the position of what it returns.
            if len(marked) == 1:
                self.queue.put(_Batch(marked[0][0], [(0, marked[0][1])]))
                continue
            items: list[T] = []
            starts: list[tuple[int, Position | None]] = []
            for chunk, at in marked:
                starts.append((len(items), at))
                items.extend(chunk)
            self.queue.put(_Batch(items, starts))


class _Batch(Generic[T]):
    """Queue item: outputs, and the position of each chunk they came in (offset, position)."""

    __slots__ = ("items", "starts")

    def __init__(self, items: list[T], starts: list[tuple[int, Position | None]]) -> None:
        self.items = items
        self.starts = starts

    def position(self, i: int) -> Position | None:
        """The position of ``items[i]`` (``len(items)``: right after the last)."""
        offset, at = self.starts[0]
        for start in self.starts:
            if start[0] > i:
                break
            offset, at = start
        return shifted(at, i - offset)


class _Contained(Generic[T]):
    """The run's ``async with``, as the portal's task runs it, minus one hazard: a
    KeyboardInterrupt or SystemExit that a stage raised while the run was stopping would escape
    the portal's event loop (asyncio re-raises those out of ``run``) and break it; it is kept
    here and raised in the caller's thread instead."""

    def __init__(self, opener: AbstractAsyncContextManager[Run[T]]) -> None:
        self.opener = opener
        self.escaped: BaseException | None = None

    async def __aenter__(self) -> Run[T]:
        return await self.opener.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self.opener.__aexit__(exc_type, exc, tb)
        except Exception:
            raise
        except BaseException as err:
            if isinstance(err, anyio.get_cancelled_exc_class()):
                raise
            self.escaped = err
            return None


class SyncIterator(Generic[T]):
    """Iterate a pipeline from sync code.

    Leaving the ``with`` block, ``close()``, exhaustion or garbage collection stops the pipeline
    and joins its thread.
    """

    def __init__(
        self,
        pipeline: Pipeline[T],
        *,
        backend: str = "asyncio",
        state: dict[str, Any] | None = None,
    ) -> None:
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"iter_sync(backend=) must be 'asyncio' or 'trio', got {backend!r}")
        # A bad state fails here, before a thread starts.
        self._contained: _Contained[T] = _Contained(pipeline.open(state=state))
        self._closed = True
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(backend)
        self._portal = self._portal_cm.__enter__()
        # The run's task group must live in one task for its whole life: the portal's wrapper
        # keeps the async context manager in a task of its own.
        self._opener: AbstractContextManager[Run[T]] = self._portal.wrap_async_context_manager(
            self._contained
        )
        try:
            self._run: Run[T] = self._opener.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        self._closed = False
        self._handoff: _Handoff[T] = self._portal.call(_Handoff, self._run)
        self._pump: Future[None] = self._portal.start_task_soon(self._handoff.pump)
        self._chunk: list[T] = []
        self._pos = 0
        self._taken = 0  # outputs handed to the caller
        # Where the current chunk came from; before the first, where the run starts.
        self._batch: _Batch[T] = _Batch([], [(0, self._run.start(self._run.last_index))])

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        if self._pos >= len(self._chunk):
            self._next_chunk()
        item = self._chunk[self._pos]
        self._pos += 1
        self._taken += 1
        return item

    def _next_chunk(self) -> None:
        if self._closed:
            raise StopIteration
        try:
            got = self._handoff.queue.get()
            self._handoff.took()
        except BaseException:
            # Ctrl-C while waiting: stop the pipeline now. The KeyboardInterrupt's traceback
            # keeps this iterator alive (in Jupyter, for ever), so waiting for garbage
            # collection to stop it would leave its thread and workers running.
            self._close_quietly()
            raise
        if isinstance(got, _End):
            self._chunk, self._pos = [], 0
            self._batch = _Batch([], [(0, self._batch.position(len(self._batch.items)))])
            if got.exc is None:
                self.close()
                raise StopIteration
            self._close_quietly()
            raise got.exc
        self._chunk, self._pos, self._batch = got.items, 0, got

    def _close_quietly(self) -> None:
        # An error is on its way to the caller; stopping must not replace it.
        with suppress(Exception):
            self.close()

    def close(self) -> None:
        """Stop the pipeline and join its thread; raises a stage error nobody received."""
        if self._closed:
            return
        self._closed = True
        self._chunk, self._pos = [], 0  # what was handed over but not taken is dropped
        try:
            self._pump.cancel()
            with suppress(CancelledError):
                self._pump.result()
            self._opener.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)
        if self._contained.escaped is not None:
            raise self._contained.escaped
        undelivered = self._undelivered_error()
        if undelivered is not None:
            raise undelivered

    def _undelivered_error(self) -> BaseException | None:
        """A stage error the pump took from the run but the caller never got (it left without
        asking for more): leaving must raise it, as leaving ``open()`` would."""
        while True:
            try:
                got = self._handoff.queue.get_nowait()
            except queue.Empty:
                return None
            if isinstance(got, _End):
                return got.exc

    def stats(self) -> Any:
        """The run's ``stats()`` (see ``PipelineStats``)."""
        return self._run.stats() if self._closed else self._portal.call(self._run.stats)

    def state_dict(self) -> dict[str, Any]:
        """Like ``Run.state_dict()``, right after the last output this iterator returned.

        The position is this thread's own (the chunk it is in and how far), never the run's,
        which the pipeline's thread moves on meanwhile; the run's loop then resolves it.
        """
        at = self._batch.position(self._pos)
        delivered = self._run.resumed_at + self._taken
        if self._closed:
            return self._run._state_at(at, delivered)
        return self._portal.call(self._run._state_at, at, delivered)

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except BaseException as err:  # an error the loop never received: it rides along
            if err is not exc:
                exc.add_note(f"aiopipe: also raised: {describe_error(err)}")

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._close_quietly()
