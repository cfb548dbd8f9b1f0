"""Backup, restore and the report rollup's generation check, on real SQLite files (the server
and the CLI around them are in tests/e2e/test_backup.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    prepare_destination,
)
from xtracker_server.store.sqlite import destinations, outbox, spaces
from xtracker_server.store.sqlite.backup import BackupError, backup, restore
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.generation import generation
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events
from xtracker_server.store.sqlite.inuse import (
    DatabaseInUse,
    RestoreInProgress,
    hold_exclusive,
    hold_shared,
)
from xtracker_server.store.sqlite.migrations import MIGRATIONS
from xtracker_server.store.sqlite.rollup import catch_up, rebuild_if_stale, with_rollup
from xtracker_server.store.sqlite.runtime import Store

STEPS = ("contact", "subscribed", "registration", "deposit")


def _events(conn: sqlite3.Connection, space: int, start: int, count: int) -> None:
    with transaction(conn):
        insert_events(conn, _drafts(space, start, count))


def _drafts(space: int, start: int, count: int) -> list[InboxDraft]:
    """``count`` attributed events (numbered from ``start``) over 40 uids and the 4 steps."""
    drafts = []
    for n in range(start, start + count):
        uid, event = f"u{n % 40}", STEPS[n % 4]
        value = "2.50" if event == "deposit" else None
        drafts.append(InboxDraft(
            space_id=space, dedup_key=dedup_key(space, uid, None, event, str(n), n),
            event=event, uid=uid, tg_id=None, eid=str(n), value=value,
            currency="USD" if value else None, occurred_at_ms=1_000 + n, received_ms=1_000 + n,
            source="api",
        ))  # fmt: skip
    return drafts


def _database(path: Path, events: int = 100) -> int:
    conn = open_db(str(path))
    with transaction(conn):
        space = spaces.create_space(conn, "s", 0).space.id
    _events(conn, space, 0, events)
    conn.close()
    return space


def _inbox_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
    finally:
        conn.close()


def _rollup_rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return sorted(map(tuple, conn.execute(
        "SELECT inbox_id, event, uid, at_ms FROM reports.report_steps")))  # fmt: skip


def _inbox_rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """What the rollup must hold: a row per attributed event of the inbox."""
    return sorted(map(tuple, conn.execute(
        "SELECT id, event, uid, occurred_at_ms FROM inbox WHERE uid IS NOT NULL")))  # fmt: skip


def _replace_by_copy(copy: Path, db: Path) -> None:
    """The restore docs/operations.md described before `xtracker restore`."""
    shutil.copyfile(copy, db)
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)


def test_backup_is_a_complete_copy_created_0600(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db, events=250)
    live = open_db(str(db))  # an open connection with commits still in the WAL
    _events(live, 1, 1000, 50)
    done = backup(str(db), str(tmp_path / "b.db"))
    assert done.path == str(tmp_path / "b.db") and done.bytes > 0
    assert stat.S_IMODE(os.stat(tmp_path / "b.db").st_mode) == 0o600
    copy = sqlite3.connect(tmp_path / "b.db")
    assert copy.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM inbox").fetchone()[0] == 300
    assert copy.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    copy.close()
    live.close()
    assert [p for p in os.listdir(tmp_path) if not p.startswith("x.db")] == ["b.db"]


def test_backup_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db)
    target = tmp_path / "b.db"
    target.write_bytes(b"keep me")
    with pytest.raises(BackupError, match=r"exists.*--force"):
        backup(str(db), str(target))
    assert target.read_bytes() == b"keep me"
    backup(str(db), str(target), force=True)
    assert _inbox_count(target) == 100
    with pytest.raises(BackupError, match="the database itself"):
        backup(str(db), str(db), force=True)


def test_restore_renews_the_generation_releases_leases_and_drops_the_rollup(
    tmp_path: Path,
) -> None:
    db, copy = tmp_path / "x.db", tmp_path / "b.db"
    space = _database(db, events=0)
    conn = open_db(str(db))
    with transaction(conn):
        hook = DestinationInput(kind=DestinationKind.WEBHOOK, url="https://h.example/x")
        dest = destinations.create_destination(conn, space, prepare_destination(hook), 0)
        assert dest is not None
    _events(conn, space, 0, 8)  # 8 deliveries
    with transaction(conn):
        claimed = outbox.claim(conn, dest.id, "worker-of-the-past", 10**13, 60_000, 3)
    assert len(claimed) == 3
    before = generation(conn)
    catch_up(with_rollup(conn, str(db)))
    conn.close()
    backup(str(db), str(copy))

    done = restore(str(db), str(copy))
    assert (done.events, done.leases_released, done.deliveries_due) == (8, 3, 8)
    assert not Path(reports_path(str(db))).exists()
    assert not any(Path(str(db) + s).exists() for s in ("-wal", "-shm", "-journal"))
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    conn = open_db(str(db))
    assert generation(conn) == done.generation != before
    assert conn.execute("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL"
                        ).fetchone()[0] == 0  # fmt: skip
    assert len(outbox.claim(conn, dest.id, "new", 10**13 - 1, 60_000, 100)) == 8
    conn.close()


def test_restore_refuses_while_a_store_has_the_database_open(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db)
    backup(str(db), str(tmp_path / "b.db"))
    store = Store(str(db), writer_process=False)

    async def attempt() -> None:
        await store.open()
        try:
            with pytest.raises(DatabaseInUse, match="xtracker serve"):
                restore(str(db), str(tmp_path / "b.db"))
        finally:
            await store.close()

    asyncio.run(attempt())
    restore(str(db), str(tmp_path / "b.db"))  # closed: the lock went with it


def test_restore_refuses_while_another_connection_has_the_file_open(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db)
    backup(str(db), str(tmp_path / "b.db"))
    other = sqlite3.connect(db)  # no lock file: the sqlite3 shell, another tool
    other.execute("SELECT count(*) FROM inbox").fetchone()
    writer = open_db(str(db))
    _events(writer, 1, 500, 5)
    writer.close()
    with pytest.raises(DatabaseInUse, match="open in another process"):
        restore(str(db), str(tmp_path / "b.db"))
    assert other.execute("SELECT count(*) FROM inbox").fetchone()[0] == 105  # untouched
    other.close()
    restore(str(db), str(tmp_path / "b.db"))
    assert _inbox_count(db) == 100


def test_a_server_does_not_start_during_a_restore(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    with hold_exclusive(db), pytest.raises(RestoreInProgress, match="restore"):
        hold_shared(db)
    hold_shared(db).release()
    with hold_shared(db), hold_shared(db), pytest.raises(DatabaseInUse):
        hold_exclusive(db)  # servers and workers share it


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a database at all" * 100, "not a database"),
        (None, "newer than this xtracker"),
        (b"", "not an xtracker database"),
    ],
)
def test_restore_refuses_a_file_that_is_no_good_backup(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    db, bad = tmp_path / "x.db", tmp_path / "bad.db"
    _database(db)
    if content is None:
        backup(str(db), str(bad))
        newer = sqlite3.connect(bad)
        newer.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
        newer.close()
    else:
        bad.write_bytes(content)
    with pytest.raises(BackupError, match=problem):
        restore(str(db), str(bad))
    assert _inbox_count(db) == 100
    assert [p.name for p in tmp_path.iterdir() if ".restore-" in p.name] == []


def test_restore_refuses_a_damaged_file(tmp_path: Path) -> None:
    db, bad = tmp_path / "x.db", tmp_path / "bad.db"
    _database(db, events=2000)
    backup(str(db), str(bad))
    data = bytearray(bad.read_bytes())
    page = 4096
    for at in range(len(data) // 2, len(data) // 2 + 3 * page, 97):  # garble pages mid-file
        data[at] ^= 0x5A
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"damaged|not a database"):
        restore(str(db), str(bad))
    assert _inbox_count(db) == 2000


def test_a_rollup_built_for_another_generation_is_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db, events=120)
    conn = with_rollup(open_db(str(db)), str(db))
    catch_up(conn)
    assert len(_rollup_rows(conn)) == 120
    conn.execute("DELETE FROM inbox WHERE id > 100")  # what another copy may hold ...
    conn.execute(
        "INSERT INTO inbox SELECT id + 20, space_id, dedup_key || 'x', event, uid,"
        " tg_id, eid, value, currency, occurred_at_ms, received_ms, source,"
        " attributed_by, test FROM inbox WHERE id > 80"
    )  # ... ids past the watermark
    conn.execute("UPDATE generation SET id = 'another'")
    conn.close()
    conn = with_rollup(open_db(str(db)), str(db))
    assert conn.execute("SELECT inbox_id FROM reports.rollup_state").fetchone()[0] == 0
    catch_up(conn)
    assert _rollup_rows(conn) == _inbox_rows(conn)
    conn.close()


def test_a_rollup_ahead_of_a_database_replaced_by_a_copy_is_rebuilt(tmp_path: Path) -> None:
    db, copy = tmp_path / "x.db", tmp_path / "copy.db"
    space = _database(db, events=100)
    conn = open_db(str(db))
    target = sqlite3.connect(copy)
    conn.backup(target)  # the old documented backup: same generation
    target.close()
    _events(conn, space, 100, 60)
    catch_up(with_rollup(conn, str(db)))  # the rollup passes the copy's last event
    conn.close()
    _replace_by_copy(copy, db)

    rebuild_if_stale(str(db))  # what the server does at start, before it writes
    conn = open_db(str(db))
    _events(conn, space, 1000, 30)  # ids 101-130: below the old watermark (160)
    catch_up(with_rollup(conn, str(db)))
    assert len(_inbox_rows(conn)) == 130
    assert _rollup_rows(conn) == _inbox_rows(conn)
    conn.close()


def test_a_rollup_from_before_generations_is_rebuilt_once(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    _database(db, events=50)
    conn = with_rollup(open_db(str(db)), str(db))
    catch_up(conn)
    conn.execute("DELETE FROM reports.built_for")
    conn.execute(
        "INSERT INTO reports.report_steps SELECT space_id, link_id, event, at_ms,"
        " inbox_id + 1000, uid, prev_ms, currency, units, fraction, scale"
        " FROM reports.report_steps"
    )  # a wrong count that nothing else reveals
    conn.close()
    conn = with_rollup(open_db(str(db)), str(db))
    catch_up(conn)
    assert _rollup_rows(conn) == _inbox_rows(conn)
    conn.close()
    conn = with_rollup(open_db(str(db)), str(db))  # recorded now: not rebuilt again
    assert conn.execute("SELECT inbox_id FROM reports.rollup_state").fetchone()[0] == 50
    conn.close()


@pytest.mark.parametrize("on_open", [True, False], ids=["server", "command"])
def test_a_store_checks_the_rollup_before_its_first_write(tmp_path: Path, on_open: bool) -> None:
    """A server's store checks it when it opens; a command's (``eager=False``), which
    may only read, before its first write or report."""
    db, copy = tmp_path / "x.db", tmp_path / "copy.db"
    space = _database(db, events=100)
    conn = open_db(str(db))
    target = sqlite3.connect(copy)
    conn.backup(target)
    target.close()
    _events(conn, space, 100, 60)
    catch_up(with_rollup(conn, str(db)))
    conn.close()
    _replace_by_copy(copy, db)
    store = Store(str(db), writer_process=False, eager=on_open)

    async def serve() -> None:
        await store.open()
        try:
            assert await store.list_spaces()  # a read alone neither needs nor spoils the rollup
            # Written before the first catch-up, past the old watermark (160): ids 101-200.
            await store.write(insert_events, _drafts(space, 1000, 100))
            await store.catch_up_reports()
        finally:
            await store.close()

    asyncio.run(serve())
    conn = with_rollup(open_db(str(db)), str(db))
    assert len(_inbox_rows(conn)) == 200
    assert _rollup_rows(conn) == _inbox_rows(conn)
    conn.close()
