"""Coordinator: a TaskGroup that stops together (replaces ``tf.train.Coordinator``)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, final

import anyio
from anyio.abc import TaskGroup

from ._errors import OutOfRangeError

__all__ = ["Coordinator", "describe_error", "pipeline_coordinator"]


@final
class Coordinator:
    """Owns an anyio TaskGroup; tasks started in it stop together.

    ``async with Coordinator() as coord`` enters the group. Leaving the block requests a stop, gives
    the tasks ``stop_grace_period`` seconds to return by themselves (they poll ``should_stop()`` or
    ``await wait_for_stop()``), cancels the rest, and waits for all of them. The first exception
    reported (by a task, ``request_stop`` or ``stop_on_exception``) is raised at exit, unless the
    body itself raised, in which case the body's exception propagates unchanged.
    """

    def __init__(
        self,
        *,
        stop_grace_period: float = 2.0,
        clean_stop_exception_types: tuple[type[BaseException], ...] = (OutOfRangeError,),
    ) -> None:
        if not stop_grace_period >= 0 or math.isnan(stop_grace_period):
            raise ValueError(
                f"Coordinator needs stop_grace_period >= 0 seconds (got {stop_grace_period!r})"
            )
        self._grace = stop_grace_period
        self._clean = tuple(clean_stop_exception_types)
        self._stop_event = anyio.Event()
        self._exception: BaseException | None = None
        self._tg: TaskGroup | None = None
        self._live = 0
        self._all_done = anyio.Event()
        # Pipelines run on a coordinator in "hard stop" mode: a stop cancels every task at once
        # (no grace), and errors reported after the first become notes on it.
        self._hard_stop = False
        self._late_errors_as_notes = False
        self._scopes: set[anyio.CancelScope] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Coordinator:
        if self._tg is not None:
            raise RuntimeError("a Coordinator can be entered only once; create a new one")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._tg is not None
        if exc is not None and not isinstance(exc, Exception):
            # Cancelled from outside (or KeyboardInterrupt): the group must see it to propagate it.
            self.request_stop()
            return bool(await self._tg.__aexit__(exc_type, exc, tb))
        if isinstance(exc, Exception):
            self.request_stop(exc)
        else:
            self.request_stop()
        if self._live:
            self._tg.start_soon(self._cancel_after_grace, name="aiopipe.Coordinator grace")
        await self._tg.__aexit__(None, None, None)
        if exc is None and self._exception is not None:
            raise self._exception
        return False

    async def _cancel_after_grace(self) -> None:
        with anyio.move_on_after(self._grace):
            await self._all_done.wait()
        self._cancel_tasks()

    def _cancel_tasks(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    # -- tasks -------------------------------------------------------------------------------
    def start_soon(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Start ``fn(*args)`` as a task of this coordinator; its exception stops everything."""
        if self._tg is None:
            raise RuntimeError("start_soon needs the Coordinator entered: `async with coord:`")
        label = name if name is not None else getattr(fn, "__name__", repr(fn))
        if self._live == 0 and self._all_done.is_set():
            self._all_done = anyio.Event()
        self._live += 1
        self._tg.start_soon(self._run, fn, args, label, name=label)

    async def _run(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], label: str
    ) -> None:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                if self._hard_stop and self.should_stop():
                    scope.cancel()
                await fn(*args)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            # KeyboardInterrupt and SystemExit too: the group would otherwise wrap them in a
            # BaseExceptionGroup (trio) or let them escape the event loop (asyncio). Recorded,
            # they stop everything and are raised at exit (or handed to a pipeline's consumer)
            # as the very same object.
            if not _has_aiopipe_note(exc):
                exc.add_note(f"aiopipe: raised in coordinator task '{label}'")
            self.request_stop(exc)
        finally:
            self._scopes.discard(scope)
            self._live -= 1
            if self._live == 0:
                self._all_done.set()

    # -- stopping ----------------------------------------------------------------------------
    def should_stop(self) -> bool:
        """True once a stop was requested."""
        return self._stop_event.is_set()

    def request_stop(self, exc: BaseException | None = None) -> None:
        """Ask every task to stop. The first call wins; ``exc`` is recorded unless it is clean."""
        if self._stop_event.is_set():
            if self._late_errors_as_notes and exc is not None:
                self._note_late_error(exc)
            return
        if exc is not None and not isinstance(exc, self._clean):
            self._exception = exc
        self._stop_event.set()
        if self._hard_stop:
            self._cancel_tasks()

    def _note_late_error(self, exc: BaseException) -> None:
        """Pipelines keep errors raised after the first as notes on it, not silence; an error
        raised while stopping cleanly (a sync call in flight when the consumer left failed)
        becomes the one raised at exit."""
        if isinstance(exc, self._clean):
            return
        first = self._exception
        if first is None:
            self._exception = exc
        elif exc is not first:
            first.add_note(f"aiopipe: also raised: {describe_error(exc)}")

    async def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Wait for a stop request or ``timeout`` seconds; True if a stop was requested."""
        with anyio.move_on_after(timeout if timeout is not None else math.inf):
            await self._stop_event.wait()
        return self.should_stop()

    def raise_requested_exception(self) -> None:
        """Raise the recorded stop exception, if there is one."""
        if self._exception is not None:
            raise self._exception

    @contextmanager
    def stop_on_exception(self) -> Iterator[None]:
        """Report an exception raised in the block as the stop exception, and swallow it."""
        try:
            yield
        except Exception as exc:
            self.request_stop(exc)

    @property
    def exception(self) -> BaseException | None:
        """The recorded stop exception, or None."""
        return self._exception


def _has_aiopipe_note(exc: BaseException) -> bool:
    return any(n.startswith("aiopipe: raised in") for n in getattr(exc, "__notes__", ()))


def describe_error(exc: BaseException) -> str:
    """``Type: message (where)``, for a note about an error that is not the one raised."""
    notes = [n for n in getattr(exc, "__notes__", ()) if n.startswith("aiopipe: raised in")]
    where = f" ({notes[0].removeprefix('aiopipe: ')})" if notes else ""
    return f"{type(exc).__name__}: {exc}{where}"


def pipeline_coordinator() -> Coordinator:
    """The coordinator of a pipeline run: a stop cancels every task at once (there is no grace
    for stage tasks, which hold nothing worth finishing), every stage exception is an error
    (an ``OutOfRangeError`` from a stage too), and errors reported after the first become notes
    on it instead of vanishing. The mode is this module's to set: ``Coordinator`` is final."""
    coord = Coordinator(stop_grace_period=0, clean_stop_exception_types=())
    coord._hard_stop = True
    coord._late_errors_as_notes = True
    return coord
