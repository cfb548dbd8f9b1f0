"""The grouped report (issue 17 §1): a space's funnel, money and time to convert per value of
one dimension, or of two nested ones (campaign → ad), with filters, a sort, a limit, and with a
report currency its cost, CPC, cost per step, CPL, CPA, ROI, ROAS and profit. The admin API
(``GET /admin/spaces/{id}/reports/groups``), ``xtracker report groups`` and the exports all call
``groups_report``; docs/reports.md#grouped-reports describes the JSON.

The store counts (``Store.group_counts``, domain/groups.py); domain/group_report.py turns the
counts into rows. Default mode: cohort (a group's clicks in the window and what their uids did
at any time), so every ratio from click is at most 1 and a group's money is its own clicks'.

    >>> data = await groups_report(OPERATOR, ctx, 1, by="campaign,ad", currency="USD",
    ...                            sort="profit", query=ReportQuery(days=30))
    >>> data["rows"][0]["children"][0]["cost"]["roi"]
    '0.4210'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from xtracker_server.domain import group_report as rows_of
from xtracker_server.domain import reports as domain
from xtracker_server.domain.costs import MissingRate, RateBook
from xtracker_server.domain.filters import SUB_ID_PREFIX, FilterError, parse_filters
from xtracker_server.domain.group_report import GroupRow
from xtracker_server.domain.groups import GroupCounts, GroupQuery, check_group_by
from xtracker_server.domain.reports import FunnelMode, ReportError, money_text
from xtracker_server.services.context import Context
from xtracker_server.services.costs import report_currency, whole_days
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.report_query import ReportQuery, report_now
from xtracker_server.services.spaces import authorized_space
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["groups_report"]


def _by(raw: str | Sequence[str]) -> list[str]:
    return [d for part in ([raw] if isinstance(raw, str) else raw) for d in part.split(",")]


def _mode(raw: str | None) -> FunnelMode:
    return FunnelMode.COHORT if raw is None or raw == "" else domain.funnel_mode(raw)


def _empty() -> GroupCounts:
    return GroupCounts(key=(), clicks=0, uids={e: 0 for e in CANONICAL_EVENTS})


async def groups_report(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    by: str | Sequence[str] = (),
    mode: str | None = None,
    sort: str = "clicks",
    desc: bool = True,
    limit: int | None = None,
    currency: str | None = None,
    query: ReportQuery | None = None,
) -> dict[str, Any]:
    """The report (docs/reports.md#grouped-reports): ``by`` up to two dimensions
    (``"campaign,ad"``: each campaign with its ads as ``children``), ``mode`` cohort (the
    default) or activity, rows sorted by ``sort`` and at most ``limit`` of them (and of each
    row's children); ``currency``: the report currency of the cost figures (then the window
    covers whole days of its time zone, as costs are entered per day). Invalid for a
    parameter it cannot honour."""
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    # count everything committed before this call
    await ctx.store.catch_up_reports(ctx.settings.report_wait_s, cube_may_lag=True)
    try:
        return await _report(
            ctx, space_id, by, mode, sort, desc, limit, currency, query or ReportQuery()
        )
    except ReportError as exc:
        raise Invalid(exc.field, exc.problem) from None


async def _report(
    ctx: Context,
    space_id: int,
    by_raw: str | Sequence[str],
    mode: str | None,
    sort: str,
    desc: bool,
    limit_raw: int | None,
    currency: str | None,
    query: ReportQuery,
) -> dict[str, Any]:
    store = ctx.store
    how = _mode(mode)
    window, zone = query.window(report_now(ctx.clock))
    asked = _by(by_raw)
    sub_ids: tuple[str, ...] = ()
    if any(t.strip().startswith(SUB_ID_PREFIX) for t in (*asked, *query.filters)):
        sub_ids = await store.sub_id_params(space_id) or ()
    by = check_group_by(asked, sub_ids=sub_ids)
    try:
        filters = parse_filters(query.filters, sub_ids=sub_ids)
    except FilterError as exc:
        raise ReportError("filter", exc.problem) from None
    code = None if currency is None else await report_currency(ctx, space_id, currency, "currency")
    column = rows_of.check_sort(sort, currency=code)
    limit = rows_of.check_limit(limit_raw)
    first_day = end_day = None
    if code is not None:
        window, _, days = whole_days(window, zone)
        first_day, end_day = days[0], days[-1] + timedelta(days=1)

    async def counts(dims: tuple[str, ...]) -> list[GroupCounts]:
        q = GroupQuery(window, dims, filters, query.tz_name, how)
        return await store.group_counts(space_id, q)

    outer = [GroupRow(c, by[0]) for c in await counts(by[:1])] if by else []
    if len(by) == 2:
        parents = {row.counts.key: row for row in outer}
        for c in await counts(by):
            parents[c.key[:1]].children.append(GroupRow(c, by[1]))
    total = GroupRow(next(iter(await counts(())), _empty()), None)
    missing: list[MissingRate] = []
    if code is not None and first_day is not None and end_day is not None:
        missing = await _costs(ctx, space_id, outer, code, first_day, end_day)
    money = code or domain.main_currency(await store.deposit_currencies(space_id, window))
    ordered = rows_of.sort_rows(outer, column, desc=desc, currency=money)
    for row in ordered:
        row.children = rows_of.sort_rows(row.children, column, desc=desc, currency=money)[:limit]
    loose = await store.funnel_counts(space_id, window, mode=how)
    without_click: dict[str, Any] = {e: loose.unknown.get(e, 0) for e in CANONICAL_EVENTS}
    without_click["deposits"] = loose.unknown_deposits
    without_click["revenue"] = {c: money_text(v) for c, v in sorted(loose.unknown_revenue.items())}
    return {
        "from_ms": window.from_ms,
        "to_ms": window.to_ms,
        "tz": query.tz_name,
        "mode": how.value,
        "by": list(by),
        "filters": filters.texts(),
        "sort": column,
        "desc": desc,
        "limit": limit,
        "currency": code,
        "sort_currency": money,
        "ttc_estimate": True,
        "rows_total": len(outer),
        "total": rows_of.row_json(total, (), costs=False),
        "rows": [rows_of.row_json(r, by, costs=code is not None) for r in ordered[:limit]],
        "without_click": without_click,
        "missing_rates": [
            {"currency": m.currency, "to": m.to, "day": m.day.isoformat(), "detail": str(m)}
            for m in missing
        ],
    }


async def _costs(
    ctx: Context, space_id: int, outer: list[GroupRow], code: str, first: date, end: date
) -> list[MissingRate]:
    """Give each row and child its cost figures in ``code`` over the days ``[first, end)``;
    the rates missing, each currency once at its first day without one."""
    entered: dict[tuple[str, str], list[tuple[date, str, Decimal]]] = defaultdict(list)
    for e in await ctx.store.list_costs(space_id, first, end):
        entered[(e.level.value, e.object_id)].append((e.day, e.currency, e.amount))
    book = RateBook(await ctx.store.list_rates(space_id))
    missing: dict[str, MissingRate] = {}
    for row in [*outer, *(child for parent in outer for child in parent.children)]:
        row.cost = rows_of.row_cost(row.counts, row.dimension, entered, book, code)
        if row.cost is not None:
            for m in (*row.cost.money.missing, *row.cost.revenue.missing):
                if m.currency not in missing or m.day < missing[m.currency].day:
                    missing[m.currency] = m
    return [missing[c] for c in sorted(missing)]
