"""S3 (and S3-protocol servers): path-style URLs on a custom endpoint, SigV4-signed requests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

from ._errors import RemoteError
from ._sigv4 import quote_key, sign
from ._store import Store
from ._url import ObjectUrl

__all__ = ["S3Store"]


class S3Store(Store):
    def endpoint(self, bucket: str) -> tuple[str, str]:
        """(base URL, path prefix) for ``bucket``: path-style on a custom endpoint."""
        ep = self.options.endpoint_url
        if ep:
            ep = ep.rstrip("/")
            if ep.startswith("http://") and not self.options.allow_http:
                raise ValueError(
                    f"S3 endpoint {ep} is plain http: set AWS_ALLOW_HTTP=true or "
                    "storage_options={'allow_http': True} to allow it"
                )
            return ep, f"/{bucket}"
        region = self.options.region
        if "." in bucket:  # a dotted name breaks the TLS wildcard of virtual-hosted style
            return f"https://s3.{region}.amazonaws.com", f"/{bucket}"
        return f"https://{bucket}.s3.{region}.amazonaws.com", ""

    async def request(
        self,
        method: str,
        url: ObjectUrl,
        headers: dict[str, str],
        *,
        listing: str = "",
        max_body: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        base, prefix = self.endpoint(url.bucket)
        target = (
            f"{base}{prefix}/{quote_key(url.key)}" if not listing else f"{base}{prefix}/?{listing}"
        )
        o = self.options
        if not o.anonymous and o.access_key_id and o.secret_access_key:
            headers = sign(
                method,
                target,
                headers,
                access_key=o.access_key_id,
                secret_key=o.secret_access_key,
                region=o.region,
                session_token=o.session_token,
            )
        resp = await self.client.request(method, target, headers, max_body=max_body)
        return resp.status, resp.headers, resp.body

    async def list(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        token = ""
        where = ObjectUrl("s3", bucket, prefix)
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            body = await self.listing(where, f"s3://{bucket}/{prefix}", query)
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise RemoteError(f"s3://{bucket}/{prefix}: unreadable listing: {exc}") from None
            items = {_local(e.tag): e for e in root}
            keys += [_text(c, "Key") for c in root if _local(c.tag) == "Contents"]
            truncated = items.get("IsTruncated")
            token = _text(root, "NextContinuationToken")
            if truncated is None or (truncated.text or "").lower() != "true" or not token:
                return sorted(keys)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text(elem: ET.Element, name: str) -> str:
    for child in elem:
        if _local(child.tag) == name:
            return child.text or ""
    return ""
