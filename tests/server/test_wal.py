"""store/sqlite/wal.py: the WAL stays bounded under constant writes while a read is always in
flight, on a real SQLite file through the real writer (its thread, in process)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

from xtracker_server.store.sqlite.db import connect, open_db
from xtracker_server.store.sqlite.wal import (
    LONG_WAIT_EVERY_S,
    LONG_WAIT_LIMITS,
    LONG_WAIT_MS,
    WAIT_MS,
    WalKeeper,
    wal_bytes,
)
from xtracker_server.store.sqlite.writer import GroupCommitWriter

KIB = 1024
LIMIT = 256 * KIB
CHUNK = 32 * KIB  # bytes one write adds
WRITTEN = 8 * 1024 * KIB  # what the test writes in all: 32 times the limit
PACE_S = 0.016  # between two writes: about 2 MiB a second


def make_filler(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, data BLOB)")


def add_filler(conn: sqlite3.Connection, data: bytes) -> None:
    conn.execute("INSERT INTO filler (data) VALUES (?)", (data,))


def _reads_always_in_flight(path: str, stop: threading.Event, reads: list[int]) -> None:
    """Two readers taking turns, the next one starting before the last one ends: there is never
    a moment without a read transaction (what a busy server's reports and lookups look like).
    Counts its reads in ``reads``."""
    a, b = connect(path, readonly=True), connect(path, readonly=True)
    try:
        a.execute("BEGIN")
        a.execute("SELECT count(*) FROM filler").fetchone()
        while not stop.is_set():
            time.sleep(0.005)
            b.execute("BEGIN")
            b.execute("SELECT count(*) FROM filler").fetchone()
            a.execute("COMMIT")
            a, b = b, a
            reads[0] += 1
        a.execute("COMMIT")
    finally:
        a.close()
        b.close()


def test_the_wal_stays_bounded_under_constant_writes_and_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    open_db(path).close()
    largest = 0
    reads = [0]

    async def run() -> GroupCommitWriter:
        nonlocal largest
        writer = GroupCommitWriter(path, sync="NORMAL", wal_limit_bytes=LIMIT)
        await writer.start()
        await writer.write(make_filler)
        stop = threading.Event()
        reader = threading.Thread(target=_reads_always_in_flight, args=(path, stop, reads))
        reader.start()
        try:
            for _ in range(WRITTEN // CHUNK):
                await writer.write(add_filler, os.urandom(CHUNK))
                largest = max(largest, wal_bytes(path))
                await asyncio.sleep(PACE_S)
            assert reader.is_alive()  # it read all along
        finally:
            stop.set()
            await asyncio.to_thread(reader.join)
            await writer.stop()
        return writer

    writer = asyncio.run(asyncio.wait_for(run(), timeout=120))
    # Past the limit, a TRUNCATE runs at most 0.5 s later (CHECK_S), when about 1 MiB more has
    # been written: 4 MiB leaves room for a slow machine, and is half of what was written.
    wal = writer.wal
    assert largest < 4 * 1024 * KIB, f"WAL {largest:,} bytes; {wal.truncated=} {wal.gave_up=}"
    assert wal.truncated > 0 and reads[0] > 100
    conn = connect(path, readonly=True)
    try:
        assert conn.execute("SELECT count(*) FROM filler").fetchone()[0] == WRITTEN // CHUNK
    finally:
        conn.close()


def test_an_idle_writer_checkpoints_what_the_wal_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    conn = open_db(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # only the keeper checkpoints here
    make_filler(conn)
    now = [0.0]
    keeper = WalKeeper(path, limit_bytes=LIMIT, clock=lambda: now[0])
    try:
        before = os.path.getsize(path)
        add_filler(conn, os.urandom(CHUNK))
        keeper.after_batch(conn, waiting=False)
        assert os.path.getsize(path) == before  # the commit is only in the WAL
        keeper.idle(conn)
        assert os.path.getsize(path) >= before + CHUNK  # copied to the database file
    finally:
        conn.close()


def _kept_by_hand(tmp_path: Path) -> tuple[str, sqlite3.Connection, list[float], WalKeeper]:
    """A database whose WAL only a keeper on a clock of the test's (``now[0]``) checkpoints."""
    path = str(tmp_path / "x.db")
    conn = open_db(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    make_filler(conn)
    now = [0.0]
    return path, conn, now, WalKeeper(path, limit_bytes=LIMIT, clock=lambda: now[0])


def test_a_wal_past_the_limit_is_emptied_once_its_readers_are_gone(tmp_path: Path) -> None:
    path, conn, now, keeper = _kept_by_hand(tmp_path)
    reader = connect(path, readonly=True)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM filler").fetchone()  # holds the first snapshot
        for _ in range(2 * LIMIT // CHUNK + 2):
            add_filler(conn, os.urandom(CHUNK))
        assert wal_bytes(path) > 2 * LIMIT
        now[0] += 1
        started = time.monotonic()
        keeper.after_batch(conn, waiting=True)
        assert time.monotonic() - started < 5  # gave up after WAIT_MS; only a hang guard
        assert (keeper.truncated, keeper.gave_up) == (0, 1)  # the reader is still there
        reader.execute("COMMIT")
        now[0] += 1
        keeper.after_batch(conn, waiting=True)
        assert (keeper.truncated, wal_bytes(path)) == (1, 0)
    finally:
        reader.close()
        conn.close()


def test_a_long_reader_is_waited_for_briefly_until_the_wal_is_far_past_its_limit(
    tmp_path: Path,
) -> None:
    """A reader that stays (a catch-up round of the report rollup, an export) holds the writer
    ``WAIT_MS`` per check, what a request's reads take; only past ``LONG_WAIT_LIMITS`` times
    the limit does the writer wait ``LONG_WAIT_MS`` for it, and after such a wait gave up, not
    again before ``LONG_WAIT_EVERY_S``. The waits are read off the statements the keeper runs
    (no timing)."""
    path, conn, now, keeper = _kept_by_hand(tmp_path)
    waits: list[int] = []
    conn.set_trace_callback(
        lambda sql: waits.append(int(sql.split("=")[1])) if "busy_timeout=" in sql else None
    )
    reader = connect(path, readonly=True)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM filler").fetchone()  # stays in the WAL
        for grown in (2, LONG_WAIT_LIMITS + 1):  # past the limit, then far past it
            while wal_bytes(path) <= grown * LIMIT:
                add_filler(conn, os.urandom(CHUNK))
            now[0] += 1
            keeper.after_batch(conn, waiting=False)
        # the long wait gave up: the next checks wait briefly, until LONG_WAIT_EVERY_S passed
        now[0] += LONG_WAIT_EVERY_S - 1
        keeper.after_batch(conn, waiting=False)
        now[0] += 1
        keeper.after_batch(conn, waiting=False)
        assert keeper.gave_up == 4 and keeper.truncated == 0  # the reader was there each time
        # each check: its wait, then the connection's own busy timeout again
        assert waits[0::2] == [WAIT_MS, LONG_WAIT_MS, WAIT_MS, LONG_WAIT_MS], waits
        assert WAIT_MS < LONG_WAIT_MS
    finally:
        reader.close()
        conn.close()
