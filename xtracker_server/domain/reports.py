"""Funnel arithmetic, pure: windows and buckets in a time zone, ratios, the conversion gauge,
exact money. No I/O; ``store/sqlite/reports.py`` counts, this module turns counts into answers.

Definitions (docs/reports.md says the same for users):

- a *step's* number in a window is the count of distinct uids with at least one event of that
  step whose ``occurred_at_ms`` is in ``[from_ms, to_ms)``; *clicks* are the clicks created in
  the window (each click is one uid; crawlers never mint one);
- ``from_previous`` = uids(step) / uids(previous step), ``from_click`` = uids(step) / clicks;
  ``None`` when the denominator is 0; rounded to 4 decimals;
- money is ``Decimal``, never ``float``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum

from xtracker_server.domain.query import whole_number
from xtracker_server.exceptions import XTrackerServerError
from xtracker_wire import CANONICAL_EVENTS

#: The funnel, in order: the click, then the four canonical events.
STEPS: tuple[str, ...] = ("click", *CANONICAL_EVENTS)
#: What a time series can show: a step (distinct uids per bucket) or money in one currency:
#: revenue (gross), the part of it reversed, or net (gross less reversed).
MONEY_METRICS: tuple[str, ...] = ("revenue", "reversed_revenue", "net_revenue")
METRICS: tuple[str, ...] = (*STEPS, *MONEY_METRICS)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
#: The longest window a report covers (longer ones are refused: ask for less, or page).
MAX_WINDOW_DAYS = 400
#: The most buckets one series returns (400 days of days; about 83 days of hours).
MAX_BUCKETS = 2000
#: Ratios are rounded to this many decimals (0.1234 = 12.34 %).
RATIO_DECIMALS = 4
#: Revenue per click is rounded to this many decimals.
PER_CLICK_DECIMALS = 4
#: The deliveries report's health looks at attempts this recent.
RECENT_MS = 24 * HOUR_MS


class ReportError(XTrackerServerError, ValueError):
    """A report parameter that cannot be honoured; the message says what to send instead."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Bucket(str, Enum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True)
class Window:
    """``[from_ms, to_ms)`` in epoch milliseconds."""

    from_ms: int
    to_ms: int

    @property
    def length_ms(self) -> int:
        return self.to_ms - self.from_ms

    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.from_ms - self.length_ms, self.from_ms)


def zone(name: str | None) -> tzinfo:
    """A time zone by IANA name (``Europe/Berlin``); ``UTC`` when none is given."""
    if not name or name.upper() == "UTC":
        return timezone.utc
    # Here: zoneinfo finds the time zone data through sysconfig, which a report in UTC (the
    # default) does not need to import.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(
            "tz", f"{name!r} is not a known time zone; use an IANA name such as Europe/Berlin"
        ) from None


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: Reports cover 1970 to 2999: far inside what ``datetime`` can step through (days, hours,
#: time zones, the previous window) without overflowing at year 9999.
EARLIEST_MS = 0
LATEST_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z


def parse_instant(raw: str, tz: tzinfo, name: str) -> int:
    """Epoch ms of an ISO date (midnight in ``tz``), ISO datetime (in ``tz`` unless it carries an
    offset or ``Z``), or epoch milliseconds (12 to 18 ASCII digits); between 1970 and 2999."""
    text = raw.strip()
    ms = whole_number(text) if len(text) >= 12 else None
    if ms is None:
        try:
            if _DATE.fullmatch(text):
                local = datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz)
            else:
                text = text.replace("Z", "+00:00").replace("z", "+00:00")
                parsed = datetime.fromisoformat(text)
                local = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
            ms = int(local.timestamp() * 1000)
        except (ValueError, OverflowError):
            raise ReportError(
                name,
                f"{raw[:40]!r} is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
                " or epoch milliseconds",
            ) from None
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise ReportError(name, f"{raw[:40]!r} is not between 1970 and 2999")
    return ms


def resolve_window(
    *,
    now_ms: int,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: tzinfo = timezone.utc,
) -> Window:
    """The window a report covers: ``--days N`` (ending now), ``--from``/``--to`` (``--to``
    defaults to now; a bare date as ``--to`` means the start of that day, so
    ``--from 2025-01-01 --to 2025-01-08`` is the seven days of 1 to 7 January), or the last 7
    days."""
    if days is not None and (from_ is not None or to is not None):
        raise ReportError("days", "give either days or from/to, not both")
    if from_ is None and to is not None:
        raise ReportError("from", "is required with to")
    if from_ is not None:
        start = parse_instant(from_, tz, "from")
        end = parse_instant(to, tz, "to") if to is not None else now_ms
    else:
        n = 7 if days is None else days
        if n < 1:
            raise ReportError("days", "must be at least 1")
        if n > MAX_WINDOW_DAYS:
            raise ReportError("days", f"must be at most {MAX_WINDOW_DAYS}")
        start, end = now_ms - n * DAY_MS, now_ms
    if start >= end:
        raise ReportError("from", "must be before to")
    if end - start > MAX_WINDOW_DAYS * DAY_MS:
        raise ReportError("to", f"the window is longer than {MAX_WINDOW_DAYS} days; ask for less")
    return Window(start, end)


def bucket_starts(window: Window, bucket: Bucket, tz: tzinfo) -> list[int]:
    """The starts (epoch ms) of the hours or days, on the wall clock of ``tz``, that cover the
    window: the first is the bucket that contains ``from_ms``. Days follow daylight saving time
    (a day may be 23 or 25 hours long)."""
    first = datetime.fromtimestamp(window.from_ms / 1000, tz)
    starts: list[int] = []
    if bucket is Bucket.DAY:
        day = first.date()
        while True:
            start = int(datetime.combine(day, time(0), tzinfo=tz).timestamp() * 1000)
            if start >= window.to_ms:
                break
            starts.append(start)
            day += timedelta(days=1)
            _check_buckets(len(starts))
        return starts
    at = first.replace(minute=0, second=0, microsecond=0)
    start = int(at.timestamp() * 1000)
    while start < window.to_ms:
        starts.append(start)
        _check_buckets(len(starts))
        # Step in absolute time, then align to the local hour again: exact across DST changes
        # and in zones whose offset is not a whole hour.
        nxt = datetime.fromtimestamp((start + HOUR_MS) / 1000, tz)
        start = int(nxt.replace(minute=0, second=0, microsecond=0).timestamp() * 1000)
        if start <= starts[-1]:  # never stall on an odd zone transition
            start = starts[-1] + HOUR_MS
    return starts


def _check_buckets(count: int) -> None:
    if count > MAX_BUCKETS:
        raise ReportError(
            "bucket", f"more than {MAX_BUCKETS} buckets: use a shorter window or --bucket day"
        )


def iso_local(ms: int, tz: tzinfo) -> str:
    """``2025-01-31T00:00:00+09:00``: a bucket start as its local wall-clock time."""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat()


def ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator`` rounded to 4 decimals; ``None`` when dividing by zero."""
    if denominator == 0:
        return None
    return round(numerator / denominator, RATIO_DECIMALS)


# ----------------------------------------------------------------------------- money


def money_text(amount: Decimal) -> str:
    """Fixed-point text, never exponent notation."""
    return format(amount, "f")


def sum_from_parts(integer_sum: int, fraction_sum: int, scale: int, decimals: int) -> Decimal:
    """Reassemble an exact total from what SQL summed: the integer parts, and the fraction parts
    as integers of ``decimals`` digits; shown with ``scale`` decimals (the largest scale among
    the amounts, as ``Decimal`` addition would keep it)."""
    if 0 <= scale <= decimals:  # in integers: no amount had more than ``scale`` decimals
        cents, rest = divmod(integer_sum * 10**decimals + fraction_sum, 10 ** (decimals - scale))
        if not rest:
            return Decimal(cents).scaleb(-scale)
    total = Decimal(integer_sum) + Decimal(fraction_sum).scaleb(-decimals)
    return total.quantize(Decimal(1).scaleb(-scale)) if scale > 0 else total.quantize(Decimal(1))


def net_revenue(gross: dict[str, Decimal], reversed_: dict[str, Decimal]) -> dict[str, Decimal]:
    """Per currency, the gross revenue less what was reversed (exact). The reversed amounts
    are part of the gross (the same deposits), so a currency of ``reversed_`` is in ``gross``.

        >>> net_revenue({"USD": Decimal("25.00")}, {"USD": Decimal("10")})
        {'USD': Decimal('15.00')}
    """
    return {c: v - reversed_.get(c, Decimal(0)) for c, v in gross.items()}


def per_click(amount: Decimal, clicks: int) -> Decimal | None:
    if clicks == 0:
        return None
    return (amount / clicks).quantize(
        Decimal(1).scaleb(-PER_CLICK_DECIMALS), rounding=ROUND_HALF_EVEN
    )


# ----------------------------------------------------------------------------- the funnel


class FunnelMode(str, Enum):
    """How a funnel counts (docs/reports.md#cohort-and-activity-modes), never mixed.

    ``cohort``: the clicks created in the window, and the steps their uids reached at any time
    (also after the window). Every step is a subset of the clicks: no from-click ratio over 1.
    ``activity``: the clicks and the events that happened in the window, each step counted on
    its own (a uid may reach ``deposit`` in the window after its ``contact`` in an earlier one).
    """

    COHORT = "cohort"
    ACTIVITY = "activity"


def funnel_mode(raw: str | None) -> FunnelMode:
    """The mode a request named (None: ``activity``, what the funnel always counted)."""
    if raw is None or raw == "":
        return FunnelMode.ACTIVITY
    try:
        return FunnelMode(raw.strip().lower())
    except ValueError:
        raise ReportError("mode", "must be cohort or activity") from None


@dataclass(frozen=True)
class FunnelCounts:
    """What the store counted for one window (and, optionally, one link)."""

    uids: dict[str, int]  # step -> distinct uids (clicks: clicks)
    deposits: int  # deposit rows
    first_deposits: int  # uids whose first deposit ever is in the window (cohort: depositors)
    revenue: dict[str, Decimal]  # currency -> total (gross: reversals not taken off)
    unattributed: dict[str, int]  # event -> rows without a uid
    unattributed_revenue: dict[str, Decimal] = field(default_factory=dict)
    # Events in the window whose uid has no click in the space: distinct uids per step, deposit
    # rows and revenue; in no step and no ratio.
    unknown: dict[str, int] = field(default_factory=dict)
    unknown_deposits: int = 0
    unknown_revenue: dict[str, Decimal] = field(default_factory=dict)
    reversed_deposits: int = 0  # of the deposit rows, those reversed (deposit.reversed)
    reversed_revenue: dict[str, Decimal] = field(default_factory=dict)  # their amounts

    @property
    def net_revenue(self) -> dict[str, Decimal]:
        return net_revenue(self.revenue, self.reversed_revenue)

    @property
    def clicks(self) -> int:
        return self.uids.get("click", 0)

    @property
    def depositors(self) -> int:
        return self.uids.get("deposit", 0)


@dataclass(frozen=True)
class StepRatio:
    step: str
    uids: int
    from_previous: float | None
    from_click: float | None


def step_ratios(counts: FunnelCounts) -> list[StepRatio]:
    rows: list[StepRatio] = []
    previous: int | None = None
    for step in STEPS:
        n = counts.uids.get(step, 0)
        rows.append(
            StepRatio(
                step=step,
                uids=n,
                from_previous=None if previous is None else ratio(n, previous),
                from_click=ratio(n, counts.clicks),
            )
        )
        previous = n
    return rows


@dataclass(frozen=True)
class GaugeStep:
    step: str
    ratio: float | None  # from_previous in this window
    previous_ratio: float | None  # from_previous in the previous window
    change_points: float | None  # (ratio - previous_ratio) * 100, in percentage points
    weakest: bool


@dataclass(frozen=True)
class Gauge:
    steps: list[GaugeStep]  # every step after the click
    weakest: str | None  # the step with the lowest non-null ratio


def gauge(current: FunnelCounts, previous: FunnelCounts) -> Gauge:
    """Every step-to-step ratio, the weakest marked, against the previous window.

    The weakest step is the one with the lowest ``from_previous`` (the first in funnel order
    on a tie); steps whose ratio is ``None`` (nobody reached the step before) or over 1 (more
    uids than the step before: they skipped it, or reached it in an earlier window) are not
    ranked: such a ratio measures no leak. Events without a known click are in no ratio.
    """
    now = step_ratios(current)[1:]
    before = {r.step: r.from_previous for r in step_ratios(previous)}
    ranked = [r for r in now if r.from_previous is not None and r.from_previous <= 1]
    weakest = min(ranked, key=lambda r: r.from_previous or 0.0).step if ranked else None
    steps = []
    for r in now:
        prev = before.get(r.step)
        change = None
        if r.from_previous is not None and prev is not None:
            change = round((r.from_previous - prev) * 100, 2)
        steps.append(GaugeStep(r.step, r.from_previous, prev, change, r.step == weakest))
    return Gauge(steps, weakest)


# ----------------------------------------------------------------------------- per link


#: The per-link columns of landing visits not recorded as clicks, and the reason each counts.
UNRECORDED_COLUMNS: dict[str, str] = {
    "unrecorded_bots": "bot",
    "unrecorded_limited": "limited",
    "unrecorded_dropped": "dropped",
}

#: Columns of the per-link table a user can sort by.
LINK_COLUMNS: tuple[str, ...] = (
    "link",
    "clicks",
    *CANONICAL_EVENTS,
    "deposits",
    "depositors",
    "click_to_deposit",
    "revenue",
    "revenue_per_click",
    *UNRECORDED_COLUMNS,
    "reversed_deposits",
    "reversed_revenue",
    "net_revenue",
)


@dataclass(frozen=True)
class LinkRow:
    link: str | None  # the slug; None for events whose uid has no click on a link
    clicks: int
    uids: dict[str, int]  # canonical event -> distinct uids
    deposits: int
    revenue: dict[str, Decimal]
    #: Landing visits answered but not recorded as clicks, by reason (``bot``, ``limited``,
    #: ``dropped``).
    unrecorded: dict[str, int] = field(default_factory=dict)
    reversed_deposits: int = 0
    reversed_revenue: dict[str, Decimal] = field(default_factory=dict)

    @property
    def net_revenue(self) -> dict[str, Decimal]:
        return net_revenue(self.revenue, self.reversed_revenue)

    @property
    def depositors(self) -> int:
        return self.uids.get("deposit", 0)

    @property
    def click_to_deposit(self) -> float | None:
        return ratio(self.depositors, self.clicks)

    def revenue_per_click(self) -> dict[str, Decimal | None]:
        return {c: per_click(v, self.clicks) for c, v in self.revenue.items()}


def sort_links(rows: list[LinkRow], column: str, *, desc: bool, currency: str) -> list[LinkRow]:
    """Sort by any column; money columns by ``currency``. Rows without a value (a rate over no
    clicks) go last either way; ties keep the slug order."""
    if column not in LINK_COLUMNS:
        raise ReportError("sort", f"must be one of {', '.join(LINK_COLUMNS)}")

    def key(row: LinkRow) -> object:
        if column == "link":
            return row.link
        if column == "clicks":
            return row.clicks
        if column in CANONICAL_EVENTS:
            return row.uids.get(column, 0)
        if column == "deposits":
            return row.deposits
        if column == "depositors":
            return row.depositors
        if column == "click_to_deposit":
            return row.click_to_deposit
        if column == "revenue":
            return row.revenue.get(currency, Decimal(0))
        if column in UNRECORDED_COLUMNS:
            return row.unrecorded.get(UNRECORDED_COLUMNS[column], 0)
        if column == "reversed_deposits":
            return row.reversed_deposits
        if column == "reversed_revenue":
            return row.reversed_revenue.get(currency, Decimal(0))
        if column == "net_revenue":
            return row.net_revenue.get(currency, Decimal(0))
        return row.revenue_per_click().get(currency) if row.clicks else None

    by_slug = sorted(rows, key=lambda r: (r.link is None, r.link or ""))
    present = [r for r in by_slug if key(r) is not None]
    missing = [r for r in by_slug if key(r) is None]
    present.sort(key=key, reverse=desc)  # type: ignore[arg-type]
    return present + missing


def main_currency(counts: dict[str, int]) -> str:
    """The currency money columns sort by when none is asked for: the one with the most
    deposits (then alphabetical); USD when there is no revenue."""
    if not counts:
        return "USD"
    return sorted(counts, key=lambda c: (-counts[c], c))[0]
