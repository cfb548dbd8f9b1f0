"""The grouped report (services/groups.py) against a brute-force oracle: random clicks with
campaigns, ads and countries over three days, events at any time (before and after the window,
on its edges), deposits in two currencies, reversals, test events, uids without a click, costs
in two currencies with exchange rates; the right answers computed here in plain Python from
what was written, in both modes and in three time zones; with the report cube
(XTRACKER_REPORT_CUBE) off and on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.server.services_env import Env, services
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.entities import InboxDraft
from xtracker_server.services import OPERATOR, Invalid
from xtracker_server.services import costs as cost_services
from xtracker_server.services.groups import groups_report
from xtracker_server.services.report_query import ReportQuery
from xtracker_wire import CANONICAL_EVENTS, REVERSAL

H = 3_600_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
FROM, TO = T0 + 6 * H, T0 + 54 * H  # not on a day's edge in any of the zones


@dataclass(frozen=True)
class Click:
    uid: str
    at: int
    dims: dict[str, str | None]


@dataclass(frozen=True)
class Event:
    uid: str
    event: str
    at: int
    eid: str | None = None
    value: str | None = None
    currency: str | None = None
    test: bool = False


@dataclass
class World:
    space: int
    clicks: list[Click]
    events: list[Event]


def _draft(space: int, e: Event, n: int) -> InboxDraft:
    key = dedup_key(space, e.uid, None, e.event, e.eid or f"n{n}", e.at)
    return InboxDraft(
        space_id=space, dedup_key=(b"T" if e.test else b"") + key, event=e.event, uid=e.uid,
        tg_id=None, eid=e.eid, value=e.value, currency=e.currency, occurred_at_ms=e.at,
        received_ms=e.at, source="api", test=e.test,
    )  # fmt: skip


def _seed(env: Env) -> World:
    rng = random.Random(17)
    space = env.space().space.id
    store = env.ctx.store
    clicks: list[Click] = []
    events: list[Event] = []
    edges = [FROM, TO, FROM - 1, TO - 1]
    for u in range(160):
        uid = f"u{u:03d}"
        at = edges[u] if u < len(edges) else T0 + rng.randrange(0, 72 * H)
        campaign = rng.choice(["c1", "c2", "c3", None])
        dims = {
            "campaign_id": campaign,
            "ad_id": None if campaign is None else f"{campaign}-a{rng.randrange(3)}",
            "campaign_name": None if campaign is None else f"name of {campaign} #{u}",
            "country": rng.choice(["US", "CA", "DE", None]),
        }
        if u % 29 != 5:  # some uids never get a click
            clicks.append(Click(uid, at, dims))
        for n in range(rng.randrange(0, 6)):
            step = rng.choice(CANONICAL_EVENTS)
            when = at + rng.randrange(-2 * H, 60 * H)
            if step == "deposit":
                eid = f"{uid}-d{n}"
                value = rng.choice(["10", "2.50", "0.00000001", "99.99"])
                currency = rng.choice(["USD", "EUR"])
                events.append(Event(uid, "deposit", when, eid, value, currency))
                if rng.random() < 0.25:
                    events.append(Event(uid, REVERSAL, when + rng.randrange(H, 30 * H), eid))
                if rng.random() < 0.1:  # a test deposit with the same eid counts nowhere
                    events.append(Event(uid, "deposit", when, eid, "1000", currency, test=True))
            else:
                events.append(Event(uid, step, when, test=rng.random() < 0.05))
    for c in clicks:
        fields = {k: v for k, v in c.dims.items() if v is not None and k != "country"}
        draft = ClickDraft(space_id=space, uid=c.uid, created_ms=c.at, source="api",
                           country=c.dims["country"], fields=fields)  # fmt: skip
        env.run(store.record_click(draft))
    env.run(store.record_events([_draft(space, e, n) for n, e in enumerate(events)]))
    return World(space, clicks, events)


# ----------------------------------------------------------------------------- the oracle

_DIM = {"campaign": "campaign_id", "ad": "ad_id", "country": "country"}


def _bucket(at: int, dimension: str, tz: ZoneInfo) -> str:
    local = datetime.fromtimestamp(at / 1000, tz)
    if dimension == "day":
        local = local.replace(hour=0)
    return local.replace(minute=0, second=0, microsecond=0).isoformat()


Groups = dict[tuple[Any, ...], dict[str, Any]]


def _oracle(w: World, by: tuple[str, ...], mode: str, tz: ZoneInfo) -> Groups:
    """Per group: clicks, uids per step, deposits, first deposits, revenue, reversed."""
    click_of = {c.uid: c for c in w.clicks}
    real = [e for e in w.events if not e.test]
    reversed_ = {(e.uid, e.eid) for e in real if e.event == REVERSAL}
    first: dict[str, Event] = {}
    for e in sorted((e for e in real if e.event == "deposit"), key=lambda e: e.at):
        first.setdefault(e.uid, e)

    def key(c: Click, at: int) -> tuple[Any, ...]:
        return tuple(_bucket(at, d, tz) if d in ("day", "hour") else c.dims[_DIM[d]] for d in by)

    out: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"clicks": 0, "uids": defaultdict(set), "deposits": 0, "first": 0,
                 "revenue": defaultdict(Decimal), "reversed": defaultdict(Decimal), "rev_n": 0}
    )  # fmt: skip
    for c in w.clicks:
        if FROM <= c.at < TO:
            out[key(c, c.at)]["clicks"] += 1
    for e in real:
        of = click_of.get(e.uid)
        if of is None or e.event == REVERSAL:
            continue
        if mode == "cohort" and not FROM <= of.at < TO:
            continue
        if mode == "activity" and not FROM <= e.at < TO:
            continue
        g = out[key(of, of.at if mode == "cohort" else e.at)]
        g["uids"][e.event].add(e.uid)
        if e.event == "deposit":
            g["deposits"] += 1
            g["first"] += first[e.uid] is e
            g["revenue"][e.currency] += Decimal(e.value or "0")
            if (e.uid, e.eid) in reversed_:
                g["rev_n"] += 1
                g["reversed"][e.currency] += Decimal(e.value or "0")
    return out


def _money(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {c: format(v, "f") for c, v in sorted(amounts.items()) if c}


def _check(row: dict[str, Any], want: dict[str, Any]) -> None:
    assert row["clicks"] == want["clicks"]
    steps = {s["step"]: s["uids"] for s in row["steps"]}
    assert steps == {"click": want["clicks"],
                     **{e: len(want["uids"][e]) for e in CANONICAL_EVENTS}}  # fmt: skip
    assert (row["deposits"], row["first_deposits"]) == (want["deposits"], want["first"])
    assert row["revenue"] == _money(want["revenue"])
    assert (row["reversed_deposits"], row["reversed_revenue"]) == (
        want["rev_n"], _money(want["reversed"]),
    )  # fmt: skip


@pytest.fixture(scope="module", params=[False, True], ids=["scan", "cube"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Env, World]]:
    with services(Path(tmp_path_factory.mktemp("groups")), report_cube=request.param) as env:
        yield env, _seed(env)


def _report(env: Env, w: World, **params: Any) -> dict[str, Any]:
    tz = params.pop("tz", None)
    query = ReportQuery(from_=str(FROM), to=str(TO), tz=tz)
    return env.run(groups_report(OPERATOR, env.ctx, w.space, query=query,
                                 **{"limit": 10_000, **params}))  # fmt: skip


def _key(row: dict[str, Any], by: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row["key"][d] for d in by)


@pytest.mark.parametrize("mode", ["cohort", "activity"])
@pytest.mark.parametrize(
    ("by", "tz"),
    [(("campaign",), "UTC"), (("country",), "America/New_York"), (("day",), "Asia/Kolkata"),
     (("hour",), "Asia/Kolkata"), (("campaign", "day"), "America/New_York")],
)  # fmt: skip
def test_every_group_matches_the_oracle(
    seeded: tuple[Env, World], by: tuple[str, ...], tz: str, mode: str
) -> None:
    env, w = seeded
    data = _report(env, w, by=",".join(by), mode=mode, tz=tz)
    want = _oracle(w, by, mode, ZoneInfo(tz))
    seen = {}
    for row in data["rows"]:
        for child in row.get("children", [row]):
            seen[_key(child, by)] = child
    assert set(seen) == set(want)
    for k, row in seen.items():
        _check(row, want[k])
    if len(by) == 2 and mode == "cohort":  # the outer rows add up (each uid in one group)
        for row in data["rows"]:
            assert row["clicks"] == sum(c["clicks"] for c in row["children"])
    total = _oracle(w, (), mode, ZoneInfo(tz))
    _check(data["total"], total[()])
    unknown = {e.uid for e in w.events} - {c.uid for c in w.clicks}
    assert data["without_click"]["contact"] == len(
        {e.uid for e in w.events if e.uid in unknown and e.event == "contact" and not e.test
         and FROM <= e.at < TO}
    )  # fmt: skip


def test_cohort_ratios_from_click_never_exceed_one(seeded: tuple[Env, World]) -> None:
    env, w = seeded
    data = _report(env, w, by="campaign,ad", mode="cohort")
    for row in data["rows"]:
        for r in [row, *row["children"]]:
            assert all(s["from_click"] is None or s["from_click"] <= 1 for s in r["steps"])


def _days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_costs_convert_day_by_day_and_give_profit_and_roi(tmp_path: Path) -> None:
    with services(tmp_path) as env:
        w = _seed(env)
        day0 = date(2026, 11, 1)
        items = [{"day": d.isoformat(), "level": "campaign", "id": "c1", "amount": "10.00",
                  "currency": "EUR"} for d in _days(day0, 4)]  # fmt: skip
        items += [{"day": day0.isoformat(), "level": "ad", "id": "c1-a0", "amount": "3",
                   "currency": "USD"}]  # fmt: skip
        env.run(cost_services.set_costs(OPERATOR, env.ctx, w.space, items))
        env.run(cost_services.set_rate(OPERATOR, env.ctx, w.space, base="EUR", quote="USD",
                                       day="2026-10-01", rate="1.10"))  # fmt: skip
        env.run(cost_services.set_rate(OPERATOR, env.ctx, w.space, base="EUR", quote="USD",
                                       day="2026-11-02", rate="1.20"))  # fmt: skip
        data = _report(env, w, by="campaign,ad", currency="USD", sort="profit", mode="cohort")
    assert data["missing_rates"] == []
    # the whole UTC days the window touches: 1 to 3 November
    assert (data["from_ms"], data["to_ms"]) == (T0, T0 + 72 * H)
    rows = {r["key"]["campaign"]: r for r in data["rows"]}
    c1 = rows["c1"]["cost"]
    assert c1["cost"] == format(Decimal("10.00") * Decimal("1.10") + 2 * Decimal("12.00"), "f")
    assert c1["days"] == 3
    # net revenue per click's day, EUR at that day's rate
    clicks = {c.uid: c for c in w.clicks}
    real = [e for e in w.events if not e.test]
    taken = {(e.uid, e.eid) for e in real if e.event == REVERSAL}
    net = Decimal(0)
    for e in real:
        c = clicks.get(e.uid)
        if (e.event != "deposit" or c is None or c.dims["campaign_id"] != "c1"
                or not T0 <= c.at < T0 + 72 * H or (e.uid, e.eid) in taken):  # fmt: skip
            continue
        day = datetime.fromtimestamp(c.at / 1000, ZoneInfo("UTC")).date()
        rate = Decimal(1) if e.currency == "USD" else Decimal("1.10" if day < date(2026, 11, 2)
                                                              else "1.20")  # fmt: skip
        net += Decimal(e.value or "0") * rate
    assert Decimal(c1["net_revenue"]) == net
    cost = Decimal(c1["cost"])
    assert Decimal(c1["profit"]) == net - cost
    assert c1["roi"] == format(((net - cost) / cost).quantize(Decimal("0.0001"),
                                                              ROUND_HALF_EVEN), "f")  # fmt: skip
    ads = {ch["key"]["ad"]: ch for ch in rows["c1"]["children"]}
    assert ads["c1-a0"]["cost"]["cost"] == "3"
    assert ads["c1-a1"]["cost"]["cost"] == "0" and ads["c1-a1"]["cost"]["days"] == 0
    assert rows[None]["cost"] is None  # no campaign: no cost level
    profits = [Decimal(r["cost"]["profit"]) for r in data["rows"] if r["cost"]]
    assert profits == sorted(profits, reverse=True)


def test_a_missing_rate_is_named_and_leaves_the_figures_null(tmp_path: Path) -> None:
    with services(tmp_path) as env:
        w = _seed(env)
        env.run(cost_services.set_costs(OPERATOR, env.ctx, w.space, [
            {"day": "2026-11-02", "level": "campaign", "id": "c2", "amount": "5",
             "currency": "GBP"}]))  # fmt: skip
        data = _report(env, w, by="campaign", currency="USD")
    c2 = next(r for r in data["rows"] if r["key"]["campaign"] == "c2")["cost"]
    assert c2["cost"] is None and c2["roi"] is None
    assert {(m["currency"], m["day"]) for m in data["missing_rates"]} >= {("GBP", "2026-11-02")}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"by": "campaign,ad,country"}, "by"), ({"by": "nope"}, "by"), ({"by": "sub.x"}, "by"),
     ({"sort": "nope"}, "sort"), ({"sort": "roi"}, "sort"), ({"limit": 0}, "limit"),
     ({"mode": "both"}, "mode"), ({"currency": "dollars"}, "currency")],
)  # fmt: skip
def test_a_bad_parameter_is_refused_by_field(
    seeded: tuple[Env, World], params: dict[str, Any], field: str
) -> None:
    env, w = seeded
    with pytest.raises(Invalid) as refused:
        _report(env, w, **params)
    assert refused.value.field == field


def test_a_bad_filter_is_refused(seeded: tuple[Env, World]) -> None:
    env, w = seeded
    query = ReportQuery(days=3, filters=("country=USA",))
    with pytest.raises(Invalid) as refused:
        env.run(groups_report(OPERATOR, env.ctx, w.space, query=query))
    assert refused.value.field == "filter"


def test_limit_keeps_the_top_rows_and_says_how_many_there_were(
    seeded: tuple[Env, World],
) -> None:
    env, w = seeded
    data = _report(env, w, by="hour", sort="clicks", limit=3)
    assert len(data["rows"]) == 3 and data["rows_total"] > 3
    clicks = [r["clicks"] for r in data["rows"]]
    assert clicks == sorted(clicks, reverse=True)
    full = replace(ReportQuery(), from_=str(FROM), to=str(TO))
    everything = env.run(groups_report(OPERATOR, env.ctx, w.space, by="hour", query=full))
    assert max(r["clicks"] for r in everything["rows"]) == clicks[0]
