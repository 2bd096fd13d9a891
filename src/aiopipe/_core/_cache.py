"""``cache``: compute a pipeline once, then replay it (tf.data's ``Dataset.cache``).

The first run that reads the whole pipeline keeps what it produced: in memory (on the
pipeline, so every later run of it replays the list), or in a file at ``path`` (later runs, in
this process or another, read the file). The cache is published only when a pass completes:
the memory list is set at the end, and the file is written under a temporary name and renamed
into place with its end marker, so a pass that stops early or fails never leaves a half cache
that looks complete.
"""

from __future__ import annotations

import os
import pickle
import secrets
from typing import IO, Any

import anyio

from ._channel import Inbox, Outbox
from ._nested import (
    NestedOpener,
    check_nested,
    nested_params,
    nested_seeds,
    nested_state,
    next_chunk,
    next_marked,
)
from ._run import RunOpener
from ._stage import RunContext, Runner, Stage
from ._state import shifted
from ._threads import ThreadPool

__all__ = ["CacheSource"]

MAGIC = b"aiopipe-cache-v1\n"
_END = "aiopipe-cache-end"


class CacheSource(Stage):
    resumable = True

    def __init__(self, pipe: Any, path: str | os.PathLike[str] | None) -> None:
        if path is not None and not isinstance(path, str | os.PathLike):
            raise TypeError(f"cache(path=) needs a file path or None, got {type(path).__name__}")
        self.pipe = pipe
        self.path = None if path is None else os.fspath(path)
        if self.path is not None:
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"cache(path={self.path!r}): no folder {folder!r}")
        # The in-memory cache: set only once a whole pass has been read, with the seed of the
        # nested run that read it (a resumed run in another process computes it again alike).
        self.memory: list[Any] | None = None
        self.memory_seed = 0
        where = "memory" if self.path is None else self.path
        self.name = f"cache({where}: {' -> '.join(pipe.stage_names)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Cacher(self, NestedOpener(ctx), ctx.threads)

    def params(self) -> dict[str, Any]:
        return {"nested": nested_params([self.pipe])}

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        if "run" in state:
            check_nested(self.pipe, state["run"], self.name)
        elif not ("memory" in state and self.path is None) and not (
            "file" in state and self.path is not None
        ):
            raise ValueError(f"{self.name}: the state is damaged or from another cache")


class _Cacher(Runner):
    """One pass: computing (the nested run; its state is the mark), replaying the memory list
    (the index in it), or replaying the file (the byte offset of a record, then a replay of
    at most that record).

    Resuming a pass that was computing resumes the nested run where it was and hands its
    outputs on *without* keeping them: a cache of part of a pass would look complete, so the
    next whole run fills the cache. Resuming a memory replay in a process without that list
    (or with one read by another run) reads the whole pass again with the seeds of the run
    that filled it, to fill it alike: the outputs before the resumed position cost what
    computing them costs (one pass of the upstream at most), and the list is kept once the
    pass completes. A file replay resumes by seeking, and is refused if the file changed.
    """

    def __init__(self, stage: CacheSource, opener: NestedOpener, threads: ThreadPool) -> None:
        self.stage = stage
        self.opener = opener
        self.threads = threads
        self.plan: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        kind = mark[0]
        if kind == "run":
            return {"run": nested_state(mark[1], shifted(mark[2], k))}
        if kind == "memory":
            return {"memory": mark[1] + k, "filled": mark[2]}
        state = {"file": mark[1], "size": mark[2]}
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        st, plan = self.stage, self.plan
        if plan is not None and "run" in plan:
            await self._compute(outbox, None, plan["run"])
        elif st.path is None:
            await self._memory(outbox, plan)
        elif plan is not None:
            await self._replay(st.path, outbox, int(plan["file"]), int(plan["size"]))
        elif await self._blocking(os.path.exists, st.path):
            await self._replay(st.path, outbox, 0, None)
        else:
            await self._write(st.path, outbox)

    async def _memory(self, outbox: Outbox, plan: dict[str, Any] | None) -> None:
        st = self.stage
        if plan is not None:
            seed = int(plan["filled"])
            if st.memory is None or st.memory_seed != seed:
                await self._refill(outbox, seed, int(plan["memory"]))
                return
            start = int(plan["memory"])
        elif st.memory is not None:
            start, seed = 0, st.memory_seed
        else:
            kept: list[Any] = []
            await self._compute(outbox, kept.extend, None)
            st.memory, st.memory_seed = kept, self.opener.seed
            return
        # A copy: a consumer that changes the list it received must not change the cache.
        await outbox.send(st.memory[start:], at=(self, ("memory", start, seed), 0))

    async def _refill(self, outbox: Outbox, seed: int, start: int) -> None:
        """The pass that filled the memory cache again (same seeds), sending from ``start``."""
        pipe, st = self.stage.pipe, self.stage
        kept: list[Any] = []
        async with RunOpener[Any](pipe._stages, None, seeds=nested_seeds(seed, 0, pipe)) as run:
            while (chunk := await next_chunk(run)) is not None:
                first = len(kept)
                kept.extend(chunk)
                if len(kept) > start:
                    lo = max(0, start - first)
                    await outbox.send(chunk[lo:], at=(self, ("memory", first + lo, seed), 0))
        if st.memory is None:
            st.memory, st.memory_seed = kept, seed

    async def _compute(self, outbox: Outbox, keep: Any, state: dict[str, Any] | None) -> None:
        async with self.opener.open(self.stage.pipe, 0, state) as run:
            while (got := await next_marked(run)) is not None:
                chunk, at = got
                if keep is not None:
                    keep(chunk)
                await outbox.send(chunk, at=(self, ("run", run, at), 0))

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        # Shielded: a file must not be closed while a thread still writes or reads it.
        with anyio.CancelScope(shield=True):
            return await self.threads.run(fn, *args)

    async def _write(self, path: str, outbox: Outbox) -> None:
        tmp = f"{path}.partial-{secrets.token_hex(4)}"
        f: IO[bytes] = await self._blocking(_create, tmp)
        done = False
        try:
            count = 0
            async with self.opener.open(self.stage.pipe, 0) as run:
                while (got := await next_marked(run)) is not None:
                    chunk, at = got
                    count += len(chunk)
                    await self._blocking(pickle.dump, chunk, f, pickle.HIGHEST_PROTOCOL)
                    await outbox.send(chunk, at=(self, ("run", run, at), 0))
            await self._blocking(_finish, f, count, tmp, path)
            done = True
        finally:
            if not done:
                with anyio.CancelScope(shield=True):
                    await self.threads.run(_discard, f, tmp)

    async def _replay(self, path: str, outbox: Outbox, offset: int, size: int | None) -> None:
        f: IO[bytes] = await self._blocking(_open_cache, path, offset, size)
        try:
            size = os.fstat(f.fileno()).st_size
            while True:
                where, chunk = await self._blocking(_load, f, path)
                if chunk is None:
                    return
                await outbox.send(chunk, at=(self, ("file", where, size), 0))
        finally:
            f.close()


def _create(tmp: str) -> IO[bytes]:
    f = open(tmp, "wb")  # noqa: SIM115 - closed by _finish or _discard
    f.write(MAGIC)
    return f


def _finish(f: IO[bytes], count: int, tmp: str, path: str) -> None:
    pickle.dump((_END, count), f, pickle.HIGHEST_PROTOCOL)
    f.close()
    os.replace(tmp, path)  # atomic: the file at path is always a complete pass


def _discard(f: IO[bytes], tmp: str) -> None:
    f.close()
    if os.path.exists(tmp):
        os.remove(tmp)


def _open_cache(path: str, offset: int, size: int | None) -> IO[bytes]:
    """The cache file, at the record starting at byte ``offset`` (0: the first); ``size``: the
    file's size when the state was saved, which it must still have."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise ValueError(
            f"cache: the state was saved while replaying {path!r}, which is gone: the pass "
            f"cannot be resumed exactly"
        ) from None
    if f.read(len(MAGIC)) != MAGIC:
        f.close()
        raise ValueError(f"cache: {path!r} is not an aiopipe cache file; remove it to rebuild")
    if size is not None:
        now = os.fstat(f.fileno()).st_size
        if now != size:
            f.close()
            raise ValueError(
                f"cache: {path!r} has {now} bytes, but had {size} when the state was saved: it "
                f"was rebuilt since, so the saved position means nothing in it"
            )
        f.seek(offset)
    return f


def _load(f: IO[bytes], path: str) -> tuple[int, list[Any] | None]:
    """The byte offset of the next record, and its chunk (None at the end marker)."""
    where = f.tell()
    try:
        item = pickle.load(f)
    except (EOFError, pickle.UnpicklingError):
        raise ValueError(
            f"cache: {path!r} ends without its end marker (damaged); remove it to rebuild"
        ) from None
    if isinstance(item, tuple) and len(item) == 2 and item[0] == _END:
        return where, None
    if not isinstance(item, list):
        raise ValueError(f"cache: {path!r} is damaged (got a {type(item).__name__})")
    return where, item
