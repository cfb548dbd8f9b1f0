"""Activity-mode reports read from the counts per bucket (store/sqlite/rollup_activity.py) against
a brute-force oracle: random events written through the store functions (out of order, on the
grid's edges, ties on one millisecond, repeats, uids without a click, clicks stored after their
events, deposits without an amount or a currency, reversals before and after their deposit),
counted here in plain Python; windows by UTC day, by 15 minutes, Asia/Kolkata days, and off the
grid (those are counted from ``report_steps``)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.server.test_reports_store import build_world
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite import reports as store
from xtracker_server.store.sqlite import reports_activity as counted
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.deletion import delete_link_batch
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.rollup import catch_up, with_rollup
from xtracker_server.store.sqlite.rollup_activity import (
    KIND_MS,
    LOOSE,
    PAIR_SPAN_MS,
    PAIRS_15M,
    SPACE,
    TOTAL_15M,
    TOTAL_DAY,
)
from xtracker_server.store.sqlite.rollup_schema import UNKNOWN

Q = 900_000
H = 3_600_000
DAY = 86_400_000
T0 = 1_748_736_000_000  # 2025-06-01T00:00Z
KOLKATA = T0 - 5 * H - 30 * 60_000  # midnight of 2025-06-01 in Asia/Kolkata (+5:30)
STEPS = ("contact", "subscribed", "registration", "deposit")
#: Times events are drawn to besides random ones: the grid's edges.
EDGES = [T0, T0 + DAY, T0 + 2 * DAY, KOLKATA + DAY, KOLKATA + 2 * DAY, T0 + 30 * H + Q]


@dataclass
class Ev:
    uid: str
    event: str
    at: int
    eid: str
    value: str | None = None
    currency: str | None = None


@dataclass
class World:
    conn: sqlite3.Connection
    space: int
    link_ids: list[int]
    link_of: dict[str, int | None]  # uid -> its click's link (absent: no click)
    events: list[Ev]
    clicks: dict[str, int]  # uid -> when it clicked


def _click(conn: sqlite3.Connection, space: int, uid: str, link: int | None, at: int) -> None:
    insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=at, source="api",
                                  link_id=link))  # fmt: skip


def _event(conn: sqlite3.Connection, space: int, n: int, ev: Ev) -> None:
    insert_event(conn, InboxDraft(
        space_id=space, dedup_key=f"{space}:{n}".encode(), event=ev.event, uid=ev.uid, tg_id=None,
        eid=ev.eid, value=ev.value, currency=ev.currency, occurred_at_ms=ev.at, received_ms=ev.at,
        source="api",
    ))  # fmt: skip


def _when(rng: random.Random) -> int:
    if rng.random() < 0.3:
        return rng.choice(EDGES) + rng.choice([0, 0, -1, 1, Q, -Q])
    return T0 - DAY + rng.randrange(0, 5 * DAY)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = _build(str(tmp_path_factory.mktemp("activity") / "a.db"), cube=False)
    yield w
    w.conn.close()


@pytest.fixture(scope="module")
def cubed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same world, its rollup built with the report cube (XTRACKER_REPORT_CUBE on)."""
    w = _build(str(tmp_path_factory.mktemp("activity") / "c.db"), cube=True)
    yield w
    w.conn.close()


def _build(
    path: str, *, cube: bool, when: Callable[[random.Random], int] = _when, uids: int = 160
) -> World:
    rng = random.Random(24)
    conn = with_rollup(open_db(path), path, cube=cube)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        other = spaces.create_space(conn, "b", T0).space.id
        link_ids = [links.create_link(conn, space, f"l{i}", spec, T0).id for i in range(3)]
        noise = links.create_link(conn, other, "noise", spec, T0).id
    w = World(conn, space, link_ids, {}, [], {})
    late: list[tuple[str, int | None]] = []
    held: list[Ev] = []  # deposits stored after their reversal
    n = 0
    with transaction(conn):
        for u in range(uids):
            uid = f"u{u:03d}"
            link = rng.choice([*link_ids, None])
            if u % 11 == 0:
                late.append((uid, link))
            elif u % 9 != 0:  # every ninth never gets a click
                w.clicks[uid] = when(rng)
                _click(conn, space, uid, link, w.clicks[uid])
                w.link_of[uid] = link
            for _ in range(rng.randrange(0, 9)):
                n += 1
                ev = Ev(uid, rng.choice(STEPS), when(rng), f"e{n}")
                if ev.event == "deposit":
                    ev.value = rng.choice(["10", "25.50", "0.00000001", "3.3", None])
                    ev.currency = rng.choice(["USD", "USD", "EUR", None])
                    if rng.random() < 0.3:  # reversed, the reversal stored first or after
                        r = Ev(uid, "deposit.reversed", when(rng), ev.eid)
                        _event(conn, space, n + 100_000, r)
                        w.events.append(r)
                        if rng.random() < 0.5:
                            held.append(ev)
                            continue
                _event(conn, space, n, ev)
                w.events.append(ev)
            _click(conn, other, uid, noise, T0)  # another space: never counted in ours
            n += 1
            _event(conn, other, n, Ev(uid, "contact", T0 + 30 * H, f"e{n}"))
    catch_up(conn)
    with transaction(conn):  # clicks after their events, deposits after their reversal
        for uid, link in late:
            _click(conn, space, uid, link, T0)
            w.link_of[uid], w.clicks[uid] = link, T0
        for ev in held:
            n += 1
            _event(conn, space, n, ev)
            w.events.append(ev)
    catch_up(conn)
    return w


def _reversed(w: World) -> set[tuple[str, str]]:
    return {(e.uid, e.eid) for e in w.events if e.event == "deposit.reversed"}


def _revenue(deposits: list[Ev]) -> dict[str, Decimal]:
    revenue: dict[str, Decimal] = {}
    for e in deposits:
        if e.value is not None and e.currency is not None:
            revenue[e.currency] = revenue.get(e.currency, Decimal(0)) + Decimal(e.value)
    return revenue


@dataclass
class Want:
    uids: dict[str, int]
    deposits: int
    firsts: int
    revenue: dict[str, Decimal]
    reversed: int
    reversed_revenue: dict[str, Decimal]


def _want(w: World, f: int, t: int, who: object) -> Want:
    """The answer counted here; ``who``: a link id, SPACE (every uid with a click), UNKNOWN (no
    click), or "rows" (every uid, as the per-link table's rows add up)."""

    def mine(uid: str) -> bool:
        if who == "rows":
            return True
        if who == UNKNOWN:
            return uid not in w.link_of
        return uid in w.link_of and who in (SPACE, w.link_of[uid])

    inside = [e for e in w.events if f <= e.at < t and mine(e.uid) and e.event in STEPS]
    deposits = [e for e in inside if e.event == "deposit"]
    first = {min((x.at, x.eid) for x in w.events if x.uid == e.uid and x.event == "deposit")
             for e in deposits}  # fmt: skip
    reversed_ = [e for e in deposits if (e.uid, e.eid) in _reversed(w)]
    return Want(
        uids={s: len({e.uid for e in inside if e.event == s}) for s in STEPS},
        deposits=len(deposits),
        firsts=sum((e.at, e.eid) in first for e in deposits),
        revenue=_revenue(deposits),
        reversed=len(reversed_),
        reversed_revenue=_revenue(reversed_),
    )


ON_GRID = [
    (T0, T0 + DAY),  # by UTC day
    (T0 + DAY, T0 + 3 * DAY),
    (T0 - DAY, T0 + 4 * DAY),
    (KOLKATA + DAY, KOLKATA + 2 * DAY),  # an Asia/Kolkata day: by 15 minutes
    (KOLKATA, KOLKATA + 2 * DAY),  # as long as 15-minute pairs are kept
    (T0 + 30 * H + Q, T0 + 31 * H),
    (T0 + 30 * H, T0 + 30 * H + Q),
    # longer than PAIR_SPAN_MS and cut off UTC days: its cut days' part from the events
    (KOLKATA, KOLKATA + 3 * DAY),
    (T0 + Q, T0 + 3 * DAY),  # a head and UTC days
    (T0 - DAY, T0 + 2 * DAY + 5 * H),  # UTC days and a tail
    (KOLKATA - DAY, KOLKATA + 4 * DAY),
]
OFF_GRID = [
    (T0 + 7 * H + 123, T0 + 50 * H + 7),
    (T0, T0 + 3 * DAY + 1),
]
WHO = [SPACE, UNKNOWN, 0, 1, 2]


def _who(w: World, who: int) -> int:
    """A link index of WHO (0, 1, 2) as the link's id; SPACE and UNKNOWN as they are."""
    return w.link_ids[who] if who in (0, 1, 2) else who


def _assert_counts_of_every_key(world: World, window: tuple[int, int]) -> None:
    """Each key's steps, deposits and reversed deposits read from the counts equal the
    oracle's (``_want``)."""
    f, t = window
    for who in WHO:
        key = _who(world, who)
        got = counted.funnel(world.conn, world.space, window, counted.one_link(key))
        assert got is not None
        steps, gross, reversed_ = got.get(key, ({}, counted.Deposits(), counted.Deposits()))
        want = _want(world, f, t, key)
        assert {s: steps.get(s, 0) for s in STEPS} == want.uids, who
        assert (gross.rows, gross.firsts, gross.revenue) == (want.deposits, want.firsts,
                                                             want.revenue), who  # fmt: skip
        assert (reversed_.rows, reversed_.revenue) == (want.reversed, want.reversed_revenue), who


@pytest.mark.parametrize("window", ON_GRID + OFF_GRID,
                         ids=lambda x: f"{(x[0] - T0) / H:+}h+{(x[1] - x[0]) / H}h")  # fmt: skip
def test_the_counts_per_bucket_answer_a_window_exactly(
    world: World, window: tuple[int, int]
) -> None:
    _assert_counts_of_every_key(world, window)


def test_a_window_under_15_minutes_whole_is_counted_from_its_rows(world: World) -> None:
    """And a series whose last bucket is one (a "last 7 days" ending 7 minutes past the hour)
    is still read from the counts, not from every event of its buckets."""
    for window in ((T0 + 5, T0 + 20 * 60_000), (T0 + Q + 1, T0 + 2 * Q + 7)):
        _assert_counts_of_every_key(world, window)
        f, t = window
        got = store.funnel_counts(world.conn, world.space, Window(f, t))
        assert {s: got.uids[s] for s in STEPS} == _want(world, f, t, SPACE).uids
    starts, end = [T0 + H * k for k in range(30)], T0 + 29 * H + 7 * 60_000
    read = _tables_read(
        world.conn, lambda: store.series_counts(world.conn, world.space, "contact", starts, end)
    )
    assert "report_activity" in read
    windows = list(zip(starts, [*starts[1:], end], strict=True))
    got_series = store.series_counts(world.conn, world.space, "contact", starts, end)
    assert got_series == [_want(world, a, b, SPACE).uids["contact"] for a, b in windows]


@pytest.mark.parametrize("window", ON_GRID + OFF_GRID,
                         ids=lambda x: f"{(x[0] - T0) / H:+}h+{(x[1] - x[0]) / H}h")  # fmt: skip
def test_the_activity_funnel_and_the_link_table_match_the_oracle(
    world: World, window: tuple[int, int]
) -> None:
    f, t = window
    got = store.funnel_counts(world.conn, world.space, Window(f, t), mode=FunnelMode.ACTIVITY)
    want, alone = _want(world, f, t, SPACE), _want(world, f, t, UNKNOWN)
    assert {s: got.uids[s] for s in STEPS} == want.uids
    assert (got.deposits, got.first_deposits, got.revenue) == (want.deposits, want.firsts,
                                                               want.revenue)  # fmt: skip
    assert (got.reversed_deposits, got.reversed_revenue) == (want.reversed, want.reversed_revenue)
    assert got.unknown == {s: n for s, n in alone.uids.items() if n}
    assert (got.unknown_deposits, got.unknown_revenue) == (alone.deposits, alone.revenue)
    rows = {r.link: r for r in store.link_rows(world.conn, world.space, Window(f, t))}
    for i, link_id in enumerate(world.link_ids):
        one = _want(world, f, t, link_id)
        row = rows[f"l{i}"]
        assert row.uids == {s: n for s, n in one.uids.items() if n}
        assert (row.deposits, row.revenue) == (one.deposits, one.revenue)
        assert (row.reversed_deposits, row.reversed_revenue) == (one.reversed,
                                                                 one.reversed_revenue)  # fmt: skip
    every = _want(world, f, t, "rows")
    assert {s: sum(r.uids.get(s, 0) for r in rows.values()) for s in STEPS} == every.uids
    assert sum(r.deposits for r in rows.values()) == every.deposits
    currencies = store.deposit_currencies(world.conn, world.space, Window(f, t))
    assert currencies == {
        c: n
        for c in ("USD", "EUR")
        if (
            n := sum(
                e.currency == c for e in world.events if e.event == "deposit" and f <= e.at < t
            )
        )
    }


SERIES = {
    "hours": ([T0 + i * H for i in range(48)], T0 + 48 * H),
    "quarters": ([T0 + 29 * H + i * Q for i in range(12)], T0 + 32 * H),
    "kolkata_days": ([KOLKATA + i * DAY for i in range(4)], KOLKATA + 4 * DAY),
    "kolkata_3_days": ([KOLKATA - DAY, KOLKATA + 2 * DAY], KOLKATA + 5 * DAY),
    "utc_days": ([T0 - DAY + i * DAY for i in range(5)], T0 + 4 * DAY),
    "off_grid": ([T0 + 7 * H + 5, T0 + 20 * H], T0 + 40 * H + 3),
}


@pytest.mark.parametrize("name", list(SERIES))
def test_series_count_each_bucket_like_the_oracle(world: World, name: str) -> None:
    starts, to = SERIES[name]
    ends = [*starts[1:], to]
    for who in (SPACE, 0, 2):
        key = _who(world, who)
        link_id = None if who == SPACE else key
        wants = [_want(world, a, b, key) for a, b in zip(starts, ends, strict=True)]
        for step in STEPS:
            got = store.series_counts(world.conn, world.space, step, starts, to, link_id=link_id)
            assert got == [want.uids[step] for want in wants], (step, who)
        for currency in ("USD", "EUR"):
            gross = store.series_revenue(world.conn, world.space, currency, starts, to,
                                         link_id=link_id)  # fmt: skip
            taken = store.series_revenue(world.conn, world.space, currency, starts, to,
                                         link_id=link_id, reversed_only=True)  # fmt: skip
            assert gross == [want.revenue.get(currency, Decimal(0)) for want in wants]
            assert taken == [want.reversed_revenue.get(currency, Decimal(0)) for want in wants]


def _tables_read(conn: sqlite3.Connection, call: object) -> set[str]:
    read: set[str] = set()

    def note(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table:
            read.add(table)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(note)
    try:
        call()  # type: ignore[operator]
    finally:
        conn.set_authorizer(None)
    return read


def test_a_report_on_the_grid_reads_the_counts_not_the_events(world: World) -> None:
    """What keeps a report's cost bounded by its window's buckets, not by the events in it."""
    conn, space = world.conn, world.space
    week = Window(T0 - DAY, T0 + 4 * DAY)
    hours = [T0 + i * H for i in range(24)]
    for call in (
        lambda: store.funnel_counts(conn, space, week, mode=FunnelMode.ACTIVITY),
        lambda: store.link_rows(conn, space, week),
        lambda: store.series_counts(conn, space, "contact", hours, T0 + DAY),
        lambda: store.series_revenue(conn, space, "USD", hours, T0 + DAY, reversed_only=True),
        lambda: store.deposit_currencies(conn, space, week),
    ):
        read = _tables_read(conn, call)
        assert "report_activity" in read or "report_activity_money" in read
        assert "report_steps" not in read


def _recount(conn: sqlite3.Connection) -> dict[tuple[int, ...] | tuple[object, ...], int]:
    """The counts of ``report_activity`` worked out again from ``report_steps``, and from the
    inbox for the events without a uid (``LOOSE``)."""
    out: dict[tuple[object, ...], int] = {}
    for space_id, link_id, event, at, prev in conn.execute(
        "SELECT space_id, link_id, event, at_ms, prev_ms FROM reports.report_steps"
        f" WHERE event IN {tuple(STEPS)}"
    ):
        for link in (link_id, SPACE) if link_id >= 0 else (link_id,):
            for kind, ms in KIND_MS.items():
                if kind < PAIRS_15M:
                    key: tuple[object, ...] = (space_id, link, event, kind, at - at % ms, 0)
                elif prev is None or (ms < DAY and at - prev >= PAIR_SPAN_MS):
                    continue
                else:
                    key = (space_id, link, event, kind, at - at % ms, prev - prev % ms)
                out[key] = out.get(key, 0) + 1
    # events without a uid (not tests), counted from the inbox: rows, no pairs
    for space_id, event, at in conn.execute(
        "SELECT space_id, event, occurred_at_ms FROM inbox WHERE uid IS NULL AND test = 0"
        f" AND event IN {tuple(STEPS)}"
    ):
        for kind in (TOTAL_15M, TOTAL_DAY):
            ms = KIND_MS[kind]
            key = (space_id, LOOSE, event, kind, at - at % ms, 0)
            out[key] = out.get(key, 0) + 1
    return out


def _kept(conn: sqlite3.Connection) -> dict[tuple[object, ...], int]:
    return {tuple(k): n for *k, n in conn.execute("SELECT * FROM reports.report_activity") if n}


def test_the_counts_follow_every_change_of_the_rows(tmp_path: Path) -> None:
    """Late binds, events moved to another uid by a bearer bind, a uid whose click came late
    (tests/server/test_reports_store.py's world): the counts equal a count of the rows."""
    world = build_world(str(tmp_path / "w.db"))
    try:
        assert _kept(world.conn) == _recount(world.conn)
    finally:
        world.conn.close()


@pytest.mark.parametrize("old", [2, 5])
def test_a_rollup_from_before_the_counts_counts_them_from_its_rows(
    tmp_path: Path, old: int
) -> None:
    """An upgrade: the rows are kept (no event is fed again), the counts are worked out."""
    path = str(tmp_path / "f.db")
    conn = with_rollup(open_db(path), path, cube=old == 5)
    with transaction(conn):
        space = spaces.create_space(conn, "f", T0).space.id
        _click(conn, space, "u", None, T0)
        for n in range(3):
            _event(conn, space, n, Ev("u", STEPS[n % 2], T0 + n * H, f"e{n}"))
    catch_up(conn)
    conn.execute("UPDATE reports.rollup_format SET version = ?", (old,))
    conn.execute("DELETE FROM reports.report_activity")  # what those formats had: none
    conn.execute("DELETE FROM reports.report_clicks")
    conn.close()
    conn = with_rollup(open_db(path), path, cube=None)
    assert catch_up(conn) == 0
    got = store.funnel_counts(conn, space, Window(T0, T0 + DAY))
    assert (got.clicks, got.uids["contact"], got.uids["subscribed"]) == (1, 1, 1)
    assert _kept(conn) == _recount(conn) != {}
    clicks = conn.execute("SELECT count(*) FROM reports.report_clicks WHERE n").fetchone()[0]
    assert clicks == (4 if old == 5 else 0)  # its link and the space's, per 15 min and day
    conn.close()


def _loose_event(conn: sqlite3.Connection, space: int, n: int, ev: Ev, test: bool = False) -> None:
    insert_event(conn, InboxDraft(
        space_id=space, dedup_key=f"{space}:loose:{n}".encode(), event=ev.event, uid=None,
        tg_id=7000 + n % 3, eid=ev.eid, value=ev.value, currency=ev.currency,
        occurred_at_ms=ev.at, received_ms=ev.at, source="api", test=test,
    ))  # fmt: skip


#: The indexes of report_steps' rows with a previous event (rollup formats 10 and 11).
AGAIN_INDEXES = ("report_steps_prev", "report_steps_again")
#: Events without a uid: (event, at, value, currency); one of them a test, never counted.
LOOSE_EVENTS = [
    ("contact", T0 + 3 * Q + 7, None, None),
    ("contact", T0 + DAY + 5, None, None),
    ("deposit", T0 + H, "10.5", "USD"),
    ("deposit", T0 + H + 1, "0.00000001", "USD"),
    ("deposit", T0 + DAY + H, "7", "EUR"),
    ("deposit", T0 + 2 * DAY, None, None),
]


@pytest.mark.parametrize("old", [2, 5, 6, 7, 8, 9])
def test_a_rollup_from_before_the_events_without_a_uid_rolls_them_up(
    tmp_path: Path, old: int
) -> None:
    """An upgrade from a rollup that did not keep them (6, 7; 2, 5: nor the counts; 8, 9: kept
    them but had not the indexes of the rows with a previous event): its events without a uid
    are rolled up from the inbox, none of its other events is fed again, the indexes are made,
    and the
    funnel's line of them is the same off the rollup (any window of 15 minutes whole) and off
    the inbox (a shorter one)."""
    path = str(tmp_path / "l.db")
    conn = with_rollup(open_db(path), path, cube=old in (5, 7, 9))
    with transaction(conn):
        space = spaces.create_space(conn, "l", T0).space.id
        _click(conn, space, "u", None, T0)
        _event(conn, space, 1, Ev("u", "contact", T0 + H, "e1"))
        for n, (event, at, value, currency) in enumerate(LOOSE_EVENTS):
            _loose_event(conn, space, n, Ev("", event, at, f"l{n}", value, currency))
        _loose_event(conn, space, 99, Ev("", "deposit", T0 + H, "t", "5", "USD"), test=True)
    catch_up(conn)
    conn.execute("UPDATE reports.rollup_format SET version = ?", (old,))
    conn.execute("DELETE FROM reports.report_loose")  # what those formats had: none
    conn.execute("DELETE FROM reports.activity_log")  # (what its trigger logged of it)
    for index in AGAIN_INDEXES:  # nor the indexes of the rows with a previous event
        conn.execute(f"DROP INDEX reports.{index}")
    conn.execute("DELETE FROM reports.report_activity WHERE link_id = ?", (LOOSE,))
    conn.execute("DELETE FROM reports.report_activity_money WHERE link_id = ?", (LOOSE,))
    if old in (2, 5):
        conn.execute("DELETE FROM reports.report_activity")
        conn.execute("DELETE FROM reports.report_clicks")
    conn.close()
    conn = with_rollup(open_db(path), path, cube=None)
    assert catch_up(conn) == 0
    assert _kept(conn) == _recount(conn) != {}
    made = "SELECT name FROM reports.sqlite_master WHERE type = 'index' AND name = ?"
    assert all(conn.execute(made, (index,)).fetchone() for index in AGAIN_INDEXES)
    for f, t in [(T0, T0 + 3 * DAY), (T0 + 5, T0 + DAY + H + 1), (T0 + H, T0 + H + 1),
                 (T0 + DAY, T0 + DAY + 10 * 60_000), (T0 - DAY, T0 + DAY + 7)]:  # fmt: skip
        got = store.funnel_counts(conn, space, Window(f, t))
        inside = [x for x in LOOSE_EVENTS if f <= x[1] < t]
        want: dict[str, Decimal] = {}
        for _, _, value, currency in inside:
            if value is not None and currency is not None:
                want[currency] = want.get(currency, Decimal(0)) + Decimal(value)
        steps = {e: sum(x[0] == e for x in inside) for e in STEPS}
        assert got.unattributed == {e: n for e, n in steps.items() if n}, (f - T0, t - T0)
        assert got.unattributed_revenue == want, (f - T0, t - T0)
    conn.close()


def test_the_unattributed_line_is_read_from_the_inbox_when_a_sum_overflowed(
    tmp_path: Path,
) -> None:
    """A bucket's sum of amounts past SQLite's 64-bit integers turns REAL (inexact): the line
    is then counted from the inbox's rows, exactly."""
    path = str(tmp_path / "o.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "o", T0).space.id
        for n, (event, at, value, currency) in enumerate(LOOSE_EVENTS):
            _loose_event(conn, space, n, Ev("", event, at, f"l{n}", value, currency))
    catch_up(conn)
    window = Window(T0, T0 + 3 * DAY)
    before = store.funnel_counts(conn, space, window)
    assert before.unattributed_revenue == {"USD": Decimal("10.50000001"), "EUR": Decimal("7")}
    conn.execute(
        "UPDATE reports.report_activity_money SET units = units + 0.5 WHERE link_id = ?", (LOOSE,)
    )
    got = store.funnel_counts(conn, space, window)
    assert (got.unattributed, got.unattributed_revenue) == (
        before.unattributed, before.unattributed_revenue)  # fmt: skip
    conn.close()


def test_deposits_of_uids_without_a_click_go_to_the_no_link_row_alone(tmp_path: Path) -> None:
    """The per-link table's "no link" row when only uids without a click deposited."""
    path = str(tmp_path / "n.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "n", T0).space.id
        _event(conn, space, 1, Ev("ghost", "deposit", T0 + H, "e1", "7.5", "EUR"))
    catch_up(conn)
    (row,) = store.link_rows(conn, space, Window(T0, T0 + DAY))
    assert (row.link, row.uids, row.deposits, row.revenue) == (
        None, {"deposit": 1}, 1, {"EUR": Decimal("7.5")}
    )  # fmt: skip
    conn.close()


def _clicks(w: World, f: int, t: int, link: object = SPACE) -> int:
    return sum(f <= at < t and link in (SPACE, w.link_of[uid]) for uid, at in w.clicks.items())


@pytest.mark.parametrize("window", ON_GRID + OFF_GRID,
                         ids=lambda x: f"{(x[0] - T0) / H:+}h+{(x[1] - x[0]) / H}h")  # fmt: skip
def test_clicks_are_counted_alike_with_the_cube_and_without(
    world: World, cubed: World, window: tuple[int, int]
) -> None:
    f, t = window
    for w in (world, cubed):
        got = store.funnel_counts(w.conn, w.space, Window(f, t), mode=FunnelMode.ACTIVITY)
        assert got.clicks == _clicks(w, f, t)
        rows = {r.link: r.clicks for r in store.link_rows(w.conn, w.space, Window(f, t))}
        want: dict[str | None, int] = {
            f"l{i}": _clicks(w, f, t, link_id) for i, link_id in enumerate(w.link_ids)
        }
        no_link = _clicks(w, f, t, None)
        assert rows == ({**want, None: no_link} if None in rows else want)
        assert None in rows or no_link == 0
        for link_id in w.link_ids:
            one = store.funnel_counts(w.conn, w.space, Window(f, t), link_id=link_id)
            assert one.clicks == _clicks(w, f, t, link_id)
        starts = [f + i * (t - f) // 4 for i in range(4)]
        ends = [*starts[1:], t]
        series = store.series_counts(w.conn, w.space, "click", starts, t)
        assert series == [_clicks(w, a, b) for a, b in zip(starts, ends, strict=True)]
        link_id = w.link_ids[1]
        series = store.series_counts(w.conn, w.space, "click", starts, t, link_id=link_id)
        assert series == [_clicks(w, a, b, link_id) for a, b in zip(starts, ends, strict=True)]


def test_with_the_cube_a_report_on_the_grid_reads_no_click(cubed: World) -> None:
    """With the cube, the rollup counts the clicks per UTC day and 15 minutes (report_clicks):
    a week's funnel, per-link table and an hourly series of clicks read those, not the
    clicks."""
    conn, space, link_id = cubed.conn, cubed.space, cubed.link_ids[0]
    week, hours = Window(T0 - DAY, T0 + 4 * DAY), [T0 + i * H for i in range(24)]
    for call in (
        lambda: store.funnel_counts(conn, space, week, mode=FunnelMode.ACTIVITY),
        lambda: store.link_rows(conn, space, week),
        lambda: store.series_counts(conn, space, "click", hours, T0 + DAY),
        lambda: store.series_counts(conn, space, "click", hours, T0 + DAY, link_id=link_id),
        lambda: store.funnel_counts(
            conn, space, Window(KOLKATA, KOLKATA + 3 * DAY), link_id=link_id
        ),
    ):
        read = _tables_read(conn, call)
        assert "report_clicks" in read and "clicks" not in read


def _clicks_kept(conn: sqlite3.Connection) -> dict[tuple[int, ...], int]:
    return {tuple(k): n for *k, n in conn.execute("SELECT * FROM reports.report_clicks") if n}


def _clicks_recount(conn: sqlite3.Connection, space: int) -> dict[tuple[int, ...], int]:
    out: dict[tuple[int, ...], int] = {}
    for link_id, at in conn.execute(
        "SELECT coalesce(link_id, 0), created_ms FROM clicks WHERE space_id = ?", (space,)
    ):
        for link in (link_id, SPACE):
            for kind in (0, 1):
                key = (space, link, kind, at - at % KIND_MS[kind])
                out[key] = out.get(key, 0) + 1
    return out


def test_the_click_counts_follow_a_deleted_link_and_clicks_after_their_events(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "d.db")
    conn = with_rollup(open_db(path), path, cube=True)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    with transaction(conn):
        space = spaces.create_space(conn, "d", T0).space.id
        gone, kept = (links.create_link(conn, space, s, spec, T0).id for s in ("gone", "kept"))
        for u in range(12):
            _click(conn, space, f"u{u}", (gone, kept, None)[u % 3], T0 + u * H)
            _event(conn, space, u, Ev(f"u{u}", "contact", T0 + u * H + Q, f"e{u}"))
        _event(conn, space, 99, Ev("late", "contact", T0 + H, "e99"))
    catch_up(conn)
    with transaction(conn):
        _click(conn, space, "late", kept, T0 + 2 * H)  # after its event
        while not delete_link_batch(conn, space, gone, limit=2).done:
            pass
    catch_up(conn)
    assert _clicks_kept(conn) == _clicks_recount(conn, space) != {}
    rows = {r.link: r.clicks for r in store.link_rows(conn, space, Window(T0, T0 + DAY))}
    assert rows == {"kept": 5, None: 8}
    conn.close()


def test_a_sum_past_64_bit_integers_is_summed_from_the_rows(tmp_path: Path) -> None:
    """SQLite turns an integer sum that overflows into a REAL (inexact): such a bucket's money
    is not read from the counts, the deposits' rows are summed (with Python's integers)."""
    path = str(tmp_path / "o.db")
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "o", T0).space.id
        _click(conn, space, "u", None, T0)
        _event(conn, space, 1, Ev("u", "deposit", T0 + H, "e1", "999999999999.99", "USD"))
    catch_up(conn)
    # what 9.3 million such deposits in one day would leave (a REAL: 1e19 units)
    conn.execute("UPDATE reports.report_activity_money SET units = units * 1e7")
    window = Window(T0, T0 + DAY)
    assert counted.deposits(conn, space, [(T0, T0 + DAY)], counted.one_link(SPACE)) is None
    got = store.funnel_counts(conn, space, window)
    assert (got.deposits, got.revenue) == (1, {"USD": Decimal("999999999999.99")})
    conn.close()


#: Off the grid on both ends, across UTC days; and a short one inside a day.
EDGY = [(T0 + 30 * H + 7 * 60_000, T0 + 3 * DAY + 20 * 60_000 + 5),
        (T0 + 30 * H + 7 * 60_000, T0 + 31 * H + 3 * 60_000)]  # fmt: skip


def _at_the_edges(rng: random.Random) -> int:
    """Times around EDGY's ends and the grid's next to them, many the same millisecond."""
    (f, t), (_, t_short) = EDGY
    marks = [f, f + (-f) % Q, T0 + 2 * DAY, t - t % Q, t, t_short - t_short % Q, t_short]
    return rng.choice(marks) + rng.choice([-2 * Q, -Q, -60_000, -1, 0, 1, 60_000, Q])


@pytest.fixture(scope="module")
def edgy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Events crowded at the ends of EDGY's windows: repeats across each end, reversals."""
    w = _build(str(tmp_path_factory.mktemp("edgy") / "e.db"), cube=True, when=_at_the_edges,
               uids=100)  # fmt: skip
    yield w
    w.conn.close()


@pytest.mark.parametrize("window", EDGY, ids=("days", "hour"))
def test_a_window_off_the_grid_counts_its_ends_exactly(
    edgy: World, window: tuple[int, int]
) -> None:
    _assert_counts_of_every_key(edgy, window)
    f, t = window
    got_funnel = store.funnel_counts(edgy.conn, edgy.space, Window(f, t))
    assert got_funnel.clicks == _clicks(edgy, f, t)
    currencies = store.deposit_currencies(edgy.conn, edgy.space, Window(f, t))
    assert currencies == {
        c: n for c in ("EUR", "USD")
        if (n := sum(e.currency == c and e.event == "deposit" and f <= e.at < t
                     for e in edgy.events))
    }  # fmt: skip
