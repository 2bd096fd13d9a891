"""AWS Signature Version 4 for S3 requests: a small implementation of the published algorithm.

Checked against botocore's signer in ``tests/remote/test_sigv4.py`` (same headers in, same
``Authorization`` out). Only what reads need: header signing (no presigned URLs), the payload
hash of the request body (empty for GET/HEAD).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

__all__ = ["sign"]

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    access_key: str,
    secret_key: str,
    region: str,
    session_token: str | None = None,
    body: bytes = b"",
    service: str = "s3",
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``x-amz-date``, ``x-amz-content-sha256`` (and the session token) and the
    ``Authorization`` header signing them, for ``method url``. The URL path must be percent-encoded
    already (S3 keys are encoded once, not twice)."""
    now = now or datetime.datetime.now(datetime.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urlsplit(url)
    payload = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    out = dict(headers)
    out["host"] = parts.netloc
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload
    if session_token:
        out["x-amz-security-token"] = session_token
    canon = {k.lower(): " ".join(str(v).split()) for k, v in out.items()}
    names = sorted(canon)
    request = "\n".join(
        [
            method,
            parts.path or "/",
            _canonical_query(parts.query),
            "".join(f"{n}:{canon[n]}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_key).encode(), day)
    for step in (region, service, "aws4_request"):
        key = _hmac(key, step)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    del out["host"]  # the client sends Host itself, with the same value
    return out


def quote_key(key: str) -> str:
    """An S3 key as it goes into a URL path (and into the signature)."""
    return quote(key, safe="/~")
