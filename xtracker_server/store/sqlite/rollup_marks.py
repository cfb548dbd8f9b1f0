"""How far the report rollup (store/sqlite/rollup.py) has applied the main file's logs of
changes, ``report_removals`` and ``report_backlog``, and the pruning of the backlog's applied
entries: what deletion.py and housekeeping.py ask the store."""

from __future__ import annotations

import sqlite3

__all__ = ["applied_backlog", "applied_removals", "prune_backlog"]


def applied_removals(conn: sqlite3.Connection) -> int:
    """The last entry of ``report_removals`` the rollup has applied (0: none, or no rollup)."""
    try:
        row = conn.execute("SELECT removal_id FROM reports.removals_state").fetchone()
    except sqlite3.OperationalError:  # no rollup file was ever built
        return 0
    return int(row[0]) if row else 0


def applied_backlog(conn: sqlite3.Connection) -> int:
    """The last entry of ``report_backlog`` the rollup has applied (0: none, or no rollup)."""
    try:
        row = conn.execute("SELECT backlog_id FROM reports.rollup_state").fetchone()
    except sqlite3.OperationalError:  # no rollup file was ever built
        return 0
    return int(row[0]) if row else 0


def prune_backlog(conn: sqlite3.Connection, upto: int, limit: int = 1000) -> int:
    """Delete up to ``limit`` entries of ``report_backlog`` the rollup has applied (ids up to
    ``upto``, ``applied_backlog``), oldest first; returns how many (housekeeping.py). A rollup
    built again from the inbox needs none of them. The newest entry stays: the rollup's
    watermark must never be past the backlog's end (``_stale``), and SQLite would hand its id
    out again."""
    return conn.execute(
        "DELETE FROM report_backlog WHERE id IN (SELECT id FROM report_backlog WHERE id <= ?"
        " AND id < (SELECT max(id) FROM report_backlog) ORDER BY id LIMIT ?)",
        (upto, limit),
    ).rowcount
