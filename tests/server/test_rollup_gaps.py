"""The report rollup (store/sqlite/rollup.py) when row ids commit out of order, as they do with
several writers (a server database): id 10 is committed and rolled up, then id 9 commits. SQLite
hands ids out in commit order, so these tests write the rows with the ids a concurrent writer would
have left: the lower one after the rollup has passed the higher one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.reports import Window
from xtracker_server.domain.tail import GAP_S
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.reports import funnel_counts
from xtracker_server.store.sqlite.rollup import ROLLUP_GAP_S, catch_up, with_rollup
from xtracker_server.store.sqlite.rollup_marks import RollupBehind, applied_removals

T0 = 1_750_000_000_000
WINDOW = Window(T0, T0 + 3_600_000)


@dataclass
class Db:
    conn: sqlite3.Connection
    space: int


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    path = str(migrated(tmp_path / "x.db"))
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        for uid in ("u1", "u2"):
            insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=T0, source="api"))
    yield Db(conn, space)
    conn.close()


def _event(db: Db, inbox_id: int, event: str, uid: str | None, tg_id: int | None = None) -> None:
    """An inbox row with the id a concurrent writer gave it (no destination: no deliveries)."""
    with transaction(db.conn):
        db.conn.execute(
            "INSERT INTO inbox (id, space_id, dedup_key, event, uid, tg_id, occurred_at_ms,"
            " received_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'api')",
            (inbox_id, db.space, f"k{inbox_id}".encode(), event, uid, tg_id, T0 + inbox_id,
             T0 + inbox_id),
        )  # fmt: skip


def _uids(db: Db, step: str) -> int:
    return funnel_counts(db.conn, db.space, WINDOW).uids.get(step, 0)


def test_an_event_committed_after_a_higher_id_was_rolled_up_is_counted(db: Db) -> None:
    _event(db, 10, "contact", "u1")
    assert catch_up(db.conn) == 1
    _event(db, 9, "subscribed", "u1")  # id 9 commits after 10 was rolled up
    assert catch_up(db.conn) == 1
    assert (_uids(db, "contact"), _uids(db, "subscribed")) == (1, 1)
    assert catch_up(db.conn) == 0  # fed once


def test_a_bind_attribution_committed_out_of_order_is_counted(db: Db) -> None:
    _event(db, 1, "registration", None, tg_id=77)  # unattributed: not rolled up
    _event(db, 2, "contact", "u2")
    with transaction(db.conn):  # a backlog entry of another writer, committed first
        db.conn.execute(
            "INSERT INTO report_backlog (id, kind, space_id, uid, link_id)"
            " VALUES (10, 'click', ?, 'u9', 1)",
            (db.space,),
        )
    catch_up(db.conn)
    with transaction(db.conn):  # a bind gives event 1 its uid: backlog entry 9, committed late
        db.conn.execute("UPDATE inbox SET uid = 'u1', attributed_by = 'bind' WHERE id = 1")
        db.conn.execute("UPDATE report_backlog SET id = 9 WHERE kind = 'attributed'")
    catch_up(db.conn)
    assert _uids(db, "registration") == 1


def test_an_erasure_committed_out_of_order_takes_its_rows_out(db: Db) -> None:
    _event(db, 1, "contact", "u1")
    _event(db, 2, "contact", "u2")
    with transaction(db.conn):  # another deletion's entry (a space that is not this one)
        db.conn.execute(
            "INSERT INTO report_removals (id, kind, space_id) VALUES (10, 'space', 999)"
        )
    catch_up(db.conn)
    assert _uids(db, "contact") == 2
    with transaction(db.conn):  # u1's erasure, entry 9, committed after entry 10 was applied
        db.conn.execute("DELETE FROM inbox WHERE uid = 'u1'")
        db.conn.execute(
            "INSERT INTO report_removals (id, kind, space_id, uid) VALUES (9, 'uid', ?, 'u1')",
            (db.space,),
        )
    catch_up(db.conn)
    assert _uids(db, "contact") == 1


def test_what_the_rollup_says_it_applied_never_passes_an_entry_it_has_not(db: Db) -> None:
    # A deletion forgets the removals the rollup applied (deletion.forget_in_reports): one
    # still missing below the newest applied must not be forgotten unseen.
    add = "INSERT INTO report_removals (id, kind, space_id) VALUES (?, 'space', 999)"
    with transaction(db.conn):
        db.conn.executemany(add, [(n,) for n in range(1, 9)])
    catch_up(db.conn, now=0.0)
    assert applied_removals(db.conn) == 8
    with transaction(db.conn):
        db.conn.execute(add, (10,))
    catch_up(db.conn, now=1.0)
    assert applied_removals(db.conn) == 8  # 9 may still commit
    with transaction(db.conn):
        db.conn.execute(add, (9,))
    catch_up(db.conn, now=2.0)
    assert applied_removals(db.conn) == 10


def test_a_gap_that_never_fills_is_given_up_after_rollup_gap_s(db: Db) -> None:
    _event(db, 10, "contact", "u1")  # ids 1 to 9 never commit (rolled back, deleted)
    catch_up(db.conn, now=0.0)
    assert applied_removals(db.conn) == 0
    state = "SELECT inbox_id FROM reports.rollup_state"
    assert db.conn.execute(state).fetchone()[0] == 0  # waiting for 1 to 9
    catch_up(db.conn, now=ROLLUP_GAP_S - 1)
    assert db.conn.execute(state).fetchone()[0] == 0
    catch_up(db.conn, now=ROLLUP_GAP_S)
    assert db.conn.execute(state).fetchone()[0] == 10
    assert ROLLUP_GAP_S > GAP_S  # a report waits longer than a live stream


def test_a_catch_up_given_a_time_stops_after_the_round_that_used_it_and_says_how_far(
    db: Db,
) -> None:
    """``budget_s`` (what a report request gives it, store/sqlite/runtime.py): the rounds done are
    kept, ``RollupBehind`` says how far the rollup got, and the next catch-up goes on from there."""
    for inbox_id in range(1, 26):
        _event(db, inbox_id, "contact", "u1" if inbox_id % 2 else "u2")
    with pytest.raises(RollupBehind) as behind:
        catch_up(db.conn, chunk=10, budget_s=0)
    assert behind.value.progress == "10 of 25 inbox rows"
    assert catch_up(db.conn, chunk=10) == 15  # the rest, once
    assert _uids(db, "contact") == 2
    assert catch_up(db.conn, chunk=10, budget_s=0) == 0  # caught up: no error
