"""Google Cloud Storage through its JSON API: media downloads with ranges, paged listings.

Credentials: ``storage_options={'token': ...}`` (an OAuth2 access token), or the JSON file in
``GOOGLE_APPLICATION_CREDENTIALS`` of type ``authorized_user`` (a refresh token, exchanged for
an access token over HTTP), or anonymous (public buckets, and ``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import anyio

from ._errors import RemoteError
from ._store import Store
from ._url import ObjectUrl

__all__ = ["GcsStore"]

_API = "https://storage.googleapis.com"
_TOKEN_URL = "https://oauth2.googleapis.com/token"
# Access tokens fetched from a credentials file: (token, expiry), shared by every lane.
_TOKENS: dict[str, tuple[str, float]] = {}


class GcsStore(Store):
    def base(self) -> str:
        ep = (self.options.endpoint_url or _API).rstrip("/")
        if ep.startswith("http://") and not self.options.allow_http:
            raise ValueError(f"GCS endpoint {ep} is plain http: pass allow_http=True to allow it")
        return ep

    async def request(
        self,
        method: str,
        url: ObjectUrl,
        headers: dict[str, str],
        *,
        listing: str = "",
        max_body: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        bucket = quote(url.bucket, safe="")
        if listing:
            target = f"{self.base()}/storage/v1/b/{bucket}/o?{listing}"
        else:
            target = f"{self.base()}/storage/v1/b/{bucket}/o/{quote(url.key, safe='')}?alt=media"
        token = await self._token()
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        resp = await self.client.request(method, target, headers, max_body=max_body)
        return resp.status, resp.headers, resp.body

    async def list(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        page = ""
        where = ObjectUrl("gs", bucket, prefix)
        while True:
            query = f"prefix={quote(prefix, safe='')}&fields=items(name),nextPageToken"
            if page:
                query += f"&pageToken={quote(page, safe='')}"
            body = await self.listing(where, f"gs://{bucket}/{prefix}", query)
            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise RemoteError(f"gs://{bucket}/{prefix}: unreadable listing: {exc}") from None
            keys += [item["name"] for item in doc.get("items", [])]
            page = doc.get("nextPageToken", "")
            if not page:
                return sorted(keys)

    async def _token(self) -> str | None:
        o = self.options
        if o.anonymous:
            return None
        if o.token:
            return o.token
        if not o.credentials or o.endpoint_url:
            return None
        cached = _TOKENS.get(o.credentials)
        if cached and cached[1] > time.time() + 60:
            return cached[0]
        token, expiry = await self._refresh(o.credentials)
        _TOKENS[o.credentials] = (token, expiry)
        return token

    async def _refresh(self, path: str) -> tuple[str, float]:
        try:
            info = json.loads(await anyio.Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise PermissionError(
                f"GOOGLE_APPLICATION_CREDENTIALS={path}: unreadable: {exc}"
            ) from None
        kind = info.get("type")
        if kind != "authorized_user":
            raise PermissionError(
                f"GOOGLE_APPLICATION_CREDENTIALS={path} holds {kind!r} credentials; aiopipe reads "
                "'authorized_user' files (gcloud auth application-default login), or pass "
                "storage_options={'token': <access token>}"
            )
        form = (
            f"grant_type=refresh_token&client_id={quote(info['client_id'])}"
            f"&client_secret={quote(info['client_secret'])}"
            f"&refresh_token={quote(info['refresh_token'])}"
        ).encode()
        resp = await self.client.request(
            "POST", _TOKEN_URL, {"Content-Type": "application/x-www-form-urlencoded"}, form
        )
        if resp.status != 200:
            raise PermissionError(f"{path}: token refresh failed (HTTP {resp.status})")
        doc = json.loads(resp.body)
        return doc["access_token"], time.time() + float(doc.get("expires_in", 3600))
