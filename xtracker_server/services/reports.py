"""A space's reports and the start of its live stream, for the operator and for the space's
own bearer secret (a bot owner may read their space's numbers; another space's secret is
Forbidden). docs/reports.md describes every number; the dict shapes are stable (scripts
depend on them).

The services (``funnel``, ``links``, ``series``, ``deliveries``) authorize, bring the report
rollup up to everything committed, and build one report. Each report (``funnel_report``, …)
resolves the window (``domain.reports.resolve_window``), counts with the store's report
queries (``funnel_counts``, ``link_rows``, …) and computes with ``domain.reports``.

    >>> (await funnel(OPERATOR, ctx, 1, query=ReportQuery(days=7)))["steps"][0]
    {'step': 'click', 'uids': 1200, 'from_previous': None, 'from_click': 1.0}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from xtracker_server.clock import now_ms as wall_clock_ms
from xtracker_server.domain import reports as domain
from xtracker_server.domain.reports import (
    RECENT_MS,
    Bucket,
    FunnelCounts,
    ReportError,
    Window,
    money_text,
)
from xtracker_server.services import report_filters
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.report_query import ReportQuery, report_now
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import Store
from xtracker_wire import CANONICAL_EVENTS, check_currency

if TYPE_CHECKING:
    from xtracker_server.domain.tail import StreamCursor

__all__ = [
    "deliveries",
    "deliveries_report",
    "funnel",
    "funnel_report",
    "links",
    "links_report",
    "series",
    "series_points",
    "series_report",
    "stream_start",
]


async def funnel(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    link: str | None = None,
    mode: str | None = None,
    query: ReportQuery | None = None,
) -> dict[str, Any]:
    """``funnel_report`` of the space (of one link's uids, if given), in ``mode``
    (``cohort`` or ``activity``; None: activity), over ``query``'s window and filters."""
    return await _report(who, ctx, space_id, funnel_report, query, link=link, mode=mode)


async def links(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    sort: str = "clicks",
    desc: bool = True,
    currency: str | None = None,
    query: ReportQuery | None = None,
) -> dict[str, Any]:
    """``links_report`` of the space."""
    return await _report(
        who, ctx, space_id, links_report, query, sort=sort, desc=desc, currency=currency
    )


async def series(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    metric: str,
    bucket: Bucket | str = Bucket.DAY,
    currency: str | None = None,
    link: str | None = None,
    query: ReportQuery | None = None,
) -> dict[str, Any]:
    """``series_report`` of the space."""
    return await _report(
        who, ctx, space_id, series_report, query, metric=metric, bucket=bucket,
        currency=currency, link=link,
    )  # fmt: skip


async def deliveries(who: Principal, ctx: Context, space_id: int) -> dict[str, Any]:
    """``deliveries_report`` of the space (read from the deliveries: no rollup)."""
    return await _report(who, ctx, space_id, deliveries_report, None, rollup=False)


async def _report(
    who: Principal,
    ctx: Context,
    space_id: int,
    report: Callable[..., Awaitable[dict[str, Any]]],
    query: ReportQuery | None,
    *,
    rollup: bool = True,
    **params: Any,
) -> dict[str, Any]:
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    if rollup:  # count everything committed before this call
        await ctx.store.catch_up_reports(ctx.settings.report_wait_s, cube_may_lag=True)
    window = {} if query is None else query.params()
    try:
        return await report(ctx.store, space_id, now_ms=report_now(ctx.clock), **window, **params)
    except ReportError as exc:
        raise Invalid(exc.field, exc.problem) from None


async def stream_start(
    who: Principal, ctx: Context, space_id: int, since: str | None = None
) -> StreamCursor | None:
    """Where the space's live stream starts: after ``since`` (an id the stream sent, to
    resume), or now (None). Invalid (field ``since``) for an id that is not one, or that is
    ahead of the store's rows."""
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    if not since:
        return None
    from xtracker_server.domain.tail import StreamCursor  # the live tail's, not a report's

    cursor = StreamCursor.parse(since)
    if cursor is None:
        raise Invalid("since", "must be an id the stream sent (such as 12-345-6)")
    top = await ctx.store.tail_top()
    if any(mine > newest for mine, newest in zip(cursor.newest, top, strict=True)):
        raise Invalid(
            "since", "is ahead of this server's rows (not an id it sent): reconnect without it"
        )
    return cursor


# --------------------------------------------------------------------------- the reports


def _window(
    now_ms: int | None, days: int | None, from_: str | None, to: str | None, tz: str | None
) -> tuple[Window, Any, str]:
    query = ReportQuery(days, from_, to, tz)
    window, zone = query.window(wall_clock_ms() if now_ms is None else now_ms)
    return window, zone, query.tz_name


async def _link_id(store: Store, space_id: int, slug: str | None) -> int | None:
    if slug is None:
        return None
    link = await store.link_by_slug(space_id, slug)
    if link is None:
        raise ReportError("link", f"no link {slug!r} in space {space_id}")
    return link.id


def _money(totals: dict[str, Any]) -> dict[str, str]:
    return {c: money_text(v) for c, v in sorted(totals.items())}


def _funnel_json(counts: FunnelCounts) -> dict[str, Any]:
    return {
        "steps": [
            {"step": r.step, "uids": r.uids, "from_previous": r.from_previous,
             "from_click": r.from_click}
            for r in domain.step_ratios(counts)
        ],
        "deposits": counts.deposits,
        "depositors": counts.depositors,
        "first_deposits": counts.first_deposits,
        "revenue": _money(counts.revenue),
        "reversed_deposits": counts.reversed_deposits,
        "reversed_revenue": _money(counts.reversed_revenue),
        "net_revenue": _money(counts.net_revenue),
    }  # fmt: skip


async def funnel_report(
    store: Store,
    space_id: int,
    *,
    link: str | None = None,
    mode: str | None = None,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: str | None = None,
    now_ms: int | None = None,
    filters: Sequence[str] = (),
) -> dict[str, Any]:
    """The funnel of a window in ``mode``, its conversion gauge, and the previous window of the
    same length (same mode). ``unattributed`` (events without a uid) and ``without_click``
    (events whose uid has no click in the space) are always the space's, by the events' time:
    no link can claim them, and they are in no step. ``filters``: see
    services/report_filters.py."""
    how = domain.funnel_mode(mode)
    window, _, tz_name = _window(now_ms, days, from_, to, tz)
    link_id = await _link_id(store, space_id, link)
    _, scope = await report_filters.read_filters(store, space_id, filters, link=link)
    before = window.previous()
    if scope is None:
        current = await store.funnel_counts(space_id, window, link_id=link_id, mode=how)
        previous = await store.funnel_counts(space_id, before, link_id=link_id, mode=how)
    else:
        current = await report_filters.funnel_counts(store, space_id, window, scope, mode=how)
        previous = await report_filters.funnel_counts(store, space_id, before, scope, mode=how)
    g = domain.gauge(current, previous)
    unattributed: dict[str, Any] = {e: current.unattributed.get(e, 0) for e in CANONICAL_EVENTS}
    unattributed["revenue"] = _money(current.unattributed_revenue)
    without_click: dict[str, Any] = {e: current.unknown.get(e, 0) for e in CANONICAL_EVENTS}
    without_click["deposits"] = current.unknown_deposits
    without_click["revenue"] = _money(current.unknown_revenue)
    return {
        "from_ms": window.from_ms,
        "to_ms": window.to_ms,
        "tz": tz_name,
        "link": link,
        "mode": how.value,
        **_funnel_json(current),
        "unattributed": unattributed,
        "without_click": without_click,
        "gauge": {
            "weakest": g.weakest,
            "steps": [
                {
                    "step": s.step,
                    "ratio": s.ratio,
                    "previous_ratio": s.previous_ratio,
                    "change_points": s.change_points,
                    "weakest": s.weakest,
                }
                for s in g.steps
            ],
        },
        "previous": {"from_ms": before.from_ms, "to_ms": before.to_ms, **_funnel_json(previous)},
    }


async def links_report(
    store: Store,
    space_id: int,
    *,
    sort: str = "clicks",
    desc: bool = True,
    currency: str | None = None,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: str | None = None,
    now_ms: int | None = None,
    filters: Sequence[str] = (),
) -> dict[str, Any]:
    """Every link's numbers in the window, sorted by ``sort`` (money columns in
    ``currency``: by default the currency with the most deposits); with a link filter, the
    links it keeps."""
    window, _, tz_name = _window(now_ms, days, from_, to, tz)
    if sort not in domain.LINK_COLUMNS:
        raise ReportError("sort", f"must be one of {', '.join(domain.LINK_COLUMNS)}")
    _, scope = await report_filters.read_filters(store, space_id, filters)
    rows = await store.link_rows(space_id, window)
    if scope is not None:
        rows = [r for r in rows if scope.filter.matches(r.link)]
    if currency is None:
        currency = domain.main_currency(await store.deposit_currencies(space_id, window))
    else:
        currency = _currency(currency)
    ordered = domain.sort_links(rows, sort, desc=desc, currency=currency)
    return {
        "from_ms": window.from_ms,
        "to_ms": window.to_ms,
        "tz": tz_name,
        "sort": sort,
        "desc": desc,
        "currency": currency,
        "links": [
            {
                "link": r.link,
                "clicks": r.clicks,
                **{e: r.uids.get(e, 0) for e in CANONICAL_EVENTS},
                "deposits": r.deposits,
                "depositors": r.depositors,
                "click_to_deposit": r.click_to_deposit,
                "revenue": _money(r.revenue),
                "revenue_per_click": {
                    c: None if v is None else money_text(v)
                    for c, v in sorted(r.revenue_per_click().items())
                },
                **{
                    column: r.unrecorded.get(reason, 0)
                    for column, reason in domain.UNRECORDED_COLUMNS.items()
                },
                "reversed_deposits": r.reversed_deposits,
                "reversed_revenue": _money(r.reversed_revenue),
                "net_revenue": _money(r.net_revenue),
            }
            for r in ordered
        ],
    }


def _currency(raw: str) -> str:
    try:
        return check_currency(raw)
    except ValueError as exc:
        raise ReportError("currency", str(exc)) from None


async def series_report(
    store: Store,
    space_id: int,
    *,
    metric: str,
    bucket: Bucket | str = Bucket.DAY,
    currency: str | None = None,
    link: str | None = None,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: str | None = None,
    now_ms: int | None = None,
    filters: Sequence[str] = (),
) -> dict[str, Any]:
    """A step (distinct uids per bucket) or revenue in one currency per hour or day, every
    bucket present (zero-filled). Buckets start on the wall clock of ``tz``; the first is
    counted from the window's start."""
    head, points = await series_points(
        store, space_id, metric=metric, bucket=bucket, currency=currency, link=link, days=days,
        from_=from_, to=to, tz=tz, now_ms=now_ms, filters=filters,
    )  # fmt: skip
    return {**head, "points": [p async for p in points]}


#: The buckets of a series one store read counts (an export streams them read by read).
SERIES_PAGE = 200


async def series_points(
    store: Store,
    space_id: int,
    *,
    metric: str,
    bucket: Bucket | str = Bucket.DAY,
    currency: str | None = None,
    link: str | None = None,
    days: int | None = None,
    from_: str | None = None,
    to: str | None = None,
    tz: str | None = None,
    now_ms: int | None = None,
    filters: Sequence[str] = (),
) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
    """``series_report`` in two parts: its fields other than ``points`` (every parameter
    checked: a ReportError is raised here, before any point), and its points, counted
    ``SERIES_PAGE`` buckets per store read as they are iterated."""
    if metric not in domain.METRICS:
        raise ReportError("metric", f"must be one of {', '.join(domain.METRICS)}")
    try:
        size = Bucket(bucket)
    except ValueError:
        raise ReportError("bucket", "must be hour or day") from None
    window, zone, tz_name = _window(now_ms, days, from_, to, tz)
    link_id = await _link_id(store, space_id, link)
    _, scope = await report_filters.read_filters(store, space_id, filters, link=link)
    starts = domain.bucket_starts(window, size, zone)
    bounds = [max(s, window.from_ms) for s in starts]
    code = None
    if metric in domain.MONEY_METRICS:
        code = _currency(currency or "USD")
    elif currency is not None:
        raise ReportError("currency", "only the revenue metric has a currency")

    async def money(part: list[int], end: int, reversed_only: bool) -> list[Decimal]:
        if scope is None:
            return await store.series_revenue(
                space_id, code or "", part, end, link_id=link_id, reversed_only=reversed_only
            )
        return await report_filters.series_revenue(
            store, space_id, code or "", part, end, scope, reversed_only=reversed_only
        )

    async def page(lo: int, hi: int) -> list[Any]:
        part, end = bounds[lo:hi], bounds[hi] if hi < len(bounds) else window.to_ms
        if code is not None:
            gross: list[Decimal] = []
            if metric != "reversed_revenue":
                gross = await money(part, end, False)
            if metric != "revenue":
                taken = await money(part, end, True)
                gross = (
                    taken
                    if metric == "reversed_revenue"
                    else [g - r for g, r in zip(gross, taken, strict=True)]
                )
            return [money_text(v) for v in gross]
        counts = (
            await store.series_counts(space_id, metric, part, end, link_id=link_id)
            if scope is None
            else await report_filters.series_counts(store, space_id, metric, part, end, scope)
        )
        return list(counts)

    async def points() -> AsyncIterator[dict[str, Any]]:
        for lo in range(0, len(starts), SERIES_PAGE):
            values = await page(lo, lo + SERIES_PAGE)
            for s, v in zip(starts[lo : lo + SERIES_PAGE], values, strict=True):
                yield {"start_ms": s, "start": domain.iso_local(s, zone), "value": v}

    head = {
        "metric": metric,
        "bucket": size.value,
        "tz": tz_name,
        "from_ms": window.from_ms,
        "to_ms": window.to_ms,
        "link": link,
        "currency": code,
    }
    return head, points()


async def deliveries_report(
    store: Store, space_id: int, *, now_ms: int | None = None
) -> dict[str, Any]:
    """Per destination: deliveries by status, the last success, the last error, and the
    attempts of the last 24 hours (how many, how many failed, median latency)."""
    now = wall_clock_ms() if now_ms is None else now_ms
    return {
        "recent_ms": RECENT_MS,
        "destinations": [
            {
                "id": d.id,
                "name": d.name,
                "kind": d.kind,
                "enabled": d.enabled,
                "healthy": d.health_reason is None,
                "health_reason": d.health_reason,
                **d.counts,
                "last_success_ms": d.last_success_ms,
                "last_error": d.last_error,
                "last_error_ms": d.last_error_ms,
                "recent_attempts": d.recent_attempts,
                "recent_failures": d.recent_failures,
                "median_latency_ms": d.median_latency_ms,
            }
            for d in await store.delivery_health(space_id, now)
        ],
    }
