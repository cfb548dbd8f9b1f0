"""Retention (housekeeping.py): what grows without bound is pruned past its retention, in short
batches that read through an index, and what reads the pruned tables still answers the same.
Real SQLite files, written through the store functions."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import migrated
from tests.plans import big_database, plans_of, whole_space_walks
from xtracker_server.config import Settings
from xtracker_server.domain.destinations import DestinationInput, prepare_destination
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.store.sqlite import destinations, outbox, spaces
from xtracker_server.store.sqlite.binds import bind
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.postbacks import LogEntry, list_log, log_postback, prune_log
from xtracker_server.store.sqlite.reports import delivery_health
from xtracker_server.store.sqlite.rollup import catch_up, open_rollup
from xtracker_server.store.sqlite.rollup_marks import applied_backlog, prune_backlog
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.tail import tail_top

DAY = 86_400_000
T0 = 1_750_000_000_000


class Outbox:
    """A space with one webhook destination, whose deliveries are settled through the outbox
    functions the worker uses."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.space = spaces.create_space(conn, "s", T0).space.id
        prepared = prepare_destination(
            DestinationInput.model_validate({"kind": "webhook", "url": "https://a.example/h"})
        )
        made = destinations.create_destination(conn, self.space, prepared, T0)
        assert made is not None
        self.destination = made.id
        self.events = 0

    def event(self, at_ms: int) -> int:
        """A new event (its delivery pending); returns the delivery's id."""
        self.events += 1
        n = self.events
        insert_event(
            self.conn,
            InboxDraft(space_id=self.space, dedup_key=b"k%d" % n, event="deposit", uid=f"u{n}",
                       tg_id=None, eid=str(n), value="1", currency="USD", occurred_at_ms=at_ms,
                       received_ms=at_ms, source="api"),
        )  # fmt: skip
        return int(self.conn.execute("SELECT max(id) FROM deliveries").fetchone()[0])

    def settle(self, at_ms: int, status: str, attempts: int = 1) -> int:
        """A new event whose delivery is tried ``attempts`` times and left ``status``."""
        delivery = self.event(at_ms)
        for k in range(attempts):
            (claimed,) = outbox.claim(self.conn, self.destination, "w", at_ms, 60_000, 1)
            assert claimed.id == delivery
            last = k == attempts - 1
            outcome = "sent" if last and status == "sent" else "retry"
            outbox.record_attempt(
                self.conn,
                outbox.AttemptRecord(delivery, self.space, at_ms, 200 if outcome == "sent" else 503,
                                     30, outcome, None if outcome == "sent" else "HTTP 503", None),
            )  # fmt: skip
            # Retried at once, until the last attempt; a delivery left retrying is not due
            # again in these tests (the next one settled is the one claimed).
            due = at_ms + 1000 * DAY if last else at_ms
            outbox.finish(
                self.conn, self.space, delivery, "w", status=status if last else "retrying",
                now_ms=at_ms, next_attempt_ms=due, last_status=200 if outcome == "sent" else 503,
                last_error=None if outcome == "sent" else "HTTP 503",
            )  # fmt: skip
        return delivery

    def statuses(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT id, status FROM deliveries ORDER BY id").fetchall())

    def attempts_of(self, delivery: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = ?", (delivery,)
        ).fetchone()
        return int(row[0])


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    conn = open_db(str(migrated(tmp_path / "x.db")))
    try:
        yield Outbox(conn)
    finally:
        conn.close()


def _prune_all(conn: sqlite3.Connection, status: str, before_ms: int, limit: int = 2) -> int:
    total = 0
    while True:
        with transaction(conn):
            deleted = outbox.prune_settled(conn, status, before_ms, limit)
        assert deleted <= limit
        total += deleted
        if deleted < limit:
            return total


def test_settled_deliveries_past_their_retention_go_with_their_attempts(box: Outbox) -> None:
    sent_old = [box.settle(T0, "sent", attempts=2), box.settle(T0 + 1, "sent")]
    dead_old = box.settle(T0 + 2, "failed_permanently", attempts=3)
    retrying_old = box.settle(T0 + 3, "retrying")
    sent_new = box.settle(T0 + 40 * DAY, "sent")
    pending_old = box.event(T0 + 4)

    assert _prune_all(box.conn, "sent", T0 + 10 * DAY) == 2
    assert box.statuses() == {dead_old: "failed_permanently", retrying_old: "retrying",
                              pending_old: "pending", sent_new: "sent"}  # fmt: skip
    assert [box.attempts_of(d) for d in sent_old] == [0, 0]
    assert [box.attempts_of(d) for d in (dead_old, retrying_old, sent_new)] == [3, 1, 1]

    # Given up deliveries have a retention of their own; unsettled ones never go.
    assert _prune_all(box.conn, "failed_permanently", T0 + 10 * DAY) == 1
    assert _prune_all(box.conn, "sent", T0 + 100 * DAY) == 0  # sent_new has the newest attempt
    assert box.statuses() == {retrying_old: "retrying", pending_old: "pending", sent_new: "sent"}


def test_the_newest_delivery_and_attempt_stay_so_that_ids_never_repeat(box: Outbox) -> None:
    first = box.settle(T0, "sent")
    with_newest_attempt = box.settle(T0 + 1, "sent")
    newest = box.event(T0 + 2)  # the newest delivery: pending, then sent long ago
    (claimed,) = outbox.claim(box.conn, box.destination, "w", T0 + 2, 60_000, 1)
    outbox.finish(box.conn, box.space, claimed.id, "w", status="sent", now_ms=T0 + 2)
    top = tail_top(box.conn)

    assert _prune_all(box.conn, "sent", T0 + 100 * DAY) == 1
    assert sorted(box.statuses()) == [with_newest_attempt, newest]
    assert tail_top(box.conn) == top  # the live stream's ids go on from where they were
    assert box.event(T0 + 3) == newest + 1
    assert first not in box.statuses()


def test_a_destination_s_health_counts_the_same_after_pruning(box: Outbox) -> None:
    for k in range(5):
        box.settle(T0 + k, "sent")
    box.settle(T0 + 5, "failed_permanently", attempts=2)
    box.settle(T0 + 6, "retrying")
    box.settle(T0 + 30 * DAY, "sent")
    box.settle(T0 + 30 * DAY + 1, "failed_permanently")
    box.event(T0 + 30 * DAY + 2)
    now = T0 + 31 * DAY
    before = delivery_health(box.conn, box.space, now)
    assert before[0].counts == {"pending": 1, "retrying": 1, "sent": 6, "failed_permanently": 2}

    assert _prune_all(box.conn, "sent", T0 + 10 * DAY) == 5
    assert _prune_all(box.conn, "failed_permanently", T0 + 10 * DAY) == 1
    assert delivery_health(box.conn, box.space, now) == before

    # With every sent delivery pruned, the last success is still known.
    assert _prune_all(box.conn, "sent", now) == 1
    box.event(now)  # so that the last sent one is not the newest delivery
    after = delivery_health(box.conn, box.space, now)[0]
    assert after.counts["sent"] == 6 and after.last_success_ms == T0 + 30 * DAY
    assert (
        box.conn.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()[0] == 0
    )


def _log_entry(space: int, at_ms: int) -> LogEntry:
    return LogEntry(space_id=space, at_ms=at_ms, ip=None, method="GET", query="q", body=None)


def test_pruning_reads_through_indexes_on_a_big_database(tmp_path: Path) -> None:
    """Each batch reads only the rows it deletes (the oldest, through an index, up to its
    limit) and a few by primary key: never a whole table or a whole space of it."""
    for stats in (True, False):
        conn = big_database(tmp_path / f"big-{stats}.db", stats=stats)
        box = Outbox(conn)
        box.settle(T0, "sent")
        box.settle(T0, "failed_permanently")
        box.settle(T0 + 1, "sent")
        log_postback(conn, _log_entry(box.space, T0))
        box.conn.execute("INSERT INTO report_backlog (kind, inbox_id) VALUES ('attributed', 1)")
        box.conn.execute("INSERT INTO report_backlog (kind, inbox_id) VALUES ('attributed', 2)")
        planned = [
            *plans_of(conn, lambda c: outbox.prune_settled(c, "sent", T0 + DAY, 500)),
            *plans_of(conn, lambda c: outbox.prune_settled(c, "failed_permanently", T0 + 1, 500)),
            *plans_of(conn, lambda c: prune_log(c, T0 + DAY, 1000)),
            *plans_of(conn, lambda c: prune_backlog(c, 10, 1000)),
        ]
        lines = {line.strip() for p in planned for line in p.plan}
        # The oldest first, through an index, cut short by the batch's LIMIT: every row read
        # is deleted (the two walks whole_space_walks cannot tell from a scan).
        bounded = {
            "SEARCH deliveries USING INDEX deliveries_settled (status=? AND updated_ms<?)",
            "SEARCH postback_log USING COVERING INDEX postback_log_time (at_ms<?)",
        }
        assert bounded <= lines, "\n".join(map(str, planned))
        assert "SEARCH report_backlog USING INTEGER PRIMARY KEY (rowid<?)" in lines
        attempts = "SEARCH delivery_attempts USING COVERING INDEX delivery_attempts_delivery"
        assert f"{attempts} (delivery_id=?)" in lines
        walks = [w for w in whole_space_walks(planned) if w.split("  <-  ")[0] not in bounded]
        assert walks == []
        assert not [line for line in lines if line.startswith("SCAN")], lines
        conn.close()


def test_the_report_backlog_keeps_only_what_the_rollup_has_not_applied(tmp_path: Path) -> None:
    path = str(migrated(tmp_path / "x.db"))
    conn = open_db(path)
    box = Outbox(conn)
    for n in range(1, 5):  # events of Telegram users, attributed later by their binds
        insert_event(conn, InboxDraft(box.space, b"t%d" % n, "contact", None, n, str(n), None,
                                      None, T0 + n, T0 + n, "api"))  # fmt: skip
    bind(conn, box.space, "ua", 1, T0)
    bind(conn, box.space, "ub", 2, T0)
    rollup = open_rollup(path)
    catch_up(rollup)
    applied = applied_backlog(rollup)
    bind(conn, box.space, "uc", 3, T0)  # after the rollup ran: not applied yet
    assert conn.execute("SELECT count(*) FROM report_backlog").fetchone()[0] == 3

    with transaction(conn):
        assert prune_backlog(conn, applied, 1) == 1
    with transaction(conn):
        assert prune_backlog(conn, applied, 10) == 1
    assert conn.execute("SELECT count(*) FROM report_backlog").fetchone()[0] == 1
    catch_up(rollup)
    with transaction(conn):  # the newest entry stays, although applied now
        assert prune_backlog(conn, applied_backlog(rollup), 10) == 0
    bind(conn, box.space, "ud", 4, T0)
    catch_up(rollup)
    uids = {r[0] for r in rollup.execute("SELECT uid FROM reports.report_steps")}
    assert uids == {"ua", "ub", "uc", "ud"}  # the rollup missed nothing
    rollup.close()
    conn.close()


def test_a_housekeeping_round_prunes_every_kind_in_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real store (the writer process): postback log rows, sent deliveries and
    deliveries given up, each past its own retention; the rest stays."""
    import xtracker_server.housekeeping as housekeeping

    monkeypatch.setattr(housekeeping, "DELIVERY_PRUNE_BATCH", 2)
    monkeypatch.setattr(housekeeping, "PRUNE_BATCH", 2)
    now = int(time.time() * 1000)
    path = str(migrated(tmp_path / "x.db"))
    conn = open_db(path)
    box = Outbox(conn)
    old_sent = [box.settle(now - 40 * DAY + k, "sent") for k in range(5)]
    old_dead = box.settle(now - 40 * DAY, "failed_permanently")
    very_old_dead = box.settle(now - 100 * DAY, "failed_permanently")
    kept = [box.settle(now - DAY, "sent"), box.settle(now - 40 * DAY, "retrying"), box.event(now)]
    for at in (now - 40 * DAY, now - 31 * DAY, now - 29 * DAY):
        log_postback(conn, _log_entry(box.space, at))
    conn.close()

    async def run() -> dict[str, int]:
        store = Store(path)
        await store.open()
        try:
            keeper = Housekeeper(store, Settings(db=path))
            return await keeper.prune()
        finally:
            await store.close()

    pruned = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert pruned["sent deliveries"] == len(old_sent)
    assert pruned["deliveries given up"] == 1  # 90 days by default: old_dead stays
    assert pruned["postback log rows"] == 2
    conn = open_db(path)
    try:
        left = set(dict(conn.execute("SELECT id, status FROM deliveries").fetchall()))
        assert left == {old_dead, *kept} and very_old_dead not in left
        assert [e.at_ms for e in list_log(conn, box.space)] == [now - 29 * DAY]
    finally:
        conn.close()


def test_retention_settings_must_keep_a_day_at_least() -> None:
    assert Settings().delivery_sent_days == 30 and Settings().delivery_dead_days == 90
    for field in ("delivery_sent_days", "delivery_dead_days"):
        with pytest.raises(ValueError, match="at least 1"):
            Settings(**{field: 0.5})  # type: ignore[arg-type]
