"""Deleting spaces, links and destinations, and erasing what a space holds about one person
(``domain/deletion.py`` says what each takes; ``xtracker_server/deletion.py`` runs them).

- A deletion first *marks* what it deletes (``deleted_ms``) in one short transaction
  (``mark_space``, ``mark_link``, ``mark_destination``). From then on it is gone for every
  reader: 404, not listed, its landing answers 404, its destinations get nothing; a space's
  credentials are deleted at once and its live streams end. Then its rows go in batches of at
  most ``BATCH`` rows (``delete_*_batch``), each batch one short transaction through the
  writer, so the writer is never held for long. The last batch deletes the link or destination
  row; a deleted space keeps its row (with nothing else), so its id is never given to another
  space. A run stopped half-way (a crash) is finished by the next deletion of the same thing,
  or by the server (``unfinished``).
- An erasure (``erase_person``) deletes in one transaction what the indexes find (the uids'
  clicks, binds and events, and a Telegram user's unattributed events); what only a scan finds
  (events sent with the ``tg_id`` under another uid, postback log rows naming the person) is
  looked for by a read (``find_tg_events``, ``find_log_rows``) and deleted by id in batches.
- Row ids of clicks, inbox and delivery_attempts never go down: the report rollup and the live
  stream follow those tables by id, and SQLite gives a new row the largest id plus one, so
  deleting a table's newest row would hand its id out again, to a row they would never read.
  A deletion that takes a table's newest row puts a placeholder with that id in the
  placeholder space: a deleted space, seen by nobody.
- The report rollup learns what left through ``report_removals`` (store/rollup.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from xtracker_server.domain.deletion import (
    DESTINATION_KEYS,
    ERASURE_KEYS,
    LINK_KEYS,
    SPACE_KEYS,
    Person,
    counts,
    delivery_counts,
    log_needles,
    log_row_names,
)
from xtracker_server.domain.entities import Batch, Erased, Marked
from xtracker_server.store.db import MAX_PARAMS

__all__ = [
    "BATCH",
    "Batch",
    "Erased",
    "Marked",
    "delete_destination_batch",
    "delete_link_batch",
    "delete_log_rows",
    "delete_space_batch",
    "destination_counts",
    "erase_events",
    "erase_person",
    "erasure_counts",
    "find_log_rows",
    "find_tg_events",
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
    ("destinations", "destinations"),
    ("links", "links"),
    ("credentials", "credentials"),
)
#: How a row of a table without a rowid is named (its primary key).
_ROW_KEY = {"unrecorded_clicks": "space_id, hour_ms, link_id, reason"}
#: Tables followed by id (the rollup, the live stream): their newest id must stay.
_FOLLOWED = ("clicks", "inbox", "delivery_attempts")
_PLACEHOLDERS = "(placeholders of deleted rows)"


# ----------------------------------------------------------------------------- spaces


def _space_state(conn: sqlite3.Connection, space_id: int) -> str | None:
    """ "live", "deleting" (marked, rows left), or None (no such space, or deleted)."""
    row = conn.execute(
        "SELECT deleted_ms, created_ms, name FROM spaces WHERE id = ?", (space_id,)
    ).fetchone()
    if row is None or _is_placeholder_space(row):
        return None
    if row["deleted_ms"] is None:
        return "live"
    return "deleting" if _space_rows_left(conn, space_id) else None


def _is_placeholder_space(row: sqlite3.Row) -> bool:
    return bool(row["created_ms"] == 0 and row["deleted_ms"] == 0 and row["name"] == _PLACEHOLDERS)


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
        gone = _delete(conn, table, "space_id = ?", (space_id,), budget)
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
        _removal(conn, "space", space_id)
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
    for chunk in _chunks([r["uid"] for r in clicks]):
        events += conn.execute(
            f"SELECT count(*) FROM inbox WHERE space_id = ? AND uid IN ({_marks(chunk)})",
            (space_id, *chunk),
        ).fetchone()[0]
    for chunk in _chunks([r["id"] for r in clicks]):
        conn.execute(f"UPDATE clicks SET link_id = NULL WHERE id IN ({_marks(chunk)})", chunk)
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
        _removal(conn, "link", space_id, link_id=link_id)
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
    removed = _delete_deliveries(conn, ids)
    done = not ids
    if done:
        removed["destinations"] = conn.execute(
            "DELETE FROM destinations WHERE id = ? AND space_id = ?", (destination_id, space_id)
        ).rowcount
    return Batch(counts(DESTINATION_KEYS, removed), done)


def _delete_deliveries(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[str, int]:
    """Delete these deliveries and their attempts; the counts removed."""
    removed: dict[str, int] = {}
    for chunk in _chunks(ids):
        attempts = _delete(conn, "delivery_attempts", f"delivery_id IN ({_marks(chunk)})", chunk)
        gone = _delete(conn, "deliveries", f"id IN ({_marks(chunk)})", chunk)
        removed = counts(DESTINATION_KEYS, removed, delivery_counts(r[0] for r in gone),
                         {"delivery_attempts": len(attempts)})  # fmt: skip
    return removed


# ----------------------------------------------------------------------------- erasure


def erasure_counts(
    conn: sqlite3.Connection, space_id: int, person: Person
) -> dict[str, int] | None:
    """What erasing the person takes (a read: scans included); None if there is no such space."""
    if _space_state(conn, space_id) != "live":
        return None
    uids = _uids_of(conn, space_id, person)
    events = {i for i, _ in _indexed_events(conn, space_id, person, uids)}
    if person.tg_id is not None:
        events |= set(find_tg_events(conn, space_id, person.tg_id))
    found: dict[str, int] = {
        "clicks": _count_in(conn, "clicks", "uid", space_id, uids),
        "binds": len(_binds_of(conn, space_id, person, uids)),
        "events": len(events),
        "postback_log": len(find_log_rows(conn, space_id, uids, person.tg_id)),
    }
    deliveries = _deliveries_of(conn, space_id, sorted(events))
    for chunk in _chunks([d for d, _ in deliveries]):
        found["delivery_attempts"] = (
            found.get("delivery_attempts", 0)
            + conn.execute(
                f"SELECT count(*) FROM delivery_attempts WHERE delivery_id IN ({_marks(chunk)})",
                chunk,
            ).fetchone()[0]
        )
    return counts(ERASURE_KEYS, found, delivery_counts(s for _, s in deliveries))


def erase_person(conn: sqlite3.Connection, space_id: int, person: Person) -> Erased | None:
    """Erase what the indexes find of the person in the space: their uids' clicks, binds and
    events (with their deliveries), and, by ``tg_id``, the user's binds and unattributed events.
    The caller then erases what ``find_tg_events`` and ``find_log_rows`` find. None if there
    is no such space."""
    if _space_state(conn, space_id) != "live":
        return None
    with _secure_delete(conn):
        uids = _uids_of(conn, space_id, person)
        removed = _erase_events(conn, space_id, _indexed_events(conn, space_id, person, uids), uids)
        binds = _binds_of(conn, space_id, person, uids)
        for chunk in _chunks(binds):
            removed["binds"] = (
                removed.get("binds", 0)
                + conn.execute(
                    f"DELETE FROM binds WHERE rowid IN ({_marks(chunk)})", chunk
                ).rowcount
            )
        for chunk in _chunks(uids):
            where = f"space_id = ? AND uid IN ({_marks(chunk)})"
            removed["clicks"] = removed.get("clicks", 0) + len(
                _delete(conn, "clicks", where, (space_id, *chunk))
            )
            # Entries of the report backlog not applied yet keep no uid of theirs: the rollup
            # drops every row of the uid (below), so what those entries would do is moot.
            conn.execute(f"UPDATE report_backlog SET uid = NULL WHERE {where}", (space_id, *chunk))
        for uid in uids:
            _removal(conn, "uid", space_id, uid=uid)
    return Erased(counts(ERASURE_KEYS, removed), tuple(uids))


def find_tg_events(conn: sqlite3.Connection, space_id: int, tg_id: int) -> list[int]:
    """The events sent with this Telegram user id (a read: a scan of the space's events)."""
    rows = conn.execute("SELECT id FROM inbox WHERE space_id = ? AND tg_id = ?", (space_id, tg_id))
    return [r[0] for r in rows]


def erase_events(
    conn: sqlite3.Connection, space_id: int, ids: Sequence[int], uids: Sequence[str]
) -> dict[str, int]:
    """Erase these events of the space (found by ``find_tg_events``) with their deliveries."""
    with _secure_delete(conn):
        rows: list[tuple[int, str | None]] = []
        for chunk in _chunks(ids):
            rows += [
                (r[0], r[1])
                for r in conn.execute(
                    f"SELECT id, uid FROM inbox WHERE space_id = ? AND id IN ({_marks(chunk)})",
                    (space_id, *chunk),
                )
            ]
        return counts(ERASURE_KEYS, _erase_events(conn, space_id, rows, uids))


def find_log_rows(
    conn: sqlite3.Connection, space_id: int, uids: Sequence[str], tg_id: int | None
) -> list[int]:
    """The space's postback log rows about the person (``domain.deletion.log_row_names``): a
    read, looking at the rows that mention one of their uids or their tg_id at all."""
    needles = log_needles(uids, tg_id)
    if not needles:
        return []
    mention = " OR ".join(["instr(query, ?) OR instr(COALESCE(body, ''), ?)"] * len(needles))
    rows = conn.execute(
        f"SELECT id, uid, query, body FROM postback_log WHERE space_id = ?"
        f" AND (uid IN ({_marks(uids)}) OR {mention})",
        (space_id, *uids, *(n for needle in needles for n in (needle, needle))),
    )
    return [r[0] for r in rows if log_row_names(r[1], r[2], r[3], uids, tg_id)]


def delete_log_rows(conn: sqlite3.Connection, space_id: int, ids: Sequence[int]) -> dict[str, int]:
    """Delete these postback log rows of the space."""
    with _secure_delete(conn):
        gone = 0
        for chunk in _chunks(ids):
            gone += conn.execute(
                f"DELETE FROM postback_log WHERE space_id = ? AND id IN ({_marks(chunk)})",
                (space_id, *chunk),
            ).rowcount
    return counts(ERASURE_KEYS, {"postback_log": gone})


def _uids_of(conn: sqlite3.Connection, space_id: int, person: Person) -> list[str]:
    if person.uid is not None:
        return [person.uid]
    rows = conn.execute(  # sorted here: ORDER BY uid would walk the space's binds in uid order
        "SELECT uid FROM binds WHERE space_id = ? AND tg_id = ?", (space_id, person.tg_id)
    )
    return sorted(r[0] for r in rows)


def _binds_of(
    conn: sqlite3.Connection, space_id: int, person: Person, uids: Sequence[str]
) -> list[int]:
    """The rowids of the person's binds: of their uids, and (by tg_id) of the user."""
    found = set()
    for chunk in _chunks(uids):
        found |= {
            r[0]
            for r in conn.execute(
                f"SELECT rowid FROM binds WHERE space_id = ? AND uid IN ({_marks(chunk)})",
                (space_id, *chunk),
            )
        }
    if person.tg_id is not None:
        found |= {
            r[0]
            for r in conn.execute(
                "SELECT rowid FROM binds WHERE space_id = ? AND tg_id = ?", (space_id, person.tg_id)
            )
        }
    return sorted(found)


def _indexed_events(
    conn: sqlite3.Connection, space_id: int, person: Person, uids: Sequence[str]
) -> list[tuple[int, str | None]]:
    """(id, uid) of the events of the uids, and (by tg_id) of the user's unattributed events."""
    rows: list[tuple[int, str | None]] = []
    for chunk in _chunks(uids):
        rows += [
            (r[0], r[1])
            for r in conn.execute(
                f"SELECT id, uid FROM inbox WHERE space_id = ? AND uid IN ({_marks(chunk)})",
                (space_id, *chunk),
            )
        ]
    if person.tg_id is not None:
        rows += [
            (r[0], None)
            for r in conn.execute(
                "SELECT id FROM inbox INDEXED BY inbox_unattributed"
                " WHERE space_id = ? AND tg_id = ? AND uid IS NULL",
                (space_id, person.tg_id),
            )
        ]
    return rows


def _erase_events(
    conn: sqlite3.Connection,
    space_id: int,
    rows: Sequence[tuple[int, str | None]],
    erased_uids: Iterable[str],
) -> dict[str, int]:
    """Delete these events (id, uid) with their deliveries; tell the report rollup about the
    ones whose uid is not erased as a whole (a uid's rows all go by its own entry)."""
    whole = set(erased_uids)
    ids = [i for i, _ in rows]
    removed = _delete_deliveries(conn, [d for d, _ in _deliveries_of(conn, space_id, ids)])
    for inbox_id, uid in rows:
        if uid is not None and uid not in whole:
            _removal(conn, "event", space_id, uid=uid, inbox_id=inbox_id)
    events = 0
    for chunk in _chunks(ids):
        events += len(_delete(conn, "inbox", f"id IN ({_marks(chunk)})", chunk))
    return {**removed, "events": events}


def _deliveries_of(
    conn: sqlite3.Connection, space_id: int, inbox_ids: Sequence[int]
) -> list[tuple[int, str]]:
    """(id, status) of the deliveries of these events: per destination of the space, where
    an index finds them."""
    destinations = [
        r[0] for r in conn.execute("SELECT id FROM destinations WHERE space_id = ?", (space_id,))
    ]
    found: list[tuple[int, str]] = []
    for destination_id in destinations:
        for chunk in _chunks(inbox_ids, MAX_PARAMS - 1):
            found += [
                (r[0], r[1])
                for r in conn.execute(
                    f"SELECT id, status FROM deliveries WHERE destination_id = ?"
                    f" AND inbox_id IN ({_marks(chunk)})",
                    (destination_id, *chunk),
                )
            ]
    return found


def _by_status(conn: sqlite3.Connection, column: str, value: int) -> dict[str, int]:
    """Deliveries by count key (pending, sent, failed) where ``column`` is ``value``."""
    found: dict[str, int] = {}
    for status, n in conn.execute(
        f"SELECT status, count(*) FROM deliveries WHERE {column} = ? GROUP BY status", (value,)
    ):
        for key in delivery_counts([status]):
            found[key] = found.get(key, 0) + n
    return found


def _count_in(
    conn: sqlite3.Connection, table: str, column: str, space_id: int, values: Sequence[str]
) -> int:
    return sum(
        conn.execute(
            f"SELECT count(*) FROM {table} WHERE space_id = ? AND {column} IN ({_marks(chunk)})",
            (space_id, *chunk),
        ).fetchone()[0]
        for chunk in _chunks(values)
    )


class _secure_delete:  # a context manager
    """Overwrite erased content in the file's pages (SQLite's secure_delete) while erasing."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.before = 0

    def __enter__(self) -> None:
        self.before = int(self.conn.execute("PRAGMA secure_delete").fetchone()[0])
        self.conn.execute("PRAGMA secure_delete = ON")

    def __exit__(self, *exc: object) -> None:
        self.conn.execute(f"PRAGMA secure_delete = {self.before}")


# ----------------------------------------------------------------------------- the rest


def unfinished(conn: sqlite3.Connection, marked_before_ms: int) -> list[tuple[str, int, int]]:
    """Deletions marked before ``marked_before_ms`` and not finished (a crash, a stopped CLI,
    a row that landed late): ``(kind, space_id, id)``, kind "space", "link" or "destination"."""
    found: list[tuple[str, int, int]] = []
    for row in conn.execute(
        "SELECT id, deleted_ms, created_ms, name FROM spaces"
        " WHERE deleted_ms IS NOT NULL AND deleted_ms < ?",
        (marked_before_ms,),
    ).fetchall():
        if not _is_placeholder_space(row) and _space_rows_left(conn, row["id"]):
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


def _removal(conn: sqlite3.Connection, kind: str, space_id: int, **what: Any) -> None:
    conn.execute(
        "INSERT INTO report_removals (kind, space_id, uid, inbox_id, link_id)"
        " VALUES (?, ?, ?, ?, ?)",
        (kind, space_id, what.get("uid"), what.get("inbox_id"), what.get("link_id")),
    )


def _delete(
    conn: sqlite3.Connection, table: str, where: str, args: Sequence[Any], limit: int = -1
) -> list[Any]:
    """Delete the rows of ``table`` matching ``where`` (at most ``limit``); returns one row per
    deleted row (deliveries: its status). A followed table keeps its newest id."""
    top = _top(conn, table) if table in _FOLLOWED else None
    returning = "status" if table == "deliveries" else "1"
    key = _ROW_KEY.get(table, "rowid")
    gone = conn.execute(
        f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)"
        f" RETURNING {returning}",
        (*args, limit),
    ).fetchall()
    if top is not None and gone and _top(conn, table) < top:
        _placeholder(conn, table, top)
    return gone


def _top(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0)


def _placeholder_space(conn: sqlite3.Connection) -> int:
    """The space that holds placeholders: a deleted space nobody sees (made when first needed)."""
    row = conn.execute(
        "SELECT id FROM spaces WHERE created_ms = 0 AND deleted_ms = 0 AND name = ?",
        (_PLACEHOLDERS,),
    ).fetchone()
    if row is not None:
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO spaces (name, created_ms, deleted_ms) VALUES (?, 0, 0)", (_PLACEHOLDERS,)
    )
    return int(cur.lastrowid or 0)


def _placeholder(conn: sqlite3.Connection, table: str, row_id: int) -> None:
    """A row with the id ``row_id`` in the placeholder space, holding nothing."""
    space = _placeholder_space(conn)
    if table == "clicks":
        conn.execute(
            "INSERT INTO clicks (id, space_id, uid, source, created_ms)"
            " VALUES (?, ?, ?, 'placeholder', 0)",
            (row_id, space, f"placeholder-{row_id}"),
        )
    elif table == "inbox":
        _placeholder_event(conn, space, row_id)
    else:  # an attempt belongs to a delivery, of an event, to a destination
        delivery = conn.execute(
            "SELECT id FROM deliveries WHERE space_id = ? LIMIT 1", (space,)
        ).fetchone()
        if delivery is None:
            destination = conn.execute(
                "INSERT INTO destinations (space_id, kind, name, enabled, config, event_map,"
                " created_ms, updated_ms, deleted_ms) VALUES (?, 'webhook', 'placeholder', 0,"
                " '{}', '{}', 0, 0, 0)",
                (space,),
            ).lastrowid
            event = _placeholder_event(conn, space, None)
            delivery = conn.execute(
                "INSERT INTO deliveries (space_id, destination_id, inbox_id, event_id,"
                " event_name, status, next_attempt_ms, created_ms, age_from_ms, updated_ms)"
                " VALUES (?, ?, ?, 'placeholder', 'placeholder', 'sent', 0, 0, 0, 0)"
                " RETURNING id",
                (space, destination, event),
            ).fetchone()
        conn.execute(
            "INSERT INTO delivery_attempts (id, delivery_id, space_id, at_ms, latency_ms,"
            " outcome) VALUES (?, ?, ?, 0, 0, 'placeholder')",
            (row_id, delivery[0], space),
        )


def _placeholder_event(conn: sqlite3.Connection, space: int, row_id: int | None) -> int:
    cur = conn.execute(
        "INSERT INTO inbox (id, space_id, dedup_key, event, occurred_at_ms, received_ms, source)"
        " VALUES (?, ?, randomblob(32), 'placeholder', 0, 0, 'placeholder')",
        (row_id, space),
    )
    return int(cur.lastrowid or 0)


def _marks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


def _chunks(values: Sequence[Any], size: int = MAX_PARAMS - 2) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
