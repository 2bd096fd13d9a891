"""``Session``: the stores (and their connection pools) one run of a read stage uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from ._gcs import GcsStore
from ._http import HttpClient
from ._http_store import HttpStore
from ._options import resolve_options
from ._s3 import S3Store
from ._store import Store
from ._url import ObjectUrl

__all__ = ["Session"]

_KINDS: dict[str, type[Store]] = {
    "s3": S3Store,
    "gs": GcsStore,
    "http": HttpStore,
    "https": HttpStore,
}


class Session:
    """Stores by (scheme, options), created on first use; ``aclose()`` closes their connections.

    Connections live in one event loop, so a session belongs to one run (the lanes of a read
    stage, or one ``reader(url)`` iteration) and is closed when it ends.
    """

    def __init__(self, *, max_idle: int = 1024) -> None:
        self._stores: dict[tuple[str, int], Store] = {}
        self.max_idle = max_idle  # idle connections each store keeps (one per concurrent user)

    def store(self, url: ObjectUrl, storage_options: Mapping[str, Any] | None) -> Store:
        key = (url.scheme, id(storage_options))
        store = self._stores.get(key)
        if store is None:
            options = resolve_options(url.scheme, storage_options)
            client = HttpClient(timeout=options.timeout, max_idle=self.max_idle)
            store = self._stores[key] = _KINDS[url.scheme](client, options)
        return store

    async def aclose(self) -> None:
        stores, self._stores = self._stores, {}
        with anyio.CancelScope(shield=True):
            for store in stores.values():
                await store.client.aclose()
