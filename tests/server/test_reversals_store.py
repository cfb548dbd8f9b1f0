"""Reversed deposits in the reports, against a brute-force oracle (issue 17 §4).

Random deposits and reversals (``deposit.reversed``, naming the deposit's uid and eid) written
through the store functions: reversals stored before their deposit, after it, in the same
catch-up or in a later one; reversals of an eid nobody deposited, of a deposit's eid under
another uid, and in another space (none of which reverses anything); a uid whose deposit and
reversal reach it later through a bind. The right gross, reversed and net revenue per currency
(and per link, and per bucket) is computed here in plain Python from what was written, and the
rollup rebuilt from nothing gives the same numbers."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import Window
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite import reports as store
from xtracker_server.store.sqlite.binds import bind
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.rollup import catch_up, with_rollup
from xtracker_wire import REVERSAL

H = 3_600_000
T0 = 1_750_000_000_000


@dataclass
class Dep:
    uid: str | None
    eid: str
    at: int
    value: str | None
    currency: str
    tg_id: int | None = None


@dataclass
class World:
    conn: sqlite3.Connection
    path: str
    space: int
    other: int
    link_of: dict[str, int | None]
    link_ids: list[int]
    deposits: list[Dep]
    # (uid, eid) of every reversal stored in our space (matched or not)
    reversals: set[tuple[str | None, str]] = field(default_factory=set)


def _write(
    conn: sqlite3.Connection,
    space: int,
    event: str,
    uid: str | None,
    eid: str,
    at: int,
    value: str | None = None,
    currency: str | None = None,
    tg_id: int | None = None,
) -> None:
    insert_event(
        conn,
        InboxDraft(space_id=space, dedup_key=dedup_key(space, uid, tg_id, event, eid, at),
                   event=event, uid=uid, tg_id=tg_id, eid=eid, value=value,
                   currency=currency if value is not None else None, occurred_at_ms=at,
                   received_ms=at, source="api"),
    )  # fmt: skip


def build(path: str) -> World:
    rng = random.Random(17)
    conn = with_rollup(open_db(path), path)
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        other = spaces.create_space(conn, "b", T0).space.id
        link_ids = [
            links.create_link(conn, space, f"r{i}", LinkSpec(kind=LinkKind.BOT, target="b_bot"),
                              T0).id
            for i in range(2)
        ]  # fmt: skip
    world = World(conn, path, space, other, {}, link_ids, [])
    # Reversals written in a later transaction than their deposit (after a catch-up), or
    # before it: the rollup pairs them from either side.
    later: list[tuple[str, str, int]] = []
    with transaction(conn):
        for u in range(80):
            uid = f"u{u:02d}"
            if u % 11 != 0:  # some uids have no click: the "no link" row
                link = rng.choice([*link_ids, None])
                insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=T0,
                                              source="api", link_id=link))  # fmt: skip
                world.link_of[uid] = link
            for k in range(rng.randrange(0, 4)):
                eid = f"tx-{u}-{k}"
                at = T0 + rng.randrange(-12 * H, 60 * H)
                if rng.random() < 0.1:
                    at = T0 + 24 * H  # exactly on a window's edge
                value = rng.choice(["10", "25.50", "0.00000001", "999999999999.99", "3.3", None])
                currency = rng.choice(["USD", "USD", "EUR"])
                when = rng.random()
                if when < 0.2:  # the network reverses it before we get the deposit
                    _write(conn, space, REVERSAL, uid, eid, at + H)
                    world.reversals.add((uid, eid))
                _write(conn, space, "deposit", uid, eid, at, value, currency)
                world.deposits.append(Dep(uid, eid, at, value, currency))
                if 0.2 <= when < 0.35:  # same transaction, after the deposit
                    _write(conn, space, REVERSAL, uid, eid, at + 2 * H)
                    world.reversals.add((uid, eid))
                elif 0.35 <= when < 0.5:
                    later.append((uid, eid, at + 3 * H))
            # a reversal of an eid never deposited, and one of another uid's eid: no effect
            if u % 7 == 0:
                _write(conn, space, REVERSAL, uid, f"unknown-{u}", T0)
                world.reversals.add((uid, f"unknown-{u}"))
            if u % 9 == 0 and u > 0:
                _write(conn, space, REVERSAL, uid, f"tx-{u - 1}-0", T0)
                world.reversals.add((uid, f"tx-{u - 1}-0"))
            # the other space: the same uid (clicked there) and eid, deposited and reversed there
            insert_click(conn, ClickDraft(space_id=other, uid=uid, created_ms=T0, source="api"))
            _write(conn, other, "deposit", uid, f"tx-{u}-0", T0, "5", "USD")
            _write(conn, other, REVERSAL, uid, f"tx-{u}-0", T0 + H)
    catch_up(conn)
    with transaction(conn):
        for uid, eid, at in later:
            _write(conn, space, REVERSAL, uid, eid, at)
            world.reversals.add((uid, eid))
        # a Telegram user's deposit and its reversal, both unattributed until a bind
        _write(conn, space, "deposit", None, "tg-dep", T0 + 5 * H, "7.77", "EUR", tg_id=4242)
        world.deposits.append(Dep(None, "tg-dep", T0 + 5 * H, "7.77", "EUR", tg_id=4242))
    catch_up(conn)
    with transaction(conn):
        _write(conn, space, REVERSAL, None, "tg-dep", T0 + 6 * H, tg_id=4242)
    catch_up(conn)
    with transaction(conn):
        bound = next(u for u, link in world.link_of.items() if link is not None)
        bind(conn, space, bound, 4242, T0)
        for d in world.deposits:
            if d.tg_id == 4242:
                d.uid = bound
        world.reversals.add((bound, "tg-dep"))
    catch_up(conn)
    matched = {(d.uid, d.eid) for d in world.deposits} & world.reversals
    assert len(matched) >= 20 and len(world.reversals - matched) >= 10  # every kind is here
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build(str(tmp_path_factory.mktemp("reversals") / "x.db"))
    yield w
    w.conn.close()


WINDOWS = [
    Window(T0 - 12 * H, T0 + 72 * H),
    Window(T0 + 24 * H, T0 + 25 * H),  # starts exactly on the edge millisecond
    Window(T0, T0 + 24 * H),  # ends exactly on it (excluded)
    Window(T0 + 3 * H + 17, T0 + 40 * H - 3),
]


def _money(
    w: World, win: Window, link: int | str | None = "all", *, clicked: bool = False
) -> tuple[int, dict[str, Decimal], int, dict[str, Decimal]]:
    """Deposits and gross revenue, reversed deposits and reversed revenue, the oracle's;
    ``clicked``: only of uids with a click in the space (the funnel's steps: the others are on
    its ``without_click`` line)."""
    gross: dict[str, Decimal] = {}
    taken: dict[str, Decimal] = {}
    rows = reversed_rows = 0
    for d in w.deposits:
        if d.uid is None or not win.from_ms <= d.at < win.to_ms:
            continue
        if clicked and d.uid not in w.link_of:
            continue
        if link != "all" and w.link_of.get(d.uid) != link:
            continue
        rows += 1
        hit = (d.uid, d.eid) in w.reversals
        reversed_rows += hit
        if d.value is None:
            continue
        gross[d.currency] = gross.get(d.currency, Decimal(0)) + Decimal(d.value)
        if hit:
            taken[d.currency] = taken.get(d.currency, Decimal(0)) + Decimal(d.value)
    return rows, gross, reversed_rows, taken


@pytest.mark.parametrize("win", WINDOWS, ids=lambda w: f"{w.from_ms - T0}+{w.length_ms}")
def test_funnel_gross_reversed_and_net_match_a_brute_force_count(world: World, win: Window) -> None:
    got = store.funnel_counts(world.conn, world.space, win)
    rows, gross, reversed_rows, taken = _money(world, win, clicked=True)
    assert got.unknown_deposits == _money(world, win)[0] - rows  # never-clicked uids' deposits
    assert (got.deposits, got.revenue) == (rows, gross)
    assert (got.reversed_deposits, got.reversed_revenue) == (reversed_rows, taken)
    assert got.net_revenue == {c: v - taken.get(c, Decimal(0)) for c, v in gross.items()}
    assert {str(v) for v in got.reversed_revenue.values()} == {str(v) for v in taken.values()}


@pytest.mark.parametrize("win", WINDOWS[:2], ids=lambda w: f"{w.from_ms - T0}+{w.length_ms}")
def test_per_link_reversals_match_a_brute_force_count(world: World, win: Window) -> None:
    rows = {r.link: r for r in store.link_rows(world.conn, world.space, win)}
    for slug, link_id in (("r0", world.link_ids[0]), ("r1", world.link_ids[1]), (None, None)):
        n, gross, reversed_rows, taken = _money(world, win, link_id)
        if slug is None:  # no link: clicked without a link, or never clicked
            n, gross, reversed_rows, taken = _no_link(world, win)
        row = rows[slug]
        assert (row.deposits, row.revenue) == (n, gross), slug
        assert (row.reversed_deposits, row.reversed_revenue) == (reversed_rows, taken), slug
    for link_id in world.link_ids:
        one = store.funnel_counts(world.conn, world.space, win, link_id=link_id)
        assert (one.reversed_deposits, one.reversed_revenue) == _money(world, win, link_id)[2:]


def _no_link(w: World, win: Window) -> tuple[int, dict[str, Decimal], int, dict[str, Decimal]]:
    n, gross, rn, taken = _money(w, win)
    for link_id in w.link_ids:
        ln, lg, lrn, lt = _money(w, win, link_id)
        n, rn = n - ln, rn - lrn
        gross = {c: v - lg.get(c, Decimal(0)) for c, v in gross.items()}
        taken = {c: v - lt.get(c, Decimal(0)) for c, v in taken.items()}
    return n, {c: v for c, v in gross.items() if v}, rn, {c: v for c, v in taken.items() if v}


def test_reversed_revenue_per_bucket_is_the_deposits_bucket(world: World) -> None:
    starts = [T0 - 12 * H + i * 6 * H for i in range(14)]
    to = T0 + 72 * H
    ends = [*starts[1:], to]
    for currency in ("USD", "EUR"):
        got = store.series_revenue(world.conn, world.space, currency, starts, to,
                                   reversed_only=True)  # fmt: skip
        want = [
            _money(world, Window(a, b), clicked=True)[3].get(currency, Decimal(0))
            for a, b in zip(starts, ends, strict=True)
        ]
        assert got == want, currency
        assert any(want)


def test_the_other_space_keeps_its_own_reversals(world: World) -> None:
    win = WINDOWS[0]
    theirs = store.funnel_counts(world.conn, world.other, win)
    assert theirs.deposits == 80 and theirs.reversed_deposits == 80
    assert theirs.reversed_revenue == {"USD": Decimal(400)} == theirs.revenue
    assert theirs.net_revenue == {"USD": Decimal(0)}


def test_a_rollup_rebuilt_from_the_inbox_gives_the_same_numbers(
    world: World, tmp_path: Path
) -> None:
    path = str(tmp_path / "copy.db")
    backup = sqlite3.connect(path)
    world.conn.backup(backup)  # the main file only: the rollup is derived
    backup.close()
    assert not Path(reports_path(path)).exists()
    conn = with_rollup(open_db(path), path)
    try:
        catch_up(conn)
        for win in WINDOWS:
            a = store.funnel_counts(world.conn, world.space, win)
            b = store.funnel_counts(conn, world.space, win)
            assert (a.reversed_deposits, a.reversed_revenue) == (
                b.reversed_deposits,
                b.reversed_revenue,
            )
    finally:
        conn.close()
