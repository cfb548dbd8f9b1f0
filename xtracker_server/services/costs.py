"""A space's ad costs (entered one by one or imported from an Ads Manager export), the
operator's exchange rates, and the costs report: cost, CPC, cost per step, ROI, ROAS and
profit in one report currency (domain/costs.py has the rules, docs/reports.md#costs the
numbers).

Writes are the operator's (``Action.MANAGE``); the costs, the rates and the report can be read
by the space's own bearer secret too (``Action.READ_REPORTS``).

    >>> await set_costs(OPERATOR, ctx, 1, [{"day": "2026-11-01", "level": "campaign",
    ...                                    "id": "120", "amount": "12.50", "currency": "EUR"}])
    Stored(new=1, replaced=0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from xtracker_server.domain import reports as domain
from xtracker_server.domain.cost_import import CostImportError, parse_ads_manager
from xtracker_server.domain.costs import (
    LEVELS,
    CostEntry,
    CostLevel,
    CostMetrics,
    MissingRate,
    Money,
    Rate,
    RateBook,
    check_object_id,
    cost_metrics,
    parse_amount,
    parse_day,
    parse_rate,
)
from xtracker_server.domain.currencies import currency_problem
from xtracker_server.domain.reports import Bucket, ReportError, Window, money_text
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid, NotFound
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.report_query import report_now
from xtracker_server.services.spaces import authorized_space
from xtracker_wire import CANONICAL_EVENTS, check_currency

__all__ = [
    "MAX_COSTS",
    "Imported",
    "Stored",
    "cost_json",
    "costs_report",
    "delete_cost",
    "import_costs",
    "list_costs",
    "rate_json",
    "rates",
    "set_costs",
    "set_rate",
]

#: The most costs one call sets (an import has its own limit, domain/cost_import.MAX_ROWS).
MAX_COSTS = 1000
_FIELDS = ("day", "level", "id", "name", "amount", "currency")


@dataclass(frozen=True)
class Stored:
    new: int
    replaced: int


@dataclass(frozen=True)
class Imported:
    level: CostLevel
    new: int
    replaced: int
    skipped: int  # totals and blank lines


def cost_json(e: CostEntry) -> dict[str, Any]:
    return {"day": e.day.isoformat(), "level": e.level.value, "id": e.object_id, "name": e.name,
            "amount": money_text(e.amount), "currency": e.currency}  # fmt: skip


def rate_json(r: Rate) -> dict[str, Any]:
    return {"from": r.base, "to": r.quote, "day": r.day.isoformat(), "rate": money_text(r.rate)}


async def report_currency(ctx: Context, space_id: int, raw: object, field: str) -> str:
    """A currency the space accepts (a cost's, a rate's, a report's); Invalid(``field``)."""
    try:
        code = check_currency(raw)
    except ValueError as exc:
        raise Invalid(field, str(exc)) from None
    problem = currency_problem(code, await ctx.store.allowed_currencies(space_id) or ())
    if problem:
        raise Invalid(field, problem)
    return code


def _level(raw: object, field: str = "level") -> CostLevel:
    try:
        return CostLevel(str(raw).strip().lower())
    except ValueError:
        raise Invalid(field, "must be campaign, adset, ad or link") from None


async def _entry(ctx: Context, space_id: int, raw: Mapping[str, Any], at: str) -> CostEntry:
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise Invalid(f"{at}{unknown[0]}", f"is not a known field ({', '.join(_FIELDS)})")
    level = _level(raw.get("level"), f"{at}level")
    try:
        day = parse_day(raw.get("day"))
    except ValueError as exc:
        raise Invalid(f"{at}day", str(exc)) from None
    try:
        object_id = check_object_id(raw.get("id"), level)
    except ValueError as exc:
        raise Invalid(f"{at}id", str(exc)) from None
    try:
        amount = parse_amount(raw.get("amount"))
    except ValueError as exc:
        raise Invalid(f"{at}amount", str(exc)) from None
    currency = await report_currency(ctx, space_id, raw.get("currency"), f"{at}currency")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 400):
        raise Invalid(f"{at}name", "must be text of at most 400 characters")
    if level is CostLevel.LINK and await ctx.store.link_by_slug(space_id, object_id) is None:
        raise Invalid(f"{at}id", f"no link {object_id!r} in space {space_id}")
    return CostEntry(day, level, object_id, amount, currency, (name or "").strip() or None)


async def set_costs(
    who: Principal, ctx: Context, space_id: int, items: Iterable[Mapping[str, Any]]
) -> Stored:
    """Set costs ``{"day", "level", "id", "amount", "currency", "name"?}``, each replacing
    the cost of its day, level and id; all or none (the first bad one is refused)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    given = list(items)
    if not given:
        raise Invalid("costs", "is empty: give at least one cost")
    if len(given) > MAX_COSTS:
        raise Invalid("costs", f"holds {len(given)} costs; at most {MAX_COSTS} per call")
    entries: list[CostEntry] = []
    seen: set[tuple[date, CostLevel, str]] = set()
    for n, raw in enumerate(given):
        at = f"costs[{n}]." if len(given) > 1 else ""
        entry = await _entry(ctx, space_id, raw, at)
        key = (entry.day, entry.level, entry.object_id)
        if key in seen:
            raise Invalid(f"{at}id", f"{entry.level.value} {entry.object_id} on {entry.day} twice")
        seen.add(key)
        entries.append(entry)
    return await _put(ctx, space_id, entries)


async def _put(ctx: Context, space_id: int, entries: list[CostEntry]) -> Stored:
    stored = await ctx.store.put_costs(space_id, entries, ctx.clock())
    if stored is None:
        raise NotFound("space", space_id)
    return Stored(*stored)


async def import_costs(who: Principal, ctx: Context, space_id: int, text: str) -> Imported:
    """Import an Ads Manager CSV export (domain/cost_import.py): every row, or none. Invalid
    names each bad line as ``line N``."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    try:
        plan = parse_ads_manager(text)
    except CostImportError as exc:
        problems = [(f"line {n}" if n else "header", p) for n, p in exc.problems]
        if exc.more:
            problems.append(("file", f"and {exc.more} more bad lines"))
        raise Invalid(*problems[0], *problems[1:]) from None
    allowed = await ctx.store.allowed_currencies(space_id) or ()
    for code in sorted({e.currency for e in plan.entries}):
        problem = currency_problem(code, allowed)
        if problem:
            raise Invalid("currency", problem)
    if not plan.entries:
        raise Invalid("file", "holds no cost rows")
    stored = await _put(ctx, space_id, plan.entries)
    return Imported(plan.level, stored.new, stored.replaced, plan.skipped)


def _days(from_day: str | None, to_day: str | None) -> tuple[date, date]:
    try:
        start = parse_day(from_day, what="from") if from_day else date(2000, 1, 1)
        end = parse_day(to_day, what="to") if to_day else date(3000, 1, 1)
    except ValueError as exc:
        raise Invalid(str(exc).split(" ", 1)[0], str(exc)) from None
    if start >= end:
        raise Invalid("from", "must be before to (to is the first day not listed)")
    return start, end


async def list_costs(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    from_day: str | None = None,
    to_day: str | None = None,
    level: str | None = None,
) -> list[CostEntry]:
    """The space's costs of the days ``[from_day, to_day)`` (YYYY-MM-DD; default all)."""
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    start, end = _days(from_day, to_day)
    return await ctx.store.list_costs(space_id, start, end, _level(level) if level else None)


async def delete_cost(
    who: Principal, ctx: Context, space_id: int, *, day: str, level: str, object_id: str
) -> None:
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    try:
        when = parse_day(day)
    except ValueError as exc:
        raise Invalid("day", str(exc)) from None
    kind = _level(level)
    if not await ctx.store.delete_cost(space_id, when, kind, object_id):
        raise NotFound(
            "cost", space_id, f"{kind.value} {object_id} on {when}",
            detail=f"no cost of {kind.value} {object_id} on {when} in space {space_id}",
        )  # fmt: skip


async def set_rate(
    who: Principal, ctx: Context, space_id: int, *, base: str, quote: str, day: str, rate: str
) -> Rate:
    """What one ``base`` is worth in ``quote`` from ``day`` on (until a later day's rate)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    b = await report_currency(ctx, space_id, base, "from")
    q = await report_currency(ctx, space_id, quote, "to")
    if b == q:
        raise Invalid("to", "must differ from from (a currency is worth 1 of itself)")
    try:
        entry = Rate(b, q, parse_day(day), parse_rate(rate))
    except ValueError as exc:
        field = "day" if str(exc).startswith("day") else "rate"
        raise Invalid(field, str(exc)) from None
    if not await ctx.store.set_rate(space_id, entry, ctx.clock()):
        raise NotFound("space", space_id)
    return entry


async def rates(who: Principal, ctx: Context, space_id: int) -> list[Rate]:
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    return await ctx.store.list_rates(space_id)


# --------------------------------------------------------------------------- the report


def whole_days(window: Window, zone: Any) -> tuple[Window, list[int], list[date]]:
    """The window widened to the local days it touches: their starts and dates."""
    starts = domain.bucket_starts(window, Bucket.DAY, zone)
    days = [datetime.fromtimestamp(s / 1000, zone).date() for s in starts]
    after = datetime.combine(days[-1] + timedelta(days=1), time(0), tzinfo=zone)
    return Window(starts[0], int(after.timestamp() * 1000)), starts, days


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else money_text(amount)


def _metrics_json(m: CostMetrics | None, cost: Money, revenue: Money) -> dict[str, Any]:
    figures = ("profit", "roi", "roas", "cpc", "cpl", "cpa")
    return {
        "cost": _text(cost.total),
        "revenue": _text(revenue.total),
        **{f: None if m is None else _text(getattr(m, f)) for f in figures},
        "cost_per": {s: None if m is None else _text(m.cost_per[s]) for s in CANONICAL_EVENTS},
    }


async def _revenue(
    ctx: Context,
    space_id: int,
    revenue: Mapping[str, Decimal],
    starts: list[int],
    days: list[date],
    to_ms: int,
    link_id: int | None = None,
) -> list[tuple[date, str, Decimal]]:
    """Revenue by day and currency (each day's revenue converts at that day's rate)."""
    amounts: list[tuple[date, str, Decimal]] = []
    for code in sorted(revenue):
        by_day = await ctx.store.series_revenue(space_id, code, starts, to_ms, link_id=link_id)
        amounts += [(d, code, v) for d, v in zip(days, by_day, strict=True) if v]
    return amounts


async def costs_report(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    currency: str,
    level: str | None = None,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: str | None = None,
) -> dict[str, Any]:
    """Cost and what it bought in ``currency``, over whole days of ``tz``; the space's total
    at one level (by default the coarsest with costs in the window), and each link with
    link-level costs. A missing rate leaves the converted figures null and is listed in
    ``missing_rates``."""
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    await ctx.store.catch_up_reports(ctx.settings.report_wait_s, cube_may_lag=True)
    code = await report_currency(ctx, space_id, currency, "currency")
    try:
        zone = domain.zone(tz)
        asked = domain.resolve_window(
            now_ms=report_now(ctx.clock),
            days=days, from_=from_, to=to, tz=zone,
        )  # fmt: skip
        window, starts, day_list = whole_days(asked, zone)
    except ReportError as exc:
        raise Invalid(exc.field, exc.problem) from None
    end_day = day_list[-1] + timedelta(days=1)
    store = ctx.store
    costs = await store.list_costs(space_id, day_list[0], end_day)
    by_level: dict[CostLevel, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for c in costs:
        by_level[c.level][c.currency] += c.amount
    chosen = _level(level) if level else next((lv for lv in LEVELS if lv in by_level), LEVELS[0])
    book = RateBook(await store.list_rates(space_id))
    missing: dict[tuple[str, date], MissingRate] = {}

    def convert(amounts: Iterable[tuple[date, str, Decimal]]) -> Money:
        money = Money.convert(book, code, amounts)
        for m in money.missing:
            missing.setdefault((m.currency, m.day), m)
        return money

    def metrics(
        cost: Money, revenue: Money, clicks: int, uids: Mapping[str, int]
    ) -> CostMetrics | None:
        if cost.total is None or revenue.total is None:
            return None
        return cost_metrics(cost.total, revenue.total, clicks, uids)

    counts = await store.funnel_counts(space_id, window)
    cost = convert((c.day, c.currency, c.amount) for c in costs if c.level is chosen)
    revenue = convert(await _revenue(ctx, space_id, counts.revenue, starts, day_list, window.to_ms))
    total = {
        "clicks": counts.clicks,
        **{e: counts.uids.get(e, 0) for e in CANONICAL_EVENTS},
        **_metrics_json(metrics(cost, revenue, counts.clicks, counts.uids), cost, revenue),
    }
    links: list[dict[str, Any]] = []
    link_costs: dict[str, list[CostEntry]] = defaultdict(list)
    for c in costs:
        if c.level is CostLevel.LINK:
            link_costs[c.object_id].append(c)
    rows = {r.link: r for r in await store.link_rows(space_id, window)} if link_costs else {}
    for slug in sorted(link_costs):
        link = await store.link_by_slug(space_id, slug)
        row = rows.get(slug)
        clicks = row.clicks if row else 0
        uids = row.uids if row else {}
        spent = convert((c.day, c.currency, c.amount) for c in link_costs[slug])
        earned = Money(Decimal(0), ())
        if row and link:
            amounts = await _revenue(
                ctx, space_id, row.revenue, starts, day_list, window.to_ms, link.id
            )
            earned = convert(amounts)
        links.append(
            {
                "link": slug,
                "clicks": clicks,
                **{e: uids.get(e, 0) for e in CANONICAL_EVENTS},
                **_metrics_json(metrics(spent, earned, clicks, uids), spent, earned),
            }
        )
    return {
        "from_ms": window.from_ms,
        "to_ms": window.to_ms,
        "from_day": day_list[0].isoformat(),
        "to_day": end_day.isoformat(),
        "tz": tz if tz and tz.upper() != "UTC" else "UTC",
        "currency": code,
        "level": chosen.value,
        "costs": {
            lv.value: {c: money_text(v) for c, v in sorted(by_level[lv].items())}
            for lv in LEVELS
            if lv in by_level
        },
        "total": total,
        "links": links,
        "missing_rates": [
            {"currency": m.currency, "to": m.to, "day": m.day.isoformat(), "detail": str(m)}
            for _, m in sorted(missing.items())
        ],
    }
