"""store/sqlite/stats.py: the planner's statistics, kept current by the server on real SQLite files:
taken only for tables of MIN_ROWS rows or more, again when a table grew 25-fold, a bounded
amount of work each time; taken when the store opens and by housekeeping, and loaded by the
store's readers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server import housekeeping
from xtracker_server.config import Settings
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.store.sqlite import spaces, stats
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.stats import (
    ANALYSIS_LIMIT,
    MIN_ROWS,
    refresh_stats,
    tables_to_analyze,
)

T0 = 1_750_000_000_000


def _add_clicks(conn: sqlite3.Connection, space: int, count: int, start: int = 0) -> None:
    """``count`` clicks of one space, made by SQLite itself (fast)."""
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO clicks (space_id, uid, source, created_ms)"
        " SELECT ?, 'u' || i, 'api', ? + i FROM n",
        (start, start + count - 1, space, T0),
    )


def _stat(conn: sqlite3.Connection, index: str) -> list[int] | None:
    try:
        row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = ?", (index,)).fetchone()
    except sqlite3.OperationalError:  # no sqlite_stat1 yet
        return None
    return [int(n) for n in row[0].split()] if row else None


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_db(str(migrated(tmp_path / "x.db")))


def test_a_table_gets_statistics_once_it_has_min_rows(conn: sqlite3.Connection) -> None:
    space = spaces.create_space(conn, "s", T0).space.id
    _add_clicks(conn, space, MIN_ROWS - 1)
    assert refresh_stats(conn, every_table=True) == []
    assert _stat(conn, "clicks_space_time") is None

    _add_clicks(conn, space, 1, start=MIN_ROWS)
    assert tables_to_analyze(conn) == ["clicks"]
    assert refresh_stats(conn) == ["clicks"]
    assert _stat(conn, "clicks_space_time") is not None
    assert tables_to_analyze(conn) == []  # analysed, and not grown since


def test_an_analysis_reads_a_bounded_part_of_each_index(conn: sqlite3.Connection) -> None:
    space = spaces.create_space(conn, "s", T0).space.id
    _add_clicks(conn, space, 5 * MIN_ROWS)  # one space holds them all
    refresh_stats(conn, every_table=True)
    stat = _stat(conn, "clicks_space_time")
    assert stat is not None
    # A full ANALYZE would say the space holds every row; one that stops after ANALYSIS_LIMIT
    # entries of the index knows no more than that many.
    assert stat[1] <= ANALYSIS_LIMIT + 1 < 5 * MIN_ROWS


def test_a_table_queried_that_grew_25_fold_since_it_was_analysed_is_analysed_again(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "MIN_ROWS", 100)  # small numbers: a fast test
    space = spaces.create_space(conn, "s", T0).space.id
    _add_clicks(conn, space, 100)
    assert refresh_stats(conn) == ["clicks"]
    _add_clicks(conn, space, 4900, start=100)
    assert tables_to_analyze(conn) == []  # PRAGMA optimize looks at the tables queried only
    # A query whose plan the statistics decided (a unique key's look-up needs none).
    conn.execute("SELECT count(*) FROM clicks WHERE space_id = ? AND created_ms > ?", (space, T0))
    assert tables_to_analyze(conn) == ["clicks"]  # 50-fold
    assert refresh_stats(conn) == ["clicks"]
    stat = _stat(conn, "clicks_space_time")
    assert stat is not None and stat[0] > 2500
    _add_clicks(conn, space, 5000, start=5000)
    assert tables_to_analyze(conn) == []  # twice as big: the statistics still hold


def _grown(path: Path) -> int:
    conn = open_db(str(path))
    space = spaces.create_space(conn, "s", T0).space.id
    _add_clicks(conn, space, MIN_ROWS)
    conn.close()
    return space


def test_the_store_analyses_the_big_tables_when_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    _grown(path)

    async def run() -> None:
        store = Store(str(path), writer_process=False)
        await store.open()
        await store.close()

    asyncio.run(run())
    conn = open_db(str(path))
    assert _stat(conn, "clicks_space_time") is not None
    assert _stat(conn, "sqlite_autoindex_credentials_1") is None  # 2 rows: none


def _add_clicks_op(conn: sqlite3.Connection, space: int, count: int, start: int) -> None:
    _add_clicks(conn, space, count, start)


def test_readers_reopen_to_load_the_statistics_a_refresh_took(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space = spaces.create_space(open_db(str(path)), "s", T0).space.id

    def reader(c: sqlite3.Connection) -> sqlite3.Connection:
        return c

    async def run() -> None:
        store = Store(str(path), readers=1, writer_process=False)
        await store.open()
        try:
            first = await store.read(reader)
            assert await store.read(reader) is first
            assert await store.refresh_stats() == []  # nothing to analyse: readers stay
            assert await store.read(reader) is first
            await store.write(_add_clicks_op, space, MIN_ROWS, 0)
            assert await store.refresh_stats() == ["clicks"]
            second = await store.read(reader)
            assert second is not first  # a connection loads statistics when it opens
            assert second.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
        finally:
            await store.close()

    asyncio.run(run())


def test_housekeeping_refreshes_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "STATS_EVERY_S", 0.05)
    path = tmp_path / "x.db"
    space = spaces.create_space(open_db(str(path)), "s", T0).space.id

    async def run() -> None:
        store = Store(str(path), writer_process=False)
        await store.open()
        keeper = Housekeeper(store, Settings(db=str(path)))
        await keeper.start()
        try:
            await store.write(_add_clicks_op, space, MIN_ROWS, 0)
            deadline = time.monotonic() + 10  # rounds come every 50 ms
            while _stat(open_db(str(path)), "clicks_space_time") is None:
                assert time.monotonic() < deadline, "no refresh took the statistics"
                await asyncio.sleep(0.05)
        finally:
            await keeper.stop()
            await store.close()

    asyncio.run(run())
