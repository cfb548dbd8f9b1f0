"""The Store contract, what is read back: report counts after a catch-up (every event committed
before it counts, each uid once per step, money exact), the live tail, and each space's rows
alone in both."""

from __future__ import annotations

import time
from decimal import Decimal

from tests.store_contract.conftest import T0, Backend, event
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_server.domain.unrecorded import Reason, UnrecordedCount, hour_start

H = 3_600_000
DAY = Window(T0, T0 + 24 * H)


def _seed(backend: Backend, space: int) -> int:
    """Two clicks on a link, a funnel, deposits in two currencies; returns the link's id."""
    store = backend.store
    link = backend.link(space)
    backend.click(space, "a", link.id, at=T0 + 1)
    backend.click(space, "b", link.id, at=T0 + 2)
    drafts = [
        event(space, "contact", "a", at=T0 + 10),
        event(space, "contact", "a", at=T0 + 11),  # the same uid again: one uid
        event(space, "contact", "b", at=T0 + 12),
        event(space, "deposit", "a", eid="d1", at=T0 + 20, value="10.10", currency="USD"),
        event(space, "deposit", "a", eid="d2", at=T0 + 21, value="0.00000001", currency="USD"),
        event(space, "deposit", "b", eid="d3", at=T0 + 22, value="5", currency="EUR"),
        event(space, "deposit", "z", eid="d4", at=T0 + 30 * H, value="1", currency="USD"),
    ]
    for draft in drafts:
        backend.run(store.record_event(draft))
    backend.run(store.catch_up_reports())
    return link.id


def test_the_funnel_counts_uids_once_and_money_exactly(backend: Backend) -> None:
    space = backend.space().space.id
    link_id = _seed(backend, space)
    counts = backend.run(backend.store.funnel_counts(space, DAY))
    assert (counts.clicks, counts.uids["contact"], counts.uids["deposit"]) == (2, 2, 2)
    assert counts.deposits == 3
    assert counts.revenue == {"USD": Decimal("10.10000001"), "EUR": Decimal("5")}
    by_link = backend.run(backend.store.funnel_counts(space, DAY, link_id=link_id))
    assert by_link.uids == counts.uids


def test_the_cohort_funnel_counts_the_clicks_steps_whenever_they_happen(
    backend: Backend,
) -> None:
    space = backend.space().space.id
    _seed(backend, space)
    first_hour = Window(T0, T0 + 5)  # the clicks' time; their events come later
    cohort = backend.run(backend.store.funnel_counts(space, first_hour, mode=FunnelMode.COHORT))
    assert (cohort.clicks, cohort.uids["contact"], cohort.uids["deposit"]) == (2, 2, 2)
    assert cohort.revenue == {"USD": Decimal("10.10000001"), "EUR": Decimal("5")}
    activity = backend.run(backend.store.funnel_counts(space, first_hour))
    assert (activity.clicks, activity.uids["contact"], activity.deposits) == (2, 0, 0)


def test_a_report_never_counts_another_spaces_rows(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    _seed(backend, a)
    backend.run(backend.store.catch_up_reports())
    counts = backend.run(backend.store.funnel_counts(b, DAY))
    assert counts.clicks == 0 and counts.deposits == 0 and counts.revenue == {}
    assert backend.run(backend.store.link_rows(b, DAY)) == []
    assert backend.run(backend.store.deposit_currencies(b, DAY)) == {}


def test_an_event_counts_once_it_is_caught_up(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.run(store.catch_up_reports())
    backend.run(store.record_event(event(space, "subscribed", "s1", at=T0 + 5)))
    assert backend.run(store.catch_up_reports()) >= 1
    counts = backend.run(store.funnel_counts(space, DAY))
    # "s1" has no click: on the line of its own, in no step
    assert (counts.uids.get("subscribed"), counts.unknown) == (0, {"subscribed": 1})
    assert backend.run(store.catch_up_reports()) == 0  # nothing new: nothing fed


def test_link_rows_series_and_currencies(backend: Backend) -> None:
    space = backend.space().space.id
    link_id = _seed(backend, space)
    store = backend.store
    hour = hour_start(T0)
    backend.run(store.add_unrecorded([UnrecordedCount(space, link_id, hour, Reason.BOT, 3)]))
    backend.run(store.add_unrecorded([UnrecordedCount(space, link_id, hour, Reason.BOT, 2)]))
    window = Window(hour, hour + 24 * H)
    rows = {r.link: r for r in backend.run(store.link_rows(space, window))}
    (slug,) = [s for s in rows if s is not None]
    assert (rows[slug].clicks, rows[slug].deposits, rows[slug].unrecorded) == (2, 3, {"bot": 5})
    assert backend.run(store.deposit_currencies(space, DAY)) == {"USD": 2, "EUR": 1}
    starts = [T0, T0 + 12 * H, T0 + 24 * H]
    assert backend.run(store.series_counts(space, "click", starts, T0 + 36 * H)) == [2, 0, 0]
    revenue = backend.run(store.series_revenue(space, "USD", starts, T0 + 36 * H))
    # "z" has no click: in no series, as in no step of the funnel
    assert revenue == [Decimal("10.10000001"), Decimal(0), Decimal(0)]
    assert backend.run(store.series_counts(space, "deposit", starts, T0 + 36 * H,
                                           link_id=link_id)) == [2, 0, 0]  # fmt: skip


def test_delivery_health_lists_the_spaces_destinations(backend: Backend) -> None:
    from tests.store_contract.test_admin import webhook

    a, b = backend.space().space.id, backend.space().space.id
    dest = backend.run(backend.store.create_destination(a, webhook(), T0))
    assert dest is not None
    backend.run(backend.store.record_event(event(a, "contact", "u1")))
    (health,) = backend.run(backend.store.delivery_health(a, T0 + 1000))
    assert (health.id, health.counts.get("pending")) == (dest.id, 1)
    assert backend.run(backend.store.delivery_health(b, T0 + 1000)) == []


def test_the_tail_starts_now_and_hands_each_space_its_rows(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    start = backend.run(store.tail_poll(None, {a, b}, time.monotonic()))
    assert start.items == {} and start.spaces == {a, b}
    backend.click(a, "t1")
    backend.run(store.record_event(event(b, "contact", "t2")))
    poll = backend.run(store.tail_poll(start.marks, {a}, time.monotonic()))
    assert [(i.kind, i.data["uid"]) for i in poll.items.get(a, [])] == [("click", "t1")]
    assert b not in poll.items and poll.spaces == {a}
    top = backend.run(store.tail_top())
    assert all(newest >= low for newest, low in zip(top, poll.lows, strict=True))
    after = start.lows
    batch = backend.run(store.tail_range(b, after, top))
    assert [(i.kind, i.data["uid"]) for i in batch.items] == [("event", "t2")]
    assert backend.run(store.tail_range(a, after, top, limit=1)).items[0].data["uid"] == "t1"


def test_the_report_backlog_is_pruned_up_to_what_the_rollup_applied(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    link = backend.link(space)
    for n in range(4):  # a click after an event of its uid is a backlog entry of the rollup
        backend.run(store.record_event(event(space, "contact", f"b{n}")))
    for n in range(3):
        backend.click(space, f"b{n}", link.id)
    backend.run(store.catch_up_reports())
    upto = backend.run(store.applied_backlog())
    assert upto > 0
    pruned = 0
    while deleted := backend.run(store.prune_report_backlog(upto, 1)):
        assert deleted == 1  # in batches of the limit
        pruned += deleted
    assert pruned >= 2  # the newest entry stays
    assert backend.run(store.prune_report_backlog(upto, 1000)) == 0
    backend.click(space, "b3", link.id)
    backend.run(store.catch_up_reports())
    counts = backend.run(store.funnel_counts(space, DAY))
    assert counts.clicks == 4 and counts.uids["contact"] == 4


def test_a_reversal_takes_its_deposit_back_in_the_deposits_window_and_space(
    backend: Backend,
) -> None:
    store = backend.store
    space, other = backend.space().space.id, backend.space().space.id
    link_id = _seed(backend, space)
    _seed(backend, other)
    backend.click(space, "q", link_id, at=T0 + 3)  # q's deposit is attributed: in the funnel
    for draft in (
        event(space, "deposit.reversed", "a", eid="d1", at=T0 + 30 * H),  # after the window
        event(space, "deposit.reversed", "b", eid="d1", at=T0 + 40),  # another uid's eid
        event(space, "deposit.reversed", "z", eid="nope", at=T0 + 40),  # no such deposit
        event(space, "deposit.reversed", "q", eid="d9", at=T0 + 50),  # before its deposit
    ):
        assert not backend.run(store.record_event(draft)).duplicate
    again = event(space, "deposit.reversed", "a", eid="d1", at=T0 + 30 * H)
    assert backend.run(store.record_event(again)).duplicate
    backend.run(store.catch_up_reports())
    counts = backend.run(store.funnel_counts(space, DAY))
    assert (counts.reversed_deposits, counts.reversed_revenue) == (1, {"USD": Decimal("10.10")})
    assert counts.net_revenue == {"USD": Decimal("0.00000001"), "EUR": Decimal("5")}
    assert counts.revenue == {"USD": Decimal("10.10000001"), "EUR": Decimal("5")}  # gross
    assert backend.run(store.funnel_counts(other, DAY)).reversed_deposits == 0
    # the deposit the early reversal named arrives: it is reversed at once
    backend.run(store.record_event(
        event(space, "deposit", "q", eid="d9", at=T0 + 60, value="2.5", currency="EUR")
    ))  # fmt: skip
    backend.run(store.catch_up_reports())
    counts = backend.run(store.funnel_counts(space, DAY))
    assert counts.reversed_revenue == {"USD": Decimal("10.10"), "EUR": Decimal("2.5")}
    starts = [T0, T0 + 12 * H]
    taken = backend.run(store.series_revenue(space, "USD", starts, T0 + 24 * H,
                                             reversed_only=True))  # fmt: skip
    assert taken == [Decimal("10.10"), Decimal(0)]
