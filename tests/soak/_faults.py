"""Faults and the user callables that carry them.

A fault fires when its stage's function sees the element whose canonical form is ``trigger``.
Every user callable here is a module-level class instance, so it pickles for
``executor="process"``. ``STATE`` is this process's record of what the callables did: the exceptions
they raised (to check the consumer gets the same object), calls in flight, generators opened and
closed, elements pulled from sources.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio

import aiopipe as ap

from ._values import canonical, weight

# -- exception kinds -------------------------------------------------------------------------


class SoakError(Exception):
    """A plain user exception."""


class CustomInitError(Exception):
    """Its constructor needs arguments that ``.args`` does not keep: it cannot be unpickled."""

    def __init__(self, code: int, where: str) -> None:
        super().__init__(f"code {code} at {where}")
        self.code = code


class SoakBaseError(BaseException):
    """A ``BaseException`` subclass that is neither KeyboardInterrupt nor SystemExit."""


class ConsumerError(Exception):
    """Raised by the consumer's own code inside the ``async with`` / ``for`` block."""


# kind -> weight in the draw; the message always carries the fault's token.
EXC_KINDS: dict[str, int] = {
    "ValueError": 10,
    "KeyError": 8,
    "TypeError": 8,
    "RuntimeError": 6,
    "OSError": 6,
    "ZeroDivisionError": 4,
    "SoakError": 8,
    "CustomInitError": 6,
    "StopIteration": 6,
    "StopAsyncIteration": 4,
    "KeyboardInterrupt": 3,
    "SystemExit": 3,
    "SoakBaseError": 4,
    "ExceptionGroup": 3,
    "OutOfRangeError": 3,
    "EndOfStream": 2,
    "ClosedResourceError": 2,
    "BrokenResourceError": 2,
}


def make_exception(kind: str, token: str) -> BaseException:
    msg = f"soak fault {token}"
    simple: dict[str, type[BaseException]] = {
        "ValueError": ValueError,
        "TypeError": TypeError,
        "RuntimeError": RuntimeError,
        "OSError": OSError,
        "ZeroDivisionError": ZeroDivisionError,
        "SoakError": SoakError,
        "StopIteration": StopIteration,
        "StopAsyncIteration": StopAsyncIteration,
        "KeyboardInterrupt": KeyboardInterrupt,
        "SystemExit": SystemExit,
        "SoakBaseError": SoakBaseError,
        "OutOfRangeError": ap.OutOfRangeError,
        "EndOfStream": anyio.EndOfStream,
        "ClosedResourceError": anyio.ClosedResourceError,
        "BrokenResourceError": anyio.BrokenResourceError,
    }
    if kind in simple:
        return simple[kind](msg)
    if kind == "KeyError":
        return KeyError(msg)
    if kind == "CustomInitError":
        return CustomInitError(7, msg)
    if kind == "ExceptionGroup":
        return ExceptionGroup(msg, [ValueError(token)])
    raise ValueError(f"unknown exception kind {kind!r}")


def exception_kind(exc: BaseException) -> str:
    return type(exc).__name__ if type(exc).__name__ in EXC_KINDS else "?"


# -- what this process saw -------------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        # (exception object, stage name, time.monotonic() when raised)
        self.raised: list[tuple[BaseException, str, float]] = []
        self.inflight = 0
        self.gens_opened = 0
        self.gens_closed = 0
        self.pulled = 0
        self.first_raised = threading.Event()

    def record(self, exc: BaseException, stage: str) -> None:
        with self.lock:
            self.raised.append((exc, stage, time.monotonic()))
        self.first_raised.set()

    def enter(self) -> None:
        with self.lock:
            self.inflight += 1

    def leave(self) -> None:
        with self.lock:
            self.inflight -= 1


STATE = _State()


@dataclass(frozen=True)
class Fault:
    """``action`` at the element ``trigger`` of stage ``stage`` (its position in the pipeline).

    Actions: ``raise``; ``hang`` (a shielded sleep or a blocking sleep of ``delay`` s, then go on);
    ``hang_raise`` (sleep, then raise); ``wait_raise`` (wait up to 0.5 s for another fault to
    have raised, shielded, then raise: two failing stages at once). ``after`` is for generators:
    how many items they yield for the trigger element before raising. Corrupt-file faults live in
    ``_build`` (``stage`` is the read stage, ``action`` the corruption).
    """

    stage: int
    trigger: Any
    action: str
    exc_kind: str
    token: str
    delay: float = 0.0
    after: int = 0

    @property
    def raises(self) -> bool:
        return self.action in ("raise", "hang_raise", "wait_raise") or self.action.startswith(
            "corrupt"
        )

    def describe(self) -> str:
        extra = f" after {self.after}" if self.after else ""
        delay = f" {self.delay:.2f}s" if self.delay else ""
        kind = self.exc_kind if self.action != "hang" else ""
        return f"{self.action}{delay} {kind} at {self.trigger!r} of stage {self.stage}{extra}"


def _hits(fault: Fault | None, x: Any) -> bool:
    return fault is not None and canonical(x) == fault.trigger


def fire_sync(fault: Fault, stage: str) -> None:
    if fault.action == "hang":
        time.sleep(fault.delay)
        return
    if fault.action == "hang_raise":
        time.sleep(fault.delay)
    elif fault.action == "wait_raise":
        STATE.first_raised.wait(0.5)
        time.sleep(fault.delay)
    exc = make_exception(fault.exc_kind, fault.token)
    STATE.record(exc, stage)
    raise exc


async def fire_async(fault: Fault, stage: str) -> None:
    with anyio.CancelScope(shield=True):
        if fault.action in ("hang", "hang_raise"):
            await anyio.sleep(fault.delay)
        elif fault.action == "wait_raise":
            deadline = time.monotonic() + 0.5
            # The other fault may fire in a worker thread: a threading.Event, polled.
            while not STATE.first_raised.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            await anyio.sleep(fault.delay)
    if fault.action == "hang":
        return
    exc = make_exception(fault.exc_kind, fault.token)
    STATE.record(exc, stage)
    raise exc


# -- the functions themselves (pure in weight(x); the model calls them too) -------------------


def compute_map(kind: str, x: Any) -> Any:
    return x if kind == "ident" else weight(x) * 3 + 1


def compute_filter(modulus: int, x: Any) -> bool:
    return weight(x) % modulus != 0


def compute_flat(x: Any) -> list[int]:
    w = weight(x)
    return [w * 4 + j for j in range(w % 3)]


class MapFn:
    def __init__(self, kind: str, stage: str, fault: Fault | None) -> None:
        self.kind, self.stage, self.fault = kind, stage, fault
        self.__name__ = f"{kind}"

    def __call__(self, x: Any) -> Any:
        STATE.enter()
        try:
            if _hits(self.fault, x):
                fire_sync(self.fault, self.stage)  # type: ignore[arg-type]
            return compute_map(self.kind, x)
        finally:
            STATE.leave()


class AsyncMapFn(MapFn):
    async def __call__(self, x: Any) -> Any:
        STATE.enter()
        try:
            if _hits(self.fault, x):
                await fire_async(self.fault, self.stage)  # type: ignore[arg-type]
            await anyio.lowlevel.checkpoint()
            return compute_map(self.kind, x)
        finally:
            STATE.leave()


class FilterFn:
    def __init__(self, modulus: int, stage: str, fault: Fault | None) -> None:
        self.modulus, self.stage, self.fault = modulus, stage, fault
        self.__name__ = f"mod{modulus}"

    def __call__(self, x: Any) -> bool:
        if _hits(self.fault, x):
            fire_sync(self.fault, self.stage)  # type: ignore[arg-type]
        return compute_filter(self.modulus, x)


class AsyncFilterFn(FilterFn):
    async def __call__(self, x: Any) -> bool:  # type: ignore[override]
        if _hits(self.fault, x):
            await fire_async(self.fault, self.stage)  # type: ignore[arg-type]
        return compute_filter(self.modulus, x)


class FlatFn:
    """``form``: ``list`` (returns a list), ``gen`` (sync generator), ``agen`` (async generator)."""

    def __init__(self, form: str, stage: str, fault: Fault | None) -> None:
        self.form, self.stage, self.fault = form, stage, fault
        self.__name__ = f"flat_{form}"

    def __call__(self, x: Any) -> Any:
        hit = self.fault if _hits(self.fault, x) else None
        if self.form == "list":
            if hit is not None:
                fire_sync(hit, self.stage)
            return compute_flat(x)
        if self.form == "gen":
            return self._gen(x, hit)
        return self._agen(x, hit)

    def _gen(self, x: Any, hit: Fault | None) -> Iterator[int]:
        STATE.gens_opened += 1
        try:
            for j, y in enumerate(compute_flat(x)):
                if hit is not None and j == hit.after:
                    fire_sync(hit, self.stage)
                yield y
            if hit is not None and hit.after >= len(compute_flat(x)):
                fire_sync(hit, self.stage)
        finally:
            STATE.gens_closed += 1

    async def _agen(self, x: Any, hit: Fault | None) -> AsyncIterator[int]:
        STATE.gens_opened += 1
        try:
            for j, y in enumerate(compute_flat(x)):
                if hit is not None and j == hit.after:
                    await fire_async(hit, self.stage)
                await anyio.lowlevel.checkpoint()
                yield y
            if hit is not None and hit.after >= len(compute_flat(x)):
                await fire_async(hit, self.stage)
        finally:
            STATE.gens_closed += 1


class Source:
    """A re-iterable source that counts what is pulled and can fail at an element."""

    def __init__(self, values: list[Any], stage: str, fault: Fault | None) -> None:
        self.values, self.stage, self.fault = values, stage, fault

    def __iter__(self) -> Iterator[Any]:
        return _SourceIter(self)


class _SourceIter:
    def __init__(self, src: Source) -> None:
        self.src, self.pos = src, 0

    def __iter__(self) -> _SourceIter:
        return self

    def __next__(self) -> Any:
        if self.pos >= len(self.src.values):
            raise StopIteration
        x = self.src.values[self.pos]
        if _hits(self.src.fault, x) and self.src.fault is not None:
            fire_sync(self.src.fault, self.src.stage)
        self.pos += 1
        STATE.pulled += 1
        return x


class AsyncSource:
    """An async iterable source (an async generator per iteration)."""

    def __init__(self, values: list[Any], stage: str, fault: Fault | None) -> None:
        self.values, self.stage, self.fault = values, stage, fault

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._agen()

    async def _agen(self) -> AsyncIterator[Any]:
        STATE.gens_opened += 1
        try:
            for x in self.values:
                if _hits(self.fault, x) and self.fault is not None:
                    await fire_async(self.fault, self.stage)
                STATE.pulled += 1
                yield x
        finally:
            STATE.gens_closed += 1


class Passthrough:
    """A custom ``.then()`` stage that forwards its inbox, failing at its fault."""

    def __init__(self, stage: str, fault: Fault | None) -> None:
        self.stage, self.fault = stage, fault
        self.__name__ = "passthrough"

    async def __call__(self, inbox: Any, outbox: Any) -> None:
        async with inbox, outbox:
            async for x in inbox:
                if _hits(self.fault, x) and self.fault is not None:
                    await fire_async(self.fault, self.stage)
                await outbox.send(x)
