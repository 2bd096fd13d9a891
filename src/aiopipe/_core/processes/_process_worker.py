"""The worker process of ``map(executor="process")``: receives ``fn`` once, then slices of items.

Runs in the child. It dies with its parent twice over: a thread watching the parent's pid ends it
even in the middle of a call, and a closed socket ends it between calls. Everything it
sends back can be rebuilt in the parent: an exception that cannot be pickled and unpickled travels
as a :class:`RemoteErrorInfo` (type, message, picklable attributes, traceback text).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any

from ._shm import PREFIX, Codec

__all__ = [
    "EXIT_NO_MAIN_GUARD",
    "PROGRESS",
    "RemoteErrorInfo",
    "check_not_bootstrapping",
    "fd_array",
    "parse_fds",
    "unpicklable_at",
    "worker_main",
]

# Exit status of a worker whose import of the main module tried to start workers itself.
EXIT_NO_MAIN_GUARD = 86
PROGRESS = struct.Struct("<q")  # the index, in the current slice, of the element being computed
# Room for a few descriptors per message (0 where there is no SCM_RIGHTS: see check_supported).
_ANCILLARY = socket.CMSG_SPACE(16 * 4) if hasattr(socket, "CMSG_SPACE") else 0


class RemoteErrorInfo:
    """What the parent needs to rebuild an exception that does not survive pickling."""

    def __init__(self, exc: BaseException) -> None:
        cls = type(exc)
        self.module, self.qualname = cls.__module__, cls.__qualname__
        self.message = _safe_str(exc)
        self.args = _picklable(exc.args) or (self.message,)
        self.state = {k: v for k, v in vars(exc).items() if _picklable((v,))}


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return repr(exc.args)


def _picklable(value: tuple[Any, ...]) -> tuple[Any, ...] | None:
    try:
        pickle.dumps(value)
    except Exception:
        return None
    return value


def portable(exc: BaseException) -> BaseException | RemoteErrorInfo:
    """``exc`` itself if it makes the round trip through pickle, else what rebuilds it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RemoteErrorInfo(exc)
    return exc


def check_not_bootstrapping() -> None:
    """Refuse to start workers from a worker that is still importing the main module.

    A script without ``if __name__ == "__main__":`` runs its pipeline again when a worker
    imports it; that worker would start workers of its own, forever. Say so and exit with a
    status the parent recognises.
    """
    import multiprocessing.process

    if getattr(multiprocessing.process.current_process(), "_inheriting", False):
        sys.stderr.write(
            "aiopipe: a worker process of map(executor='process') was asked to start worker "
            "processes itself while importing your main module: the script runs its pipeline at "
            'import time. Put the code that runs it under `if __name__ == "__main__":`.\n'
        )
        sys.stderr.flush()
        os._exit(EXIT_NO_MAIN_GUARD)


def _die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the aiopipe process that started us is gone, even in the middle of a call.

    A daemon thread waits on that process (a pidfd where Linux has one, else a poll). Not
    ``PR_SET_PDEATHSIG``: under the fork server our parent is the server, which stays up while a
    worker lives; under ``spawn`` the signal follows the *thread* that started us, which may end
    long before the run does.
    """
    try:
        pidfd = os.pidfd_open(parent_pid) if hasattr(os, "pidfd_open") else None
    except ProcessLookupError:
        os._exit(1)  # it died before we could watch it
    except OSError:
        pidfd = None
    threading.Thread(
        target=_watch_parent, args=(parent_pid, pidfd), name="aiopipe parent watch", daemon=True
    ).start()


def _watch_parent(parent_pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll()  # readable once the process has exited
    else:
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
    os._exit(1)


class _Socket:
    """Blocking whole-message I/O on the child's end."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(1 << 16)

    def receive(self) -> tuple[memoryview, memoryview, list[int]] | None:
        prefix, fds = self._read_prefix()
        if prefix is None:
            return None
        hlen, blen = PREFIX.unpack(prefix)
        if len(self.buf) < hlen + blen:
            self.buf = bytearray(hlen + blen)
        view = memoryview(self.buf)[: hlen + blen]
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if n == 0:
                return None
            got += n
        return view[:hlen], view[hlen:], fds

    def _read_prefix(self) -> tuple[bytes | None, list[int]]:
        data, fds = b"", []
        while len(data) < PREFIX.size:
            chunk, anc, _flags, _addr = self.sock.recvmsg(PREFIX.size - len(data), _ANCILLARY)
            fds.extend(parse_fds(anc))
            if not chunk:
                return None, fds
            data += chunk
        return data, fds

    def send(self, pieces: list[bytes | memoryview], fds: list[int]) -> None:
        # The descriptors ride with the prefix, which the parent reads with recvmsg.
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd_array(fds))] if fds else []
        self.sock.sendmsg([pieces[0]], anc)
        for fd in fds:
            os.close(fd)
        for piece in pieces[1:]:
            self.sock.sendall(piece)


def fd_array(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)


def _keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse in this process.

    By default a worker returns its big temporaries (an image's float copies) to the kernel at
    every free and page-faults them back at the next element: measured on W5a, 540 faults and
    ~40 % more CPU per image than the same function in the parent. What it keeps is bounded by
    the function's own peak.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None)
            libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD: trim the heap only past 512 MiB free
            libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: blocks below 64 MiB from the heap


def parse_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors of ``SCM_RIGHTS`` ancillary data."""
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder)
                for i in range(0, len(payload) - 3, 4)
            )
    return fds


def worker_main(sock: socket.socket, parent_pid: int, threshold: int, max_bytes: int) -> None:
    """The child's whole life: set up, load ``fn``, answer calls until the socket closes."""
    _die_with_parent(parent_pid)
    _keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    channel, codec = _Socket(sock), Codec(threshold, max_bytes)
    try:
        _serve(channel, codec)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the parent closed our socket mid-message: it stopped the run; leave quietly
    finally:
        codec.close()


def _serve(channel: _Socket, codec: Codec) -> None:
    """Answer calls until the parent closes the socket."""
    fn: Any = None
    progress = None
    while (msg := channel.receive()) is not None:
        kind, payload = codec.decode(*msg)
        if kind == "fn":
            # With fn comes a shared word where we write which element we are on, so that the
            # parent can name it if we die in the middle of a call.
            fd = codec.extra_fds.pop()
            progress = mmap.mmap(fd, PROGRESS.size)
            os.close(fd)
            try:
                fn = pickle.loads(payload)
            except BaseException as exc:
                reply: tuple[Any, ...] = ("err", [], portable(exc), _format(exc))
            else:
                reply = ("ok", [], 0.0)
        else:
            assert progress is not None
            reply = _call(fn, payload, progress, codec)
            del payload  # our views of the input: free its segment before we answer
        channel.send(*_encode(codec, reply))
        del reply


def _encode(codec: Codec, reply: tuple[Any, ...]) -> tuple[list[bytes | memoryview], list[int]]:
    """The reply as a message; a result that cannot be pickled fails its element instead."""
    try:
        return codec.encode(reply)
    except Exception as exc:
        done = list(reply[1])  # a list, or the rows of a stacked array
        at = unpicklable_at(done)
        exc.add_note("aiopipe: fn returned a value that cannot be pickled back to the parent")
        return codec.encode(("err", done[:at], portable(exc), _format(exc)))


def unpicklable_at(items: list[Any]) -> int:
    """The index of the first item that cannot be pickled (``len(items)`` if none)."""
    for i, x in enumerate(items):
        try:
            pickle.dumps(x, protocol=5, buffer_callback=lambda b: False)
        except Exception:
            return i
    return len(items)


def _call(fn: Any, items: list[Any], progress: mmap.mmap, codec: Codec) -> tuple[Any, ...]:
    out = _Results(len(items), codec)
    pack = PROGRESS.pack_into
    t0 = time.perf_counter()
    try:
        for i, x in enumerate(items):
            pack(progress, 0, i)
            out.add(fn(x))
    except BaseException as exc:
        return ("err", out.as_list(), portable(exc), _format(exc))
    # The time the slice took here: the parent sizes slices by it (its own clock also counts
    # the wait behind the other call in flight).
    elapsed = time.perf_counter() - t0
    if out.stacked is not None:
        return ("rows", out.stacked, elapsed)
    return ("ok", out.as_list(), elapsed)


class _Results:
    """The results of one slice. numpy arrays of one shape and dtype are written, as they come,
    into the rows of one array: it crosses as one buffer, and a batch of whole rows of it needs
    no copy in the parent (see ``_fused``). Anything else makes it a plain list again. A big
    array is made in shared memory, where it is sent from without a copy."""

    __slots__ = ("codec", "count", "items", "n", "stacked")

    def __init__(self, n: int, codec: Codec) -> None:
        self.n = n
        self.codec = codec
        self.items: list[Any] = []
        self.stacked: Any = None  # (n, *shape) array whose first ``count`` rows are results
        self.count = 0

    def add(self, value: Any) -> None:
        rows = self.stacked
        if rows is not None:
            if (
                type(value) is type(rows)
                and value.shape == rows.shape[1:]
                and (value.dtype == rows.dtype)
            ):
                rows[self.count] = value
                self.count += 1
                return
            self.items = list(rows[: self.count])  # views: the results keep their values
            self.stacked = None
        elif not self.items and _stackable(value):
            import numpy as np

            shape, nbytes = (self.n, *value.shape), self.n * value.nbytes
            room = self.codec.reserve(nbytes) if nbytes >= self.codec.threshold else None
            if room is None:
                self.stacked = np.empty(shape, value.dtype)
            else:
                self.stacked = np.frombuffer(room, value.dtype).reshape(shape)
            self.stacked[0] = value
            self.count = 1
            return
        self.items.append(value)

    def as_list(self) -> list[Any]:
        if self.stacked is not None:
            return list(self.stacked[: self.count])
        return self.items


def _stackable(value: Any) -> bool:
    """A plain numpy array of plain values (not a subclass, no Python objects inside)."""
    np = sys.modules.get("numpy")  # not imported: not an array
    if np is None or type(value) is not np.ndarray:
        return False
    return value.ndim > 0 and not value.dtype.hasobject


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
