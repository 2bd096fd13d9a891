"""What every object store does here: ranged GETs with errors named by URL, and listings.

A store turns ``(bucket, key, byte range)`` into an HTTP request (``_s3``, ``_gcs``,
``_http_store`` say how) and the answer into bytes plus the object's total size, or into the
exception a user expects (``_errors``). Retries happen one level up, per range (``_stream``).
"""

from __future__ import annotations

import abc
import email.utils
import time

import anyio

from ._errors import RemoteError, TransientError, status_error
from ._http import HttpClient
from ._options import Options
from ._url import ObjectUrl

__all__ = ["Store", "describe_range"]


def describe_range(start: int, stop: int | None) -> str:
    return f"bytes {start}-{stop - 1}" if stop is not None else f"bytes {start}-"


class Store(abc.ABC):
    def __init__(self, client: HttpClient, options: Options) -> None:
        self.client = client
        self.options = options

    @abc.abstractmethod
    async def request(
        self,
        method: str,
        url: ObjectUrl,
        headers: dict[str, str],
        *,
        listing: str = "",
        max_body: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send ``method`` for the object ``url`` (or, with ``listing``, a listing request);
        ``max_body`` caps the body read (see ``HttpClient.request``)."""

    @abc.abstractmethod
    async def list(self, bucket: str, prefix: str) -> list[str]:
        """The keys under ``prefix`` in ``bucket``, sorted."""

    async def listing(self, where: ObjectUrl, name: str, query: str) -> bytes:
        """The body of one listing request (retried), or the error naming ``name``."""

        async def once() -> bytes:
            status, head, body = await self.request("GET", where, {}, listing=query)
            if status != 200:
                raise status_error(status, name, "a listing", body, _retry_after(head))
            return body

        return await self.options.retry.call(once)

    async def get(self, url: ObjectUrl, start: int, stop: int | None) -> tuple[bytes, int | None]:
        """Bytes ``[start, stop)`` of the object and its total size (None when unknown),
        retried under the store's policy (``options.retry``).

        The first range (``start == 0``) is asked for without a ``Range`` header, the body cut
        at ``stop``: a small object then costs the server a plain GET (measured on W6: ranged
        GETs cost our test server 60 % more CPU, and real stores bill them alike), and a large
        one the same bytes as a ranged GET, plus a new connection for the next range.

        The retries are a loop here rather than a wrapper around a single try: with hundreds of
        GETs in flight, every coroutine frame a GET keeps alive while it waits is work for the
        garbage collector.
        """
        whole = start == 0 and stop is not None
        headers = {} if whole else {"Range": f"bytes={start}-{'' if stop is None else stop - 1}"}
        attempt = 0
        while True:
            try:
                try:
                    status, head, body = await self.request(
                        "GET", url, headers, max_body=stop if whole else None
                    )
                except RemoteError as exc:
                    raise _named(exc, url, start, stop) from None
                return _ranged(status, head, body, url, start, stop)
            except Exception as exc:
                attempt += 1
                wait = self.options.retry.wait_after(exc, attempt)
                if wait is None:
                    raise
            await anyio.sleep(wait)


def _named(exc: RemoteError, url: ObjectUrl, start: int, stop: int | None) -> RemoteError:
    """A failure of the request itself (connection, timeout), named by URL and range."""
    kind = TransientError if isinstance(exc, TransientError) else RemoteError
    detail = str(exc).removeprefix(f"{url}: ")  # the client may have named the URL already
    return kind(f"{url}: {describe_range(start, stop)}: {detail}")


def _ranged(
    status: int, head: dict[str, str], body: bytes, url: ObjectUrl, start: int, stop: int | None
) -> tuple[bytes, int | None]:
    """The bytes and total size a GET's response gives, or its status's error."""
    if status == 206:
        return body, _total(head.get("content-range", ""))
    if status == 200:  # the whole object (or its first ``stop`` bytes), or a range ignored
        length = head.get("content-length", "")
        total = int(length) if length.isdigit() else len(body)
        return body[start:stop], total
    if status == 416:
        return b"", None if start else 0  # an empty object has no byte 0
    raise status_error(status, str(url), describe_range(start, stop), body, _retry_after(head))


def _total(content_range: str) -> int | None:
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - time.time())
