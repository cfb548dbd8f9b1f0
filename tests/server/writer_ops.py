"""Operations for tests/server/test_writer_process.py: a registry of its own (``OPERATIONS``, the
store's and these), which a writer process given ``operations=WRITER_OPS`` imports by name."""

from __future__ import annotations

import sqlite3
import time

from xtracker_server.store.sqlite.operations import OPERATIONS as STORE_OPERATIONS
from xtracker_server.store.sqlite.operations import named

#: What a test's writer is given: this module.
WRITER_OPS = __name__


def make_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    conn.execute("CREATE TABLE IF NOT EXISTS group_calls (size INTEGER)")


def insert(conn: sqlite3.Connection, n: int) -> int:
    conn.execute("INSERT INTO t (n, name) VALUES (?, ?)", (n, f"n{n}"))
    return n * 10


def insert_then_fail(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("INSERT INTO t (n, name) VALUES (?, ?)", (n, f"n{n}"))
    raise ValueError(f"refused {n}")


def add_names(conn: sqlite3.Connection, names: list[str]) -> list[str]:
    conn.execute("INSERT INTO group_calls (size) VALUES (?)", (len(names),))
    for name in names:
        if name == "bad":
            raise ValueError("bad name")
        conn.execute("INSERT INTO t (name) VALUES (?)", (name,))
    return [name.upper() for name in names]


class Awkward(Exception):
    """Pickles, but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}/{b}")


def raise_awkward(conn: sqlite3.Connection) -> None:
    raise Awkward("x", "y")


def break_the_commit(conn: sqlite3.Connection) -> None:
    """Succeeds, but makes the COMMIT of its batch fail (a deferred foreign key violation)."""
    conn.execute("CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY,"
        " parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    conn.execute("INSERT INTO child (parent_id) VALUES (12345)")


def slow(conn: sqlite3.Connection, seconds: float) -> None:
    time.sleep(seconds)


def insert_returning_a_generator(conn: sqlite3.Connection, n: int) -> object:
    """Commits a row, but its result cannot be pickled back."""
    insert(conn, n)
    return (i for i in range(n))


OPERATIONS = {
    **STORE_OPERATIONS,
    **named(
        make_table,
        insert,
        insert_then_fail,
        add_names,
        raise_awkward,
        break_the_commit,
        slow,
        insert_returning_a_generator,
    ),
}
