"""Our SigV4 signer against botocore's: the same request signs to the same Authorization."""

from __future__ import annotations

import datetime

import pytest

from aiopipe.remote._sigv4 import quote_key, sign

NOW = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "token"),
    [
        ("GET", "/bucket/" + quote_key("a b/ü+c.tfrecord"), "", {"Range": "bytes=0-99"}, None),
        ("GET", "/bucket/", "list-type=2&prefix=train%2Fpart-", {}, "session-tok"),
        ("HEAD", "/bucket/k", "", {}, None),
    ],
)
def test_matches_botocore(
    method: str, path: str, query: str, headers: dict[str, str], token: str | None
) -> None:
    botocore = pytest.importorskip("botocore")
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"http://127.0.0.1:5000{path}" + (f"?{query}" if query else "")
    ours = sign(
        method, url, headers, access_key="AK", secret_key="SK", region="eu-west-1",
        session_token=token, now=NOW,
    )  # fmt: skip
    stamp = NOW.strftime("%Y%m%dT%H%M%SZ")
    req = AWSRequest(method=method, url=url, headers=dict(headers))
    req.context["timestamp"] = stamp
    req.headers["X-Amz-Date"] = stamp
    req.headers["X-Amz-Content-SHA256"] = ours["x-amz-content-sha256"]
    if token:
        req.headers["X-Amz-Security-Token"] = token
    auth = S3SigV4Auth(Credentials("AK", "SK", token), "s3", "eu-west-1")
    string_to_sign = auth.string_to_sign(req, auth.canonical_request(req))
    theirs = auth.signature(string_to_sign, req)
    assert ours["Authorization"].endswith(f"Signature={theirs}")
    assert botocore is not None
