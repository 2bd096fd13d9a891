"""Plain ``http(s)://`` URLs: each URL is an object; ranged GETs; no listing (no globs)."""

from __future__ import annotations

from ._store import Store
from ._url import ObjectUrl

__all__ = ["HttpStore"]


class HttpStore(Store):
    async def request(
        self,
        method: str,
        url: ObjectUrl,
        headers: dict[str, str],
        *,
        listing: str = "",
        max_body: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        extra = self.options.headers
        resp = await self.client.request(
            method,
            f"{url.scheme}://{url.bucket}/{url.key}",
            {**dict(extra), **headers} if extra else headers,
            max_body=max_body,
        )
        return resp.status, resp.headers, resp.body

    async def list(self, bucket: str, prefix: str) -> list[str]:
        raise ValueError(
            f"cannot list http(s)://{bucket}/{prefix}: plain HTTP has no listing, so globs are "
            "for s3:// and gs:// only; pass the URLs as a list"
        )
