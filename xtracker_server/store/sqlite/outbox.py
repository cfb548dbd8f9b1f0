"""The outbox: one delivery per event and destination, claimed by workers under a lease.

SQLite has no ``SKIP LOCKED``: a worker claims with one ``UPDATE … WHERE id IN (SELECT … LIMIT n)
RETURNING``, taking a lease; it may finish a row only while it still holds that lease, so a
worker whose lease ran out cannot overwrite the row another worker took over.

The claim is the one query that reads across spaces: the worker serves every space. Each
claimed row carries its ``space_id``, and everything after the claim is scoped by it.

The worker's queries and the counts cost the same whatever the outbox and the inbox hold
(issue 14; their plans are pinned in tests/server/test_outbox_plans.py): the claim reads the
front of one destination's due rows (the partial index ``deliveries_due``), the context read
and the settle go by primary key, and the counts are kept by triggers (table
``delivery_counts``, see migrations.py) instead of being counted. (A replay updates every row
it replays, by design.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from xtracker_server.domain.delivery_status import DELIVERY_STATUSES
from xtracker_server.domain.destinations import DestinationKind, delivery_event_id
from xtracker_server.domain.entities import AttemptRecord, Claimed, DeliveryRow, Settled, Unhealthy
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext
from xtracker_server.store.sqlite.db import MAX_PARAMS, insert_many
from xtracker_server.store.sqlite.destinations import PrunedTally, add_pruned, flag_unhealthy

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
    "hasten_retries",
    "insert_deliveries",
    "list_deliveries",
    "record_attempt",
    "release_leases",
    "replay",
    "settle",
    "status_counts",
    "unsettled_count",
]

STATUSES = DELIVERY_STATUSES
_DUE = "status IN ('pending', 'retrying')"
#: The condition of the partial index ``deliveries_settled`` (migration 14): a query names it
#: as it is, besides its own ``status = ?``, or SQLite does not use that index.
_SETTLED = "status IN ('sent', 'failed_permanently')"


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


def _claim_sql(since: bool) -> str:
    """Lease the first due rows of one destination, oldest due first (``since``: only those
    that became due after a time)."""
    return (
        "UPDATE deliveries SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1"
        f" WHERE id IN (SELECT id FROM deliveries WHERE destination_id = ? AND {_DUE}"
        f"   AND next_attempt_ms <= ?{' AND next_attempt_ms > ?' if since else ''}"
        "   AND (lease_until_ms IS NULL OR lease_until_ms <= ?)"
        "   ORDER BY next_attempt_ms, id LIMIT ?)"
        " RETURNING id, space_id, destination_id, inbox_id, event_id, event_name, attempts,"
        " age_from_ms"
    )


_CLAIM_OLDEST, _CLAIM_SINCE = _claim_sql(False), _claim_sql(True)


def claim(
    conn: sqlite3.Connection,
    destination_id: int,
    owner: str,
    now_ms: int,
    lease_ms: int,
    limit: int,
    *,
    fresh_limit: int = 0,
    fresh_since_ms: int = 0,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of one destination, oldest due first; of them, up
    to ``fresh_limit`` first from the newest lane, those due after ``fresh_since_ms`` (the
    drain order of domain/drain.py, whose ``claim_plan`` gives the numbers)."""
    lease = (owner, now_ms + lease_ms, destination_id, now_ms)
    rows = []
    if fresh_limit > 0:
        rows += conn.execute(
            _CLAIM_SINCE, (*lease, fresh_since_ms, now_ms, min(fresh_limit, limit))
        ).fetchall()
    if limit > len(rows):  # the rows leased just above are not due to anyone now
        rows += conn.execute(_CLAIM_OLDEST, (*lease, now_ms, limit - len(rows))).fetchall()
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
            # By primary key, never through an index on space_id: without statistics SQLite
            # would walk the space's whole inbox (issue 14: 205 ms for 32 rows at 1.67M).
            f" WHERE i.id IN ({', '.join('?' * len(chunk))}) AND +i.space_id = ?",
            (*chunk, space_id),
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


_RECORD_ATTEMPT = (
    "INSERT INTO delivery_attempts (delivery_id, space_id, at_ms, status_code, latency_ms,"
    " outcome, error, excerpt) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?)"
)


def record_attempt(conn: sqlite3.Connection, attempt: AttemptRecord) -> None:
    """Record an attempt, unless its delivery was deleted meanwhile (its destination, its
    event or its space: store/sqlite/deletion.py, store/sqlite/erasure.py)."""
    conn.execute(_RECORD_ATTEMPT, _attempt_params(attempt))


def _attempt_params(a: AttemptRecord) -> tuple[object, ...]:
    return (a.delivery_id, a.space_id, a.at_ms, a.status_code, a.latency_ms, a.outcome, a.error,
            a.excerpt, a.delivery_id)  # fmt: skip


_FINISH = (
    "UPDATE deliveries SET status = ?, next_attempt_ms = COALESCE(?, next_attempt_ms),"
    " sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END,"
    " last_status = ?, last_error = ?, updated_ms = ?, lease_owner = NULL,"
    " lease_until_ms = NULL, attempts = attempts - ?"
    " WHERE id = ? AND space_id = ? AND lease_owner = ? AND lease_until_ms > ?"
)


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
        _FINISH,
        (status, next_attempt_ms, status, now_ms, last_status, last_error, now_ms,
         int(refund_attempt), delivery_id, space_id, owner, now_ms),
    )  # fmt: skip
    return cur.rowcount == 1


def settle(
    conn: sqlite3.Connection,
    owner: str,
    settled: list[Settled],
    now_ms: int,
    unhealthy: list[Unhealthy] | None = None,
) -> int:
    """Write a batch of outcomes in one transaction (the caller's): each delivery's new state,
    only while ``owner`` still holds its lease, and its attempt; flag the destinations an
    answer said are broken. Returns how many rows were still leased to ``owner``."""
    for s in settled:
        assert s.status in STATUSES
    cur = conn.executemany(
        _FINISH,
        [(s.status, s.next_attempt_ms, s.status, now_ms, s.last_status, s.last_error, now_ms,
          int(s.refund_attempt), s.delivery_id, s.space_id, owner, now_ms)
         for s in settled],
    )  # fmt: skip
    changed = cur.rowcount
    conn.executemany(
        _RECORD_ATTEMPT,
        [_attempt_params(AttemptRecord(s.delivery_id, s.space_id, now_ms, s.last_status,
                                       s.latency_ms, s.outcome, s.last_error, s.excerpt))
         for s in settled],
    )  # fmt: skip
    held = [s.delivery_id for s in settled if s.refund_attempt]
    for u in unhealthy or []:
        if flag_unhealthy(conn, u.space_id, u.destination_id, u.reason, u.as_of_ms) or not held:
            continue
        # Fixed while the request was out: what this answer held for it is due now, as what
        # was held before the fix already is (destinations.update_destination).
        for i in range(0, len(held), MAX_PARAMS - 3):
            chunk = held[i : i + MAX_PARAMS - 3]
            conn.execute(
                "UPDATE deliveries SET next_attempt_ms = ? WHERE space_id = ?"
                f" AND destination_id = ? AND id IN ({', '.join('?' * len(chunk))})"
                " AND next_attempt_ms > ?",
                (now_ms, u.space_id, u.destination_id, *chunk, now_ms),
            )
    return changed


def list_deliveries(
    conn: sqlite3.Connection,
    space_id: int,
    *,
    status: str | None = None,
    destination_id: int | None = None,
    limit: int = 100,
) -> list[DeliveryRow]:
    """The space's newest deliveries (of one status, of one destination), newest first."""
    statuses = [status] if status is not None else list(STATUSES)
    only = "" if destination_id is None else " AND destination_id = ?"
    # One ordered walk per status, each cut short by the limit, through deliveries_space_status
    # (space_id, status, id): never a sort of the space's whole outbox.
    one = (
        "SELECT * FROM (SELECT id, destination_id, inbox_id, event_id, event_name, status,"
        " attempts, next_attempt_ms, created_ms, sent_ms, last_status, last_error FROM deliveries"
        f" WHERE space_id = ? AND status = ?{only} ORDER BY id DESC LIMIT ?)"
    )
    args: list[object] = []
    for s in statuses:
        args += [space_id, s, *([] if destination_id is None else [destination_id]), limit]
    rows = conn.execute(
        " UNION ALL ".join([one] * len(statuses)) + " ORDER BY id DESC LIMIT ?", (*args, limit)
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
    """The space's deliveries by status (those it has), from the counts the triggers keep."""
    rows = conn.execute(
        "SELECT status, n FROM delivery_counts WHERE space_id = ? AND n > 0", (space_id,)
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


#: The symptoms of an outage: no answer, or a 5xx. A 408, 425 or 429 asked for time, and keeps
#: its backoff.
_HASTEN = (
    f"UPDATE deliveries SET next_attempt_ms = created_ms, updated_ms = ?"
    f" WHERE id IN (SELECT id FROM deliveries WHERE destination_id = ? AND {_DUE}"
    f"   AND status = 'retrying' AND next_attempt_ms > ?"
    f"   AND (last_status IS NULL OR last_status >= 500)"
    f"   AND (lease_until_ms IS NULL OR lease_until_ms <= ?) LIMIT ?)"
)


def hasten_retries(conn: sqlite3.Connection, destination_id: int, now_ms: int, limit: int) -> int:
    """A destination answers again after an outage: up to ``limit`` of its deliveries waiting
    out a backoff that the outage caused (no answer or a 5xx) are due at once, at the time
    they were created, so that they go in the drain order (oldest first) at the worker's full
    rate. Returns how many; reads only the destination's rows due later (deliveries_due)."""
    cur = conn.execute(_HASTEN, (now_ms, destination_id, now_ms, now_ms, limit))
    return cur.rowcount


def give_back(conn: sqlite3.Connection, space_id: int, ids: Sequence[int], owner: str) -> int:
    """Deliveries ``owner`` claimed and did not send (let go: its lease could run out before
    their turn; or the worker stopped): their lease ends and the claim's attempt is not counted,
    so they are due again at once as they were. Rows another worker holds now, or settled, are
    left. Returns how many."""
    given = 0
    for i in range(0, len(ids), MAX_PARAMS - 2):
        chunk = ids[i : i + MAX_PARAMS - 2]
        cur = conn.execute(
            "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = NULL,"
            " attempts = max(attempts - 1, 0)"
            f" WHERE id IN ({', '.join('?' * len(chunk))}) AND space_id = ? AND lease_owner = ?"
            f" AND {_DUE}",
            (*chunk, space_id, owner),
        )
        given += cur.rowcount
    return given


def release_leases(conn: sqlite3.Connection) -> int:
    """Release every lease (on a restored database, whose leases belong to workers of the
    past): unsettled deliveries are due to be sent again at once. Returns how many. Reads only
    the leased rows (the partial index deliveries_leased)."""
    cur = conn.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until_ms = NULL"
        " WHERE id IN (SELECT id FROM deliveries INDEXED BY deliveries_leased"
        " WHERE lease_owner IS NOT NULL)"
    )
    return cur.rowcount


def unsettled_count(conn: sqlite3.Connection) -> int:
    """Deliveries not settled yet, across spaces (what a restored database will send)."""
    return sum(depth(conn).values())


def depth(conn: sqlite3.Connection) -> dict[str, int]:
    """Deliveries not settled yet, by status, across spaces: a count for the operator's
    ``/metrics``, from the counts the triggers keep (a few rows per space)."""
    counts = dict.fromkeys(("pending", "retrying"), 0)
    for status, count in conn.execute(
        f"SELECT status, sum(n) FROM delivery_counts WHERE {_DUE} GROUP BY status"
    ):
        counts[status] = int(count)
    return counts


def prune_settled(conn: sqlite3.Connection, status: str, before_ms: int, limit: int = 1000) -> int:
    """Delete up to ``limit`` deliveries settled as ``status`` (``sent`` or
    ``failed_permanently``) before ``before_ms``, oldest first, any space, with their attempts;
    returns how many deliveries (housekeeping.py runs it in batches). Each destination's tally
    counts what went, so that its delivery health still counts every delivery it ever had
    (``delivery_health.delivery_health``).

    Unsettled deliveries are never pruned. Neither are the newest delivery and the delivery of
    the newest attempt, whatever their age: SQLite gives a new row the largest id plus one, and
    an id handed out twice would be missed by the live stream (which follows attempts by id)
    and confuse whoever holds a delivery id."""
    assert status in ("sent", "failed_permanently"), status
    rows = conn.execute(
        f"SELECT id, destination_id, sent_ms FROM deliveries WHERE {_SETTLED} AND status = ?"
        " AND updated_ms < ? AND id < (SELECT max(id) FROM deliveries)"
        " AND id IS NOT (SELECT delivery_id FROM delivery_attempts"
        " WHERE id = (SELECT max(id) FROM delivery_attempts))"
        " ORDER BY updated_ms LIMIT ?",
        (status, before_ms, min(limit, MAX_PARAMS)),
    ).fetchall()
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    marks = ", ".join("?" * len(ids))
    conn.execute(f"DELETE FROM delivery_attempts WHERE delivery_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM deliveries WHERE id IN ({marks})", ids)
    tallies: dict[int, PrunedTally] = {}
    for _, destination_id, sent_ms in rows:
        tally = tallies.setdefault(destination_id, PrunedTally(destination_id))
        tally.add(status, sent_ms)
    add_pruned(conn, list(tallies.values()))
    return len(ids)


#: An attempt of a delivery written settled (``insert_settled``): the index of its delivery,
#: then ``at_ms, status_code, latency_ms, outcome, error, excerpt``.
SettledAttempt = tuple[int, int, int | None, int, str, str | None, str | None]


def insert_settled(
    conn: sqlite3.Connection,
    deliveries: list[tuple[object, ...]],
    attempts: list[SettledAttempt],
) -> None:
    """Deliveries written settled, with their attempts, in a few statements: what the fan-out
    (``insert_deliveries``) and then the worker's settling of each attempt leave, for writing
    months of traffic at once (bench/growth.py seeds with it).

    ``deliveries``: each a row of ``deliveries_for`` with its ``next_attempt_ms`` and
    ``updated_ms`` as the last attempt left them, followed by ``status, attempts, sent_ms,
    last_status, last_error``. ``attempts``: in the order they were made, each naming its
    delivery by its index in ``deliveries``.
    """
    ids: list[int] = []
    for done in insert_many(
        conn,
        "INSERT INTO deliveries (space_id, destination_id, inbox_id, event_id, event_name,"
        " next_attempt_ms, created_ms, age_from_ms, updated_ms, status, attempts, sent_ms,"
        " last_status, last_error)",
        deliveries,
    ):
        ids += range(done.last_rowid - done.count + 1, done.last_rowid + 1)
    conn.executemany(
        "INSERT INTO delivery_attempts (delivery_id, space_id, at_ms, status_code, latency_ms,"
        " outcome, error, excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(ids[a[0]], deliveries[a[0]][0], *a[1:]) for a in attempts],
    )
