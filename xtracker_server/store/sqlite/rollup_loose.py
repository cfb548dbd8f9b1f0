"""The funnel's line of events without a uid (issue 17 §2, §6), kept by the report rollup so
that a report reads a bounded number of rows rather than every such event of its window.

``report_loose`` holds a row per event without a uid (not a test, a funnel step) the rollup
has read: fed from the inbox with the attributed events, taken off when a bind gives the event
a uid (``report_backlog``'s 'attributed' entry) or an erasure takes it (``report_removals``),
put back when a bearer bind lets a token bind's events go. Triggers log each row added or taken
off into ``activity_log`` under the key ``LOOSE`` with no previous event, so the rollup's round
folds them into ``report_activity`` (rows per step and bucket) and ``report_activity_money``
(deposit rows and exact amounts per bucket and currency) like the steps' rows
(store/sqlite/rollup_activity.py). Rows, not distinct uids (these events have none): their
counts add up across buckets (store/sqlite/reports_loose.py reads them).
"""

from __future__ import annotations

import sqlite3

from xtracker_server.store.sqlite.rollup_activity import LOOSE, STEPS_IN, amount_parts

__all__ = ["LOOSE_SCHEMA", "drop", "drop_space", "feed", "fill", "rebind"]


def _log(row: str, sign: int) -> str:
    return f"""INSERT INTO activity_log VALUES ({row}.space_id, {LOOSE}, {row}.event,
    {row}.at_ms, NULL, {row}.currency, {row}.scale, {row}.units, {row}.fraction, {sign}, 0);"""


LOOSE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reports.report_loose (
        inbox_id  INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL,
        event     TEXT NOT NULL,
        at_ms     INTEGER NOT NULL,  -- the event's occurred_at_ms
        currency  TEXT,              -- a deposit's amount, as in report_steps
        units     INTEGER,
        fraction  INTEGER,
        scale     INTEGER
    )""",
    """CREATE INDEX IF NOT EXISTS reports.report_loose_time
        ON report_loose(space_id, at_ms, event, currency, scale, units, fraction)""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_loose_added AFTER INSERT ON report_loose
    BEGIN {_log("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_loose_taken AFTER DELETE ON report_loose
    BEGIN {_log("OLD", -1)} END""",
)

_FEED = (
    "INSERT OR IGNORE INTO reports.report_loose SELECT id, space_id, event, occurred_at_ms,"
    f" currency, {', '.join(amount_parts('value'))} FROM main.inbox"
)
#: The inbox rows that belong in ``report_loose``.
_LOOSE = f"uid IS NULL AND test = 0 AND event IN {STEPS_IN}"


def feed(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> int:
    """Roll up the events without a uid among the inbox rows ``where`` (what a round reads)."""
    return conn.execute(f"{_FEED} WHERE ({where}) AND {_LOOSE}", args).rowcount


def rebind(conn: sqlite3.Connection, entries: str, args: tuple[object, ...], high: int) -> None:
    """The events of the backlog's 'attributed' ``entries`` (SQL on ``main.report_backlog``
    with ``args``) changed uid: off this line, and back on it if they have none now (read by
    the rollup already: at most ``high``; a later one comes through the inbox)."""
    ids = f"SELECT inbox_id FROM main.report_backlog WHERE {entries} AND kind = 'attributed'"
    conn.execute(f"DELETE FROM reports.report_loose WHERE inbox_id IN ({ids})", args)
    feed(conn, f"id IN ({ids}) AND id <= ?", (*args, high))


def drop(conn: sqlite3.Connection, inbox_id: int) -> None:
    """An erased event (with a uid or without)."""
    conn.execute("DELETE FROM reports.report_loose WHERE inbox_id = ?", (inbox_id,))


def drop_space(conn: sqlite3.Connection, space_id: int) -> None:
    conn.execute("DELETE FROM reports.report_loose WHERE space_id = ?", (space_id,))


def fill(conn: sqlite3.Connection, high: int) -> None:
    """A rollup from before this line: the events without a uid it has read (ids up to its
    inbox mark ``high`` but its gaps), from the inbox's partial index of them."""
    feed(conn, "id <= ? AND id NOT IN (SELECT id FROM reports.rollup_gaps WHERE feed = 'inbox')",
         (high,))  # fmt: skip
