"""Links: a space's trackable entry points."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from xtracker_server.domain.entities import Link
from xtracker_server.domain.links import LinkKind, LinkSettings
from xtracker_server.store.errors import SlugTaken

if TYPE_CHECKING:
    from xtracker_server.domain.link_input import LinkSpec

__all__ = [
    "Link",
    "SlugTaken",
    "create_link",
    "link_by_slug",
    "list_links",
    "resolve_slug",
    "update_link",
]

_COLUMNS = (
    "id, space_id, slug, kind, target, app, prefix, title, text, button, image_url,"
    " auto_redirect, redirect_delay_ms, enabled, created_ms, updated_ms"
)
_SPEC_FIELDS = tuple(f.name for f in fields(LinkSettings))


def _link(row: sqlite3.Row) -> Link:
    data: dict[str, Any] = {f: row[f] for f in _SPEC_FIELDS}
    data.update(
        kind=LinkKind(row["kind"]),
        auto_redirect=bool(row["auto_redirect"]),
        enabled=bool(row["enabled"]),
    )
    spec = LinkSettings(**data)  # validated when it was written
    return Link(row["id"], row["space_id"], row["slug"], spec, row["created_ms"], row["updated_ms"])


def create_link(
    conn: sqlite3.Connection, space_id: int, slug: str, spec: LinkSpec, now_ms: int
) -> Link:
    settings = spec.settings()
    values = _spec_values(settings)
    cur = conn.execute(
        f"INSERT INTO links (space_id, slug, created_ms, updated_ms, {', '.join(values)})"
        f" VALUES (?, ?, ?, ?, {', '.join('?' * len(values))})"
        " ON CONFLICT (slug) DO NOTHING",
        (space_id, slug, now_ms, now_ms, *values.values()),
    )
    if cur.rowcount == 0:
        raise SlugTaken(f"the slug {slug!r} is taken; slugs are unique on this server")
    return Link(int(cur.lastrowid or 0), space_id, slug, settings, now_ms, now_ms)


def update_link(
    conn: sqlite3.Connection, space_id: int, slug: str, changes: dict[str, Any], now_ms: int
) -> Link | None:
    """Apply ``changes`` (validated together with the rest of the link); None if the space
    has no such link. Raises pydantic's ValidationError if the result is not a valid link."""
    current = link_by_slug(conn, space_id, slug)
    if current is None:
        return None
    # Here: pydantic validates a link that changes, and is no part of a command that reads.
    from xtracker_server.domain.link_input import LinkSpec

    merged = {**asdict(current.spec), **changes}
    if "/" in str(changes.get("target", "")) and "app" not in changes:
        merged["app"] = None  # a new "bot/app" target brings its own app
    settings = LinkSpec.model_validate(merged).settings()
    values = _spec_values(settings)
    conn.execute(
        f"UPDATE links SET {', '.join(f'{k} = ?' for k in values)}, updated_ms = ?"
        " WHERE space_id = ? AND slug = ?",
        (*values.values(), now_ms, space_id, slug),
    )
    return Link(current.id, space_id, slug, settings, current.created_ms, now_ms)


def link_by_slug(conn: sqlite3.Connection, space_id: int, slug: str) -> Link | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM links WHERE space_id = ? AND slug = ? AND deleted_ms IS NULL",
        (space_id, slug),
    ).fetchone()
    return _link(row) if row else None


def list_links(conn: sqlite3.Connection, space_id: int) -> list[Link]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM links WHERE space_id = ? AND deleted_ms IS NULL ORDER BY id",
        (space_id,),
    ).fetchall()
    return [_link(r) for r in rows]


def resolve_slug(conn: sqlite3.Connection, slug: str) -> Link | None:
    """The link behind a public landing URL. The one lookup without a space: the slug is how a
    visitor's request finds its space (slugs are unique server-wide). A deleted link has none."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM links WHERE slug = ? AND deleted_ms IS NULL", (slug,)
    ).fetchone()
    return _link(row) if row else None


def _spec_values(spec: LinkSettings) -> dict[str, Any]:
    data = asdict(spec)
    data["kind"] = spec.kind.value
    data["auto_redirect"] = int(spec.auto_redirect)
    data["enabled"] = int(spec.enabled)
    return data
