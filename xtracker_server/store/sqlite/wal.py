"""Keeping the write-ahead log small (docs/operations.md#disk-upkeep).

SQLite checkpoints on its own after a commit that leaves ``wal_autocheckpoint`` pages (1,000,
about 4 MB) in the WAL. That checkpoint is PASSIVE: it copies the frames no reader still needs,
and the WAL file starts over from its beginning only when a writer finds every frame copied
and no reader in it. Under constant writes with reads always in flight, or behind one long
read, that moment may not come, and the file grows without bound. So the writer (thread or
process) calls a ``WalKeeper`` between two batches:

- Past ``LIMIT_BYTES`` when no write is waiting, and past twice that whatever is waiting, it
  runs ``wal_checkpoint(TRUNCATE)``: every frame is copied, the readers still in the WAL are
  waited for (new readers read the database file meanwhile) and the file is emptied. The wait
  is capped at ``WAIT_MS`` (the busy timeout of that one statement), what a request's reads
  take; if readers are still there, it gives up and tries again at the next check,
  ``CHECK_S`` later. So the writer is never held for longer than the copy and that wait. A
  long reader (a catch-up round of the report rollup, an export) is not waited for: waiting
  100 ms at every check held ``/r``'s p99 at about 100 ms under full load with the report
  cube on (``bench/growth.py --cube``, 2026-12-01: 119 ms, 69 ms with 10). Only a WAL grown
  past ``LONG_WAIT_LIMITS`` times the limit waits up to ``LONG_WAIT_MS``, and, if that gave up
  too, not again before ``LONG_WAIT_EVERY_S``. (With the cube's catch-up starved of CPU, at
  ``nice`` 19, its rounds outlasted every wait, and ``/r``'s p99 reached 197 ms: measured
  before this rule.)
- After ``IDLE_S`` without a write, it runs one ``wal_checkpoint(PASSIVE)`` (or the TRUNCATE
  above, past the limit): an idle database's readers read the database file, and the WAL holds
  nothing more than it must.
- ``journal_size_limit`` (set on every writing connection, store/sqlite/db.py) makes SQLite shrink
  the file back to ``LIMIT_BYTES`` whenever it starts the WAL over on its own.

A checkpoint that fails (a full or read-only disk) is logged at debug level and tried again at
the next check: the batches' own commits report such a fault (store/health.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """The store's logger; ``logging`` is imported by the first message (a command that
    meets no fault never needs it)."""
    import logging

    return logging.getLogger("xtracker.store")


#: The WAL size the writer keeps the file under (about 15 seconds of heavy ingest).
LIMIT_BYTES = 64 * 1024 * 1024
#: The longest the writer waits for readers still in the WAL before giving up a TRUNCATE.
WAIT_MS = 10
#: ... and past this many times its limit, when a long reader has kept it from emptying.
LONG_WAIT_LIMITS = 4
LONG_WAIT_MS = 100
#: After a long wait that gave up, the next long wait comes this much later at the earliest
#: (the short one meanwhile): a reader that outlasts it costs the writer 100 ms per 5 s, not
#: per check.
LONG_WAIT_EVERY_S = 5.0
#: How often, at most, the WAL's size is looked at between batches.
CHECK_S = 0.5
#: A writer that got nothing to write for this long checkpoints once.
IDLE_S = 1.0


def wal_path(path: str) -> str:
    return path + "-wal"


def wal_bytes(path: str) -> int:
    """The size of the WAL of the database ``path`` (0: none)."""
    try:
        return os.stat(wal_path(path)).st_size
    except OSError:
        return 0


def database_wal_bytes(conn: sqlite3.Connection) -> int | None:
    """The size of the WAL of the database ``conn`` is open on (None: an in-memory one)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return wal_bytes(file) if file else None
    return None


class WalKeeper:
    """Checkpoints of one writer's connection (see the module's docstring). ``limit_bytes``
    and ``clock`` are for tests."""

    def __init__(
        self,
        path: str,
        *,
        limit_bytes: int = LIMIT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.limit_bytes = limit_bytes
        self._clock = clock
        self._checked = clock()
        self._settled = True  # nothing was written since the last idle checkpoint
        self.truncated = 0  # TRUNCATE checkpoints that emptied the WAL
        self.gave_up = 0  # … that found readers past WAIT_MS (tried again later)
        self._long_wait_from = 0.0  # no long wait before then (one gave up: LONG_WAIT_EVERY_S)

    def after_batch(self, conn: sqlite3.Connection, *, waiting: bool) -> None:
        """A batch was committed; ``waiting``: the next one is already there."""
        self._settled = False
        now = self._clock()
        if now - self._checked < CHECK_S:
            return
        self._checked = now
        if wal_bytes(self.path) > self.limit_bytes * (2 if waiting else 1):
            self._truncate(conn)

    def idle(self, conn: sqlite3.Connection) -> None:
        """Nothing was written for ``IDLE_S``."""
        if self._settled:
            return
        if wal_bytes(self.path) > self.limit_bytes:
            self._settled = self._truncate(conn)
            return
        done = self._checkpoint(conn, "PASSIVE")
        self._settled = done is not None and done[0] == 0 and done[1] == done[2]

    def _truncate(self, conn: sqlite3.Connection) -> bool:
        (busy_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
        now = self._clock()
        far = wal_bytes(self.path) > self.limit_bytes * LONG_WAIT_LIMITS
        long = far and now >= self._long_wait_from
        conn.execute(f"PRAGMA busy_timeout={LONG_WAIT_MS if long else WAIT_MS}")
        try:
            done = self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        if done is None or done[0]:
            self.gave_up += 1
            if long:  # a reader longer than the long wait: not waited for again so soon
                self._long_wait_from = now + LONG_WAIT_EVERY_S
            return False
        self.truncated += 1
        return True

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> tuple[int, int, int] | None:
        """``(busy, frames in the WAL, frames copied)``, or None if it failed."""
        try:
            row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            _log().debug("checkpoint (%s) of %s failed: %s", mode, self.path, exc)
            return None
        return int(row[0]), int(row[1]), int(row[2])
