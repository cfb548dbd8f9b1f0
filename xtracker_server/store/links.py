"""Links: a space's trackable entry points (the landing pages come with their own issue)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    id: int
    space_id: int
    slug: str
    kind: str
    target: str
    enabled: bool
    created_ms: int


def create_link(
    conn: sqlite3.Connection, space_id: int, slug: str, kind: str, target: str, now_ms: int
) -> Link:
    cur = conn.execute(
        "INSERT INTO links (space_id, slug, kind, target, created_ms) VALUES (?, ?, ?, ?, ?)",
        (space_id, slug, kind, target, now_ms),
    )
    return Link(int(cur.lastrowid or 0), space_id, slug, kind, target, True, now_ms)


def link_by_slug(conn: sqlite3.Connection, space_id: int, slug: str) -> Link | None:
    row = conn.execute(
        "SELECT id, space_id, slug, kind, target, enabled, created_ms FROM links"
        " WHERE space_id = ? AND slug = ?",
        (space_id, slug),
    ).fetchone()
    if row is None:
        return None
    return Link(**{**dict(row), "enabled": bool(row["enabled"])})
