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
from collections.abc import Awaitable, Callable
from typing import IO, Any

import anyio

from ..engine._channel import Outbox
from ..engine._run import RunOpener
from ..engine._stage import RunContext, Runner, Source, Stage
from ..engine._state import shifted
from ..engine._threads import ThreadPool
from ._nested import (
    NestedOpener,
    check_nested,
    nested_params,
    nested_seeds,
    nested_state,
    next_marked,
)

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
        # The in-memory cache: set only once a whole pass has been read.
        self.memory: list[Any] | None = None
        # The seed of the nested run whose pass the cache holds, or would hold: a resumed pass
        # keeps nothing (it saw only part), but once it completes, later passes compute the
        # cache with its seeds, so they get what the run it resumed would have cached.
        self.fill_seed: int | None = None
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
        elif "file" in state and self.path is not None:
            _check_file(self.path, int(state["size"]))  # and again when the pass starts
        elif not ("memory" in state and self.path is None) and not (
            "file" in state and self.path is not None
        ):
            raise ValueError(f"{self.name}: the state is damaged or from another cache")


class _Cacher(Source):
    """One pass: computing (its mark: the nested run's position, and that run's seed),
    replaying the memory list (the index in it) or replaying the file (the byte offset of a
    record, then a replay of at most that record).

    Resuming a pass that was computing resumes the nested run where it was and hands its
    outputs on *without* keeping them (a cache of part of a pass would look complete); once
    it completes, the next pass that finds no cache computes it with the same seeds, so it
    caches what the original run cached. Resuming a memory replay where that list is gone (in
    another process) computes the pass again with the seeds of the run that filled it, to fill
    it alike: the outputs before the resumed position cost what computing them costs (one
    pass of the upstream at most), then the list is kept. A file replay resumes by seeking to
    the record, and is refused if the file changed since the state was saved.
    """

    def __init__(self, stage: CacheSource, opener: NestedOpener, threads: ThreadPool) -> None:
        self.stage = stage
        self.opener = opener
        self.threads = threads
        self.plan: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        kind = mark[0]
        if kind == "run":
            return {"run": nested_state(mark[1], shifted(mark[2], k)), "seed": mark[3]}
        if kind == "memory":
            return {"memory": mark[1] + k, "filled": mark[2]}
        state = {"file": mark[1], "size": mark[2]}
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state

    def _seed(self) -> int:
        """The seed to compute the pass with (see ``CacheSource.fill_seed``)."""
        seed = self.stage.fill_seed
        return self.opener.seed if seed is None else seed

    async def produce(self, worker: int, outbox: Outbox) -> None:
        st, plan = self.stage, self.plan
        if plan is not None and "run" in plan:
            seed = int(plan["seed"])
            await self._pass(outbox, seed, plan["run"])
            if st.fill_seed is None:
                st.fill_seed = seed
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
        seed, start = (int(plan["filled"]), int(plan["memory"])) if plan else (self._seed(), 0)
        if st.memory is not None and st.fill_seed == seed:
            # A copy: a consumer that changes the list it received must not change the cache.
            await outbox.send(st.memory[start:], at=(self, ("memory", start, seed), 0))
            return
        kept: list[Any] = []

        async def keep(chunk: list[Any]) -> None:
            kept.extend(chunk)

        await self._pass(outbox, seed, None, keep, start)
        if st.memory is None:
            st.memory, st.fill_seed = kept, seed

    async def _pass(
        self,
        outbox: Outbox,
        seed: int,
        state: dict[str, Any] | None,
        keep: Callable[[list[Any]], Awaitable[None]] | None = None,
        start: int = 0,
    ) -> None:
        """Compute a pass (from ``state``, if given) with the seeds of ``seed``, sending its
        outputs from number ``start`` on, every chunk given to ``keep`` first."""
        pipe = self.stage.pipe
        made = 0
        async with RunOpener[Any](pipe._stages, state, seeds=nested_seeds(seed, 0, pipe)) as run:
            while (got := await next_marked(run)) is not None:
                chunk, at = got
                if keep is not None:
                    await keep(chunk)
                lo = min(len(chunk), max(0, start - made))
                made += len(chunk)
                if lo < len(chunk):
                    mark = ("run", run, shifted(at, lo), seed)
                    await outbox.send(chunk[lo:] if lo else chunk, at=(self, mark, 0))

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

            async def keep(chunk: list[Any]) -> None:
                nonlocal count
                count += len(chunk)
                await self._blocking(pickle.dump, chunk, f, pickle.HIGHEST_PROTOCOL)

            seed = self._seed()
            await self._pass(outbox, seed, None, keep)
            await self._blocking(_finish, f, count, tmp, path)
            self.stage.fill_seed = seed
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
    if size is not None:
        _check_file(path, size)
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if f.read(len(MAGIC)) != MAGIC:
        f.close()
        raise ValueError(f"cache: {path!r} is not an aiopipe cache file; remove it to rebuild")
    if size is not None:
        f.seek(offset)
    return f


def _check_file(path: str, size: int) -> None:
    """A state saved while replaying ``path`` (then ``size`` bytes) can resume only in it."""
    try:
        now = os.path.getsize(path)
    except FileNotFoundError:
        raise ValueError(
            f"cache: the state was saved while replaying {path!r}, which is gone: the pass "
            f"cannot be resumed exactly"
        ) from None
    if now != size:
        raise ValueError(
            f"cache: {path!r} has {now} bytes, but had {size} when the state was saved: it was "
            f"rebuilt since, so the saved position means nothing in it"
        )


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
