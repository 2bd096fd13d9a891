"""A small HTTP/1.1 client on anyio streams: keep-alive pools, timeouts, both event loops.

Why our own: reading objects is a stream of small GETs, and the client's CPU per request sets
the ceiling. Measured with ``benchmarks/remote_clients.py`` (16 KiB GETs, 256 in flight, 20 ms
latency, requests per client CPU-second on the shared 2-core machine): this client 2,900 on
asyncio and 1,800 on trio; aiohttp 2,000 (asyncio only); obstore 1,900 on asyncio and 1,500 on
trio through a thread bridge; httpx 100 (its pool scans every connection per request; under trio
it failed with "socket already closed"). It speaks what object stores need: GET/HEAD/POST with a
small body, ``Content-Length`` or chunked responses, TLS through anyio; no redirects, cookies or
compression.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.streams.tls

from ._errors import RemoteError, TransientError

__all__ = ["HttpClient", "Response"]

_RECV = 1 << 16
_MAX_HEAD = 1 << 16


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Conn:
    """A keep-alive connection (an anyio stream) and the bytes received past the last response."""

    __slots__ = ("buf", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def fill(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            data = await self.stream.receive(_RECV)
        self.buf += data

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Feed(asyncio.Protocol):
    """asyncio's side of a plain-http connection: bytes land in ``buf``, a waiter is woken.

    On asyncio, anyio's stream pauses and resumes reading around every receive (two epoll
    changes per call) and adds a guard per call; on many small responses that made requests cost
    ~4x the CPU of a bare protocol (measured: 2,400 vs 11,000 requests per CPU-second).
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.have = 0  # bytes in ``buf`` when ``waiter`` began
        self.watchdog: _Watchdog | None = None
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        """End the wait, if any: bytes came, or the end of the stream (``EndOfStream`` if no
        byte came first)."""
        w = self.waiter
        if w is None:
            return
        self.waiter = None
        if self.watchdog is not None:
            self.watchdog.waiting.pop(w, None)
        if w.done():  # cancelled, or failed by the watchdog
            return
        if self.eof and len(self.buf) == self.have:
            w.set_exception(anyio.EndOfStream())
        else:
            w.set_result(None)


class _Watchdog:
    """Fails the waits of one client's connections that passed their deadline.

    One timer per client and event loop, not one per wait: ``loop.call_later`` and the cancel
    after it cost ~8 % of a 16 KiB GET's CPU. The timer runs only while something waits, every
    eighth of the timeout, so a wait fails between 1x and 1.125x the timeout.
    """

    __slots__ = ("_handle", "_period", "loop", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self._period = timeout / 8
        self.waiting: dict[asyncio.Future[None], float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, waiter: asyncio.Future[None], timeout: float) -> None:
        self.waiting[waiter] = self.loop.time() + timeout
        if self._handle is None:
            self._handle = self.loop.call_later(self._period, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        for waiter in [w for w, deadline in self.waiting.items() if deadline <= now]:
            del self.waiting[waiter]
            _expire(waiter)
        if self.waiting:
            self._handle = self.loop.call_later(self._period, self._sweep)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _AsyncioConn:
    """The asyncio fast path of :class:`_Conn` for plain http (TLS goes through anyio)."""

    __slots__ = ("buf", "feed", "watchdog")

    def __init__(self, feed: _Feed, watchdog: _Watchdog) -> None:
        self.feed = feed
        self.buf = feed.buf
        self.watchdog = feed.watchdog = watchdog  # the feed forgets its settled waits there

    async def send(self, data: bytes) -> None:
        t = self.feed.transport
        if t is None or t.is_closing() or self.feed.eof:
            raise anyio.BrokenResourceError("the connection was closed")
        t.write(data)

    def fill(self, timeout: float) -> Awaitable[None]:
        """A future done when more bytes are in ``buf`` (``EndOfStream`` at the end, a
        ``TimeoutError`` after ``timeout``).

        A future, not a coroutine: a GET's coroutines all live while it waits on the network,
        for the garbage collector to walk. The feed settles it (``_Feed._wake``) and forgets it.
        """
        feed = self.feed
        if feed.eof:
            raise anyio.EndOfStream
        watchdog = self.watchdog
        waiter = feed.waiter = watchdog.loop.create_future()
        feed.have = len(feed.buf)
        # Failed by the client's watchdog, not anyio.fail_after: a cancel scope per wait cost
        # ~40 % of a request's CPU here. Cancellation still arrives as the task's CancelledError.
        watchdog.watch(waiter, timeout)
        return waiter

    async def aclose(self) -> None:
        t = self.feed.transport
        if t is not None:
            t.abort()


class HttpClient:
    """Requests over pooled keep-alive connections; one client per event loop run.

    ``timeout`` bounds the connect and every wait for bytes (a server that stops sending raises
    ``TransientError`` after it). Use ``async with`` or ``await aclose()`` to close the pool.
    """

    def __init__(self, *, timeout: float = 30.0, max_idle: int = 1024) -> None:
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Conn | _AsyncioConn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._origins: dict[tuple[str, str], tuple[str, str, int]] = {}
        self._closed = False
        self._watchdog: _Watchdog | None = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.close()
        idle, self._idle = self._idle, {}
        with anyio.CancelScope(shield=True):
            for conns in idle.values():
                for conn in conns:
                    await conn.aclose()

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        max_body: int | None = None,
    ) -> Response:
        """Send one request and read its response.

        With ``max_body``, a longer ``Content-Length`` body is cut after ``max_body`` bytes and the
        connection closed: a whole-object GET then costs no more memory than a ranged one.
        """
        scheme, _, rest = url.partition("://")
        netloc, slash, target = rest.partition("/")
        target = slash + target.partition("#")[0] or "/"
        origin = self._origins.get((scheme, netloc))
        if origin is None:  # parsed once per server: urlsplit costs ~50 us a request
            origin = self._origins[scheme, netloc] = _origin(url)
        _, host, port = key = origin
        head = [f"{method} {target} HTTP/1.1", f"Host: {netloc}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        wire = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        # A pooled connection the server closed meanwhile fails on first use: that costs one
        # retry on a fresh connection, not an error.
        for fresh in (False, True):
            conn = None if fresh else self._take(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(url, scheme, host, port)
            try:
                resp, keep = await self._exchange(conn, wire, method, max_body)
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await conn.aclose()
                if reused and isinstance(exc, _StaleConnection):
                    continue
                if isinstance(exc, _StaleConnection):
                    raise TransientError(f"{url}: {exc}") from None
                raise
            conns = self._idle.setdefault(key, [])
            if keep and not self._closed and len(conns) < self.max_idle:
                conns.append(conn)
            else:
                await conn.aclose()
            return resp
        raise AssertionError("unreachable")

    def _watchdog_on(self, loop: asyncio.AbstractEventLoop) -> _Watchdog:
        wd = self._watchdog
        if wd is None or wd.loop is not loop:
            wd = self._watchdog = _Watchdog(loop, self.timeout)
        return wd

    def _take(self, key: tuple[str, str, int]) -> _Conn | _AsyncioConn | None:
        conns = self._idle.get(key)
        return conns.pop() if conns else None

    async def _connect(self, url: str, scheme: str, host: str, port: int) -> _Conn | _AsyncioConn:
        try:
            with anyio.fail_after(self.timeout):
                if scheme == "http" and _on_asyncio():
                    loop = asyncio.get_running_loop()
                    _, feed = await loop.create_connection(_Feed, host, port)
                    return _AsyncioConn(feed, self._watchdog_on(loop))
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port)
                if scheme == "https":
                    if self._ssl is None:
                        self._ssl = ssl.create_default_context()
                    stream = await anyio.streams.tls.TLSStream.wrap(
                        stream, hostname=host, ssl_context=self._ssl, standard_compatible=False
                    )
        except TimeoutError:
            raise TransientError(f"{url}: connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise TransientError(f"{url}: cannot connect to {host}:{port}: {exc}") from None
        return _Conn(stream)

    async def _exchange(
        self, conn: _Conn | _AsyncioConn, wire: bytes, method: str, max_body: int | None
    ) -> tuple[Response, bool]:
        try:
            await conn.send(wire)
            # The head is read here, not in a coroutine of its own: every coroutine of a GET
            # lives while it waits on the network, for the garbage collector to walk.
            buf = conn.buf
            while (end := buf.find(b"\r\n\r\n")) < 0:
                if len(buf) > _MAX_HEAD:
                    raise RemoteError("response headers larger than 64 KiB")
                await conn.fill(self.timeout)
            status, headers = _parse_head(buf, end)  # the head stays in the buffer
            start = end + 4
            if "content-length" in headers and method != "HEAD" and status not in (204, 304):
                length = int(headers["content-length"])
                if max_body is not None and length > max_body:
                    body = await self._read_exact(conn, max_body, start)
                    return Response(status, headers, body), False  # the rest is not read
                body = await self._read_exact(conn, length, start)
            else:
                del conn.buf[:start]
                if method == "HEAD" or status in (204, 304):
                    body = b""
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await self._read_chunked(conn)
                else:
                    body = await self._read_to_end(conn)
                    return Response(status, headers, body), False
        except TimeoutError:
            raise TransientError(
                f"timed out after {self.timeout} s waiting for the server"
            ) from None
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            raise _StaleConnection(f"connection lost ({type(exc).__name__}: {exc})") from None
        keep = headers.get("connection", "").lower() != "close"
        return Response(status, headers, body), keep

    async def _read_exact(self, conn: _Conn | _AsyncioConn, n: int, start: int = 0) -> bytes:
        """``n`` bytes from ``start`` in the buffer; what is before them is dropped.

        One copy of the body, from the receive buffer: a slice of the bytearray then
        ``bytes()`` of it were two, and deleting the head before the body moved it a third time.
        """
        buf = conn.buf
        while len(buf) < start + n:
            await conn.fill(self.timeout)
        with memoryview(buf) as view:
            body = bytes(view[start : start + n])
        del buf[: start + n]
        return body

    async def _read_chunked(self, conn: _Conn | _AsyncioConn) -> bytes:
        parts: list[bytes] = []
        while True:
            line = await self._read_line(conn)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while await self._read_line(conn):  # trailers, unused by object stores
                    pass
                return b"".join(parts)
            parts.append(await self._read_exact(conn, size))
            await self._read_line(conn)

    async def _read_line(self, conn: _Conn | _AsyncioConn) -> bytes:
        while (eol := conn.buf.find(b"\r\n")) < 0:
            await conn.fill(self.timeout)
        line = bytes(conn.buf[:eol])
        del conn.buf[: eol + 2]
        return line

    async def _read_to_end(self, conn: _Conn | _AsyncioConn) -> bytes:
        try:
            while True:
                await conn.fill(self.timeout)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
        body = bytes(conn.buf)
        conn.buf.clear()
        return body


def _parse_head(buf: bytearray, end: int) -> tuple[int, dict[str, str]]:
    """The status and headers of the response head ``buf[:end]``."""
    first, *lines = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(first.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise RemoteError(f"not an HTTP response: {first[:80]!r}") from None
    headers = {}
    for line in lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``; ValueError unless it is http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: expected an http:// or https:// URL")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _StaleConnection(Exception):
    """The connection broke before a complete response: retry on a fresh one, or report."""
