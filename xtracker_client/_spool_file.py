"""The spool file itself: its schema, the items it holds, and the writes a file takes (one
connection per process, a write transaction under a lock, bounded in rows and bytes with the
drop policy). What happens when the file cannot be written is ``_spool_memory.py``; what the
sender does with the items is ``_spool.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xtracker_client._exceptions import ClientClosedError, ConfigurationError, XTrackerError

__all__ = [
    "SCHEMA",
    "DeadLetter",
    "DropPolicy",
    "FileSpool",
    "Kind",
    "Mark",
    "SpoolFull",
    "SpooledItem",
    "now_ms",
]

DropPolicy = Literal["drop_oldest", "drop_newest"]
Kind = Literal["event", "bind"]
#: Where a flush stands: the last id in the file and in the memory buffer when it began.
Mark = tuple[int, int]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    created_ms       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL DEFAULT 0,
    not_before_ms    INTEGER NOT NULL DEFAULT 0,  -- the server's Retry-After: a flush waits for it
    lease_owner      TEXT,
    lease_until_ms   INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    id          INTEGER PRIMARY KEY,
    outbox_id   INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    status      INTEGER,
    created_ms  INTEGER NOT NULL,
    dead_ms     INTEGER NOT NULL
);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SpooledItem:
    id: int
    kind: Kind
    body: dict[str, Any]
    attempts: int  # including the current one
    created_ms: int


@dataclass(frozen=True)
class DeadLetter:
    id: int
    kind: Kind
    body: dict[str, Any]
    reason: str
    status: int | None
    created_ms: int
    dead_ms: int


class SpoolFull(XTrackerError):
    """The spool is full and its policy is ``drop_newest``: this event was not stored. (The
    client turns it into ``SpoolFullError`` with what it means for the call.) ``reason``:
    ``spool_full``, or ``memory_full`` for the memory buffer of a spool file that fails."""

    def __init__(self, message: str, reason: str = "spool_full") -> None:
        super().__init__(message)
        self.reason = reason


class FileSpool:
    """The file (or a ``:memory:`` database): thread-safe, one connection per process
    (re-opened after a fork). Items keep their running count (``_rows``, ``_bytes``) so a put
    need not count the table."""

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        drop_policy: DropPolicy = "drop_oldest",
        fsync: bool = False,
    ) -> None:
        if drop_policy not in ("drop_oldest", "drop_newest"):
            raise ConfigurationError("drop_policy must be 'drop_oldest' or 'drop_newest'")
        if max_rows < 1 or max_bytes < 1024:
            raise ConfigurationError("max_rows must be at least 1 and max_bytes at least 1024")
        self.path = str(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.drop_policy = drop_policy
        self._fsync = fsync
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection | None] = []
        self._closed = False
        self._rows = self._bytes = 0
        self._puts_since_sync = 0
        self._synced_at = time.monotonic()
        self._conn: sqlite3.Connection | None = None
        self._open_file()

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    def _open(self) -> sqlite3.Connection:
        if not self.in_memory:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path if self.in_memory else str(Path(self.path).expanduser()),
            isolation_level=None,
            check_same_thread=False,
            timeout=30,
        )
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            if not self.in_memory:
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a commit survives a crash of the process (what a bot dies
                # of); FULL also survives power loss, at an fsync per event.
                conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            conn.executescript(SCHEMA)
            if not self.in_memory:
                # For a file that may hold a long outage's worth; in memory the table is small
                # enough to scan, and each insert is cheaper without it.
                conn.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_ms, id)")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_file(self) -> None:
        self._conn = self._open()
        self._rows, self._bytes = self._exact_size(self._conn)

    def _file(self, *, force: bool = False) -> sqlite3.Connection:
        """The file's connection (the lock is held), opened if it is not. (``force``: open it
        now even when a failing file is not due to be tried again: see ``FallbackSpool``.)"""
        if self._closed:
            raise ClientClosedError("the spool is closed")
        if self._conn is None:
            self._conn = self._open()
            self._rows, self._bytes = self._exact_size(self._conn)
        return self._conn

    def after_fork(self) -> None:
        """In a forked child: never use the parent's connection (SQLite forbids it)."""
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # The parent's connections are never touched, not even closed, in the child: closing
        # one here could disturb the parent's locks on the file. They are kept alive, unused.
        self._inherited.append(self._conn)
        self._open_file()

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            raise RuntimeError("spool used across fork without after_fork()")

    @contextmanager
    def _tx(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction on ``conn`` (default: the file)."""
        with self._lock:
            self._check_pid()
            conn = conn or self._file()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (a full disk) leaves the transaction open: end it, or
                # every later BEGIN fails too.
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _exact_size(conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
        return int(row[0]), int(row[1])

    def _put_file(self, kind: Kind, text: str, size: int) -> tuple[int, list[dict[str, Any]]]:
        dropped: list[dict[str, Any]] = []
        with self._lock:
            self._check_pid()
            conn = self._file(force=True)
            if not self._puts_since_sync + 1 >= 1000 and not self._near_full(size):
                # The common case: one INSERT is its own transaction (autocommit).
                cur = conn.execute(
                    "INSERT INTO outbox (kind, body, size, created_ms) VALUES (?, ?, ?, ?)",
                    (kind, text, size, now_ms()),
                )
                self._puts_since_sync += 1
                self._rows += 1
                self._bytes += size
                return int(cur.lastrowid or 0), dropped
        with self._tx() as conn:
            self._puts_since_sync += 1
            stale = time.monotonic() - self._synced_at > 1.0
            if self._puts_since_sync >= 1000 or (stale and self._near_full(size)):
                # Other processes may share the file: now and then, and before dropping
                # anything, trust the database rather than our running estimate.
                self._rows, self._bytes = self._exact_size(conn)
                self._puts_since_sync = 0
                self._synced_at = time.monotonic()
            if self._near_full(size):
                if self.drop_policy == "drop_newest":
                    raise SpoolFull(f"the spool holds {self._rows} items ({self._bytes} bytes)")
                dropped = self._drop_oldest(conn, size)
            cur = conn.execute(
                "INSERT INTO outbox (kind, body, size, created_ms) VALUES (?, ?, ?, ?)",
                (kind, text, size, now_ms()),
            )
            self._rows += 1
            self._bytes += size
        return int(cur.lastrowid or 0), dropped

    def _near_full(self, size: int) -> bool:
        return self._rows + 1 > self.max_rows or self._bytes + size > self.max_bytes

    def _drop_oldest(self, conn: sqlite3.Connection, size: int) -> list[dict[str, Any]]:
        dropped: list[dict[str, Any]] = []
        while self._rows > 0 and self._near_full(size):
            excess = max(1, self._rows + 1 - self.max_rows)
            rows = conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)"
                " RETURNING body, size",
                (excess,),
            ).fetchall()
            if not rows:
                break
            for body, row_size in rows:
                dropped.append(json.loads(body))
                self._rows -= 1
                self._bytes -= int(row_size)
        return dropped
