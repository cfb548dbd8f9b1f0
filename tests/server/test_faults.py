"""Storage faults without a broken disk: how SQLite's errors are classified, what the writer and
the readers answer for them and past their deadline, what is logged, the start-up check.
(tests/e2e/test_storage_faults.py makes the same faults for real, as root.)"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.databases import migrated
from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.store.health import FaultTracker
from xtracker_server.store.sqlite.db import connect, open_db, transaction
from xtracker_server.store.sqlite.faults import FaultReason, StoreUnavailable, storage_fault
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.startup import DatabaseRefused, check_database
from xtracker_server.store.sqlite.writer import GroupCommitWriter


def new_db(tmp_path: Path) -> str:
    path = str(migrated(tmp_path / "f.db"))
    conn = open_db(path)
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    conn.close()
    return path


def sqlite_error(action: str, tmp_path: Path) -> sqlite3.Error:
    """A real error of SQLite, caused by ``action``."""
    path = new_db(tmp_path)
    try:
        if action == "locked":
            holder = connect(path)
            holder.execute("BEGIN IMMEDIATE")
            other = sqlite3.connect(path, timeout=0)
            other.execute("BEGIN IMMEDIATE")
        elif action == "read_only":
            ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            ro.execute("INSERT INTO t VALUES (1)")
        elif action == "not_a_database":
            junk = tmp_path / "junk.db"
            junk.write_bytes(b"not sqlite at all" * 512)
            sqlite3.connect(junk).execute("SELECT * FROM sqlite_master")
        elif action == "constraint":
            conn = connect(path)
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("INSERT INTO t VALUES (1)")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError(f"{action} raised nothing")


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("locked", FaultReason.LOCKED),
        ("read_only", FaultReason.READ_ONLY),
        ("not_a_database", FaultReason.CORRUPT),
        ("constraint", None),  # the operation's own error, not the storage's
    ],
)
def test_sqlite_errors_are_classified_in_one_place(
    action: str, reason: FaultReason | None, tmp_path: Path
) -> None:
    assert storage_fault(sqlite_error(action, tmp_path)) is reason


def test_an_error_without_its_code_is_classified_by_its_message() -> None:
    assert storage_fault(sqlite3.OperationalError("database or disk is full")) is (
        FaultReason.DISK_FULL
    )
    assert storage_fault(sqlite3.DatabaseError("database disk image is malformed")) is (
        FaultReason.CORRUPT
    )
    assert storage_fault(ValueError("database is locked")) is None


def disk_full(conn: sqlite3.Connection) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def test_a_storage_fault_in_one_operation_fails_its_whole_batch_with_the_reason(
    tmp_path: Path,
) -> None:
    path = new_db(tmp_path)

    async def run() -> list[object]:
        writer = GroupCommitWriter(path)
        await writer.start()
        out = await asyncio.gather(
            writer.write(lambda c: c.execute("INSERT INTO t VALUES (1)")),
            writer.write(disk_full),
            writer.write(lambda c: c.execute("INSERT INTO t VALUES (2)")),
            return_exceptions=True,
        )
        await writer.stop()
        return list(out)

    out = asyncio.run(run())
    assert all(isinstance(o, StoreUnavailable) for o in out), out
    assert {o.reason for o in out if isinstance(o, StoreUnavailable)} == {FaultReason.DISK_FULL}
    assert connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 0


def insert_slowly(conn: sqlite3.Connection, n: int, seconds: float) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (n,))
    time.sleep(seconds)


def test_a_write_past_its_deadline_answers_timeout_and_is_not_done_late(tmp_path: Path) -> None:
    """The write being committed when its deadline passes may still commit; the one still
    waiting for its turn is dropped (its caller was told it failed)."""
    path = new_db(tmp_path)

    async def run() -> list[object]:
        writer = GroupCommitWriter(path, timeout_s=0.2)
        await writer.start()
        slow = asyncio.ensure_future(writer.write(insert_slowly, 1, 2.0))
        await asyncio.sleep(0.1)  # the slow write holds the writer
        waiting = asyncio.ensure_future(writer.write(insert_slowly, 2, 0.0))
        out = await asyncio.gather(slow, waiting, return_exceptions=True)
        await writer.stop()
        return list(out)

    # Both answered before the slow write was done (it would have answered its result).
    out = asyncio.run(run())
    assert [getattr(o, "reason", o) for o in out] == [FaultReason.TIMEOUT] * 2
    stored = connect(path).execute("SELECT n FROM t").fetchall()
    assert [n for (n,) in stored] == [1]


def sleep_then_count(conn: sqlite3.Connection, seconds: float) -> int:
    time.sleep(seconds)
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


def malformed(conn: sqlite3.Connection) -> None:
    raise sqlite3.DatabaseError("database disk image is malformed")


def test_reads_have_the_deadline_and_classified_faults_too(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> tuple[object, FaultReason | None, int, FaultReason | None, object]:
        store = Store(path, writer_process=False, timeout_s=0.2)
        await store.open()
        try:
            late: object = await store.read(sleep_then_count, 2.0)
        except StoreUnavailable as exc:
            late = exc.reason
        during = store.health.reads.fault
        count = await store.read(sleep_then_count, 0.0)
        after = store.health.reads.fault
        try:
            damaged: object = await store.read(malformed)
        except StoreUnavailable as exc:
            damaged = exc.reason
        await store.close()
        return late, during and during.reason, count, after and after.reason, damaged

    late, during, count, after, damaged = asyncio.run(run())
    assert (late, during) == (FaultReason.TIMEOUT, FaultReason.TIMEOUT)
    assert (count, after) == (0, None)  # a read that works again: recovered
    assert damaged == FaultReason.CORRUPT


def test_a_storage_fault_is_logged_once_per_change_of_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = FaultTracker("writes")
    with caplog.at_level(logging.INFO, logger="xtracker.store"):
        for _ in range(100):
            tracker.failed(FaultReason.DISK_FULL, "database or disk is full")
        tracker.failed(FaultReason.TIMEOUT, "slow")  # a symptom: the cause stays the reason
        assert tracker.fault is not None and tracker.fault.reason is FaultReason.DISK_FULL
        for _ in range(10):
            tracker.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("storage failing (writes): disk_full")
    assert lines[1].startswith("storage recovered (writes): disk_full")
    assert "101 writes failed" in lines[1]


def test_a_damaged_file_stays_the_reason_until_a_restart() -> None:
    tracker = FaultTracker("reads")
    tracker.failed(FaultReason.CORRUPT, "database disk image is malformed")
    tracker.failed(FaultReason.LOCKED, "database is locked")
    tracker.succeeded()
    assert tracker.fault is not None and tracker.fault.reason is FaultReason.CORRUPT


def test_a_storage_error_that_escapes_the_store_still_answers_503() -> None:
    async def locked(request: Request) -> Response:
        raise sqlite3.OperationalError("database is locked")

    app = Starlette(routes=[Route("/x", locked)], exception_handlers=EXCEPTION_HANDLERS)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/x")

    r = asyncio.run(get())
    assert r.status_code == 503
    assert r.json()["error"] == "unavailable" and r.json()["reason"] == "locked"
    assert r.headers["Retry-After"] == "2"


def test_quick_check_past_its_budget_is_skipped_not_failed(tmp_path: Path) -> None:
    path = new_db(tmp_path)
    conn = connect(path)
    with transaction(conn):
        conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(20_000)])
    conn.close()
    assert check_database(path, quick_check_budget_s=0).quick_check == "skipped"
    assert check_database(path).quick_check == "ok"


def test_a_file_that_is_not_a_database_is_refused_with_the_way_to_restore_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"not sqlite at all" * 512)
    with pytest.raises(DatabaseRefused) as refused:
        check_database(str(path))
    assert f"the database {path} is damaged" in str(refused.value)
    assert f"xtracker restore BACKUP_FILE --db {path}" in str(refused.value)
