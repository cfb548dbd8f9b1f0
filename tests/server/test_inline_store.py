"""A command's store (``open_store(..., inline=True)``, store/sqlite/inline.py) does everything
on the caller's thread: its operations run to their end without an event loop
(cli/_common.py ``to_the_end``), and a write is committed when it returns. The Store contract
suite runs against it too (tests/store_contract/, backend ``sqlite-inline``)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from xtracker_server.cli._common import to_the_end
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_server.store.api import StoreUnavailable, open_store
from xtracker_server.store.errors import FaultReason
from xtracker_server.store.sqlite.db import open_db

T0 = 1_790_000_000_000


def test_a_coroutine_that_waits_is_refused_not_run_half() -> None:
    async def answers() -> int:
        return 42

    async def waits() -> int:
        await asyncio.sleep(0)
        return 1

    assert to_the_end(answers()) == 42
    with pytest.raises(RuntimeError, match="loop=True"):
        to_the_end(waits())


def test_every_operation_of_a_command_runs_without_an_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    store = open_store(str(path), inline=True, eager=False)
    to_the_end(store.open())
    try:
        space = to_the_end(store.create_space("inline", T0)).space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="inline_bot")
        link = to_the_end(store.create_link(space, "inline-1", spec, T0))
        draft = ClickDraft(space_id=space, uid="u1", created_ms=T0, source="api", link_id=link.id)
        to_the_end(store.record_click(draft))
        # committed when it returned: another connection sees it at once
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM clicks").fetchone() == (1,)
        other.close()
        assert [s.name for s in to_the_end(store.list_spaces())] == ["inline"]
        to_the_end(store.catch_up_reports())  # what a report does first (services/reports.py)
        window = Window(T0 - 1, T0 + 1)
        counts = to_the_end(store.funnel_counts(space, window, mode=FunnelMode.COHORT))
        assert counts.uids["click"] == 1
    finally:
        to_the_end(store.close())


def test_a_write_behind_a_held_lock_fails_after_the_deadline_and_commits_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inline.db"
    store = open_store(str(path), inline=True, eager=False, timeout_s=0.3)
    to_the_end(store.open())
    holder = open_db(str(path))
    try:
        to_the_end(store.create_space("before", T0))  # its writer is started
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as refused:
            to_the_end(store.create_space("blocked", T0))
        assert refused.value.reason is FaultReason.LOCKED
        assert store.health.writes.fault is not None
        holder.execute("ROLLBACK")
        to_the_end(store.create_space("after", T0))
        assert store.health.writes.fault is None
        assert [s.name for s in to_the_end(store.list_spaces())] == ["before", "after"]
    finally:
        holder.close()
        to_the_end(store.close())
