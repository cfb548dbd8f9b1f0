"""Read-through caches of hot lookups: links by slug (landing/cache.py), a space's postback
aliases (``AliasCache``).

An entry lives ``ttl_s`` seconds, so a change made by the CLI in another process is seen
within that time; changes through this server's admin API drop the entry at once
(``forget``). A cache that reaches ``max_entries`` (scanners probing random keys) starts over.

With ``stale_on_fault``, a lookup that fails for a storage reason (``is_storage_fault``) answers
the last value loaded for its key, however old, and asks the store again ``ttl_s`` later: the
landing keeps sending visitors on while the database cannot be read. With no value to fall back
on, the error is raised."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from xtracker_server.domain.postbacks import Aliases
from xtracker_server.store.api import Store, is_storage_fault

log = logging.getLogger("xtracker.store")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl_s: float,
        max_entries: int,
        stale_on_fault: bool = False,
    ) -> None:
        self._load = load  # a store operation (named in the log)
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._stale_on_fault = stale_on_fault
        self._failing = False  # the last load failed for a storage reason (logged once)
        self._entries: dict[K, tuple[V, float]] = {}

    async def get(self, key: K) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            value = await self._load(key)
        except Exception as exc:
            if not (self._stale_on_fault and is_storage_fault(exc)):
                raise
            self._now_failing(exc)
            if hit is None:
                raise
            self._entries[key] = (hit[0], now + self._ttl_s)
            return hit[0]
        if self._failing:
            self._failing = False
            log.warning("%s: the database can be read again", self._load.__name__)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (value, now + self._ttl_s)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def _now_failing(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.error(
                "%s: the database cannot be read (%s); values loaded before are used meanwhile",
                self._load.__name__,
                exc,
            )


class SubIdCache(ReadCache[int, "tuple[str, ...] | None"]):
    """The query parameters each space records as sub-ids: every click of the landing reads
    them. A stale list is used while the database cannot be read (a click is still made)."""

    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        super().__init__(store.sub_id_params, ttl_s=ttl_s, max_entries=10_000, stale_on_fault=True)


class AliasCache(ReadCache[int, Aliases]):
    """A space's effective postback aliases: every call of ``/e`` needs them, and they rarely
    change."""

    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        super().__init__(store.postback_aliases, ttl_s=ttl_s, max_entries=10_000)
