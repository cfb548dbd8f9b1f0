"""``unrecorded_clicks``: landing visits not recorded as clicks, per link, UTC hour and reason
(domain/unrecorded.py). The server adds its in-memory tally every few seconds and at shutdown."""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from xtracker_server.domain.unrecorded import UnrecordedCount


def add_unrecorded(conn: sqlite3.Connection, counts: list[UnrecordedCount]) -> None:
    """Add ``counts`` to the stored ones."""
    conn.executemany(
        "INSERT INTO unrecorded_clicks (space_id, hour_ms, link_id, reason, count)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (space_id, hour_ms, link_id, reason) DO UPDATE"
        " SET count = count + excluded.count",
        [(c.space_id, c.hour_ms, c.link_id, c.reason.value, c.count) for c in counts],
    )


def unrecorded_per_link(
    conn: sqlite3.Connection, space_id: int, from_ms: int, to_ms: int
) -> dict[int, dict[str, int]]:
    """link id -> reason -> visits not recorded in the hours that start in ``[from_ms, to_ms)``."""
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for link_id, reason, n in conn.execute(
        "SELECT link_id, reason, sum(count) FROM unrecorded_clicks"
        " WHERE space_id = ? AND hour_ms >= ? AND hour_ms < ? GROUP BY link_id, reason",
        (space_id, from_ms, to_ms),
    ):
        out[link_id][reason] = int(n)
    return out
