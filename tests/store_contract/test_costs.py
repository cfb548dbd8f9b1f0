"""The Store contract of costs and exchange rates: one cost per (day, level, object) and
space, set again it is replaced (never added to); rates per pair and day; nothing is seen
across spaces, and both go with their space."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from tests.store_contract.conftest import T0, Backend
from xtracker_server.domain.costs import CostEntry, CostLevel, Rate

NOWHERE = 10**9

D = Decimal


def _cost(day: int, object_id: str, amount: str, currency: str = "EUR") -> CostEntry:
    return CostEntry(date(2026, 11, day), CostLevel.CAMPAIGN, object_id, D(amount), currency, "C")


def test_a_cost_set_again_is_replaced_not_added(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    assert backend.run(store.put_costs(space, [_cost(1, "c1", "10.50"), _cost(2, "c1", "3")], T0))
    assert backend.run(store.put_costs(space, [_cost(1, "c1", "11.25"), _cost(3, "c1", "1")], T0))
    got = backend.run(store.list_costs(space, date(2026, 11, 1), date(2026, 12, 1)))
    assert [(e.day.day, e.amount) for e in got] == [(1, D("11.25")), (2, D("3")), (3, D("1"))]
    assert str(got[0].amount) == "11.25"  # the exact text, not a float


def test_put_costs_counts_new_and_replaced(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    assert backend.run(store.put_costs(space, [_cost(1, "a", "1")], T0)) == (1, 0)
    assert backend.run(store.put_costs(space, [_cost(1, "a", "2"), _cost(1, "b", "1")], T0)) == (
        1,
        1,
    )
    assert backend.run(store.put_costs(NOWHERE, [_cost(1, "a", "1")], T0)) is None


def test_costs_are_listed_by_days_and_level(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    ad = CostEntry(date(2026, 11, 2), CostLevel.AD, "ad1", D("2"), "USD")
    backend.run(store.put_costs(space, [_cost(1, "c", "1"), ad, _cost(3, "c", "3")], T0))
    listed = backend.run(store.list_costs(space, date(2026, 11, 2), date(2026, 11, 3)))
    assert listed == [ad]
    by_level = backend.run(
        store.list_costs(space, date(2026, 1, 1), date(2027, 1, 1), CostLevel.CAMPAIGN)
    )
    assert [e.day.day for e in by_level] == [1, 3]


def test_a_cost_can_be_deleted(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    backend.run(store.put_costs(space, [_cost(1, "c", "1")], T0))
    assert backend.run(store.delete_cost(space, date(2026, 11, 1), CostLevel.CAMPAIGN, "c"))
    assert not backend.run(store.delete_cost(space, date(2026, 11, 1), CostLevel.CAMPAIGN, "c"))
    assert backend.run(store.list_costs(space, date(2026, 1, 1), date(2027, 1, 1))) == []


def test_a_rate_is_set_per_pair_and_day(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    first = Rate("EUR", "USD", date(2026, 11, 1), D("1.08"))
    assert backend.run(store.set_rate(space, first, T0))
    assert backend.run(store.set_rate(space, Rate("EUR", "USD", date(2026, 11, 1), D("1.09")), T0))
    assert backend.run(store.set_rate(space, Rate("BTC", "USD", date(2026, 10, 1), D("65000")), T0))
    assert backend.run(store.list_rates(space)) == [
        Rate("BTC", "USD", date(2026, 10, 1), D("65000")),
        Rate("EUR", "USD", date(2026, 11, 1), D("1.09")),
    ]
    assert not backend.run(store.set_rate(NOWHERE, first, T0))


def test_a_spaces_costs_and_rates_are_invisible_to_another(backend: Backend) -> None:
    store = backend.store
    a, b = backend.space().space.id, backend.space().space.id
    backend.run(store.put_costs(a, [_cost(1, "c", "5")], T0))
    backend.run(store.set_rate(a, Rate("EUR", "USD", date(2026, 11, 1), D("1.1")), T0))
    assert backend.run(store.list_costs(b, date(2000, 1, 1), date(3000, 1, 1))) == []
    assert backend.run(store.list_rates(b)) == []
    assert not backend.run(store.delete_cost(b, date(2026, 11, 1), CostLevel.CAMPAIGN, "c"))
    assert len(backend.run(store.list_costs(a, date(2000, 1, 1), date(3000, 1, 1)))) == 1


def test_costs_and_rates_go_with_their_space(backend: Backend) -> None:
    store, space = backend.store, backend.space().space.id
    backend.run(store.put_costs(space, [_cost(1, "c", "5"), _cost(2, "c", "5")], T0))
    backend.run(store.set_rate(space, Rate("EUR", "USD", date(2026, 11, 1), D("1.1")), T0))
    assert backend.run(store.space_counts(space))["costs"] == 2  # type: ignore[index]
    assert backend.run(store.mark_space(space, T0)) is not None
    removed: dict[str, int] = {}
    while True:
        batch = backend.run(store.delete_space_batch(space, 500))
        for key, n in batch.removed.items():
            removed[key] = removed.get(key, 0) + n
        if batch.done:
            break
    assert (removed["costs"], removed["exchange_rates"]) == (2, 1)
    assert backend.run(store.list_costs(space, date(2000, 1, 1), date(3000, 1, 1))) == []
    assert backend.run(store.put_costs(space, [_cost(1, "c", "5")], T0)) is None
