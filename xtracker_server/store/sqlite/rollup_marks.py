"""How far the report rollup (store/sqlite/rollup.py) has got: the tables it follows and its
watermark in each (``Feed``, ``mark``, ``advance``, ``save``); the main file's logs of changes it
applied (``report_removals``, ``report_backlog``) and the pruning of the backlog's applied
entries, what deletion.py and housekeeping.py ask the store; and ``RollupBehind``, what a
catch-up that ran out of its time says of how far it is."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from xtracker_server.domain.watermark import Watermark
from xtracker_server.store.sqlite.faults import RollupBehind as RollupBehind  # raised here

__all__ = [
    "BACKLOG",
    "CLICKS",
    "FEEDS",
    "INBOX",
    "REMOVALS",
    "ROLLUP_GAP_S",
    "ROLLUP_MAX_GAPS",
    "Feed",
    "RollupBehind",
    "advance",
    "applied_backlog",
    "applied_removals",
    "mark",
    "next_top",
    "progress",
    "prune_backlog",
    "save",
    "unread",
]

#: An id missing below one already read is waited for this long (seconds) before it is given
#: up: longer than any write transaction stays open. A live stream waits less (domain/tail.py).
ROLLUP_GAP_S = 600.0
#: At most this many gaps per table, none more than this many ids below its newest.
ROLLUP_MAX_GAPS = 100_000


@dataclass(frozen=True)
class Feed:
    """A table the rollup follows, and where its low mark is kept."""

    name: str
    table: str
    state: str  # the table and column of the low mark
    column: str


INBOX = Feed("inbox", "main.inbox", "reports.rollup_state", "inbox_id")
BACKLOG = Feed("backlog", "main.report_backlog", "reports.rollup_state", "backlog_id")
REMOVALS = Feed("removals", "main.report_removals", "reports.removals_state", "removal_id")
FEEDS = (INBOX, BACKLOG, REMOVALS)
#: The clicks, for the cube (store/sqlite/cube_feed.py): a click counts without events.
CLICKS = Feed("clicks", "main.clicks", "reports.cube_state", "click_id")


def unread(feed: Feed, column: str = "id") -> str:
    """SQL: ``column`` is an id of ``feed`` a round reads, above its high mark up to the
    round's top (two parameters) or one of its gaps."""
    return (
        f"(({column} > ? AND {column} <= ?) OR {column} IN"
        f" (SELECT id FROM reports.rollup_gaps WHERE feed = '{feed.name}'))"
    )


def mark(conn: sqlite3.Connection, feed: Feed) -> Watermark:
    low = conn.execute(f"SELECT {feed.column} FROM {feed.state}").fetchone()[0]
    row = conn.execute("SELECT high FROM reports.rollup_marks WHERE feed = ?", (feed.name,))
    high = row.fetchone()
    gaps = conn.execute("SELECT id, since_s FROM reports.rollup_gaps WHERE feed = ?", (feed.name,))
    return Watermark(low if high is None else max(low, high[0]), dict(gaps.fetchall()))


def save(conn: sqlite3.Connection, feed: Feed, old: Watermark, new: Watermark) -> None:
    gone = [(feed.name, i) for i in old.gaps if i not in new.gaps]
    if gone:
        conn.executemany("DELETE FROM reports.rollup_gaps WHERE feed = ? AND id = ?", gone)
    added = [(feed.name, i, t) for i, t in new.gaps.items() if i not in old.gaps]
    if added:
        conn.executemany("INSERT INTO reports.rollup_gaps VALUES (?, ?, ?)", added)
    conn.execute(
        "INSERT INTO reports.rollup_marks VALUES (?, ?)"
        " ON CONFLICT (feed) DO UPDATE SET high = excluded.high",
        (feed.name, new.high),
    )
    conn.execute(f"UPDATE {feed.state} SET {feed.column} = ?", (new.low,))


def advance(
    conn: sqlite3.Connection, feed: Feed, mark: Watermark, read: list[int], top: int, now: float
) -> Watermark:
    newest = conn.execute(f"SELECT max(id) FROM {feed.table}").fetchone()[0] or 0
    return mark.advance(read, top, now, gap_s=ROLLUP_GAP_S, max_gaps=ROLLUP_MAX_GAPS, newest=newest)


def next_top(conn: sqlite3.Connection, feed: Feed, mark: Watermark, size: int) -> int | None:
    """The highest id of the next ``size`` rows of ``feed`` above its high mark (None: none)."""
    sql = f"SELECT max(id) FROM (SELECT id FROM {feed.table} WHERE id > ? ORDER BY id LIMIT ?)"
    top = conn.execute(sql, (mark.high, size)).fetchone()[0]
    return None if top is None else int(top)


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
