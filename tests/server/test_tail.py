"""The live tail's cursors and reads: the reader's watermark and a client's cursor (pure, in
domain/tail.py), and the reader's polls on a real SQLite file with ids committed out of order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import migrated
from tests.tail_ops import insert_click_with_id, newest_click_id
from xtracker_server.domain.tail import (
    GAP_S,
    MAX_GAPS,
    MAX_ID,
    MAX_SEEN,
    StreamCursor,
    Watermark,
)
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.tail import Marks, Poll, tail_poll, tail_range

T0 = 1_750_000_000_000
CLICK = 0

# ----------------------------------------------------------------------------- the watermark


def test_an_id_missing_below_one_read_is_a_gap_until_it_is_read() -> None:
    mark = Watermark(10).advance([11, 13], 13, now=0.0)
    assert (mark.high, set(mark.gaps), mark.low) == (13, {12}, 11)
    mark = mark.advance([12], 13, now=1.0)  # 12 committed late
    assert (mark.high, dict(mark.gaps), mark.low) == (13, {}, 13)


def test_a_gap_is_given_up_after_gap_s() -> None:
    mark = Watermark(10).advance([12], 12, now=0.0)
    assert mark.advance([], 12, now=GAP_S - 1).low == 10
    assert mark.advance([], 12, now=GAP_S).low == 12


def test_at_most_max_gaps_are_waited_for_the_newest() -> None:
    top = 5 * MAX_GAPS
    mark = Watermark(0).advance([top], top, now=0.0)  # a hole of 5 * MAX_GAPS ids
    assert set(mark.gaps) == set(range(top - MAX_GAPS + 1, top)) and mark.high == top
    mark = mark.advance([top + 10], top + 10, now=1.0)  # 9 more
    assert len(mark.gaps) == MAX_GAPS and min(mark.gaps) == top - MAX_GAPS + 9


def test_a_watermark_resuming_a_cursor_waits_for_the_ids_between() -> None:
    mark = Watermark.resuming(10, {12, 14}, now=0.0)
    assert (mark.high, set(mark.gaps)) == (14, {11, 13})


# ----------------------------------------------------------------------------- the cursor


def test_a_cursor_of_ids_in_order_is_three_numbers() -> None:
    cursor = StreamCursor((4, 7, 0))
    assert cursor.delivers(CLICK, 5, settled=5) and cursor.delivers(CLICK, 6, settled=6)
    assert cursor.text() == "6-7-0"
    assert not cursor.delivers(CLICK, 6, settled=6)  # once


def test_a_cursor_names_what_it_delivered_above_a_gap() -> None:
    cursor = StreamCursor((10, 0, 0))
    assert cursor.delivers(CLICK, 12, settled=10)  # 11 not committed yet
    assert cursor.text() == "10.2-0-0"
    resumed = StreamCursor.parse(cursor.text())
    assert resumed is not None
    assert not resumed.delivers(CLICK, 12, settled=10)
    assert resumed.delivers(CLICK, 11, settled=12)  # the late one, then all is settled
    assert resumed.text() == "12-0-0"


def test_the_text_names_at_most_max_seen_ids_a_table() -> None:
    cursor = StreamCursor((0, 0, 0))
    for i in range(2, MAX_SEEN + 12):
        cursor.delivers(CLICK, i, settled=0)  # 1 stays a gap
    parsed = StreamCursor.parse(cursor.text())
    assert parsed is not None and len(parsed.seen[CLICK]) == MAX_SEEN
    assert parsed.newest[CLICK] == MAX_SEEN + 11
    # the stream itself still delivers the late row once
    assert cursor.delivers(CLICK, 1, settled=MAX_SEEN + 11)
    assert not cursor.delivers(CLICK, 5, settled=MAX_SEEN + 11)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1-2",
        "1-2-3-4",
        "²-0-0",  # a digit to str.isdigit(), not to int()
        "١٢-0-0",  # Arabic-Indic digits
        "9" * 5000 + "-0-0",
        "99999999999999999999-0-0",  # 20 digits
        f"{MAX_ID + 1}-0-0",
        f"{MAX_ID}.1-0-0",
        "1.0-0-0",  # an offset of 0 is the low itself
        "1.2.2-0-0",
        "1." + ".".join(str(i) for i in range(1, MAX_SEEN + 2)) + "-0-0",
        "-1-0-0",
        "1 -0-0",
    ],
)
def test_a_malformed_or_huge_cursor_is_refused(raw: str) -> None:
    assert StreamCursor.parse(raw) is None


def test_the_largest_ids_parse() -> None:
    cursor = StreamCursor.parse(f"{MAX_ID}-0-{MAX_ID - 5}.5")
    assert cursor is not None and cursor.newest == (MAX_ID, 0, MAX_ID)


# ----------------------------------------------------------------------------- the reader


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, int, int]]:
    conn = open_db(str(migrated(tmp_path / "t.db")))
    with transaction(conn):
        mine = spaces.create_space(conn, "mine", T0).space.id
        theirs = spaces.create_space(conn, "theirs", T0).space.id
    yield conn, mine, theirs
    conn.close()


def _commit(conn: sqlite3.Connection, click_id: int, space: int) -> None:
    with transaction(conn):
        insert_click_with_id(conn, click_id, space, f"u{click_id}", T0 + click_id)


def _clicks(poll: Poll, space: int) -> list[int]:
    return [i.id for i in poll.items.get(space, []) if i.kind == "click"]


def test_the_reader_delivers_a_lower_id_that_commits_later_once(
    db: tuple[sqlite3.Connection, int, int],
) -> None:
    conn, mine, _ = db
    _commit(conn, 1, mine)
    start = tail_poll(conn, None, {mine}, now=0.0)  # "now": after click 1
    n = newest_click_id(conn)
    _commit(conn, n + 2, mine)  # n + 1 is still "in flight"
    first = tail_poll(conn, start.marks, {mine}, now=1.0)
    assert _clicks(first, mine) == [n + 2]
    assert first.lows[CLICK] == n  # waiting for n + 1
    _commit(conn, n + 1, mine)
    second = tail_poll(conn, first.marks, {mine}, now=2.0)
    assert _clicks(second, mine) == [n + 1]
    assert second.lows[CLICK] == n + 2
    assert _clicks(tail_poll(conn, second.marks, {mine}, now=3.0), mine) == []


def test_one_poll_serves_every_space_and_only_its_rows(
    db: tuple[sqlite3.Connection, int, int],
) -> None:
    conn, mine, theirs = db
    start = tail_poll(conn, None, {mine, theirs}, now=0.0)
    for click_id, space in ((1, mine), (2, theirs), (3, mine)):
        _commit(conn, click_id, space)
    poll = tail_poll(conn, start.marks, {mine, theirs}, now=1.0)
    assert (_clicks(poll, mine), _clicks(poll, theirs)) == ([1, 3], [2])
    assert poll.spaces == {mine, theirs}
    only = tail_poll(conn, start.marks, {mine, 999}, now=1.0)
    assert set(only.items) == {mine} and only.spaces == {mine}  # 999: no such space


def test_a_reader_starting_waits_for_ids_missing_among_the_newest(
    db: tuple[sqlite3.Connection, int, int],
) -> None:
    conn, mine, _ = db
    _commit(conn, 1, mine)
    _commit(conn, 3, mine)  # 2 is in flight when the reader starts
    start = tail_poll(conn, None, {mine}, now=0.0)
    assert start.lows[CLICK] == 1 and not start.items
    _commit(conn, 2, mine)
    assert _clicks(tail_poll(conn, start.marks, {mine}, now=1.0), mine) == [2]


def test_a_backlog_larger_than_one_poll_is_read_by_the_next_polls(
    db: tuple[sqlite3.Connection, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtracker_server.store.sqlite import tail

    conn, mine, _ = db
    monkeypatch.setattr(tail, "TAIL_SCAN", 4)
    start = tail_poll(conn, None, {mine}, now=0.0)
    for click_id in range(1, 11):
        _commit(conn, click_id, mine)
    got: list[int] = []
    marks: Marks = start.marks
    for _ in range(3):
        poll = tail_poll(conn, marks, {mine}, now=1.0)
        got += _clicks(poll, mine)
        marks = poll.marks
    assert got == list(range(1, 11)) and not poll.full


def test_a_range_read_is_bounded_and_says_where_to_read_on(
    db: tuple[sqlite3.Connection, int, int],
) -> None:
    conn, mine, theirs = db
    for click_id in range(1, 8):
        _commit(conn, click_id, mine if click_id % 2 else theirs)
    batch = tail_range(conn, mine, (0, 0, 0), (7, 0, 0), limit=2)
    assert [i.id for i in batch.items] == [1, 3] and batch.reached == (3, 0, 0)
    rest = tail_range(conn, mine, batch.reached, (7, 0, 0), limit=2)
    assert [i.id for i in rest.items] == [5, 7] and rest.reached == (7, 0, 0)
