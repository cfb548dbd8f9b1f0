"""XTRACKER_REPORT_CUBE (config.py ``report_cube``): the report rollup keeps the report cube only
when it is on (store/sqlite/rollup.py records which way it was built), is built again from the
inbox when it was built for another copy of the database, and otherwise keeps its steps when
the setting changes either way or the cube's format is older (only the cube is dropped or built
again, from the clicks), a store that only opens leaves it
as it was built, and ``group_counts`` reads the cube where it holds the answer and scans the
events everywhere else (store/sqlite/cube.py ``group_counts``). The settings reach the store
the way a command's context opens it (services/context.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.databases import migrated
from tests.server.services_env import services
from tests.store_contract.conftest import event
from xtracker_server.config import Settings
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.groups import GroupCounts, GroupQuery
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_server.store.api import open_store
from xtracker_server.store.errors import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite import cube, groups, rollup
from xtracker_server.store.sqlite.db import open_db, reports_path
from xtracker_server.store.sqlite.rollup import catch_up, with_rollup
from xtracker_server.store.sqlite.rollup_schema import CUBE_FORMAT, NEW_WITH_CUBE, ROLLUP_FORMAT
from xtracker_wire import REVERSAL

T = TypeVar("T")
H = 3_600_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z: on the 15-minute grid
WINDOW = Window(T0, T0 + 24 * H)
BY_CAMPAIGN = GroupQuery(window=WINDOW, by=("campaign",), mode=FunnelMode.COHORT)
#: Events seeded by ``_seed`` (each rolled up once per build of the rollup).
EVENTS = 6


def _key(g: GroupCounts) -> str:
    return str(g.key)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result, bounded only to catch a hang."""
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _seed(path: str) -> int:
    """A space with four clicks in two campaigns (three in a country) and their events, in a
    new database at ``path``; returns its id."""
    store = open_store(str(migrated(path)), writer_process=False)
    await store.open()
    try:
        space = (await store.create_space("cube", T0)).space.id
        clicks = [
            ("u1", "c1", T0 + H, "US"),
            ("u2", "c1", T0 + 2 * H, None),
            ("u3", "c2", T0 + 3 * H, "CA"),
            ("u4", "c2", T0 + 2 * H + 1_800_000, "US"),
        ]
        for uid, campaign, at, country in clicks:
            draft = ClickDraft(space_id=space, uid=uid, created_ms=at, source="api",
                               country=country, fields={"campaign_id": campaign})  # fmt: skip
            await store.record_click(draft)
        for ev in (
            event(space, "contact", "u1", at=T0 + 4 * H),
            event(space, "deposit", "u1", eid="d1", at=T0 + 5 * H, value="10.5", currency="USD"),
            event(space, "deposit", "u3", eid="d2", at=T0 + 30 * H, value="2", currency="EUR"),
            event(space, REVERSAL, "u3", eid="d2", at=T0 + 31 * H),
            event(space, "deposit", "u4", eid="d3", at=T0 + 6 * H, value="1", currency="USD"),
            event(space, "contact", "nobody", at=T0 + 5 * H),
        ):
            await store.record_event(ev)
        return space
    finally:
        await store.close()


async def _report(path: str, space: int, *, cube: bool | None) -> tuple[int, list[GroupCounts]]:
    """What a server with the setting does (None: a command without it): open, catch up,
    count. Returns the events fed and the groups."""
    store = open_store(path, writer_process=False, report_cube=cube)
    await store.open()
    try:
        fed = await store.catch_up_reports()
        found = await store.group_counts(space, BY_CAMPAIGN)
        return fed, sorted(found, key=lambda g: str(g.key))
    finally:
        await store.close()


async def _open_only(path: str, *, cube: bool) -> None:
    """A store that opens and never reports (``xtracker worker``, a command that writes)."""
    store = open_store(path, writer_process=False, report_cube=cube)
    await store.open()
    await store.close()


def _built(path: str) -> tuple[int, bool, int]:
    """The rollup's recorded format, whether it has the cube's tables, and its cube rows."""
    conn = sqlite3.connect(reports_path(path))
    try:
        (version,) = conn.execute("SELECT version FROM rollup_format").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = conn.execute("SELECT count(*) FROM cube").fetchone()[0] if "cube" in tables else 0
        return version, "cube_state" in tables, rows
    finally:
        conn.close()


def test_the_setting_builds_the_cube_and_a_change_rebuilds_the_rollup(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))
    fed, scanned = _run(_report(path, space, cube=False))
    assert fed == EVENTS
    assert _built(path) == (ROLLUP_FORMAT, False, 0)  # off: the rollup as before, no cube
    assert _run(_report(path, space, cube=False))[0] == 0
    c1 = next(g for g in scanned if g.key == ("c1",))
    assert (c1.clicks, c1.uids["contact"], c1.revenue_total()) == (2, 1, {"USD": Decimal("10.5")})

    fed, cubed = _run(_report(path, space, cube=True))
    assert fed == 0  # turned on: the steps kept, the cube built from the clicks and the steps
    version, has_cube, rows = _built(path)
    assert (version, has_cube) == (CUBE_FORMAT, True) and rows > 0
    assert cubed == scanned
    assert _run(_report(path, space, cube=True))[0] == 0
    _run(_open_only(path, cube=False))  # opening alone does not change how it is built
    assert _built(path)[:2] == (CUBE_FORMAT, True)
    assert _run(_report(path, space, cube=None)) == (0, scanned)  # a command without it
    assert _built(path)[:2] == (CUBE_FORMAT, True)

    fed, again = _run(_report(path, space, cube=False))
    assert fed == 0  # turned off: the steps kept, the cube dropped
    assert _built(path) == (ROLLUP_FORMAT, False, 0)
    assert again == scanned
    _run(_open_only(path, cube=True))
    assert _built(path)[:2] == (ROLLUP_FORMAT, False)
    assert _run(_report(path, space, cube=None)) == (0, scanned)
    assert _built(path)[:2] == (ROLLUP_FORMAT, False)


@pytest.mark.parametrize("older", [3, 11])
def test_a_cube_of_an_older_format_is_built_again_from_the_clicks(
    tmp_path: Path, older: int
) -> None:
    """An upgrade over a rollup with the cube's format 3 (a table of its own for the time to
    convert) or 11 (no value rows of the dimensions): the steps are kept (no event fed again),
    the old tables go, the cube is built again, value rows too, and answers as the scan does."""
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))
    fed, cubed = _run(_report(path, space, cube=True))
    assert fed == EVENTS
    conn = sqlite3.connect(reports_path(path))
    with conn:
        conn.execute("UPDATE rollup_format SET version = ?", (older,))
        conn.execute("CREATE TABLE cube_ttc (n INTEGER)")
        conn.execute("DELETE FROM cube")  # what the older format had there is not read again
    conn.close()
    fed, again = _run(_report(path, space, cube=True))
    assert fed == 0
    version, has_cube, rows = _built(path)
    assert (version, has_cube) == (CUBE_FORMAT, True) and rows > 0
    assert again == cubed
    conn = sqlite3.connect(reports_path(path))
    try:
        valued = conn.execute("SELECT count(*) FROM cube WHERE dim LIKE '=%'").fetchone()[0]
    finally:
        conn.close()
    assert valued > 0
    conn = sqlite3.connect(reports_path(path))
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "cube_ttc" not in tables


@pytest.fixture
def cubed(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, int]]:
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))
    conn = with_rollup(open_db(path), path, cube=True)
    catch_up(conn)
    yield conn, space
    conn.close()


def test_group_counts_reads_the_cube_where_it_answers(
    cubed: tuple[sqlite3.Connection, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, space = cubed
    scanned = groups.group_counts(conn, space, BY_CAMPAIGN)
    asked: list[GroupQuery] = []
    real_scan = groups.group_counts

    def scan(
        c: sqlite3.Connection, s: int, q: GroupQuery, links: list[int] | None = None
    ) -> list[GroupCounts]:
        asked.append(q)
        return real_scan(c, s, q, links)

    monkeypatch.setattr(groups, "group_counts", scan)
    found = cube.group_counts(conn, space, BY_CAMPAIGN, cube=True)
    assert sorted(found, key=_key) == sorted(scanned, key=_key)
    assert asked == []  # the cube answered
    activity = GroupQuery(window=WINDOW, by=("campaign",), mode=FunnelMode.ACTIVITY)
    two_dims = GroupQuery(window=WINDOW, by=("country", "device"))
    short = GroupQuery(window=Window(T0 + 1, T0 + 600_000), by=("campaign",))  # no 15 minutes
    for q in (activity, two_dims, short):
        cube.group_counts(conn, space, q, cube=True)
    cube.group_counts(conn, space, BY_CAMPAIGN, cube=False)
    assert asked == [activity, two_dims, short, BY_CAMPAIGN]  # not the cube's: scanned
    asked.clear()
    off_grid = GroupQuery(window=Window(T0 + 1, T0 + 24 * H), by=("campaign",))
    cube.group_counts(conn, space, off_grid, cube=True)
    assert [q.window for q in asked] == [Window(T0 + 1, T0 + 900_000)]  # only its edge


@pytest.mark.parametrize(
    "window",
    [Window(T0 + H - 300_000, T0 + 3 * H + 300_000), Window(T0 + H + 1, T0 + 2 * H + 1),
     Window(T0 - 7 * H - 1, T0 + 40 * H - 1)],
)  # fmt: skip
@pytest.mark.parametrize(
    ("by", "tz"), [((), "UTC"), (("campaign",), "UTC"), (("day",), "Asia/Kolkata"),
                   (("hour",), "America/New_York"), (("campaign", "day"), "Asia/Kolkata")],
)  # fmt: skip
def test_a_window_off_the_grid_counts_as_the_scan_does(
    cubed: tuple[sqlite3.Connection, int], window: Window, by: tuple[str, ...], tz: str
) -> None:
    """The cube inside it, the scan at its ends: the clicks on either side of each edge."""
    conn, space = cubed
    q = GroupQuery(window=window, by=by, tz=tz)
    found = cube.group_counts(conn, space, q, cube=True)
    assert sorted(found, key=_key) == sorted(groups.group_counts(conn, space, q), key=_key)


def test_a_command_leaves_the_rollup_as_built_and_drops_the_cube_only_when_told(
    tmp_path: Path,
) -> None:
    """services/context.py: with the setting on (the default), a command's store builds a new
    rollup with the cube (the CLI alone, no server) and leaves a built one as it is (a command
    run without the variable next to a server with it off never builds the cube); turned off,
    it drops the cube."""
    with services(tmp_path) as env:
        env.run(env.ctx.store.catch_up_reports())
        assert _built(env.ctx.settings.db)[:2] == (CUBE_FORMAT, True)
    with services(tmp_path, report_cube=False) as env:
        env.run(env.ctx.store.catch_up_reports())
        assert _built(env.ctx.settings.db)[:2] == (ROLLUP_FORMAT, False)
    with services(tmp_path, report_cube=True) as env:
        env.run(env.ctx.store.catch_up_reports())
        assert _built(env.ctx.settings.db)[:2] == (ROLLUP_FORMAT, False)


def test_a_new_rollup_opened_as_built_has_the_cube_as_the_setting_by_default() -> None:
    """rollup_schema.NEW_WITH_CUBE is XTRACKER_REPORT_CUBE's default."""
    assert Settings().report_cube is NEW_WITH_CUBE


def _ready(path: str) -> bool:
    conn = sqlite3.connect(reports_path(path))
    try:
        return bool(conn.execute("SELECT ready FROM cube_state").fetchone()[0])
    finally:
        conn.close()


def test_while_the_cube_is_built_reports_answer_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The setting turned on over a rollup built without the cube (an upgrade to the default,
    a new cube format): the steps are kept, and until the cube has read every click a report
    (``cube_may_lag``, as the services ask) answers as without it, with the same numbers,
    rather than 503 ``rebuilding`` for the whole build; a catch-up that is not a report's
    (housekeeping's slices) goes on building it; then the cube answers. A click a round here,
    so that the build takes several."""
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))
    _, scanned = _run(_report(path, space, cube=False))
    monkeypatch.setattr(rollup, "SLICE_CHUNK", 1)  # a budgeted round reads a click

    async def go() -> tuple[list[GroupCounts], Any, list[GroupCounts], Any]:
        store = open_store(path, writer_process=False, report_cube=True)
        await store.open()
        try:
            assert await store.catch_up_reports(10.0, cube_may_lag=True) == 0  # steps kept
            assert not _ready(path)  # one click of four read
            during = await store.group_counts(space, BY_CAMPAIGN)
            funnel = await store.funnel_counts(space, WINDOW, mode=FunnelMode.COHORT)
            with pytest.raises(StoreUnavailable) as behind:  # a slice of housekeeping's
                await store.catch_up_reports(0.0)
            assert behind.value.reason is FaultReason.REBUILDING
            assert not _ready(path)
            await store.catch_up_reports()
            assert _ready(path)
            after = await store.group_counts(space, BY_CAMPAIGN)
            return (
                during,
                funnel,
                after,
                await store.funnel_counts(space, WINDOW, mode=FunnelMode.COHORT),
            )
        finally:
            await store.close()

    during, funnel, after, funnel_after = _run(go())
    assert sorted(during, key=_key) == scanned == sorted(after, key=_key)
    assert funnel == funnel_after
    assert funnel.clicks == 4
