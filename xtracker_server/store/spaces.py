"""Spaces (tenants) and their credentials."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from xtracker_server.domain.credentials import (
    ROTATION_GRACE_MS,
    CredentialKind,
    hash_secret,
    mask,
    new_secret,
)


@dataclass(frozen=True)
class Space:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True)
class NewSpace:
    """A space just created, with its secrets: the only time they are ever shown."""

    space: Space
    bearer: str
    ingest_token: str


@dataclass(frozen=True)
class Credential:
    space_id: int | None
    kind: CredentialKind
    expires_ms: int | None


@dataclass(frozen=True)
class Rotation:
    space_id: int
    kind: CredentialKind
    secret: str
    previous_valid_until_ms: int | None


def create_space(conn: sqlite3.Connection, name: str, now_ms: int) -> NewSpace:
    cur = conn.execute("INSERT INTO spaces (name, created_ms) VALUES (?, ?)", (name, now_ms))
    space = Space(id=int(cur.lastrowid or 0), name=name, created_ms=now_ms)
    bearer = _insert_credential(conn, space.id, CredentialKind.BEARER, now_ms)
    ingest = _insert_credential(conn, space.id, CredentialKind.INGEST, now_ms)
    return NewSpace(space=space, bearer=bearer, ingest_token=ingest)


def list_spaces(conn: sqlite3.Connection) -> list[Space]:
    rows = conn.execute(
        "SELECT id, name, created_ms FROM spaces WHERE deleted_ms IS NULL ORDER BY id"
    ).fetchall()
    return [Space(id=r["id"], name=r["name"], created_ms=r["created_ms"]) for r in rows]


def get_space(conn: sqlite3.Connection, space_id: int) -> Space | None:
    """The space, unless there is none or it is deleted (store/deletion.py)."""
    row = conn.execute(
        "SELECT id, name, created_ms FROM spaces WHERE id = ? AND deleted_ms IS NULL", (space_id,)
    ).fetchone()
    return Space(id=row["id"], name=row["name"], created_ms=row["created_ms"]) if row else None


def rotate_credential(
    conn: sqlite3.Connection, space_id: int, kind: CredentialKind, now_ms: int
) -> Rotation | None:
    """A new secret of ``kind``; the current ones stay valid for 24 hours (not longer than
    they already had), so bots and postback URLs can be moved over without losing events.
    None if there is no such space."""
    if get_space(conn, space_id) is None:
        return None
    until = now_ms + ROTATION_GRACE_MS
    cur = conn.execute(
        "UPDATE credentials SET expires_ms = ? WHERE space_id = ? AND kind = ?"
        " AND (expires_ms IS NULL OR expires_ms > ?)",
        (until, space_id, kind.value, until),
    )
    secret = _insert_credential(conn, space_id, kind, now_ms)
    return Rotation(
        space_id=space_id,
        kind=kind,
        secret=secret,
        previous_valid_until_ms=until if cur.rowcount else None,
    )


def find_credential(conn: sqlite3.Connection, secret_hash: bytes, now_ms: int) -> Credential | None:
    """The live credential with this hash, if any. The lookup is by an index on the hash of a
    high-entropy secret, which leaks nothing useful through timing."""
    row = conn.execute(
        "SELECT space_id, kind, expires_ms FROM credentials WHERE hash = ?"
        " AND (expires_ms IS NULL OR expires_ms > ?)",
        (secret_hash, now_ms),
    ).fetchone()
    if row is None:
        return None
    return Credential(
        space_id=row["space_id"], kind=CredentialKind(row["kind"]), expires_ms=row["expires_ms"]
    )


def has_admin_token(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM credentials WHERE kind = 'admin'").fetchone() is not None


def reset_admin_token(conn: sqlite3.Connection, now_ms: int) -> str:
    """A new operator token; every earlier stored one stops working at once."""
    conn.execute("DELETE FROM credentials WHERE kind = 'admin'")
    return _insert_credential(conn, None, CredentialKind.ADMIN, now_ms)


def _insert_credential(
    conn: sqlite3.Connection, space_id: int | None, kind: CredentialKind, now_ms: int
) -> str:
    secret = new_secret(kind)
    conn.execute(
        "INSERT INTO credentials (space_id, kind, hash, hint, created_ms) VALUES (?, ?, ?, ?, ?)",
        (space_id, kind.value, hash_secret(secret), mask(secret), now_ms),
    )
    return secret
