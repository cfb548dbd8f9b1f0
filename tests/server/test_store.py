"""The store on real SQLite files: migrations, the group-commit writer, credentials."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.domain.credentials import CredentialKind, hash_secret
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import connect, open_db, transaction
from xtracker_server.store.sqlite.migrations import MIGRATIONS, migrate
from xtracker_server.store.sqlite.writer import GroupCommitWriter, StoreUnavailable


def test_migrations_set_user_version_and_are_idempotent(tmp_path: Path) -> None:
    conn = open_db(str(tmp_path / "a.db"))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_database_from_a_newer_xtracker_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    open_db(path).execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="upgrade xtracker"):
        open_db(path)


def test_concurrent_writes_are_group_committed(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    open_db(path).close()

    def insert(conn: sqlite3.Connection, n: int) -> int:
        cur = conn.execute("INSERT INTO spaces (name, created_ms) VALUES (?, 0)", (f"s{n}",))
        return int(cur.lastrowid or 0)

    async def run() -> tuple[list[int], int]:
        writer = GroupCommitWriter(path)
        await writer.start()
        ids = await asyncio.gather(*(writer.write(lambda c, n=n: insert(c, n)) for n in range(500)))
        batches = writer.batches
        await writer.stop()
        return list(ids), batches

    ids, batches = asyncio.run(run())
    assert len(set(ids)) == 500
    assert batches < 100  # 500 concurrent writes, far fewer transactions
    conn = connect(path)
    assert conn.execute("SELECT count(*) FROM spaces").fetchone()[0] == 500


def test_a_failing_operation_is_rolled_back_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    open_db(path).close()

    def good(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO spaces (name, created_ms) VALUES ('good', 0)")
        return "ok"

    def bad(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO spaces (name, created_ms) VALUES ('half-done', 0)")
        raise ValueError("refused")

    async def run() -> list[object]:
        writer = GroupCommitWriter(path)
        await writer.start()
        results = await asyncio.gather(
            writer.write(good), writer.write(bad), writer.write(good), return_exceptions=True
        )
        await writer.stop()
        return list(results)

    results = asyncio.run(run())
    assert results[0] == "ok" and results[2] == "ok"
    assert isinstance(results[1], ValueError)
    names = [r[0] for r in connect(path).execute("SELECT name FROM spaces ORDER BY id")]
    assert names == ["good", "good"]


def test_grouped_writes_share_one_call_and_a_failing_one_is_isolated(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    open_db(path).close()
    calls: list[list[str]] = []

    def add(conn: sqlite3.Connection, names: list[str]) -> list[int]:
        calls.append(list(names))
        ids = []
        for name in names:
            cur = conn.execute("INSERT INTO spaces (name, created_ms) VALUES (?, 0)", (name,))
            if name == "bad":
                raise ValueError("refused")
            ids.append(int(cur.lastrowid or 0))
        return ids

    async def run(names: list[str]) -> list[object]:
        writer = GroupCommitWriter(path)
        await writer.start()
        # Queued together: the writer finds them waiting side by side.
        results = await asyncio.gather(
            *(writer.write_grouped(add, n) for n in names), return_exceptions=True
        )
        await writer.stop()
        return list(results)

    ids = asyncio.run(run(["a", "b", "c"]))
    assert calls == [["a", "b", "c"]]  # one call for the three
    assert len(set(ids)) == 3 and all(isinstance(i, int) for i in ids)

    calls.clear()
    results = asyncio.run(run(["d", "bad", "e"]))
    # The shared call raised: the batch ran again, each alone in its savepoint.
    assert calls == [["d", "bad", "e"], ["d"], ["bad"], ["e"]]
    assert isinstance(results[1], ValueError)
    assert all(isinstance(r, int) for r in (results[0], results[2]))
    names = [r[0] for r in connect(path).execute("SELECT name FROM spaces ORDER BY id")]
    assert names == ["a", "b", "c", "d", "e"]  # nothing of the failed one, nothing twice


def test_the_result_is_committed_before_the_caller_hears_of_it(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    open_db(path).close()
    other = connect(path, readonly=True)

    async def run() -> int:
        writer = GroupCommitWriter(path)
        await writer.start()
        await writer.write(
            lambda c: c.execute("INSERT INTO spaces (name, created_ms) VALUES ('x', 0)")
        )
        seen = other.execute("SELECT count(*) FROM spaces").fetchone()[0]  # another connection
        await writer.stop()
        return int(seen)

    assert asyncio.run(run()) == 1


def test_a_failed_commit_acknowledges_nobody(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    open_db(path).close()
    blocker = connect(path)

    async def run() -> BaseException | None:
        writer = GroupCommitWriter(path)
        await writer.start()
        assert writer._conn is not None
        writer._conn.execute("PRAGMA busy_timeout=50")
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            await writer.write(
                lambda c: c.execute("INSERT INTO spaces (name, created_ms) VALUES ('x', 0)")
            )
        except StoreUnavailable as exc:
            return exc
        finally:
            blocker.execute("ROLLBACK")
            await writer.stop()
        return None

    assert isinstance(asyncio.run(run()), StoreUnavailable)
    assert connect(path).execute("SELECT count(*) FROM spaces").fetchone()[0] == 0


def test_writes_after_stop_are_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")

    async def run() -> None:
        writer = GroupCommitWriter(path)
        await writer.start()
        await writer.stop()
        with pytest.raises(StoreUnavailable):
            await writer.write(lambda c: None)

    asyncio.run(run())


def test_rotation_keeps_the_previous_secret_for_24_hours(tmp_path: Path) -> None:
    conn = open_db(str(migrated(tmp_path / "c.db")))
    with transaction(conn):
        created = spaces.create_space(conn, "s", 1_000)
    with transaction(conn):
        rotation = spaces.rotate_credential(conn, created.space.id, CredentialKind.BEARER, 2_000)
    assert rotation is not None
    assert rotation.previous_valid_until_ms == 2_000 + 24 * 3600_000
    old, new = hash_secret(created.bearer), hash_secret(rotation.secret)
    assert spaces.find_credential(conn, old, 2_000 + 24 * 3600_000 - 1) is not None
    assert spaces.find_credential(conn, old, 2_000 + 24 * 3600_000) is None
    assert spaces.find_credential(conn, new, 10**15) is not None
    # The ingest token was not touched.
    assert spaces.find_credential(conn, hash_secret(created.ingest_token), 10**15) is not None


def test_rotating_twice_does_not_extend_the_oldest_secret(tmp_path: Path) -> None:
    conn = open_db(str(migrated(tmp_path / "c.db")))
    with transaction(conn):
        created = spaces.create_space(conn, "s", 0)
    with transaction(conn):
        spaces.rotate_credential(conn, created.space.id, CredentialKind.INGEST, 1_000)
    with transaction(conn):
        spaces.rotate_credential(conn, created.space.id, CredentialKind.INGEST, 5_000_000)
    first_deadline = 1_000 + 24 * 3600_000
    assert spaces.find_credential(conn, hash_secret(created.ingest_token), first_deadline) is None


def test_insert_events_dedups_within_one_group_and_against_the_inbox(tmp_path: Path) -> None:
    from xtracker_server.domain.dedup import dedup_key
    from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events

    conn = open_db(str(migrated(tmp_path / "i.db")))
    with transaction(conn):
        space = spaces.create_space(conn, "s", 0).space.id

    def draft(eid: str) -> InboxDraft:
        return InboxDraft(
            space_id=space, dedup_key=dedup_key(space, "u1", None, "deposit", eid, 5),
            event="deposit", uid="u1", tg_id=None, eid=eid, value="25.00", currency="USD",
            occurred_at_ms=5, received_ms=5, source="api",
        )  # fmt: skip

    with transaction(conn):
        first = insert_events(conn, [draft("a"), draft("b"), draft("a")])
    with transaction(conn):
        again = insert_events(conn, [draft("b"), draft("c")])
    assert [o.duplicate for o in first] == [False, False, True]
    assert first[2].inbox_id == first[0].inbox_id
    assert again[0].duplicate and again[0].inbox_id == first[1].inbox_id
    assert not again[1].duplicate
    assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 3


def test_a_duplicate_naming_another_amount_carries_the_stored_one(tmp_path: Path) -> None:
    from dataclasses import replace

    from xtracker_server.domain.dedup import AmountConflict, dedup_key
    from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events

    conn = open_db(str(migrated(tmp_path / "c.db")))
    with transaction(conn):
        space = spaces.create_space(conn, "s", 0).space.id
    ftd = InboxDraft(
        space_id=space, dedup_key=dedup_key(space, "u1", None, "deposit", "ftd-1", 5),
        event="deposit", uid="u1", tg_id=None, eid="ftd-1", value="50.00", currency="USD",
        occurred_at_ms=5, received_ms=5, source="postback",
    )  # fmt: skip
    more, euro = replace(ftd, value="75"), replace(ftd, currency="EUR")
    # A repeat in the same group as the original, then repeats of the stored event.
    with transaction(conn):
        first = insert_events(conn, [ftd, more])
    with transaction(conn):
        later = insert_events(conn, [replace(ftd, value="50"), euro, replace(ftd, value=None)])
    stored = AmountConflict("50.00", "USD", "75", "USD")
    assert [o.conflict for o in first] == [None, stored]
    assert [o.conflict for o in later] == [None, AmountConflict("50.00", "USD", "50.00", "EUR"),
                                           None]  # fmt: skip
    assert all(o.duplicate for o in [first[1], *later])
    row = conn.execute("SELECT value, currency FROM inbox").fetchall()
    assert [tuple(r) for r in row] == [("50.00", "USD")]


def test_insert_many_splits_at_the_parameter_cap_and_reports_consecutive_rowids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtracker_server.store.sqlite import db

    conn = open_db(str(migrated(tmp_path / "m.db")))
    monkeypatch.setattr(db, "MAX_PARAMS", 6)  # 3 rows of 2 per statement
    with transaction(conn):
        done = db.insert_many(
            conn, "INSERT INTO spaces (name, created_ms)", [(f"s{i}", i) for i in range(7)]
        )
    assert [(d.first, d.count, d.changes) for d in done] == [(0, 3, 3), (3, 3, 3), (6, 1, 1)]
    rows = conn.execute("SELECT id, name FROM spaces ORDER BY id").fetchall()
    for d in done:  # the rowids a statement gave, derived from its last one
        ids = range(d.last_rowid - d.count + 1, d.last_rowid + 1)
        assert [r["name"] for r in rows if r["id"] in ids] == [
            f"s{i}" for i in range(d.first, d.first + d.count)
        ]


def test_a_taken_uid_in_a_group_of_clicks_is_minted_again(tmp_path: Path) -> None:
    from xtracker_server.domain.clicks import click_draft
    from xtracker_server.store.sqlite.clicks import insert_clicks

    path = str(migrated(tmp_path / "c.db"))
    conn = open_db(path)
    with transaction(conn):
        space = spaces.create_space(conn, "s", 0).space.id
    drafts = [click_draft(space_id=space, source="api", now_ms=1, raw_query=None) for _ in range(3)]
    with transaction(conn):
        insert_clicks(conn, [drafts[1]])  # the second draft's uid is taken already

    async def run() -> list[str]:
        writer = GroupCommitWriter(path)
        await writer.start()
        uids = await asyncio.gather(*(writer.write_grouped(insert_clicks, d) for d in drafts))
        await writer.stop()
        return list(uids)

    uids = asyncio.run(run())
    assert uids[0] == drafts[0].uid and uids[2] == drafts[2].uid
    assert uids[1] != drafts[1].uid  # minted again, not lost and not merged
    assert conn.execute("SELECT count(*) FROM clicks").fetchone()[0] == 4


def test_contexts_of_many_claimed_deliveries_are_read_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtracker_server.domain.clicks import click_draft
    from xtracker_server.domain.dedup import dedup_key
    from xtracker_server.domain.destinations import (
        DestinationInput,
        DestinationKind,
        prepare_destination,
    )
    from xtracker_server.store.sqlite import destinations, outbox
    from xtracker_server.store.sqlite.clicks import insert_clicks
    from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events

    conn = open_db(str(migrated(tmp_path / "o.db")))
    with transaction(conn):
        space = spaces.create_space(conn, "s", 0).space.id
        other = spaces.create_space(conn, "other", 0).space.id
        hook = DestinationInput(kind=DestinationKind.WEBHOOK, url="https://h.example/x")
        dest = destinations.create_destination(conn, space, prepare_destination(hook), 0)
        assert dest is not None
        (clicked,) = insert_clicks(
            conn, [click_draft(space_id=space, source="api", now_ms=1, raw_query="fbclid=F1")]
        )
    uids = [clicked, *(f"u{i}" for i in range(9))]

    def contact(uid: str) -> InboxDraft:
        return InboxDraft(
            space_id=space, dedup_key=dedup_key(space, uid, None, "contact", None, 5),
            event="contact", uid=uid, tg_id=None, eid=None, value=None, currency=None,
            occurred_at_ms=5, received_ms=5, source="api",
        )  # fmt: skip

    with transaction(conn):
        insert_events(conn, [contact(uid) for uid in uids])
        claimed = outbox.claim(conn, dest.id, "me", 10, 60_000, 100)
    assert len(claimed) == 10
    monkeypatch.setattr(outbox, "MAX_PARAMS", 4)  # 3 inbox ids per query: 4 queries
    got = outbox.contexts(conn, space, claimed, "https://x.example")
    assert sorted(ctx.uid for ctx in got.values()) == sorted(uids)
    assert {c.id for c in claimed} == set(got)
    assert got[claimed[0].id].event_id == claimed[0].event_id
    by_uid = {ctx.uid: ctx for ctx in got.values()}
    assert by_uid[clicked].click is not None and by_uid[clicked].click.fbclid == "F1"
    assert all(by_uid[u].click is None or by_uid[u].click.fbclid is None for u in uids[1:])
    assert outbox.contexts(conn, other, claimed, "https://x.example") == {}  # another space's


def test_unrecorded_clicks_keep_their_counts_when_dropped_becomes_a_reason(tmp_path: Path) -> None:
    from xtracker_server.domain.links import LinkKind, LinkSpec
    from xtracker_server.store.sqlite import links
    from xtracker_server.store.sqlite.migrations import _statements

    adds_dropped = next(i for i, m in enumerate(MIGRATIONS) if "'dropped'" in m)
    conn = connect(str(tmp_path / "old.db"))
    for number, script in enumerate(MIGRATIONS[:adds_dropped], start=1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    space = spaces.create_space(conn, "s", 0).space.id
    spec = LinkSpec(kind=LinkKind.BOT, target="offer_bot")
    link = links.create_link(conn, space, "ad", spec, 0).id
    row = "INSERT INTO unrecorded_clicks VALUES (?, 0, ?, ?, ?)"
    conn.execute(row, (space, link, "bot", 7))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(row, (space, link, "dropped", 1))

    migrate(conn)

    conn.execute(row, (space, link, "dropped", 2))
    counts = conn.execute("SELECT reason, count FROM unrecorded_clicks ORDER BY reason")
    assert [tuple(r) for r in counts] == [("bot", 7), ("dropped", 2)]


def test_a_file_that_is_not_a_database_is_refused_with_a_storage_fault(tmp_path: Path) -> None:
    from xtracker_server.store.api import FaultReason, open_store

    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database at all" * 100)
    store = open_store(str(path), writer_process=False)
    with pytest.raises(StoreUnavailable) as refused:  # the driver's error stays in the store
        asyncio.run(store.open())
    assert refused.value.reason is FaultReason.CORRUPT
    assert "not a database" in str(refused.value)
    # and the lock it took is let go: a restore may run
    from xtracker_server.store.sqlite.inuse import hold_exclusive

    hold_exclusive(str(path)).release()


def test_a_commands_store_starts_its_writer_at_its_first_write(tmp_path: Path) -> None:
    """A command's store (``eager=False``) that only reads starts no writer thread."""
    from xtracker_server.store.api import open_store

    store = open_store(str(tmp_path / "x.db"), writer_process=False, eager=False)

    async def command() -> None:
        await store.open()
        try:
            assert await store.list_spaces() == []
            assert not store.writer_running()
            created = await store.create_space("first", 1)
            assert store.writer_running()
            assert await store.list_spaces() == [created.space]
        finally:
            await store.close()

    asyncio.run(command())
