"""Ad costs, exchange rates and the money maths of cost and ROI, pure (docs/reports.md#costs).

A *cost* is what was spent on one object on one day: ``(day, level, object_id)`` is its key,
``level`` one of campaign, ad set, ad or link (a link's slug is its id). Entering the same key
again replaces the amount (an import or ``cost add`` *sets* a day's spend; it never adds to it),
so re-importing an export never doubles a cost.

A *rate* says what one unit of ``base`` is worth in ``quote`` on a day: ``EUR -> USD 1.08 on
2026-11-01``. The rate used for a day is that day's, else the latest one before it (rates are
entered when they change; a weekend keeps Friday's). A pair is used only in the direction it
was entered: ``1 / rate`` is not exact, so the operator enters each direction a report needs.
A missing rate is never read as 0 or 1: ``MissingRate`` names the currency and the day.

All money is ``Decimal``; a converted amount is the exact product ``amount * rate``. Per-unit
figures (CPC, cost per step) are rounded to ``UNIT_DECIMALS`` and ROI/ROAS to
``RATIO_DECIMALS`` (half to even).

    >>> book = RateBook([Rate("EUR", "USD", date(2026, 11, 1), Decimal("1.08"))])
    >>> book.convert(Decimal("10.00"), "EUR", "USD", date(2026, 11, 3))
    Decimal('10.8000')
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum

from xtracker_server.exceptions import XTrackerServerError
from xtracker_wire import CANONICAL_EVENTS

__all__ = [
    "MAX_AMOUNT",
    "MAX_DECIMALS",
    "RATIO_DECIMALS",
    "UNIT_DECIMALS",
    "CostEntry",
    "CostLevel",
    "CostMetrics",
    "MissingRate",
    "Money",
    "Rate",
    "RateBook",
    "check_object_id",
    "cost_metrics",
    "parse_amount",
    "parse_day",
    "parse_rate",
]

#: The largest amount a cost may carry (a day's spend on one object), and its decimals.
MAX_AMOUNT = Decimal("1000000000000")
MAX_DECIMALS = 6
#: Rates carry up to this many decimals (``0.000012`` BTC per USD needs several).
RATE_DECIMALS = 12
#: CPC and cost per step are rounded to this many decimals.
UNIT_DECIMALS = 4
#: ROI and ROAS are rounded to this many decimals (0.2500 = 25 %).
RATIO_DECIMALS = 4
#: The longest object id (Facebook ids are up to 20 digits; a slug is up to 64 characters).
MAX_ID = 100
MAX_NAME = 400

_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CostLevel(str, Enum):
    """What a cost was spent on. A report adds up one level at a time (a campaign's cost
    and its ads' costs are the same money)."""

    CAMPAIGN = "campaign"
    ADSET = "adset"
    AD = "ad"
    LINK = "link"


#: From the coarsest to the finest: a report counts the first level that has costs.
LEVELS: tuple[CostLevel, ...] = (CostLevel.CAMPAIGN, CostLevel.ADSET, CostLevel.AD, CostLevel.LINK)


@dataclass(frozen=True)
class CostEntry:
    day: date
    level: CostLevel
    object_id: str
    amount: Decimal
    currency: str
    name: str | None = None


@dataclass(frozen=True)
class Rate:
    base: str
    quote: str
    day: date
    rate: Decimal


class MissingRate(XTrackerServerError, ValueError):
    """No rate converts ``currency`` into ``to`` on ``day`` (nor on any day before it)."""

    def __init__(self, currency: str, to: str, day: date) -> None:
        super().__init__(
            f"no exchange rate {currency} -> {to} on or before {day.isoformat()}: set one"
            f" (xtracker rate set --space ID --from {currency} --to {to}"
            f" --day {day.isoformat()} --rate R)"
        )
        self.currency = currency
        self.to = to
        self.day = day


def parse_amount(raw: object, *, what: str = "amount") -> Decimal:
    """A cost amount: plain decimal text (or a Decimal/int), zero or more, at most
    ``MAX_DECIMALS`` decimals; ``ValueError`` says what is wrong."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise ValueError(f'{what} must be a decimal amount such as "12.50" (a string)')
    text = str(raw).strip()
    if not _AMOUNT.fullmatch(text):
        raise ValueError(
            f'{what} {text[:40]!r} is not a decimal amount such as "12.50" (digits and an'
            " optional point; no sign, thousands separator or exponent)"
        )
    value = Decimal(text)
    if value > MAX_AMOUNT:
        raise ValueError(f"{what} {text[:40]} is larger than {MAX_AMOUNT}")
    if len(text.partition(".")[2]) > MAX_DECIMALS:
        raise ValueError(f"{what} {text[:40]} has more than {MAX_DECIMALS} decimal places")
    return value


def parse_rate(raw: object) -> Decimal:
    """A rate: a positive decimal with at most ``RATE_DECIMALS`` decimals."""
    text = str(raw).strip() if isinstance(raw, (str, int, Decimal)) else ""
    if isinstance(raw, bool) or not _AMOUNT.fullmatch(text):
        raise ValueError(f'rate {text[:40]!r} is not a positive decimal such as "1.0832"')
    value = Decimal(text)
    if value == 0 or value > MAX_AMOUNT:
        raise ValueError(f"rate {text[:40]} must be greater than 0 and at most {MAX_AMOUNT}")
    if len(text.partition(".")[2]) > RATE_DECIMALS:
        raise ValueError(f"rate {text[:40]} has more than {RATE_DECIMALS} decimal places")
    return value


def parse_day(raw: object, *, what: str = "day") -> date:
    """A calendar day, ``YYYY-MM-DD``, between 2000 and 2999."""
    text = raw.strip() if isinstance(raw, str) else ""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {str(raw)[:40]!r} is not a day: use YYYY-MM-DD") from None
    if not 2000 <= day.year <= 2999:
        raise ValueError(f"{what} {text} is not between 2000 and 2999")
    return day


def check_object_id(raw: object, level: CostLevel) -> str:
    """The id of a campaign, ad set or ad (as Facebook shows it), or a link's slug."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > MAX_ID or not text.isprintable():
        raise ValueError(
            f"the {level.value} id must be 1 to {MAX_ID} printable characters"
            + (" (the link's slug)" if level is CostLevel.LINK else "")
        )
    return text


class RateBook:
    """The operator's rates, looked up by pair and day (that day's, else the latest before)."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        by_pair: dict[tuple[str, str], list[Rate]] = {}
        for r in rates:
            by_pair.setdefault((r.base, r.quote), []).append(r)
        self._days = {p: sorted(rs, key=lambda r: r.day) for p, rs in by_pair.items()}
        self._keys = {p: [r.day for r in rs] for p, rs in self._days.items()}

    def rate(self, currency: str, to: str, day: date) -> Decimal:
        if currency == to:
            return Decimal(1)
        keys = self._keys.get((currency, to))
        at = bisect.bisect_right(keys, day) if keys else 0
        if not keys or at == 0:
            raise MissingRate(currency, to, day)
        return self._days[(currency, to)][at - 1].rate

    def convert(self, amount: Decimal, currency: str, to: str, day: date) -> Decimal:
        return amount * self.rate(currency, to, day)


@dataclass(frozen=True)
class Money:
    """Amounts by day and currency, converted into ``to``: the exact total, or the rates that
    are missing (each currency once, at the first day that lacks one) and no total."""

    total: Decimal | None
    missing: tuple[MissingRate, ...]

    @classmethod
    def convert(
        cls, book: RateBook, to: str, amounts: Iterable[tuple[date, str, Decimal]]
    ) -> Money:
        total = Decimal(0)
        missing: dict[str, MissingRate] = {}
        for day, currency, amount in amounts:
            try:
                total += book.convert(amount, currency, to, day)
            except MissingRate as exc:
                if currency not in missing or day < missing[currency].day:
                    missing[currency] = exc
        if missing:
            return cls(None, tuple(missing[c] for c in sorted(missing)))
        return cls(total, ())


def _per(amount: Decimal, count: int) -> Decimal | None:
    if count == 0:
        return None
    return (amount / count).quantize(Decimal(1).scaleb(-UNIT_DECIMALS), rounding=ROUND_HALF_EVEN)


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if denominator == 0:
        return None
    try:
        return (numerator / denominator).quantize(
            Decimal(1).scaleb(-RATIO_DECIMALS), rounding=ROUND_HALF_EVEN
        )
    except InvalidOperation:  # beyond Decimal's precision: not a figure anyone reads
        return None


@dataclass(frozen=True)
class CostMetrics:
    """What a cost buys, in one currency. ``None`` where the denominator is 0."""

    cost: Decimal
    revenue: Decimal
    profit: Decimal  # revenue - cost
    roi: Decimal | None  # (revenue - cost) / cost
    roas: Decimal | None  # revenue / cost
    cpc: Decimal | None  # cost / clicks
    cost_per: dict[str, Decimal | None]  # canonical step -> cost / uids that reached it
    cpl: Decimal | None  # cost per lead: per uid that subscribed
    cpa: Decimal | None  # cost per acquisition: per depositor


def cost_metrics(
    cost: Decimal, revenue: Decimal, clicks: int, uids: Mapping[str, int]
) -> CostMetrics:
    """CPC, cost per step, CPL, CPA, ROI, ROAS and profit of ``cost`` and ``revenue`` (both in
    the report currency) over ``clicks`` and the distinct uids of each step.

    >>> m = cost_metrics(Decimal("100"), Decimal("150"), 400, {"subscribed": 40, "deposit": 3})
    >>> [str(x) for x in (m.profit, m.roi, m.roas, m.cpc, m.cpl, m.cpa)]
    ['50', '0.5000', '1.5000', '0.2500', '2.5000', '33.3333']
    """
    cost_per = {step: _per(cost, uids.get(step, 0)) for step in CANONICAL_EVENTS}
    return CostMetrics(
        cost=cost,
        revenue=revenue,
        profit=revenue - cost,
        roi=_ratio(revenue - cost, cost),
        roas=_ratio(revenue, cost),
        cpc=_per(cost, clicks),
        cost_per=cost_per,
        cpl=cost_per["subscribed"],
        cpa=cost_per["deposit"],
    )
