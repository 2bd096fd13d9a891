"""Object storage: ``s3://``, ``gs://`` and ``http(s)://`` paths for ``from_files`` and readers.

Nothing here needs importing for ordinary use: ``ap.from_files("s3://bucket/train-*.tfrecord")``
and the built-in readers load it on the first URL. Exported for configuration and for sharing:
:class:`RetryPolicy` (``storage_options={"retry": RetryPolicy(...)}``), the error classes, and
:func:`expand_url` (a glob over a listing).
"""

from __future__ import annotations

from ._errors import RemoteError as RemoteError
from ._errors import TransientError as TransientError
from ._listing import expand_url as expand_url
from ._retry import RetryPolicy as RetryPolicy
from ._url import is_url as is_url

__all__ = ("RemoteError", "RetryPolicy", "TransientError", "expand_url", "is_url")
