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
from ._nested import NestedOpener, next_chunk
from ._stage import RunContext, Runner, Stage
from ._threads import ThreadPool

__all__ = ["CacheSource"]

MAGIC = b"aiopipe-cache-v1\n"
_END = "aiopipe-cache-end"


class CacheSource(Stage):
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
        where = "memory" if self.path is None else self.path
        self.name = f"cache({where}: {' -> '.join(pipe.stage_names)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Cacher(self, NestedOpener(ctx), ctx.threads)


class _Cacher(Runner):
    def __init__(self, stage: CacheSource, opener: NestedOpener, threads: ThreadPool) -> None:
        self.stage = stage
        self.opener = opener
        self.threads = threads

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        st = self.stage
        if st.path is None:
            if st.memory is not None:
                # A copy: a consumer that changes the list it received must not change the cache.
                await outbox.send(list(st.memory))
                return
            kept: list[Any] = []
            await self._compute(outbox, kept.extend)
            st.memory = kept
            return
        if await self._blocking(os.path.exists, st.path):
            await self._replay(st.path, outbox)
            return
        await self._write(st.path, outbox)

    async def _compute(self, outbox: Outbox, keep: Any) -> None:
        async with self.opener.open(self.stage.pipe) as run:
            while (chunk := await next_chunk(run)) is not None:
                keep(chunk)
                await outbox.send(chunk)

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

            async with self.opener.open(self.stage.pipe) as run:
                while (chunk := await next_chunk(run)) is not None:
                    await keep(chunk)
                    await outbox.send(chunk)
            await self._blocking(_finish, f, count, tmp, path)
            done = True
        finally:
            if not done:
                with anyio.CancelScope(shield=True):
                    await self.threads.run(_discard, f, tmp)

    async def _replay(self, path: str, outbox: Outbox) -> None:
        f: IO[bytes] = await self._blocking(_open_cache, path)
        try:
            while True:
                chunk = await self._blocking(_load, f, path)
                if chunk is None:
                    return
                await outbox.send(chunk)
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


def _open_cache(path: str) -> IO[bytes]:
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if f.read(len(MAGIC)) != MAGIC:
        f.close()
        raise ValueError(f"cache: {path!r} is not an aiopipe cache file; remove it to rebuild")
    return f


def _load(f: IO[bytes], path: str) -> list[Any] | None:
    try:
        item = pickle.load(f)
    except (EOFError, pickle.UnpicklingError):
        raise ValueError(
            f"cache: {path!r} ends without its end marker (damaged); remove it to rebuild"
        ) from None
    if isinstance(item, tuple) and len(item) == 2 and item[0] == _END:
        return None
    if not isinstance(item, list):
        raise ValueError(f"cache: {path!r} is damaged (got a {type(item).__name__})")
    return item
