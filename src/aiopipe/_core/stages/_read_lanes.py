"""The lane-mode read's shared part: taking files (restored ones first), and resuming.

Lanes (``_read``) read one file at a time each, in completion order across lanes; with one lane
that is file order. Before they start on a saved state, one worker takes the input again from
the oldest unfinished file, checks and reopens the files in progress (``_read_state``), and, with
several lanes, emits the saved replay list first, reading those records again in that order.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ..engine._channel import Inbox, Outbox
from ..engine._policy import StageErrors
from ..engine._shared_input import SharedInput
from ..engine._stage import Runner
from ..engine._threads import ThreadPool
from ._read_state import LaneRestore, Ledger, Plan, Runs
from ._reader import BlockingReader
from ._urls import is_url

if TYPE_CHECKING:
    from ._read import ReadStage

__all__ = ["Cursor", "LaneRead", "Queued", "file_runs"]

# A file a lane is to read: (input index, path, records already delivered, failed attempts).
# A retried file is read again from the start, its delivered records passed over: each record
# reaches the output exactly once.
Queued = tuple[int, str, int, int]


class LaneRead(Runner):
    """What the lane-mode readers share: the input, the ledger of files (their state, see
    ``_read_state``), and resuming from a saved state before the lanes start."""

    def __init__(self, stage: ReadStage, errs: StageErrors, threads: ThreadPool) -> None:
        self.stage = stage
        self.errs = errs
        self.threads = threads
        self.input = SharedInput()
        self.ledger = Ledger(self, replay=stage.workers > 1)
        self.plan: Plan | None = None
        self.restored: deque[Queued] = deque()  # files of a saved state to go on with
        self._ready: anyio.Event | None = None  # set once a saved state is restored

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        return self.ledger.resolve(mark, k, out)

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = Plan(state)
        # The input is taken again from the oldest unfinished file, with its own indexes.
        self.input.next_index = self.ledger.next_index = self.plan.first

    async def _take(self, inbox: Inbox, size: int) -> list[Queued] | None:
        """Up to ``size`` files for a lane: restored ones first, then new input; None at the end."""
        if self.restored:
            return [self.restored.popleft() for _ in range(min(size, len(self.restored)))]
        return self._taken(await self.input.take(inbox, size))

    def _take_nowait(self, size: int) -> list[Queued]:
        if self.restored:
            return [self.restored.popleft() for _ in range(min(size, len(self.restored)))]
        return self._taken(self.input.take_nowait(size)) or []

    def _taken(self, got: tuple[int, list[Any], Any] | None) -> list[Queued] | None:
        if got is None:
            return None
        base, paths, at = got
        names = self.ledger.taken(base, paths, at)
        return [(base + i, p, 0, 0) for i, p in enumerate(names)]

    async def _prepared(self, inbox: Inbox, outbox: Outbox) -> None:
        """Restore a saved state (one worker does it; the others wait for it)."""
        if self.plan is None:
            return
        if self._ready is not None:
            await self._ready.wait()
            return
        self._ready = anyio.Event()
        plan = self.plan
        rs = LaneRestore(plan, self.ledger, self.stage.name)
        while self.ledger.next_index < plan.need:
            got = await self.input.take(inbox, plan.need - self.ledger.next_index)
            if got is None:
                raise rs.ended_early(self.ledger.next_index)
            base, paths, at = got
            rs.received(base, self.ledger.taken(base, paths, at))
        if plan.replay:
            await self._replay(rs, outbox)
        self.restored.extend((i, p, d, 0) for i, p, d in rs.lanes_start())
        self.plan = None
        self._ready.set()

    async def _replay(self, rs: LaneRestore, outbox: Outbox) -> None:
        """Emit again, in the same order, what the saved run had emitted after its position."""
        cursors: dict[int, Cursor] = {}
        out: list[Any] = []
        runs: Runs = []
        try:
            for index, n in rs.plan.replay:
                cursor = cursors.get(index)
                if cursor is None:
                    path = rs.paths[index]
                    cursor = cursors[index] = Cursor(self, path, self.ledger.delivered(index))
                got = await cursor.take(n)
                if len(got) < n:
                    raise ValueError(
                        f"read: the saved state of stage '{self.stage.name}' has "
                        f"{cursor.at - len(got) + n} records of {cursor.path} delivered, but it "
                        f"has {cursor.at}: the file changed since the state was saved"
                    )
                out.extend(got)
                runs.append((index, n))
                if len(out) >= outbox.limit:
                    await self.ledger.send(outbox, out, runs)
                    out, runs = [], []
            await self.ledger.send(outbox, out, runs)
        finally:
            for cursor in cursors.values():
                await cursor.close()


class Cursor:
    """One file read from a given record on, ``n`` records at a time (a replay)."""

    def __init__(self, owner: LaneRead, path: str, start: int) -> None:
        self.owner = owner
        self.path = path
        self.start = start
        self.at = start  # records of the file read so far
        self.sync: Iterator[Any] | None = None
        self.records: AsyncIterator[Any] | None = None

    async def take(self, n: int) -> list[Any]:
        reader, keys = self.owner.stage.reader, self.owner.stage.keys
        threads = self.owner.threads
        if isinstance(reader, BlockingReader) and not is_url(self.path):
            if self.sync is None:
                opened = partial(reader.iter_records_from, self.path, self.start, keys=keys)
                self.sync = await threads.run(opened)
            got: list[Any] = await threads.run(_take_sync, self.sync, n)
        else:
            got = await self._take_async(n)
        self.at += len(got)
        return got

    async def _take_async(self, n: int) -> list[Any]:
        reader, keys = self.owner.stage.reader, self.owner.stage.keys
        keyed = getattr(reader, "keyed", None) if keys else None
        if self.records is None:
            self.records = keyed(self.path) if keyed is not None else reader(self.path)
            for _ in range(self.start):
                try:
                    await anext(self.records)
                except StopAsyncIteration:
                    return []
        got: list[Any] = []
        while len(got) < n:
            try:
                record = await anext(self.records)
            except StopAsyncIteration:
                break
            i = self.at + len(got)
            got.append((f"{self.path}:{i}", record) if keys and keyed is None else record)
        return got

    async def close(self) -> None:
        if self.sync is not None:
            close = getattr(self.sync, "close", None)
            if close is not None:
                close()
        aclose = getattr(self.records, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


def _take_sync(it: Iterator[Any], n: int) -> list[Any]:
    return list(itertools.islice(it, n))


def file_runs(runs: list[tuple[int, str, int, int]], total: int) -> Runs:
    """A hop's ``(position in out, path, first record, input index)`` as (index, records)."""
    out: Runs = []
    for i, (at, _path, _record, index) in enumerate(runs):
        n = (runs[i + 1][0] if i + 1 < len(runs) else total) - at
        if n:
            out.append((index, n))
    return out
