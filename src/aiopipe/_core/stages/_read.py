"""``read``: paths in, records out, ``parallel`` files at once, interleaved.

Each of the ``parallel`` lanes reads one file at a time, so the records of a file stay in order,
and lanes run independently, so a stalled file does not stall the others. Readers built on
:class:`BlockingReader` are read in worker threads, many records per hop; when files are small a
lane reads several of them in one hop (one hop per file costs ~15x on many small files).

The output order is then the lanes' completion order (with one lane: file order). With
``deterministic=True`` and ``parallel > 1`` the stage is ``_read_cycle``'s instead: tf.data's
interleave order, read ahead in parallel. Both save their state exactly (``_read_state``,
``_read_lanes``, ``_read_cycle``): a resumed read delivers the records not yet delivered.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import anyio

from ..engine._channel import DownstreamClosed, Inbox, Outbox
from ..engine._policy import RAISE, ErrorPolicy, StageErrors
from ..engine._stage import RunContext, Runner, Stage, buffer_arg, maybe_aclosing, positive
from ..engine._threads import ThreadPool
from ._read_lanes import LaneRead, Queued, file_runs
from ._read_state import check_lane_state
from ._reader import HOP_RECORDS, HOP_SECONDS, BlockingReader
from ._urls import is_url, remote

__all__ = ["ReadStage"]

FLUSH_S = 0.001
MAX_FILES_PER_HOP = 256
# A lane waits this long for a running hop before deciding that hop is stuck on storage.
HOP_PATIENCE_S = 0.005
# A cancelled run waits this long for its hops to finish, then leaves a hop stuck on storage.
HOP_GRACE_S = 1.0
# A hop whose thread was on a CPU at least this share of its wall time was not waiting on storage.
CPU_BOUND_SHARE = 0.3
# Output ranges remembered for error notes downstream ("line 19 of /x.csv"): the recent ones only.
ORIGINS_KEPT = 4096


def reader_name(reader: object) -> str:
    if isinstance(reader, BlockingReader) or not hasattr(reader, "__name__"):
        return type(reader).__name__
    return str(reader.__name__)  # a plain async generator function


class ReadStage(Stage):
    def __init__(
        self,
        reader: Callable[[str], AsyncIterator[Any]],
        *,
        parallel: int,
        keys: bool,
        name: str | None,
        buffer: int | None,
        errors: ErrorPolicy = RAISE,
        deterministic: bool = False,
    ) -> None:
        if not callable(reader):
            raise TypeError(
                f"read needs a reader: a callable path -> async iterable of records, "
                f"got {type(reader).__name__}"
            )
        self.reader = reader
        self.workers = positive("read(parallel=)", parallel)
        self.keys = bool(keys)
        self.name = name if name is not None else f"read({reader_name(reader)})"
        self.buffer = buffer_arg("read", buffer)
        self.errors = errors
        if not isinstance(deterministic, bool):
            raise ValueError(f"read(deterministic=) must be True or False, got {deterministic!r}")
        self.deterministic = deterministic
        # tf.data's interleave order over ``parallel`` files; one lane is in file order anyway.
        self.cycle = deterministic and self.workers > 1
        if self.cycle:
            self.tasks = self.workers + 2  # the emitter, the input feeder, and the readers

    resumable = True

    def params(self) -> dict[str, Any]:
        return {
            "parallel": self.workers,
            "deterministic": self.deterministic or self.workers == 1,
            "keys": self.keys,
            "reader": reader_name(self.reader),
        }

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        if self.cycle:
            from ._read_cycle import check_cycle_state

            check_cycle_state(self.name, state, self.workers)
        else:
            check_lane_state(self.name, state)

    def runner(self, ctx: RunContext) -> Runner:
        errs = ctx.errors.for_stage(self, self.name, self.errors)
        if self.cycle:
            from ._read_cycle import CycleRead  # imports this module

            return CycleRead(self, ctx.threads, errs)
        if isinstance(self.reader, BlockingReader):
            return _ThreadedRead(self, self.reader, ctx.threads, errs)
        return _AsyncRead(self, errs, ctx.threads)


class _Failure:
    __slots__ = ("attempt", "exc", "index", "path", "record")

    def __init__(self, exc: Exception, index: int, path: str, record: int, attempt: int) -> None:
        self.exc, self.index, self.path, self.record = exc, index, path, record
        self.attempt = attempt


class _Lane:
    """One lane's files: the one open now and the ones it has taken but not started."""

    def __init__(self) -> None:
        self.queued: deque[Queued] = deque()
        self.current: Iterator[Any] | None = None
        self.index = 0
        self.path = ""
        self.record = 0
        self.attempt = 0
        self.want = 1  # files to take per hop: grows while files are small
        self.hopping = threading.Event()  # set while a worker thread owns the lane

    def close(self) -> None:
        if self.current is not None and not self.hopping.is_set():
            close = getattr(self.current, "close", None)
            self.current = None
            if close is not None:
                close()


class _UrlEmit:
    """``emit`` for ``read_url``: sends a URL's records on as they are decoded, passing over
    the ``start`` records a retried file had delivered already.

    An object with slots rather than a closure: a closure costs a cell per variable it uses, and
    every one lives, for the collector to walk, while the file's GET waits on the network.
    """

    __slots__ = ("index", "lane", "outbox", "path", "read", "start")

    def __init__(
        self, read: _ThreadedRead, lane: _Lane, outbox: Outbox, index: int, path: str, start: int
    ) -> None:
        self.read, self.lane, self.outbox = read, lane, outbox
        self.index, self.path, self.start = index, path, start

    async def __call__(self, records: list[Any]) -> None:
        lane, start = self.lane, self.start
        seen, lane.record = lane.record, lane.record + len(records)
        if seen < start:
            records = records[start - seen :]
            seen = start
        read = self.read
        sent = partial(read._sent, [(0, self.path, seen, self.index)])
        await read.ledger.send(self.outbox, records, [(self.index, len(records))], sent)


class _HopGate:
    """One thread hop at a time while hops are CPU-bound; all lanes at once while they wait on I/O.

    Files in the page cache make a hop pure CPU work under the GIL, so a second reading thread only
    adds contention: on W2 two threads read small files 10-20 % slower than one, four threads 45 %
    slower. Files on slow storage make hops wait, and then every lane should have one in flight. A
    lane kept waiting longer than a hop should take (the running hop is stuck on a slow file) stops
    waiting and switches the gate to I/O mode, so a stalled file never stalls the other lanes for
    more than ``HOP_PATIENCE_S``.
    """

    def __init__(self) -> None:
        self.running = 0
        self.cpu_bound = False
        self._freed = anyio.Event()

    async def enter(self) -> None:
        while self.cpu_bound and self.running:
            with anyio.move_on_after(HOP_PATIENCE_S) as scope:
                await self._freed.wait()
            if scope.cancelled_caught:
                self.cpu_bound = False
        self.running += 1

    def leave(self, cpu_share: float) -> None:
        self.running -= 1
        self.cpu_bound = cpu_share >= CPU_BOUND_SHARE
        self._freed.set()
        self._freed = anyio.Event()


class _ThreadedRead(LaneRead):
    def __init__(
        self, stage: ReadStage, reader: BlockingReader, threads: ThreadPool, errs: StageErrors
    ) -> None:
        super().__init__(stage, errs, threads)
        self.reader = reader
        self.gate = _HopGate()
        # (first output index, path, first record number) of each run of records sent on.
        self.origins: deque[tuple[int, str, int]] = deque(maxlen=ORIGINS_KEPT)
        # The stores and connection pools of aiopipe.remote, once a lane meets a URL: shared by
        # the lanes (a connection serves whichever lane asks next) and closed by the last lane
        # to leave. One per lane cost a pool, a timer and a set of options per lane.
        self.session: Any = None
        self._lanes = 0

    def _sent(self, runs: list[tuple[int, str, int, int]], first: int, offset: int, n: int) -> None:
        """Outputs ``first ..`` are ``out[offset : offset + n]`` of a hop whose file runs are
        ``runs`` ((position in out, path, first record, input index)): remember where each
        came from."""
        end = offset + n
        for i, (at, path, record, _) in enumerate(runs):
            stop = runs[i + 1][0] if i + 1 < len(runs) else end
            lo, hi = max(at, offset), min(stop, end)
            if lo < hi:
                self.origins.append((first + lo - offset, path, record + lo - at))

    def origin(self, index: int) -> str | None:
        starts = [o[0] for o in self.origins]
        i = bisect.bisect_right(starts, index) - 1
        if i < 0:
            return None
        start, path, record = self.origins[i]
        return self.reader.describe(path, record + index - start)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        self._lanes += 1
        lane = _Lane()
        try:
            await self._prepared(inbox, outbox)
            while True:
                if lane.current is None and not lane.queued:
                    # What is already here without a wait (two coroutines fewer per file).
                    got = self._take_nowait(lane.want) or await self._take(inbox, lane.want)
                    if got is None:
                        return
                    lane.queued.extend(got)
                elif len(lane.queued) < lane.want - 1:
                    lane.queued.extend(self._take_nowait(lane.want - 1 - len(lane.queued)))
                if lane.current is None and lane.queued and is_url(lane.queued[0][1]):
                    await self._read_url(lane, *lane.queued.popleft(), outbox)
                    continue  # (streamed on the event loop: URLs get no thread hop)
                out: list[Any] = []
                runs: list[tuple[int, str, int, int]] = []
                ends: list[int] = []
                res = await self._gated_hop(lane, out, runs, ends)
                # Records before a failure still count. Lanes' sends interleave, so an output's
                # index (and its mark) is known only as its piece enters the stream.
                sent = partial(self._sent, runs)
                hop_runs = file_runs(runs, len(out))
                if isinstance(res, _Failure):
                    await self.ledger.send(outbox, out, hop_runs, sent, failing=True)
                else:
                    await self.ledger.send(outbox, out, hop_runs, sent)
                for index in ends:
                    self.ledger.ended(index)
                if isinstance(res, _Failure):
                    await self._failed(res, lane)
        finally:
            lane.close()
            self._lanes -= 1
            if self._lanes == 0 and self.session is not None:
                session, self.session = self.session, None
                await session.aclose()

    async def _read_url(
        self, lane: _Lane, index: int, path: str, start: int, attempt: int, outbox: Outbox
    ) -> None:
        """A URL: no thread hop; an async lane streams it into the reader's decoder. A retry
        reads it again from the start and passes over the ``start`` records it delivered."""
        if self.session is None:
            self.session = remote("_session").Session(max_idle=max(1024, self.stage.workers))
        lane.record = 0
        emit = _UrlEmit(self, lane, outbox, index, path, start)
        try:
            await remote("_lane").read_url(self.reader, path, self.stage.keys, self.session, emit)
        except DownstreamClosed:
            raise
        except Exception as exc:
            failure = _Failure(exc, index, path, max(start, lane.record), attempt)
        else:
            self.ledger.ended(index)
            return
        await self._failed(failure, lane, resync=False)

    async def _gated_hop(
        self, lane: _Lane, out: list[Any], runs: list[tuple[int, str, int, int]], ends: list[int]
    ) -> _Failure | None:
        await self.gate.enter()
        share = 0.0
        lane.hopping.set()
        done = anyio.Event()
        try:
            call = self.threads.start(done, self._timed_hop, lane, out, runs, ends)
            try:
                await done.wait()
            except anyio.get_cancelled_exc_class():
                await _grace(done)
                raise
            got: tuple[_Failure | None, float] = ThreadPool.result(call)
            res, share = got
        finally:
            self.gate.leave(share)
        return res

    def _timed_hop(
        self, lane: _Lane, out: list[Any], runs: list[tuple[int, str, int, int]], ends: list[int]
    ) -> tuple[_Failure | None, float]:
        """The hop, and the share of its wall time the thread spent on a CPU."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            res = self._hop(lane, out, runs, ends)
        finally:
            lane.hopping.clear()
        wall = time.perf_counter() - wall
        return res, (time.thread_time() - cpu) / wall if wall > 0 else 1.0

    async def _failed(self, f: _Failure, lane: _Lane, *, resync: bool = True) -> None:
        """Retry the file (resuming after its delivered records), skip the rest of it, or raise.

        A reader cannot resynchronise after a bad record in general (a TFRecord length, a
        compressed stream), so a skip passes over the rest of the file, and says so.
        """
        if await self.errs.retry(f.exc, f.attempt):
            lane.queued.appendleft((f.index, f.path, f.record, f.attempt + 1))
            return
        where = self.reader.describe(f.path, f.record)
        if not self.errs.skip(f.exc, f.index, where, f.index + 1):
            raise f.exc
        if resync and self.reader.resyncs:  # the bad record alone is skipped; the file goes on
            lane.queued.appendleft((f.index, f.path, f.record + 1, 0))
            self.ledger.passed(f.index, 1)
        else:
            f.exc.add_note(f"aiopipe: skipped the rest of {f.path} after {f.record} records")
            self.ledger.ended(f.index)

    def _hop(
        self, lane: _Lane, out: list[Any], runs: list[tuple[int, str, int, int]], ends: list[int]
    ) -> _Failure | None:
        """Runs in a worker thread: read records until the hop's time or count budget is spent."""
        deadline = time.perf_counter() + HOP_SECONDS
        limit = HOP_RECORDS
        append = out.append
        keys = self.stage.keys
        while True:
            if lane.current is None:
                if not lane.queued:
                    lane.want = min(lane.want * 2, MAX_FILES_PER_HOP)  # files end fast: take more
                    return None
                if is_url(lane.queued[0][1]):
                    return None  # read on the event loop by _read_url, not in this thread
                lane.index, lane.path, lane.record, lane.attempt = lane.queued.popleft()
                if lane.record == 0:
                    lane.current = self.reader.iter_records(lane.path, keys=keys)
                else:  # a retried or resynchronised file: on from where it stopped
                    try:
                        lane.current = self.reader.iter_records_from(
                            lane.path, lane.record, keys=keys
                        )
                    except Exception as exc:
                        return _Failure(exc, lane.index, lane.path, lane.record, lane.attempt)
            runs.append((len(out), lane.path, lane.record, lane.index))
            try:
                for record in lane.current:
                    append(record)
                    lane.record += 1
                    if len(out) >= limit or time.perf_counter() >= deadline:
                        lane.want = max(1, lane.want // 2)  # files got slower: take fewer
                        return None
            except Exception as exc:
                lane.current = None
                return _Failure(exc, lane.index, lane.path, lane.record, lane.attempt)
            lane.current = None
            ends.append(lane.index)


async def _grace(done: anyio.Event) -> None:
    """A cancelled hop: wait for its thread to finish (a hop is short), but not for ever.

    A read blocked on storage that never answers (a hung network mount, a pipe with no writer)
    cannot be interrupted from outside its thread, and waiting for it would hang the shutdown. After
    ``HOP_GRACE_S`` the thread is left to finish on its own (a daemon thread of the run's pool,
    which does not keep the interpreter alive); it owns the lane's open file until then, so the
    lane does not close it.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(HOP_GRACE_S):
        await done.wait()


class _AsyncRead(LaneRead):
    """Any reader: ``async for`` over ``reader(path)`` (or ``reader.keyed(path)``)."""

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        await self._prepared(inbox, outbox)
        while (got := await self._take(inbox, 1)) is not None:
            for index, path, start, _ in got:
                await self._read_one(index, path, start, outbox)

    async def _read_one(self, index: int, path: str, start: int, outbox: Outbox) -> None:
        done = [start]  # records of this file delivered: for the error note, and to resume
        attempt = 0
        while True:
            try:
                await self._read_file(index, path, outbox, done)
                break
            except DownstreamClosed:
                raise
            except Exception as exc:
                if await self.errs.retry(exc, attempt):
                    attempt += 1
                    continue
                where = f"record {done[0]} of {path}" if done[0] else path
                if not self.errs.skip(exc, index, where, index + 1):
                    raise
                exc.add_note(f"aiopipe: skipped the rest of {path} after {done[0]} records")
                break
        self.ledger.ended(index)

    async def _read_file(self, index: int, path: str, outbox: Outbox, done: list[int]) -> None:
        """Send the records of ``path`` after the first ``done[0]`` (delivered before a retry)."""
        reader, keys = self.stage.reader, self.stage.keys
        keyed = getattr(reader, "keyed", None) if keys else None
        records = keyed(path) if keyed is not None else reader(path)
        out: list[Any] = []
        flushed = time.perf_counter()
        passed, at = done[0], 0
        try:
            async with maybe_aclosing(records):
                async for record in records:
                    if at < passed:
                        at += 1
                        continue
                    out.append((f"{path}:{at}", record) if keys and keyed is None else record)
                    at += 1
                    if len(out) >= outbox.limit or time.perf_counter() - flushed > FLUSH_S:
                        await self._send(index, out, outbox, done)
                        out, flushed = [], time.perf_counter()
        except Exception as exc:
            failure = exc
        else:
            await self._send(index, out, outbox, done)
            return
        # Records before a failure still count; raised outside the handler, with its own context.
        await self.ledger.send(outbox, out, [(index, len(out))], failing=True)
        done[0] += len(out)
        raise failure

    async def _send(self, index: int, out: list[Any], outbox: Outbox, done: list[int]) -> None:
        await self.ledger.send(outbox, out, [(index, len(out))])
        done[0] += len(out)
