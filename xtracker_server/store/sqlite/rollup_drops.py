"""What leaves the report rollup (store/sqlite/rollup.py runs these in its rounds): events a
bearer bind moved off a uid (``report_backlog``), and what an erasure or a deletion took
(``report_removals``, store/sqlite/purge.py): rows of erased uids, single events (with a uid or
without), a deleted link's rows (they follow their click again), a deleted space's rows."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from xtracker_server.store.sqlite import rollup_loose
from xtracker_server.store.sqlite.lazy import LazyModule
from xtracker_server.store.sqlite.rollup_marks import BACKLOG, REMOVALS, unread

if TYPE_CHECKING:
    from xtracker_server.store.sqlite import cube_feed
else:  # only a rollup with the report cube needs it (store/sqlite/lazy.py)
    cube_feed = LazyModule("xtracker_server.store.sqlite.cube_feed")

__all__ = ["deleted", "erased", "moved", "removals"]


def moved(conn: sqlite3.Connection, backlog_seen: int, backlog_top: int) -> None:
    """Take the events that left a uid (a bearer bind replaced the token bind that had
    attributed them: migration 5) off that uid's rows. Rare, so one event at a time."""
    moved = conn.execute(
        "SELECT space_id, uid, inbox_id FROM main.report_backlog"
        f" WHERE {unread(BACKLOG)} AND kind = 'attributed' AND uid IS NOT NULL ORDER BY id",
        (backlog_seen, backlog_top),
    ).fetchall()
    for space_id, uid, inbox_id in moved:
        _drop_event(conn, space_id, uid, inbox_id)


def _drop_event(conn: sqlite3.Connection, space_id: int, uid: str, inbox_id: int) -> None:
    """Take one event off the rows of ``uid`` (if it was rolled up under it): the uid's next
    event of the step then follows the one before."""
    # INDEXED BY: without statistics the planner takes the primary key's space_id prefix
    # for selective and walks the whole space's rollup.
    row = conn.execute(
        "SELECT link_id, event, at_ms, prev_ms FROM reports.report_steps"
        " INDEXED BY report_steps_uid WHERE space_id = ? AND uid = ? AND inbox_id = ?",
        (space_id, uid, inbox_id),
    ).fetchone()
    if row is None:  # never rolled up under that uid
        return
    link_id, event, at_ms, prev_ms = row
    # a reversal, or a deposit, that left: so did the match it made
    conn.execute(
        "DELETE FROM reports.report_reversed WHERE space_id = ? AND deposit_id = ?",
        (space_id, inbox_id),
    )
    conn.execute("DELETE FROM reports.report_reversed WHERE reversal_id = ?", (inbox_id,))
    conn.execute(
        "DELETE FROM reports.report_reversals WHERE space_id = ? AND uid = ? AND reversal_id = ?",
        (space_id, uid, inbox_id),
    )
    conn.execute(
        "UPDATE reports.report_steps SET prev_ms = ?"
        " WHERE (space_id, link_id, event, at_ms, inbox_id) = ("
        "  SELECT space_id, link_id, event, at_ms, inbox_id FROM reports.report_steps"
        "  WHERE space_id = ? AND uid = ? AND event = ? AND (at_ms, inbox_id) > (?, ?)"
        "  ORDER BY at_ms, inbox_id LIMIT 1)",
        (prev_ms, space_id, uid, event, at_ms, inbox_id),
    )
    conn.execute(
        "DELETE FROM reports.report_steps"
        " WHERE (space_id, link_id, event, at_ms, inbox_id) = (?, ?, ?, ?, ?)",
        (space_id, link_id, event, at_ms, inbox_id),
    )


def removals(conn: sqlite3.Connection, seen: int, top: int, kinds: tuple[str, ...]) -> list[Any]:
    marks = ", ".join("?" * len(kinds))
    return conn.execute(
        "SELECT kind, space_id, uid, inbox_id, link_id, click_id FROM main.report_removals"
        f" WHERE {unread(REMOVALS)} AND kind IN ({marks}) ORDER BY id",
        (seen, top, *kinds),
    ).fetchall()


def erased(conn: sqlite3.Connection, seen: int, top: int, cube: bool) -> None:
    """What an erasure took (store/sqlite/erasure.py): every row of an erased uid, and single events
    rolled up under a uid that stays. Before anything is fed: the uid's rows still here are
    then all from before the erasure (an event it sends later is kept), and an event moved off
    an erased uid is fed under its new uid rather than taken for the old row."""
    for kind, space_id, uid, inbox_id, _, click_id in removals(conn, seen, top, ("uid", "event")):
        if cube and click_id is not None:  # an erased uid's click (gone from main.clicks)
            cube_feed.touch(conn, "VALUES (?, ?)", (space_id, click_id))
        elif cube and uid is not None:  # one event of a uid that stays
            cube_feed.touch_uids(conn, "SELECT ? AS space_id, ? AS uid", (space_id, uid))
        if kind == "uid":
            conn.execute(
                "DELETE FROM reports.report_steps WHERE space_id = ? AND uid = ?", (space_id, uid)
            )
            for table in ("report_reversed", "report_reversals"):
                conn.execute(
                    f"DELETE FROM reports.{table} WHERE space_id = ? AND uid = ?", (space_id, uid)
                )
        else:  # one event: rolled up under its uid, or on the line of those without one
            if uid is not None:
                _drop_event(conn, space_id, uid, inbox_id)
            rollup_loose.drop(conn, inbox_id)


def deleted(conn: sqlite3.Connection, seen: int, top: int, cube: bool) -> None:
    """What a deletion took: a deleted link's rows follow their uid's click again (no link now;
    its id may be a new link's), a deleted space's rows go. After the backlog's clicks."""
    for kind, space_id, _, _, link_id, _ in removals(conn, seen, top, ("link", "space")):
        if cube and kind == "link":
            cube_feed.touch_link(conn, space_id, link_id)
        if kind == "space":
            conn.execute("DELETE FROM reports.report_steps WHERE space_id = ?", (space_id,))
            conn.execute("DELETE FROM reports.report_reversed WHERE space_id = ?", (space_id,))
            conn.execute("DELETE FROM reports.report_reversals WHERE space_id = ?", (space_id,))
            rollup_loose.drop_space(conn, space_id)
            continue
        conn.execute(
            "UPDATE OR REPLACE reports.report_steps SET link_id = COALESCE((SELECT"
            " COALESCE(link_id, 0) FROM main.clicks c WHERE c.space_id = report_steps.space_id"
            " AND c.uid = report_steps.uid), -1)"
            " WHERE space_id = ? AND link_id = ?",
            (space_id, link_id),
        )
