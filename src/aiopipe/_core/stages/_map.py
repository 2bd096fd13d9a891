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

from ..engine._channel import Inbox, Outbox
from ..engine._pacer import MAX_SLICE, Pacer
from ..engine._policy import RAISE, ErrorPolicy, StageErrors, apply_with_policy
from ..engine._shared_input import SharedInput
from ..engine._stage import (
    RunContext,
    Runner,
    Stage,
    annotate,
    buffer_arg,
    fn_name,
    is_async_callable,
    positive,
)
from ..engine._state import Late, Position
from ..engine._threads import ThreadPool
from ..processes._fused import made
from ..processes._process_pool import (
    PER_LANE,
    NoLane,
    ProcessOptions,
    SharedLane,
    check_supported,
    current_lane,
    worked_s,
)
from ._unordered import Ledger, Sent

__all__ = ["Executor", "MapStage"]

# Time one slice may take, per way of running it: long enough to amortise the hop (a process
# slice is timed by its worker: what it waits for in the parent does not count).
BUDGET_S = {"inline": 0.001, "thread": 0.005, "process": 0.04, "custom": 0.05}
# A slice of a process map aligned on batches (see _ProcessMap.align) holds at most this much.
FUSED_SLICE_BYTES = 64 << 20
# A sync fn whose calls take longer than this leaves the event loop for a thread: the loop must
# not stall for more than a few milliseconds unless the user asked for inline.
OFFLOAD_S = 0.002


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
    if len(out) < len(items):
        # fn raised StopIteration, which map() takes for its own end and swallows: the original
        # is gone, so say what happened instead of losing the rest of the slice.
        return _Failed(out, _stop_iteration(fn))
    return out


def _stop_iteration(fn: Callable[..., Any]) -> RuntimeError:
    return RuntimeError(
        f"{fn_name(fn)} raised StopIteration, which would end iteration silently; "
        f"raise another exception to signal an error"
    )


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
        executor: str | Executor | ProcessOptions | None,
        name: str | None,
        buffer: int | None,
        errors: ErrorPolicy = RAISE,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"map needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.workers = positive("map(workers=)", workers)
        self.buffer = buffer_arg("map", buffer)
        self.ordered = bool(ordered)
        self.one_to_one = self.ordered and errors.on_error == "raise"  # output i from input i
        self.is_async = is_async_callable(fn)
        self.kind = _executor_kind(executor, self.is_async, fn, self.workers)
        if self.kind == "process":
            self.tasks = PER_LANE * self.workers  # tasks per worker process (_ProcessMap)
        self.executor = executor
        self.errors = errors
        self.name = name if name is not None else f"map({fn_name(fn)})"
        self.resumable = True

    def params(self) -> dict[str, Any]:
        return {"ordered": self.ordered}

    def runner(self, ctx: RunContext) -> Runner:
        errs = ctx.errors.for_stage(self, self.name, self.errors)
        if self.workers == 1 and self.kind in ("inline", "auto"):
            return _SerialMap(self, ctx.threads, errs)
        if self.kind == "process":
            runner = _ProcessMap(self, ctx.threads, errs)
            made(ctx, runner)  # a batch stage made next may take its rows as views
            return runner
        return _ParallelMap(self, ctx.threads, errs)


def _executor_kind(executor: object, is_async: bool, fn: Callable[..., Any], workers: int) -> str:
    """How calls run: ``inline`` on the loop, ``auto`` (a sync fn: inline while calls are
    cheap, on a thread once one is not), ``thread``, ``process`` or ``custom``."""
    if executor is None:
        if is_async:
            return "inline"
        # N sync calls at once can only mean N threads; one sync call that blocks for long
        # must not freeze the event loop either.
        return "thread" if workers > 1 else "auto"
    if executor == "inline":
        return "inline"
    if executor in ("thread", "process") or isinstance(executor, ProcessOptions):
        if is_async:
            raise ValueError(
                f"map(executor={executor!r}) runs sync functions off the event loop; "
                f"{fn_name(fn)} is async: drop executor= to await it on the loop"
            )
        if executor != "thread":
            check_supported()
            try:
                pickle.dumps(fn)
            except Exception as exc:
                raise ValueError(
                    f"map(executor='process') needs a picklable fn (a module-level function); "
                    f"{fn_name(fn)!r} cannot be pickled: {exc}"
                ) from None
        return "thread" if executor == "thread" else "process"
    if isinstance(executor, Executor):
        return "custom"
    raise ValueError(
        f"map(executor=) must be None, 'inline', 'thread', 'process' or an object with "
        f"`async def submit(fn, *args)`; got {executor!r}"
    )


async def _in_thread(threads: ThreadPool, fn: Callable[[Any], Any], items: list[Any]) -> Any:
    # A thread cannot be interrupted: wait for it even when cancelled (leaving open() waits for
    # the call in progress), so that an error it raised meanwhile is reported, not dropped.
    with anyio.CancelScope(shield=True):
        res = await threads.run(apply_slice, fn, items)
    if not isinstance(res, _Failed):
        await anyio.lowlevel.checkpoint_if_cancelled()
    return res


def _executor_chunk(executor: object) -> int | None:
    """The slice size an executor asks for, if any."""
    chunk = getattr(executor, "chunk", None)
    return chunk if isinstance(chunk, int) and chunk > 0 else None


class _SerialMap(Runner):
    """One worker: no reordering, no locks. A sync fn runs inline while its calls are cheap and
    moves to a thread (for the rest of the run) once a call takes longer than ``OFFLOAD_S``."""

    def __init__(self, stage: MapStage, threads: ThreadPool, errs: StageErrors) -> None:
        self.stage = stage
        self.threads = threads
        self.errs = errs
        # The first call of an ``auto`` fn runs on a thread: its cost is unknown, and a first
        # call that sleeps for a second must not freeze the loop either.
        self.offloaded = stage.kind == "auto"

    async def _call(self, items: list[Any]) -> Any:
        fn = self.stage.fn
        if self.stage.is_async:
            return await apply_slice_async(fn, items)
        if self.offloaded:
            return await _in_thread(self.threads, fn, items)
        return apply_slice(fn, items)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        pacer = Pacer(BUDGET_S["inline"])
        plain = self.stage.errors.is_default
        fn, is_async = self.stage.fn, self.stage.is_async
        index = 0
        while (chunk := await inbox.receive()) is not None:
            pos, n = 0, len(chunk)
            while pos < n:
                # One to one, output i is input i: the input's position is the output's (no
                # state of its own; a resolved state has None for this stage).
                at: Position | None = inbox.position(pos)
                if not plain:
                    at = (self, ({}, at), 0)
                piece = chunk if pos == 0 and pacer.size >= n else chunk[pos : pos + pacer.size]
                t0 = time.perf_counter()
                if plain and not (is_async or self.offloaded):
                    res = apply_slice(fn, piece)  # the hot path: no coroutine per slice
                elif plain:
                    res = await self._call(piece)
                else:
                    res = await apply_with_policy(
                        self._call, piece, index + pos, self.errs, _Failed
                    )
                if isinstance(res, _Failed):
                    annotate(res.exc, self.stage.name, index + pos + res.offset)
                    await outbox.send_before_failing(res.done, at=at)  # they still count
                    raise res.exc
                self._pace(pacer, len(piece), time.perf_counter() - t0)
                await outbox.send(res, at=at)
                pos += len(piece)
            index += n

    def _pace(self, pacer: Pacer, items: int, seconds: float) -> None:
        pacer.record(items, seconds)
        if self.stage.kind == "auto":
            self.offloaded = seconds / items > OFFLOAD_S
            if self.offloaded:
                pacer.size = max(1, int(BUDGET_S["thread"] / (seconds / items)))


class _ParallelMap(Runner):
    """N workers sharing one input; slices are re-sequenced when ``ordered``."""

    def __init__(self, stage: MapStage, threads: ThreadPool, errs: StageErrors) -> None:
        self.stage = stage
        self.threads = threads
        self.errs = errs
        self.input = SharedInput()
        # Slices taken but not yet sent; bounds what waits for a slow head-of-line slice.
        self.window = anyio.Semaphore(2 * stage.workers)
        # Finished slices by input position: (elements taken, results kept, their position,
        # whether sending them frees a window slot).
        self.done: dict[int, tuple[int, list[Any], Position | None, bool]] = {}
        self.next_out = 0
        self.draining = False
        # Unordered: what was sent, for an exact state (see _unordered); and, when resumed,
        # results held until the slices sent after the saved position have gone again in order.
        self.ledger = Ledger(self.input.untaken)
        self.held: dict[int, tuple[int, list[Any]]] = {}

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        if isinstance(mark, Sent):
            return Ledger.resolve(mark, k, out)
        return super().resolve(mark, k, out)

    def restore(self, state: dict[str, Any]) -> None:
        if not self.stage.ordered:
            self.ledger.restore(state)
            self.input.next_index = self.ledger.start

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        pacer = Pacer(BUDGET_S["thread" if self.stage.kind == "auto" else self.stage.kind])
        # Unordered, a worker holds one slice at a time and sends it as soon as it is done, so the
        # window could never fill; skipping it saves an event-loop round trip per slice, which is
        # most of the overhead of a many-in-flight async map (W2b).
        windowed = self.stage.ordered
        while True:
            if windowed:
                await self._enter_window(outbox)
            size, cap = self._slice(pacer)
            got = await self._take(inbox, size, cap)
            if got is None:
                if windowed:
                    self.window.release()
                if self.held:
                    await self._send_held(outbox)
                return
            base, items, at = got
            if not windowed:
                if self.ledger.drop and self.ledger.dropped(base):
                    continue  # delivered before the resume
                self.ledger.taken(base, len(items), at)
            t0 = time.perf_counter()
            try:
                if self.stage.errors.is_default:
                    res = await self._call(items)
                else:
                    res = await apply_with_policy(self._call, items, base, self.errs, _Failed)
            except Exception as exc:
                if self.stage.kind == "custom":  # the executor lost the call: name its first
                    annotate(exc, self.stage.name, base)
                raise
            if isinstance(res, _Failed):
                annotate(res.exc, self.stage.name, base + res.offset)
                # The results before the failing element still count, as in a serial map, when
                # they can go now: unordered, or ordered with every earlier slice sent. Else the
                # error goes at once (an error must not wait behind slow work).
                if not windowed:
                    await outbox.send_before_failing(res.done, at=self._sent(base, len(items)))
                elif base == self.next_out and not self.draining:
                    for _, _, part, up in self._pieces(base, len(res.done), res.done, at):
                        await outbox.send_before_failing(part, at=self._at(up))
                raise res.exc
            pacer.record(len(items), self._cost(t0))
            if windowed:
                for i, (b, n, part, up) in enumerate(self._pieces(base, len(items), res, at)):
                    # One window slot per slice: its first piece gives it back.
                    self.done[b] = (n, part, self._at(up), i == 0)
                await self._drain_in_order(outbox)
            elif self.ledger.replay or self.held:
                self.held[base] = (len(items), res)
                await self._send_held(outbox)
            else:
                await outbox.send(res, at=self._sent(base, len(items)))

    def _slice(self, pacer: Pacer) -> tuple[int, Callable[[int, int], int] | None]:
        """How many elements the next slice takes, and what may cut it given where it starts."""
        size = _executor_chunk(self.stage.executor) or pacer.size
        return size, self.ledger.limit if self.ledger.replay or self.ledger.drop else None

    async def _take(
        self, inbox: Inbox, size: int, cap: Callable[[int, int], int] | None
    ) -> tuple[int, list[Any], Position | None] | None:
        return await self.input.take(inbox, size, cap)

    def _sent(self, base: int, size: int) -> Late:
        """The position of an unordered send of slice (base, size), made as it enters the
        stream: the ledger's marks must follow stream order."""
        return Late(lambda: (self, self.ledger.sent(base, size), 0))

    def _at(self, up: Position | None) -> Position | None:
        """The position of an ordered slice whose input starts at ``up``: the same, one to one;
        under an error policy that may skip elements, a replay from there."""
        return up if self.stage.errors.is_default else (self, ({}, up), 0)

    def _cost(self, t0: float) -> float:
        """What the slice that started at ``t0`` cost, for the pacer."""
        return time.perf_counter() - t0

    async def _enter_window(self, outbox: Outbox) -> None:
        if self.window.value:
            await self.window.acquire()
            return
        # Every slot waits on a slow head-of-line slice or on downstream: blocked, not busy.
        t0 = time.perf_counter()
        await self.window.acquire()
        outbox.waited(t0)

    async def _call(self, items: list[Any]) -> Any:
        stage, fn = self.stage, self.stage.fn
        if stage.kind == "inline":
            return await apply_slice_async(fn, items) if stage.is_async else apply_slice(fn, items)
        if stage.kind in ("thread", "auto"):
            return await _in_thread(self.threads, fn, items)
        if stage.kind == "process":
            done, exc = await current_lane().call(items)
            return done if exc is None else _Failed(done, exc)
        return await stage.executor.submit(apply_slice, fn, items)  # type: ignore[union-attr]

    async def _send_held(self, outbox: Outbox) -> None:
        """Resuming unordered: send again, in their order, the slices the saved state says were
        sent after its position; then what was made meanwhile (once the replay is done, in any
        order: nothing downstream has seen it)."""
        if self.draining:
            return
        self.draining = True
        try:
            replay, held = self.ledger.replay, self.held
            while replay:
                base, size = replay[0]
                got = _gather(held, base, size)
                if got is None:
                    return  # not all made yet: the worker that makes the last piece sends it
                replay.pop(0)
                await outbox.send(got, at=self._sent(base, size))
            while held:
                base = min(held)
                size, res = held.pop(base)
                await outbox.send(res, at=self._sent(base, size))
        finally:
            self.draining = False

    def _pieces(
        self, base: int, taken: int, out: list[Any], up: Position | None
    ) -> list[tuple[int, int, list[Any], Position | None]]:
        """A finished slice as the pieces to send, each with its input index, elements taken,
        results and input position: one piece, unless the slice joined input chunks."""
        return [(base, taken, out, up)]

    async def _drain_in_order(self, outbox: Outbox) -> None:
        """Send the finished slices that are next in input order."""
        if self.draining:
            return  # the worker already draining will send it when its turn comes
        self.draining = True
        try:
            while self.next_out in self.done:
                taken, ready, at, slot = self.done.pop(self.next_out)
                self.next_out += taken
                if slot:
                    self.window.release()
                await outbox.send(ready, at=at)
        finally:
            self.draining = False


class _Boundaries:
    """Cuts a slice of a process map to end on a batch boundary (see _ProcessMap.align)."""

    __slots__ = ("batch", "whole")

    def __init__(self, batch: int, whole: int) -> None:
        self.batch = batch
        self.whole = whole  # a multiple of batch

    def __call__(self, base: int, size: int) -> int:
        return self.whole - base % self.batch


def _gather(held: dict[int, tuple[int, list[Any]]], base: int, size: int) -> list[Any] | None:
    """The results of inputs ``base .. base+size``, from the pieces that computed them, if all
    are here (they are then taken out of ``held``)."""
    at, pieces = base, []
    while at < base + size:
        piece = held.get(at)
        if piece is None:
            return None
        pieces.append(at)
        at += piece[0]
    out: list[Any] = []
    for b in pieces:
        out.extend(held.pop(b)[1])
    return out


class _ProcessMap(_ParallelMap):
    """Worker tasks share worker processes (``_process_pool``): PER_LANE tasks per process, so
    that each process has its next call queued while the parent takes the last one's results."""

    def __init__(self, stage: MapStage, threads: ThreadPool, errs: StageErrors) -> None:
        super().__init__(stage, threads, errs)
        # A window slot per task is taken while it computes: leave room for reordering.
        self.window = anyio.Semaphore(2 * stage.task_count)
        fn = pickle.dumps(stage.fn)  # sent once to each worker process, at its start
        given = stage.executor
        options = given if isinstance(given, ProcessOptions) else ProcessOptions()
        module = getattr(stage.fn, "__module__", None)
        self.lanes = [
            SharedLane(fn, options, stage.name, module, producer=self) for _ in range(stage.workers)
        ]
        self.batch_size = 0  # of a batch stage right after us (see align); 0: none seen
        self.batch_bytes = 0
        self.gathering = anyio.Lock()  # one task at a time fills a slice of whole batches
        # Slices joined from several input chunks, by input index: (index, size, position) of
        # each chunk's part, so that each part goes out with its own position.
        self.joined: dict[int, list[tuple[int, int, Position | None]]] = {}

    def align(self, batch_size: int, row_bytes: int) -> None:
        """A batch stage right after us takes ``batch_size`` of our rows (``row_bytes`` each):
        from now on our slices are whole batches, starting on batch boundaries, so that the
        batch takes each slice's rows as a view (``_fused``). Not for batches too big to be one
        slice: those are copied as before."""
        fits = batch_size * row_bytes <= FUSED_SLICE_BYTES and batch_size <= MAX_SLICE
        # Ordered and one to one only: an output's position is its input's (see _pieces).
        self.batch_size = batch_size if fits and self.stage.one_to_one else 0
        self.batch_bytes = batch_size * row_bytes  # 0 until rows were seen

    def _slice(self, pacer: Pacer) -> tuple[int, Callable[[int, int], int] | None]:
        size, cap = super()._slice(pacer)
        b = self.batch_size
        if not b or cap is not None or _executor_chunk(self.stage.executor):
            return size, cap
        # As many whole batches as the pacer wants (one at least, and within the bytes of a
        # slice); the first slice after a batch boundary was missed ends on the next one.
        most = FUSED_SLICE_BYTES // self.batch_bytes if self.batch_bytes else MAX_SLICE
        whole = max(1, min(round(size / b), most, MAX_SLICE // b)) * b
        return whole, _Boundaries(b, whole)

    async def _take(
        self, inbox: Inbox, size: int, cap: Callable[[int, int], int] | None
    ) -> tuple[int, list[Any], Position | None] | None:
        """A slice of whole batches is gathered from as many input chunks as it takes; one task
        at a time, so that its pieces are consecutive."""
        if not isinstance(cap, _Boundaries):
            return await super()._take(inbox, size, cap)
        async with self.gathering:
            got = await self.input.take(inbox, size, cap)
            if got is None:
                return None
            base, items, at = got
            want = cap(base, size)
            parts = [(base, len(items), at)]
            while len(items) < want:
                more = await self.input.take(inbox, want - len(items))
                if more is None:
                    break  # the end of the input: a last, partial batch
                parts.append((more[0], len(more[1]), more[2]))
                items = [*items, *more[1]]  # (a new list: the first piece may be a chunk)
            if len(parts) > 1:
                self.joined[base] = parts
            return base, items, at

    def _pieces(
        self, base: int, taken: int, out: list[Any], up: Position | None
    ) -> list[tuple[int, int, list[Any], Position | None]]:
        parts = self.joined.pop(base, None)
        if parts is None:
            return [(base, taken, out, up)]
        # One to one: the results of a part are the same slice of ``out`` (``out`` may be short
        # when an element failed: the parts it reaches).
        pieces: list[tuple[int, int, list[Any], Position | None]] = []
        offset = 0
        for b, n, at in parts:
            if offset >= len(out) and pieces:
                break
            pieces.append((b, n, out[offset : offset + n], at))
            offset += n
        return pieces

    def _cost(self, t0: float) -> float:
        # The worker's own time: ours also counts the wait behind the other call in flight.
        return worked_s(default=super()._cost(t0))

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        try:
            async with self.lanes[worker // PER_LANE].use():
                await super().work(worker, inbox, outbox)
        except NoLane:
            return  # its other task started it and failed (and reports why), or is done
