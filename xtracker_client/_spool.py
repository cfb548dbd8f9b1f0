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

Three modules, three layers: ``_spool_file.py`` (the file, its schema and its writes),
``_spool_memory.py`` (the memory buffer while the file fails), and here ``Spool``, what the
sender does with the items (claim under a lease, acknowledge, retry, dead-letter) and what the
client reads of them (sizes, dead letters), from the file and memory alike.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from contextlib import suppress
from typing import Any

from xtracker_client._exceptions import ClientClosedError
from xtracker_client._spool_file import (
    DeadLetter,
    DropPolicy,
    Kind,
    Mark,
    SpooledItem,
    SpoolFull,
    now_ms,
)
from xtracker_client._spool_memory import STORAGE_ERRORS, FallbackSpool

__all__ = [
    "DeadLetter",
    "DropPolicy",
    "Kind",
    "Mark",
    "Spool",
    "SpoolFull",
    "SpooledItem",
    "now_ms",
]


class Spool(FallbackSpool):
    """Thread-safe. One connection per process (re-opened after a fork), and a buffer in memory
    for the time the file cannot be written."""

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
        except STORAGE_ERRORS:
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
        except STORAGE_ERRORS as exc:
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
            with suppress(*STORAGE_ERRORS), self._tx(conn) as c:  # a failing file: it waits
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
        except STORAGE_ERRORS:
            in_file = 2**62  # unreadable: everything in it counts
        in_memory = int(self._read(self._memory, sql)[0]) if self._memory is not None else 0
        return in_file, in_memory

    def pending_up_to(self, up_to: Mark) -> int:
        sql = "SELECT count(*) FROM outbox WHERE id <= ?"
        try:
            pending = int(self._read(None, sql, (up_to[0],))[0])
        except STORAGE_ERRORS:
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
        except STORAGE_ERRORS:  # look again when the file is tried again
            dues = [self._probe_due_ms()]
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
        except STORAGE_ERRORS:
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
            except STORAGE_ERRORS:
                if conn is None and self._memory is not None:
                    continue  # a failing file: what memory holds, at least
                raise
            letters += [
                DeadLetter(side * r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6])
                for r in rows
            ]
        return sorted(letters, key=lambda d: d.dead_ms, reverse=True)[:limit]

    # --- the end ---------------------------------------------------------------------------

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
