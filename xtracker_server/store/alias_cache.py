"""A space's effective postback aliases, cached: every call of ``/e`` needs them, and they
rarely change."""

from __future__ import annotations

import sqlite3

from xtracker_server.domain.postbacks import Aliases, effective_aliases
from xtracker_server.store.cache import ReadCache
from xtracker_server.store.postbacks import alias_rows
from xtracker_server.store.runtime import Store


def _aliases(conn: sqlite3.Connection, space_id: int) -> Aliases:
    return effective_aliases(alias_rows(conn, space_id))


class AliasCache(ReadCache[int, Aliases]):
    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        super().__init__(store, _aliases, ttl_s=ttl_s, max_entries=10_000)
