"""Spaces (tenants) and their credentials: one bearer secret, and ingest tokens by name (one per
partner network; every space starts with ``default``)."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from xtracker_server.domain import entities
from xtracker_server.domain.credentials import (
    DEFAULT_TOKEN_NAME,
    ROTATION_GRACE_MS,
    CredentialKind,
    hash_secret,
    mask,
    new_secret,
)
from xtracker_server.domain.entities import NewSpace, Space
from xtracker_server.store.errors import NoSuchToken, TokenNameTaken

if TYPE_CHECKING:
    from xtracker_server.domain.entities import (
        Credential,
        IngestToken,
        NewToken,
        Revocation,
        Rotation,
    )

# The credentials' records are made as ``entities.Rotation(...)``: their module is imported by
# the first operation that makes one, not by a command that lists spaces (domain/entities/).

__all__ = [
    "NewSpace",
    "NoSuchToken",
    "Space",
    "TokenNameTaken",
    "add_ingest_token",
    "allowed_currencies",
    "create_space",
    "find_credential",
    "get_space",
    "has_admin_token",
    "list_ingest_tokens",
    "list_spaces",
    "reset_admin_token",
    "revoke_ingest_token",
    "revoke_previous",
    "rotate_credential",
    "set_allowed_currencies",
]


def create_space(conn: sqlite3.Connection, name: str, now_ms: int) -> NewSpace:
    cur = conn.execute("INSERT INTO spaces (name, created_ms) VALUES (?, ?)", (name, now_ms))
    space = Space(id=int(cur.lastrowid or 0), name=name, created_ms=now_ms)
    bearer = _insert_credential(conn, space.id, CredentialKind.BEARER, now_ms)
    ingest = _insert_credential(conn, space.id, CredentialKind.INGEST, now_ms, DEFAULT_TOKEN_NAME)
    return NewSpace(space=space, bearer=bearer, ingest_token=ingest)


def list_spaces(conn: sqlite3.Connection) -> list[Space]:
    rows = conn.execute(
        "SELECT id, name, created_ms FROM spaces WHERE deleted_ms IS NULL ORDER BY id"
    ).fetchall()
    return [Space(id=r["id"], name=r["name"], created_ms=r["created_ms"]) for r in rows]


def get_space(conn: sqlite3.Connection, space_id: int) -> Space | None:
    """The space, unless there is none or it is deleted (store/sqlite/deletion.py)."""
    row = conn.execute(
        "SELECT id, name, created_ms FROM spaces WHERE id = ? AND deleted_ms IS NULL", (space_id,)
    ).fetchone()
    return Space(id=row["id"], name=row["name"], created_ms=row["created_ms"]) if row else None


def rotate_credential(
    conn: sqlite3.Connection,
    space_id: int,
    kind: CredentialKind,
    now_ms: int,
    name: str | None = None,
) -> Rotation | None:
    """A new secret of ``kind`` (for an ingest token: of the one called ``name``, by default
    ``default``); the current ones stay valid for 24 hours (not longer than they already had),
    so bots and postback URLs can be moved over without losing events. None if there is no
    such space; NoSuchToken if it has no live ingest token of that name."""
    if get_space(conn, space_id) is None:
        return None
    name = _name_of(kind, name)
    if name is not None and not _live(conn, space_id, kind, name, now_ms):
        raise NoSuchToken(name)
    until = now_ms + ROTATION_GRACE_MS
    cur = conn.execute(
        "UPDATE credentials SET expires_ms = ? WHERE space_id = ? AND kind = ?"
        " AND name IS ? AND (expires_ms IS NULL OR expires_ms > ?)",
        (until, space_id, kind.value, name, until),
    )
    secret = _insert_credential(conn, space_id, kind, now_ms, name)
    return entities.Rotation(
        space_id=space_id,
        kind=kind,
        secret=secret,
        previous_valid_until_ms=until if cur.rowcount else None,
        name=name,
    )


def revoke_previous(
    conn: sqlite3.Connection,
    space_id: int,
    kind: CredentialKind,
    now_ms: int,
    name: str | None = None,
) -> Revocation | None:
    """End now the rotated-out secrets of ``kind`` (of the ingest token ``name``, by default
    ``default``) that were still in their grace period; the current one stays. None if there
    is no such space."""
    if get_space(conn, space_id) is None:
        return None
    return _revoke(conn, space_id, kind, _name_of(kind, name), now_ms, current=False)


def add_ingest_token(
    conn: sqlite3.Connection, space_id: int, name: str, now_ms: int
) -> NewToken | None:
    """A new ingest token called ``name`` (checked by ``check_token_name``). None if there is
    no such space; TokenNameTaken if a live token has that name."""
    if get_space(conn, space_id) is None:
        return None
    if _live(conn, space_id, CredentialKind.INGEST, name, now_ms):
        raise TokenNameTaken(name)
    secret = _insert_credential(conn, space_id, CredentialKind.INGEST, now_ms, name)
    return entities.NewToken(space_id=space_id, name=name, secret=secret)


def list_ingest_tokens(conn: sqlite3.Connection, space_id: int, now_ms: int) -> list[IngestToken]:
    """The space's live ingest tokens (rotated-out ones in their grace period too)."""
    rows = conn.execute(
        "SELECT name, hint, created_ms, expires_ms FROM credentials"
        " WHERE space_id = ? AND kind = 'ingest' AND (expires_ms IS NULL OR expires_ms > ?)"
        " ORDER BY name, id",
        (space_id, now_ms),
    ).fetchall()
    return [
        entities.IngestToken(
            name=r["name"], hint=r["hint"], created_ms=r["created_ms"], expires_ms=r["expires_ms"]
        )
        for r in rows
    ]


def revoke_ingest_token(
    conn: sqlite3.Connection, space_id: int, name: str, now_ms: int
) -> Revocation | None:
    """End now every live secret of the ingest token ``name`` (the current one and any
    rotated-out one). None if there is no such space; ``revoked`` 0 if there is no such token."""
    if get_space(conn, space_id) is None:
        return None
    return _revoke(conn, space_id, CredentialKind.INGEST, name, now_ms, current=True)


def _revoke(
    conn: sqlite3.Connection,
    space_id: int,
    kind: CredentialKind,
    name: str | None,
    now_ms: int,
    *,
    current: bool,
) -> Revocation:
    """Expire now the live secrets of (kind, name): the rotated-out ones, and with ``current``
    the current one too."""
    where = "space_id = ? AND kind = ? AND name IS ? AND expires_ms > ?"
    if current:
        where = "space_id = ? AND kind = ? AND name IS ? AND (expires_ms IS NULL OR expires_ms > ?)"
    args = (space_id, kind.value, name, now_ms)
    hashes = tuple(
        bytes(r["hash"]) for r in conn.execute(f"SELECT hash FROM credentials WHERE {where}", args)
    )
    conn.execute(f"UPDATE credentials SET expires_ms = ? WHERE {where}", (now_ms, *args))
    return entities.Revocation(space_id=space_id, kind=kind, name=name, hashes=hashes)


def _name_of(kind: CredentialKind, name: str | None) -> str | None:
    """Ingest tokens have names (``default`` when none is given); other credentials none."""
    if kind is not CredentialKind.INGEST:
        return None
    return name or DEFAULT_TOKEN_NAME


def _live(
    conn: sqlite3.Connection, space_id: int, kind: CredentialKind, name: str, now_ms: int
) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM credentials WHERE space_id = ? AND kind = ? AND name = ?"
            " AND (expires_ms IS NULL OR expires_ms > ?)",
            (space_id, kind.value, name, now_ms),
        ).fetchone()
        is not None
    )


def find_credential(conn: sqlite3.Connection, secret_hash: bytes, now_ms: int) -> Credential | None:
    """The live credential with this hash, if any. The lookup is by an index on the hash of a
    high-entropy secret, which leaks nothing useful through timing."""
    row = conn.execute(
        "SELECT space_id, kind, expires_ms, name FROM credentials WHERE hash = ?"
        " AND (expires_ms IS NULL OR expires_ms > ?)",
        (secret_hash, now_ms),
    ).fetchone()
    if row is None:
        return None
    return entities.Credential(
        space_id=row["space_id"],
        kind=CredentialKind(row["kind"]),
        expires_ms=row["expires_ms"],
        name=row["name"],
    )


def has_admin_token(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM credentials WHERE kind = 'admin'").fetchone() is not None


def reset_admin_token(conn: sqlite3.Connection, now_ms: int) -> str:
    """A new operator token; every earlier stored one stops working at once."""
    conn.execute("DELETE FROM credentials WHERE kind = 'admin'")
    return _insert_credential(conn, None, CredentialKind.ADMIN, now_ms)


def _insert_credential(
    conn: sqlite3.Connection,
    space_id: int | None,
    kind: CredentialKind,
    now_ms: int,
    name: str | None = None,
) -> str:
    secret = new_secret(kind)
    conn.execute(
        "INSERT INTO credentials (space_id, kind, hash, hint, created_ms, name)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (space_id, kind.value, hash_secret(secret), mask(secret), now_ms, name),
    )
    return secret


def allowed_currencies(conn: sqlite3.Connection, space_id: int) -> tuple[str, ...] | None:
    """The space's own currency codes (domain/currencies.py); None if there is no such space."""
    row = conn.execute("SELECT currencies FROM spaces WHERE id = ?", (space_id,)).fetchone()
    if row is None:
        return None
    return tuple(code for code in row["currencies"].split(",") if code)


def set_allowed_currencies(conn: sqlite3.Connection, space_id: int, codes: tuple[str, ...]) -> bool:
    """Replace the space's own currency codes (already checked); False if there is no space."""
    cur = conn.execute("UPDATE spaces SET currencies = ? WHERE id = ?", (",".join(codes), space_id))
    return cur.rowcount == 1


def sub_id_params(conn: sqlite3.Connection, space_id: int) -> tuple[str, ...] | None:
    """The query parameters the space declares as sub-ids; None if there is no such space."""
    row = conn.execute("SELECT sub_id_params FROM spaces WHERE id = ?", (space_id,)).fetchone()
    return None if row is None else tuple(json.loads(row["sub_id_params"]))


def set_sub_id_params(conn: sqlite3.Connection, space_id: int, names: tuple[str, ...]) -> bool:
    """Replace the space's sub-id parameters (already checked); False if there is no space."""
    cur = conn.execute(
        "UPDATE spaces SET sub_id_params = ? WHERE id = ?", (json.dumps(list(names)), space_id)
    )
    return cur.rowcount == 1
