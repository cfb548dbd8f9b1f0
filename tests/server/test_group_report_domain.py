"""The grouped report's rows, pure (domain/group_report.py): the sort (rows without a value
last, ties by key), the limit, the cost figures at a row's own level and the net revenue they
are measured against, day by day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from xtracker_server.domain.costs import Rate, RateBook
from xtracker_server.domain.group_report import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    GroupRow,
    check_limit,
    check_sort,
    net_by_day,
    row_cost,
    row_json,
    sort_rows,
)
from xtracker_server.domain.groups import TTC_BOUNDS_S, GroupCounts
from xtracker_server.domain.reports import ReportError
from xtracker_wire import CANONICAL_EVENTS


def _counts(key: tuple[str | None, ...], clicks: int, deposit: int = 0) -> GroupCounts:
    return GroupCounts(
        key=key, clicks=clicks, uids={e: 0 for e in CANONICAL_EVENTS} | {"deposit": deposit},
        deposits=deposit,
    )  # fmt: skip


def test_rows_sort_by_a_column_with_rows_without_a_value_last() -> None:
    made = [_counts(("b",), 10, 1), _counts(("a",), 0), _counts(("c",), 10, 5), _counts((None,), 4)]
    rows = [GroupRow(c, "ad") for c in made]
    by_rate = sort_rows(rows, "click_to_deposit", desc=True, currency="USD")
    assert [r.value for r in by_rate] == ["c", "b", None, "a"]  # "a": no clicks, no rate
    by_clicks = sort_rows(rows, "clicks", desc=True, currency="USD")
    assert [r.value for r in by_clicks] == ["b", "c", None, "a"]  # a tie keeps the key order
    assert [r.value for r in sort_rows(rows, "key", desc=False, currency="USD")] == [
        "a", "b", "c", None,
    ]  # fmt: skip


def test_a_cost_column_needs_a_currency_and_the_limit_has_bounds() -> None:
    with pytest.raises(ReportError) as refused:
        check_sort("profit", currency=None)
    assert refused.value.field == "sort"
    assert check_sort("profit", currency="USD") == "profit"
    assert check_limit(None) == DEFAULT_LIMIT and check_limit(MAX_LIMIT) == MAX_LIMIT
    for bad in (0, MAX_LIMIT + 1):
        with pytest.raises(ReportError):
            check_limit(bad)


def test_the_cost_is_the_rows_own_levels_against_net_revenue() -> None:
    counts = GroupCounts(
        key=("120", "9"), clicks=100, uids={e: 0 for e in CANONICAL_EVENTS} | {"deposit": 4},
        revenue={"EUR": {"2026-11-01": Decimal("10"), "2026-11-02": Decimal("20")}},
        reversed_revenue={"EUR": {"2026-11-02": Decimal("5")}},
    )  # fmt: skip
    assert net_by_day(counts) == [(date(2026, 11, 1), "EUR", Decimal("10")),
                                  (date(2026, 11, 2), "EUR", Decimal("15"))]  # fmt: skip
    book = RateBook([Rate("EUR", "USD", date(2026, 11, 1), Decimal("1.1")),
                     Rate("EUR", "USD", date(2026, 11, 2), Decimal("1.2"))])  # fmt: skip
    costs = {("ad", "9"): [(date(2026, 11, 1), "USD", Decimal("20"))]}
    cost = row_cost(counts, "ad", costs, book, "USD")
    assert cost is not None and cost.metrics is not None
    assert cost.revenue.total == Decimal("29.0")  # 10 x 1.1 + 15 x 1.2
    assert (cost.money.total, cost.metrics.profit, cost.metrics.cpa) == (
        Decimal("20"), Decimal("9.0"), Decimal("5.0000"),
    )  # fmt: skip
    assert row_cost(counts, "country", costs, book, "USD") is None  # no cost level
    nothing = row_cost(_counts((None,), 3), "ad", costs, book, "USD")
    assert nothing is None  # clicks without an ad id


def test_a_row_shows_its_steps_names_and_the_estimated_median() -> None:
    ttc = [0] * (len(TTC_BOUNDS_S) + 1)
    ttc[TTC_BOUNDS_S.index(60)] = 3  # 40 <= d < 60 s
    counts = GroupCounts(
        key=("120",), clicks=10, uids={e: 2 for e in CANONICAL_EVENTS},
        ttc={"contact": tuple(ttc)}, names={"campaign_name": "Spring"},
    )  # fmt: skip
    shown = row_json(GroupRow(counts, "campaign"), ("campaign", "ad"), costs=True)
    assert shown["key"] == {"campaign": "120"} and shown["names"] == {"campaign": "Spring"}
    steps = {s["step"]: s for s in shown["steps"]}
    assert steps["contact"]["ttc_median_s"] == 49 and steps["deposit"]["ttc_median_s"] is None
    assert steps["contact"]["from_click"] == 0.2 and shown["cost"] is None
