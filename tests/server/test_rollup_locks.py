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


def test_a_store_opens_while_another_connection_writes_the_rollup(tmp_path: Path) -> None:
    path = str(migrated(tmp_path / "x.db"))
    open_rollup(path).close()  # the rollup exists: opening the store checks it
    holder = attach_reports(connect(path), path)
    holder.execute("BEGIN")
    holder.execute("DELETE FROM reports.feed")  # the rollup's write lock, not the main file's
    released = threading.Timer(HELD_S, holder.execute, ("COMMIT",))
    released.start()

    async def open_and_close() -> float:
        store = Store(path, writer_process=False, readers=1)
        started = time.monotonic()
        await store.open()  # SQLite said "database is locked" at once, not waiting
        waited = time.monotonic() - started
        await store.close()
        return waited

    try:
        waited = asyncio.run(open_and_close())
    finally:
        released.join()
        holder.close()
    assert waited >= HELD_S * 0.9  # it waited for the lock rather than skipping the check


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
