"""The landing's side buffer (landing/pending.py) on a real SQLite file and a real journal, with
storage faults injected at the store's write (``FlakyStore``): kept clicks are stored once it
recovers, each once; overflow and a click the store refuses are counted as dropped; a stop with
storage still down leaves the journaled clicks for the next start."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.databases import migrated
from xtracker_server.domain.clicks import ClickDraft, click_draft
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.unrecorded import Reason, Tally, UnrecordedCount, hour_start
from xtracker_server.landing.journal import ClickJournal, journal_path
from xtracker_server.landing.pending import PendingClicks
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite.clicks import insert_clicks
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.faults import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite.runtime import Store

T = TypeVar("T")
NOW = 1_750_000_000_000

DOWN = StoreUnavailable(FaultReason.WRITER_DOWN, "the writer is not running")
EXITED = StoreUnavailable(FaultReason.WRITER_DOWN, "the writer process exited")


class FlakyStore(Store):
    """The real store, whose writes fail as a dead writer's do while ``down``."""

    down = False

    async def write(self, op: Any, /, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise DOWN
        return await super().write(op, *args, **kwargs)


def _link(path: Path) -> tuple[int, int]:
    conn = open_db(str(migrated(path)))
    try:
        space = spaces.create_space(conn, "s", NOW).space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="offer_bot")
        return space, links.create_link(conn, space, "ad", spec, NOW).id
    finally:
        conn.close()


def _uids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [u for (u,) in conn.execute("SELECT uid FROM clicks ORDER BY uid")]
    finally:
        conn.close()


def _clicks(space: int, link: int | None, n: int) -> list[ClickDraft]:
    return [
        click_draft(space_id=space, source="redirect", now_ms=NOW + i, raw_query=None, link_id=link)
        for i in range(n)
    ]


def _with_buffer(
    path: Path,
    scenario: Any,
    *,
    max_clicks: int = 100,
    journal: bool = True,
    tally: Tally | None = None,
) -> Any:
    """Run ``scenario(store, pending)`` with a started buffer, then stop it and the store."""

    async def go() -> Any:
        store = FlakyStore(str(path), writer_process=False)
        await store.open()
        where = journal_path(str(path))
        assert where is not None
        pending = PendingClicks(
            store,
            tally if tally is not None else Tally(),
            ClickJournal(where) if journal else None,
            max_clicks=max_clicks,
        )
        await pending.start()
        try:
            return await scenario(store, pending)
        finally:
            await pending.stop()
            await store.close()

    return asyncio.run(go())


async def _until(check: Any, timeout: float = 20) -> None:
    """Wait for the background replay (it polls: there is no event to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check() and loop.time() < deadline:
        await asyncio.sleep(0.02)


def test_kept_clicks_are_stored_once_storage_recovers(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    drafts = _clicks(space, link, 5)

    async def scenario(store: FlakyStore, pending: PendingClicks) -> None:
        store.down = True
        for d in drafts:
            await pending.keep(d, DOWN)
        assert len(pending) == 5
        await asyncio.sleep(0.5)  # retried meanwhile, in vain
        assert _uids(path) == []
        store.down = False
        await _until(lambda: not pending)

    _with_buffer(path, scenario)
    assert _uids(path) == sorted(d.uid for d in drafts)
    assert not Path(f"{path}.clicks-pending").exists()  # emptied, then deleted at the stop


def test_a_click_that_was_stored_after_all_is_not_stored_twice(tmp_path: Path) -> None:
    """A writer that died after its commit: the landing kept a click that is stored."""
    path = tmp_path / "x.db"
    space, link = _link(path)
    both, only_kept = _clicks(space, link, 2)

    async def scenario(store: FlakyStore, pending: PendingClicks) -> None:
        assert await store.write_grouped(insert_clicks, both) == both.uid
        store.down = True
        await pending.keep(both, EXITED)
        await pending.keep(only_kept, DOWN)
        store.down = False
        await _until(lambda: not pending)

    _with_buffer(path, scenario)
    assert _uids(path) == sorted([both.uid, only_kept.uid])


def test_clicks_past_the_bound_are_dropped_and_counted_per_link_and_hour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    drafts = _clicks(space, link, 7)
    tally = Tally()

    async def scenario(store: FlakyStore, pending: PendingClicks) -> int:
        store.down = True
        for d in drafts:
            await pending.keep(d, DOWN)
        kept = len(pending)
        store.down = False
        await _until(lambda: not pending)
        return kept

    with caplog.at_level(logging.WARNING, logger="xtracker.landing"):
        assert _with_buffer(path, scenario, max_clicks=3, tally=tally) == 3
    assert _uids(path) == sorted(d.uid for d in drafts[:3])
    assert tally.take() == [UnrecordedCount(space, link, hour_start(NOW), Reason.DROPPED, 4)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("the click buffer is full" in m for m in messages) == 1
    assert any("has room again: 4 clicks were dropped" in m for m in messages)


def test_a_click_the_store_refuses_is_dropped_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    good = _clicks(space, link, 2)
    (bad,) = _clicks(space, link + 99, 1)  # a link that does not exist (deleted meanwhile)
    tally = Tally()

    async def scenario(store: FlakyStore, pending: PendingClicks) -> None:
        store.down = True
        for d in [good[0], bad, good[1]]:
            await pending.keep(d, DOWN)
        store.down = False
        await _until(lambda: not pending)

    _with_buffer(path, scenario, tally=tally)
    assert _uids(path) == sorted(d.uid for d in good)
    assert [(c.link_id, c.reason, c.count) for c in tally.take()] == [
        (link + 99, Reason.DROPPED, 1)
    ]


def test_a_stop_with_storage_down_leaves_journaled_clicks_for_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    drafts = _clicks(space, link, 3)
    tally = Tally()

    async def keep_and_stop(store: FlakyStore, pending: PendingClicks) -> None:
        store.down = True
        for d in drafts:
            await pending.keep(d, DOWN)

    _with_buffer(path, keep_and_stop, tally=tally)
    assert _uids(path) == [] and tally.take() == []  # waiting in the journal: not lost

    async def restart(store: FlakyStore, pending: PendingClicks) -> None:
        await _until(lambda: not pending)

    _with_buffer(path, restart)
    assert _uids(path) == sorted(d.uid for d in drafts)


def test_a_stop_with_storage_down_and_no_journal_counts_the_kept_clicks_as_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    tally = Tally()

    async def keep_and_stop(store: FlakyStore, pending: PendingClicks) -> None:
        store.down = True
        for d in _clicks(space, link, 2):
            await pending.keep(d, DOWN)

    _with_buffer(path, keep_and_stop, journal=False, tally=tally)
    assert [(c.reason, c.count) for c in tally.take()] == [(Reason.DROPPED, 2)]


def test_a_repeat_visit_finds_its_kept_click(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    (d,) = _clicks(space, link, 1)

    async def scenario(store: FlakyStore, pending: PendingClicks) -> list[bool]:
        store.down = True
        await pending.keep(d, DOWN)
        return [
            pending.holds(space, link, d.uid, NOW - 1),
            pending.holds(space, link, d.uid, NOW + 1),  # older than the window
            pending.holds(space, link + 1, d.uid, NOW - 1),  # another link's
            pending.holds(space, link, "someone-else", NOW - 1),
        ]

    assert _with_buffer(path, scenario, journal=False) == [True, False, False, False]


def test_a_negative_bound_is_refused() -> None:
    from xtracker_server.config import Settings

    with pytest.raises(ValueError, match="XTRACKER_CLICK_BUFFER_MAX"):
        Settings(click_buffer_max=-1)
