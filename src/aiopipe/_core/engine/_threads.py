"""Worker threads owned by one run: started on demand, stopped and joined when the run ends.

anyio's ``to_thread`` pool outlives the call that used it (its idle threads wait for more work
until the event loop closes), so "leaving ``open()`` leaves nothing running" could not hold, and a
thread stuck on a hung read kept the interpreter alive at exit (the pool's threads are not
daemons). This pool belongs to a run: every call's completion wakes the event loop through the
backend's thread-safe entry point (no thread blocks on the loop), idle threads are stopped and
joined when the run closes, and a thread still stuck in a call (a read on storage that never
answers) is a daemon that the interpreter does not wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["ThreadPool", "waker"]

T = TypeVar("T")
# Idle threads get this long to see their stop signal and end when the run closes.
JOIN_S = 1.0


class _Call:
    __slots__ = ("args", "done", "error", "fn", "result", "wake")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], wake: Callable[[], None]):
        self.fn = fn
        self.args = args
        self.wake = wake
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


def waker(event: anyio.Event) -> Callable[[], None]:
    """A function any thread may call to set ``event`` on the current event loop, without
    waiting for the loop (anyio's ``from_thread`` blocks the thread until the loop answers)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio

        token = trio.lowlevel.current_trio_token()
        return lambda: token.run_sync_soon(event.set)

    def wake() -> None:
        loop.call_soon_threadsafe(event.set)

    return wake


class ThreadPool:
    """Threads for one run's blocking calls (sync ``map`` functions, file reads)."""

    def __init__(self, name: str = "aiopipe worker") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._busy: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a pool thread. Cancellation does not interrupt the call: the caller
        decides whether to wait for it (shield) or to leave it (:meth:`start` + its event)."""
        event = anyio.Event()
        call = self.start(event, fn, *args)
        await event.wait()
        result: T = self.result(call)
        return result

    def start(self, event: anyio.Event, fn: Callable[..., Any], *args: Any) -> _Call:
        """Queue ``fn(*args)``; ``event`` is set on this event loop once it has finished."""
        if self._closed:
            raise RuntimeError("the run's thread pool is closed")
        call = _Call(fn, args, waker(event))
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._threads.append(thread)
            thread.start()
        self._jobs.put(call)
        return call

    @staticmethod
    def result(call: _Call) -> Any:
        if call.error is not None:
            error, call.error = call.error, None  # do not keep a traceback cycle alive
            raise error
        return call.result

    def _serve(self) -> None:
        me = threading.current_thread()
        while (call := self._jobs.get()) is not None:
            with self._lock:
                self._busy.add(me)
            try:
                call.result = call.fn(*call.args)
            except BaseException as exc:  # handed to the caller, whatever it is
                call.error = exc
            call.done = True
            # Idle again before the caller hears of it: once every caller has resumed, no
            # thread counts as busy, and close() joins them all.
            with self._lock:
                self._busy.discard(me)
                self._idle += 1
            wake, call = call.wake, None  # drop references before idling
            # The loop may be gone: an abandoned call (stuck on storage) that nobody awaits.
            with contextlib.suppress(Exception):
                wake()

    def close(self) -> None:
        """Stop every thread; join the idle ones. Calls still running (stuck on storage) are
        left to finish on their daemon threads."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        with self._lock:
            stuck = set(self._busy)
        for thread in self._threads:
            if thread not in stuck:
                thread.join(JOIN_S)
        self._threads.clear()
