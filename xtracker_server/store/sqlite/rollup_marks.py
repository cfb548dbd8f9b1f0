"""How far the report rollup (store/sqlite/rollup.py) has got: the main file's logs of changes it
applied (``report_removals``, ``report_backlog``) and the pruning of the backlog's applied
entries, what deletion.py and housekeeping.py ask the store; and ``RollupBehind``, what a
catch-up that ran out of its time says of how far it is."""

from __future__ import annotations

import sqlite3

from xtracker_server.exceptions import XTrackerServerError

__all__ = ["RollupBehind", "applied_backlog", "applied_removals", "progress", "prune_backlog"]


class RollupBehind(XTrackerServerError, RuntimeError):
    """A catch-up given a time (``catch_up(budget_s=...)``) ran out of it before the rollup
    reached the last commit: it is being built (a new rollup, a rebuild, the report cube built
    from the clicks), and ``progress`` says how far."""

    def __init__(self, progress: str) -> None:
        super().__init__(progress)
        self.progress = progress


def progress(conn: sqlite3.Connection) -> str:
    """How far the rollup has read the inbox (and, with the report cube, the clicks), as text."""
    parts = []
    for what, mark, table in (
        ("inbox rows", "SELECT inbox_id FROM reports.rollup_state", "main.inbox"),
        ("clicks", "SELECT click_id FROM reports.cube_state", "main.clicks"),
    ):
        try:
            row = conn.execute(mark).fetchone()
        except sqlite3.OperationalError:  # no cube
            continue
        top = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        parts.append(f"{min(row[0] if row else 0, top):,} of {top:,} {what}")
    return ", ".join(parts)


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
