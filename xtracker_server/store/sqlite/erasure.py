"""Erasing what a space holds about one person: a uid, or a Telegram user id
(``domain/deletion.py`` says what it takes; ``xtracker_server/deletion.py`` runs it).

``erase_person`` deletes in one transaction what the indexes find (the uids' clicks, binds and
events, and a Telegram user's unattributed events); what only a scan finds (events sent with the
``tg_id`` under another uid, postback log rows naming the person) is looked for by a read
(``find_tg_events``, ``find_log_rows``) and deleted by id in batches (``erase_events``,
``delete_log_rows``). Erased content is overwritten in the file's pages (``secure_delete``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from xtracker_server.domain.deletion import (
    ERASURE_KEYS,
    Person,
    counts,
    delivery_counts,
    log_needles,
    log_row_names,
)
from xtracker_server.domain.entities import Erased
from xtracker_server.store.sqlite.db import MAX_PARAMS
from xtracker_server.store.sqlite.purge import (
    chunks,
    delete_deliveries,
    delete_rows,
    qmarks,
    record_removal,
)
from xtracker_server.store.sqlite.spaces import get_space

__all__ = [
    "Erased",
    "delete_log_rows",
    "erase_events",
    "erase_person",
    "erasure_counts",
    "find_log_rows",
    "find_tg_events",
]


def erasure_counts(
    conn: sqlite3.Connection, space_id: int, person: Person
) -> dict[str, int] | None:
    """What erasing the person takes (a read: scans included); None if there is no such space."""
    if get_space(conn, space_id) is None:
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
    for chunk in chunks([d for d, _ in deliveries]):
        found["delivery_attempts"] = (
            found.get("delivery_attempts", 0)
            + conn.execute(
                f"SELECT count(*) FROM delivery_attempts WHERE delivery_id IN ({qmarks(chunk)})",
                chunk,
            ).fetchone()[0]
        )
    return counts(ERASURE_KEYS, found, delivery_counts(s for _, s in deliveries))


def erase_person(conn: sqlite3.Connection, space_id: int, person: Person) -> Erased | None:
    """Erase what the indexes find of the person in the space: their uids' clicks, binds and
    events (with their deliveries), and, by ``tg_id``, the user's binds and unattributed events.
    The caller then erases what ``find_tg_events`` and ``find_log_rows`` find. None if there
    is no such space."""
    if get_space(conn, space_id) is None:
        return None
    with _secure_delete(conn):
        uids = _uids_of(conn, space_id, person)
        removed = _erase_events(conn, space_id, _indexed_events(conn, space_id, person, uids), uids)
        binds = _binds_of(conn, space_id, person, uids)
        for chunk in chunks(binds):
            removed["binds"] = (
                removed.get("binds", 0)
                + conn.execute(
                    f"DELETE FROM binds WHERE rowid IN ({qmarks(chunk)})", chunk
                ).rowcount
            )
        clicks: dict[str, int] = {}  # the rollup's cube finds an erased uid by its click's id
        for chunk in chunks(uids):
            where = f"space_id = ? AND uid IN ({qmarks(chunk)})"
            clicks.update(conn.execute(f"SELECT uid, id FROM clicks WHERE {where}",
                                       (space_id, *chunk)).fetchall())  # fmt: skip
            removed["clicks"] = removed.get("clicks", 0) + len(
                delete_rows(conn, "clicks", where, (space_id, *chunk))
            )
            # Entries of the report backlog not applied yet keep no uid of theirs: the rollup
            # drops every row of the uid (below), so what those entries would do is moot.
            conn.execute(f"UPDATE report_backlog SET uid = NULL WHERE {where}", (space_id, *chunk))
        for uid in uids:
            record_removal(conn, "uid", space_id, uid=uid, click_id=clicks.get(uid))
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
        for chunk in chunks(ids):
            rows += [
                (r[0], r[1])
                for r in conn.execute(
                    f"SELECT id, uid FROM inbox WHERE space_id = ? AND id IN ({qmarks(chunk)})",
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
        f" AND (uid IN ({qmarks(uids)}) OR {mention})",
        (space_id, *uids, *(n for needle in needles for n in (needle, needle))),
    )
    return [r[0] for r in rows if log_row_names(r[1], r[2], r[3], uids, tg_id)]


def delete_log_rows(conn: sqlite3.Connection, space_id: int, ids: Sequence[int]) -> dict[str, int]:
    """Delete these postback log rows of the space."""
    with _secure_delete(conn):
        gone = 0
        for chunk in chunks(ids):
            gone += conn.execute(
                f"DELETE FROM postback_log WHERE space_id = ? AND id IN ({qmarks(chunk)})",
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
    for chunk in chunks(uids):
        found |= {
            r[0]
            for r in conn.execute(
                f"SELECT rowid FROM binds WHERE space_id = ? AND uid IN ({qmarks(chunk)})",
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
    for chunk in chunks(uids):
        rows += [
            (r[0], r[1])
            for r in conn.execute(
                f"SELECT id, uid FROM inbox WHERE space_id = ? AND uid IN ({qmarks(chunk)})",
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
    ones whose uid is not erased as a whole (a uid's rows all go by its own entry), those
    without a uid among them (the rollup's line of them: store/sqlite/rollup_loose.py)."""
    whole = set(erased_uids)
    ids = [i for i, _ in rows]
    removed = delete_deliveries(conn, [d for d, _ in _deliveries_of(conn, space_id, ids)])
    for inbox_id, uid in rows:
        if uid not in whole:
            record_removal(conn, "event", space_id, uid=uid, inbox_id=inbox_id)
    events = 0
    for chunk in chunks(ids):
        events += len(delete_rows(conn, "inbox", f"id IN ({qmarks(chunk)})", chunk))
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
        for chunk in chunks(inbox_ids, MAX_PARAMS - 1):
            found += [
                (r[0], r[1])
                for r in conn.execute(
                    f"SELECT id, status FROM deliveries WHERE destination_id = ?"
                    f" AND inbox_id IN ({qmarks(chunk)})",
                    (destination_id, *chunk),
                )
            ]
    return found


def _count_in(
    conn: sqlite3.Connection, table: str, column: str, space_id: int, values: Sequence[str]
) -> int:
    return sum(
        conn.execute(
            f"SELECT count(*) FROM {table} WHERE space_id = ? AND {column} IN ({qmarks(chunk)})",
            (space_id, *chunk),
        ).fetchone()[0]
        for chunk in chunks(values)
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
