"""The inbox: every accepted event, once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from xtracker_server.store.binds import uid_for_tg_id
from xtracker_server.store.outbox import Route, event_routes, fan_out


@dataclass(frozen=True)
class InboxDraft:
    space_id: int
    dedup_key: bytes
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str  # "api" (POST /events) or "postback" (GET /e)


@dataclass(frozen=True)
class InboxOutcome:
    inbox_id: int
    duplicate: bool
    uid: str | None  # after attribution; None while unattributed
    deliveries: int = 0  # outbox rows created for it


def insert_event(conn: sqlite3.Connection, draft: InboxDraft) -> InboxOutcome:
    """Insert unless the dedup key is known; a repeat changes nothing and returns the original.

    An event with a ``tg_id`` and no ``uid`` is attributed to the uid bound to that user.
    """
    (outcome,) = insert_events(conn, [draft])
    return outcome


def insert_events(conn: sqlite3.Connection, drafts: list[InboxDraft]) -> list[InboxOutcome]:
    """``insert_event`` for several drafts in order (the writer groups concurrent requests):
    one statement per new event, and the space's destinations read once for all of them."""
    destinations: dict[int, list[Route]] = {}
    outcomes = []
    for draft in drafts:
        uid, attributed_by = draft.uid, "request" if draft.uid is not None else None
        if uid is None and draft.tg_id is not None:
            uid = uid_for_tg_id(conn, draft.space_id, draft.tg_id)
            attributed_by = "bind" if uid is not None else None
        row = conn.execute(
            "INSERT INTO inbox (space_id, dedup_key, event, uid, tg_id, eid, value, currency,"
            " occurred_at_ms, received_ms, source, attributed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            (draft.space_id, draft.dedup_key, draft.event, uid, draft.tg_id, draft.eid,
             draft.value, draft.currency, draft.occurred_at_ms, draft.received_ms, draft.source,
             attributed_by),
        ).fetchone()  # fmt: skip
        if row is None:  # a repeat (also of an earlier draft in this same group)
            existing = conn.execute(
                "SELECT id, uid FROM inbox WHERE dedup_key = ?", (draft.dedup_key,)
            ).fetchone()
            outcomes.append(InboxOutcome(existing["id"], duplicate=True, uid=existing["uid"]))
            continue
        routes = destinations.get(draft.space_id)
        if routes is None:
            routes = destinations[draft.space_id] = event_routes(conn, draft.space_id)
        # The fan-out shares the inbox write's transaction: an event is never stored without
        # the deliveries it owes, nor the other way round.
        deliveries = (
            fan_out(conn, routes, draft.space_id, row[0], draft.dedup_key, draft.event,
                    draft.received_ms)
            if routes
            else 0
        )  # fmt: skip
        outcomes.append(InboxOutcome(row[0], duplicate=False, uid=uid, deliveries=deliveries))
    return outcomes


def attribute_pending(conn: sqlite3.Connection, space_id: int, tg_id: int, uid: str) -> int:
    """Give the unattributed events of a Telegram user the uid a new bind supplied."""
    cur = conn.execute(
        "UPDATE inbox SET uid = ?, attributed_by = 'bind'"
        " WHERE space_id = ? AND tg_id = ? AND uid IS NULL",
        (uid, space_id, tg_id),
    )
    return cur.rowcount


@dataclass(frozen=True)
class InboxEvent:
    id: int
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str
    attributed_by: str | None


def list_events(conn: sqlite3.Connection, space_id: int, *, limit: int = 100) -> list[InboxEvent]:
    """The space's most recent events, newest first."""
    rows = conn.execute(
        "SELECT id, event, uid, tg_id, eid, value, currency, occurred_at_ms, received_ms,"
        " source, attributed_by FROM inbox WHERE space_id = ? ORDER BY id DESC LIMIT ?",
        (space_id, limit),
    ).fetchall()
    return [InboxEvent(**dict(r)) for r in rows]
