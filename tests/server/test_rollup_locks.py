"""Opening the report rollup (store/sqlite/rollup.py ``with_rollup``: what every store does when it
opens, and a server's first catch-up): next to another connection that holds the rollup's write
lock, as a server's catch-up does while a command opens its store on the same file; and when
the rollup is current, which it then leaves untouched."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from tests.databases import migrated
from xtracker_server.store.sqlite.db import attach_reports, connect
from xtracker_server.store.sqlite.rollup import open_rollup
from xtracker_server.store.sqlite.runtime import Store

#: How long the other connection holds the lock: far below the busy timeout (store/sqlite/db.py).
HELD_S = 0.3


def _open_while_the_rollup_is_written(path: str) -> float:
    """How long a store takes to open while another connection holds the rollup's write lock
    (for HELD_S)."""
    holder = attach_reports(connect(path), path)
    holder.execute("BEGIN")
    holder.execute("DELETE FROM reports.feed")  # the rollup's write lock, not the main file's
    released = threading.Timer(HELD_S, holder.execute, ("COMMIT",))
    released.start()

    async def open_and_close() -> float:
        store = Store(path, writer_process=False, readers=1)
        started = time.monotonic()
        await store.open()
        waited = time.monotonic() - started
        await store.close()
        return waited

    try:
        return asyncio.run(open_and_close())
    finally:
        released.join()
        holder.close()


def test_a_store_whose_rollup_must_change_waits_for_another_connection_writing_it(
    tmp_path: Path,
) -> None:
    path = str(migrated(tmp_path / "x.db"))
    open_rollup(path).close()
    # built for another copy of the database (a restore): opening the store rebuilds it, a
    # write that must wait for the lock (SQLite said "database is locked" at once, not waiting)
    other = attach_reports(connect(path), path)
    other.execute("UPDATE reports.built_for SET generation = 'another copy'")
    other.close()
    assert _open_while_the_rollup_is_written(path) >= HELD_S * 0.9


def test_a_store_whose_rollup_is_current_opens_without_waiting_for_its_writer(
    tmp_path: Path,
) -> None:
    """A current rollup needs nothing written: a command's report does not wait for the
    server's catch-up to open its store (``_current``)."""
    path = str(migrated(tmp_path / "x.db"))
    open_rollup(path).close()
    assert _open_while_the_rollup_is_written(path) < HELD_S * 0.9


def test_opening_a_current_rollup_writes_nothing(tmp_path: Path) -> None:
    """What every command does when it opens its store: a rollup found current is not written
    (no commit to sync, nothing for the command's last close to checkpoint)."""
    path = str(migrated(tmp_path / "x.db"))
    reader = open_rollup(path)  # kept open: the rollup's WAL stays, and shows what is written
    try:
        wal = Path(path).with_name("x.reports.db-wal")
        before = wal.stat().st_size
        open_rollup(path).close()  # as rebuild_if_stale does at every open
        assert wal.stat().st_size == before
    finally:
        reader.close()
