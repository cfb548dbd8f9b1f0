"""The store's bulk writes, for writing months of traffic at once (bench/growth.py seeds its
databases with them), on real SQLite files: each writes the rows the per-request operations
write for the same traffic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.databases import migrated
from xtracker_server.delivery.sender import Answer
from xtracker_server.delivery.worker import Settlement, outcome_rows
from xtracker_server.domain.dedup import AmountConflict, dedup_key
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    prepare_destination,
)
from xtracker_server.domain.outbound import Outcome, Verdict
from xtracker_server.domain.retry import RetryPolicy, classify_http
from xtracker_server.store.sqlite import (
    destinations,
    outbox,
    postbacks,
    spaces,
)
from xtracker_server.store.sqlite.binds import bind, insert_first_binds
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events

T0 = 1_750_000_000_000
OK = Answer(200, b'{"ok":true}', 7)
UNAVAILABLE = Answer(503, b"Service Unavailable", 9)


def new_db(path: Path) -> tuple[sqlite3.Connection, int, destinations.Destination]:
    """A new database with one space and its webhook (the same ids in every such database)."""
    conn = open_db(str(migrated(path)))
    with transaction(conn):
        space = spaces.create_space(conn, "s", T0).space.id
        hook = DestinationInput(kind=DestinationKind.WEBHOOK, url="https://h.example/x")
        dest = destinations.create_destination(conn, space, prepare_destination(hook), T0)
    assert dest is not None
    return conn, space, dest


def rows(conn: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def test_first_binds_in_bulk_are_what_bind_writes(tmp_path: Path) -> None:
    pairs = [("uid-a", 501, T0 + 1), ("uid-b", 502, T0 + 2), ("uid-c", 503, T0 + 3)]
    one, space, _ = new_db(tmp_path / "one.db")
    with transaction(one):
        for uid, tg, at in pairs:
            bind(one, space, uid, tg, at)
    bulk, space, _ = new_db(tmp_path / "bulk.db")
    with transaction(bulk):
        insert_first_binds(bulk, space, pairs)
    assert len(rows(bulk, "binds")) == 3
    assert rows(bulk, "binds") == rows(one, "binds")


def test_postback_log_rows_in_bulk_are_what_log_postback_writes(tmp_path: Path) -> None:
    one, space, _ = new_db(tmp_path / "one.db")
    entries = [
        postbacks.LogEntry(
            space_id=space, at_ms=T0, ip="203.0.113.9", method="GET",
            query="token=xt_it_…abcd&status=sale&uid=u1&payout=25", body=None, outcome="queued",
            status="sale", event="deposit", uid="u1", value="25", currency="USD", eid="tx-1",
            inbox_id=1, click_known=True, token_name="default",
        ),
        postbacks.LogEntry(
            space_id=space, at_ms=T0 + 1, ip=None, method="POST", query="", body='{"uid":"u1"}',
            outcome="duplicate", status="sale", event="deposit", uid="u1", value="30",
            currency="USD", eid="tx-1", inbox_id=1, click_known=False,
            conflict=AmountConflict("25", "USD", "30", "USD"), token_name="adcombo",
        ),
        postbacks.LogEntry(
            space_id=space, at_ms=T0 + 2, ip="198.51.100.1", method="GET", query="status=x",
            body=None, error="unknown_status", detail="no alias maps x",
        ),
    ]  # fmt: skip
    with transaction(one):
        for entry in entries:
            postbacks.log_postback(one, entry)
    bulk, space, _ = new_db(tmp_path / "bulk.db")
    with transaction(bulk):
        postbacks.log_postbacks(bulk, entries)
    assert len(rows(bulk, "postback_log")) == 3
    assert rows(bulk, "postback_log") == rows(one, "postback_log")


def deposit(space: int, eid: str, received_ms: int) -> InboxDraft:
    return InboxDraft(
        space_id=space, dedup_key=dedup_key(space, "u1", None, "deposit", eid, T0),
        event="deposit", uid="u1", tg_id=None, eid=eid, value="25.00", currency="USD",
        occurred_at_ms=T0, received_ms=received_ms, source="api",
    )  # fmt: skip


def settle(
    conn: sqlite3.Connection, dest: destinations.Destination, settled: list[Settlement], now: int
) -> None:
    """What the worker writes for a batch of outcomes (``Worker._settle_outcomes``)."""
    rows, unhealthy = outcome_rows([(dest, settled)], RetryPolicy(), now)
    outbox.settle(conn, "w", rows, now, unhealthy)


def test_deliveries_written_settled_are_what_the_worker_leaves(tmp_path: Path) -> None:
    """Two events fanned out to a webhook: one sent at the first attempt, one answered 503
    (Retry-After 90 s) and sent at the second. Written by the fan-out, the worker's claims and
    its settle, or at once by the fan-out writing them settled (outbox.insert_settled)."""
    t1, t2 = T0 + 100, T0 + 100 + 95_000
    worker, space, dest = new_db(tmp_path / "worker.db")
    drafts = [deposit(space, "tx-1", T0), deposit(space, "tx-2", T0 + 5)]
    with transaction(worker):
        insert_events(worker, drafts)
    retry = Verdict(Outcome.RETRY, "HTTP 503", retry_after_s=90)
    with transaction(worker):
        sent, retried = outbox.claim(worker, dest.id, "w", t1, 60_000, 10)
        settle(worker, dest,
               [Settlement(sent, classify_http(200), OK), Settlement(retried, retry, UNAVAILABLE)],
               t1)  # fmt: skip
    with transaction(worker):
        (again,) = outbox.claim(worker, dest.id, "w", t2, 60_000, 10)
        settle(worker, dest, [Settlement(again, classify_http(200), OK)], t2)

    def write_settled(conn: sqlite3.Connection, fanned_out: list[tuple[object, ...]]) -> None:
        first, second = fanned_out  # rows of outbox.deliveries_for
        outbox.insert_settled(
            conn,
            [(*first[:8], t1, "sent", 1, t1, 200, None),
             (*second[:5], t1 + 90_000, *second[6:8], t2, "sent", 2, t2, 200, None)],
            [(0, t1, 200, 7, "sent", None, OK.excerpt),
             (1, t1, 503, 9, "retry", "HTTP 503", UNAVAILABLE.excerpt),
             (1, t2, 200, 7, "sent", None, OK.excerpt)],
        )  # fmt: skip

    bulk, space, dest = new_db(tmp_path / "bulk.db")
    with transaction(bulk):
        outcomes = insert_events(bulk, drafts, write_deliveries=write_settled)
    assert [o.deliveries for o in outcomes] == [1, 1]
    assert outbox.status_counts(bulk, space) == {"sent": 2}
    assert rows(bulk, "deliveries") == rows(worker, "deliveries")
    assert len(rows(bulk, "delivery_attempts")) == 3
    assert rows(bulk, "delivery_attempts") == rows(worker, "delivery_attempts")
