"""A small, fast HTTP object server on 127.0.0.1 for tests and benchmarks, with fault injection.

It serves ``GET``/``HEAD`` of in-memory objects by path, with ``Range: bytes=a-b`` (206 and
``Content-Range``), keep-alive, a fixed ``latency`` added before every response (simulated
first-byte latency, without blocking: ``call_later``), 404 for missing objects and 403 for paths
in ``denied``. ``faults[path]`` is a list consumed one entry per request to that path:

- ``"503"`` / ``"500"``: that status, connection kept;
- ``"429"``: 429 with ``Retry-After: 0``;
- ``"reset"``: the connection is closed without a response;
- ``"drop"``: the headers and half the body are sent, then the connection is closed;
- ``"stall"``: no response for 30 s (a read stuck on the network);
- ``"slow"``: the response comes 0.2 s late.

It runs on its own asyncio loop in a background thread (``with ObjectServer(...) as s``), or as a
process of its own for benchmarks (``python -m aiopipe.testing._object_server --help``): an
asyncio ``Protocol``, whose capacity W6 measures and prints (requests per server CPU-second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["ObjectServer"]

_REASONS = {
    200: "OK",
    206: "Partial Content",
    403: "Forbidden",
    404: "Not Found",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_STALL_S = 30.0
_SLOW_S = 0.2


class ObjectServer:
    """Serve ``objects`` (path -> bytes) over HTTP/1.1 on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        objects: dict[str, bytes] | None = None,
        *,
        latency: float = 0.0,
        denied: Iterable[str] = (),
        port: int = 0,
    ) -> None:
        self.objects: dict[str, bytes] = dict(objects or {})
        self.latency = latency
        self.denied = set(denied)
        self.faults: dict[str, list[str]] = {}
        self.requests: Counter[str] = Counter()  # path -> requests seen
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of every ranged GET
        self.port = port
        # Responses wait until this many requests are in flight at once (0: no waiting): a test
        # then knows, without timing, that the client really had that many outstanding.
        self.hold_until = 0
        self.inflight = 0
        self.max_inflight = 0
        self._held: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._conns: set[_Http] = set()
        self._arrived: dict[str, threading.Event] = {}

    def arrived(self, path: str) -> threading.Event:
        """An event set when a request for ``path`` reaches the server (for ordering tests)."""
        event = self._arrived.setdefault(path, threading.Event())
        # ``answer`` counts the request, then sets the event if one was asked for: whichever
        # thread comes second sees what the first did, so the event is never missed.
        if self.requests[path]:
            event.set()
        return event

    def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):  # keep-alive clients would hold the loop open
            if conn.transport is not None:
                conn.transport.abort()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- running in a thread ---------------------------------------------------------------------

    def __enter__(self) -> ObjectServer:
        self._thread = threading.Thread(target=self._run_thread, name="ObjectServer", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._shut)
        if self._thread is not None:
            self._thread.join(10)

    def _run_thread(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        """Serve until the server is closed."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Http(self), "127.0.0.1", self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    # -- answering ---------------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, str]:
        """(status, headers, body, fault) for one request."""
        self.requests[path] += 1
        # An event only for paths a test waits on: one per path served cost the first pass over
        # a benchmark's objects an Event, a Condition and a lock each.
        event = self._arrived.get(path)
        if event is not None:
            event.set()
        pending = self.faults.get(path)
        fault = pending.pop(0) if pending else ""
        if fault in ("503", "500"):
            return int(fault), {}, b"try again", ""
        if fault == "429":
            return 429, {"Retry-After": "0"}, b"slow down", ""
        if path in self.denied:
            return 403, {}, b"denied", fault
        data = self.objects.get(path)
        if data is None:
            return 404, {}, b"no such object", fault
        rng = headers.get("range")
        if rng is None:
            return 200, {}, data, fault
        self.ranges.append((path, rng))
        first, last = _parse_range(rng, len(data))
        if first >= len(data) or first > last:
            return 416, {"Content-Range": f"bytes */{len(data)}"}, b"", fault
        body = data[first : last + 1]
        extra = {"Content-Range": f"bytes {first}-{first + len(body) - 1}/{len(data)}"}
        return 206, extra, body, fault


def _parse_range(header: str, size: int) -> tuple[int, int]:
    spec = header.strip().removeprefix("bytes=")
    a, _, b = spec.partition("-")
    if not a:  # a suffix: the last b bytes
        return max(0, size - int(b)), size - 1
    return int(a), min(size - 1, int(b)) if b else size - 1


class _Http(asyncio.Protocol):
    def __init__(self, server: ObjectServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # one request at a time per connection (no pipelining needed)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server._conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buf = self.buf[:end], self.buf[end + 4 :]
        first, _, rest = head.partition(b"\r\n")
        method, target, _version = first.decode("latin-1").split(" ", 2)
        headers = {}
        if rest:  # only the headers the server reads: parsed lazily, most requests have few
            for line in rest.decode("latin-1").split("\r\n"):
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        path = target.split("?", 1)[0]
        status, extra, body, fault = self.server.answer(method, path, headers)
        delay = self.server.latency + (_STALL_S if fault == "stall" else 0.0)
        delay += _SLOW_S if fault == "slow" else 0.0
        self.busy = True
        srv = self.server
        srv.inflight += 1
        srv.max_inflight = max(srv.max_inflight, srv.inflight)
        loop = asyncio.get_running_loop()
        args = (method, status, extra, body, fault)
        send = (
            (lambda: loop.call_later(delay, self._respond, *args))
            if delay > 0
            else (lambda: self._respond(*args))
        )
        if srv.hold_until and srv.inflight < srv.hold_until:
            srv._held.append(send)
            return
        held, srv._held = srv._held, []
        srv.hold_until = 0  # reached once: from now on, answer as usual
        for release in held:
            release()
        send()

    def _respond(
        self, method: str, status: int, extra: dict[str, str], body: bytes, fault: str
    ) -> None:
        self.server.inflight -= 1
        t = self.transport
        if t is None or t.is_closing():
            return
        if fault == "reset":
            t.abort()
            return
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in extra.items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if fault == "drop":
            t.write(payload + body[: len(body) // 2])
            t.abort()
            return
        t.write(payload + body if method != "HEAD" else payload)
        self.busy = False
        if self.buf:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server._conns.discard(self)


def main(argv: list[str] | None = None) -> None:
    """Serve ``count`` objects ``/bucket/obj-00000`` ... of ``size`` bytes until killed."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--count", type=int, default=20_000)
    p.add_argument("--size", type=int, default=16 << 10)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    blob = bytes(range(256)) * (args.size // 256 + 1)
    objects = {
        f"/bucket/obj-{i:05d}": blob[i % 256 : i % 256 + args.size] for i in range(args.count)
    }
    server = ObjectServer(objects, latency=args.latency, port=args.port)

    async def run() -> None:
        task = asyncio.ensure_future(server.serve())
        await asyncio.get_running_loop().run_in_executor(None, server._ready.wait)
        print(server.port, flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
