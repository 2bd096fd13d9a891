"""Executors for ``map(executor=...)``: where a stage's function runs.

``"thread"`` and ``"process"`` are built in; :class:`ProcessExecutor` is ``"process"`` with its
settings spelled out (start method, shared-memory threshold and budget). ``RayExecutor`` and
``RayActorExecutor`` run the work on a Ray cluster; they need the ``ray`` extra
(``pip install 'aiopipe[ray]'``), and Ray is imported only when one is created.
"""

from __future__ import annotations

from ._process import ProcessExecutor as ProcessExecutor
from ._process import RemoteError as RemoteError
from ._process import WorkerProcessError as WorkerProcessError
from ._ray import RayActorExecutor as RayActorExecutor
from ._ray import RayExecutor as RayExecutor

__all__ = (
    "ProcessExecutor",
    "RayActorExecutor",
    "RayExecutor",
    "RemoteError",
    "WorkerProcessError",
)
