"""The outbox: one delivery per event and destination, claimed by workers under a lease.

SQLite has no ``SKIP LOCKED``: a worker claims with one ``UPDATE … WHERE id IN (SELECT … LIMIT n)
RETURNING``, taking a lease; it may finish a row only while it still holds that lease, so a
worker whose lease ran out cannot overwrite the row another worker took over.

The claim is the one query that reads across spaces: the worker serves every space. Each
claimed row carries its ``space_id``, and everything after the claim is scoped by it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from xtracker_server.domain.destinations import DestinationKind, delivery_event_id
from xtracker_server.domain.entities import AttemptRecord, Claimed, DeliveryRow
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext
from xtracker_server.store.db import MAX_PARAMS, insert_many

__all__ = [
    "STATUSES",
    "AttemptRecord",
    "Claimed",
    "DeliveryRow",
    "Route",
    "claim",
    "contexts",
    "deliveries_for",
    "depth",
    "due_destinations",
    "event_routes",
    "finish",
    "insert_deliveries",
    "list_deliveries",
    "record_attempt",
    "release_leases",
    "replay",
    "status_counts",
    "unsettled_count",
]

STATUSES = ("pending", "retrying", "sent", "failed_permanently")
_DUE = "status IN ('pending', 'retrying')"


@dataclass(frozen=True, slots=True)
class Route:
    """An enabled destination of a space and its event map (canonical -> name; "" = not sent)."""

    destination_id: int
    event_map: dict[str, str]


def event_routes(conn: sqlite3.Connection, space_id: int) -> list[Route]:
    """The space's enabled destinations, read in the writer's transaction."""
    rows = conn.execute(
        "SELECT id, event_map FROM destinations WHERE space_id = ? AND enabled = 1", (space_id,)
    ).fetchall()
    return [Route(int(r["id"]), json.loads(r["event_map"])) for r in rows]


def deliveries_for(
    routes: list[Route],
    space_id: int,
    inbox_id: int,
    dedup_key: bytes,
    canonical: str,
    now_ms: int,
) -> list[tuple[object, ...]]:
    """The delivery rows (for ``insert_deliveries``) a new event owes: one for each of the
    space's ``routes`` (``event_routes``) whose event map names the event."""
    rows: list[tuple[object, ...]] = []
    for route in routes:
        name = route.event_map.get(canonical, "")
        if name:
            rows.append(
                (space_id, route.destination_id, inbox_id,
                 delivery_event_id(dedup_key, route.destination_id), name,
                 now_ms, now_ms, now_ms, now_ms)
            )  # fmt: skip
    return rows


def insert_deliveries(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """In the inbox write's transaction (fan-out): the rows of ``deliveries_for``."""
    insert_many(
        conn,
        "INSERT INTO deliveries (space_id, destination_id, inbox_id, event_id, event_name,"
        " next_attempt_ms, created_ms, age_from_ms, updated_ms, status)",
        [(*row, "pending") for row in rows],
        tail="ON CONFLICT (destination_id, inbox_id) DO NOTHING",
    )


def due_destinations(conn: sqlite3.Connection, now_ms: int) -> list[tuple[int, DestinationKind]]:
    """Destinations that have deliveries due, and are enabled and healthy (across spaces)."""
    # One index probe per destination (deliveries_due), not a scan of every due row.
    rows = conn.execute(
        f"SELECT t.id, t.kind FROM destinations t WHERE t.enabled = 1"
        f" AND t.health_reason IS NULL AND EXISTS (SELECT 1 FROM deliveries d"
        f" WHERE d.destination_id = t.id AND d.{_DUE} AND d.next_attempt_ms <= ?"
        f" AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?))",
        (now_ms, now_ms),
    ).fetchall()
    return [(int(r[0]), DestinationKind(r[1])) for r in rows]


def claim(
    conn: sqlite3.Connection,
    destination_id: int,
    owner: str,
    now_ms: int,
    lease_ms: int,
    limit: int,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of one destination, oldest due first."""
    rows = conn.execute(
        f"UPDATE deliveries SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1"
        f" WHERE id IN (SELECT id FROM deliveries WHERE destination_id = ? AND {_DUE}"
        f"   AND next_attempt_ms <= ? AND (lease_until_ms IS NULL OR lease_until_ms <= ?)"
        f"   ORDER BY next_attempt_ms, id LIMIT ?)"
        f" RETURNING id, space_id, destination_id, inbox_id, event_id, event_name, attempts,"
        f" age_from_ms",
        (owner, now_ms + lease_ms, destination_id, now_ms, now_ms, limit),
    ).fetchall()
    return sorted((Claimed(**dict(r)) for r in rows), key=lambda c: c.id)


def contexts(
    conn: sqlite3.Connection, space_id: int, claimed: list[Claimed], base_url: str
) -> dict[int, DeliveryContext]:
    """What each claimed delivery sends, read now: an event attributed by a bind after the
    fan-out goes out with its click, and an event sent by uid carries the Telegram user its
    uid was bound to."""
    rows: dict[int, sqlite3.Row] = {}
    ids = sorted({c.inbox_id for c in claimed})
    per_query = MAX_PARAMS - 1
    for start in range(0, len(ids), per_query):  # one query per chunk, not one per delivery
        chunk = ids[start : start + per_query]
        for row in conn.execute(
            "SELECT i.id, i.event, i.uid, COALESCE(i.tg_id, b.tg_id) AS tg_id, i.eid, i.value,"
            " i.currency, i.occurred_at_ms,"
            " k.created_ms AS click_ms, k.ip, k.user_agent, k.fbclid, k.fbc, k.fbp, k.country,"
            " k.campaign_id, k.campaign_name, k.adset_id, k.adset_name, k.ad_id, k.ad_name,"
            " k.placement, l.slug"
            " FROM inbox i"
            " LEFT JOIN clicks k ON k.space_id = i.space_id AND k.uid = i.uid"
            " LEFT JOIN links l ON l.id = k.link_id AND l.space_id = i.space_id"
            " LEFT JOIN binds b ON b.space_id = i.space_id AND b.uid = i.uid"
            f" WHERE i.space_id = ? AND i.id IN ({', '.join('?' * len(chunk))})",
            (space_id, *chunk),
        ):
            rows[row["id"]] = row
    out: dict[int, DeliveryContext] = {}
    for c in claimed:
        row = rows.get(c.inbox_id)
        if row is None:
            continue
        click = ClickInfo(
            uid=row["uid"],
            link=row["slug"],
            landing_url=f"{base_url}/l/{row['slug']}" if row["slug"] else None,
            created_ms=row["click_ms"],
            ip=row["ip"],
            user_agent=row["user_agent"],
            fbclid=row["fbclid"],
            fbc=row["fbc"],
            fbp=row["fbp"],
            country=row["country"],
            campaign_id=row["campaign_id"],
            campaign_name=row["campaign_name"],
            adset_id=row["adset_id"],
            adset_name=row["adset_name"],
            ad_id=row["ad_id"],
            ad_name=row["ad_name"],
            placement=row["placement"],
        )
        out[c.id] = DeliveryContext(
            event_id=c.event_id,
            event_name=c.event_name,
            canonical=row["event"],
            occurred_at_ms=row["occurred_at_ms"],
            uid=row["uid"],
            tg_id=row["tg_id"],
            eid=row["eid"],
            value=row["value"],
            currency=row["currency"],
            click=click,
        )
    return out


def record_attempt(conn: sqlite3.Connection, attempt: AttemptRecord) -> None:
    """Record an attempt, unless its delivery was deleted meanwhile (its destination, its
    event or its space: store/deletion.py)."""
    conn.execute(
        "INSERT INTO delivery_attempts (delivery_id, space_id, at_ms, status_code, latency_ms,"
        " outcome, error, excerpt) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?)",
        (attempt.delivery_id, attempt.space_id, attempt.at_ms, attempt.status_code,
         attempt.latency_ms, attempt.outcome, attempt.error, attempt.excerpt,
         attempt.delivery_id),
    )  # fmt: skip


def finish(
    conn: sqlite3.Connection,
    space_id: int,
    delivery_id: int,
    owner: str,
    *,
    status: str,
    now_ms: int,
    next_attempt_ms: int | None = None,
    last_status: int | None = None,
    last_error: str | None = None,
    refund_attempt: bool = False,
) -> bool:
    """Settle a claimed delivery, only if ``owner`` still holds its lease. False otherwise
    (another worker took it over; it will settle the row)."""
    assert status in STATUSES
    cur = conn.execute(
        "UPDATE deliveries SET status = ?, next_attempt_ms = COALESCE(?, next_attempt_ms),"
        " sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END,"
        " last_status = ?, last_error = ?, updated_ms = ?, lease_owner = NULL,"
        " lease_until_ms = NULL, attempts = attempts - ?"
        " WHERE space_id = ? AND id = ? AND lease_owner = ? AND lease_until_ms > ?",
        (status, next_attempt_ms, status, now_ms, last_status, last_error, now_ms,
         int(refund_attempt), space_id, delivery_id, owner, now_ms),
    )  # fmt: skip
    return cur.rowcount == 1


def list_deliveries(
    conn: sqlite3.Connection,
    space_id: int,
    *,
    status: str | None = None,
    destination_id: int | None = None,
    limit: int = 100,
) -> list[DeliveryRow]:
    where, args = ["space_id = ?"], [space_id]
    if status is not None:
        where.append("status = ?")
        args.append(status)  # type: ignore[arg-type]
    if destination_id is not None:
        where.append("destination_id = ?")
        args.append(destination_id)
    rows = conn.execute(
        "SELECT id, destination_id, inbox_id, event_id, event_name, status, attempts,"
        " next_attempt_ms, created_ms, sent_ms, last_status, last_error FROM deliveries"
        f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [DeliveryRow(**dict(r)) for r in rows]


def replay(
    conn: sqlite3.Connection,
    space_id: int,
    *,
    status: str = "failed_permanently",
    destination_id: int | None = None,
    now_ms: int,
) -> int:
    """Send deliveries again (same event_id, so receivers can deduplicate): due now, with a
    fresh retry window."""
    where, args = ["space_id = ?", "status = ?"], [space_id, status]
    if destination_id is not None:
        where.append("destination_id = ?")
        args.append(destination_id)
    cur = conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_ms = ?, age_from_ms = ?,"
        " updated_ms = ?, lease_owner = NULL, lease_until_ms = NULL"
        f" WHERE {' AND '.join(where)}",
        (now_ms, now_ms, now_ms, *args),
    )
    return cur.rowcount


def status_counts(conn: sqlite3.Connection, space_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM deliveries WHERE space_id = ? GROUP BY status", (space_id,)
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def release_leases(conn: sqlite3.Connection) -> int:
    """Release every lease (on a restored database, whose leases belong to workers of the
    past): unsettled deliveries are due to be sent again at once. Returns how many."""
    cur = conn.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = NULL"
        " WHERE lease_owner IS NOT NULL"
    )
    return cur.rowcount


def unsettled_count(conn: sqlite3.Connection) -> int:
    """Deliveries not settled yet, across spaces (what a restored database will send)."""
    return int(conn.execute(f"SELECT count(*) FROM deliveries WHERE {_DUE}").fetchone()[0])


def depth(conn: sqlite3.Connection) -> dict[str, int]:
    """Deliveries not settled yet, by status, across spaces: a count for the operator's
    ``/metrics``, read through the partial index of the due rows (never the settled ones)."""
    counts = dict.fromkeys(("pending", "retrying"), 0)
    for status, count in conn.execute(
        f"SELECT status, count(*) FROM deliveries WHERE {_DUE} GROUP BY status"
    ):
        counts[status] = int(count)
    return counts
