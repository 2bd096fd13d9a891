"""Which paths are URLs, and their parts: ``s3://bucket/key``, ``gs://bucket/key``, ``http(s)://``."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SCHEMES", "ObjectUrl", "is_url", "parse_url"]

SCHEMES = ("s3", "gs", "http", "https")


def is_url(path: object) -> bool:
    """True for ``str`` paths with a scheme aiopipe reads remotely."""
    return isinstance(path, str) and path.partition("://")[0].lower() in SCHEMES and "://" in path


class ObjectUrl(NamedTuple):
    scheme: str  # "s3", "gs", "http" or "https"
    bucket: str  # the bucket; for http(s), "host[:port]"
    key: str  # the object key, without a leading "/" (for http(s): the path and query)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


def parse_url(url: str) -> ObjectUrl:
    """Split ``url``; ``ValueError`` saying what was expected when it is not one we read.

    Bucket keys are taken verbatim after the bucket (``?`` and ``#`` are legal in S3 and GCS
    keys); an http(s) URL keeps its query and loses its fragment.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    netloc, _, key = rest.partition("/")
    if not sep or scheme not in SCHEMES or not netloc:
        raise ValueError(
            "expected a URL like s3://bucket/key, gs://bucket/key or https://host/path, "
            f"got {url!r}"
        )
    if scheme in ("http", "https"):
        key = key.partition("#")[0]
    return ObjectUrl(scheme, netloc, key)
