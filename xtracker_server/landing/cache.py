"""Links by slug, cached: the landing is the hottest path, and a slug rarely changes.

An entry lives ``ttl_s`` seconds, so a change made by the CLI in another process is seen
within that time; changes through this server's admin API drop the entry at once."""

from __future__ import annotations

import time

from xtracker_server.store.links import Link, resolve_slug
from xtracker_server.store.runtime import Store

_MAX_ENTRIES = 50_000


class LinkCache:
    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[Link | None, float]] = {}

    async def get(self, slug: str) -> Link | None:
        now = time.monotonic()
        hit = self._entries.get(slug)
        if hit is not None and hit[1] > now:
            return hit[0]
        link = await self._store.read(resolve_slug, slug)
        if len(self._entries) >= _MAX_ENTRIES:  # scanners probing random slugs
            self._entries.clear()
        self._entries[slug] = (link, now + self._ttl_s)
        return link

    def forget(self, slug: str) -> None:
        self._entries.pop(slug, None)
