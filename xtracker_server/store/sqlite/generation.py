"""The database's generation: a random id in a one-row table (migration 6), renewed by
``xtracker restore`` (store/sqlite/backup.py).

Whatever is derived from the inbox and kept outside the database file (the report rollup,
store/sqlite/rollup.py) records the generation it was built for. Finding another one means that the
database was replaced under it (a restore): the derived data is rebuilt from scratch.
"""

from __future__ import annotations

import sqlite3


def generation(conn: sqlite3.Connection) -> str:
    """The generation of the (migrated) database ``conn`` is connected to."""
    return str(conn.execute("SELECT id FROM main.generation").fetchone()[0])


def renew_generation(conn: sqlite3.Connection) -> str:
    """Give the database a new generation, in the caller's transaction; returns it."""
    import secrets  # here: its hashing and random modules cost every command's start

    new = secrets.token_hex(16)
    conn.execute("UPDATE main.generation SET id = ?", (new,))
    return new
