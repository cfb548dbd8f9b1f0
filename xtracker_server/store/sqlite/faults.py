"""Storage faults: which SQLite errors mean "the storage cannot take this now", and the one
exception the rest of the server sees for them.

Every storage error (read-only file system, full disk, I/O error, a lock held too long, a
damaged file, a writer that is down, a write past its deadline) becomes ``StoreUnavailable``
with a ``FaultReason``; the API answers it ``503`` with ``Retry-After`` and the reason
(errors.py), never ``500``. Errors of an operation itself (a constraint, a bug) are not faults:
they stay what they are.

SQLite reports a write refused by a read-only or full file system sometimes as such
(``SQLITE_READONLY``, ``SQLITE_FULL``) and sometimes as a plain ``SQLITE_IOERR_WRITE``;
``fault_of`` then asks the file system which it is (``_file_system_fault``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.store.errors import FaultReason, StoreUnavailable, retry_after_s

__all__ = ["FaultReason", "RollupBehind", "StoreUnavailable", "fault_of", "retry_after_s",
           "storage_fault"]  # fmt: skip


class RollupBehind(XTrackerServerError, RuntimeError):
    """A catch-up given a time (``catch_up(budget_s=...)``, store/sqlite/rollup.py) ran out of
    it before the rollup reached the last commit: it is being built (a new rollup, a rebuild,
    the report cube built from the clicks), and ``progress`` says how far. The store answers it
    as ``StoreUnavailable(REBUILDING)``. Here, not beside the rollup's marks: the store catches
    it without importing the rollup (a command that does not report never does)."""

    def __init__(self, progress: str) -> None:
        super().__init__(progress)
        self.progress = progress


# SQLite's primary result codes (the low byte of an extended code).
_BY_CODE = {
    5: FaultReason.LOCKED,  # SQLITE_BUSY
    6: FaultReason.LOCKED,  # SQLITE_LOCKED
    8: FaultReason.READ_ONLY,  # SQLITE_READONLY
    9: FaultReason.TIMEOUT,  # SQLITE_INTERRUPT (a progress handler's deadline)
    10: FaultReason.IO_ERROR,  # SQLITE_IOERR
    11: FaultReason.CORRUPT,  # SQLITE_CORRUPT
    13: FaultReason.DISK_FULL,  # SQLITE_FULL
    14: FaultReason.IO_ERROR,  # SQLITE_CANTOPEN
    15: FaultReason.LOCKED,  # SQLITE_PROTOCOL (lock contention on the WAL index)
    26: FaultReason.CORRUPT,  # SQLITE_NOTADB
}
# The same, by message, where the code is not available (Python before 3.11).
_BY_MESSAGE = (
    ("database is locked", FaultReason.LOCKED),
    ("database table is locked", FaultReason.LOCKED),
    ("readonly database", FaultReason.READ_ONLY),
    ("interrupted", FaultReason.TIMEOUT),
    ("disk i/o error", FaultReason.IO_ERROR),
    ("malformed", FaultReason.CORRUPT),
    ("database or disk is full", FaultReason.DISK_FULL),
    ("unable to open database file", FaultReason.IO_ERROR),
    ("file is not a database", FaultReason.CORRUPT),
)


def storage_fault(exc: BaseException) -> FaultReason | None:
    """The fault ``exc`` is, or None if it is not a storage fault (e.g. a constraint)."""
    if isinstance(exc, StoreUnavailable):
        return exc.reason
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _BY_CODE.get(code & 0xFF)
    message = str(exc).lower()
    for text, reason in _BY_MESSAGE:
        if text in message:
            return reason
    return None


def fault_of(exc: BaseException, path: str) -> FaultReason | None:
    """``storage_fault(exc)``, made precise for the database ``path``: an I/O error the file
    system gives because it is read-only or full is ``READ_ONLY`` or ``DISK_FULL``."""
    reason = storage_fault(exc)
    if reason is FaultReason.IO_ERROR and path != ":memory:":
        return _file_system_fault(Path(path).expanduser().parent) or reason
    return reason


def _file_system_fault(directory: Path) -> FaultReason | None:
    """Whether the file system of ``directory`` refuses writes, asked the cheapest way first.
    Only called after an I/O error: a read-only mount after an error (ext4 errors=remount-ro)
    shows in no flag, so a one-byte file is written and removed."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return FaultReason.READ_ONLY
    if stat.f_bavail == 0:
        return FaultReason.DISK_FULL
    probe = directory / f".xtracker-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return FaultReason.READ_ONLY
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FaultReason.DISK_FULL
        return None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None
