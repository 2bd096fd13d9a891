"""The reader protocol: ``reader(path)`` is an async iterable of records.

Readers whose parsing is plain blocking file I/O subclass :class:`BlockingReader` and only write a
sync generator, :meth:`BlockingReader.iter_records`. aiopipe then runs that generator in worker
threads, pulling many records per thread hop (a hop costs tens of microseconds, a record often
less), and the ``.read()`` stage can read several small files in one hop. The event loop never
blocks on file I/O.
"""

from __future__ import annotations

import abc
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import anyio

from ._urls import is_url, remote

__all__ = ["BlockingReader", "Decoder", "pull_records"]

# One thread hop reads for at most this long or this many records: long enough to amortise the
# hop, short enough that records flow downstream promptly and memory stays small.
HOP_SECONDS = 0.002
HOP_RECORDS = 1024


class Decoder(Protocol):
    """A reader's incremental parser, fed the bytes of an object as they arrive (URL paths)."""

    def feed(self, chunk: bytes, out: list[Any]) -> None:
        """Append to ``out`` the records that ``chunk`` completes (in order)."""

    def end(self, out: list[Any]) -> None:
        """The stream ended: append the last records, or raise for a truncated file."""


class BlockingReader(abc.ABC):
    """Base class for readers that parse a file with blocking I/O in a sync generator.

    URL paths (``s3://``, ``gs://``, ``http(s)://``) are read without threads waiting on the
    network: downloads run on the event loop and feed :meth:`decoder`, which the built-in
    readers implement; ``storage_options`` (credentials, endpoint, retries) apply to them.
    """

    storage_options: Mapping[str, Any] | None = None

    # True when a bad record can be skipped alone: ``iter_records_from(path, i + 1)`` reads on
    # after a record ``i`` that failed (text lines: yes; a TFRecord length or a compressed stream:
    # no, the rest of the file is lost). Used by ``read(on_error="skip")``.
    resyncs: bool = False

    @abc.abstractmethod
    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        """Yield the records of ``path`` in file order; ``(key, record)`` pairs when ``keys``.

        Runs in a worker thread. Raise ``FileNotFoundError``/``PermissionError`` for unreadable
        files and ``CorruptRecordError`` for bytes that break the format.
        """

    def iter_records_from(self, path: str, start: int, *, keys: bool = False) -> Iterator[Any]:
        """The records of ``path`` from record ``start`` on (0-based): how a retried file resumes
        after the records it delivered. The default reads and drops the first ``start``; a
        reader that can pass over records without parsing them overrides it."""
        records = self.iter_records(path, keys=keys)
        for _ in itertools.islice(records, start):
            pass
        return records

    def decoder(self, path: str, *, keys: bool, size: int | None) -> Decoder:
        """An incremental parser for the bytes of ``path`` (a URL; ``size`` when known)."""
        raise TypeError(
            f"{type(self).__name__} cannot read URLs such as {path!r}: it has no decoder(); "
            "implement BlockingReader.decoder() to parse bytes as they arrive"
        )

    def describe(self, path: str, index: int) -> str:
        """Where record ``index`` (0-based) of ``path`` came from, for error notes."""
        return f"record {index} of {path}"

    def __call__(self, path: str | os.PathLike[str]) -> AsyncIterator[Any]:
        name = os.fspath(path)
        if is_url(name):
            return remote("_lane").iter_url(self, name, False)  # type: ignore[no-any-return]
        return _threaded(self.iter_records(name, keys=False))

    def keyed(self, path: str | os.PathLike[str]) -> AsyncIterator[tuple[str, Any]]:
        """The records of ``path`` as ``(key, record)`` pairs with TensorFlow's keys."""
        name = os.fspath(path)
        if is_url(name):
            return remote("_lane").iter_url(self, name, True)  # type: ignore[no-any-return]
        return _threaded(self.iter_records(name, keys=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def pull_records(it: Iterator[Any], out: list[Any]) -> bool | Exception:
    """Move records from ``it`` into ``out`` for one hop's budget.

    Returns True when ``it`` is exhausted, False when the budget ran out, or the exception the
    reader raised; the records before it stay in ``out`` so that none is lost.
    """
    deadline = time.perf_counter() + HOP_SECONDS
    append = out.append
    limit = len(out) + HOP_RECORDS
    try:
        for record in it:
            append(record)
            if len(out) >= limit or time.perf_counter() >= deadline:
                return False
    except Exception as exc:
        return exc
    return True


async def _threaded(it: Iterator[Any]) -> AsyncIterator[Any]:
    try:
        done: bool | Exception = False
        while done is False:
            chunk: list[Any] = []
            done = await anyio.to_thread.run_sync(pull_records, it, chunk)
            for record in chunk:
                yield record
        if isinstance(done, Exception):
            raise done
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
