"""Test helpers for code built on aiopipe: a conformance battery for TF-style queues, and
``ObjectServer``, an HTTP object server on 127.0.0.1 with fault injection (503s, 429s, resets,
dropped bodies, stalls) to test pipelines reading ``http://`` URLs against.

Not imported by ``import aiopipe``; use ``from aiopipe.testing import check_queue, QueueKind``.
"""

from __future__ import annotations

from ._object_server import ObjectServer as ObjectServer
from ._queue_battery import QUEUE_CHECKS as QUEUE_CHECKS
from ._queue_battery import QueueKind as QueueKind
from ._queue_battery import QueueLike as QueueLike
from ._queue_battery import check_queue as check_queue

__all__ = ("QUEUE_CHECKS", "ObjectServer", "QueueKind", "QueueLike", "check_queue")
