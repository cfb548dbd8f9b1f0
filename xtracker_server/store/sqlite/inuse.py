"""Who uses the database: ``xtracker serve`` and ``xtracker worker`` hold a shared lock on a
file next to it (``x.db.lock`` for ``x.db``) for as long as their store is open, and
``xtracker restore`` takes that lock exclusively. So a restore is refused while a server or
worker runs, and neither starts while a restore runs.

An ``flock`` lock belongs to the open file and ends with the process, also under ``kill -9``:
a crashed server never leaves the database claimed. The lock file itself stays (removing it
would let two processes lock two different files); it is empty and created ``0600``.

Processes that do not take this lock (the ``sqlite3`` shell, another xtracker command) are
caught by a second check of the restore: SQLite's own lock on the database file
(``store/sqlite/backup.py``). Without ``fcntl`` (not POSIX) there is no lock file, and that second
check is the only one.
"""

from __future__ import annotations

import os
from pathlib import Path

from xtracker_server.exceptions import XTrackerServerError


class DatabaseInUse(XTrackerServerError):
    """A restore found the database in use."""


class RestoreInProgress(XTrackerServerError):
    """A server or worker found a restore of its database in progress."""


def lock_path(path: str) -> str:
    """The lock file of the database ``path`` (``x.db`` -> ``x.db.lock``)."""
    p = Path(path).expanduser()
    return str(p.with_name(p.name + ".lock"))


class UseLock:
    """A held lock on a database's lock file; ``release`` (or the process's end) lets it go."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops its flock
            self._fd = None

    def __enter__(self) -> UseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_shared(path: str) -> UseLock:
    """For ``serve`` and ``worker``: share the database with other servers and workers.
    Raises ``RestoreInProgress`` while a restore holds it."""
    if not _lockable(path):
        return UseLock(None)
    fd = _open(path)
    if not _try_lock(fd, exclusive=False):
        os.close(fd)
        raise RestoreInProgress(
            f"a restore of {path} is in progress (`xtracker restore`): start again when it has"
            " finished"
        )
    return UseLock(fd)


def hold_exclusive(path: str) -> UseLock:
    """For ``restore``: the database alone. Raises ``DatabaseInUse`` while a server or worker
    holds it."""
    if not _lockable(path):
        return UseLock(None)
    fd = _open(path)
    if not _try_lock(fd, exclusive=True):
        os.close(fd)
        raise DatabaseInUse(
            f"{path} is in use by `xtracker serve` or `xtracker worker` (they hold"
            f" {lock_path(path)}): stop every server and worker of this database first"
        )
    return UseLock(fd)


def _lockable(path: str) -> bool:
    return path != ":memory:" and os.name == "posix"


def _open(path: str) -> int:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int, *, exclusive: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
