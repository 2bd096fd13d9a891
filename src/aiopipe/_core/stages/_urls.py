"""The core's one door to object storage: spotting URL paths, and loading ``aiopipe.remote``.

Paths are plain strings everywhere in the core; a string with an ``s3://``, ``gs://``,
``http://`` or ``https://`` scheme is read by ``aiopipe.remote`` instead of ``open()``. The
module is imported on the first URL only, so local pipelines never load it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["is_url", "remote"]

_SCHEMES = ("s3://", "gs://", "http://", "https://")


def is_url(path: object) -> bool:
    return isinstance(path, str) and path[:8].lower().startswith(_SCHEMES)


_LOADED: dict[str, ModuleType] = {}


def remote(name: str) -> ModuleType:
    """``aiopipe.remote.<name>``, imported on first use (then a dict lookup: it runs per file)."""
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = importlib.import_module(f"aiopipe.remote.{name}")
    return module
