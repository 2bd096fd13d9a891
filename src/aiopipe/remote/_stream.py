"""Streaming one object in ranges: ``readahead`` ranged GETs in flight, delivered in order.

The first GET asks for the first range and learns the object's size from ``Content-Range`` (a
small object arrives whole in that one request). The rest is fetched ``range_bytes`` at a time,
at most ``readahead`` ranges ahead of the consumer, so memory per file stays below
``(readahead + 1) * range_bytes`` whatever the object's size. Each range is retried on its own
under the store's :class:`RetryPolicy` and handed to ``sink`` exactly once, in order, so a retried
range never delivers a record twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from ._store import Store
from ._url import ObjectUrl

__all__ = ["stream_rest"]

Sink = Callable[[bytes, int | None], Awaitable[None]]


async def stream_rest(
    store: Store, url: ObjectUrl, data: bytes, size: int | None, sink: Sink
) -> None:
    """Call ``await sink(chunk, size)`` for the rest of the object's bytes, in order, after its
    first range ``data`` (which the caller had, and learnt ``size`` from)."""
    step = store.options.range_bytes
    if size is None or len(data) >= size:
        if size is None and len(data) == step:
            await _sequential(store, url, sink, step)  # size unknown: read on until a short range
        return
    starts = range(len(data), size, step)
    slots_send, slots_recv = anyio.create_memory_object_stream[tuple[anyio.Event, list[bytes]]](
        max(0, store.options.readahead - 1)
    )

    async def fetch(start: int, done: anyio.Event, box: list[bytes]) -> None:
        got, _ = await store.get(url, start, min(start + step, size))
        box.append(got)
        done.set()

    async def schedule(tg: anyio.abc.TaskGroup) -> None:
        async with slots_send:
            for start in starts:
                slot: tuple[anyio.Event, list[bytes]] = (anyio.Event(), [])
                await slots_send.send(slot)  # waits while readahead ranges are ahead of sink
                tg.start_soon(fetch, start, *slot)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(schedule, tg)
            async with slots_recv:
                async for done, box in slots_recv:
                    await done.wait()
                    chunk = box.pop()
                    await sink(chunk, size)
    except BaseExceptionGroup as group:
        # The reader's user expects the FileNotFoundError or CorruptRecordError itself, not a
        # group: the first failure is the cause, the rest are cancellations it caused.
        raise _first(group) from None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        exc = todo.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            todo[:0] = exc.exceptions
        else:
            leaves.append(exc)
    for exc in leaves:
        if not isinstance(exc, cancelled):
            return exc
    return leaves[0]


async def _sequential(store: Store, url: ObjectUrl, sink: Sink, step: int) -> None:
    start = step
    while True:
        data, _ = await store.get(url, start, start + step)
        if data:
            await sink(data, None)
        if len(data) < step:
            return
        start += step
