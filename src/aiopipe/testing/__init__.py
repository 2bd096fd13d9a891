"""Test helpers for code built on aiopipe: a conformance battery for TF-style queues,
``check_resume`` (exact save/load at many cut points, for any pipeline), and
``ObjectServer``, an HTTP object server on 127.0.0.1 with fault injection (503s, 429s, resets,
dropped bodies, stalls) to test pipelines reading ``http://`` URLs against.

Not imported by ``import aiopipe``; use ``from aiopipe.testing import check_queue, QueueKind``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._queue_battery import QUEUE_CHECKS as QUEUE_CHECKS
from ._queue_battery import QueueKind as QueueKind
from ._queue_battery import QueueLike as QueueLike
from ._queue_battery import check_queue as check_queue
from ._resume import ResumeReport as ResumeReport
from ._resume import check_resume as check_resume

if TYPE_CHECKING:
    from ._object_server import ObjectServer as ObjectServer

__all__ = (
    "QUEUE_CHECKS",
    "ObjectServer",
    "QueueKind",
    "QueueLike",
    "ResumeReport",
    "check_queue",
    "check_resume",
)


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``python -m aiopipe.testing._object_server`` (how the
    # benchmarks start it in a process of its own) does not find its module already imported.
    if name == "ObjectServer":
        from ._object_server import ObjectServer

        return ObjectServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
