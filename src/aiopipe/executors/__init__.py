"""Executors for ``map(executor=...)``: where a stage's function runs.

``"thread"`` and ``"process"`` are built in; :class:`ProcessExecutor` is ``"process"`` with its
settings spelled out (start method, shared-memory threshold and budget).
"""

from __future__ import annotations

from ._process import ProcessExecutor as ProcessExecutor
from ._process import RemoteError as RemoteError
from ._process import WorkerProcessError as WorkerProcessError

__all__ = ("ProcessExecutor", "RemoteError", "WorkerProcessError")
