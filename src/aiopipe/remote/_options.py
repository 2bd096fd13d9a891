"""Storage options: credentials, endpoints and tuning, from the environment unless overridden.

``storage_options`` (a dict given to ``from_files`` and to a reader) overrides the environment,
key by key. Keys (all optional):

- S3: ``endpoint_url`` (``AWS_ENDPOINT_URL``), ``access_key_id`` (``AWS_ACCESS_KEY_ID``),
  ``secret_access_key`` (``AWS_SECRET_ACCESS_KEY``), ``session_token`` (``AWS_SESSION_TOKEN``),
  ``region`` (``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1``), ``allow_http``
  (``AWS_ALLOW_HTTP``; implied by an ``http://`` endpoint), ``anonymous`` (unsigned requests).
- GCS: ``endpoint_url`` (``STORAGE_EMULATOR_HOST``), ``token`` (an OAuth2 access token),
  ``credentials`` (a JSON key file: ``GOOGLE_APPLICATION_CREDENTIALS``), ``anonymous``.
- HTTP(S): ``headers`` (a dict sent with every request).
- All: ``timeout`` (seconds without progress before a request fails and is retried, checked
  every eighth of it; 30),
  ``retry`` (a :class:`~aiopipe.remote.RetryPolicy`), ``range_bytes`` (bytes per ranged GET;
  8 MiB), ``readahead`` (ranged GETs in flight per file; 4).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from ._retry import RetryPolicy

__all__ = ["Options", "check_storage_options", "resolve_options"]

_KEYS = {
    "endpoint_url", "access_key_id", "secret_access_key", "session_token", "region", "allow_http",
    "anonymous", "token", "credentials", "headers", "timeout", "retry", "range_bytes", "readahead",
}  # fmt: skip
_TRUE = ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class Options:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    allow_http: bool = False
    anonymous: bool = False
    token: str | None = None
    credentials: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    range_bytes: int = 8 << 20
    readahead: int = 4


def check_storage_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a ``storage_options=`` argument when the pipeline is built."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"storage_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - _KEYS)
    if unknown:
        raise ValueError(
            f"storage_options: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(_KEYS))}"
        )
    retry = options.get("retry")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"storage_options['retry'] must be a RetryPolicy, got {retry!r}")
    for key in ("range_bytes", "readahead"):
        value = options.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"storage_options[{key!r}] must be an int >= 1, got {value!r}")
    timeout = options.get("timeout", 1.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"storage_options['timeout'] must be seconds > 0, got {timeout!r}")
    return dict(options)


def resolve_options(scheme: str, overrides: Mapping[str, Any] | None) -> Options:
    """The options for ``scheme``: the environment, then ``overrides`` on top."""
    env = os.environ
    o = dict(check_storage_options(overrides))
    base: dict[str, Any] = {}
    if scheme == "s3":
        base = {
            "endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            "access_key_id": env.get("AWS_ACCESS_KEY_ID"),
            "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
            "session_token": env.get("AWS_SESSION_TOKEN"),
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            "allow_http": env.get("AWS_ALLOW_HTTP", "").lower() in _TRUE,
        }
    elif scheme == "gs":
        host = env.get("STORAGE_EMULATOR_HOST")
        if host and "://" not in host:
            host = "http://" + host
        base = {
            "endpoint_url": host,
            "credentials": env.get("GOOGLE_APPLICATION_CREDENTIALS"),
            "allow_http": bool(host),
        }
    base.update({k: v for k, v in o.items() if v is not None})
    if "headers" in base:
        base["headers"] = tuple(dict(base["headers"]).items())
    endpoint = base.get("endpoint_url")
    if endpoint and str(endpoint).startswith("http://") and "allow_http" not in o:
        base["allow_http"] = True
    return Options(**base)
