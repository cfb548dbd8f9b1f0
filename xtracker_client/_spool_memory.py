"""When the spool file cannot be written (a full disk, a read-only or vanished directory, an I/O
error): the call never fails, the item goes to a bounded buffer in memory (the same bounds and
policy, ids below zero), which the sender sends from like the file. The file is tried again
once a second (``PROBE_INTERVAL_S``), and new items go to it as soon as it works. What is still
held in memory at ``evacuate()`` (the client's close) is written to the file if it works by
then; otherwise it is reported as lost, since nothing in memory outlives the process.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from contextlib import suppress
from typing import Any

from xtracker_client._exceptions import ClientClosedError
from xtracker_client._spool_file import SCHEMA, DropPolicy, FileSpool, Kind, SpoolFull, now_ms

__all__ = ["PROBE_INTERVAL_S", "STORAGE_ERRORS", "FallbackSpool"]

log = logging.getLogger("xtracker_client")

#: failing disk is not asked on every call).
PROBE_INTERVAL_S = 1.0
STORAGE_ERRORS = (sqlite3.Error, OSError)

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class FallbackSpool(FileSpool):
    """A spool file with a buffer in memory for the time the file cannot be written."""

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        drop_policy: DropPolicy = "drop_oldest",
        fsync: bool = False,
    ) -> None:
        #: Why the file cannot be written, while it cannot (None: it works).
        self.fault: str | None = None
        #: Writes (and opens) of the file that failed, since this spool was made.
        self.write_errors = 0
        self._next_probe = 0.0
        self._memory: sqlite3.Connection | None = None  # made when the file first fails
        self._memory_rows = self._memory_bytes = 0
        self._memory_full = False  # said once per failure of the file
        # Last: the file is opened there, and a file that fails is reported with the above.
        super().__init__(
            path, max_rows=max_rows, max_bytes=max_bytes, drop_policy=drop_policy, fsync=fsync
        )

    @property
    def held_in_memory(self) -> int:
        """Items in the memory buffer of a spool file that could not be written."""
        return self._memory_rows

    def _open_file(self) -> None:
        """Open the file; one that cannot be opened (a full disk, a read-only directory) is
        tried again at the next probe, and events wait in memory meanwhile."""
        try:
            super()._open_file()
        except STORAGE_ERRORS as exc:
            if self.in_memory:
                raise
            self._conn = None
            self._failed(exc)

    def _file(self, *, force: bool = False) -> sqlite3.Connection:
        """The file's connection (the lock is held), opened again if it could not be."""
        if self._closed:
            raise ClientClosedError("the spool is closed")
        if self._conn is None and not force and time.monotonic() < self._next_probe:
            raise sqlite3.OperationalError(f"the spool file cannot be opened ({self.fault})")
        return super()._file(force=force)

    def _memory_buffer(self) -> sqlite3.Connection:
        if self._closed:
            raise ClientClosedError("the spool is closed")
        if self._memory is None:
            self._memory = sqlite3.connect(
                ":memory:", isolation_level=None, check_same_thread=False
            )
            self._memory.executescript(SCHEMA)
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
        """In a forked child: in memory (a memory spool, or the buffer of a failing file), the
        child starts empty, and the parent keeps (and sends) what it had; a file is shared with
        the parent through leases."""
        self._inherited.append(self._memory)  # the parent's: kept alive, unused (see super)
        self._memory = None
        self._memory_rows = self._memory_bytes = 0
        super().after_fork()

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

    def _probe_due_ms(self) -> int:
        """When a failing file is tried again, at the latest."""
        return now_ms() + int(PROBE_INTERVAL_S * 1000)

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
            except STORAGE_ERRORS as exc:
                with self._lock:
                    self._failed(exc)
            else:
                if self.fault is not None:
                    with self._lock:
                        self._healed()
                return stored
        return self._put_memory(kind, text, size)

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
            except STORAGE_ERRORS as exc:
                self._failed(exc)
                return lost + [json.loads(r[1]) for r in held]
            self._rows += len(held)
            self._bytes += sum(int(r[2]) for r in held)
            self._memory.execute("DELETE FROM outbox")
            self._memory_rows = self._memory_bytes = 0
            self.fault = None
            log.info("moved %d events held in memory to the spool file %s", len(held), self.path)
            return lost
