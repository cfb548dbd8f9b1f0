"""Links by slug, cached: the landing is the hottest path, and a slug rarely changes. While the
database cannot be read, a link looked up before is served from memory (a visitor is sent on)."""

from __future__ import annotations

from xtracker_server.caches import ReadCache
from xtracker_server.domain.entities import Link
from xtracker_server.store.api import Store


class LinkCache(ReadCache[str, Link | None]):
    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        super().__init__(store.resolve_slug, ttl_s=ttl_s, max_entries=50_000, stale_on_fault=True)
