"""Deleting spaces, links and destinations (``domain/deletion.py`` says what each takes;
``xtracker_server/deletion.py`` runs them). Erasing a person is ``store/sqlite/erasure.py``; both
delete rows through ``store/sqlite/purge.py``, which keeps the ids the report rollup and the live
stream follow.
A deletion first says what it takes (``space_counts``, ``link_counts``, ``destination_counts``:
reads), then *marks* what it deletes (``deleted_ms``) in one short transaction (``mark_space``,
``mark_link``, ``mark_destination``). From then on it is gone for every reader: 404, not listed,
its landing answers 404, its destinations get nothing; a space's credentials are deleted at once
and its live streams end. Then its rows go in batches of at most ``BATCH`` rows
(``delete_*_batch``), each batch one short transaction through the writer, so the writer is
never held for long. The last batch deletes the link or destination row; a deleted space keeps
its row (with nothing else), so its id is never given to another space. A run stopped half-way
(a crash) is finished by the next deletion of the same thing, or by the server (``unfinished``).

The report rollup learns what left through ``report_removals`` (store/sqlite/rollup.py), whose
applied entries ``prune_removals`` forgets.
"""

from __future__ import annotations

import sqlite3

from xtracker_server.domain.deletion import (
    DESTINATION_KEYS,
    LINK_KEYS,
    SPACE_KEYS,
    counts,
    delivery_counts,
)
from xtracker_server.domain.entities import Batch, Marked
from xtracker_server.store.sqlite.purge import (
    chunks,
    delete_deliveries,
    delete_rows,
    is_placeholder_space,
    qmarks,
    record_removal,
)

__all__ = [
    "BATCH",
    "Batch",
    "Marked",
    "delete_destination_batch",
    "delete_link_batch",
    "delete_space_batch",
    "destination_counts",
    "link_counts",
    "mark_destination",
    "mark_link",
    "mark_space",
    "prune_removals",
    "removals_pending",
    "slug_of_link",
    "space_counts",
    "unfinished",
]

#: Rows deleted (or changed) by one batch: one short transaction of the writer (tens of
#: milliseconds; a row takes several index entries with it).
BATCH = 500

#: A space's rows, in the order they are deleted (a row before the rows it refers to), with the
#: count each falls under (deliveries: by status).
_SPACE_ROWS: tuple[tuple[str, str], ...] = (
    ("delivery_attempts", "delivery_attempts"),
    ("deliveries", "deliveries"),
    ("postback_log", "postback_log"),
    ("binds", "binds"),
    ("events", "inbox"),
    ("clicks", "clicks"),
    ("postback_aliases", "postback_aliases"),
    ("unrecorded_clicks", "unrecorded_clicks"),
    ("costs", "costs"),
    ("exchange_rates", "exchange_rates"),
    ("destinations", "destinations"),
    ("links", "links"),
    ("credentials", "credentials"),
)

# ----------------------------------------------------------------------------- spaces


def _space_state(conn: sqlite3.Connection, space_id: int) -> str | None:
    """ "live", "deleting" (marked, rows left), or None (no such space, or deleted)."""
    row = conn.execute(
        "SELECT deleted_ms, created_ms, name FROM spaces WHERE id = ?", (space_id,)
    ).fetchone()
    if row is None or is_placeholder_space(row):
        return None
    if row["deleted_ms"] is None:
        return "live"
    return "deleting" if _space_rows_left(conn, space_id) else None


def _space_rows_left(conn: sqlite3.Connection, space_id: int) -> bool:
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE space_id = ? LIMIT 1", (space_id,)).fetchone()
        for _, table in _SPACE_ROWS
    )


def space_counts(conn: sqlite3.Connection, space_id: int) -> dict[str, int] | None:
    """What deleting the space takes (what is left of it, if its deletion was cut short);
    None if there is no such space."""
    if _space_state(conn, space_id) is None:
        return None
    found: dict[str, int] = {}
    for key, table in _SPACE_ROWS:
        if table == "deliveries":
            found |= _by_status(conn, "space_id", space_id)
        else:
            found[key] = conn.execute(
                f"SELECT count(*) FROM {table} WHERE space_id = ?", (space_id,)
            ).fetchone()[0]
    return counts(SPACE_KEYS, found)


def mark_space(conn: sqlite3.Connection, space_id: int, now_ms: int) -> Marked | None:
    """Mark the space deleted: its credentials go now, its links and destinations stop. None
    if there is no such space (or it is deleted already). Counts nothing: what it takes was
    said by ``space_counts``, a read, and the writer is not held for a count."""
    if _space_state(conn, space_id) is None:
        return None
    conn.execute(
        "UPDATE spaces SET deleted_ms = COALESCE(deleted_ms, ?) WHERE id = ?", (now_ms, space_id)
    )
    slugs = tuple(
        r[0] for r in conn.execute("SELECT slug FROM links WHERE space_id = ?", (space_id,))
    )
    for table in ("links", "destinations"):
        conn.execute(
            f"UPDATE {table} SET deleted_ms = COALESCE(deleted_ms, ?), enabled = 0"
            " WHERE space_id = ?",
            (now_ms, space_id),
        )
    gone = conn.execute("DELETE FROM credentials WHERE space_id = ?", (space_id,)).rowcount
    return Marked(space_id, {"credentials": gone}, slugs)


def delete_space_batch(conn: sqlite3.Connection, space_id: int, limit: int = BATCH) -> Batch:
    """Delete up to ``limit`` rows of a space marked deleted, children first; the batch that
    finds nothing left tells the report rollup to forget the space."""
    removed: dict[str, int] = {}
    budget = limit
    for key, table in _SPACE_ROWS:
        if budget <= 0:
            break
        gone = delete_rows(conn, table, "space_id = ?", (space_id,), budget)
        if table == "deliveries":
            removed = counts(SPACE_KEYS, removed, delivery_counts(r[0] for r in gone))
        else:
            removed[key] = removed.get(key, 0) + len(gone)
        budget -= len(gone)
    if budget > 0:  # the uids the report backlog still holds for the space
        budget -= conn.execute(
            "UPDATE report_backlog SET uid = NULL WHERE id IN (SELECT id FROM report_backlog"
            " WHERE space_id = ? AND uid IS NOT NULL LIMIT ?)",
            (space_id, budget),
        ).rowcount
    done = budget > 0 and not _space_rows_left(conn, space_id)
    if done:
        record_removal(conn, "space", space_id)
    return Batch(counts(SPACE_KEYS, removed), done)


# ----------------------------------------------------------------------------- links


def _link_row(conn: sqlite3.Connection, space_id: int, slug: str) -> sqlite3.Row | None:
    """The link of the space with this slug, also one being deleted; None if there is none or
    its space is deleted."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT l.id, l.deleted_ms FROM links l JOIN spaces s ON s.id = l.space_id"
        " WHERE l.space_id = ? AND l.slug = ? AND s.deleted_ms IS NULL",
        (space_id, slug),
    ).fetchone()


def link_counts(conn: sqlite3.Connection, space_id: int, slug: str) -> dict[str, int] | None:
    """What deleting the link takes: the link; its clicks and their events stay, without it."""
    row = _link_row(conn, space_id, slug)
    if row is None:
        return None
    clicks = conn.execute("SELECT count(*) FROM clicks WHERE link_id = ?", (row["id"],))
    events = conn.execute(
        "SELECT count(*) FROM inbox WHERE space_id = ?"
        " AND uid IN (SELECT uid FROM clicks WHERE link_id = ?)",
        (space_id, row["id"]),
    )
    unrecorded = conn.execute(
        "SELECT count(*) FROM unrecorded_clicks WHERE link_id = ? AND space_id = ?",
        (row["id"], space_id),
    )
    return counts(LINK_KEYS, {"links": 1, "clicks_unlinked": clicks.fetchone()[0],
                              "events_unlinked": events.fetchone()[0],
                              "unrecorded_clicks": unrecorded.fetchone()[0]})  # fmt: skip


def slug_of_link(conn: sqlite3.Connection, space_id: int, link_id: int) -> str | None:
    row = conn.execute(
        "SELECT slug FROM links WHERE id = ? AND space_id = ?", (link_id, space_id)
    ).fetchone()
    return str(row[0]) if row else None


def mark_link(conn: sqlite3.Connection, space_id: int, slug: str, now_ms: int) -> Marked | None:
    """Mark the link deleted: its landing and redirect answer 404 from now on."""
    row = _link_row(conn, space_id, slug)
    if row is None:
        return None
    conn.execute(
        "UPDATE links SET deleted_ms = COALESCE(deleted_ms, ?), enabled = 0 WHERE id = ?",
        (now_ms, row["id"]),
    )
    return Marked(int(row["id"]), slugs=(slug,))


def delete_link_batch(
    conn: sqlite3.Connection, space_id: int, link_id: int, limit: int = BATCH
) -> Batch:
    """Take the link off up to ``limit`` of its clicks (they and their events stay, under no
    link); the batch that finds none left deletes the link and tells the report rollup."""
    clicks = conn.execute(
        "SELECT id, uid FROM clicks WHERE link_id = ? AND space_id = ? LIMIT ?",
        (link_id, space_id, limit),
    ).fetchall()
    events = 0
    for chunk in chunks([r["uid"] for r in clicks]):
        events += conn.execute(
            f"SELECT count(*) FROM inbox WHERE space_id = ? AND uid IN ({qmarks(chunk)})",
            (space_id, *chunk),
        ).fetchone()[0]
    for chunk in chunks([r["id"] for r in clicks]):
        conn.execute(f"UPDATE clicks SET link_id = NULL WHERE id IN ({qmarks(chunk)})", chunk)
    removed = {"clicks_unlinked": len(clicks), "events_unlinked": events}
    done = len(clicks) < limit
    if done:
        # the visits it answered but did not record are counted per link: they go with it
        removed["unrecorded_clicks"] = conn.execute(
            "DELETE FROM unrecorded_clicks WHERE link_id = ? AND space_id = ?", (link_id, space_id)
        ).rowcount
        removed["links"] = conn.execute(
            "DELETE FROM links WHERE id = ? AND space_id = ?", (link_id, space_id)
        ).rowcount
        record_removal(conn, "link", space_id, link_id=link_id)
    return Batch(counts(LINK_KEYS, removed), done)


# ----------------------------------------------------------------------------- destinations


def _destination_row(
    conn: sqlite3.Connection, space_id: int, destination_id: int
) -> sqlite3.Row | None:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT d.id FROM destinations d JOIN spaces s ON s.id = d.space_id"
        " WHERE d.space_id = ? AND d.id = ? AND s.deleted_ms IS NULL",
        (space_id, destination_id),
    ).fetchone()


def destination_counts(
    conn: sqlite3.Connection, space_id: int, destination_id: int
) -> dict[str, int] | None:
    """What deleting the destination takes: it, and every delivery to it (those not sent yet
    are dropped) with their attempts."""
    if _destination_row(conn, space_id, destination_id) is None:
        return None
    found = {"destinations": 1, **_by_status(conn, "destination_id", destination_id)}
    found["delivery_attempts"] = conn.execute(
        "SELECT count(*) FROM delivery_attempts WHERE delivery_id IN"
        " (SELECT id FROM deliveries WHERE destination_id = ?)",
        (destination_id,),
    ).fetchone()[0]
    return counts(DESTINATION_KEYS, found)


def mark_destination(
    conn: sqlite3.Connection, space_id: int, destination_id: int, now_ms: int
) -> Marked | None:
    """Mark the destination deleted: no event is routed to it, no worker sends to it."""
    if _destination_row(conn, space_id, destination_id) is None:
        return None
    conn.execute(
        "UPDATE destinations SET deleted_ms = COALESCE(deleted_ms, ?), enabled = 0 WHERE id = ?",
        (now_ms, destination_id),
    )
    return Marked(destination_id)


def delete_destination_batch(
    conn: sqlite3.Connection, space_id: int, destination_id: int, limit: int = BATCH
) -> Batch:
    """Delete up to ``limit`` deliveries of the destination (each with its attempts, a few);
    the batch that finds none left deletes the destination."""
    owner = conn.execute("SELECT space_id FROM destinations WHERE id = ?", (destination_id,))
    if (row := owner.fetchone()) is None or row[0] != space_id:
        return Batch(counts(DESTINATION_KEYS, {}), True)  # not the space's: nothing to delete
    # By destination alone, a delivery's space being its destination's: the index on
    # (destination_id, inbox_id) answers without reading a row. With the space too, the
    # planner believes a busy destination holds every delivery and reads the whole table.
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM deliveries WHERE destination_id = ? LIMIT ?",
            (destination_id, max(1, limit // 4)),
        )
    ]
    removed = delete_deliveries(conn, ids)
    done = not ids
    if done:
        removed["destinations"] = conn.execute(
            "DELETE FROM destinations WHERE id = ? AND space_id = ?", (destination_id, space_id)
        ).rowcount
    return Batch(counts(DESTINATION_KEYS, removed), done)


def _by_status(conn: sqlite3.Connection, column: str, value: int) -> dict[str, int]:
    """Deliveries by count key (pending, sent, failed) where ``column`` is ``value``."""
    found: dict[str, int] = {}
    for status, n in conn.execute(
        f"SELECT status, count(*) FROM deliveries WHERE {column} = ? GROUP BY status", (value,)
    ):
        for key in delivery_counts([status]):
            found[key] = found.get(key, 0) + n
    return found


# ------------------------------------------------------ unfinished runs, the rollup's removals


def unfinished(conn: sqlite3.Connection, marked_before_ms: int) -> list[tuple[str, int, int]]:
    """Deletions marked before ``marked_before_ms`` and not finished (a crash, a stopped CLI,
    a row that landed late): ``(kind, space_id, id)``, kind "space", "link" or "destination"."""
    found: list[tuple[str, int, int]] = []
    for row in conn.execute(
        "SELECT id, deleted_ms, created_ms, name FROM spaces"
        " WHERE deleted_ms IS NOT NULL AND deleted_ms < ?",
        (marked_before_ms,),
    ).fetchall():
        if not is_placeholder_space(row) and _space_rows_left(conn, row["id"]):
            found.append(("space", row["id"], row["id"]))
    for kind, table in (("link", "links"), ("destination", "destinations")):
        found += [
            (kind, space_id, row_id)
            for space_id, row_id in conn.execute(  # those of a deleted space go with it
                f"SELECT t.space_id, t.id FROM {table} t JOIN spaces s ON s.id = t.space_id"
                f" WHERE t.deleted_ms IS NOT NULL AND t.deleted_ms < ? AND s.deleted_ms IS NULL",
                (marked_before_ms,),
            )
        ]
    return found


def prune_removals(conn: sqlite3.Connection, upto: int) -> int:
    """Forget the entries of ``report_removals`` the report rollup has applied (up to the id
    ``upto``): the uids of erased people must not stay there."""
    return conn.execute("DELETE FROM report_removals WHERE id <= ?", (upto,)).rowcount


def removals_pending(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM report_removals LIMIT 1").fetchone() is not None
