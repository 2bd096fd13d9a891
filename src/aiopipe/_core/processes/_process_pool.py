"""The parent side of ``map(executor="process")``: one worker process per map worker, per run.

Each of the stage's N workers is one process (a :class:`ProcessLane`) for the whole run, shared
by PER_LANE worker tasks (:class:`SharedLane`) so that it always has its next slice queued: the
first task to come starts it (``fn`` is sent once, at start-up), the last to leave stops and joins
it, whatever ends the run (end of input, an error, a cancel, even during start-up). Messages go
over a socket pair that the event loop waits on directly (no thread per call), replies in call
order; big buffers go through shared memory (:mod:`._shm`).

Processes come from multiprocessing's ``forkserver`` (where there is one) or ``spawn``: both are
safe in a parent that has threads, unlike ``fork``. The fork server is started once per parent
(it and multiprocessing's resource tracker stay until the parent exits), with the main module,
aiopipe and ``fn``'s module preloaded, so that a run's workers start in milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib
import mmap
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio

from ..engine._errors import AiopipeError
from ._fused import Producer, split
from ._process_worker import (
    EXIT_NO_MAIN_GUARD,
    PROGRESS,
    RemoteErrorInfo,
    check_not_bootstrapping,
    fd_array,
    parse_fds,
    unpicklable_at,
    worker_main,
)
from ._shm import PREFIX, Codec, new_segment_fd

__all__ = [
    "PER_LANE",
    "ProcessLane",
    "ProcessOptions",
    "RemoteError",
    "RemoteTraceback",
    "WorkerProcessError",
    "NoLane",
    "SharedLane",
    "current_lane",
    "worked_s",
]

# Room for a few descriptors per message (0 where there is no SCM_RIGHTS: see check_supported).
_ANCILLARY = socket.CMSG_SPACE(16 * 4) if hasattr(socket, "CMSG_SPACE") else 0
PER_LANE = 2  # map worker tasks per worker process: calls in flight to each
_STOP_GRACE_S = 5.0  # a worker asked to stop between calls exits at once; then it is killed


@dataclass(frozen=True)
class ProcessOptions:
    """How ``map(executor="process")`` runs its workers (the defaults of ``"process"``)."""

    start_method: str | None = None
    shared_memory_threshold: int = 64 * 1024
    max_shared_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        methods = ("forkserver", "spawn")
        if self.start_method is not None and self.start_method not in methods:
            raise ValueError(
                f"start_method must be one of {methods} or None (fork is not safe in a parent "
                f"with threads, which an event loop has); got {self.start_method!r}"
            )
        for what in ("shared_memory_threshold", "max_shared_bytes"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{what} must be an int >= 0, got {value!r}")

    @property
    def method(self) -> str:
        if self.start_method is not None:
            return self.start_method
        return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def check_supported() -> None:
    """Refuse, when the pipeline is built, a platform without descriptor passing (Windows)."""
    if not hasattr(socket.socket, "sendmsg") or not hasattr(socket, "CMSG_SPACE"):
        raise ValueError(
            "map(executor='process') needs a POSIX system (Linux, macOS): it passes shared memory "
            "between processes over Unix sockets; use executor='thread' here"
        )


class WorkerProcessError(AiopipeError):
    """A worker process of ``map(executor="process")`` died, or could not start."""


class RemoteError(Exception):
    """Stands for an exception raised in a worker whose type cannot be rebuilt in the parent.

    The parent gets a subclass with the same name as the original type (``str()`` is its message;
    a note holds the worker's traceback).
    """


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (as the exception's cause)."""

    def __str__(self) -> str:
        return str(self.args[0])


_LANE: ContextVar[ProcessLane] = ContextVar("aiopipe_process_lane")


# Seconds the worker spent on the calling task's last slice (per task: two tasks share a lane).
_WORKED: ContextVar[float | None] = ContextVar("aiopipe_process_worked", default=None)


def worked_s(default: float) -> float:
    """How long the worker computed the calling task's last slice (``default`` if unknown)."""
    got = _WORKED.get()
    return default if got is None else got


def current_lane() -> ProcessLane:
    """The worker process of the calling map worker task (set by :meth:`SharedLane.use`)."""
    return _LANE.get()


class NoLane(Exception):
    """The lane a task was to share did not start or is already closed: nothing to do."""


class SharedLane:
    """One worker process shared by ``per_lane`` worker tasks, so that while the parent takes
    one call's results the worker already has the next call: it is never idle waiting for the
    event loop. The first task to come starts it, the last to leave stops and joins it."""

    def __init__(
        self,
        fn: bytes,
        options: ProcessOptions,
        stage: str,
        fn_module: str | None,
        producer: Producer | None = None,
    ) -> None:
        self.fn = fn
        self.lane = ProcessLane(options, stage, fn_module, producer)
        self.users = 0
        self.state = "new"  # -> "starting" -> "running" | "failed" -> "closed"
        self.ready = anyio.Event()
        self.clean = True

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[ProcessLane]:
        """Use the lane (starting it if we are first); raises :class:`NoLane` if there is none."""
        if self.state == "closed":
            raise NoLane
        self.users += 1
        try:
            if self.state == "new":
                self.state = "starting"
                try:
                    await self.lane.start(self.fn)
                    self.state = "running"
                finally:
                    if self.state != "running":
                        self.state = "failed"
                    self.ready.set()
            await self.ready.wait()
            if self.state != "running":
                raise NoLane  # the task that started it reports why
            token = _LANE.set(self.lane)
            try:
                yield self.lane
            finally:
                _LANE.reset(token)
        except NoLane:
            raise
        except BaseException:
            self.clean = False
            raise
        finally:
            self.users -= 1
            if self.users == 0:
                self.state = "closed"
                await self.lane.stop(kill=not self.clean or self.lane.in_flight > 0)


class ProcessLane:
    """One worker process and the socket to it; calls are answered in the order they were sent."""

    def __init__(
        self,
        options: ProcessOptions,
        stage: str,
        fn_module: str | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.options = options
        self.stage = stage
        self.fn_module = fn_module  # worth preloading in the fork server
        self.producer = producer  # the map runner whose rows a batch may take as a view
        self.codec = Codec(options.shared_memory_threshold, options.max_shared_bytes)
        self.sock: socket.socket | None = None
        self.proc: Any = None  # a multiprocessing BaseProcess, once started
        self.in_flight = 0  # calls sent and not answered: the socket is mid-conversation
        self._send_lock = anyio.Lock()  # one message at a time on the wire
        self._sent = 0  # calls sent (each call's ticket)
        self._answered = 0  # replies read: replies come in the order calls were sent
        self._turns: dict[int, anyio.Event] = {}
        self.progress: mmap.mmap | None = None  # which element of a slice the worker is on
        self._buf = bytearray(1 << 16)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, fn: bytes) -> None:
        check_not_bootstrapping()
        ctx: Any = multiprocessing.get_context(self.options.method)
        if self.options.method == "forkserver":
            _preload(ctx, self.fn_module)
        ours, theirs = socket.socketpair()
        self.sock = ours
        ours.setblocking(False)
        opts = self.options
        proc = ctx.Process(
            target=worker_main,
            args=(theirs, os.getpid(), opts.shared_memory_threshold, opts.max_shared_bytes),
            name=f"aiopipe worker of {self.stage}",
            daemon=True,
        )
        try:
            await _start(proc)
        except (EOFError, ConnectionError) as exc:
            raise WorkerProcessError(
                f"the fork server could not start the worker processes of '{self.stage}': it "
                f"exited while importing your main module or the modules it preloads (see its "
                f"messages above). If your script runs its pipeline at import time, put that code "
                f'under `if __name__ == "__main__":`'
            ) from exc
        finally:
            theirs.close()
            if proc.pid is not None:  # started, even if we were cancelled meanwhile
                self.proc = proc
        fd = new_segment_fd(PROGRESS.size)
        self.progress = mmap.mmap(fd, PROGRESS.size)
        self.in_flight += 1
        await self._send(("fn", fn), extra_fds=[fd])
        _, failed = await self._reply(what="loading the function", count=0)
        self.in_flight -= 1
        if failed is not None:
            failed.add_note(f"aiopipe: while loading the function of '{self.stage}' in its worker")
            raise failed

    async def stop(self, *, kill: bool) -> None:
        """Stop the worker (asking first unless ``kill``), join it, release what it held."""
        with anyio.CancelScope(shield=True):
            if self.sock is not None:
                self.sock.close()  # between calls, the worker takes the EOF as its cue to exit
            proc = self.proc
            if proc is not None:
                exited = False
                if not kill:
                    with anyio.move_on_after(_STOP_GRACE_S):
                        await _wait_exit(proc)
                        exited = True
                if not exited:
                    with contextlib.suppress(OSError):
                        proc.kill()
                    await _wait_exit(proc)
                proc.join()
                proc.close()
            self.codec.close()
            if self.progress is not None:
                self.progress.close()

    # -- calls ------------------------------------------------------------------------------
    async def call(self, items: list[Any]) -> tuple[list[Any], BaseException | None]:
        """``fn`` over ``items`` in the worker: (results, None), or (results before the failing
        item, its exception)."""
        try:
            message = self.codec.encode(("call", items))
        except Exception as unsendable:
            unsendable.add_note("aiopipe: this element cannot be pickled for a worker process")
            # Placeholders for the elements before it: their count says which one failed.
            return [None] * unpicklable_at(items), unsendable
        self.in_flight += 1
        async with self._send_lock:
            ticket = self._sent
            self._sent += 1
            await self._send_message(*message)
        if ticket != self._answered:  # another task's reply comes first: it reads it
            turn = self._turns[ticket] = anyio.Event()
            await turn.wait()
        try:
            reply = await self._reply(what="the element named below", count=len(items))
        finally:
            self._answered += 1
            nxt = self._turns.pop(self._answered, None)
            if nxt is not None:
                nxt.set()
        self.in_flight -= 1
        return reply

    async def _reply(self, *, what: str, count: int) -> tuple[list[Any], BaseException | None]:
        msg = await self._receive()
        if msg is None:
            at = PROGRESS.unpack_from(self.progress)[0] if count and self.progress else 0
            # Placeholders for the elements before the one it died on: their count says where.
            return [None] * at, await self._died(what)
        if msg[0] == "ok":
            _WORKED.set(msg[2])
            return msg[1], None
        if msg[0] == "rows":  # the results are the rows of one array
            _WORKED.set(msg[2])
            return (split(msg[1], self.producer) if self.producer else list(msg[1])), None
        _, done, exc, tb = msg
        exc = rebuild(exc)
        # As concurrent.futures does: the worker's traceback shows as the cause.
        exc.__cause__ = RemoteTraceback(f"\n(worker process pid {self.proc.pid})\n{tb}")
        return done, exc

    async def _died(self, what: str) -> WorkerProcessError:
        with anyio.move_on_after(_STOP_GRACE_S):
            await _wait_exit(self.proc)
        code = self.proc.exitcode
        if code == EXIT_NO_MAIN_GUARD:
            return WorkerProcessError(
                f"the worker processes of '{self.stage}' could not start: importing your main "
                f"module ran the pipeline again. Put the code that runs it under "
                f'`if __name__ == "__main__":` (see the worker\'s message above)'
            )
        if code is None:
            how = "closed its end of the socket"
        elif code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        return WorkerProcessError(
            f"the worker process (pid {self.proc.pid}) of '{self.stage}' {how} while computing "
            f"{what}: it was killed, ran out of memory or crashed in native code"
        )

    # -- the wire ---------------------------------------------------------------------------
    async def _send(self, obj: Any, extra_fds: tuple[int, ...] | list[int] = ()) -> None:
        pieces, fds = self.codec.encode(obj)
        await self._send_message(pieces, [*fds, *extra_fds])

    async def _send_message(self, pieces: list[bytes | memoryview], fds: list[int]) -> None:
        assert self.sock is not None
        views = [memoryview(p).cast("B") for p in pieces]
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd_array(fds))] if fds else []
        try:
            while views:
                try:
                    n = self.sock.sendmsg(views, anc)  # one system call for the whole message
                except BlockingIOError:
                    await _wait_writable(self.sock)
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return  # the worker is gone: the reply says so
                anc = []  # the descriptors went with the first bytes
                while views and n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                if views:
                    views[0] = views[0][n:]
        finally:
            _close_all(fds)  # sent (the worker has its own copies) or not: ours are done

    async def _receive(self) -> Any:
        """One decoded message, or None when the worker closed the socket."""
        assert self.sock is not None
        prefix, fds = bytearray(), []
        while len(prefix) < PREFIX.size:
            try:
                chunk, anc, _, _ = self.sock.recvmsg(PREFIX.size - len(prefix), _ANCILLARY)
            except BlockingIOError:
                await _wait_readable(self.sock)
                continue
            except ConnectionResetError:
                chunk, anc = b"", []
            fds.extend(parse_fds(anc))
            if not chunk:
                _close_all(fds)
                return None
            prefix += chunk
        hlen, blen = PREFIX.unpack(prefix)
        if len(self._buf) < hlen + blen:
            self._buf = bytearray(hlen + blen)
        view = memoryview(self._buf)[: hlen + blen]
        got = 0
        while got < len(view):
            try:
                n = self.sock.recv_into(view[got:])
            except BlockingIOError:
                await _wait_readable(self.sock)
                continue
            if n == 0:
                _close_all(fds)
                return None
            got += n
        return self.codec.decode(view[:hlen], view[hlen:], fds)


def rebuild(got: BaseException | RemoteErrorInfo) -> BaseException:
    """The exception a worker sent: itself, or rebuilt from its type, args and attributes.

    An exception whose ``__init__`` needs arguments it does not keep in ``.args`` cannot be
    unpickled; it is made with ``__new__`` (``__init__`` skipped) and given its args and state.
    A type that cannot be found or made becomes a :class:`RemoteError` of the same name.
    """
    if isinstance(got, BaseException):
        return got
    cls = _find(got.module, got.qualname)
    if cls is not None:
        try:
            made: BaseException = cls.__new__(cls, *got.args)
            made.args = got.args
            vars(made).update(got.state)
            return made
        except Exception:
            pass
    named: type[RemoteError] = type(
        got.qualname.rsplit(".", 1)[-1], (RemoteError,), {"__module__": got.module}
    )
    exc = named(got.message)
    for note in got.state.get("__notes__", ()):
        exc.add_note(note)
    return exc


def _find(module: str, qualname: str) -> type[BaseException] | None:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None


_PRELOADED = False


def _preload(ctx: Any, fn_module: str | None) -> None:
    """What the fork server imports once, if we are the ones to start it, so that each worker
    forks with it loaded instead of importing it: aiopipe (and numpy), the main module (as
    multiprocessing recommends: a script's imports, e.g. torch or Pillow), and fn's module."""
    global _PRELOADED
    if not _PRELOADED:
        _PRELOADED = True
        wanted = ["__main__", "aiopipe"]
        if fn_module and fn_module not in ("__main__", "__mp_main__"):
            wanted.append(fn_module)
        ctx.set_forkserver_preload(wanted)


async def _start(proc: Any) -> None:
    """``proc.start()`` in a thread of its own, joined before we return.

    start() may wait for the fork server to come up, so not on the event loop; and not in
    anyio's thread pool, whose idle threads outlive the run. A cancel waits for it (a thread
    cannot be stopped; it takes milliseconds once the server is up), then stop() kills the process.
    """
    wake_r, wake_w = socket.socketpair()
    failed: list[BaseException] = []

    def target() -> None:
        try:
            proc.start()
        except BaseException as exc:
            failed.append(exc)
        finally:
            wake_w.send(b"x")

    thread = threading.Thread(target=target, name="aiopipe process start", daemon=True)
    try:
        with anyio.CancelScope(shield=True):
            thread.start()
            await _wait_readable(wake_r)
            thread.join()
    finally:
        wake_r.close()
        wake_w.close()
    if failed:
        raise failed[0]
    await anyio.lowlevel.checkpoint_if_cancelled()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


async def _wait_exit(proc: Any) -> None:
    while proc.exitcode is None:
        await _wait_readable(proc.sentinel)
        if proc.exitcode is None:
            await anyio.sleep(0.001)  # the sentinel closes a moment before the exit is seen


async def _wait_readable(obj: Any) -> None:
    wait = getattr(anyio, "wait_readable", None)
    if wait is not None:  # anyio >= 4.7
        await wait(obj)
    elif isinstance(obj, socket.socket):
        await anyio.wait_socket_readable(obj)
    else:
        await anyio.sleep(0.005)  # a process sentinel on an older anyio: poll


async def _wait_writable(sock: socket.socket) -> None:
    wait = getattr(anyio, "wait_writable", None)
    await (wait(sock) if wait is not None else anyio.wait_socket_writable(sock))
