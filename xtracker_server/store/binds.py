"""Binds: which Telegram user arrived through which click uid."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from xtracker_server.store.clicks import click_exists


@dataclass(frozen=True)
class BindOutcome:
    matched: bool  # a click with this uid exists in the space
    created: bool  # False: the same pair was already bound (a no-op)
    conflict_tg_id: int | None = None  # set when the uid is bound to another user
    attributed: int = 0  # earlier unattributed events of this user now carrying the uid


def bind(conn: sqlite3.Connection, space_id: int, uid: str, tg_id: int, now_ms: int) -> BindOutcome:
    """Compare-and-set: the first binding of a uid wins. The same pair again is a no-op; a
    different user for a bound uid is a conflict, and the original binding stays."""
    from xtracker_server.store.inbox import attribute_pending  # inbox imports this module

    matched = click_exists(conn, space_id, uid)
    cur = conn.execute(
        "INSERT INTO binds (space_id, uid, tg_id, created_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (space_id, uid) DO NOTHING",
        (space_id, uid, tg_id, now_ms),
    )
    if cur.rowcount == 0:
        bound = conn.execute(
            "SELECT tg_id FROM binds WHERE space_id = ? AND uid = ?", (space_id, uid)
        ).fetchone()["tg_id"]
        if bound != tg_id:
            return BindOutcome(matched=matched, created=False, conflict_tg_id=bound)
        return BindOutcome(matched=matched, created=False)
    attributed = attribute_pending(conn, space_id, tg_id, uid)
    return BindOutcome(matched=matched, created=True, attributed=attributed)


def uid_for_tg_id(conn: sqlite3.Connection, space_id: int, tg_id: int) -> str | None:
    """The uid a Telegram user arrived through; the latest bind wins (last-click attribution,
    as the ad platforms count it)."""
    row = conn.execute(
        "SELECT uid FROM binds WHERE space_id = ? AND tg_id = ?"
        " ORDER BY created_ms DESC, rowid DESC LIMIT 1",
        (space_id, tg_id),
    ).fetchone()
    return row["uid"] if row else None
