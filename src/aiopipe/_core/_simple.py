"""Single-worker transforms: filter, flat_map, take, skip, prefetch."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from ._channel import Inbox, Outbox, chunk_limit
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

__all__ = ["FilterStage", "FlatMapStage", "PrefetchStage", "SkipStage", "TakeStage"]

# flat_map hands on what it has after this long, so one huge expansion cannot hold output back.
FLUSH_S = 0.001


def _buffer(what: str, buffer: int | None) -> int:
    return DEFAULT_BUFFER if buffer is None else positive(f"{what}(buffer=)", buffer)


class FilterStage(Stage):
    def __init__(self, pred: Callable[[Any], Any], name: str | None, buffer: int | None) -> None:
        if not callable(pred):
            raise TypeError(f"filter needs a callable, got {type(pred).__name__}")
        self.pred = pred
        self.is_async = is_async_callable(pred)
        self.name = name if name is not None else f"filter({fn_name(pred)})"
        self.buffer = _buffer("filter", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _FilterRunner(self)


class _FilterRunner(Runner):
    def __init__(self, stage: FilterStage) -> None:
        self.stage = stage

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        pred, index = self.stage.pred, 0
        while (chunk := await inbox.receive()) is not None:
            kept: list[Any] = []
            i = 0
            try:
                if self.stage.is_async:
                    for i, x in enumerate(chunk):  # noqa: B007 - i names the failing element
                        if await pred(x):
                            kept.append(x)
                else:
                    for i, x in enumerate(chunk):  # noqa: B007
                        if pred(x):
                            kept.append(x)
            except Exception as exc:
                annotate(exc, self.stage.name, index + i)
                raise
            index += len(chunk)
            await outbox.send(kept)


class FlatMapStage(Stage):
    def __init__(self, fn: Callable[[Any], Any], name: str | None, buffer: int | None) -> None:
        if not callable(fn):
            raise TypeError(f"flat_map needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.name = name if name is not None else f"flat_map({fn_name(fn)})"
        self.buffer = _buffer("flat_map", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _FlatMapRunner(self)


class _FlatMapRunner(Runner):
    def __init__(self, stage: FlatMapStage) -> None:
        self.stage = stage

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        index = 0
        limit = chunk_limit(self.stage.buffer)
        out: list[Any] = []
        flushed = time.perf_counter()
        while (chunk := await inbox.receive()) is not None:
            for x in chunk:
                try:
                    result = await self.stage.fn(x) if self.stage.is_async else self.stage.fn(x)
                    async for y in _each(result, self.stage.name):
                        out.append(y)
                        if len(out) >= limit or time.perf_counter() - flushed > FLUSH_S:
                            await outbox.send(out)
                            out, flushed = [], time.perf_counter()
                except Exception as exc:
                    annotate(exc, self.stage.name, index)
                    raise
                index += 1
            await outbox.send(out)
            out, flushed = [], time.perf_counter()


async def _each(result: object, stage: str) -> Any:
    if isinstance(result, AsyncIterable):
        async for y in result:
            yield y
    elif isinstance(result, Iterable):
        for y in result:
            yield y
    else:
        raise TypeError(
            f"{stage}: fn must return a sync or async iterable, got {type(result).__name__}"
        )


class TakeStage(Stage):
    def __init__(self, n: int) -> None:
        self.n = _count("take", n)
        self.name = "take"

    def runner(self, ctx: RunContext) -> Runner:
        return _TakeRunner(self.n)


def _count(what: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what}(n) needs a non-negative int, got {n!r}")
    return n


class _TakeRunner(Runner):
    def __init__(self, n: int) -> None:
        self.left = n

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        while self.left > 0 and (chunk := await inbox.receive()) is not None:
            piece = chunk[: self.left]
            self.left -= len(piece)
            await outbox.send(piece)
        # Returning closes our inbox: upstream sees nobody listening and stops at once.


class SkipStage(Stage):
    def __init__(self, n: int) -> None:
        self.n = _count("skip", n)
        self.name = "skip"

    def runner(self, ctx: RunContext) -> Runner:
        return _SkipRunner(self.n)


class _SkipRunner(Runner):
    def __init__(self, n: int) -> None:
        self.left = n

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        while (chunk := await inbox.receive()) is not None:
            if self.left:
                dropped = min(self.left, len(chunk))
                self.left -= dropped
                chunk = chunk[dropped:]
            await outbox.send(chunk)


class PrefetchStage(Stage):
    one_to_one = True

    def __init__(self, n: int) -> None:
        self.buffer = positive("prefetch(n)", n)
        self.name = "prefetch"

    def runner(self, ctx: RunContext) -> Runner:
        return _Forward()


class _Forward(Runner):
    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        while (chunk := await inbox.receive()) is not None:
            await outbox.send(chunk)
