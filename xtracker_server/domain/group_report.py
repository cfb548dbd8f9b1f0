"""A grouped report's rows, pure: what a ``GroupCounts`` shows (steps and ratios, money,
the time-to-convert median), its cost figures in a report currency, the sort and the limit.
services/groups.py reads the store and the costs and calls this; docs/reports.md#grouped-reports
documents the JSON.

A row's cost is the cost entered at the row's own level: a campaign row the campaign's costs, an
ad row the ad's (domain/costs.py ``CostLevel``); rows of any other dimension, and rows without a
value (no campaign id), have none (``cost`` null). Revenue against cost is the net revenue
(gross less reversed), each day converted at that day's rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from xtracker_server.domain.costs import CostLevel, CostMetrics, Money, RateBook, cost_metrics
from xtracker_server.domain.groups import NAME_OF, GroupCounts, ttc_median_s
from xtracker_server.domain.reports import (
    FunnelCounts,
    ReportError,
    money_text,
    net_revenue,
    ratio,
    step_ratios,
)
from xtracker_wire import CANONICAL_EVENTS

__all__ = [
    "COST_COLUMNS",
    "DEFAULT_LIMIT",
    "GROUP_COLUMNS",
    "MAX_LIMIT",
    "GroupRow",
    "RowCost",
    "check_limit",
    "check_sort",
    "net_by_day",
    "row_cost",
    "row_json",
    "sort_rows",
]

#: Rows a report shows unless asked (``limit``), and the most it shows (per level of nesting).
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: Cost columns: only with a report currency.
COST_COLUMNS: tuple[str, ...] = ("cost", "profit", "roi", "roas", "cpc", "cpl", "cpa")
#: Columns a report can sort by (``key``: the row's value of its dimension).
GROUP_COLUMNS: tuple[str, ...] = (
    "key", "clicks", *CANONICAL_EVENTS, "deposits", "depositors", "first_deposits",
    "click_to_deposit", "revenue", "reversed_deposits", "reversed_revenue", "net_revenue",
    *COST_COLUMNS,
)  # fmt: skip
_COST_LEVELS = {level.value: level for level in CostLevel}


@dataclass(frozen=True)
class RowCost:
    """A row's cost at its level, in the report currency (``money.total`` None: a rate is
    missing), its net revenue converted, and the figures (None when either is missing)."""

    level: CostLevel
    days: int  # days with a cost entered
    money: Money
    revenue: Money
    metrics: CostMetrics | None


@dataclass
class GroupRow:
    counts: GroupCounts
    dimension: str | None  # the dimension of the row's own value (None: the whole space)
    cost: RowCost | None = None
    children: list[GroupRow] = field(default_factory=list)

    @property
    def value(self) -> str | None:
        return self.counts.key[-1] if self.counts.key else None


def check_sort(column: str, *, currency: str | None) -> str:
    if column not in GROUP_COLUMNS:
        raise ReportError("sort", f"must be one of {', '.join(GROUP_COLUMNS)}")
    if column in COST_COLUMNS and currency is None:
        raise ReportError("sort", f"{column} needs a report currency (currency=USD)")
    return column


def check_limit(raw: int | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not 1 <= raw <= MAX_LIMIT:
        raise ReportError("limit", f"must be 1 to {MAX_LIMIT}")
    return raw


def net_by_day(counts: GroupCounts) -> list[tuple[date, str, Decimal]]:
    """The net revenue (gross less reversed) per day and currency."""
    out = []
    for currency, days in sorted(counts.revenue.items()):
        taken = counts.reversed_revenue.get(currency, {})
        for day, amount in sorted(days.items()):
            net = amount - taken.get(day, Decimal(0))
            if net:
                out.append((date.fromisoformat(day), currency, net))
    return out


def row_cost(
    counts: GroupCounts,
    dimension: str | None,
    costs: Mapping[tuple[str, str], Sequence[tuple[date, str, Decimal]]],
    book: RateBook,
    currency: str,
) -> RowCost | None:
    """The cost figures of a row whose value is of ``dimension``; ``costs``: per (level,
    object id) the amounts entered by day in the report's days. None: no cost level."""
    value = counts.key[-1] if counts.key else None
    level = _COST_LEVELS.get(dimension or "")
    if level is None or value is None:
        return None
    entered = costs.get((level.value, value), ())
    spent = Money.convert(book, currency, entered)
    earned = Money.convert(book, currency, net_by_day(counts))
    metrics = None
    if spent.total is not None and earned.total is not None:
        metrics = cost_metrics(spent.total, earned.total, counts.clicks, counts.uids)
    return RowCost(level, len({d for d, _, _ in entered}), spent, earned, metrics)


def _funnel(counts: GroupCounts) -> FunnelCounts:
    return FunnelCounts(
        uids={"click": counts.clicks, **counts.uids},
        deposits=counts.deposits,
        first_deposits=counts.first_deposits,
        revenue=counts.revenue_total(),
        unattributed={},
    )


def _money(totals: Mapping[str, Decimal]) -> dict[str, str]:
    return {c: money_text(v) for c, v in sorted(totals.items())}


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else money_text(amount)


def _cost_json(cost: RowCost) -> dict[str, Any]:
    m = cost.metrics
    figures = ("profit", "roi", "roas", "cpc", "cpl", "cpa")
    return {
        "level": cost.level.value,
        "days": cost.days,
        "cost": _text(cost.money.total),
        "net_revenue": _text(cost.revenue.total),
        **{f: None if m is None else _text(getattr(m, f)) for f in figures},
        "cost_per": {s: None if m is None else _text(m.cost_per[s]) for s in CANONICAL_EVENTS},
    }


def row_json(row: GroupRow, by: Sequence[str], *, costs: bool) -> dict[str, Any]:
    """One row of the report (docs/reports.md#grouped-reports); ``costs``: with its ``cost``
    (null for a row without a cost level)."""
    c = row.counts
    dims = by[: len(c.key)]  # an outer row of a nested report: the first dimension
    totals, taken = c.revenue_total(), c.reversed_total()
    out: dict[str, Any] = {
        "key": dict(zip(dims, c.key, strict=True)),
        "names": {d: c.names[n] for d, n in _names(dims) if n in c.names},
        "clicks": c.clicks,
        "steps": [
            {"step": r.step, "uids": r.uids, "from_previous": r.from_previous,
             "from_click": r.from_click,
             "ttc_median_s": None if r.step == "click" else ttc_median_s(c.ttc.get(r.step, ()))}
            for r in step_ratios(_funnel(c))
        ],
        "deposits": c.deposits,
        "depositors": c.depositors,
        "first_deposits": c.first_deposits,
        "click_to_deposit": ratio(c.depositors, c.clicks),
        "revenue": _money(totals),
        "reversed_deposits": c.reversed_deposits,
        "reversed_revenue": _money(taken),
        "net_revenue": _money(net_revenue(totals, taken)),
    }  # fmt: skip
    if costs:
        out["cost"] = None if row.cost is None else _cost_json(row.cost)
    if row.children:
        out["children"] = [row_json(child, by, costs=costs) for child in row.children]
    return out


def _names(by: Sequence[str]) -> Iterable[tuple[str, str]]:
    return [(d, NAME_OF[d]) for d in by if d in NAME_OF]


def _sort_value(row: GroupRow, column: str, currency: str) -> object:
    c = row.counts
    if column == "key":
        return row.value
    if column == "clicks":
        return c.clicks
    if column in CANONICAL_EVENTS:
        return c.uids.get(column, 0)
    if column in ("deposits", "depositors", "first_deposits", "reversed_deposits"):
        return getattr(c, column)
    if column == "click_to_deposit":
        return ratio(c.depositors, c.clicks)
    if column == "revenue":
        return c.revenue_total().get(currency, Decimal(0))
    if column == "reversed_revenue":
        return c.reversed_total().get(currency, Decimal(0))
    if column == "net_revenue":
        return net_revenue(c.revenue_total(), c.reversed_total()).get(currency, Decimal(0))
    cost = row.cost
    if cost is None:
        return None
    if column == "cost":
        return cost.money.total
    return None if cost.metrics is None else getattr(cost.metrics, column)


def sort_rows(rows: list[GroupRow], column: str, *, desc: bool, currency: str) -> list[GroupRow]:
    """Sort by ``column`` (money in ``currency``; cost figures in the report currency). Rows
    without a value (a ratio over nothing, no cost) go last either way; ties keep the order
    of the keys (rows without a key value last)."""
    by_key = sorted(rows, key=lambda r: (r.value is None, r.value or ""))
    present = [r for r in by_key if _sort_value(r, column, currency) is not None]
    missing = [r for r in by_key if _sort_value(r, column, currency) is None]
    present.sort(key=lambda r: _sort_value(r, column, currency), reverse=desc)  # type: ignore[arg-type,return-value]
    return present + missing
