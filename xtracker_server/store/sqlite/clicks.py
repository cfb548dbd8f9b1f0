"""Clicks: each mints the uid that follows the user into Telegram."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from operator import attrgetter

from xtracker_server.domain.clicks import CAMPAIGN_FIELDS, UTM_FIELDS, ClickDraft, new_uid
from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.store.sqlite.db import insert_many

_DRAFT_COLUMNS = (
    "space_id", "uid", "link_id", "source", "created_ms", "ip", "user_agent", "referrer",
    "fbclid", "fbc", "fbp", "country", "raw_query", "device", "os", "browser", "referrer_domain",
)  # fmt: skip
_FIELD_COLUMNS = (*CAMPAIGN_FIELDS, *UTM_FIELDS)
_COLUMNS = (*_DRAFT_COLUMNS, *_FIELD_COLUMNS, "sub_ids")
_draft_values = attrgetter(*_DRAFT_COLUMNS)
_INSERT = f"INSERT INTO clicks ({', '.join(_COLUMNS)})"
_TAIL = "ON CONFLICT (space_id, uid) DO NOTHING"


class UidTaken(XTrackerServerError):
    """A drafted uid of a group exists already: the writer runs the group's clicks again one
    by one, and ``insert_click`` mints another."""


def insert_click(conn: sqlite3.Connection, draft: ClickDraft) -> str:
    """Store the click and return its uid (a fresh one in the astronomically unlikely case
    that the drafted uid is taken)."""
    for _ in range(5):
        if insert_many(conn, _INSERT, [_row(draft)], tail=_TAIL)[0].changes == 1:
            return draft.uid
        draft = dataclasses.replace(draft, uid=new_uid())
    raise RuntimeError("could not mint a unique uid")


def insert_clicks(conn: sqlite3.Connection, drafts: list[ClickDraft]) -> list[str]:
    """``insert_click`` for a group of concurrent clicks: one statement for all of them."""
    if len(drafts) == 1:
        return [insert_click(conn, drafts[0])]
    inserted = insert_many(conn, _INSERT, [_row(d) for d in drafts], tail=_TAIL)
    if sum(done.changes for done in inserted) != len(drafts):
        raise UidTaken("a drafted uid is taken")
    return [d.uid for d in drafts]


def insert_kept_clicks(conn: sqlite3.Connection, drafts: list[ClickDraft]) -> int:
    """Store clicks the landing kept while storage failed (landing/pending.py), under the uids
    their visitors were given; returns how many were new. A uid stored already is skipped: its
    click was committed after all (a writer that died after its commit), or replayed before a
    crash. A write of the landing that timed out but still commits does so before this one (the
    writer commits in order), so it is never this one that stores a click first."""
    inserted = insert_many(conn, _INSERT, [_row(d) for d in drafts], tail=_TAIL)
    return sum(done.changes for done in inserted)


def _row(draft: ClickDraft) -> list[object]:
    sub_ids = json.dumps(draft.sub_ids, sort_keys=True) if draft.sub_ids else None
    return [*_draft_values(draft), *map(draft.fields.get, _FIELD_COLUMNS), sub_ids]


def recent_click_of_link(
    conn: sqlite3.Connection, space_id: int, link_id: int, uid: str, since_ms: int
) -> bool:
    """Whether ``uid`` is a click on this link made since ``since_ms`` (a repeat visit)."""
    row = conn.execute(
        "SELECT 1 FROM clicks WHERE space_id = ? AND uid = ? AND link_id = ? AND created_ms >= ?",
        (space_id, uid, link_id, since_ms),
    ).fetchone()
    return row is not None


def click_exists(conn: sqlite3.Connection, space_id: int, uid: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM clicks WHERE space_id = ? AND uid = ?", (space_id, uid)
        ).fetchone()
        is not None
    )
