"""``read(parallel=N, deterministic=True)``: tf.data's interleave order, read ahead in parallel.

The order is exactly ``Dataset.interleave(cycle_length=N, block_length=1)``'s: a cycle of N
slots; at the current slot take one record and move to the next slot; a slot whose file ends is
emptied and the cycle moves on; an empty slot, when reached, takes the next path and reads from
it at once; once the paths run out, empty slots are passed over until every file has ended.

Only one task (the emitter) decides the order. The reading is done ahead of it by N reader
tasks, into a small buffer per file (``FILE_AHEAD`` records), for the files in the cycle and
the next N paths, so a file is usually open and buffered before its slot reaches it. A feeder
task takes the paths. The state is the cycle (each slot's input index, path and records
delivered), the turn, and the next path not yet in the cycle: a few integers per slot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import anyio

from ..engine._channel import Inbox, Outbox
from ..engine._policy import StageErrors
from ..engine._shared_input import SharedInput
from ..engine._stage import Runner
from ..engine._state import Position, resolve, shifted
from ..engine._threads import ThreadPool
from ._reader import HOP_RECORDS, HOP_SECONDS, BlockingReader
from ._urls import is_url

if TYPE_CHECKING:
    from ._read import ReadStage

__all__ = ["CycleRead", "check_cycle_state"]

# Records a file may hold read but not yet emitted: bounds memory to (2 * parallel) files' worth.
FILE_AHEAD = 1024
FLUSH_S = 0.001


def check_cycle_state(name: str, entry: dict[str, Any], size: int) -> None:
    cycle = entry.get("cycle")
    ok = (
        isinstance(cycle, list)
        and len(cycle) == size
        and all(s is None or (isinstance(s, list) and len(s) == 3) for s in cycle)
        and all(isinstance(entry.get(k), int) for k in ("turn", "first", "next"))
    )
    if not ok:
        raise ValueError(
            f"state is damaged: stage '{name}' expects a cycle of {size} slots with turn/first/"
            f"next, got {entry!r:.120}"
        )


class _File:
    """A file in the cycle or about to enter it, and the records read ahead of the emitter."""

    __slots__ = (
        "at",
        "attempt",
        "buf",
        "busy",
        "delivered",
        "ended",
        "error",
        "index",
        "path",
        "read",
        "records",
        "sync",
    )

    def __init__(self, index: int, path: str, at: Position | None, start: int = 0) -> None:
        self.index = index
        self.path = path
        self.at = at  # the upstream position of this path
        self.delivered = start  # records emitted (or delivered before a resume)
        self.read = start  # records read from the file so far
        self.buf: deque[Any] = deque()
        self.ended = False
        self.error: Exception | None = None
        self.busy = False  # a reader task is reading it now
        self.attempt = 0
        self.sync: Iterator[Any] | None = None
        self.records: AsyncIterator[Any] | None = None


class CycleRead(Runner):
    """Workers: 0 emits in cycle order, 1 takes the paths, the others read ahead."""

    def __init__(self, stage: ReadStage, threads: ThreadPool, errs: StageErrors) -> None:
        from ._read import _HopGate  # the same CPU/IO gate as the lanes

        self.stage = stage
        self.threads = threads
        self.errs = errs
        self.size = stage.workers
        self.gate = _HopGate()
        self.input = SharedInput()
        self.slots: list[_File | None] = [None] * self.size
        self.turn = 0
        self.ahead: deque[_File] = deque()  # paths taken, not yet in the cycle, in input order
        self.next_index = 0  # input index of the next path the feeder takes
        self.next_at: Position | None = None
        self.input_done = False
        self.done = False
        self.changed = anyio.Event()
        self.feeding: anyio.CancelScope | None = None
        self.plan: dict[str, Any] | None = None
        self.ready = anyio.Event()

    # -- state -------------------------------------------------------------------------------

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        slots, turn, next_index, next_at = mark
        live = [s for s in slots if s is not None]
        oldest = min(live, key=lambda s: s[0]) if live else None
        resolve(oldest[3] if oldest is not None else next_at, out)
        state = {
            "cycle": [None if s is None else [s[0], s[1], s[2]] for s in slots],
            "turn": turn,
            "first": oldest[0] if oldest is not None else next_index,
            "next": next_index,
        }
        if k:
            state["skip"] = k  # the order is deterministic: replay from the mark, drop k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state
        self.input.next_index = self.next_index = int(state["first"])
        self.turn = int(state["turn"])

    def _mark(self) -> Any:
        slots = tuple(
            None if f is None else (f.index, f.path, f.delivered, f.at) for f in self.slots
        )
        if self.ahead:
            head = self.ahead[0]
            return (slots, self.turn, head.index, head.at)
        return (slots, self.turn, self.next_index, self.next_at)

    # -- tasks -------------------------------------------------------------------------------

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        if worker == 0:
            await self._emit(outbox)
        elif worker == 1:
            await self._feed(inbox, outbox)
        else:
            await self._read_ahead(outbox)

    def _signal(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def _wait(self, outbox: Outbox) -> None:
        """Wait for a change, counted as blocked: the files are read ahead as far as they may
        be, and the emitter (or downstream) has to take records first."""
        t0 = time.perf_counter()
        await self.changed.wait()
        outbox.waited(t0)

    async def _feed(self, inbox: Inbox, outbox: Outbox) -> None:
        if self.next_at is None:
            self.next_at = inbox.stamp
        try:
            with anyio.CancelScope() as self.feeding:
                if self.done:
                    return
                if self.plan is not None:
                    await self._restore_cycle(inbox)
                while not self.done:
                    if len(self.ahead) >= self.size:
                        await self._wait(outbox)
                        continue
                    got = await self.input.take(inbox, self.size - len(self.ahead))
                    if got is None:
                        break
                    self._took(got)
        finally:
            self.input_done = True
            self._signal()

    def _took(self, got: tuple[int, list[Any], Position | None]) -> list[_File]:
        base, paths, at = got
        files = [_File(base + i, os.fspath(p), shifted(at, i)) for i, p in enumerate(paths)]
        self.ahead.extend(files)
        self.next_index, self.next_at = base + len(paths), shifted(at, len(paths))
        self._signal()
        return files

    async def _restore_cycle(self, inbox: Inbox) -> None:
        """Take the paths again from the oldest file of the saved cycle up to its next path:
        the cycle's files are reopened where they were, the others had ended."""
        plan, self.plan = self.plan, None
        assert plan is not None
        where = {
            int(s[0]): (slot, str(s[1]), int(s[2]))
            for slot, s in enumerate(plan["cycle"])
            if s is not None
        }
        stop = int(plan["next"])
        while self.next_index < stop:
            got = await self.input.take(inbox, stop - self.next_index)
            if got is None:
                raise ValueError(
                    f"read: the saved state of stage '{self.stage.name}' needs input up to "
                    f"element {stop - 1}, but the input ended at {self.next_index}: it is not "
                    f"the input the state was saved with"
                )
            for f in self._took(got):
                saved = where.get(f.index)
                if saved is None:
                    continue  # it had ended before the saved position
                slot, path, delivered = saved
                if path != f.path:
                    raise ValueError(
                        f"read: the saved state was reading {path!r} as input element "
                        f"{f.index} of stage '{self.stage.name}', but this pipeline's element "
                        f"{f.index} is {f.path!r}: the state is from another input"
                    )
                self.slots[slot] = _File(f.index, f.path, f.at, delivered)
            self.ahead.clear()
        self.ready.set()
        self._signal()

    async def _emit(self, outbox: Outbox) -> None:
        try:
            if self.plan is not None:
                await self.ready.wait()
            await self._cycle(outbox)
        finally:
            self.done = True
            if self.feeding is not None:
                self.feeding.cancel()
            self._signal()

    async def _cycle(self, outbox: Outbox) -> None:
        slots, size, limit = self.slots, self.size, outbox.limit
        out: list[Any] = []
        mark: Any = None
        flushed = time.perf_counter()
        while True:
            f = slots[self.turn]
            if f is None:
                if self.ahead:
                    f = slots[self.turn] = self.ahead.popleft()
                    self._signal()  # the feeder takes another path
                elif not self.input_done:
                    out, mark = await self._idle(outbox, out, mark)
                    continue
                elif all(s is None for s in slots):
                    await self._flush(outbox, out, mark)
                    return
                else:
                    self.turn = (self.turn + 1) % size
                    continue
            if f.buf:
                if mark is None:
                    mark = self._mark()
                if self.turn == 0 and self._rounds(out, limit - len(out)):
                    continue
                out.append(f.buf.popleft())
                f.delivered += 1
                self.turn = (self.turn + 1) % size
                if len(out) >= limit or time.perf_counter() - flushed > FLUSH_S:
                    out, mark = await self._flush(outbox, out, mark)
                    flushed = time.perf_counter()
            elif f.ended:
                if f.error is not None:
                    await self._flush(outbox, out, mark, failing=True)
                    raise f.error
                slots[self.turn] = None
                self.turn = (self.turn + 1) % size
            else:
                out, mark = await self._idle(outbox, out, mark)

    def _rounds(self, out: list[Any], most: int) -> int:
        """Whole rounds of the cycle at once while every slot has records buffered (the
        common case): the same order as one record at a time, at C speed."""
        slots = self.slots
        rounds = min(len(f.buf) if f is not None else 0 for f in slots)
        rounds = min(rounds, most // self.size)
        if rounds < 2:
            return 0
        taken = []
        for f in slots:
            assert f is not None
            buf = f.buf
            taken.append([buf.popleft() for _ in range(rounds)])
            f.delivered += rounds
        out.extend(itertools.chain.from_iterable(zip(*taken, strict=True)))
        return rounds

    async def _idle(self, outbox: Outbox, out: list[Any], mark: Any) -> tuple[list[Any], Any]:
        """Nothing to emit now: send what is made, or wait for a reader or the feeder. (After
        a send, look again before waiting: what we wait for may have come meanwhile.)"""
        if out:
            return await self._flush(outbox, out, mark)
        self._signal()
        await self.changed.wait()
        return out, mark

    async def _flush(
        self, outbox: Outbox, out: list[Any], mark: Any, *, failing: bool = False
    ) -> tuple[list[Any], Any]:
        self._signal()  # buffers have room again: wake the readers
        if out:
            at = (self, mark, 0)
            if failing:
                await outbox.send_before_failing(out, at=at)
            else:
                await outbox.send(out, at=at)
        return [], None

    # -- reading ahead -----------------------------------------------------------------------

    def _pick(self) -> list[_File]:
        """The files to read next, fewest records buffered first (the cycle's before the next
        paths'): one, or while hops are CPU-bound (files in the page cache) all that need
        reading, in one thread hop, as a lane reads several small files per hop."""
        # Half full is full enough: a hop then reads at least half a buffer, and the thread
        # hop's cost stays small per record.
        files = [
            f
            for f in (*self.slots, *self.ahead)
            if f is not None and not f.busy and not f.ended and len(f.buf) <= FILE_AHEAD // 2
        ]
        if not files:
            return files
        files.sort(key=lambda f: len(f.buf))
        if not (
            self.gate.cpu_bound
            and isinstance(self.stage.reader, BlockingReader)
            and not is_url(files[0].path)
        ):
            return files[:1]
        return [f for f in files if not is_url(f.path)]

    async def _read_ahead(self, outbox: Outbox) -> None:
        try:
            while not self.done:
                files = self._pick()
                if not files:
                    await self._wait(outbox)
                    continue
                for f in files:
                    f.busy = True
                try:
                    await self._fill(files)
                finally:
                    for f in files:
                        f.busy = False
                    self._signal()
        finally:
            with anyio.CancelScope(shield=True):
                for left in (*self.slots, *self.ahead):
                    if left is not None and not left.busy:
                        await _close(left)

    async def _fill(self, files: list[_File]) -> None:
        reader = self.stage.reader
        if isinstance(reader, BlockingReader) and not is_url(files[0].path):
            results = await self._thread_hop(reader, files)
        else:
            results = [await self._async_hop(files[0], FILE_AHEAD - len(files[0].buf))]
        for f, (got, end) in zip(files, results, strict=True):
            f.buf.extend(got)
            f.read += len(got)
            if end is False:
                continue
            await _close(f)
            if isinstance(end, Exception):
                await self._failed(f, end)
            else:
                f.ended = True

    async def _thread_hop(
        self, reader: BlockingReader, files: list[_File]
    ) -> list[tuple[list[Any], bool | Exception]]:
        from ._read import _grace

        await self.gate.enter()
        share = 0.0
        try:
            done = anyio.Event()
            call = self.threads.start(done, _hop, reader, files, self.stage.keys)
            try:
                await done.wait()
            except anyio.get_cancelled_exc_class():
                await _grace(done)
                raise
            results, share = ThreadPool.result(call)
        finally:
            self.gate.leave(share)
        return results  # type: ignore[no-any-return]

    async def _async_hop(self, f: _File, room: int) -> tuple[list[Any], bool | Exception]:
        reader, keys = self.stage.reader, self.stage.keys
        keyed = getattr(reader, "keyed", None) if keys else None
        got: list[Any] = []
        t0 = time.perf_counter()
        try:
            if f.records is None:
                f.records = keyed(f.path) if keyed is not None else reader(f.path)
                for _ in range(f.read):  # a resumed or retried file: pass over what was read
                    await anext(f.records)
            while len(got) < room:
                record = await anext(f.records)
                i = f.read + len(got)
                got.append((f"{f.path}:{i}", record) if keys and keyed is None else record)
                if time.perf_counter() - t0 > HOP_SECONDS:
                    return got, False
        except StopAsyncIteration:
            return got, True
        except Exception as exc:
            return got, exc
        return got, False

    async def _failed(self, f: _File, exc: Exception) -> None:
        """Retry the file from where its reading stopped, skip the rest of it, or keep the
        error for the emitter, which raises it once the records before it are emitted."""
        if await self.errs.retry(exc, f.attempt):
            f.attempt += 1
            return
        where = f"record {f.read} of {f.path}"
        f.ended = True
        if self.errs.skip(exc, f.index, where, f.index + 1):
            # The rest of the file is passed over in every run: the order stays a function
            # of the files, and a state never points past the bad record.
            exc.add_note(f"aiopipe: skipped the rest of {f.path} after {f.read} records")
        else:
            f.error = exc


def _hop(
    reader: BlockingReader, files: list[_File], keys: bool
) -> tuple[list[tuple[list[Any], bool | Exception]], float]:
    """Runs in a worker thread: records of ``files`` in turn, each up to its buffer's room,
    within one hop's time and record budget; and the share of the hop spent on a CPU."""
    wall, cpu = time.perf_counter(), time.thread_time()
    deadline = wall + HOP_SECONDS
    budget = 2 * HOP_RECORDS  # a hop may top up several files: fewer waits for the emitter
    results: list[tuple[list[Any], bool | Exception]] = []
    for f in files:
        if budget <= 0 or time.perf_counter() >= deadline:
            results.append(([], False))
            continue
        room = min(budget, FILE_AHEAD - len(f.buf))
        got, end = _read_some(reader, f, room, deadline, keys)
        budget -= len(got)
        results.append((got, end))
    wall = time.perf_counter() - wall
    return results, (time.thread_time() - cpu) / wall if wall > 0 else 1.0


def _read_some(
    reader: BlockingReader, f: _File, room: int, deadline: float, keys: bool
) -> tuple[list[Any], bool | Exception]:
    got: list[Any] = []
    end: bool | Exception = False
    try:
        if f.sync is None:
            if f.read:
                f.sync = reader.iter_records_from(f.path, f.read, keys=keys)
            else:
                f.sync = reader.iter_records(f.path, keys=keys)
        append = got.append
        for record in f.sync:
            append(record)
            if len(got) >= room or time.perf_counter() >= deadline:
                break
        else:
            end = True
    except Exception as exc:
        end = exc
    return got, end


async def _close(f: _File) -> None:
    sync, f.sync = f.sync, None
    if sync is not None:
        close = getattr(sync, "close", None)
        if close is not None:
            # ValueError: still running in a thread left behind at shutdown; it ends by itself.
            with contextlib.suppress(ValueError):
                close()
    records, f.records = f.records, None
    aclose = getattr(records, "aclose", None)
    if aclose is not None:
        # RuntimeError: still running in a cancelled reader task, which closes it.
        with contextlib.suppress(RuntimeError):
            await aclose()
