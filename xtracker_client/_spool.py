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

A spool file that cannot be written (a full disk, a read-only or vanished directory, an I/O
error) never fails the call: the item goes to a bounded buffer in memory (the same bounds and
policy, ids below zero), which the sender sends from like the file; the file is tried again
once a second, and new items go to it as soon as it works. What is still held in memory at
``evacuate()`` (the client's close) is written to the file if it works by then; otherwise it is
reported as lost, since nothing in memory outlives the process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xtracker_client._exceptions import ClientClosedError, ConfigurationError, XTrackerError

log = logging.getLogger("xtracker_client")

DropPolicy = Literal["drop_oldest", "drop_newest"]
Kind = Literal["event", "bind"]
#: Where a flush stands: the last id in the file and in the memory buffer when it began.
Mark = tuple[int, int]

#: How often a failing spool file is tried again (a write to a full disk fails fast, but a
#: failing disk is not asked on every call).
PROBE_INTERVAL_S = 1.0
_STORAGE_ERRORS = (sqlite3.Error, OSError)

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
    client turns it into ``SpoolFullError`` with what it means for the call.) ``reason``:
    ``spool_full``, or ``memory_full`` for the memory buffer of a spool file that fails."""

    def __init__(self, message: str, reason: str = "spool_full") -> None:
        super().__init__(message)
        self.reason = reason


class Spool:
    """Thread-safe. One connection per process (re-opened after a fork), and a buffer in memory
    for the time the file cannot be written."""

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
        self._final: tuple[int, int, int | None] = (0, 0, None)  # size() after close()
        #: Why the file cannot be written, while it cannot (None: it works).
        self.fault: str | None = None
        #: Writes (and opens) of the file that failed, since this spool was made.
        self.write_errors = 0
        self._next_probe = 0.0
        self._memory: sqlite3.Connection | None = None  # made when the file first fails
        self._memory_rows = self._memory_bytes = 0
        self._memory_full = False  # said once per failure of the file
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

    @property
    def held_in_memory(self) -> int:
        """Items in the memory buffer of a spool file that could not be written."""
        return self._memory_rows

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
            conn.executescript(_SCHEMA)
            if not self.in_memory:
                # For a file that may hold a long outage's worth; in memory the table is small
                # enough to scan, and each insert is cheaper without it.
                conn.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_ms, id)")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_file(self) -> None:
        """Open the file; one that cannot be opened (a full disk, a read-only directory) is
        tried again at the next probe, and events wait in memory meanwhile."""
        try:
            self._conn = self._open()
            self._rows, self._bytes = self._exact_size(self._conn)
        except _STORAGE_ERRORS as exc:
            if self.in_memory:
                raise
            self._conn = None
            self._failed(exc)

    def _file(self, *, force: bool = False) -> sqlite3.Connection:
        """The file's connection (the lock is held), opened again if it could not be."""
        if self._closed:
            raise ClientClosedError("the spool is closed")
        if self._conn is None:
            if not force and time.monotonic() < self._next_probe:
                raise sqlite3.OperationalError(f"the spool file cannot be opened ({self.fault})")
            self._conn = self._open()
            self._rows, self._bytes = self._exact_size(self._conn)
        return self._conn

    def _memory_buffer(self) -> sqlite3.Connection:
        if self._closed:
            raise ClientClosedError("the spool is closed")
        if self._memory is None:
            self._memory = sqlite3.connect(
                ":memory:", isolation_level=None, check_same_thread=False
            )
            self._memory.executescript(_SCHEMA)
        return self._memory

    def _failed(self, exc: BaseException) -> None:
        """A write to the file failed: new items go to memory until the next probe."""
        self.write_errors += 1
        self._next_probe = time.monotonic() + PROBE_INTERVAL_S
        if self.fault is None:
            self.fault = f"{type(exc).__name__}: {exc}"[:300]
            log.warning(
                "spool file %s cannot be written (%s): new events are held in memory (at most"
                " %d) and sent from there; the file is tried again every %.0f s",
                self.path,
                self.fault,
                self.max_rows,
                PROBE_INTERVAL_S,
            )

    def _healed(self) -> None:
        if self.fault is not None:
            self.fault = None
            self._memory_full = False
            log.info(
                "spool file %s can be written again: new events go to it (%d held in memory"
                " are sent from memory)",
                self.path,
                self._memory_rows,
            )

    def after_fork(self) -> None:
        """In a forked child: never use the parent's connection (SQLite forbids it)."""
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # The parent's connections are never touched, not even closed, in the child: closing
        # one here could disturb the parent's locks on the file. They are kept alive, unused.
        self._inherited += [self._conn, self._memory]
        # A file is shared with the parent through leases. In memory (a memory spool, or the
        # buffer of a failing file), the child starts empty, and the parent keeps (and sends)
        # what it had.
        self._memory = None
        self._memory_rows = self._memory_bytes = 0
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

    def _where(self, item_id: int) -> tuple[sqlite3.Connection | None, int]:
        """Items held in memory have ids below zero."""
        return (self._memory_buffer(), -item_id) if item_id < 0 else (None, item_id)

    def _shrink(self, item_id: int, size: int, count: int = 1) -> None:
        if item_id < 0:
            self._memory_rows -= count
            self._memory_bytes -= size
        else:
            self._rows -= count
            self._bytes -= size

    # --- writing ---------------------------------------------------------------------------

    def put(self, kind: Kind, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Store one item (committed before this returns). Returns its id and the bodies of
        any older items dropped to make room. Raises ``SpoolFull`` under ``drop_newest``.
        Never raises for the file's trouble: the item is held in memory (a negative id)."""
        text = _ENCODER.encode(body)
        size = len(text)
        if self.fault is None or time.monotonic() >= self._next_probe:
            try:
                stored = self._put_file(kind, text, size)
            except _STORAGE_ERRORS as exc:
                with self._lock:
                    self._failed(exc)
            else:
                if self.fault is not None:
                    with self._lock:
                        self._healed()
                return stored
        return self._put_memory(kind, text, size)

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

    def _put_memory(self, kind: Kind, text: str, size: int) -> tuple[int, list[dict[str, Any]]]:
        dropped: list[dict[str, Any]] = []
        with self._lock:
            self._check_pid()
            memory = self._memory_buffer()
            while self._memory_rows > 0 and (
                self._memory_rows + 1 > self.max_rows or self._memory_bytes + size > self.max_bytes
            ):
                if self.drop_policy == "drop_newest":
                    raise SpoolFull(
                        f"the spool file cannot be written ({self.fault}) and the memory buffer"
                        f" holds {self._memory_rows} items",
                        "memory_full",
                    )
                if not self._memory_full:
                    self._memory_full = True
                    log.warning(
                        "the memory buffer of spool file %s is full (%d items): the oldest"
                        " events are dropped (on_drop, stats().dropped['memory_full'])",
                        self.path,
                        self._memory_rows,
                    )
                body, row_size = memory.execute(
                    "DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox)"
                    " RETURNING body, size"
                ).fetchone()
                dropped.append(json.loads(body))
                self._memory_rows -= 1
                self._memory_bytes -= int(row_size)
            cur = memory.execute(
                "INSERT INTO outbox (kind, body, size, created_ms) VALUES (?, ?, ?, ?)",
                (kind, text, size, now_ms()),
            )
            self._memory_rows += 1
            self._memory_bytes += size
        return -int(cur.lastrowid or 0), dropped

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
        try:
            with self._lock:
                owners = [
                    r[0]
                    for r in self._file().execute(
                        "SELECT DISTINCT lease_owner FROM outbox WHERE lease_owner IS NOT NULL"
                        " AND lease_until_ms > ?",
                        (now_ms(),),
                    )
                ]
        except _STORAGE_ERRORS:
            return 0  # a file that cannot be read: the memory buffer is still sent
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
        flush asks): the file's, then those held in memory. A file that fails does not keep
        the memory's items from going out."""
        items: list[SpooledItem] = []
        error: Exception | None = None
        try:
            items = self._claim_in(None, owner, limit, lease_ms, everything)
        except _STORAGE_ERRORS as exc:
            error = exc
        if self._memory_rows > 0 and len(items) < limit:
            with self._lock:
                memory = self._memory_buffer()
            held = self._claim_in(memory, owner, limit - len(items), lease_ms, everything)
            items += [SpooledItem(-i.id, i.kind, i.body, i.attempts, i.created_ms) for i in held]
        if error is not None and not items:
            raise error
        return items

    def _claim_in(
        self,
        conn: sqlite3.Connection | None,
        owner: str,
        limit: int,
        lease_ms: int,
        everything: bool,
    ) -> list[SpooledItem]:
        now = now_ms()
        due = now if not everything else 2**62
        with self._tx(conn) as c:
            rows = c.execute(
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
        conn, row_id = self._where(item_id)
        with self._tx(conn) as c:
            row = c.execute(
                "DELETE FROM outbox WHERE id = ? AND lease_owner = ? RETURNING size",
                (row_id, owner),
            ).fetchone()
            if row:
                self._shrink(item_id, int(row[0]))

    def ack_many(self, item_ids: list[int], owner: str) -> None:
        """``ack`` for several items, in one transaction per place (the file, the memory)."""
        for conn, ids in self._by_place(item_ids):
            with self._tx(conn) as c:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = c.execute(
                        f"DELETE FROM outbox WHERE lease_owner = ? AND id IN ({marks})"
                        " RETURNING size",
                        (owner, *chunk),
                    ).fetchall()
                    # an id of the memory's is below zero for _shrink
                    place = -1 if conn is not None else 1
                    self._shrink(place, sum(int(r[0]) for r in rows), len(rows))

    def retry_many(
        self, errors: list[tuple[int, str]], owner: str, at_ms: int, not_before_ms: int = 0
    ) -> None:
        """``retry_later`` for several items ``(id, error)``, in one transaction per place."""
        said = dict(errors)
        for conn, ids in self._by_place(list(said)):
            sign = -1 if conn is not None else 1
            with self._tx(conn) as c:
                c.executemany(
                    "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                    " lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?",
                    [(at_ms, not_before_ms, said[sign * i][:500], i, owner) for i in ids],
                )

    def retry_later(
        self, item_id: int, owner: str, at_ms: int, error: str, not_before_ms: int = 0
    ) -> None:
        """Due again at ``at_ms``; a flush may bring that forward, but never before
        ``not_before_ms`` (what the server asked for with Retry-After)."""
        conn, row_id = self._where(item_id)
        with self._tx(conn) as c:
            c.execute(
                "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                " lease_until_ms = 0, last_error = ? WHERE id = ? AND lease_owner = ?",
                (at_ms, not_before_ms, error[:500], row_id, owner),
            )

    def _by_place(self, item_ids: list[int]) -> list[tuple[sqlite3.Connection | None, list[int]]]:
        """Item ids split into the memory's (as stored there) and the file's."""
        in_memory = [-i for i in item_ids if i < 0]
        in_file = [i for i in item_ids if i > 0]
        places: list[tuple[sqlite3.Connection | None, list[int]]] = []
        if in_memory:
            with self._lock:
                places.append((self._memory_buffer(), in_memory))
        if in_file:
            places.append((None, in_file))
        return places

    def release(self, item_ids: list[int], owner: str, at_ms: int, not_before_ms: int = 0) -> None:
        """Give back leased items untried (their attempt is not counted), due at ``at_ms``."""
        for conn, ids in self._by_place(item_ids):
            with self._tx(conn) as c:
                c.executemany(
                    "UPDATE outbox SET next_attempt_ms = ?, not_before_ms = ?, lease_owner = NULL,"
                    " lease_until_ms = 0, attempts = max(attempts - 1, 0)"
                    " WHERE id = ? AND lease_owner = ?",
                    [(at_ms, not_before_ms, item_id, owner) for item_id in ids],
                )

    def release_owner(self, owner: str) -> None:
        """Give back everything ``owner`` holds (its round was cut short by an error)."""
        places: list[sqlite3.Connection | None] = [None]
        if self._memory is not None:
            places.insert(0, self._memory)  # first: a failing file does not keep it leased
        for conn in places:
            with self._tx(conn) as c:
                c.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0"
                    " WHERE lease_owner = ?",
                    (owner,),
                )

    def kill(self, item_id: int, owner: str, reason: str, status: int | None) -> None:
        """The server refused it for good: move it to the dead-letter table (of the place
        that held it: the file, or memory)."""
        conn, row_id = self._where(item_id)
        with self._tx(conn) as c:
            row = c.execute(
                "DELETE FROM outbox WHERE id = ? AND lease_owner = ?"
                " RETURNING kind, body, size, created_ms",
                (row_id, owner),
            ).fetchone()
            if row is None:
                return
            c.execute(
                "INSERT INTO dead (outbox_id, kind, body, reason, status, created_ms, dead_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row_id, row[0], row[1], reason[:1000], status, row[3], now_ms()),
            )
            # Bounded like the outbox: the oldest dead letters go first.
            c.execute(
                "DELETE FROM dead WHERE id <= (SELECT max(id) FROM dead) - ?", (self.max_rows,)
            )
            self._shrink(item_id, int(row[2]))

    def requeue_dead(self) -> int:
        """Move every dead letter back into the outbox, due now."""
        count = 0
        places: list[tuple[sqlite3.Connection | None, int]] = [(None, 1)]
        if self._memory is not None:
            places.insert(0, (self._memory, -1))  # first: a failing file does not stop it
        for conn, side in places:
            with self._tx(conn) as c:
                rows = c.execute("DELETE FROM dead RETURNING kind, body, created_ms").fetchall()
                for kind, body, created in rows:
                    c.execute(
                        "INSERT INTO outbox (kind, body, size, created_ms) VALUES (?, ?, ?, ?)",
                        (kind, body, len(body), created),
                    )
                self._shrink(side, -sum(len(r[1]) for r in rows), -len(rows))
            count += len(rows)
        return count

    def make_due(self, up_to: Mark) -> None:
        """A flush: what waits for our own backoff is tried now; what the server asked to
        wait for (Retry-After) still waits."""
        places: list[tuple[sqlite3.Connection | None, int]] = [(None, up_to[0])]
        if self._memory is not None:
            places.append((self._memory, up_to[1]))
        for conn, last in places:
            with suppress(*_STORAGE_ERRORS), self._tx(conn) as c:  # a failing file: it waits
                c.execute(
                    "UPDATE outbox SET next_attempt_ms = not_before_ms"
                    " WHERE id <= ? AND next_attempt_ms > not_before_ms",
                    (last,),
                )

    # --- looking ---------------------------------------------------------------------------

    def _read(
        self, conn: sqlite3.Connection | None, sql: str, args: tuple[Any, ...] = ()
    ) -> list[Any]:
        with self._lock:
            self._check_pid()
            return list((conn or self._file()).execute(sql, args).fetchone())

    def last_id(self) -> Mark:
        """Where a flush begins: the newest item of the file and of memory."""
        sql = "SELECT coalesce(max(id), 0) FROM outbox"
        try:
            in_file = int(self._read(None, sql)[0])
        except _STORAGE_ERRORS:
            in_file = 2**62  # unreadable: everything in it counts
        in_memory = int(self._read(self._memory, sql)[0]) if self._memory is not None else 0
        return in_file, in_memory

    def pending_up_to(self, up_to: Mark) -> int:
        sql = "SELECT count(*) FROM outbox WHERE id <= ?"
        try:
            pending = int(self._read(None, sql, (up_to[0],))[0])
        except _STORAGE_ERRORS:
            # A file that never opened holds nothing of this process's; one that cannot be
            # read any more may still hold items: not known to be sent.
            pending = 0 if self._conn is None else 1
        if self._memory is not None:
            pending += int(self._read(self._memory, sql, (up_to[1],))[0])
        return pending

    def next_due_ms(self) -> int | None:
        """When the next item is due (an index lookup; leases held by other processes are
        not looked at: the sender polls for those)."""
        sql = "SELECT min(next_attempt_ms) FROM outbox"
        try:
            dues = [self._read(None, sql)[0]]
        except _STORAGE_ERRORS:  # look again when the file is tried again
            dues = [now_ms() + int(PROBE_INTERVAL_S * 1000)]
        if self._memory is not None:
            dues.append(self._read(self._memory, sql)[0])
        known = [int(d) for d in dues if d is not None]
        return min(known) if known else None

    def size(self) -> tuple[int, int, int | None]:
        """Items, bytes, and the creation time of the oldest item (the file's and memory's).
        After ``close()``, what it was then; with a file that cannot be read, this process's
        count of what it holds."""
        if self._closed:
            return self._final
        sql = "SELECT count(*), coalesce(sum(size), 0), min(created_ms) FROM outbox"
        try:
            rows, size, oldest = self._read(None, sql)
        except _STORAGE_ERRORS:
            rows, size, oldest = self._rows, self._bytes, None
        if self._memory is not None:
            more_rows, more_size, more_oldest = self._read(self._memory, sql)
            rows, size = rows + more_rows, size + more_size
            oldest = more_oldest if oldest is None else oldest
        return int(rows), int(size), oldest

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        sql = (
            "SELECT id, kind, body, reason, status, created_ms, dead_ms FROM dead"
            " ORDER BY id DESC LIMIT ?"
        )
        if self._closed:
            raise ClientClosedError("the spool is closed")
        places: list[tuple[sqlite3.Connection | None, int]] = [(None, 1)]
        if self._memory is not None:
            places.append((self._memory, -1))
        letters: list[DeadLetter] = []
        for conn, side in places:
            try:
                with self._lock:
                    self._check_pid()
                    rows = (conn or self._file()).execute(sql, (limit,)).fetchall()
            except _STORAGE_ERRORS:
                if conn is None and self._memory is not None:
                    continue  # a failing file: what memory holds, at least
                raise
            letters += [
                DeadLetter(side * r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6])
                for r in rows
            ]
        return sorted(letters, key=lambda d: d.dead_ms, reverse=True)[:limit]

    # --- the end ---------------------------------------------------------------------------

    def evacuate(self) -> list[dict[str, Any]]:
        """At close: the items held in memory go to the file if it can be written now (a
        last try, whatever the probe interval). Returns the bodies of what stays only in
        memory, lost with the process: everything queued, for a memory spool."""
        with self._lock:
            if self._closed:
                return []
            self._check_pid()
            lost: list[dict[str, Any]] = []
            if self.in_memory and self._conn is not None:
                rows = self._conn.execute("SELECT body FROM outbox ORDER BY id").fetchall()
                lost += [json.loads(r[0]) for r in rows]
            if self._memory is None or not self._memory_rows:
                return lost
            held = self._memory.execute(
                "SELECT kind, body, size, created_ms, attempts, last_error FROM outbox ORDER BY id"
            ).fetchall()
            try:
                conn = self._file(force=True)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT INTO outbox (kind, body, size, created_ms, attempts, last_error)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        held,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except _STORAGE_ERRORS as exc:
                self._failed(exc)
                return lost + [json.loads(r[1]) for r in held]
            self._rows += len(held)
            self._bytes += sum(int(r[2]) for r in held)
            self._memory.execute("DELETE FROM outbox")
            self._memory_rows = self._memory_bytes = 0
            self.fault = None
            log.info("moved %d events held in memory to the spool file %s", len(held), self.path)
            return lost

    def close(self) -> None:
        """Never raises; ``size()`` answers what it was at the close from then on."""
        if self._closed:
            return
        with suppress(Exception):
            self._final = self.size()
        with self._lock:
            self._closed = True
            if os.getpid() != self._pid:  # not ours to close (see after_fork)
                return
            for conn in (self._conn, self._memory):
                if conn is not None:
                    with suppress(sqlite3.Error):
                        conn.close()


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
