"""What ``xtracker serve`` and ``xtracker worker`` check before they start: a database they
cannot write, or a damaged one, stops them with a message that says what to do, instead of a
server that looks healthy and then fails every write.

- ``PRAGMA quick_check`` within ``QUICK_CHECK_BUDGET_S`` (a progress handler stops it there: a
  large file is then started on unchecked, and the skip is said);
- the migrations (they open a write transaction);
- one committed write (store/health.py's probe row).
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from xtracker_server.clock import now_ms
from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.store.sqlite.db import connect, open_db, reports_path, transaction
from xtracker_server.store.sqlite.faults import FaultReason, fault_of
from xtracker_server.store.sqlite.migrations import migrate
from xtracker_server.store.sqlite.probe import touch_probe
from xtracker_server.store.sqlite.spaces import has_admin_token, reset_admin_token

__all__ = [
    "QUICK_CHECK_BUDGET_S",
    "DatabaseRefused",
    "StartupCheck",
    "check_database",
    "first_admin_token",
]

QUICK_CHECK_BUDGET_S = 3.0
#: SQLite calls the progress handler every this many virtual machine steps.
_PROGRESS_STEPS = 1000


class DatabaseRefused(XTrackerServerError, RuntimeError):
    """The database cannot be started on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class StartupCheck:
    schema: int
    quick_check: str  # "ok", or "skipped" (stopped at the budget)
    seconds: float  # what the quick_check took


def check_database(
    path: str, *, sync: str = "FULL", quick_check_budget_s: float = QUICK_CHECK_BUDGET_S
) -> StartupCheck:
    """Check, migrate and write once to the database ``path`` (creating it if need be), or
    raise ``DatabaseRefused``."""
    try:
        conn = connect(path, sync=sync)
        try:
            started = time.monotonic()
            problems = _quick_check(conn, quick_check_budget_s)
            seconds = time.monotonic() - started
            if problems:
                raise DatabaseRefused(damaged_message(path, problems[0]))
            schema = migrate(conn)
            with transaction(conn):
                touch_probe(conn, now_ms())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        reason = fault_of(exc, path)
        if reason is FaultReason.CORRUPT:
            raise DatabaseRefused(damaged_message(path, str(exc))) from None
        raise DatabaseRefused(unwritable_message(path, reason, exc)) from None
    except RuntimeError as exc:  # e.g. a database from a newer xtracker (migrations.py)
        if isinstance(exc, DatabaseRefused):
            raise
        raise DatabaseRefused(f"cannot start on {path}: {exc}") from None
    return StartupCheck(schema, "ok" if problems is not None else "skipped", seconds)


def first_admin_token(path: str, now_ms: int) -> str | None:
    """A new operator token if the database has none yet (``serve`` prints it once), else
    None: one transaction. Raises ``DatabaseRefused`` if the database cannot be opened."""
    try:
        conn = open_db(path)
    except (RuntimeError, sqlite3.DatabaseError) as exc:
        raise DatabaseRefused(f"cannot open {path}: {exc}") from None
    try:
        with transaction(conn):
            return None if has_admin_token(conn) else reset_admin_token(conn, now_ms)
    finally:
        conn.close()


def _quick_check(conn: sqlite3.Connection, budget_s: float) -> list[str] | None:
    """What ``PRAGMA quick_check`` finds wrong ([] if nothing), or None if it ran out of time."""
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(10)")]
    except sqlite3.OperationalError as exc:
        if fault_of(exc, ":memory:") is FaultReason.TIMEOUT:  # interrupted by the handler
            return None
        raise
    finally:
        conn.set_progress_handler(None, 0)
    return [] if rows == ["ok"] else rows


def damaged_message(path: str, problem: str) -> str:
    db = Path(path)
    recovered = shlex.quote(str(db.with_name(db.name + ".recovered")))
    q = shlex.quote(path)
    return (
        f"the database {path} is damaged ({problem}); xtracker does not start on it.\n"
        "Stop every xtracker process that uses it, then either restore your last backup:\n"
        f"    xtracker restore BACKUP_FILE --db {q}\n"
        "or recover what is still readable into a new file, check that it holds your events"
        " (an error here: the recovery failed), and start on it:\n"
        f"    sqlite3 {q} .recover | sqlite3 {recovered}\n"
        f"    sqlite3 {recovered} 'SELECT count(*) FROM inbox'\n"
        f"    mv {q} {q}.damaged && rm -f {q}-wal {q}-shm {shlex.quote(reports_path(path))}"
        f" && mv {recovered} {q}\n"
        'See docs/operations.md, "A damaged database".'
    )


def unwritable_message(path: str, reason: FaultReason | None, exc: BaseException) -> str:
    why = {
        FaultReason.READ_ONLY: "the file or its file system is read-only",
        FaultReason.DISK_FULL: "the disk is full",
        FaultReason.LOCKED: "another process holds its write lock",
    }.get(reason or FaultReason.IO_ERROR, "it cannot be opened for writing")
    return (
        f"cannot write to the database {path}: {why} ({exc}); every write would fail, so"
        " xtracker does not start. Make the file and its directory writable, on a file system"
        " mounted read-write with free space, then start again."
    )
