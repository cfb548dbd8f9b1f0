"""Opening the SQLite file: WAL, the chosen synchronous mode, a busy timeout so the CLI and
the server can share the file, and migrations."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtracker_server.store.sqlite.migrations import migrate
from xtracker_server.store.sqlite.wal import LIMIT_BYTES as WAL_LIMIT_BYTES

BUSY_TIMEOUT_MS = 10_000


def reports_path(path: str) -> str:
    """The file of the report rollup that goes with the database ``path`` (``x.db`` ->
    ``x.reports.db``): derived data, rebuilt from the inbox whenever it is missing."""
    if path == ":memory:":
        return ":memory:"
    p = Path(path).expanduser()
    return str(p.with_name(p.stem + ".reports" + (p.suffix or ".db")))


def attach_reports(conn: sqlite3.Connection, path: str) -> sqlite3.Connection:
    """Attach the report rollup's file (``reports_path``) as ``reports``. Only connections that
    read or build reports do: ``BEGIN IMMEDIATE`` locks every attached file, and the writer's
    transactions must never hold up the rollup's (nor the other way round)."""
    reports = reports_path(path)
    create_private(reports)
    conn.execute("ATTACH DATABASE ? AS reports", (reports,))
    return conn


def create_private(path: str) -> None:
    """Create the database file ``path``, if it does not exist yet, readable and writable by
    its owner only (0600): it holds destination secrets. SQLite gives the ``-wal`` and ``-shm``
    files it creates next to it the same permissions. An existing file keeps its own."""
    if path == ":memory:":
        return
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: str, *, sync: str = "FULL", readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are opened explicitly with ``BEGIN``."""
    create_private(path)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        # A WAL that SQLite starts over shrinks back to this (store/sqlite/wal.py).
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    return conn


def open_db(path: str, *, sync: str = "FULL") -> sqlite3.Connection:
    """A writable connection to a migrated database (what the CLI and the writer use)."""
    conn = connect(path, sync=sync)
    migrate(conn)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


#: SQLite's cap on ``?`` parameters in one statement: 32766 since 3.32, 999 before.
MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


@dataclass(frozen=True, slots=True)
class Inserted:
    first: int  # the index in ``rows`` of this statement's first row
    count: int  # rows in the statement
    changes: int  # rows it inserted (fewer when an ON CONFLICT clause skipped some)
    last_rowid: int


def insert_many(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], *, tail: str = ""
) -> list[Inserted]:
    """``head VALUES (…), (…), … tail`` for all ``rows``, in as few statements as the parameter
    cap allows. One statement for a whole group is one step of the SQLite engine, instead of
    one per row (each of which the writer thread pays for by giving up and re-taking the GIL).

    Rows inserted by one statement into a rowid table get consecutive rowids, the last being
    ``last_rowid``: SQLite gives each new row the largest rowid plus one.
    """
    if not rows:
        return []
    width = len(rows[0])
    per_statement = max(1, MAX_PARAMS // width)
    one = "(" + ", ".join("?" * width) + ")"
    done = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params = [value for row in chunk for value in row]
        cur = conn.execute(f"{head} VALUES {', '.join([one] * len(chunk))} {tail}", params)
        done.append(Inserted(start, len(chunk), cur.rowcount, int(cur.lastrowid or 0)))
    return done
