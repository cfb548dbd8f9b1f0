"""A test-only store operation: a click with an id chosen by the test.

With several writers (PostgreSQL) a row with a lower id can commit after one with a higher id;
one SQLite writer never does that by itself. Tests of the live stream commit ``N + 2`` before
``N + 1`` with this, to check that the stream still delivers both, once each.
"""

from __future__ import annotations

import sqlite3

from xtracker_server.store.sqlite.db import open_db, transaction


def insert_click_with_id(
    conn: sqlite3.Connection, click_id: int, space_id: int, uid: str, at_ms: int
) -> None:
    conn.execute(
        "INSERT INTO clicks (id, space_id, uid, source, created_ms) VALUES (?, ?, ?, 'api', ?)",
        (click_id, space_id, uid, at_ms),
    )


def newest_click_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM clicks").fetchone()[0])


def commit_click_with_id(path: str, click_id: int, space_id: int, uid: str, at_ms: int) -> None:
    """Commit one such click to the database file at ``path`` (as another writer would)."""
    conn = open_db(path)
    try:
        with transaction(conn):
            insert_click_with_id(conn, click_id, space_id, uid, at_ms)
    finally:
        conn.close()
