"""The inbox: every accepted event, once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from xtracker_server.clock import now_ms
from xtracker_server.domain.dedup import amount_conflict
from xtracker_server.domain.entities import InboxDraft, InboxEvent, InboxOutcome
from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.store.sqlite.binds import uid_for_tg_id
from xtracker_server.store.sqlite.db import MAX_PARAMS, insert_many
from xtracker_server.store.sqlite.outbox import (
    Route,
    deliveries_for,
    event_routes,
    insert_deliveries,
)

__all__ = [
    "InboxDraft",
    "InboxEvent",
    "InboxOutcome",
    "LateBatch",
    "attribute_pending",
    "insert_batch",
    "insert_event",
    "insert_events",
    "list_events",
    "move_attributed",
]


def insert_event(conn: sqlite3.Connection, draft: InboxDraft) -> InboxOutcome:
    """Insert unless the dedup key is known; a repeat changes nothing and returns the original.

    An event with a ``tg_id`` and no ``uid`` is attributed to the uid bound to that user.
    """
    (outcome,) = insert_events(conn, [draft])
    return outcome


class LateBatch(XTrackerServerError):
    """A batch reached the database past its ``not_after_ms``: nothing of it was written."""


def insert_batch(
    conn: sqlite3.Connection, drafts: list[InboxDraft], not_after_ms: int | None = None
) -> list[InboxOutcome]:
    """The events of one ``POST /events/batch``, as one operation of the writer: they are
    committed in one transaction, all of them or none (``insert_events`` does the work).

    Its caller is answered 503 when the write misses its deadline, and that answer must mean
    "nothing of it was stored": a batch that reaches the database after ``not_after_ms``
    (set well before the deadline: a lock held, a long queue) raises ``LateBatch`` instead."""
    if not_after_ms is not None and now_ms() > not_after_ms:
        raise LateBatch(f"the batch reached the database {now_ms() - not_after_ms} ms too late")
    return insert_events(conn, drafts)


_INSERT = (
    "INSERT INTO inbox (space_id, dedup_key, event, uid, tg_id, eid, value, currency,"
    " occurred_at_ms, received_ms, source, attributed_by, test)"
)


def insert_events(
    conn: sqlite3.Connection,
    drafts: list[InboxDraft],
    *,
    write_deliveries: Callable[[sqlite3.Connection, list[tuple[object, ...]]], None] = (
        insert_deliveries
    ),
) -> list[InboxOutcome]:
    """``insert_event`` for several drafts, in order (the writer groups concurrent requests).
    ``write_deliveries`` writes the rows of the fan-out (a seed writes them settled at once:
    ``outbox.insert_settled``).

    A handful of statements for the whole group, whatever its size: one lookup of the keys
    already in the inbox, one multi-row insert of the new events (a key twice in the group is
    inserted once), one read of each space's destinations, one insert of the deliveries.
    """
    known = _known_keys(conn, [d.dedup_key for d in drafts])
    first_of: dict[bytes, int] = {}  # dedup key -> the index of its first new draft
    new: list[int] = []
    rows: list[tuple[object, ...]] = []
    uids: list[str | None] = []
    for i, draft in enumerate(drafts):
        uid, attributed_by = draft.uid, "request" if draft.uid is not None else None
        if uid is None and draft.tg_id is not None:
            uid = uid_for_tg_id(conn, draft.space_id, draft.tg_id)
            attributed_by = "bind" if uid is not None else None
        uids.append(uid)
        if draft.dedup_key in known or draft.dedup_key in first_of:
            continue
        first_of[draft.dedup_key] = i
        new.append(i)
        rows.append(
            (draft.space_id, draft.dedup_key, draft.event, uid, draft.tg_id, draft.eid,
             draft.value, draft.currency, draft.occurred_at_ms, draft.received_ms, draft.source,
             attributed_by, int(draft.test))
        )  # fmt: skip
    ids: dict[int, int] = {}  # draft index -> its new inbox id
    for done in insert_many(conn, _INSERT, rows):
        for k in range(done.count):
            ids[new[done.first + k]] = done.last_rowid - done.count + 1 + k
    deliveries = _fan_out(conn, [(i, drafts[i], ids[i]) for i in new], write_deliveries)
    outcomes = []
    for i, draft in enumerate(drafts):
        if i in ids:
            outcomes.append(
                InboxOutcome(ids[i], duplicate=False, uid=uids[i], deliveries=deliveries[i])
            )
        elif draft.dedup_key in known:
            stored = known[draft.dedup_key]
            conflict = amount_conflict(stored.value, stored.currency, draft.value, draft.currency)
            outcomes.append(InboxOutcome(stored.id, True, stored.uid, conflict=conflict))
        else:  # a repeat of an earlier draft of this group
            first = first_of[draft.dedup_key]
            d = drafts[first]
            conflict = amount_conflict(d.value, d.currency, draft.value, draft.currency)
            outcomes.append(InboxOutcome(ids[first], True, uids[first], conflict=conflict))
    return outcomes


@dataclass(frozen=True)
class _Stored:
    id: int
    uid: str | None
    value: str | None
    currency: str | None


def _known_keys(conn: sqlite3.Connection, keys: list[bytes]) -> dict[bytes, _Stored]:
    known: dict[bytes, _Stored] = {}
    for start in range(0, len(keys), MAX_PARAMS):
        chunk = keys[start : start + MAX_PARAMS]
        marks = ", ".join("?" * len(chunk))
        query = (
            f"SELECT dedup_key, id, uid, value, currency FROM inbox WHERE dedup_key IN ({marks})"
        )
        for row in conn.execute(query, chunk):
            known[row[0]] = _Stored(row[1], row[2], row[3], row[4])
    return known


def _fan_out(
    conn: sqlite3.Connection,
    new: list[tuple[int, InboxDraft, int]],
    write: Callable[[sqlite3.Connection, list[tuple[object, ...]]], None],
) -> dict[int, int]:
    """The deliveries the new events (draft index, draft, inbox id) owe, in the inbox write's
    transaction: an event is never stored without them, nor the other way round. Returns draft
    index -> deliveries created."""
    routes: dict[int, list[Route]] = {}
    owed: list[tuple[object, ...]] = []
    counts: dict[int, int] = {}
    for i, draft, inbox_id in new:
        if draft.test:  # a test is never sent to destinations (docs/api.md#test-events)
            counts[i] = 0
            continue
        space_routes = routes.get(draft.space_id)
        if space_routes is None:
            space_routes = routes[draft.space_id] = event_routes(conn, draft.space_id)
        rows = deliveries_for(
            space_routes, draft.space_id, inbox_id, draft.dedup_key, draft.event,
            draft.received_ms,
        )  # fmt: skip
        counts[i] = len(rows)
        owed += rows
    write(conn, owed)
    return counts


def attribute_pending(conn: sqlite3.Connection, space_id: int, tg_id: int, uid: str) -> int:
    """Give the unattributed events of a Telegram user the uid a new bind supplied."""
    cur = conn.execute(
        "UPDATE inbox SET uid = ?, attributed_by = 'bind'"
        " WHERE space_id = ? AND tg_id = ? AND uid IS NULL",
        (uid, space_id, tg_id),
    )
    return cur.rowcount


def move_attributed(
    conn: sqlite3.Connection, space_id: int, tg_id: int, from_uid: str, to_uid: str | None
) -> int:
    """Give the events of a Telegram user that the bind of ``from_uid`` attributed to
    ``to_uid`` instead (None: unattributed again), when a bearer bind replaces that token bind
    (domain/binds.py). Events sent with a uid of their own never move."""
    cur = conn.execute(
        "UPDATE inbox SET uid = ?, attributed_by = CASE WHEN ? IS NULL THEN NULL ELSE 'bind' END"
        " WHERE space_id = ? AND uid = ? AND tg_id = ? AND attributed_by = 'bind'",
        (to_uid, to_uid, space_id, from_uid, tg_id),
    )
    return cur.rowcount


def list_events(conn: sqlite3.Connection, space_id: int, *, limit: int = 100) -> list[InboxEvent]:
    """The space's most recent events, newest first."""
    rows = conn.execute(
        "SELECT id, event, uid, tg_id, eid, value, currency, occurred_at_ms, received_ms,"
        " source, attributed_by FROM inbox WHERE space_id = ? ORDER BY id DESC LIMIT ?",
        (space_id, limit),
    ).fetchall()
    return [InboxEvent(**dict(r)) for r in rows]
