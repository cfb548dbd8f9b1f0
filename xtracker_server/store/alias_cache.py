"""A space's effective postback aliases, cached: every call of ``/e`` needs them, and they
rarely change.

An entry lives ``ttl_s`` seconds, so a change made by the CLI in another process is seen
within that time; changes through this server's admin API drop the entry at once."""

from __future__ import annotations

import time

from xtracker_server.domain.postbacks import Aliases, effective_aliases
from xtracker_server.store.postbacks import alias_rows
from xtracker_server.store.runtime import Store

_MAX_ENTRIES = 10_000


class AliasCache:
    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._entries: dict[int, tuple[Aliases, float]] = {}

    async def get(self, space_id: int) -> Aliases:
        now = time.monotonic()
        hit = self._entries.get(space_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        aliases = effective_aliases(await self._store.read(alias_rows, space_id))
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[space_id] = (aliases, now + self._ttl_s)
        return aliases

    def forget(self, space_id: int) -> None:
        self._entries.pop(space_id, None)
