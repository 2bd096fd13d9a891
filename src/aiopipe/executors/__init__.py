"""Executors that run a ``map`` stage's work elsewhere (``map(fn, executor=...)``).

``RayExecutor`` and ``RayActorExecutor`` need the ``ray`` extra: ``pip install 'aiopipe[ray]'``;
Ray is imported only when one is created.
"""

from __future__ import annotations

from ._ray import RayActorExecutor as RayActorExecutor
from ._ray import RayExecutor as RayExecutor

__all__ = ("RayActorExecutor", "RayExecutor")
