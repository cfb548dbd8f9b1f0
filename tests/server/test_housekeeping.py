"""housekeeping.py: the tally of unrecorded landing visits reaches the store, on a real SQLite
file through the real (process) writer, also when the server stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.config import Settings
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.unrecorded import Reason, Tally
from xtracker_server.housekeeping import Housekeeper
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.unrecorded import unrecorded_per_link
from xtracker_server.store.sqlite.writer import StoreUnavailable

H = 3_600_000
T0 = 1_750_000_000_000 - 1_750_000_000_000 % H  # the start of an hour


def _link(path: Path) -> tuple[int, int]:
    conn = open_db(str(migrated(path)))
    try:
        space = spaces.create_space(conn, "s", T0).space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="offer_bot")
        return space, links.create_link(conn, space, "ad", spec, T0).id
    finally:
        conn.close()


def _stored(path: Path, space: int, from_ms: int, to_ms: int) -> dict[int, dict[str, int]]:
    conn = open_db(str(path))
    try:
        return dict(unrecorded_per_link(conn, space, from_ms, to_ms))
    finally:
        conn.close()


def test_stop_stores_what_was_counted_since_the_last_time(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    tally = Tally()

    async def run() -> None:
        store = Store(str(path))
        await store.open()
        keeper = Housekeeper(store, Settings(db=str(path)), tally)
        for _ in range(3):
            tally.add(space, link, Reason.LIMITED, T0 + 5)
        tally.add(space, link, Reason.BOT, T0 + H + 5)
        assert await keeper.store_unrecorded() == 2
        tally.add(space, link, Reason.LIMITED, T0 + 9)
        await keeper.stop()  # the last count is stored on the way out
        await store.close()

    asyncio.run(run())
    assert _stored(path, space, T0, T0 + 2 * H) == {link: {"limited": 4, "bot": 1}}
    assert _stored(path, space, T0 + H, T0 + 2 * H) == {link: {"bot": 1}}  # hours in the window
    assert _stored(path, space + 1, T0, T0 + 2 * H) == {}  # another space sees nothing


def test_counts_the_store_could_not_take_are_kept_for_the_next_time(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    space, link = _link(path)
    tally = Tally()

    async def run() -> None:
        store = Store(str(path))
        await store.open()
        keeper = Housekeeper(store, Settings(db=str(path)), tally)
        tally.add(space, link, Reason.BOT, T0)
        await store.close()
        with pytest.raises(StoreUnavailable):
            await keeper.store_unrecorded()

    asyncio.run(run())
    (kept,) = tally.take()
    assert (kept.link_id, kept.reason, kept.count) == (link, Reason.BOT, 1)
