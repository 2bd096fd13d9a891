"""``map``: apply ``fn`` to every element, inline or on threads, processes or a custom executor.

Elements move in slices sized by a :class:`Pacer`: cheap functions run over hundreds of elements per
step (one thread hop per slice on executors), slow ones one element at a time so that N workers
really run N calls at once. ``ordered=True`` re-sequences finished slices before sending them.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import anyio

from ._channel import Inbox, Outbox
from ._pacer import Pacer
from ._shared_input import SharedInput
from ._stage import (
    DEFAULT_BUFFER,
    RunContext,
    Runner,
    Stage,
    annotate,
    fn_name,
    is_async_callable,
    positive,
)

__all__ = ["Executor", "MapStage"]

# Time one slice may take, per way of running it: long enough to amortise the hop.
BUDGET_S = {"inline": 0.001, "thread": 0.005, "process": 0.02, "custom": 0.05}


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn(*args)`` somewhere else (a cluster, a pool) and returns its result.

    An executor may have a ``chunk`` attribute: an int sets how many elements the next call carries
    (read before every call, so it may adapt); ``None`` leaves it to the stage.
    """

    async def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...


class _Failed:
    """What a slice returns when ``fn`` raised: picklable, so it crosses process boundaries.

    ``done`` holds the results of the elements before the failing one.
    """

    __slots__ = ("done", "exc")

    def __init__(self, done: list[Any], exc: BaseException) -> None:
        self.done = done
        self.exc = exc

    @property
    def offset(self) -> int:
        return len(self.done)

    def __reduce__(self) -> tuple[object, ...]:
        return (_Failed, (self.done, self.exc))


def apply_slice(fn: Callable[[Any], Any], items: list[Any]) -> list[Any] | _Failed:
    """``[fn(x) for x in items]``, or where and how it failed (runs in threads and processes)."""
    out: list[Any] = []
    try:
        # extend() keeps the results it has when fn raises: they tell where it failed.
        out.extend(map(fn, items))
    except Exception as exc:
        return _Failed(out, exc)
    return out


async def apply_slice_async(
    fn: Callable[[Any], Awaitable[Any]], items: list[Any]
) -> list[Any] | _Failed:
    out: list[Any] = []
    try:
        for x in items:
            out.append(await fn(x))
    except Exception as exc:
        return _Failed(out, exc)
    return out


class MapStage(Stage):
    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int,
        ordered: bool,
        executor: str | Executor | None,
        name: str | None,
        buffer: int | None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"map needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.workers = positive("map(workers=)", workers)
        self.buffer = DEFAULT_BUFFER if buffer is None else positive("map(buffer=)", buffer)
        self.ordered = bool(ordered)
        self.one_to_one = self.ordered  # output i is made from input i
        self.is_async = is_async_callable(fn)
        self.kind = _executor_kind(executor, self.is_async, fn)
        self.executor = executor
        self.name = name if name is not None else f"map({fn_name(fn)})"

    def runner(self, ctx: RunContext) -> Runner:
        if self.workers == 1 and self.kind == "inline":
            return _SerialMap(self)
        return _ParallelMap(self)


def _executor_kind(executor: object, is_async: bool, fn: Callable[..., Any]) -> str:
    if executor is None:
        return "inline"
    if executor in ("thread", "process"):
        if is_async:
            raise ValueError(
                f"map(executor={executor!r}) runs sync functions off the event loop; "
                f"{fn_name(fn)} is async: drop executor= to await it on the loop"
            )
        if executor == "process":
            try:
                pickle.dumps(fn)
            except Exception as exc:
                raise ValueError(
                    f"map(executor='process') needs a picklable fn (a module-level function); "
                    f"{fn_name(fn)!r} cannot be pickled: {exc}"
                ) from None
        return str(executor)
    if isinstance(executor, Executor):
        return "custom"
    raise ValueError(
        f"map(executor=) must be None, 'thread', 'process' or an object with "
        f"`async def submit(fn, *args)`; got {executor!r}"
    )


def _executor_chunk(executor: object) -> int | None:
    """The slice size an executor asks for, if any."""
    chunk = getattr(executor, "chunk", None)
    return chunk if isinstance(chunk, int) and chunk > 0 else None


class _SerialMap(Runner):
    """One inline worker: no reordering, no locks."""

    def __init__(self, stage: MapStage) -> None:
        self.stage = stage

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        fn, name, is_async = self.stage.fn, self.stage.name, self.stage.is_async
        pacer = Pacer(BUDGET_S["inline"])
        index = 0
        while (chunk := await inbox.receive()) is not None:
            pos, n = 0, len(chunk)
            while pos < n:
                piece = chunk if pos == 0 and pacer.size >= n else chunk[pos : pos + pacer.size]
                t0 = time.perf_counter()
                res = await apply_slice_async(fn, piece) if is_async else apply_slice(fn, piece)
                if isinstance(res, _Failed):
                    annotate(res.exc, name, index + pos + res.offset)
                    await outbox.send(res.done)  # what came before the failure still counts
                    raise res.exc
                pacer.record(len(piece), time.perf_counter() - t0)
                await outbox.send(res)
                pos += len(piece)
            index += n


class _ParallelMap(Runner):
    """N workers sharing one input; slices are re-sequenced when ``ordered``."""

    def __init__(self, stage: MapStage) -> None:
        self.stage = stage
        self.input = SharedInput()
        # Slices taken but not yet sent; bounds what waits for a slow head-of-line slice.
        self.window = anyio.Semaphore(2 * stage.workers)
        self.done: dict[int, list[Any]] = {}
        self.next_out = 0
        self.draining = False
        self.limiter = anyio.CapacityLimiter(stage.workers)

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        pacer = Pacer(BUDGET_S[self.stage.kind])
        # Unordered, a worker holds one slice at a time and sends it as soon as it is done, so the
        # window could never fill; skipping it saves an event-loop round trip per slice, which is
        # most of the overhead of a many-in-flight async map (W2b).
        windowed = self.stage.ordered
        while True:
            if windowed:
                await self._enter_window(outbox)
            got = await self.input.take(inbox, _executor_chunk(self.stage.executor) or pacer.size)
            if got is None:
                if windowed:
                    self.window.release()
                return
            base, items = got
            t0 = time.perf_counter()
            out = await self._process(base, items)
            pacer.record(len(items), time.perf_counter() - t0)
            if windowed:
                await self._emit_in_order(base, out, outbox)
            else:
                await outbox.send(out)

    async def _enter_window(self, outbox: Outbox) -> None:
        if self.window.value:
            await self.window.acquire()
            return
        # Every slot waits on a slow head-of-line slice or on downstream: blocked, not busy.
        t0 = time.perf_counter()
        await self.window.acquire()
        outbox.waited(t0)

    async def _process(self, base: int, items: list[Any]) -> list[Any]:
        stage, fn = self.stage, self.stage.fn
        res: list[Any] | _Failed
        if stage.kind == "inline":
            res = await apply_slice_async(fn, items) if stage.is_async else apply_slice(fn, items)
        elif stage.kind == "thread":
            # A thread cannot be interrupted: wait for it even when cancelled, so that an error
            # it raised meanwhile is reported (as a note on the first) instead of dropped.
            with anyio.CancelScope(shield=True):
                res = await anyio.to_thread.run_sync(apply_slice, fn, items, limiter=self.limiter)
            if not isinstance(res, _Failed):
                await anyio.lowlevel.checkpoint_if_cancelled()
        elif stage.kind == "process":
            res = await anyio.to_process.run_sync(apply_slice, fn, items, limiter=self.limiter)
        else:
            try:
                res = await stage.executor.submit(apply_slice, fn, items)  # type: ignore[union-attr]
            except Exception as exc:  # the executor lost the call: name its first element
                annotate(exc, stage.name, base)
                raise
        if isinstance(res, _Failed):
            annotate(res.exc, stage.name, base + res.offset)
            raise res.exc
        return res

    async def _emit_in_order(self, base: int, out: list[Any], outbox: Outbox) -> None:
        self.done[base] = out
        if self.draining:
            return  # the worker already draining will send it when its turn comes
        self.draining = True
        try:
            while self.next_out in self.done:
                ready = self.done.pop(self.next_out)
                self.next_out += len(ready)
                self.window.release()
                await outbox.send(ready)
        finally:
            self.draining = False
