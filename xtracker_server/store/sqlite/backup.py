"""Backup and restore of the database file: ``xtracker backup`` and ``xtracker restore``.

**Backup** is ``VACUUM INTO`` on a read-only connection: one read transaction, so the copy holds
exactly the commits made before it started (also those still in the WAL), while the server
goes on writing (WAL readers never block the writer). SQLite's online backup API
(``sqlite3 .backup``) starts over whenever another connection writes the source: under load it
took a minute or more where ``VACUUM INTO`` took under 2 s (docs/operations.md, 60 MB). The
copy is written to a temporary file
next to the target, created ``0600``, flushed to disk, then renamed: a target is never seen
half written, and an existing one is replaced only when asked (``force``).

**Restore** replaces the database with a backup, only while nobody uses it:

1. the lock file of ``serve`` and ``worker`` (store/sqlite/inuse.py) is taken exclusively, and held
   until the end, so no server starts meanwhile;
2. SQLite's own lock catches any other process with the file open (the ``sqlite3`` shell, an
   xtracker command): an idle WAL connection holds a shared lock on the database file for as
   long as it is open, so an exclusive lock is refused while any exists;
3. the backup is copied next to the database, checked (``PRAGMA integrity_check``, an xtracker
   schema not newer than this one) and migrated; it gets a new generation
   (store/sqlite/generation.py), and the leases of deliveries in flight when it was made are
released; 4. the derived report rollup (``x.reports.db``) is deleted, and so are the ``-wal``,
   ``-shm`` and ``-journal`` files of the old database (SQLite would apply an old log to the new
file); 5. the copy, flushed to disk, is renamed over the database and the directory is flushed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import time
from pathlib import Path

from xtracker_server.domain.entities import BackupDone, RestoreDone
from xtracker_server.store.errors import BackupError
from xtracker_server.store.sqlite.db import BUSY_TIMEOUT_MS, reports_path
from xtracker_server.store.sqlite.generation import renew_generation
from xtracker_server.store.sqlite.inuse import DatabaseInUse, hold_exclusive
from xtracker_server.store.sqlite.migrations import MIGRATIONS, migrate
from xtracker_server.store.sqlite.outbox import release_leases, unsettled_count

__all__ = ["SIDE_FILES", "BackupDone", "BackupError", "RestoreDone", "backup", "restore"]

#: Files SQLite keeps next to a database: a write-ahead log and its index, a rollback journal.
SIDE_FILES = ("-wal", "-shm", "-journal")


def backup(db: str, target: str, *, force: bool = False) -> BackupDone:
    """A consistent copy of the live database ``db`` at ``target`` (refused if it exists,
    unless ``force``)."""
    started = time.monotonic()
    dest = Path(target).expanduser()
    if _same_file(dest, db) or any(_same_file(dest, db + s) for s in SIDE_FILES):
        raise BackupError(f"{target} is the database itself: give another file")
    if dest.is_dir():
        raise BackupError(f"{target} is a directory: give a file name")
    if dest.exists() and not force:
        raise BackupError(f"{target} exists: give a new file, or --force to replace it")
    tmp = _temp_next_to(dest, "backup")
    try:
        # VACUUM INTO takes an empty file and keeps its mode: the copy is 0600 from the start.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        conn = sqlite3.connect(
            f"{Path(db).expanduser().resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            conn.close()
        _fsync(tmp)
        _move_into_place(tmp, dest, replace=force)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot back up {db}: {exc}") from exc
    finally:
        for name in (tmp, *(Path(str(tmp) + s) for s in SIDE_FILES)):
            _remove(name)
    return BackupDone(str(dest), dest.stat().st_size, time.monotonic() - started)


def restore(db: str, source: str) -> RestoreDone:
    """Replace the database ``db`` with the backup ``source``. Raises ``DatabaseInUse`` while
    a server, a worker or another process uses ``db``, ``BackupError`` for a bad backup."""
    started = time.monotonic()
    src, dest = Path(source).expanduser(), Path(db).expanduser()
    if db == ":memory:":
        raise BackupError("there is no file to restore into: pass --db (or XTRACKER_DB)")
    if not src.is_file():
        raise BackupError(f"no backup at {source}")
    if _same_file(src, db):
        raise BackupError(f"{source} is the database itself: give a backup")
    wal = Path(str(src) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise BackupError(
            f"{source} has a write-ahead log next to it ({wal}) holding part of its data:"
            f" make a single-file copy first (`xtracker backup --db {source} NEW_FILE`)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with hold_exclusive(db):
        _refuse_if_open(dest)
        tmp = _temp_next_to(dest, "restore")
        try:
            with src.open("rb") as fin:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            done = _prepare(tmp, source)
            _fsync(tmp)
            for stale in [reports_path(db) + s for s in ("", *SIDE_FILES)] + [
                db + s for s in SIDE_FILES
            ]:
                _remove(Path(stale))
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        finally:
            for name in (tmp, *(Path(str(tmp) + s) for s in SIDE_FILES)):
                _remove(name)
    return RestoreDone(str(dest), *done, seconds=time.monotonic() - started)


def _prepare(path: Path, source: str) -> tuple[int, int, int, str, int, int]:
    """Check the copy ``path`` of the backup ``source`` and make it the next database: migrated,
    a new generation, no leases. Returns the fields of ``RestoreDone`` it knows.
    It is left in WAL mode, like every database xtracker opens (so that a process that has it
    open holds SQLite's shared lock, step 2), and closed: its log folded in, a single file."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        try:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(10)")]
            if problems != ["ok"]:
                raise BackupError(
                    f"{source} is damaged (PRAGMA integrity_check: {'; '.join(problems)}):"
                    " restore another backup"
                )
            schema = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                " AND name IN ('spaces', 'inbox', 'clicks')"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{source} is not a database ({exc}): restore a backup") from exc
        if schema < 1 or tables != 3:
            raise BackupError(f"{source} is not an xtracker database: restore a backup")
        if schema > len(MIGRATIONS):
            raise BackupError(
                f"{source} is at schema {schema}, newer than this xtracker ({len(MIGRATIONS)}):"
                " upgrade xtracker first"
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            new = renew_generation(conn)
            released = release_leases(conn)
            due = unsettled_count(conn)
            events = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
            clicks = conn.execute("SELECT count(*) FROM clicks").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()  # the last connection: checkpoints and deletes the log
    wal = Path(str(path) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise BackupError(f"could not fold the log of {path} into it: try again")
    return int(events), int(clicks), int(schema), new, due, released


def _refuse_if_open(path: Path) -> None:
    """Refuse while any process has the database open (see the module's docstring, step 2)."""
    if not path.exists():
        return
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            raise DatabaseInUse(
                f"{path} is open in another process (an xtracker command, the sqlite3 shell,"
                " a server or worker): close it first"
            ) from exc
    except sqlite3.DatabaseError:
        pass  # a damaged file, the usual reason to restore: it is replaced anyway
    finally:
        conn.close()  # the last connection: SQLite folds the old WAL into the old file


def _same_file(path: Path, other: str) -> bool:
    try:
        return os.path.samefile(path, Path(other).expanduser())
    except OSError:
        return False


def _temp_next_to(path: Path, what: str) -> Path:
    # In the same directory, so that the final rename is atomic (one file system).
    return path.with_name(f".{path.name}.{what}-{secrets.token_hex(4)}")


def _move_into_place(tmp: Path, dest: Path, *, replace: bool) -> None:
    if replace:
        os.replace(tmp, dest)
    else:
        try:
            os.link(tmp, dest)  # fails if dest exists: a file made meanwhile is not replaced
        except FileExistsError:
            raise BackupError(f"{dest} exists: give a new file, or --force to replace it") from None
        except OSError:  # a file system without hard links
            if dest.exists():
                raise BackupError(
                    f"{dest} exists: give a new file, or --force to replace it"
                ) from None
            os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # directories cannot be opened for fsync there
    _fsync(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
