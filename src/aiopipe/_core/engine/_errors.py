"""The exception vocabulary of aiopipe.

::

    Exception
    ├── AiopipeError            base of everything aiopipe raises on its own account
    │   ├── OutOfRangeError     (also anyio.EndOfStream) input exhausted: a closed queue
    │   │                       cannot satisfy a dequeue; raised by queues, used by runners
    │   ├── QueueClosedError    (also anyio.ClosedResourceError) enqueue into a closed queue
    │   ├── CorruptRecordError  (also ValueError) a reader met bytes that break the format;
    │   │                       carries ``.path`` and ``.offset``
    │   └── DecodeError         (also ValueError) a decoder could not parse a record

Exceptions raised by user code inside a pipeline are never wrapped: they reach the consumer as the
same object, with a PEP 678 note naming the stage and element (see ``_core._notes``).
"""

from __future__ import annotations

import os

import anyio

__all__ = [
    "AiopipeError",
    "CorruptRecordError",
    "DecodeError",
    "OutOfRangeError",
    "QueueClosedError",
]


class AiopipeError(Exception):
    """Base class of the errors aiopipe raises itself."""


class OutOfRangeError(AiopipeError, anyio.EndOfStream):
    """Input is exhausted: a closed queue holds fewer elements than were requested."""


class QueueClosedError(AiopipeError, anyio.ClosedResourceError):
    """An enqueue was attempted on (or cancelled by) a closed queue."""


class CorruptRecordError(AiopipeError, ValueError):
    """A file does not follow its record format; ``path`` and ``offset`` say where."""

    def __init__(self, message: str, *, path: str | os.PathLike[str], offset: int) -> None:
        super().__init__(message)
        self.path = os.fspath(path)
        self.offset = offset

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments defeat the default pickling (process executors need it).
        return (_rebuild_corrupt, (str(self), self.path, self.offset))


def _rebuild_corrupt(message: str, path: str, offset: int) -> CorruptRecordError:
    return CorruptRecordError(message, path=path, offset=offset)


class DecodeError(AiopipeError, ValueError):
    """A decoder could not turn a record into values; the message names the field."""
