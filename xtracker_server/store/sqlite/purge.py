"""Deleting rows for the deletions (``store/sqlite/deletion.py``) and the erasure
(``store/sqlite/erasure.py``).

Row ids of clicks, inbox and delivery_attempts never go down: the report rollup and the live
stream follow those tables by id, and SQLite gives a new row the largest id plus one, so
deleting a table's newest row would hand its id out again, to a row they would never read.
``delete_rows`` that takes a table's newest row puts a placeholder with that id in the
placeholder space: a deleted space, seen by nobody (``is_placeholder_space``).

What left is told to the report rollup through ``report_removals`` (``record_removal``,
store/sqlite/rollup.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from xtracker_server.domain.deletion import DESTINATION_KEYS, counts, delivery_counts
from xtracker_server.store.sqlite.db import MAX_PARAMS

__all__ = [
    "chunks",
    "delete_deliveries",
    "delete_rows",
    "is_placeholder_space",
    "qmarks",
    "record_removal",
]

#: How a row of a table without a rowid is named (its primary key).
_ROW_KEY = {"unrecorded_clicks": "space_id, hour_ms, link_id, reason"}
#: Tables followed by id (the rollup, the live stream): their newest id must stay.
_FOLLOWED = ("clicks", "inbox", "delivery_attempts")
_PLACEHOLDERS = "(placeholders of deleted rows)"


def is_placeholder_space(row: sqlite3.Row) -> bool:
    return bool(row["created_ms"] == 0 and row["deleted_ms"] == 0 and row["name"] == _PLACEHOLDERS)


def delete_rows(
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


def delete_deliveries(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[str, int]:
    """Delete these deliveries and their attempts; the counts removed."""
    removed: dict[str, int] = {}
    for chunk in chunks(ids):
        attempts = delete_rows(
            conn, "delivery_attempts", f"delivery_id IN ({qmarks(chunk)})", chunk
        )
        gone = delete_rows(conn, "deliveries", f"id IN ({qmarks(chunk)})", chunk)
        removed = counts(DESTINATION_KEYS, removed, delivery_counts(r[0] for r in gone),
                         {"delivery_attempts": len(attempts)})  # fmt: skip
    return removed


def record_removal(conn: sqlite3.Connection, kind: str, space_id: int, **what: Any) -> None:
    """Tell the report rollup what left: a ``kind`` ("space", "link", "uid", "event") and
    what names it (``uid``, ``inbox_id``, ``link_id``; an erased uid's ``click_id``)."""
    conn.execute(
        "INSERT INTO report_removals (kind, space_id, uid, inbox_id, link_id, click_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (kind, space_id, *(what.get(k) for k in ("uid", "inbox_id", "link_id", "click_id"))),
    )


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


def qmarks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


def chunks(values: Sequence[Any], size: int = MAX_PARAMS - 2) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
