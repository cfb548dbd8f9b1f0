"""Destinations of a space: their settings, event maps and health."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from xtracker_server.domain.destinations import DestinationKind, PreparedDestination
from xtracker_server.domain.entities import Destination

__all__ = [
    "Destination",
    "create_destination",
    "flag_unhealthy",
    "get_destination",
    "list_destinations",
    "space_of_destination",
    "unhealthy_by_kind",
    "update_destination",
]

_COLUMNS = (
    "id, space_id, kind, name, enabled, config, secret, event_map, proxy, health_reason,"
    " created_ms, updated_ms"
)


def _destination(row: sqlite3.Row) -> Destination:
    return Destination(
        id=row["id"],
        space_id=row["space_id"],
        kind=DestinationKind(row["kind"]),
        name=row["name"],
        enabled=bool(row["enabled"]),
        config=json.loads(row["config"]),
        secret=row["secret"],
        event_map=json.loads(row["event_map"]),
        proxy=row["proxy"],
        health_reason=row["health_reason"],
        created_ms=row["created_ms"],
        updated_ms=row["updated_ms"],
    )


def create_destination(
    conn: sqlite3.Connection, space_id: int, new: PreparedDestination, now_ms: int
) -> Destination | None:
    """Store a new destination; None if the space does not exist. It receives only events
    that arrive from now on."""
    space = conn.execute("SELECT 1 FROM spaces WHERE id = ? AND deleted_ms IS NULL", (space_id,))
    if space.fetchone() is None:
        return None
    cur = conn.execute(
        "INSERT INTO destinations (space_id, kind, name, enabled, config, secret, event_map,"
        " proxy, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (space_id, new.kind.value, new.name, int(new.enabled), json.dumps(new.config),
         new.secret, json.dumps(new.event_map), new.proxy, now_ms, now_ms),
    )  # fmt: skip
    found = get_destination(conn, space_id, int(cur.lastrowid or 0))
    assert found is not None
    return found


def get_destination(
    conn: sqlite3.Connection, space_id: int, destination_id: int
) -> Destination | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM destinations WHERE space_id = ? AND id = ? AND deleted_ms IS NULL",
        (space_id, destination_id),
    ).fetchone()
    return _destination(row) if row else None


def list_destinations(conn: sqlite3.Connection, space_id: int) -> list[Destination]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM destinations WHERE space_id = ? AND deleted_ms IS NULL"
        " ORDER BY id",
        (space_id,),
    ).fetchall()
    return [_destination(r) for r in rows]


def space_of_destination(conn: sqlite3.Connection, destination_id: int) -> int | None:
    """The operator addresses a destination by its id alone (``eventmap set --destination``)."""
    row = conn.execute(
        "SELECT space_id FROM destinations WHERE id = ? AND deleted_ms IS NULL", (destination_id,)
    ).fetchone()
    return int(row["space_id"]) if row else None


def update_destination(
    conn: sqlite3.Connection, space_id: int, destination_id: int, now_ms: int, **changes: Any
) -> Destination | None:
    """Change columns (name, enabled, config, secret, event_map, proxy, health_reason)."""
    allowed = {"name", "enabled", "config", "secret", "event_map", "proxy", "health_reason"}
    assert set(changes) <= allowed, set(changes) - allowed
    if get_destination(conn, space_id, destination_id) is None:
        return None
    values = {
        k: json.dumps(v) if k in ("config", "event_map") else int(v) if k == "enabled" else v
        for k, v in changes.items()
    }
    if values:
        conn.execute(
            f"UPDATE destinations SET {', '.join(f'{k} = ?' for k in values)}, updated_ms = ?"
            " WHERE space_id = ? AND id = ?",
            (*values.values(), now_ms, space_id, destination_id),
        )
    if "health_reason" in changes and changes["health_reason"] is None:
        # Fixed (a new token, or enabled again): what was held for it is due now.
        conn.execute(
            "UPDATE deliveries SET next_attempt_ms = ? WHERE space_id = ? AND destination_id = ?"
            " AND status IN ('pending', 'retrying') AND next_attempt_ms > ?",
            (now_ms, space_id, destination_id, now_ms),
        )
    return get_destination(conn, space_id, destination_id)


def flag_unhealthy(
    conn: sqlite3.Connection,
    space_id: int,
    destination_id: int,
    reason: str,
    as_of_ms: int | None = None,
) -> bool:
    """Flag the destination, unless it was changed after ``as_of_ms`` (its ``updated_ms`` when
    the request that failed was made: a new token must not be flagged by an answer to the old
    one). Whether it was flagged."""
    cur = conn.execute(
        "UPDATE destinations SET health_reason = ? WHERE space_id = ? AND id = ?"
        " AND (? IS NULL OR updated_ms <= ?)",
        (reason, space_id, destination_id, as_of_ms, as_of_ms),
    )
    return cur.rowcount > 0


def unhealthy_by_kind(conn: sqlite3.Connection) -> dict[str, int]:
    """Enabled destinations flagged unhealthy, by kind, across spaces (a count for the
    operator's ``/metrics``); every kind is present."""
    counts = {kind.value: 0 for kind in DestinationKind}
    for kind, count in conn.execute(
        "SELECT kind, count(*) FROM destinations WHERE enabled = 1 AND health_reason IS NOT NULL"
        " GROUP BY kind"
    ):
        counts[kind] = int(count)
    return counts


@dataclass(slots=True)
class PrunedTally:
    """Deliveries of one destination that retention pruned in one batch (store/sqlite/outbox.py)."""

    destination_id: int
    sent: int = 0
    failed: int = 0
    last_sent_ms: int | None = None

    def add(self, status: str, sent_ms: int | None) -> None:
        if status == "sent":
            self.sent += 1
        else:
            self.failed += 1
        if sent_ms is not None and (self.last_sent_ms is None or sent_ms > self.last_sent_ms):
            self.last_sent_ms = sent_ms


def add_pruned(conn: sqlite3.Connection, tallies: list[PrunedTally]) -> None:
    """Add what was pruned to each destination's tally (migration 14)."""
    conn.executemany(
        "UPDATE destinations SET pruned_sent = pruned_sent + ?1,"
        " pruned_failed = pruned_failed + ?2, pruned_last_sent_ms ="
        " max(coalesce(pruned_last_sent_ms, ?3), coalesce(?3, pruned_last_sent_ms)) WHERE id = ?4",
        [(t.sent, t.failed, t.last_sent_ms, t.destination_id) for t in tallies],
    )
