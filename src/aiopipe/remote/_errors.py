"""Errors of remote reads, and how an HTTP status becomes the exception a user expects.

::

    OSError
     +-- FileNotFoundError      404: the object does not exist (the message names the URL)
     +-- PermissionError        401/403: access denied (names the URL)
     +-- RemoteError            any other failure, naming the URL and the byte range
          +-- TransientError    retryable: 5xx, 408, 429, a reset or dropped connection, a timeout

Raised by the stores (``_s3``, ``_gcs``, ``_http_store``); ``TransientError`` reaches the user only
when the retries are used up, with a note saying how many attempts were made.
"""

from __future__ import annotations

__all__ = ["RemoteError", "TransientError", "status_error"]


class RemoteError(OSError):
    """A remote read failed; the message names the URL and the byte range."""


class TransientError(RemoteError):
    """A failure worth retrying; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def status_error(
    status: int, url: str, what: str, body: bytes = b"", retry_after: float | None = None
) -> OSError:
    """The exception for an unexpected HTTP ``status`` answering ``what`` (e.g. "bytes 0-99")."""
    detail = _detail(body)
    if status == 404:
        return FileNotFoundError(f"{url}: no such object (HTTP 404){detail}")
    if status in (401, 403):
        return PermissionError(f"{url}: access denied (HTTP {status}){detail}")
    msg = f"{url}: HTTP {status} reading {what}{detail}"
    if status >= 500 or status in (408, 429):
        return TransientError(msg, retry_after=retry_after)
    return RemoteError(msg)


def _detail(body: bytes) -> str:
    """The first words of an error body (S3 and GCS explain themselves there)."""
    text = body[:300].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""
