"""The idle server's probe of the storage (store/health.py): a one-row write and a read."""

from __future__ import annotations

import sqlite3

__all__ = ["schema_version", "touch_probe"]


def touch_probe(conn: sqlite3.Connection, now_ms: int) -> None:
    """The idle server's write probe: one row, rewritten."""
    conn.execute(
        "INSERT INTO health_probe (id, at_ms) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
        (now_ms,),
    )


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
