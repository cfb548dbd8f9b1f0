"""Read-through caches of hot lookups (link by slug, a space's postback aliases).

An entry lives ``ttl_s`` seconds, so a change made by the CLI in another process is seen
within that time; changes through this server's admin API drop the entry at once
(``forget``). A cache that reaches ``max_entries`` (scanners probing random keys) starts over."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from xtracker_server.store.runtime import Store

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    def __init__(
        self,
        store: Store,
        load: Callable[[sqlite3.Connection, K], V],
        *,
        ttl_s: float,
        max_entries: int,
    ) -> None:
        self._store = store
        self._load = load
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}

    async def get(self, key: K) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        value = await self._store.read(self._load, key)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (value, now + self._ttl_s)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
