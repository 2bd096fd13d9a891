"""Where a read stage meets object storage: async downloads feeding a reader's sync decoder.

A lane of ``.read()`` that meets a URL stays on the event loop: ``stream_rest`` keeps the
object's ranged GETs in flight and hands each range, in order, to the reader's incremental
decoder (``reader.decoder(path, keys=..., size=...)``: ``feed(chunk, out)`` appends the records
the chunk completes, ``end(out)`` the last ones or raises for a truncated file). Small ranges are
decoded inline (microseconds); large ones in one worker-thread hop, so a CRC over 8 MiB never
stalls the loop. No thread ever waits on the network: hundreds of files are in flight with as
many lanes, each costing a task and a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import anyio

from ._session import Session
from ._store import Store
from ._stream import stream_rest
from ._url import ObjectUrl, parse_url

__all__ = ["head_bytes", "iter_url", "read_url"]

# Chunks up to this size are decoded on the event loop; larger ones in a worker thread.
INLINE_BYTES = 256 << 10

Emit = Callable[[list[Any]], Awaitable[None]]


async def read_url(reader: Any, path: str, keys: bool, session: Session, emit: Emit) -> None:
    """Stream ``path`` through ``reader``'s decoder, calling ``emit(records)`` as they complete.

    Records decoded before a failure are emitted before the failure is raised.
    """
    store, url = _store_of(reader, path, session)
    step = store.options.range_bytes
    data, size = await store.get(url, 0, step)
    decoder = reader.decoder(path, keys=keys, size=size)
    if len(data) >= size if size is not None else len(data) < step:
        # The whole object in one response (most objects of a data set of small files): fed and
        # ended in one step, one emit.
        await _run(decoder.feed, data, emit, big=len(data) > INLINE_BYTES, end=decoder.end)
        return
    # A ``partial``, not a nested function: that would give every call of ``read_url``, large
    # object or not, cells for ``decoder`` and ``emit`` that live while its first GET waits.
    sink = partial(_feed, decoder, emit)
    await sink(data, size)
    await stream_rest(store, url, data, size, sink)
    await _run(decoder.end, None, emit, big=False)


async def _feed(decoder: Any, emit: Emit, chunk: bytes, size: int | None) -> None:
    """``stream_rest``'s sink: one range into the decoder."""
    await _run(decoder.feed, chunk, emit, big=len(chunk) > INLINE_BYTES)


def _store_of(reader: Any, path: str, session: Session) -> tuple[Store, ObjectUrl]:
    """The object's URL and the session's store for it (with the reader's storage options).

    Plain calls around the first GET, not a coroutine: a lane's coroutines live as long as its
    GET waits on the network, and the garbage collector walks every one that does.
    """
    url = parse_url(path)
    return session.store(url, getattr(reader, "storage_options", None)), url


async def _run(
    step: Callable[..., None],
    chunk: bytes | None,
    emit: Emit,
    *,
    big: bool,
    end: Callable[[list[Any]], None] | None = None,
) -> None:
    """``step(chunk, out)`` (``step(out)`` without a chunk), then ``end(out)`` if given, and the
    records made emitted."""
    out: list[Any] = []
    args = (out,) if chunk is None else (chunk, out)
    try:
        if big:
            await anyio.to_thread.run_sync(step, *args)
        else:
            step(*args)
        if end is not None:
            end(out)
    except Exception:
        if out:
            await emit(out)  # the records before the failure still count
        raise
    if out:
        await emit(out)


async def iter_url(reader: Any, path: str, keys: bool) -> AsyncIterator[Any]:
    """The records of one URL, for ``reader(url)`` used on its own (``aiopipe inspect``, tests).

    Ranges are fetched one after another here: a generator must not yield from inside a task
    group, and read-ahead belongs to the read stage's lanes.
    """
    session = Session()
    try:
        store, url = _store_of(reader, path, session)
        step = store.options.range_bytes
        data, size = await store.get(url, 0, step)
        decoder = reader.decoder(path, keys=keys, size=size)
        start = 0
        while True:
            out: list[Any] = []
            try:
                decoder.feed(data, out)
            finally:
                for record in out:
                    yield record
            start += len(data)
            if len(data) < step or (size is not None and start >= size):
                break
            data, _ = await store.get(url, start, start + step)
        out = []
        try:
            decoder.end(out)
        finally:
            for record in out:
                yield record
    finally:
        await session.aclose()


async def head_bytes(path: str, n: int) -> bytes:
    """The first ``n`` bytes of the object ``path`` (fewer if it is shorter)."""
    session = Session()
    try:
        url = parse_url(path)
        data, _ = await session.store(url, None).get(url, 0, n)
        return data
    finally:
        await session.aclose()
