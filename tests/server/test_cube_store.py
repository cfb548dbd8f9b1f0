"""The report cube (store/sqlite/cube*.py) against a brute-force oracle: random clicks with
dimensions over 3 days, events at any time (before their click too), deposits in 2 currencies,
reversals (before and after their deposit), uids without a click, test events, clicks stored
after their events, events attributed later by a bind, an erased uid, an erased event, a
deleted link and a deleted space, each reaching the cube through the real catch-up in several
rounds. The oracle counts every group from the main tables in plain Python (clicks, inbox);
``cube_counts`` must give the same for many queries in UTC, Asia/Kolkata and America/New_York;
the cube rebuilt from nothing must give the same again; a catch-up with nothing new and a
recount of every uid change nothing."""

from __future__ import annotations

import gc
import json
import random
import sqlite3
import sys
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.deletion import Person
from xtracker_server.domain.filters import Filter, Filters
from xtracker_server.domain.groups import NAME_OF, TTC_BOUNDS_S, GroupCounts, GroupQuery
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import FunnelMode, Window, iso_local, zone
from xtracker_server.store.sqlite import (
    cube,
    cube_feed,
    cube_probe,
    cube_schema,
    cube_segments,
    cube_shares,
    deletion,
    erasure,
    groups,
    links,
    reports,
    rollup,
    spaces,
)
from xtracker_server.store.sqlite.binds import bind
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.cube import cube_counts
from xtracker_server.store.sqlite.cube_schema import COUNTS, LEVEL_15M, LEVEL_DAY, LEVEL_HOUR
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.rollup import catch_up, with_rollup
from xtracker_server.store.sqlite.rollup_activity import CLICK_COUNTS
from xtracker_server.store.sqlite.rollup_schema import CUBE_FORMAT
from xtracker_wire import CANONICAL_EVENTS, REVERSAL

H = 3_600_000
DAY = 24 * H
T0 = 1_750_032_000_000  # a UTC midnight
STEPS = CANONICAL_EVENTS
DIMS = {
    "country": ["US", "CA", "DE", None],
    "device": ["mobile", "desktop", None],
    "placement": ["feed", "stories", None],
    "utm_source": ["fb", "ig", None],
    "campaign_name": None,  # from the campaign
}
TZS = ("UTC", "Asia/Kolkata", "America/New_York")
COHORT = FunnelMode.COHORT


#: The oracle's reads: events by uid, and clicks with their attributes.
Read = tuple[dict[str, list[sqlite3.Row]], list[tuple[sqlite3.Row, dict[str, str | None]]]]


@dataclass
class World:
    conn: sqlite3.Connection
    path: str
    space: int
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # latest name per id
    named: dict[tuple[str, str], int] = field(default_factory=dict)  # and its click's time
    #: What the oracle reads of the main tables, read once: they do not change after build().
    read: Read | None = None


def _click(w: World, space: int, uid: str, rng: random.Random, at: int, links_: list[int]) -> None:
    campaign = rng.choice(["c1", "c2", "c3", None])
    adset = f"{campaign}-s{rng.randrange(2)}" if campaign else None
    ad = f"{adset}-a{rng.randrange(3)}" if adset else None
    renamed = at > T0 + 2 * DAY and campaign == "c1"  # c1 got a new name on day 3
    fields = {k: v for k, v in {
        "campaign_id": campaign, "campaign_name": f"{campaign} {'v2' if renamed else 'v1'}",
        "adset_id": adset, "adset_name": f"name {adset}", "ad_id": ad, "ad_name": f"name {ad}",
        "placement": rng.choice(DIMS["placement"] or []),
        "utm_source": rng.choice(DIMS["utm_source"] or []),
    }.items() if v is not None and (campaign or not k.startswith("campaign"))}  # fmt: skip
    sub = rng.choice([None, "v1", "v2"])
    insert_click(w.conn, ClickDraft(
        space_id=space, uid=uid, created_ms=at, source="api", link_id=rng.choice([*links_, None]),
        country=rng.choice(DIMS["country"] or []), device=rng.choice(DIMS["device"] or []),
        fields=fields, sub_ids={"creative": sub} if sub else {},
    ))  # fmt: skip
    if space == w.space:
        for dim, column in NAME_OF.items():
            if f"{dim}_id" in fields and column in fields:
                key, seen = (dim, fields[f"{dim}_id"]), w.named.get((dim, fields[f"{dim}_id"]))
                if seen is None or at >= seen:  # the latest click (a later write on a tie)
                    w.names[key], w.named[key] = fields[column], at


def _event(
    w: World, space: int, n: int, uid: str | None, event: str, at: int, *, tg_id: int | None = None,
    eid: int | None = None, value: str | None = None, currency: str | None = None,
    test: bool = False,
) -> None:  # fmt: skip
    insert_event(w.conn, InboxDraft(
        space_id=space, dedup_key=f"{space}:{n}".encode(), event=event, uid=uid, tg_id=tg_id,
        eid=str(n if eid is None else eid), value=value, currency=currency, occurred_at_ms=at,
        received_ms=at, source="api", test=test,
    ))  # fmt: skip


def build(path: str) -> World:
    rng = random.Random(17)
    conn = with_rollup(open_db(path), path, cube=True)
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        other = spaces.create_space(conn, "b", T0).space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
        link_ids = [links.create_link(conn, space, f"l{i}", spec, T0).id for i in range(3)]
        other_link = links.create_link(conn, other, "o", spec, T0).id
    w = World(conn, path, space)
    late: list[tuple[str, int]] = []
    n = 0
    for part in range(3):  # three batches, each caught up
        with transaction(conn):
            for u in range(part * 70, part * 70 + 70):
                uid = f"u{u:03d}"
                created = T0 + rng.randrange(0, 3 * DAY)
                if u % 13 == 0:
                    late.append((uid, created))  # the click is stored after its events
                elif u % 19 != 0:  # no click at all for some
                    _click(w, space, uid, rng, created, link_ids)
                _click(w, other, uid, rng, created, [other_link])  # same uid, another space
                for _ in range(rng.randrange(0, 6)):
                    step = rng.choice(STEPS)
                    at = created + rng.randrange(-2 * H, 5 * DAY)
                    n += 1
                    more: dict[str, Any] = {"test": rng.random() < 0.05}
                    if step == "deposit" and rng.random() < 0.9:
                        more["value"] = rng.choice(["10", "25.50", "0.00000001", "3.3", "99"])
                        more["currency"] = rng.choice(["USD", "EUR"])
                        if rng.random() < 0.3:  # reversed, the reversal stored before or after
                            r_at = at + rng.randrange(-H, DAY)
                            _event(w, space, n + 100_000, uid, REVERSAL, r_at, eid=n)
                    _event(w, space, n, uid, step, at, **more)
                    _event(w, other, n, uid, "contact", at)
            for k in range(6):  # unattributed events, bound to a clicked uid below
                n += 1
                _event(w, space, n, None, rng.choice(STEPS), T0 + rng.randrange(0, 3 * DAY),
                       tg_id=7000 + part * 10 + k, value="5", currency="USD")  # fmt: skip
        catch_up(conn, chunk=50)
    with transaction(conn):
        for uid, created in late:
            _click(w, space, uid, rng, created, link_ids)
        clicked = [
            r[0] for r in conn.execute("SELECT uid FROM clicks WHERE space_id = ?", (space,))
        ]
        for part in range(3):
            for k in range(6):
                bind(conn, space, clicked[part * 6 + k], 7000 + part * 10 + k, T0)
    catch_up(conn, chunk=50)
    with transaction(conn):  # removals: a uid, an event, a link, the other space
        erasure.erase_person(conn, space, Person(uid=clicked[20]))
        event = conn.execute("SELECT id, uid FROM inbox WHERE space_id = ? AND uid = ? LIMIT 1",
                             (space, clicked[21])).fetchone()  # fmt: skip
        erasure.erase_events(conn, space, [event[0]], [])  # the uid stays
        deletion.mark_link(conn, space, "l2", T0)
        while not deletion.delete_link_batch(conn, space, link_ids[2], 7).done:
            pass
        deletion.mark_space(conn, other, T0)
        while not deletion.delete_space_batch(conn, other, 50).done:
            pass
    catch_up(conn, chunk=50)
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build(str(tmp_path_factory.mktemp("cube") / "x.db"))
    yield w
    w.conn.close()


# ------------------------------------------------------------------------------- the oracle


def _attrs(row: sqlite3.Row, slugs: dict[int, str]) -> dict[str, str | None]:
    subs = json.loads(row["sub_ids"]) if row["sub_ids"] else {}
    return {
        "link": slugs.get(row["link_id"]), "campaign": row["campaign_id"],
        "adset": row["adset_id"], "ad": row["ad_id"], "campaign_name": row["campaign_name"],
        "country": row["country"], "device": row["device"], "placement": row["placement"],
        "utm_source": row["utm_source"], "sub.creative": subs.get("creative"),
    }  # fmt: skip


def _read(w: World) -> Read:
    """The space's events (not test ones) by uid, and its clicks with their attributes."""
    if w.read is None:
        conn = w.conn
        slugs = dict(
            conn.execute("SELECT id, slug FROM links WHERE space_id = ?", (w.space,)).fetchall()
        )
        events: dict[str, list[sqlite3.Row]] = {}
        sql = "SELECT * FROM inbox WHERE space_id = ? AND uid IS NOT NULL AND test = 0"
        for e in conn.execute(sql, (w.space,)):
            events.setdefault(e["uid"], []).append(e)
        clicks = conn.execute("SELECT * FROM clicks WHERE space_id = ?", (w.space,)).fetchall()
        w.read = events, [(c, _attrs(c, slugs)) for c in clicks]
    return w.read


def oracle(w: World, q: GroupQuery) -> list[GroupCounts]:
    """Every group counted from the clicks and events themselves."""
    tz = zone(q.tz)
    events, clicks = _read(w)
    groups: dict[tuple[str | None, ...], dict[str, Any]] = {}
    bounds = [b * 1000 for b in TTC_BOUNDS_S]
    for c, attrs in clicks:
        at = c["created_ms"]
        if not q.window.from_ms <= at < q.window.to_ms:
            continue
        if not all(f.matches(attrs[f.dimension]) for f in q.filters.items):
            continue
        local = datetime.fromtimestamp(at / 1000, tz)
        midnight = datetime.combine(local.date(), time(0), tzinfo=tz)
        hour = iso_local(at - local.minute * 60_000 - at % 60_000, tz)
        times = {"day": iso_local(int(midnight.timestamp() * 1000), tz), "hour": hour}
        key = tuple(times.get(d, attrs.get(d)) for d in q.by)
        bins = len(TTC_BOUNDS_S) + 1
        g = groups.setdefault(key, {"clicks": 0, "uids": {s: 0 for s in STEPS}, "deposits": 0,
                                    "reversed": 0, "revenue": {}, "reversed_revenue": {},
                                    "ttc": {s: [0] * bins for s in STEPS}})  # fmt: skip
        g["clicks"] += 1
        mine = events.get(c["uid"], [])
        eids = {e["eid"] for e in mine if e["event"] == REVERSAL}
        day = local.date().isoformat()
        for step in STEPS:
            firsts = [e["occurred_at_ms"] for e in mine if e["event"] == step]
            if firsts:
                g["uids"][step] += 1
                hist = g["ttc"].setdefault(step, [0] * (len(TTC_BOUNDS_S) + 1))
                hist[bisect_right(bounds, min(firsts) - at)] += 1
        for e in mine:
            if e["event"] != "deposit":
                continue
            reversed_ = e["eid"] in eids
            g["deposits"] += 1
            g["reversed"] += reversed_
            if e["value"] is not None:
                for money, counts in (("revenue", True), ("reversed_revenue", reversed_)):
                    if counts:
                        days = g[money].setdefault(e["currency"], {})
                        days[day] = days.get(day, Decimal(0)) + Decimal(e["value"])
    out = []
    for key, g in groups.items():
        names = {NAME_OF[d]: w.names[(d, v)] for d, v in zip(q.by, key, strict=True)
                 if d in NAME_OF and v is not None and (d, v) in w.names}  # fmt: skip
        out.append(GroupCounts(
            key, g["clicks"], g["uids"], g["deposits"], g["uids"]["deposit"], g["revenue"],
            g["reversed"], g["reversed_revenue"], {s: tuple(h) for s, h in g["ttc"].items()},
            names,
        ))  # fmt: skip
    return sorted(out, key=_order)


def _order(g: GroupCounts) -> tuple[str, ...]:
    return tuple("" if v is None else v for v in g.key)


_H = {"link", "campaign", "adset", "ad"}


def _on_grid(q: GroupQuery) -> bool:
    """Whether the cube alone holds ``q``'s answer (cube_schema.LEVELS): the whole space, the
    H rows and one dimension alone (its value rows) in 15-minute buckets; another dimension's
    rows with link or campaign in UTC days only."""
    named = {d for d in q.by if d not in ("day", "hour")} | {f.dimension for f in q.filters.items}
    w = q.window
    if named <= {"link", "campaign", "adset", "ad"} or len(named - _H) == len(named) == 1:
        return w.from_ms % (15 * 60_000) == 0 and w.to_ms % (15 * 60_000) == 0
    return q.tz == "UTC" and "hour" not in q.by and w.from_ms % DAY == 0 and w.to_ms % DAY == 0


def _check(w: World, q: GroupQuery) -> None:
    want = oracle(w, q)
    got = cube_counts(w.conn, w.space, q)
    assert (got is not None) == _on_grid(q), q
    if got is not None:
        # revenue by the click's local day in every time zone (the money read by local days)
        assert sorted(got, key=_order) == want, q
    # the store's answer: the cube where it holds the buckets, the clicks scanned elsewhere
    assert sorted(cube.group_counts(w.conn, w.space, q, cube=True), key=_order) == want, q


def _q(by: tuple[str, ...] = (), *filters: Filter, tz: str = "UTC", days: tuple[int, int] = (0, 4),
       edge: int = 0) -> GroupQuery:  # fmt: skip
    window = Window(T0 + days[0] * DAY + edge, T0 + days[1] * DAY - edge)
    return GroupQuery(window, by, Filters(filters), tz)


QUERIES = [
    _q(),
    _q(("link",)),
    _q(("campaign",)),
    _q(("adset",)),
    _q(("ad",)),
    _q(("campaign", "ad")),
    _q(("country",)),
    _q(("device",)),
    _q(("sub.creative",)),
    _q(("campaign_name",)),
    _q(("link", "placement")),
    _q(("utm_source", "campaign")),
    _q(("campaign",), Filter("country", ("US", "CA"))),
    _q(("country",), Filter("campaign", ("c1", "c2"))),
    _q((), Filter("country", ("US",), exclude=True), Filter("link", ("l0",))),
    _q(("country",), Filter("country", ("DE",), exclude=True)),
    _q(("ad",), Filter("campaign", ("c3",), exclude=True)),
    _q(("day",)),
    _q(("hour",), days=(1, 2)),
    _q(("campaign", "day")),
    _q(("day", "country")),
    _q(("link",), days=(1, 2), edge=45 * 60_000),
    # edges of more than half a UTC day: the day's row less the 15-minute rows of the rest
    _q(edge=3 * H),
    _q(("link",), edge=3 * H + 45 * 60_000),
    _q(("campaign", "ad"), Filter("campaign", ("c1", "c2")), edge=3 * H),
    _q(("device",), days=(0, 3), edge=6 * H),
    # one dimension alone (its value rows, per 15 minutes): by hour, cut days, its clicks
    # without a value (the whole space's rows less its), excluded values, a sub-id
    _q(("country", "hour"), days=(1, 2)),
    _q(("country",), days=(0, 3), edge=6 * H + 15 * 60_000),
    _q((), Filter("country", ("DE",), exclude=True), days=(0, 3), edge=3 * H),
    _q(("hour",), Filter("country", ("US", "CA")), days=(2, 3)),
    _q(("sub.creative", "day"), edge=45 * 60_000),
    _q(("placement",), Filter("placement", ("feed",))),
    # scanned outside UTC (a dimension's rows are UTC days), and named as the cube names ids:
    # c1's latest name, given on day 3, though the window's clicks carry the older one
    _q(("utm_source", "campaign"), days=(0, 2)),
    # a dimension beside campaign over cut days: the day's rows less the rest of the day
    # counted from the clicks where that is lighter (cube_edges.whole_days), else the edge
    _q(("campaign",), Filter("country", ("US", "CA")), edge=3 * H),
    _q(("country", "campaign"), days=(0, 3), edge=10 * H + 15 * 60_000 + 7),
    _q(("campaign", "day"), Filter("country", ("US",), exclude=True), days=(0, 3), edge=20 * H),
]


@pytest.mark.parametrize("tz", TZS)
@pytest.mark.parametrize("q", QUERIES, ids=lambda q: ",".join(q.by) or "-")
def test_cube_counts_match_the_oracle(world: World, q: GroupQuery, tz: str) -> None:
    _check(world, GroupQuery(q.window, q.by, q.filters, tz))


#: Filters that keep values: the rows of the keys they keep are read by key
#: (store/sqlite/cube_probe.py), or, past ``MAX_PROBES``, in a range and filtered.
KEEPING = [
    _q(("campaign",), Filter("country", ("US", "CA")), Filter("campaign", ("c1", "c2"))),
    _q(("campaign", "ad"), Filter("campaign", ("c2",))),
    _q(("ad",), Filter("ad", ("a1", "a4"))),
    _q(("day",), Filter("link", ("l0", "l1")), tz="Asia/Kolkata"),
    _q(("hour",), Filter("campaign", ("c1",)), days=(1, 2)),
    _q(("link",), Filter("country", ("US",)), days=(0, 2), edge=45 * 60_000),
    _q(("country",), Filter("country", ("DE",), exclude=True), Filter("campaign", ("c1",))),
    _q((), Filter("campaign", ("no-such-campaign",))),
    _q(("campaign",), Filter("utm_source", ("fb",)), Filter("link", ("l1",))),
]


@pytest.mark.parametrize("probes", ["by-key", "in-a-range"])
@pytest.mark.parametrize("q", KEEPING, ids=lambda q: ",".join(q.by) or "-")
def test_a_filter_that_keeps_values_reads_by_key_and_in_a_range_alike(
    world: World, q: GroupQuery, probes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if probes == "in-a-range":
        monkeypatch.setattr(cube_probe, "MAX_PROBES", 0)
    _check(world, q)


def test_a_filter_that_keeps_values_reads_the_rows_of_its_keys_alone(world: World) -> None:
    """Probed by key, the report reads the cube rows of the keys the filter keeps: as many as
    those keys have in the window, not every key's rows of the window's days."""
    q = _q(("campaign",), Filter("campaign", ("c1",)))
    ids = [r[0] for r in world.conn.execute(
        "SELECT id FROM reports.cube_keys WHERE space_id = ? AND dim = '' AND campaign = 'c1'",
        (world.space,))]  # fmt: skip
    kept, every = (
        world.conn.execute(
            "SELECT count(*) FROM reports.cube WHERE space_id = ? AND dim = '' AND level = 1"
            f" AND bucket >= ? AND bucket < ?{extra}",
            (world.space, q.window.from_ms, q.window.to_ms),
        ).fetchone()[0]
        for extra in (f" AND key_id IN ({', '.join(map(str, ids))})", "")
    )
    assert 0 < kept < every
    read: list[str] = []
    world.conn.set_trace_callback(read.append)
    try:
        cube_counts(world.conn, world.space, q)
    finally:
        world.conn.set_trace_callback(None)
    (sql,) = [s for s in read if "FROM reports.cube c" in s]
    plan = [r[3] for r in world.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert any("key_id=?" in line and "bucket=?" in line for line in plan), plan


def test_a_window_off_the_15_minute_grid_or_activity_mode_is_not_answered(world: World) -> None:
    assert cube_counts(world.conn, world.space, _q(edge=60_000)) is None
    activity = GroupQuery(_q().window, mode=FunnelMode.ACTIVITY)
    assert cube_counts(world.conn, world.space, activity) is None
    assert cube_counts(world.conn, world.space, _q(("country", "device"))) is None
    assert cube_counts(world.conn, world.space, _q(("ad", "country"))) is None
    assert cube_counts(world.conn, world.space, _q(("country",), Filter("ad", ("x",)))) is None
    # a dimension with link or campaign: UTC days, not another zone's days, hours or a cut day
    by_campaign = Filter("campaign", ("c1",))
    assert cube_counts(world.conn, world.space, _q(("country",), by_campaign)) is not None
    assert cube_counts(world.conn, world.space, _q(("country",), by_campaign,
                                                   tz="Asia/Kolkata")) is None  # fmt: skip
    assert cube_counts(world.conn, world.space, _q(("country", "hour"), by_campaign)) is None
    assert cube_counts(world.conn, world.space, _q(("device", "link"), edge=6 * H)) is None
    assert cube_counts(world.conn, world.space, _q(("ad",), edge=6 * H)) is not None
    # one dimension alone: its value rows, per 15 minutes
    assert cube_counts(world.conn, world.space, _q(("country",), tz="Asia/Kolkata")) is not None
    assert cube_counts(world.conn, world.space, _q(("country", "hour"))) is not None
    assert cube_counts(world.conn, world.space, _q(("device",), edge=6 * H)) is not None


def test_a_report_builds_its_groups_with_the_collector_paused_and_leaves_it_as_it_was(
    world: World,
) -> None:
    """The cyclic garbage collector makes no pass while the cube's groups are built (its
    passes over them cost a tenth of an ad report), and is on again after, off if it was."""
    passes: list[str] = []

    def note(phase: str, info: dict[str, int]) -> None:
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:  # a pass while the reader builds the groups
            if frame.f_code.co_filename == cube.__file__ and frame.f_code.co_name in (
                "read", "_money", "answer"):  # fmt: skip
                passes.append(phase)
                return
            frame = frame.f_back

    threshold = gc.get_threshold()
    gc.callbacks.append(note)
    gc.set_threshold(1)  # a pass at every new object, were the collector on
    try:
        assert gc.isenabled()
        assert cube_counts(world.conn, world.space, _q(("campaign", "ad")))
        assert passes == [] and gc.isenabled()
        gc.disable()
        assert cube_counts(world.conn, world.space, _q(("ad",)))
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.set_threshold(*threshold)
        gc.callbacks.remove(note)


def _dump(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """The cube's rows by key values (key ids depend on the order keys were met; scales are
    never lowered, so they are left out)."""
    keys = "k.space_id, k.dim, k.value, k.link_id, k.campaign, k.adset, k.ad"
    join = "JOIN reports.cube_keys k ON k.id = t.key_id"
    rows: list[tuple[object, ...]] = []
    for table, columns in (
        ("cube", ", ".join(f"t.{c}" for c in (*COUNTS, "ttc"))),
        ("cube_money", "t.currency, t.n, t.units, t.fraction, t.rn, t.r_units, t.r_fraction"),
    ):
        sql = f"SELECT t.level, t.bucket, {keys}, {columns} FROM reports.{table} t {join}"
        rows += [(table, *r) for r in conn.execute(sql)]
    return sorted(rows, key=repr)


def test_catch_up_again_and_a_recount_of_every_uid_change_nothing(world: World) -> None:
    before = _dump(world.conn)
    assert before
    assert catch_up(world.conn) == 0
    with transaction(world.conn):
        cube_feed.touch(world.conn, "SELECT space_id, click_id FROM reports.cube_uids")
        assert cube_feed.apply(world.conn) == 0
    assert _dump(world.conn) == before


@pytest.mark.parametrize(
    "share",
    [
        cube_shares.Share(1_700_000_000_000, [("", 3), ("country", 9), ("sub.é", 12)], {}),
        cube_shares.Share(
            5, [("", 1)], {"contact": 7, "deposit": 9}, 2, 1, {"EUR": [2, 30, 5, 2, 1, 10, 0, 2]}
        ),
    ],
)
def test_a_share_is_written_as_the_json_of_its_fields(share: Any) -> None:
    """A share's text is the JSON of its fields in a fixed order, as earlier releases wrote
    it (a recount compares texts), whichever way it is put together."""
    keys_text: dict[Any, str] = {}
    text = share.text(keys_text)
    fields = [share.click_ms, share.keys, share.firsts, share.deposits, share.reversed]
    assert text == json.dumps([*fields, share.money or {}], separators=(",", ":"))
    assert share.text(keys_text) == text  # its keys' JSON from the round's cache
    assert cube_shares.Share.of(text).text({}) == text


def test_a_cube_rebuilt_from_nothing_equals_the_one_built_as_data_came(
    world: World, tmp_path: Path
) -> None:
    before = _dump(world.conn)
    copy = str(tmp_path / "copy.db")
    world.conn.execute("VACUUM main INTO ?", (copy,))
    assert not Path(reports_path(copy)).exists()
    rebuilt = with_rollup(open_db(copy), copy, cube=True)
    try:
        catch_up(rebuilt)
        assert _dump(rebuilt) == before
        w = World(rebuilt, copy, world.space, world.names)
        for q in QUERIES:  # the names: also of clicks erased since (not in the copy)
            if not set(q.by) & set(NAME_OF):
                _check(w, GroupQuery(q.window, q.by, q.filters, "Asia/Kolkata"))
    finally:
        rebuilt.close()


def _late_click_and_deposit(conn: sqlite3.Connection, path: str, space: int) -> None:
    """A click on day 1 and its uid's deposit an hour later (in the caller's transaction)."""
    w = World(conn, path, space)
    live = "SELECT id FROM links WHERE space_id = ? AND deleted_ms IS NULL"
    links_ = [r[0] for r in conn.execute(live, (space,))]
    _click(w, space, "late-1", random.Random(5), T0 + DAY + 5, links_)
    _event(w, space, 900_001, "late-1", "deposit", T0 + DAY + H, value="7", currency="USD")


@contextmanager
def _built_from_nothing(conn: sqlite3.Connection, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A copy of ``conn``'s main file with its rollup and cube built from nothing."""
    fresh = str(tmp_path / "fresh.db")
    conn.execute("VACUUM main INTO ?", (fresh,))
    rebuilt = with_rollup(open_db(fresh), fresh, cube=True)
    try:
        catch_up(rebuilt)
        yield rebuilt
    finally:
        rebuilt.close()


def _as_format_13(conn: sqlite3.Connection) -> None:
    """The rollup as format 13 kept it: its cube without hour rows nor C rows (per link and
    campaign)."""
    with transaction(conn):
        for table in ("cube", "cube_money"):
            conn.execute(f"DELETE FROM reports.{table} WHERE level = ? OR dim = ?",
                         (LEVEL_HOUR, cube_schema.C))  # fmt: skip
        conn.execute("DELETE FROM reports.cube_keys WHERE dim = ?", (cube_schema.C,))
        conn.execute("UPDATE reports.rollup_format SET version = 13")


def test_a_format_13_cube_gets_its_hour_and_campaign_rows_in_place(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade over a format-13 rollup (no hour rows, no C rows) sums them from its rows in
    place: the cube then equals one built from nothing, and goes on as one after a click and
    events."""
    copy = str(tmp_path / "old.db")
    world.conn.execute("VACUUM main INTO ?", (copy,))
    world.conn.execute("VACUUM reports INTO ?", (reports_path(copy),))
    old = with_rollup(open_db(copy), copy, cube=True)
    try:
        full = _dump(old)
        _as_format_13(old)
        assert len(_dump(old)) < len(full)
    finally:
        old.close()
    caplog.set_level("WARNING")
    upgraded = with_rollup(open_db(copy), copy, cube=True)  # the upgrade
    try:
        assert "summing them from its rows" in caplog.text
        (version,) = upgraded.execute("SELECT version FROM reports.rollup_format").fetchone()
        assert version == CUBE_FORMAT and cube_schema.ready(upgraded)
        assert _dump(upgraded) == full
        with transaction(upgraded):
            _late_click_and_deposit(upgraded, copy, world.space)
        catch_up(upgraded)
        with _built_from_nothing(upgraded, tmp_path) as rebuilt:
            assert _dump(upgraded) == _dump(rebuilt)
    finally:
        upgraded.close()


def _as_format_12(conn: sqlite3.Connection) -> None:
    """The rollup as format 12 kept it: the cube's uids (``cube_uids``, ``cube_touched``) keyed
    by uid, not by their click's id (its tables as that format made them), and its cube as
    format 13's."""
    _as_format_13(conn)
    with transaction(conn):
        conn.execute(
            "CREATE TABLE reports.by_uid (space_id INTEGER NOT NULL, uid TEXT NOT NULL,"
            " link_id INTEGER, state TEXT NOT NULL, PRIMARY KEY (space_id, uid)) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO reports.by_uid SELECT c.space_id, c.uid, u.link_id, u.state"
            " FROM reports.cube_uids u JOIN main.clicks c ON c.id = u.click_id"
        )
        conn.execute("DROP TABLE reports.cube_uids")
        conn.execute("ALTER TABLE reports.by_uid RENAME TO cube_uids")
        conn.execute("CREATE INDEX reports.cube_uids_link ON cube_uids(space_id, link_id)")
        for statement in CLICK_COUNTS:
            conn.execute(statement)
        conn.execute("DROP TABLE reports.cube_touched")
        conn.execute(
            "CREATE TABLE reports.cube_touched (space_id INTEGER NOT NULL, uid TEXT NOT NULL,"
            " PRIMARY KEY (space_id, uid)) WITHOUT ROWID"
        )
        conn.execute("UPDATE reports.rollup_format SET version = 12")


def test_a_format_12_cube_is_keyed_by_click_in_place_and_equals_one_built_from_nothing(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade over a format-12 rollup (uids keyed by uid) keys its uids by their click in
    place, its cube's rows kept: with a uid erased before the upgrade that the rollup has not
    applied yet (its removal, as that xtracker wrote it, names no click: it is taken off at
    the upgrade), a click and events after it, the cube then equals one built from nothing."""
    copy = str(tmp_path / "old.db")
    world.conn.execute("VACUUM main INTO ?", (copy,))
    world.conn.execute("VACUUM reports INTO ?", (reports_path(copy),))
    old = with_rollup(open_db(copy), copy, cube=True)
    try:
        _as_format_12(old)
        clicked = [r[0] for r in old.execute(
            "SELECT uid FROM clicks c WHERE space_id = ? AND EXISTS (SELECT 1 FROM inbox i"
            " WHERE i.space_id = c.space_id AND i.uid = c.uid) ORDER BY id", (world.space,)
        )]  # fmt: skip
        with transaction(old):
            erasure.erase_person(old, world.space, Person(uid=clicked[3]))
            old.execute("UPDATE report_removals SET click_id = NULL")  # format 12's entry
            _late_click_and_deposit(old, copy, world.space)
            _event(World(old, copy, world.space), world.space, 900_002, clicked[4],
                   "registration", T0 + 2 * DAY)  # fmt: skip
        uids = old.execute("SELECT count(*) FROM reports.cube_uids").fetchone()[0]
    finally:
        old.close()
    caplog.set_level("WARNING")
    upgraded = with_rollup(open_db(copy), copy, cube=True)  # the upgrade
    try:
        assert "keying them by their click" in caplog.text
        (version,) = upgraded.execute("SELECT version FROM reports.rollup_format").fetchone()
        assert version == CUBE_FORMAT
        assert upgraded.execute("SELECT count(*) FROM reports.cube_uids").fetchone()[0] == uids - 1
        catch_up(upgraded)
        with _built_from_nothing(upgraded, tmp_path) as rebuilt:
            assert _dump(upgraded) == _dump(rebuilt)
            # each uid by its click (its share but for its keys' ids, the order they came in)
            uids_ = ("SELECT click_id, space_id, link_id, json_remove(state, '$[1]')"
                     " FROM reports.cube_uids ORDER BY click_id")  # fmt: skip
            a, b = ([tuple(r) for r in c.execute(uids_)] for c in (upgraded, rebuilt))
            assert a == b
    finally:
        upgraded.close()


@pytest.mark.parametrize("tz", TZS)
@pytest.mark.parametrize(
    "q", [*QUERIES, _q(("campaign", "ad"), days=(0, 3), edge=7 * 60_000 + 1),
          _q(("campaign",), days=(0, 2))],
    ids=lambda q: ",".join(q.by) or "-",
)  # fmt: skip
def test_the_store_answers_as_its_scan_does(world: World, q: GroupQuery, tz: str) -> None:
    """``Store.group_counts`` with the cube on (store/sqlite/cube.py ``group_counts``: the cube,
    the scanned edges of a window off the grid) and the scan (store/sqlite/groups.py) give the
    same groups with the same conventions (every step in ``uids`` and ``ttc``, first deposits,
    revenue by the click's local day), but for the names: from the cube, each id's latest name
    so far; from the scan, the latest among the window's clicks (docs/reports.md): c1, renamed
    on day 3, is "c1 v2" from the cube over days 0-2 too."""
    q = replace(q, tz=tz)
    found = cube.group_counts(world.conn, world.space, q, cube=True)
    scanned = groups.group_counts(world.conn, world.space, q)

    def unnamed(gs: list[GroupCounts]) -> list[GroupCounts]:
        return sorted((replace(g, names={}) for g in gs), key=_order)

    assert unnamed(found) == unnamed(scanned), q
    for g in found:
        for d, v in zip(q.by, g.key, strict=True):
            if d in NAME_OF and v is not None:
                assert g.names[NAME_OF[d]] == world.names[(d, v)]


@pytest.mark.parametrize(
    "window",
    [Window(T0, T0 + 4 * DAY), Window(T0 + DAY + 7 * 60_000 + 1, T0 + 3 * DAY - 1),
     Window(T0 + 2 * H, T0 + 2 * H + 1), Window(T0 + 5 * DAY, T0 + 6 * DAY)],
    ids=["4-days", "off-grid", "1-ms", "empty"],
)  # fmt: skip
def test_the_cohort_funnel_from_the_cube_equals_the_one_from_the_rows(
    world: World, window: Window
) -> None:
    """``/reports/funnel?mode=cohort`` reads the cube when the rollup has it (a bounded number of
    rows; from the rollup's rows it reads every uid of the window's clicks): the same numbers,
    for the space and for each link."""
    link_ids = [r[0] for r in world.conn.execute(
        "SELECT id FROM links WHERE space_id = ?", (world.space,))]  # fmt: skip
    assert link_ids
    for link_id in [None, *link_ids]:
        assert reports._cohort_from_cube(world.conn, world.space, window, link_id) is not None
        args = (world.conn, world.space, window)
        from_cube = reports.funnel_counts(*args, link_id=link_id, mode=COHORT, cube=True)
        from_rows = reports.funnel_counts(*args, link_id=link_id, mode=COHORT, cube=False)
        assert from_cube == from_rows, (window, link_id)


def test_a_filter_on_campaigns_scans_the_edges_of_their_links_alone(tmp_path: Path) -> None:
    """A report on a dimension beside a campaign filter (by country, ``campaign=c1``) off UTC
    days: the cube answers the whole days, and the edges are scanned along the index by link,
    the links of c1's clicks alone (cube.py ``_links_kept``: its H keys', and those of the clicks
    committed since the catch-up: here c1's first click on a third link). The answer, caught
    up, is the full scan's; a campaign with a click without a link is scanned as before."""
    path = str(tmp_path / "links.db")
    conn = with_rollup(open_db(path), path, cube=True)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        l1, l2, l3, l4 = (links.create_link(conn, space, f"l{i}", spec, T0).id for i in range(4))
    plan = [(l1, "c1"), (l2, "c1"), (l3, "c2"), (l1, "c2"), (None, "c3"), (l4, "c3")]
    rng = random.Random(5)

    def click(n: int, link: int | None, campaign: str) -> None:
        insert_click(conn, ClickDraft(
            space_id=space, uid=f"u{n}", created_ms=T0 + rng.randrange(3 * DAY), source="api",
            link_id=link, country=rng.choice(["US", "CA", None]),
            fields={"campaign_id": campaign},
        ))  # fmt: skip
        if n % 2:
            insert_event(conn, InboxDraft(
                space_id=space, dedup_key=f"k{n}".encode(), event="contact", uid=f"u{n}",
                tg_id=None, eid=str(n), value=None, currency=None, occurred_at_ms=T0 + 3 * DAY,
                received_ms=T0 + 3 * DAY, source="api",
            ))  # fmt: skip

    with transaction(conn):
        for n in range(120):
            click(n, *plan[n % len(plan)])
    catch_up(conn)
    with transaction(conn):
        click(1000, l3, "c1")  # committed after the catch-up: on a link c1 had no click on
    window = Window(T0 + 5 * H + 7 * 60_000, T0 + 3 * DAY - 3 * H)  # a UTC day inside
    by_country = GroupQuery(window, ("country",), Filters((Filter("campaign", ("c1",)),)))
    conn.execute("BEGIN")
    try:
        assert cube._links_kept(conn, space, by_country) == sorted([l1, l2, l3])
        no_link = replace(by_country, filters=Filters((Filter("campaign", ("c3",)),)))
        assert cube._links_kept(conn, space, no_link) is None
    finally:
        conn.execute("ROLLBACK")
    catch_up(conn)  # as a report does first
    two_dims = replace(by_country, by=("country", "utm_source"))  # scanned whole, by link too
    for q in (by_country, no_link, replace(by_country, by=("campaign", "day")), two_dims):
        want = sorted(groups.group_counts(conn, space, q), key=_order)
        assert sorted(cube.group_counts(conn, space, q, cube=True), key=_order) == want, q
        assert sum(g.clicks for g in want) > 0
    conn.close()


def test_an_edge_whose_rest_of_the_day_is_lighter_is_read_as_the_day_less_the_rest() -> None:
    """cube_segments.split: an edge is read as its UTC day's row less the hour rows of the rest
    of the day when the rest holds fewer clicks (``weigh``), such as the day a window that ends
    now ends in (its rest is still to come); as before, by half a day, without a weigh."""
    lo, hi = T0 + 19 * H, T0 + 7 * DAY + 5 * H  # a week ending at 05:00, starting at 19:00
    quiet_after = {T0 + 7 * DAY: (T0 + 7 * DAY, T0 + 7 * DAY + 5 * H)}  # clicks until 05:00

    def weigh(a: int, b: int) -> int:  # a click a minute, until 05:00 on the last day
        start, end = quiet_after.get(a - a % DAY, (a - a % DAY, a - a % DAY + DAY))
        return max(0, min(b, end) - max(a, start)) // 60_000

    tail = [s for s in cube_segments.split(lo, hi, weigh=weigh) if s.lo >= T0 + 7 * DAY]
    assert [(s.level, s.lo, s.hi, s.sign) for s in tail] == [
        (LEVEL_DAY, T0 + 7 * DAY, T0 + 8 * DAY, 1),
        (LEVEL_HOUR, hi, T0 + 8 * DAY, -1),
    ]
    head = [s for s in cube_segments.split(lo, hi, weigh=weigh) if s.hi <= T0 + DAY]
    assert [(s.level, s.lo, s.hi) for s in head] == [(LEVEL_HOUR, lo, T0 + DAY)]  # 5 h < 19 h
    evenly = [s for s in cube_segments.split(lo, hi) if s.lo >= T0 + 7 * DAY]
    assert [(s.level, s.lo, s.hi) for s in evenly] == [(LEVEL_HOUR, T0 + 7 * DAY, hi)]
    # off the hour: whole hours, and 15 minutes before and after them
    q = 15 * 60_000
    off = cube_segments.split(lo + 3 * q, hi + 2 * q, weigh=weigh)
    assert [(s.level, s.lo, s.hi, s.sign) for s in off] == [
        (LEVEL_15M, lo + 3 * q, lo + H, 1),
        (LEVEL_HOUR, lo + H, T0 + DAY, 1),
        (LEVEL_DAY, T0 + DAY, T0 + 7 * DAY, 1),
        (LEVEL_DAY, T0 + 7 * DAY, T0 + 8 * DAY, 1),
        (LEVEL_15M, hi + 2 * q, hi + H, -1),
        (LEVEL_HOUR, hi + H, T0 + 8 * DAY, -1),
    ]
    assert cube_segments.cover(T0 + q, T0 + q * 3) == [(LEVEL_15M, T0 + q, T0 + 3 * q)]


def test_a_report_by_link_or_campaign_reads_the_rows_per_campaign(world: World) -> None:
    """By link or campaign (or filtered by them), the cube reads its C rows (the H rows summed
    per link and campaign): with the H rows gone (in a transaction rolled back), such reports
    answer as before, the oracle's numbers, while a report by ad finds nothing."""
    by = [_q(("link",)), _q(("campaign",), edge=15 * 60_000 * 5),
          _q(("link", "campaign"), Filter("campaign", ("c1",), exclude=True)),
          _q(("hour",), Filter("link", ("l0",)), days=(1, 2))]  # fmt: skip
    before = {q: cube_counts(world.conn, world.space, q) for q in by}
    world.conn.execute("BEGIN")
    try:
        world.conn.execute("DELETE FROM reports.cube WHERE dim = ?", (cube_schema.H,))
        for q in by:
            assert before[q] and cube_counts(world.conn, world.space, q) == before[q], q
        assert cube_counts(world.conn, world.space, _q(("ad",))) == []
    finally:
        world.conn.execute("ROLLBACK")
    for q in by:
        _check(world, q)


def test_by_hour_the_cube_reads_hour_rows_where_each_is_a_local_hour() -> None:
    """cube_segments.segments by hour: hour rows (15 minutes at the window's ends off the hour)
    in a zone whose hours are UTC hours; 15-minute rows in +5:30, whose local hours are not."""
    q = 15 * 60_000
    window = Window(T0 + 2 * q, T0 + DAY + q)
    utc = cube_segments.segments(GroupQuery(window, ("hour",)), zone("UTC"))
    assert [(s.level, s.lo, s.hi) for s in utc] == [
        (LEVEL_15M, T0 + 2 * q, T0 + H), (LEVEL_HOUR, T0 + H, T0 + DAY),
        (LEVEL_15M, T0 + DAY, T0 + DAY + q)]  # fmt: skip
    kolkata = cube_segments.segments(GroupQuery(window, ("hour",)), zone("Asia/Kolkata"))
    assert [(s.level, s.lo, s.hi) for s in kolkata] == [(LEVEL_15M, window.from_ms, window.to_ms)]


def test_a_window_that_ends_after_the_last_click_counts_as_the_scan_does(tmp_path: Path) -> None:
    """The clicks stop at 05:00 of the last day, the window ends at 06:07 (as a report of the
    last days asked now): its last day is read as that day's row less its empty rest, and
    every grouping answers as the scan does."""
    path = str(tmp_path / "now.db")
    conn = with_rollup(open_db(path), path, cube=True)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        link = links.create_link(conn, space, "l", spec, T0).id
    rng = random.Random(9)
    end = T0 + 2 * DAY + 5 * H
    with transaction(conn):
        for n in range(300):
            at = T0 + rng.randrange(end - T0)
            ad = f"a{rng.randrange(6)}"
            insert_click(conn, ClickDraft(
                space_id=space, uid=f"u{n}", created_ms=at, source="api", link_id=link,
                country=rng.choice(["US", "DE", None]),
                fields={"campaign_id": f"c{ad[1]}", "ad_id": ad},
            ))  # fmt: skip
            if n % 3:
                insert_event(conn, InboxDraft(
                    space_id=space, dedup_key=f"k{n}".encode(), event="deposit", uid=f"u{n}",
                    tg_id=None, eid=str(n), value="5.25", currency="USD",
                    occurred_at_ms=at + H, received_ms=at + H, source="api",
                ))  # fmt: skip
    catch_up(conn)
    window = Window(T0 + 6 * H + 7 * 60_000, end + H + 7 * 60_000)
    conn.execute("BEGIN")
    try:
        weigh = cube_segments.Weights(conn, space)
        last = [s for s in cube_segments.split(window.from_ms, window.to_ms // (15 * 60_000)
                                                * 15 * 60_000, weigh=weigh)
                if s.lo >= T0 + 2 * DAY]  # fmt: skip
        assert last[0].level == LEVEL_DAY and last[1].sign == -1
    finally:
        conn.execute("ROLLBACK")
    for by in ((), ("ad",), ("campaign", "ad"), ("country",), ("hour",)):
        q = GroupQuery(window, by)
        want = sorted(groups.group_counts(conn, space, q), key=_order)
        assert sorted(cube.group_counts(conn, space, q, cube=True), key=_order) == want, by
        assert sum(g.clicks for g in want) > 0
    conn.close()


def test_a_new_click_that_nothing_else_marked_is_counted_without_reading_steps(
    tmp_path: Path,
) -> None:
    """Once the cube is built, a new click that no event, bind or removal marked in its round,
    and that has no share yet, is *fresh*: its uid's steps are not looked up (cube_feed
    ``feed_clicks``). Shown with a step row no write could have made (a row for that uid
    before any of its events): the fresh click is counted without it; the same uid marked
    again (a recount) reads it. A click that comes after its uid's events is not fresh, nor
    is one whose events a round fed before the clicks' feed read it."""
    path = str(tmp_path / "fresh.db")
    conn = with_rollup(open_db(path), path, cube=True)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    with transaction(conn):
        space = spaces.create_space(conn, "a", T0).space.id
        link = links.create_link(conn, space, "l", spec, T0).id
    catch_up(conn)  # built: nothing to read

    def click(uid: str, at: int) -> None:
        insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=at, source="api",
                                      link_id=link, fields={"campaign_id": "c1"}))  # fmt: skip

    def contact(n: int, uid: str, at: int) -> None:
        insert_event(conn, InboxDraft(
            space_id=space, dedup_key=f"k{n}".encode(), event="contact", uid=uid, tg_id=None,
            eid=str(n), value=None, currency=None, occurred_at_ms=at, received_ms=at,
            source="api",
        ))  # fmt: skip

    def contacts() -> int:
        q = GroupQuery(Window(T0, T0 + DAY), ("campaign",))
        (g,) = cube.group_counts(conn, space, q, cube=True)
        return g.uids["contact"]

    with transaction(conn):
        click("fresh", T0 + H)
        conn.execute(  # what no write makes: a step of a uid whose click is not read yet
            "INSERT INTO reports.report_steps (space_id, link_id, event, at_ms, inbox_id, uid)"
            " VALUES (?, ?, 'contact', ?, 999999, 'fresh')", (space, link, T0 + 2 * H),
        )  # fmt: skip
    catch_up(conn)
    assert contacts() == 0  # the fresh click's steps were not read
    with transaction(conn):
        cube_feed.touch(conn, "SELECT space_id, click_id FROM reports.cube_uids")
        cube_feed.apply(conn)
    assert contacts() == 1  # marked again: its share worked out with its steps
    with transaction(conn):
        conn.execute("DELETE FROM reports.report_steps WHERE inbox_id = 999999")
        cube_feed.touch(conn, "SELECT space_id, click_id FROM reports.cube_uids")
        cube_feed.apply(conn)
    assert contacts() == 0

    with transaction(conn):  # the events first, the click after them: not fresh
        contact(1, "late", T0 + 3 * H)
    catch_up(conn)
    with transaction(conn):
        click("late", T0 + 2 * H)
    catch_up(conn)
    assert contacts() == 1
    with transaction(conn):  # a click, then its event, both read in one round: not fresh
        click("both", T0 + 4 * H)
        contact(2, "both", T0 + 5 * H)
    catch_up(conn)
    assert contacts() == 2
    for by in ((), ("campaign",), ("hour",)):
        q = GroupQuery(Window(T0, T0 + DAY), by)
        want = sorted(groups.group_counts(conn, space, q), key=_order)
        assert sorted(cube.group_counts(conn, space, q, cube=True), key=_order) == want, by
    conn.close()


class _Snapshot:
    """A space with a link, written by a connection of its own (the server's writer), and a
    rollup with the cube (the catch-up's connection)."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "two.db")
        self.writer = open_db(self.path)
        self.writer.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL keeps what is written
        self.writer.execute("PRAGMA busy_timeout = 200")
        self.rollup = with_rollup(open_db(self.path), self.path, cube=True)
        with transaction(self.writer):
            self.space = spaces.create_space(self.writer, "a", T0).space.id
            spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
            self.link = links.create_link(self.writer, self.space, "l", spec, T0).id
        catch_up(self.rollup)

    def click(self, uid: str, at: int) -> None:
        with transaction(self.writer):
            insert_click(self.writer, ClickDraft(
                space_id=self.space, uid=uid, created_ms=at, source="api", link_id=self.link,
                fields={"campaign_id": "c1", "country": "US"},
            ))  # fmt: skip

    def contact(self, n: int, uid: str, at: int) -> None:
        with transaction(self.writer):
            insert_event(self.writer, InboxDraft(
                space_id=self.space, dedup_key=f"k{n}".encode(), event="contact", uid=uid,
                tg_id=None, eid=str(n), value=None, currency=None, occurred_at_ms=at,
                received_ms=at, source="api",
            ))  # fmt: skip

    def counts(self) -> tuple[int, int]:
        q = GroupQuery(Window(T0, T0 + DAY), ("country",))
        (g,) = cube.group_counts(self.rollup, self.space, q, cube=True)
        return g.clicks, g.uids["contact"]


def test_a_rounds_shares_are_worked_out_without_the_main_files_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cube, a catch-up round works out its uids' shares (most of its time) in a
    transaction of its own that reads only the rollup's file, from the clicks its first
    transaction copied: meanwhile the server's writer can write and start its WAL over (a
    TRUNCATE checkpoint is not kept waiting by the round)."""
    world = _Snapshot(tmp_path)
    for n in range(3):
        world.click(f"u{n}", T0 + n * H)
    world.contact(1, "u0", T0 + 2 * H)
    busy: list[int] = []
    real = cube_feed.apply

    def apply(conn: sqlite3.Connection, *, read: bool = True) -> int:
        if not busy:  # a write while the first round's shares are worked out
            world.click("during", T0 + 5 * H)
        busy.append(world.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
        return real(conn, read=read)

    monkeypatch.setattr(cube_feed, "apply", apply)
    catch_up(world.rollup)
    assert busy and set(busy) == {0}
    assert world.counts() == (4, 1)  # the click written meanwhile: the next round's


def test_a_round_cut_short_between_its_transactions_is_applied_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round whose second transaction failed (a crash, a full disk) left its marks: the next
    round works them out, and a click it took as fresh (no steps yet) is not taken so again
    once an event of its uid came in between."""
    world = _Snapshot(tmp_path)
    world.click("u0", T0 + H)

    def fail(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(rollup, "_apply_cube", fail)
    with pytest.raises(sqlite3.OperationalError):
        catch_up(world.rollup)
    monkeypatch.undo()
    world.contact(1, "u0", T0 + 2 * H)
    catch_up(world.rollup)
    assert world.counts() == (1, 1)
    rebuilt = str(tmp_path / "rebuilt.db")
    world.writer.execute("VACUUM INTO ?", (rebuilt,))
    again = with_rollup(open_db(rebuilt), rebuilt, cube=True)
    catch_up(again)
    assert _dump(again) == _dump(world.rollup)
