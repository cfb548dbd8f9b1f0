"""The report queries against a brute-force oracle: random events written through the store
functions (out of order, ties on the same millisecond, repeats, late clicks, late attribution
by a bind, events moved when the bot's bind replaces a token bind), the right answers computed
here in plain Python from what was written."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from tests.databases import migrated
from xtracker_server.domain.binds import BindKind
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import FunnelCounts, FunnelMode, Window
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite import reports as store
from xtracker_server.store.sqlite.binds import bind
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.rollup import catch_up, with_rollup
from xtracker_server.store.sqlite.tail import tail_range, tail_top

H = 3_600_000
T0 = 1_750_000_000_000
STEPS = ("contact", "subscribed", "registration", "deposit")


@dataclass
class Ev:
    uid: str | None
    tg_id: int | None
    event: str
    at: int
    value: str | None = None
    currency: str | None = None


@dataclass
class World:
    conn: sqlite3.Connection
    space: int
    other: int
    link_of: dict[str, int | None]  # uid -> link id (None: click without link; absent: none)
    clicks: list[tuple[str, int | None, int]]  # uid, link, created
    events: list[Ev]
    link_ids: list[int]


def _click(conn: sqlite3.Connection, space: int, uid: str, link: int | None, at: int) -> None:
    insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=at, source="api",
                                  link_id=link))  # fmt: skip


def _event(conn: sqlite3.Connection, space: int, n: int, ev: Ev) -> None:
    insert_event(
        conn,
        InboxDraft(space_id=space, dedup_key=f"{space}:{n}".encode(), event=ev.event,
                   uid=ev.uid, tg_id=ev.tg_id, eid=str(n), value=ev.value,
                   currency=ev.currency, occurred_at_ms=ev.at, received_ms=ev.at, source="api"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = build_world(str(tmp_path_factory.mktemp("reports") / "x.db"))
    yield world
    world.conn.close()


def build_world(path: str) -> World:
    """The random world of these tests, written to a new database at ``path`` and rolled up
    (tests/server/test_deletion_store.py erases from it and checks the same oracle)."""
    rng = random.Random(7)
    conn = with_rollup(open_db(str(migrated(path))), path)
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        other = spaces.create_space(conn, "b", T0).space.id
        link_ids = [
            links.create_link(conn, space, f"l{i}", LinkSpec(kind=LinkKind.BOT, target="b_bot"),
                              T0).id
            for i in range(3)
        ]  # fmt: skip
        noise = links.create_link(
            conn, other, "noise", LinkSpec(kind=LinkKind.BOT, target="noise_bot"), T0
        )
    world = World(conn, space, other, {}, [], [], link_ids)
    late_clicks: list[tuple[str, int | None, int]] = []
    with transaction(conn):
        n = 0
        for u in range(120):
            uid = f"u{u:03d}"
            link = rng.choice([*link_ids, None])
            created = T0 + rng.randrange(0, 72 * H)
            if u % 17 == 0:
                late_clicks.append((uid, link, created))  # stored after its events
            elif u % 23 != 0:  # some uids never get a click ("no link")
                _click(conn, space, uid, link, created)
                world.clicks.append((uid, link, created))
                world.link_of[uid] = link
            for _ in range(rng.randrange(0, 7)):
                step = rng.choice(STEPS)
                at = T0 + rng.randrange(-24 * H, 96 * H)
                if rng.random() < 0.15:
                    at = T0 + 30 * H  # ties on one millisecond, and exactly on window edges
                ev = Ev(uid, None, step, at)
                if step == "deposit" and rng.random() < 0.9:
                    ev.value = rng.choice(["10", "25.50", "0.00000001", "999999999999.99", "3.3"])
                    ev.currency = rng.choice(["USD", "USD", "EUR"])
                n += 1
                _event(conn, space, n, ev)
                world.events.append(ev)
            # the other space: same uids and times, never counted in ours
            _click(conn, other, uid, noise.id, created)
            n += 1
            _event(conn, other, n, Ev(uid, None, "contact", T0 + 30 * H))
        # unattributed events: some get their uid later from a bind, some never
        for k in range(30):
            tg = 5000 + k % 10
            ev = Ev(None, tg, rng.choice(STEPS), T0 + rng.randrange(0, 72 * H))
            if ev.event == "deposit":
                ev.value, ev.currency = "1.25", "USD"
            n += 1
            _event(conn, space, n, ev)
            world.events.append(ev)
    catch_up(conn)  # what follows reaches the rollup through the backlog
    with transaction(conn):
        for uid, link, created in late_clicks:
            _click(conn, space, uid, link, created)
            world.clicks.append((uid, link, created))
            world.link_of[uid] = link
        for k in range(5):  # tg 5000..5004 bind to clicked uids
            uid = world.clicks[k][0]
            bind(conn, space, uid, 5000 + k, T0)
            for ev in world.events:
                if ev.uid is None and ev.tg_id == 5000 + k:
                    ev.uid = uid
    catch_up(conn)
    with transaction(conn):  # token binds of tg 5005..5008 attribute their waiting events
        for k in range(5, 9):
            uid = world.clicks[k][0]
            bind(conn, space, uid, 5000 + k, T0, BindKind.TOKEN)
            for ev in world.events:
                if ev.uid is None and ev.tg_id == 5000 + k:
                    ev.uid = uid
    catch_up(conn)  # rolled up under the token binds' uids
    with transaction(conn):  # the bot's bearer binds replace them (domain/binds.py)
        for k in range(5, 8):  # the user's own bind: the events move to the bearer's uid
            old, new = world.clicks[k][0], world.clicks[k + 10][0]
            bind(conn, space, new, 5000 + k, T0 + 1)
            for ev in world.events:
                if ev.tg_id == 5000 + k and ev.uid == old:
                    ev.uid = new
        taken = world.clicks[8][0]  # the uid goes to another user: the events let go of it
        bind(conn, space, taken, 6000, T0 + 1)
        for ev in world.events:
            if ev.tg_id == 5008 and ev.uid == taken:
                ev.uid = None
    catch_up(conn)
    return world


WINDOWS = [
    Window(T0, T0 + 72 * H),
    Window(T0 + 30 * H, T0 + 31 * H),  # starts exactly on the tie millisecond
    Window(T0 + 29 * H, T0 + 30 * H),  # ends exactly on it (excluded)
    Window(T0 - 24 * H, T0 + 96 * H),
    Window(T0 + 7 * H + 123, T0 + 50 * H + 7),
]


def _revenue(deposits: list[Ev]) -> dict[str, Decimal]:
    revenue: dict[str, Decimal] = {}
    for e in deposits:
        if e.value is not None and e.currency is not None:
            revenue[e.currency] = revenue.get(e.currency, Decimal(0)) + Decimal(e.value)
    return revenue


def _uids(expected: dict[str, object]) -> dict[str, int]:
    return cast(dict[str, int], expected["uids"])


def _expected(
    w: World,
    win: Window,
    link: int | str | None = "all",
    *,
    mode: FunnelMode = FunnelMode.ACTIVITY,
    clicked: bool = True,
) -> dict[str, object]:
    """The answers, counted here. ``clicked``: only uids with a click in the space count (the
    funnel, series); False: also the uids without one (the per-link table's "no link" row)."""

    def mine(uid: str | None) -> bool:
        if uid is None or (clicked and uid not in w.link_of):
            return False
        return link == "all" or w.link_of.get(uid) == link

    def timely(e: Ev) -> bool:
        return win.from_ms <= e.at < win.to_ms

    cohort = {u for u, lk, c in w.clicks if (link in ("all", lk)) and win.from_ms <= c < win.to_ms}
    if mode is FunnelMode.COHORT:  # the window's clicks, their events at any time
        inside = [e for e in w.events if e.uid in cohort]
    else:
        inside = [e for e in w.events if timely(e) and mine(e.uid)]
    uids = {s: len({e.uid for e in inside if e.event == s}) for s in STEPS}
    uids["click"] = len(cohort)
    deposits = [e for e in inside if e.event == "deposit"]
    first: set[str | None] = set()
    for e in deposits:
        earliest = min(x.at for x in w.events if x.uid == e.uid and x.event == "deposit")
        if earliest >= win.from_ms or mode is FunnelMode.COHORT:
            first.add(e.uid)
    loose = [e for e in w.events if e.uid is None and timely(e)]
    alone = [e for e in w.events if e.uid is not None and e.uid not in w.link_of and timely(e)]
    return {
        "uids": uids,
        "deposits": len(deposits),
        "first": len(first),
        "revenue": _revenue(deposits),
        "unattributed": {s: n for s in STEPS if (n := sum(e.event == s for e in loose))},
        "unattributed_revenue": _revenue([e for e in loose if e.event == "deposit"]),
        "unknown": {s: n for s in STEPS if (n := len({e.uid for e in alone if e.event == s}))},
        "unknown_deposits": sum(e.event == "deposit" for e in alone),
        "unknown_revenue": _revenue([e for e in alone if e.event == "deposit"]),
    }


@pytest.mark.parametrize("mode", list(FunnelMode), ids=lambda m: m.value)
@pytest.mark.parametrize("win", WINDOWS, ids=lambda w: f"{w.from_ms - T0}+{w.length_ms}")
def test_funnel_counts_match_a_brute_force_count(
    world: World, win: Window, mode: FunnelMode
) -> None:
    got = store.funnel_counts(world.conn, world.space, win, mode=mode)
    want = _expected(world, win, mode=mode)
    assert {s: got.uids.get(s, 0) for s in ("click", *STEPS)} == want["uids"]
    assert got.deposits == want["deposits"]
    assert got.first_deposits == want["first"]
    assert got.revenue == want["revenue"]
    assert {str(k): v for k, v in got.revenue.items()} == want["revenue"]
    assert got.unattributed == want["unattributed"]
    assert got.unattributed_revenue == want["unattributed_revenue"]
    assert got.unknown == want["unknown"]
    assert got.unknown or win.length_ms < 24 * H  # the world has such uids
    assert (got.unknown_deposits, got.unknown_revenue) == (
        want["unknown_deposits"],
        want["unknown_revenue"],
    )
    if mode is FunnelMode.COHORT:  # every step is a subset of the clicks
        assert all(got.uids[s] <= got.clicks for s in STEPS)


@pytest.mark.parametrize("win", WINDOWS[:3], ids=lambda w: f"{w.from_ms - T0}+{w.length_ms}")
def test_cohort_funnel_of_one_link_matches_a_brute_force_count(world: World, win: Window) -> None:
    for link_id in world.link_ids:
        got = store.funnel_counts(world.conn, world.space, win, link_id=link_id,
                                  mode=FunnelMode.COHORT)  # fmt: skip
        want = _expected(world, win, link_id, mode=FunnelMode.COHORT)
        assert {s: got.uids.get(s, 0) for s in ("click", *STEPS)} == want["uids"]
        assert (got.deposits, got.first_deposits) == (want["deposits"], want["first"])
        assert got.revenue == want["revenue"]


def test_cohort_edges_a_click_in_the_window_counts_its_later_steps(tmp_path: Path) -> None:
    """A click in the window whose event comes after the window counts (cohort, not activity);
    an event in the window of a click before it counts in activity, not in the cohort."""
    path = str(tmp_path / "e.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "e", T0).space.id
        _click(conn, space, "early", None, T0 - 10 * H)  # before the window
        _click(conn, space, "inside", None, T0 + H)
        _event(conn, space, 1, Ev("early", None, "contact", T0 + 2 * H))  # in the window
        _event(conn, space, 2, Ev("inside", None, "contact", T0 + 30 * H))  # after it
        _event(conn, space, 3, Ev("inside", None, "deposit", T0 + 40 * H, "5", "USD"))
        _event(conn, space, 4, Ev("ghost", None, "contact", T0 + 3 * H))  # no click at all
    catch_up(conn)
    win = Window(T0, T0 + 24 * H)
    cohort = store.funnel_counts(conn, space, win, mode=FunnelMode.COHORT)
    activity = store.funnel_counts(conn, space, win, mode=FunnelMode.ACTIVITY)
    assert (cohort.clicks, cohort.uids["contact"], cohort.uids["deposit"]) == (1, 1, 1)
    assert (cohort.deposits, cohort.revenue) == (1, {"USD": Decimal("5")})
    assert (activity.clicks, activity.uids["contact"], activity.uids["deposit"]) == (1, 1, 0)
    assert cohort.unknown == activity.unknown == {"contact": 1}
    # the click of "ghost" (without a link) is stored after its event was rolled up: the event
    # leaves the line of its own for the steps
    with transaction(conn):
        _click(conn, space, "ghost", None, T0 + 2 * H)
    catch_up(conn)
    cohort = store.funnel_counts(conn, space, win, mode=FunnelMode.COHORT)
    activity = store.funnel_counts(conn, space, win, mode=FunnelMode.ACTIVITY)
    assert (cohort.clicks, cohort.uids["contact"]) == (activity.clicks, activity.uids["contact"])
    assert (cohort.clicks, cohort.uids["contact"], cohort.unknown) == (2, 2, {})
    conn.close()


@pytest.mark.parametrize("win", WINDOWS[:3], ids=lambda w: f"{w.from_ms - T0}+{w.length_ms}")
def test_per_link_rows_match_a_brute_force_count(world: World, win: Window) -> None:
    rows = {r.link: r for r in store.link_rows(world.conn, world.space, win)}
    assert set(rows) == {"l0", "l1", "l2", None}
    for slug, link_id in zip(("l0", "l1", "l2"), world.link_ids, strict=True):
        want = _expected(world, win, link_id)
        row = rows[slug]
        assert row.clicks == want["uids"]["click"]  # type: ignore[index]
        assert {s: row.uids.get(s, 0) for s in STEPS} == {s: _uids(want)[s] for s in STEPS}
        assert row.deposits == want["deposits"]
        assert row.revenue == want["revenue"]
    # the "no link" row: uids clicked without a link, and uids with no click at all
    total = _expected(world, win, clicked=False)
    per_step = {s: sum(r.uids.get(s, 0) for r in rows.values()) for s in STEPS}
    assert per_step == {s: total["uids"][s] for s in STEPS}  # type: ignore[index]


def test_link_funnel_counts_only_that_links_uids(world: World) -> None:
    win = WINDOWS[3]
    for link_id in world.link_ids:
        got = store.funnel_counts(world.conn, world.space, win, link_id=link_id)
        want = _expected(world, win, link_id)
        assert {s: got.uids.get(s, 0) for s in ("click", *STEPS)} == want["uids"]
        assert (got.deposits, got.first_deposits) == (want["deposits"], want["first"])


def test_series_counts_each_bucket_like_a_window(world: World) -> None:
    """Like the funnel, a series counts no uid without a click in the space (those are on the
    funnel's without-click line)."""
    starts = [T0 + i * 6 * H for i in range(12)]
    to = T0 + 72 * H
    for step in ("click", *STEPS):
        got = store.series_counts(world.conn, world.space, step, starts, to)
        ends = [*starts[1:], to]
        want = [
            _uids(_expected(world, Window(a, b), clicked=True))[step]
            for a, b in zip(starts, ends, strict=True)
        ]
        assert got == want, step
    revenue = store.series_revenue(world.conn, world.space, "USD", starts, to)
    ends = [*starts[1:], to]
    assert revenue == [
        _expected(world, Window(a, b), clicked=True)["revenue"].get("USD", Decimal(0))  # type: ignore[attr-defined]
        for a, b in zip(starts, ends, strict=True)
    ]


def test_the_python_money_path_gives_the_same_totals(world: World) -> None:
    where = "report_steps WHERE space_id = ? AND event = 'deposit'"
    fast = store._deposits(world.conn, "link_id", where, (world.space,))
    slow = store._deposits_in_python(world.conn, "link_id", where, (world.space,))
    assert {k: (v.rows, v.firsts, v.revenue) for k, v in fast.items()} == {
        k: (v.rows, v.firsts, v.revenue) for k, v in slow.items()
    }


def test_revenue_keeps_the_given_decimals(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "m", T0).space.id
        _click(conn, space, "u1", None, T0)
        for n, value in enumerate(["25.00", "25.00", "0.10"]):
            _event(conn, space, n, Ev("u1", None, "deposit", T0 + n, value, "USD"))
    catch_up(conn)
    got = store.funnel_counts(conn, space, Window(T0, T0 + H))
    assert {k: str(v) for k, v in got.revenue.items()} == {"USD": "50.10"}
    assert (got.deposits, got.depositors, got.first_deposits) == (3, 1, 1)
    conn.close()


def test_the_tail_returns_only_the_spaces_rows_in_order(world: World) -> None:
    top = tail_top(world.conn)
    batch = tail_range(world.conn, world.space, (0, 0, 0), top, limit=50)
    ids = [i.id for i in batch.items if i.kind == "click"]
    assert len(ids) == 50 and ids == sorted(ids)
    theirs = world.conn.execute("SELECT id FROM clicks WHERE space_id = ?", (world.other,))
    assert not {r[0] for r in theirs} & set(ids)
    assert batch.reached[0] == ids[-1]  # read on from the last click it returned
    # reading on from where it stopped gives what came after, and nothing before
    keys = {(i.kind, i.id) for i in batch.items}
    again = tail_range(world.conn, world.space, batch.reached, top, limit=50)
    resumed = {(i.kind, i.id) for i in again.items}
    assert resumed and not keys & resumed
    assert min(i for k, i in resumed if k == "click") > ids[-1]


def test_a_group_insert_keeps_the_rollup_exactly_as_one_by_one(tmp_path: Path) -> None:
    """The writer inserts concurrent events with one multi-row INSERT: the rollup must come out
    the same as after inserting them one at a time."""
    from xtracker_server.store.sqlite.inbox import insert_events

    rng = random.Random(11)
    evs = [
        Ev(f"u{rng.randrange(8)}", None, rng.choice(STEPS), T0 + rng.randrange(0, 5) * H,
           *(("2.50", "USD") if rng.random() < 0.5 else (None, None)))
        for _ in range(200)
    ]  # fmt: skip
    tables = []
    for name, grouped in (("one.db", False), ("group.db", True)):
        path = str(tmp_path / name)
        conn = with_rollup(open_db(path), path)
        with transaction(conn):
            space = spaces.create_space(conn, "a", T0).space.id
            drafts = [
                InboxDraft(space_id=space, dedup_key=f"{n}".encode(), event=ev.event, uid=ev.uid,
                           tg_id=None, eid=str(n), value=ev.value, currency=ev.currency,
                           occurred_at_ms=ev.at, received_ms=ev.at, source="api")
                for n, ev in enumerate(evs)
            ]  # fmt: skip
            if grouped:
                insert_events(conn, drafts)
            else:
                for draft in drafts:
                    insert_event(conn, draft)
        catch_up(conn)
        tables.append(
            [tuple(r) for r in conn.execute("SELECT * FROM report_steps ORDER BY inbox_id")]
        )
        conn.close()
    assert len(tables[0]) == 200
    assert tables[0] == tables[1]


def test_the_rollup_is_off_the_write_path_and_rebuilt_when_its_file_is_gone(
    tmp_path: Path,
) -> None:
    import asyncio
    import os

    from xtracker_server.store.sqlite.db import reports_path
    from xtracker_server.store.sqlite.rollup import open_rollup
    from xtracker_server.store.sqlite.writer import GroupCommitWriter

    path = str(tmp_path / "x.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        _click(conn, space, "u1", None, T0)
    rollup = open_rollup(path)
    rollup.execute("BEGIN")
    rollup.execute("UPDATE reports.rollup_state SET one = 1")  # holds the rollup's write lock

    async def ingest() -> None:  # the server's writer does not wait for it
        writer = GroupCommitWriter(path)
        await writer.start()
        for n in range(3):
            ev = Ev("u1", None, "deposit", T0 + n, "5.00", "USD")
            await writer.write(lambda c, n=n, ev=ev: _event(c, space, n, ev))
        await writer.stop()

    asyncio.run(asyncio.wait_for(ingest(), timeout=5))
    rollup.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM report_steps").fetchone()[0] == 0
    assert catch_up(conn) == 3
    before = store.funnel_counts(conn, space, Window(T0, T0 + H))
    assert (before.deposits, str(before.revenue["USD"])) == (3, "15.00")

    conn.close()
    rollup.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(reports_path(path) + suffix):
            os.remove(reports_path(path) + suffix)
    rebuilt = with_rollup(open_db(path), path)
    assert catch_up(rebuilt) == 3
    after = store.funnel_counts(rebuilt, space, Window(T0, T0 + H))
    assert (after.deposits, after.revenue) == (before.deposits, before.revenue)
    rebuilt.close()


def _reports(conn: sqlite3.Connection, space: int) -> list[object]:
    win = Window(T0 - 24 * H, T0 + 96 * H)
    starts = [T0 + i * 12 * H for i in range(6)]
    return [
        *(store.funnel_counts(conn, space, win, mode=m) for m in FunnelMode),
        store.link_rows(conn, space, win),
        store.deposit_currencies(conn, space, win),
        *(store.series_counts(conn, space, s, starts, T0 + 72 * H) for s in STEPS),
        store.series_revenue(conn, space, "USD", starts, T0 + 72 * H),
    ]


def test_test_events_never_count_not_even_once_a_bind_attributes_them(tmp_path: Path) -> None:
    """Two databases with the same real events; one also holds test events (with a uid,
    without a click, without a uid and attributed by a later bind): every report is the same."""
    answers = []
    for with_tests in (False, True):
        path = str(tmp_path / f"t{int(with_tests)}.db")
        conn = with_rollup(open_db(path), path)
        with transaction(conn):
            space = spaces.create_space(conn, "t", T0).space.id
            _click(conn, space, "u1", None, T0)
            _event(conn, space, 1, Ev("u1", None, "deposit", T0 + H, "10", "USD"))
            _event(conn, space, 2, Ev(None, 42, "registration", T0 + H))
            if with_tests:
                for n, ev in enumerate([
                    Ev("u1", None, "deposit", T0 + H, "99", "USD"),  # the same eid's test
                    Ev("u1", None, "contact", T0 + 2 * H),
                    Ev("ghost", None, "subscribed", T0 + 2 * H),  # no click
                    Ev(None, 42, "deposit", T0 + 3 * H, "7", "EUR"),  # attributed later
                    Ev(None, 43, "contact", T0 + 3 * H),  # never attributed
                ]):  # fmt: skip
                    draft = InboxDraft(space_id=space, dedup_key=f"test:{n}".encode(),
                                       event=ev.event, uid=ev.uid, tg_id=ev.tg_id, eid=str(n),
                                       value=ev.value, currency=ev.currency,
                                       occurred_at_ms=ev.at, received_ms=ev.at, source="api",
                                       test=True)  # fmt: skip
                    assert not insert_event(conn, draft).duplicate
        catch_up(conn)
        with transaction(conn):
            bind(conn, space, "u1", 42, T0 + 4 * H)  # attributes the tg 42 events
        catch_up(conn)
        answers.append(_reports(conn, space))
        conn.close()
    assert answers[0] == answers[1]
    funnel = answers[0][1]
    assert isinstance(funnel, FunnelCounts)
    assert (funnel.deposits, funnel.uids["registration"]) == (1, 1)  # the real ones count


def test_a_rollup_of_the_old_format_is_built_again(tmp_path: Path) -> None:
    """Before events without a known click had a line of their own, the rollup kept them under
    "no link" (0): such a file is built again from the inbox when it is opened."""
    path = str(tmp_path / "f.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "f", T0).space.id
        _event(conn, space, 1, Ev("ghost", None, "contact", T0))
    catch_up(conn)
    conn.execute("UPDATE reports.report_steps SET link_id = 0")  # what the old one held
    conn.execute("DROP TABLE reports.rollup_format")
    conn.close()
    conn = with_rollup(open_db(path), path)
    catch_up(conn)
    got = store.funnel_counts(conn, space, Window(T0, T0 + H))
    assert (got.uids["contact"], got.unknown) == (0, {"contact": 1})
    conn.close()
