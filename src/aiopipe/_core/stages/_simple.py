"""Single-worker transforms: filter, flat_map, take, skip, prefetch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from ..engine._channel import DownstreamClosed, Inbox, Outbox
from ..engine._policy import RAISE, ErrorPolicy, StageErrors
from ..engine._stage import (
    RunContext,
    Runner,
    Stage,
    annotate,
    buffer_arg,
    fn_name,
    is_async_callable,
    maybe_aclosing,
    positive,
)
from ..engine._state import Position, resolve, shifted

__all__ = ["FilterStage", "FlatMapStage", "PrefetchStage", "SkipStage", "TakeStage"]

# flat_map hands on what it has after this long, so one huge expansion cannot hold output back.
FLUSH_S = 0.001


class FilterStage(Stage):
    def __init__(
        self,
        pred: Callable[[Any], Any],
        name: str | None,
        buffer: int | None,
        errors: ErrorPolicy = RAISE,
    ) -> None:
        if not callable(pred):
            raise TypeError(f"filter needs a callable, got {type(pred).__name__}")
        self.pred = pred
        self.is_async = is_async_callable(pred)
        self.name = name if name is not None else f"filter({fn_name(pred)})"
        self.buffer = buffer_arg("filter", buffer)
        self.errors = errors

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _FilterRunner(self, ctx.errors.for_stage(self, self.name, self.errors))


class _FilterRunner(Runner):
    def __init__(self, stage: FilterStage, errs: StageErrors) -> None:
        self.stage = stage
        self.errs = errs

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        pred, index = self.stage.pred, 0
        plain = self.stage.errors.is_default
        while (chunk := await inbox.receive()) is not None:
            kept: list[Any] = []
            i = 0
            try:
                if not plain:
                    kept = await self._guarded(chunk, index)
                elif self.stage.is_async:
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
            # A replay mark: the chunk's kept elements follow from its input.
            await outbox.send(kept, at=(self, ({}, inbox.stamp), 0))

    async def _guarded(self, chunk: list[Any], index: int) -> list[Any]:
        """The filter under an error policy: element by element, with retries and skips."""
        kept: list[Any] = []
        for i, x in enumerate(chunk):
            attempt = 0
            while True:
                try:
                    keep = await self.stage.pred(x) if self.stage.is_async else self.stage.pred(x)
                except Exception as exc:
                    if await self.errs.retry(exc, attempt):
                        attempt += 1
                        continue
                    if not self.errs.skip(exc, index + i, None, index + i + 1):
                        raise
                    break
                if keep:
                    kept.append(x)
                break
        return kept


class FlatMapStage(Stage):
    def __init__(
        self,
        fn: Callable[[Any], Any],
        name: str | None,
        buffer: int | None,
        errors: ErrorPolicy = RAISE,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"flat_map needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.is_async = is_async_callable(fn)
        self.name = name if name is not None else f"flat_map({fn_name(fn)})"
        self.buffer = buffer_arg("flat_map", buffer)
        self.errors = errors

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _FlatMapRunner(self, ctx.errors.for_stage(self, self.name, self.errors))


class _FlatMapRunner(Runner):
    """Expands each element in order. Under ``on_error="skip"`` an element whose expansion
    fails is counted as skipped; what it yielded before the failure is kept. A retry re-runs
    ``fn(x)`` only while nothing of its expansion has been sent on."""

    def __init__(self, stage: FlatMapStage, errs: StageErrors) -> None:
        self.stage = stage
        self.errs = errs
        self.out: list[Any] = []
        self.flushed = time.perf_counter()
        self.sends = 0  # sends so far: tells whether an expansion was partly sent
        # The input position of the element being expanded, and how many of its outputs were
        # made before; ``head``: the same for out[0] (a send's position is a replay from there).
        self.current: Position | None = None
        self.made = 0
        self.head: Position | None = None

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        index = 0
        while (chunk := await inbox.receive()) is not None:
            for i, x in enumerate(chunk):
                self.current, self.made = inbox.position(i), 0
                await self._expand(x, index, outbox)
                index += 1
            await self._flush(outbox)

    async def _expand(self, x: Any, index: int, outbox: Outbox) -> None:
        attempt = 0
        while True:
            mark, sends = len(self.out), self.sends
            made = self.made
            try:
                await self._emit(x, outbox)
                return
            except DownstreamClosed:
                raise
            except Exception as exc:
                if sends == self.sends and await self.errs.retry(exc, attempt):
                    del self.out[mark:]
                    self.made = made
                    attempt += 1
                    continue
                if not self.errs.skip(exc, index, None, index + 1):
                    raise
                return

    async def _emit(self, x: Any, outbox: Outbox) -> None:
        result = await self.stage.fn(x) if self.stage.is_async else self.stage.fn(x)
        if isinstance(result, AsyncIterable):
            # Closed here, in this task, however the run ends: the user's ``finally`` runs now,
            # not at garbage collection.
            async with maybe_aclosing(result):
                async for y in result:
                    await self._add(y, outbox)
        elif isinstance(result, Iterable):
            with _closing(result):
                for y in result:
                    await self._add(y, outbox)
        else:
            raise TypeError(
                f"{self.stage.name}: fn must return a sync or async iterable, "
                f"got {type(result).__name__}"
            )

    async def _add(self, y: Any, outbox: Outbox) -> None:
        if not self.out:
            self.head = (self, ({}, self.current), self.made)
        self.out.append(y)
        self.made += 1
        if len(self.out) >= outbox.limit or time.perf_counter() - self.flushed > FLUSH_S:
            await self._flush(outbox)

    async def _flush(self, outbox: Outbox) -> None:
        out, self.out = self.out, []
        self.sends += 1
        self.flushed = time.perf_counter()
        await outbox.send(out, at=self.head)


def _closing(result: Iterable[Any]) -> Any:
    """Close a sync generator when the expansion ends early (error or cancellation)."""
    return contextlib.closing(result) if hasattr(result, "close") else contextlib.nullcontext()


class TakeStage(Stage):
    resumable = True

    def __init__(self, n: int) -> None:
        self.n = _count("take", n)
        self.name = "take"

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def runner(self, ctx: RunContext) -> Runner:
        return _TakeRunner(self.n)


def _count(what: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what}(n) needs a non-negative int, got {n!r}")
    return n


class _TakeRunner(Runner):
    """Its mark: (left before the chunk, the chunk's input position), one to one."""

    def __init__(self, n: int) -> None:
        self.left = n

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        left, up = mark
        resolve(shifted(up, k), out)
        return {"left": left - k}

    def restore(self, state: dict[str, Any]) -> None:
        self.left = int(state["left"])

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        while self.left > 0 and (chunk := await inbox.receive()) is not None:
            piece = chunk[: self.left]
            at = (self, (self.left, inbox.stamp), 0)
            self.left -= len(piece)
            await outbox.send(piece, at=at)
        # Returning closes our inbox: upstream sees nobody listening and stops at once.


class SkipStage(Stage):
    resumable = True

    def __init__(self, n: int) -> None:
        self.n = _count("skip", n)
        self.name = "skip"

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def runner(self, ctx: RunContext) -> Runner:
        return _SkipRunner(self.n)


class _SkipRunner(Runner):
    """Sends only once nothing is left to skip: its mark is its input's position."""

    def __init__(self, n: int) -> None:
        self.left = n

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        resolve(shifted(mark, k), out)
        return {"left": 0}

    def restore(self, state: dict[str, Any]) -> None:
        self.left = int(state["left"])

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        while (chunk := await inbox.receive()) is not None:
            dropped = 0
            if self.left:
                dropped = min(self.left, len(chunk))
                self.left -= dropped
                chunk = chunk[dropped:]
            await outbox.send(chunk, at=(self, inbox.position(dropped), 0))


class PrefetchStage(Stage):
    one_to_one = True
    resumable = True

    def __init__(self, n: int) -> None:
        self.buffer = positive("prefetch(n)", n)
        self.name = "prefetch"

    def runner(self, ctx: RunContext) -> Runner:
        return _Forward()


class _Forward(Runner):
    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        while (chunk := await inbox.receive()) is not None:
            await outbox.send(chunk, at=inbox.stamp)  # one to one: the input's position
