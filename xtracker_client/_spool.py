"""The durable local buffer: every event is written here before the call that reports it
returns, and stays until the server has acknowledged it.

A SQLite file (WAL) by default, or ``:memory:`` for tests and serverless. Several processes may
share one file, and a process may fork: a sender claims rows under a lease (owner + expiry), so
two senders never send the same row at the same time, and a row whose sender died is taken over
when its lease runs out. A row leaves the spool only when the server answered (acknowledged, or
refused it for good: then it moves to the dead-letter table with the server's reason).

The spool is bounded in rows and bytes. When full, the drop policy decides: ``drop_oldest``
(the default: the newest conversions are the ones ad platforms still accept) or
``drop_newest`` (refuse the new event). Every drop is counted and reported.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xtracker_client._exceptions import ConfigurationError, XTrackerError

DropPolicy = Literal["drop_oldest", "drop_newest"]
Kind = Literal["event", "bind"]

_SCHEMA = """
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


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


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
    client turns it into ``SpoolFullError`` with what it means for the call.)"""


class Spool:
    """Thread-safe. One connection per process (re-opened after a fork)."""

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
        self._inherited: list[sqlite3.Connection] = []
        self._conn = self._open()
        self._rows, self._bytes = self._exact_size()
        self._puts_since_sync = 0
        self._synced_at = time.monotonic()

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
        conn.execute("PRAGMA busy_timeout=30000")
        if not self.in_memory:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a crash of the process (what a bot dies of);
            # FULL also survives power loss, at an fsync per event.
            conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        conn.executescript(_SCHEMA)
        if not self.in_memory:
            # For a file that may hold a long outage's worth; in memory the table is small
            # enough to scan, and each insert is cheaper without it.
            conn.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_ms, id)")
        return conn

    def after_fork(self) -> None:
        """In a forked child: never use the parent's connection (SQLite forbids it)."""
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # The parent's connection is never touched, not even closed, in the child: closing it
        # here could disturb the parent's locks on the file. It is kept alive, unused.
        self._inherited.append(self._conn)
        # A file is shared with the parent through leases. In memory, the child starts its own
        # empty buffer, and the parent keeps (and sends) what it had.
        self._conn = self._open()
        self._rows, self._bytes = self._exact_size()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if os.getpid() != self._pid:
                raise RuntimeError("spool used across fork without after_fork()")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _exact_size(self) -> tuple[int, int]:
        row = self._conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
        return int(row[0]), int(row[1])

    # --- writing ---------------------------------------------------------------------------

    def put(self, kind: Kind, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Store one item (committed before this returns). Returns its id and the bodies of
        any older items dropped to make room. Raises ``SpoolFull`` under ``drop_newest``."""
        text = _ENCODER.encode(body)
        size = len(text)
        dropped: list[dict[str, Any]] = []
        with self._lock:
            if os.getpid() != self._pid:
                raise RuntimeError("spool used across fork without after_fork()")
            if not self._puts_since_sync + 1 >= 1000 and not self._near_full(size):
                # The common case: one INSERT is its own transaction (autocommit).
                cur = self._conn.execute(
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
                self._rows, self._bytes = self._exact_size()
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

    # --- the sender's side -----------------------------------------------------------------

    def reclaim_orphans(self) -> int:
        """Free the leases of senders that died on this machine (a killed bot), so their items
        go out now rather than when the lease runs out. Owners are ``host:pid:nonce``."""
        host = socket.gethostname()
        with self._lock:
            owners = [
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT lease_owner FROM outbox WHERE lease_owner IS NOT NULL"
                    " AND lease_until_ms > ?",
                    (now_ms(),),
                )
            ]
        dead = [o for o in owners if _dead_local_owner(o, host)]
        if not dead:
            return 0
        with self._tx() as conn:
            cur = conn.executemany(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = ?",
                [(o,) for o in dead],
            )
        return cur.rowcount

    def claim(
        self, owner: str, *, limit: int, lease_ms: int, everything: bool = False
    ) -> list[SpooledItem]:
        """Lease up to ``limit`` due items, oldest first (``everything``: due or not, as a
        flush asks)."""
        now = now_ms()
        due = now if not everything else 2**62
        with self._tx() as conn:
            rows = conn.execute(
                "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1"
                " WHERE id IN (SELECT id FROM outbox WHERE next_attempt_ms <= ?"
                " AND lease_until_ms <= ? ORDER BY id LIMIT ?)"
                " RETURNING id, kind, body, attempts, created_ms",
                (owner, now + lease_ms, due, now, limit),
            ).fetchall()
        items = [SpooledItem(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]
        return sorted(items, key=lambda item: item.id)

    def ack(self, item_id: int, owner: str) -> None:
        """The server has it: gone from the spool."""
        with self._tx() as conn:
            row = conn.execute(
                "DELETE FROM outbox WHERE id = ? AND lease_owner = ? RETURNING size",
                (item_id, owner),
            ).fetchone()
            if row:
                self._rows -= 1
                self._bytes -= int(row[0])

    def ack_many(self, item_ids: list[int], owner: str) -> None:
        """``ack`` for several items, in one transaction."""
        if not item_ids:
            return
        with self._tx() as conn:
            for start in range(0, len(item_ids), 500):
                chunk = item_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"DELETE FROM outbox WHERE lease_owner = ? AND id IN ({marks}) RETURNING size",
                    (owner, *chunk),
                ).fetchall()
                self._rows -= len(rows)
                self._bytes -= sum(int(r[0]) for r in rows)

    def retry_many(
        self, errors: list[tuple[int, str]], owner: str, at_ms: int, not_before_ms: int = 0
    ) -> None:
        """``retry_later`` for several items ``(id, error)``, in one transaction."""
        if not errors:
            return
        with self._tx() as conn:
            conn.executemany(
                "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                " lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?",
                [(at_ms, not_before_ms, error[:500], i, owner) for i, error in errors],
            )

    def retry_later(
        self, item_id: int, owner: str, at_ms: int, error: str, not_before_ms: int = 0
    ) -> None:
        """Due again at ``at_ms``; a flush may bring that forward, but never before
        ``not_before_ms`` (what the server asked for with Retry-After)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                " lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?",
                (at_ms, not_before_ms, error[:500], item_id, owner),
            )

    def release(self, item_ids: list[int], owner: str, at_ms: int, not_before_ms: int = 0) -> None:
        """Give back leased items untried (their attempt is not counted), due at ``at_ms``."""
        if not item_ids:
            return
        with self._tx() as conn:
            conn.executemany(
                "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                " lease_until_ms = 0, attempts = max(attempts - 1, 0)"
                " WHERE id = ? AND lease_owner = ?",
                [(at_ms, not_before_ms, item_id, owner) for item_id in item_ids],
            )

    def release_owner(self, owner: str) -> None:
        """Give back everything ``owner`` holds (its round was cut short by an error)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = ?",
                (owner,),
            )

    def kill(self, item_id: int, owner: str, reason: str, status: int | None) -> None:
        """The server refused it for good: move it to the dead-letter table."""
        with self._tx() as conn:
            row = conn.execute(
                "DELETE FROM outbox WHERE id = ? AND lease_owner = ?"
                " RETURNING kind, body, size, created_ms",
                (item_id, owner),
            ).fetchone()
            if row is None:
                return
            conn.execute(
                "INSERT INTO dead (outbox_id, kind, body, reason, status, created_ms, dead_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (item_id, row[0], row[1], reason[:1000], status, row[3], now_ms()),
            )
            # Bounded like the outbox: the oldest dead letters go first.
            conn.execute(
                "DELETE FROM dead WHERE id <= (SELECT max(id) FROM dead) - ?", (self.max_rows,)
            )
            self._rows -= 1
            self._bytes -= int(row[2])

    def requeue_dead(self) -> int:
        """Move every dead letter back into the outbox, due now."""
        with self._tx() as conn:
            rows = conn.execute("DELETE FROM dead RETURNING kind, body, created_ms").fetchall()
            for kind, body, created in rows:
                conn.execute(
                    "INSERT INTO outbox (kind, body, size, created_ms) VALUES (?, ?, ?, ?)",
                    (kind, body, len(body), created),
                )
            self._rows += len(rows)
            self._bytes += sum(len(r[1]) for r in rows)
        return len(rows)

    def make_due(self, up_to_id: int) -> None:
        """A flush: what waits for our own backoff is tried now; what the server asked to
        wait for (Retry-After) still waits."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox SET next_attempt_ms = not_before_ms"
                " WHERE id <= ? AND next_attempt_ms > not_before_ms",
                (up_to_id,),
            )

    # --- looking ---------------------------------------------------------------------------

    def last_id(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
        return int(row[0])

    def pending_up_to(self, up_to_id: int) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM outbox WHERE id <= ?", (up_to_id,)
            ).fetchone()
        return int(row[0])

    def next_due_ms(self) -> int | None:
        """When the next item is due (an index lookup; leases held by other processes are
        not looked at: the sender polls for those)."""
        with self._lock:
            row = self._conn.execute("SELECT min(next_attempt_ms) FROM outbox").fetchone()
        return None if row[0] is None else int(row[0])

    def size(self) -> tuple[int, int, int | None]:
        """Items, bytes, and the creation time of the oldest item."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0), min(created_ms) FROM outbox"
            ).fetchone()
        return int(row[0]), int(row[1]), row[2]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, kind, body, reason, status, created_ms, dead_ms FROM dead"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _dead_local_owner(owner: str, host: str) -> bool:
    """Whether a lease owner ``host:pid:nonce`` is a process of this machine that is gone."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
