"""The Store contract, grouped reports (``group_counts``): a uid counts in the one group of its
click, in cohort mode with its events at any time, in activity mode with its events in the
window; any click dimension, day/hour in a time zone, filters with exclusions; reversals,
first deposits and the time to convert; test events and uids without a click never count;
each space alone. Run with the report cube on too (conftest.py's backends): its windows are on
the 15-minute grid, where the cube answers cohort queries."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tests.store_contract.conftest import T0 as SUITE_T0
from tests.store_contract.conftest import Backend, event
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.filters import parse_filters
from xtracker_server.domain.groups import TTC_BOUNDS_S, GroupCounts, GroupQuery
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_wire import REVERSAL

H = 3_600_000
#: The suite's clock on the 15-minute grid (2025-06-15T15:00:00Z), so that with the report cube
#: on, the cube rather than the scan answers the cohort queries of these windows.
T0 = SUITE_T0 - SUITE_T0 % 900_000
DAY = Window(T0, T0 + 24 * H)
COHORT, ACTIVITY = FunnelMode.COHORT, FunnelMode.ACTIVITY


def _click(backend: Backend, space: int, uid: str, at: int = T0, link_id: int | None = None,
           sub_ids: dict[str, str] | None = None, **fields: str) -> None:  # fmt: skip
    draft = ClickDraft(space_id=space, uid=uid, created_ms=at, source="api", link_id=link_id,
                       country=fields.pop("country", None), device=fields.pop("device", None),
                       fields=fields, sub_ids=sub_ids or {})  # fmt: skip
    backend.run(backend.store.record_click(draft))


def _events(backend: Backend, *drafts: object) -> None:
    for d in drafts:
        backend.run(backend.store.record_event(d))  # type: ignore[arg-type]


Key = tuple[str | None, ...]


def _groups(backend: Backend, space: int, **query: object) -> dict[Key, GroupCounts]:
    q = GroupQuery(**{"window": DAY, **query})  # type: ignore[arg-type]
    backend.run(backend.store.catch_up_reports())  # as for every report of the rollup
    found = backend.run(backend.store.group_counts(space, q))
    keys = [g.key for g in found]
    assert len(keys) == len(set(keys)), keys
    return {g.key: g for g in found}


def _campaigns(backend: Backend) -> int:
    """Campaign c1 (ads a1, a2) and c2: clicks, steps, deposits in two currencies."""
    space = backend.space().space.id
    _click(backend, space, "u1", T0 + 1, campaign_id="c1", ad_id="a1", campaign_name="old",
           country="US")  # fmt: skip
    _click(backend, space, "u2", T0 + 2, campaign_id="c1", ad_id="a2", campaign_name="Summer",
           country="CA")  # fmt: skip
    _click(backend, space, "u3", T0 + 3, campaign_id="c2", ad_id="a3", country="US")
    _click(backend, space, "u4", T0 + 4)  # no campaign
    _events(
        backend,
        event(space, "contact", "u1", at=T0 + 10),
        event(space, "contact", "u1", at=T0 + 11),
        event(space, "contact", "u2", at=T0 + 12),
        event(space, "deposit", "u1", eid="d1", at=T0 + 20, value="10.10", currency="USD"),
        event(space, "deposit", "u1", eid="d2", at=T0 + 21, value="0.00000001", currency="USD"),
        event(space, "deposit", "u3", eid="d3", at=T0 + 22, value="5", currency="EUR"),
        event(space, "deposit", "nobody", eid="d4", at=T0 + 23, value="7", currency="USD"),
    )
    return space


def test_groups_count_each_uid_once_under_its_click(backend: Backend) -> None:
    space = _campaigns(backend)
    got = _groups(backend, space, by=("campaign",), mode=COHORT)
    assert set(got) == {("c1",), ("c2",), (None,)}
    c1 = got[("c1",)]
    assert (c1.clicks, c1.uids["contact"], c1.depositors, c1.deposits) == (2, 2, 1, 2)
    assert c1.first_deposits == 1
    assert c1.revenue_total() == {"USD": Decimal("10.10000001")}
    assert got[("c2",)].revenue_total() == {"EUR": Decimal("5")}
    assert got[(None,)].clicks == 1 and got[(None,)].uids["contact"] == 0
    # the uid without a click ("nobody") is in no group
    assert sum(g.deposits for g in got.values()) == 3


def test_no_grouping_is_the_whole_space_as_one_group(backend: Backend) -> None:
    space = _campaigns(backend)
    got = _groups(backend, space, mode=COHORT)
    assert list(got) == [()]
    assert got[()].clicks == 4 and got[()].depositors == 2 and got[()].deposits == 3


def test_nested_groups_and_the_latest_name_of_an_id(backend: Backend) -> None:
    space = _campaigns(backend)
    got = _groups(backend, space, by=("campaign", "ad"), mode=COHORT)
    assert set(got) == {("c1", "a1"), ("c1", "a2"), ("c2", "a3"), (None, None)}
    assert got[("c1", "a1")].deposits == 2 and got[("c1", "a2")].uids["contact"] == 1
    assert got[("c1", "a1")].names == {"campaign_name": "Summer"}
    assert got[("c2", "a3")].names == {}


def test_filters_keep_and_drop_values(backend: Backend) -> None:
    space = _campaigns(backend)
    us = _groups(backend, space, by=("campaign",), filters=parse_filters(["country=US"]))
    assert {k: g.clicks for k, g in us.items()} == {("c1",): 1, ("c2",): 1}
    not_c1 = _groups(backend, space, by=("country",), filters=parse_filters(["campaign=-c1"]))
    # an exclusion keeps the clicks without a value
    assert {k: g.clicks for k, g in not_c1.items()} == {("US",): 1, (None,): 1}


def test_the_cohort_counts_later_events_and_activity_the_windows(backend: Backend) -> None:
    space = backend.space().space.id
    _click(backend, space, "early", T0 - H, campaign_id="c")
    _click(backend, space, "late", T0 + H, campaign_id="c")
    _events(
        backend,
        event(space, "contact", "early", at=T0 + 2 * H),  # in the window, click before it
        event(space, "contact", "late", at=T0 + 30 * H),  # after the window
    )
    cohort = _groups(backend, space, by=("campaign",), mode=COHORT)[("c",)]
    assert (cohort.clicks, cohort.uids["contact"]) == (1, 1)  # "late" only
    activity = _groups(backend, space, by=("campaign",), mode=ACTIVITY)[("c",)]
    assert (activity.clicks, activity.uids["contact"]) == (1, 1)  # "early"'s contact
    before = Window(T0 - 2 * H, T0)
    only_event = _groups(backend, space, window=Window(T0 + 2 * H, T0 + 3 * H), mode=ACTIVITY)
    assert only_event[()].clicks == 0 and only_event[()].uids["contact"] == 1
    assert _groups(backend, space, window=before, mode=ACTIVITY)[()].uids["contact"] == 0


def test_reversed_and_first_deposits_in_activity_mode(backend: Backend) -> None:
    space = backend.space().space.id
    _click(backend, space, "u", T0 - 48 * H)
    _events(
        backend,
        event(space, "deposit", "u", eid="old", at=T0 - 24 * H, value="1", currency="USD"),
        event(space, "deposit", "u", eid="x", at=T0 + 1, value="20.5", currency="USD"),
        event(space, "deposit", "u", eid="y", at=T0 + 2, value="3", currency="USD"),
        event(space, REVERSAL, "u", eid="x", at=T0 + 3),
    )
    g = _groups(backend, space, mode=ACTIVITY)[()]
    assert (g.deposits, g.first_deposits, g.depositors) == (2, 0, 1)
    assert (g.reversed_deposits, g.reversed_total()) == (1, {"USD": Decimal("20.5")})
    assert g.revenue_total() == {"USD": Decimal("23.5")}


def test_test_events_never_count(backend: Backend) -> None:
    space = backend.space().space.id
    _click(backend, space, "u")
    real = event(space, "deposit", "u", eid="t", at=T0 + 1, value="9", currency="USD")
    _events(backend, dataclasses.replace(real, test=True, dedup_key=b"t" * 32))
    _events(backend, dataclasses.replace(event(space, REVERSAL, "u", eid="t", at=T0 + 2),
                                         test=True))  # fmt: skip
    _events(backend, event(space, "deposit", "u", eid="t2", at=T0 + 3, value="1", currency="USD"))
    for mode in (COHORT, ACTIVITY):
        g = _groups(backend, space, mode=mode)[()]
        assert (g.deposits, g.reversed_deposits, g.revenue_total()) == (
            1, 0, {"USD": Decimal("1")},
        )  # fmt: skip


def test_day_and_hour_are_the_clicks_in_the_time_zone(backend: Backend) -> None:
    space = backend.space().space.id
    # T0 = 2025-06-15T15:00:00Z: 20:30 in Kolkata; 9 hours later is the next local day
    _click(backend, space, "a", T0)
    _click(backend, space, "b", T0 + 9 * H)
    _events(backend, event(space, "deposit", "a", eid="1", at=T0 + 9 * H, value="2",
                           currency="USD"))  # fmt: skip
    days = _groups(backend, space, by=("day",), tz="Asia/Kolkata", mode=COHORT)
    assert set(days) == {("2025-06-15T00:00:00+05:30",), ("2025-06-16T00:00:00+05:30",)}
    first = days[("2025-06-15T00:00:00+05:30",)]
    assert first.clicks == 1 and first.revenue == {"USD": {"2025-06-15": Decimal("2")}}
    by_event = _groups(backend, space, by=("day",), tz="Asia/Kolkata", mode=ACTIVITY)
    second = by_event[("2025-06-16T00:00:00+05:30",)]
    assert second.clicks == 1 and second.revenue == {"USD": {"2025-06-16": Decimal("2")}}
    hours = _groups(backend, space, by=("hour",), tz="Asia/Kolkata", mode=COHORT)
    assert ("2025-06-15T20:00:00+05:30",) in hours


def test_a_declared_sub_id_groups(backend: Backend) -> None:
    space = backend.space().space.id
    _click(backend, space, "a", sub_ids={"creative": "v1"})
    _click(backend, space, "b", sub_ids={"creative": "v2"})
    _click(backend, space, "c")
    got = _groups(backend, space, by=("sub.creative",))
    assert {k: g.clicks for k, g in got.items()} == {("v1",): 1, ("v2",): 1, (None,): 1}
    only = parse_filters(["sub.creative=v2"], sub_ids=("creative",))
    assert _groups(backend, space, filters=only)[()].clicks == 1


def test_time_to_convert_is_a_histogram_from_the_click(backend: Backend) -> None:
    space = backend.space().space.id
    _click(backend, space, "a", T0)
    _click(backend, space, "b", T0)
    _events(
        backend,
        event(space, "contact", "a", at=T0 + 500),  # 0.5 s: bin 0
        event(space, "contact", "b", at=T0 + 100_000),  # 100 s: 90 <= d < 135
        event(space, "contact", "b", at=T0 + 200_000),  # not its first
    )
    g = _groups(backend, space, mode=COHORT)[()]
    hist = g.ttc["contact"]
    assert len(hist) == len(TTC_BOUNDS_S) + 1 and sum(hist) == 2
    assert hist[0] == 1 and hist[TTC_BOUNDS_S.index(135)] == 1
    assert sum(g.ttc["deposit"]) == 0


def test_a_space_never_sees_another_spaces_groups(backend: Backend) -> None:
    a = _campaigns(backend)
    b = backend.space().space.id
    assert a != b
    assert _groups(backend, b, by=("campaign",)) == {}
    assert _groups(backend, b, by=("campaign",), mode=ACTIVITY) == {}
