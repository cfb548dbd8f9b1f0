"""Binds: which Telegram user arrived through which click uid, and each space's bind setting.

Who may replace whom is decided by ``domain.binds.plan_bind``; ``bind`` reads what is bound and
applies the plan in the same write transaction, so no other bind can slip in between."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from xtracker_server.domain.binds import BindAction, BindKind, plan_bind
from xtracker_server.domain.entities import BindOutcome
from xtracker_server.store.sqlite.clicks import click_exists

__all__ = ["BindOutcome", "bind", "set_token_binds", "token_binds_allowed", "uid_for_tg_id"]


def bind(
    conn: sqlite3.Connection,
    space_id: int,
    uid: str,
    tg_id: int,
    now_ms: int,
    kind: BindKind = BindKind.BEARER,
) -> BindOutcome:
    """Bind ``uid`` to the Telegram user ``tg_id`` by the rule of ``domain.binds``. Safe to
    retry: the same pair again changes nothing."""
    from xtracker_server.store.sqlite.inbox import (  # inbox imports us
        attribute_pending,
        move_attributed,
    )

    matched = click_exists(conn, space_id, uid)
    pair: BindKind | None = None
    uid_holder: tuple[int, BindKind] | None = None
    user_binds: dict[str, BindKind] = {}
    for row in conn.execute(  # two index searches: the uid's bind, the user's binds
        "SELECT uid, tg_id, kind FROM binds WHERE space_id = ? AND uid = ?"
        " UNION ALL SELECT uid, tg_id, kind FROM binds WHERE space_id = ? AND tg_id = ?"
        " AND uid <> ?",
        (space_id, uid, space_id, tg_id, uid),
    ):
        found = BindKind(row["kind"])
        if row["uid"] == uid and row["tg_id"] == tg_id:
            pair = found
        elif row["uid"] == uid:
            uid_holder = (row["tg_id"], found)
        else:
            user_binds[row["uid"]] = found
    plan = plan_bind(
        kind,
        token_binds=kind is BindKind.BEARER or token_binds_allowed(conn, space_id),
        pair=pair,
        uid_holder=uid_holder[1] if uid_holder else None,
        user_bind=_strongest(user_binds.values()),
    )
    if plan.confirm:
        conn.execute(
            "UPDATE binds SET kind = ? WHERE space_id = ? AND uid = ?",
            (kind.value, space_id, uid),
        )
    if plan.action is not BindAction.BIND:
        return BindOutcome(plan.action, matched)
    attributed = 0
    if plan.take_uid and uid_holder is not None:
        # The token's claim on this click was wrong: its user's events let go of the uid.
        move_attributed(conn, space_id, uid_holder[0], uid, None)
        conn.execute("DELETE FROM binds WHERE space_id = ? AND uid = ?", (space_id, uid))
    if plan.replace_user_bind:
        for old_uid, old_kind in user_binds.items():
            if old_kind is BindKind.TOKEN:
                attributed += move_attributed(conn, space_id, tg_id, old_uid, uid)
        conn.execute(
            "DELETE FROM binds WHERE space_id = ? AND tg_id = ? AND kind = ?",
            (space_id, tg_id, BindKind.TOKEN.value),
        )
    conn.execute(
        "INSERT INTO binds (space_id, uid, tg_id, created_ms, kind) VALUES (?, ?, ?, ?, ?)",
        (space_id, uid, tg_id, now_ms, kind.value),
    )
    attributed += attribute_pending(conn, space_id, tg_id, uid)
    return BindOutcome(BindAction.BIND, matched, attributed)


def _strongest(kinds: Iterable[BindKind]) -> BindKind | None:
    found = set(kinds)
    if not found:
        return None
    return BindKind.BEARER if BindKind.BEARER in found else BindKind.TOKEN


def uid_for_tg_id(conn: sqlite3.Connection, space_id: int, tg_id: int) -> str | None:
    """The uid a Telegram user arrived through; the latest bind wins (last-click attribution,
    as the ad platforms count it). A token bind never stands next to a bearer bind."""
    row = conn.execute(
        "SELECT uid FROM binds WHERE space_id = ? AND tg_id = ?"
        " ORDER BY created_ms DESC, rowid DESC LIMIT 1",
        (space_id, tg_id),
    ).fetchone()
    return row["uid"] if row else None


def token_binds_allowed(conn: sqlite3.Connection, space_id: int) -> bool:
    """Whether the space takes binds made with its ingest token (``GET /bind``)."""
    row = conn.execute("SELECT token_binds FROM spaces WHERE id = ?", (space_id,)).fetchone()
    return bool(row and row["token_binds"])


def set_token_binds(conn: sqlite3.Connection, space_id: int, allowed: bool) -> bool:
    """Turn the space's token binds on or off; False if there is no such space."""
    cur = conn.execute("UPDATE spaces SET token_binds = ? WHERE id = ?", (int(allowed), space_id))
    return cur.rowcount > 0


def insert_first_binds(
    conn: sqlite3.Connection, space_id: int, rows: list[tuple[str, int, int]]
) -> None:
    """Bearer binds ``(uid, tg_id, created_ms)`` of clicks and Telegram users bound to nothing
    yet, none of whose events waits for a uid, in one statement: what ``bind`` writes for each
    of them (``plan_bind`` plans a plain BIND; nothing to replace, nothing to attribute). For
    writing months of traffic at once (bench/growth.py seeds with it); a uid bound already
    raises ``sqlite3.IntegrityError``."""
    conn.executemany(
        "INSERT INTO binds (space_id, uid, tg_id, created_ms, kind) VALUES (?, ?, ?, ?, ?)",
        [(space_id, uid, tg_id, at, BindKind.BEARER.value) for uid, tg_id, at in rows],
    )
