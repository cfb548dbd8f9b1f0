"""The outbox's store operations on a real SQLite file: the claim's two lanes, the batched
settle under the lease, releasing leases, and the counts the triggers keep."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    prepare_destination,
)
from xtracker_server.domain.drain import claim_plan
from xtracker_server.store.sqlite import deletion, inbox, outbox, spaces
from xtracker_server.store.sqlite import destinations as dest_store
from xtracker_server.store.sqlite.db import connect, open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events
from xtracker_server.store.sqlite.migrations import MIGRATIONS, _statements, migrate

NOW = 1_700_000_000_000
HOUR = 3_600_000


def _space_with_webhook(conn: sqlite3.Connection, name: str = "s") -> tuple[int, int]:
    with transaction(conn):
        space = spaces.create_space(conn, name, NOW).space.id
        prepared = prepare_destination(
            DestinationInput(kind=DestinationKind.WEBHOOK, url="https://hooks.example/x")
        )
        dest = dest_store.create_destination(conn, space, prepared, NOW)
    assert dest is not None
    return space, dest.id


def _events(conn: sqlite3.Connection, space: int, prefix: str, times: list[int]) -> None:
    drafts = [
        InboxDraft(space, dedup_key(space, "u1", None, "deposit", f"{prefix}{i}", at),
                   "deposit", "u1", None, f"{prefix}{i}", "25.00", "USD", at, at, "api")
        for i, at in enumerate(times)
    ]  # fmt: skip
    with transaction(conn):
        insert_events(conn, drafts)


def _eids(conn: sqlite3.Connection, claimed: list[outbox.Claimed]) -> list[str]:
    ids = [c.inbox_id for c in claimed]
    rows = conn.execute(
        f"SELECT eid FROM inbox WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id", ids
    )
    return [r[0] for r in rows]


def _true_counts(conn: sqlite3.Connection, space: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM deliveries WHERE space_id = ? GROUP BY status", (space,)
    )
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_db(str(migrated(tmp_path / "o.db")))


def test_a_claim_takes_half_from_the_newest_lane_and_the_rest_oldest_first(
    conn: sqlite3.Connection,
) -> None:
    space, dest = _space_with_webhook(conn)
    _events(conn, space, "old", [NOW - HOUR + i for i in range(50)])  # a backlog
    _events(conn, space, "new", [NOW - 1000 + i for i in range(10)])  # just arrived
    with transaction(conn):
        plan = claim_plan(8, NOW)
        claimed = outbox.claim(
            conn, dest, "w", NOW, 60_000, plan.limit,
            fresh_limit=plan.fresh_limit, fresh_since_ms=plan.fresh_since_ms,
        )  # fmt: skip
    assert _eids(conn, claimed) == ["old0", "old1", "old2", "old3", "new0", "new1", "new2", "new3"]
    # what the newest lane leaves unused goes to the backlog
    with transaction(conn):
        plan = claim_plan(16, NOW)
        claimed = outbox.claim(
            conn, dest, "w", NOW, 60_000, plan.limit,
            fresh_limit=plan.fresh_limit, fresh_since_ms=plan.fresh_since_ms,
        )  # fmt: skip
    assert _eids(conn, claimed) == [f"old{i}" for i in range(4, 14)] + [
        f"new{i}" for i in range(4, 10)
    ]


def test_without_lanes_a_claim_is_oldest_due_first_and_skips_leased_rows(
    conn: sqlite3.Connection,
) -> None:
    space, dest = _space_with_webhook(conn)
    _events(conn, space, "e", [NOW - 10_000 + i for i in range(6)])
    with transaction(conn):
        first = outbox.claim(conn, dest, "a", NOW, 60_000, 2)
        second = outbox.claim(conn, dest, "b", NOW, 60_000, 2)
    assert _eids(conn, first) == ["e0", "e1"]
    assert _eids(conn, second) == ["e2", "e3"]
    with transaction(conn):  # a lease that ran out is due again
        third = outbox.claim(conn, dest, "c", NOW + 60_000, 60_000, 2)
    assert _eids(conn, third) == ["e0", "e1"]


def _settled(c: outbox.Claimed, status: str, **kw: object) -> outbox.Settled:
    fields: dict[str, object] = {
        "next_attempt_ms": None, "last_status": 200, "last_error": None,
        "refund_attempt": False, "outcome": "sent", "latency_ms": 4, "excerpt": "ok",
    }  # fmt: skip
    fields.update(kw)
    return outbox.Settled(c.id, c.space_id, status, **fields)  # type: ignore[arg-type]


def test_a_settle_batch_writes_each_outcome_under_its_lease_and_every_attempt(
    conn: sqlite3.Connection,
) -> None:
    space, dest = _space_with_webhook(conn)
    _events(conn, space, "e", [NOW - 10_000 + i for i in range(4)])
    with transaction(conn):
        a, b, c, d = outbox.claim(conn, dest, "me", NOW, 60_000, 4)
    batch = [
        _settled(a, "sent"),
        _settled(b, "retrying", next_attempt_ms=NOW + 30_000, last_status=503,
                 last_error="HTTP 503", outcome="retry"),
        _settled(c, "pending", next_attempt_ms=NOW + 60_000, last_status=401,
                 last_error="token expired", refund_attempt=True, outcome="hold"),
        _settled(d, "failed_permanently", last_status=400, last_error="HTTP 400",
                 outcome="fail"),
    ]  # fmt: skip
    unhealthy = [outbox.Unhealthy(space, dest, "access token invalid or expired (code 190)")]
    with transaction(conn):
        assert outbox.settle(conn, "someone else", batch[:1], NOW + 5) == 0  # not its lease
        assert outbox.settle(conn, "me", batch, NOW + 10, unhealthy) == 4
    rows = {
        r["id"]: r
        for r in conn.execute(
            "SELECT id, status, attempts, next_attempt_ms, sent_ms, last_status, last_error,"
            " lease_owner FROM deliveries"
        )
    }
    assert (rows[a.id]["status"], rows[a.id]["sent_ms"], rows[a.id]["attempts"]) == (
        "sent", NOW + 10, 1,
    )  # fmt: skip
    assert (rows[b.id]["status"], rows[b.id]["next_attempt_ms"], rows[b.id]["last_error"]) == (
        "retrying", NOW + 30_000, "HTTP 503",
    )  # fmt: skip
    assert (rows[c.id]["status"], rows[c.id]["attempts"]) == ("pending", 0)  # refunded
    assert rows[d.id]["status"] == "failed_permanently"
    assert all(r["lease_owner"] is None for r in rows.values())
    attempts = conn.execute(
        "SELECT delivery_id, outcome, status_code, at_ms FROM delivery_attempts ORDER BY id"
    ).fetchall()
    # the stale owner's attempt is recorded too (it was made); the row was not touched
    assert [tuple(r) for r in attempts] == [
        (a.id, "sent", 200, NOW + 5),
        (a.id, "sent", 200, NOW + 10),
        (b.id, "retry", 503, NOW + 10),
        (c.id, "hold", 401, NOW + 10),
        (d.id, "fail", 400, NOW + 10),
    ]
    flagged = dest_store.get_destination(conn, space, dest)
    assert flagged is not None and flagged.health_reason is not None


def test_releasing_leases_makes_every_leased_row_due_at_once(conn: sqlite3.Connection) -> None:
    space, dest = _space_with_webhook(conn)
    _events(conn, space, "e", [NOW - 10_000 + i for i in range(5)])
    with transaction(conn):
        outbox.claim(conn, dest, "worker-of-the-past", NOW, 60_000, 3)
        assert outbox.release_leases(conn) == 3
        assert len(outbox.claim(conn, dest, "new", NOW, 60_000, 10)) == 5


def test_the_kept_counts_always_match_a_count_of_the_outbox(conn: sqlite3.Connection) -> None:
    space, dest = _space_with_webhook(conn, "a")
    other, other_dest = _space_with_webhook(conn, "b")
    _events(conn, space, "e", [NOW - 10_000 + i for i in range(12)])
    _events(conn, other, "o", [NOW - 10_000 + i for i in range(3)])
    assert outbox.status_counts(conn, space) == _true_counts(conn, space) == {"pending": 12}
    with transaction(conn):
        claimed = outbox.claim(conn, dest, "me", NOW, 60_000, 9)
        statuses = ["sent"] * 4 + ["retrying"] * 3 + ["failed_permanently"] * 2
        outcomes = [_settled(c, s) for c, s in zip(claimed, statuses, strict=True)]
        outbox.settle(conn, "me", outcomes, NOW)
    assert outbox.status_counts(conn, space) == _true_counts(conn, space) == {
        "pending": 3, "retrying": 3, "sent": 4, "failed_permanently": 2,
    }  # fmt: skip
    with transaction(conn):
        assert outbox.replay(conn, space, now_ms=NOW) == 2  # failed -> pending
    assert outbox.status_counts(conn, space) == _true_counts(conn, space)
    assert outbox.depth(conn) == {"pending": 5 + 3, "retrying": 3}
    assert outbox.unsettled_count(conn) == 11
    # deleting the space takes its deliveries, and their counts with them
    with transaction(conn):
        deletion.mark_space(conn, space, NOW)
    while True:
        with transaction(conn):
            if deletion.delete_space_batch(conn, space).done:
                break
    assert outbox.status_counts(conn, space) == {}
    assert (
        conn.execute(
            "SELECT count(*) FROM delivery_counts WHERE space_id = ?", (space,)
        ).fetchone()[0]
        == 0
    )
    assert outbox.status_counts(conn, other) == _true_counts(conn, other) == {"pending": 3}
    assert outbox.depth(conn) == {"pending": 3, "retrying": 0}
    del other_dest


def test_the_migration_counts_the_deliveries_a_database_already_has(tmp_path: Path) -> None:
    """An existing database gets its counts when it is upgraded."""
    path = str(tmp_path / "old.db")
    ours = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE delivery_counts" in m)
    conn = connect(path)
    with transaction(conn):
        for migration in MIGRATIONS[:ours]:
            for statement in _statements(migration):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={ours}")
    space, dest = _space_with_webhook(conn)
    # the inbox as it was then (today's insert writes columns added later), and the fan-out
    with transaction(conn):
        for i in range(7):
            at = NOW - 10_000 + i
            draft = InboxDraft(
                space,
                dedup_key(space, "u1", None, "deposit", f"e{i}", at),
                "deposit",
                "u1",
                None,
                f"e{i}",
                "25.00",
                "USD",
                at,
                at,
                "api",
            )
            inbox_id = conn.execute(
                "INSERT INTO inbox (space_id, dedup_key, event, uid, eid, value, currency,"
                " occurred_at_ms, received_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (space, draft.dedup_key, "deposit", "u1", draft.eid, "25.00", "USD", at, at,
                 "api"),
            ).lastrowid  # fmt: skip
            assert inbox_id is not None
            inbox._fan_out(conn, [(i, draft, inbox_id)], outbox.insert_deliveries)
    with transaction(conn):
        claimed = outbox.claim(conn, dest, "me", NOW, 60_000, 3)
        for c in claimed:
            outbox.finish(conn, space, c.id, "me", status="sent", now_ms=NOW)
    migrate(conn)
    assert outbox.status_counts(conn, space) == {"pending": 4, "sent": 3}
    assert Counter(outbox.depth(conn)) == Counter({"pending": 4, "retrying": 0})
