"""Postbacks: a space's alias changes, and the postback log (every authenticated call of /e)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING

from xtracker_server.domain.credentials import CredentialKind, hash_secret
from xtracker_server.domain.dedup import AmountConflict
from xtracker_server.domain.entities import POSTBACK_OUTCOMES, LogEntry, LoggedEntry
from xtracker_server.domain.postbacks import (
    DEFAULT_PARAM_ALIASES,
    DEFAULT_STATUS_ALIASES,
    AliasRow,
)
from xtracker_server.store.sqlite.clicks import click_exists
from xtracker_server.store.sqlite.inbox import InboxDraft, InboxOutcome, insert_event
from xtracker_server.store.sqlite.spaces import find_credential, list_ingest_tokens

if TYPE_CHECKING:
    from xtracker_server.domain.entities import IngestToken

__all__ = [
    "OUTCOMES",
    "LogEntry",
    "LoggedEntry",
    "alias_rows",
    "ingest_tokens",
    "is_ingest_token_of",
    "list_log",
    "log_postback",
    "prune_log",
    "record_postback",
    "set_alias",
    "set_aliases",
]

OUTCOMES = POSTBACK_OUTCOMES


def alias_rows(conn: sqlite3.Connection, space_id: int) -> list[AliasRow]:
    """The space's changes to the default aliases."""
    rows = conn.execute(
        "SELECT kind, alias, target FROM postback_aliases WHERE space_id = ? ORDER BY kind, alias",
        (space_id,),
    ).fetchall()
    return [AliasRow(kind=r["kind"], alias=r["alias"], target=r["target"]) for r in rows]


def set_alias(
    conn: sqlite3.Connection, space_id: int, kind: str, alias: str, target: str | None, now_ms: int
) -> None:
    """Map ``alias`` (checked and normalised by the domain) to ``target``; None removes it.
    Only differences from the defaults are stored: a removed default is remembered as removed,
    and setting a default back to its default value forgets the change."""
    defaults = DEFAULT_STATUS_ALIASES if kind == "status" else DEFAULT_PARAM_ALIASES
    if (target is None and alias not in defaults) or defaults.get(alias) == target:
        conn.execute(
            "DELETE FROM postback_aliases WHERE space_id = ? AND kind = ? AND alias = ?",
            (space_id, kind, alias),
        )
        return
    conn.execute(
        "INSERT INTO postback_aliases (space_id, kind, alias, target, updated_ms)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (space_id, kind, alias)"
        " DO UPDATE SET target = excluded.target, updated_ms = excluded.updated_ms",
        (space_id, kind, alias, target, now_ms),
    )


def set_aliases(
    conn: sqlite3.Connection,
    space_id: int,
    changes: list[tuple[str, str, str | None]],
    now_ms: int,
) -> None:
    """Apply ``(kind, alias, target)`` changes (``set_alias`` each) in one transaction."""
    for kind, alias, target in changes:
        set_alias(conn, space_id, kind, alias, target, now_ms)


def is_ingest_token_of(conn: sqlite3.Connection, space_id: int, token: str, now_ms: int) -> bool:
    """Whether ``token`` is a live ingest token of the space (checked against its hash)."""
    cred = find_credential(conn, hash_secret(token.strip()), now_ms)
    return cred is not None and cred.kind is CredentialKind.INGEST and cred.space_id == space_id


def log_postback(conn: sqlite3.Connection, entry: LogEntry) -> int:
    """Write one log row. A uid is looked up among the space's clicks (``click_known``)."""
    if entry.click_known is None and entry.uid is not None and entry.outcome != "rejected":
        entry = replace(entry, click_known=click_exists(conn, entry.space_id, entry.uid))
    cur = conn.execute(_INSERT_LOG, _log_row(entry))
    return int(cur.lastrowid or 0)


def log_postbacks(conn: sqlite3.Connection, entries: list[LogEntry]) -> None:
    """Write many log rows in one statement, each with its ``click_known`` given: for writing
    months of traffic at once (bench/growth.py seeds with it)."""
    conn.executemany(_INSERT_LOG, [_log_row(entry) for entry in entries])


_INSERT_LOG = (
    "INSERT INTO postback_log (space_id, at_ms, ip, method, query, body, outcome, status,"
    " event, uid, value, currency, eid, inbox_id, click_known, error, detail, conflict,"
    " conflict_value, conflict_currency, token_name, test)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _log_row(entry: LogEntry) -> tuple[object, ...]:
    conflict = entry.conflict
    return (
        entry.space_id, entry.at_ms, entry.ip, entry.method, entry.query, entry.body,
        entry.outcome, entry.status, entry.event, entry.uid, entry.value, entry.currency,
        entry.eid, entry.inbox_id,
        None if entry.click_known is None else int(entry.click_known),
        entry.error, entry.detail, int(conflict is not None),
        conflict.value if conflict else None, conflict.currency if conflict else None,
        entry.token_name, int(entry.test),
    )  # fmt: skip


def record_postback(
    conn: sqlite3.Connection, draft: InboxDraft, entry: LogEntry
) -> tuple[InboxOutcome, bool]:
    """Insert the event and its log row in one operation (one commit for both). Returns the
    inbox outcome and whether the event belongs to a known click."""
    outcome = insert_event(conn, draft)
    click_known = outcome.uid is not None and click_exists(conn, draft.space_id, outcome.uid)
    log_postback(
        conn,
        replace(
            entry,
            outcome="duplicate" if outcome.duplicate else "queued",
            uid=outcome.uid,
            inbox_id=outcome.inbox_id,
            click_known=click_known,
            conflict=outcome.conflict,
        ),
    )
    return outcome, click_known


def list_log(
    conn: sqlite3.Connection,
    space_id: int,
    *,
    outcome: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[LoggedEntry]:
    """The space's most recent postbacks (below ``before_id``, if given), newest first."""
    sql = "SELECT * FROM postback_log WHERE space_id = ?"
    args: list[object] = [space_id]
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    if outcome is not None:
        sql += " AND outcome = ?"
        args.append(outcome)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    out = []
    for r in conn.execute(sql, args).fetchall():
        row = dict(r)
        if row["click_known"] is not None:
            row["click_known"] = bool(row["click_known"])
        row["test"] = bool(row["test"])
        stored_value, stored_currency = row.pop("conflict_value"), row.pop("conflict_currency")
        row["conflict"] = (
            AmountConflict(stored_value, stored_currency, row["value"], row["currency"])
            if row["conflict"]
            else None
        )
        out.append(LoggedEntry(**row))
    return out


def ingest_tokens(conn: sqlite3.Connection, space_id: int, now_ms: int) -> list[IngestToken]:
    """The space's live ingest tokens, each with the time of its last logged postback."""
    return [
        replace(token, last_postback_ms=conn.execute(
            "SELECT MAX(at_ms) FROM postback_log WHERE space_id = ? AND token_name = ?",
            (space_id, token.name),
        ).fetchone()[0])
        for token in list_ingest_tokens(conn, space_id, now_ms)
    ]  # fmt: skip


def prune_log(conn: sqlite3.Connection, before_ms: int, limit: int = 1000) -> int:
    """Delete up to ``limit`` log rows older than ``before_ms`` (any space); returns how many.
    Called in batches so the writer is never held for long."""
    cur = conn.execute(
        "DELETE FROM postback_log WHERE id IN"
        " (SELECT id FROM postback_log WHERE at_ms < ? LIMIT ?)",
        (before_ms, limit),
    )
    return cur.rowcount
