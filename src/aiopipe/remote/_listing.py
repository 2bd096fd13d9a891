"""Globs over object listings, for ``from_files('s3://bucket/prefix/*.tfrecord')``.

``*``, ``?`` and ``[...]`` match within one ``/``-separated segment, as a local glob does; the
listing asks for the keys under the pattern's longest literal prefix only.
"""

from __future__ import annotations

import fnmatch
import glob
import threading
from collections.abc import Mapping
from typing import Any

import anyio

from ._session import Session
from ._url import ObjectUrl, parse_url

__all__ = ["expand_url"]


def expand_url(pattern: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The URLs ``pattern`` names: itself without wildcards, else the sorted matching keys.

    Lists in a thread of its own (with its own event loop), so it works from sync code and from
    inside a running event loop alike. ``FileNotFoundError`` naming the pattern when none match.
    """
    url = parse_url(pattern)
    if url.scheme in ("http", "https"):
        if "*" in url.key or "[" in url.key:
            raise ValueError(
                f"cannot expand {pattern!r}: plain HTTP has no listing, so globs are for s3:// "
                "and gs:// only; pass the URLs as a list"
            )
        return [pattern]  # a "?" starts the query of a (presigned) URL, not a wildcard
    if not glob.has_magic(url.key):
        return [pattern]
    cut = min(i for i, c in enumerate(url.key) if c in "*?[")
    prefix = url.key[:cut]
    result: list[list[str]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(anyio.run(_list, url, prefix, storage_options))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="aiopipe-list")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    parts = url.key.split("/")
    found = [
        str(ObjectUrl(url.scheme, url.bucket, key))
        for key in result[0]
        if _matches(key.split("/"), parts)
    ]
    if not found:
        raise FileNotFoundError(f"from_files: no object matches {pattern!r}")
    return found


def _matches(key: list[str], pattern: list[str]) -> bool:
    return len(key) == len(pattern) and all(
        fnmatch.fnmatchcase(k, p) for k, p in zip(key, pattern, strict=True)
    )


async def _list(
    url: ObjectUrl, prefix: str, storage_options: Mapping[str, Any] | None
) -> list[str]:
    session = Session()
    try:
        return await session.store(url, storage_options).list(url.bucket, prefix)
    finally:
        await session.aclose()
