"""Every report as JSON or CSV, streamed: the one serializer of each report shape, used by the
admin API (``Accept: text/csv`` or ``?format=csv``) and by the CLI (``--format csv|json``).
docs/reports.md#exports describes the columns.

A report becomes an ``Export``: its JSON fields, and its rows with the CSV columns of a row.
The long reports (a series, the postback log) read their rows from the store page by page
while they are written, so an export of any length holds one page in memory; the others are
bounded by the space's links or destinations and are built first.

    export = await series_export(OPERATOR, ctx, 1, metric="deposit", query=ReportQuery(days=365))
    async for text in csv_chunks(export):  # "start,start_ms,value\\r\\n2025-…"
        out.write(text)

Building an export checks everything and reads the first page: a refusal or a storage fault
then is the usual JSON error, before the first byte. A fault after it cannot change the status
any more: the CSV gets a last line ``#error,<code>,<detail>`` and the stream ends with an
exception (the server aborts the connection: no complete HTTP answer; the CLI exits 1), so
no export is ever silently cut short.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtracker_server.domain.reports import LINK_COLUMNS, UNRECORDED_COLUMNS, ReportError
from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.services import reports
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.report_query import ReportQuery, report_now
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import storage_fault
from xtracker_wire import CANONICAL_EVENTS

if TYPE_CHECKING:
    import logging

__all__ = [
    "FORMATS",
    "Export",
    "ExportBroken",
    "cell",
    "csv_chunks",
    "deliveries_export",
    "funnel_export",
    "groups_export",
    "json_chunks",
    "links_export",
    "postbacks_export",
    "series_export",
]

#: What an export can be written as (the CLI also has ``table``).
FORMATS = ("json", "csv")

#: Log rows one store read fetches.
LOG_PAGE = 500

#: Rows written per chunk of the stream (a chunk is one write to the socket or stdout).
CHUNK_ROWS = 200


class ExportBroken(XTrackerServerError):
    """An export stopped after its first byte (a storage fault, most likely): what was written
    is incomplete. Raised after the CSV's ``#error`` line."""


@dataclass
class Export:
    """A report to write. ``head``: its JSON fields; ``key``: the JSON field of the streamed
    ``rows`` (None: the rows are already in ``head``, a short report); ``header`` and
    ``cells``: the CSV columns and the cells of one row."""

    name: str
    head: dict[str, Any]
    key: str | None
    rows: AsyncIterator[dict[str, Any]]
    header: list[str]
    cells: Callable[[dict[str, Any]], Sequence[object]]

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"


# --------------------------------------------------------------------------- the writers

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """One CSV cell: JSON's ``true``/``false``, empty for null, numbers and exact decimals as
    written; text that a spreadsheet would run as a formula (starting with = + - @, a tab or a
    carriage return: OWASP "CSV injection") gets a leading ``'``, unless it is a plain
    number such as ``-12.50``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


async def csv_chunks(export: Export) -> AsyncIterator[str]:
    """RFC 4180 (CRLF, quotes doubled), a header row, one line per row; see ``ExportBroken``."""
    import csv  # only for CSV (and with the log below): most exports are JSON

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(export.header)
    n = 0
    try:
        async for row in export.rows:
            writer.writerow([cell(v) for v in export.cells(row)])
            n += 1
            if n % CHUNK_ROWS == 0:
                yield _drain(buffer)
    except Exception as exc:
        code, detail = _failure(exc)
        _log().warning("the %s export stopped after %d rows: %s", export.name, n, detail)
        writer.writerow(["#error", code, f"{detail}: this export is incomplete"])
        yield _drain(buffer)
        raise ExportBroken(detail) from exc
    yield _drain(buffer)


async def json_chunks(export: Export, *, ok: bool, rows_only: bool = False) -> AsyncIterator[str]:
    """The report's JSON (``{"ok": true, …}`` with ``ok``, as the API answers), with the
    streamed rows written as they come; ``rows_only``: only the array of the streamed rows
    (what ``xtracker postback log --json`` always printed). See ``ExportBroken`` (the JSON
    is then left open)."""
    head = {"ok": True, **export.head} if ok else export.head
    if export.key is None:
        yield _json(head) + "\n"
        return
    opening = _json(head)[:-1] + ("," if head else "") + _json(export.key) + ":["
    if rows_only:
        opening = "["
    parts: list[str] = [opening]
    n = 0
    try:
        async for row in export.rows:
            parts.append(("," if n else "") + _json(row))
            n += 1
            if n % CHUNK_ROWS == 0:
                yield "".join(parts)
                parts = []
    except Exception as exc:
        _, detail = _failure(exc)
        _log().warning("the %s export stopped after %d rows: %s", export.name, n, detail)
        if parts:
            yield "".join(parts)
        raise ExportBroken(detail) from exc
    parts.append("]\n" if rows_only else "]}\n")
    yield "".join(parts)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _log() -> logging.Logger:
    import logging  # only when an export breaks

    return logging.getLogger("xtracker")


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _failure(exc: Exception) -> tuple[str, str]:
    reason = storage_fault(exc)
    if reason is not None:
        return "storage_unavailable", f"storage unavailable ({reason.value})"
    return "internal_error", f"internal error ({type(exc).__name__})"


async def _rows(rows: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for row in rows:
        yield row


async def _primed(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """``rows`` with its first row (its first store read) already read: a fault there is
    raised now, before the answer starts."""
    try:
        first = await anext(rows)
    except StopAsyncIteration:
        return _rows(())

    async def chained() -> AsyncIterator[dict[str, Any]]:
        yield first
        async for row in rows:
            yield row

    return chained()


def _currencies(*totals: dict[str, Any]) -> list[str]:
    return sorted({c for t in totals for c in t})


# --------------------------------------------------------------------------- the reports

#: The funnel's CSV columns before the money ones (docs/reports.md#exports).
FUNNEL_COLUMNS = [
    "step", "uids", "from_previous", "from_click", "previous_uids", "previous_from_previous",
    "previous_from_click", "change_points", "weakest", "unattributed", "deposits",
    "first_deposits", "previous_deposits",
]  # fmt: skip


async def funnel_export(who: Principal, ctx: Context, space_id: int, **params: Any) -> Export:
    """The funnel as one row per step (click … deposit): uids and ratios now and in the
    previous window, the gauge's change and weakest; the deposit row also has the deposits
    and the revenue per currency (``revenue_USD`` …, ``unattributed_revenue_…``,
    ``previous_revenue_…``); ``unattributed`` is the step's events without a uid."""
    data = await reports.funnel(who, ctx, space_id, **params)
    gauge = {g["step"]: g for g in data["gauge"]["steps"]}
    before = {s["step"]: s for s in data["previous"]["steps"]}
    loose = data["unattributed"]
    money = _currencies(data["revenue"], loose["revenue"], data["previous"]["revenue"])

    def cells(s: dict[str, Any]) -> list[object]:
        step, g, p = s["step"], gauge.get(s["step"], {}), before[s["step"]]
        deposit = step == "deposit"
        totals: list[object] = [
            data["deposits"], data["first_deposits"], data["previous"]["deposits"],
        ] if deposit else [None, None, None]  # fmt: skip
        return [
            step, s["uids"], s["from_previous"], s["from_click"], p["uids"],
            p["from_previous"], p["from_click"], g.get("change_points"), g.get("weakest"),
            loose.get(step), *totals,
            *(data["revenue"].get(c, "0") if deposit else None for c in money),
            *(loose["revenue"].get(c, "0") if deposit else None for c in money),
            *(data["previous"]["revenue"].get(c, "0") if deposit else None for c in money),
        ]  # fmt: skip

    header = [
        *FUNNEL_COLUMNS,
        *(f"revenue_{c}" for c in money),
        *(f"unattributed_revenue_{c}" for c in money),
        *(f"previous_revenue_{c}" for c in money),
    ]
    return Export(f"funnel-space-{space_id}", data, None, _rows(data["steps"]), header, cells)


async def links_export(who: Principal, ctx: Context, space_id: int, **params: Any) -> Export:
    """One row per link (an empty ``link``: no link), a column per currency of each money
    column (``revenue_USD``, ``revenue_per_click_USD`` …): "0" revenue, no revenue per
    click (empty) where the link has none in that currency."""
    data = await reports.links(who, ctx, space_id, **params)
    money = _currencies(*(r["revenue"] for r in data["links"]))
    counts = [c for c in LINK_COLUMNS if c not in ("revenue", "revenue_per_click")]
    counts = [c for c in counts if c not in UNRECORDED_COLUMNS]

    def cells(r: dict[str, Any]) -> list[object]:
        return [
            *(r[c] for c in counts),
            *(r["revenue"].get(c, "0") for c in money),
            *(r["revenue_per_click"].get(c) for c in money),
            *(r[c] for c in UNRECORDED_COLUMNS),
        ]

    header = [
        *counts,
        *(f"revenue_{c}" for c in money),
        *(f"revenue_per_click_{c}" for c in money),
        *UNRECORDED_COLUMNS,
    ]
    return Export(f"links-space-{space_id}", data, None, _rows(data["links"]), header, cells)


async def series_export(
    who: Principal, ctx: Context, space_id: int, *, query: ReportQuery | None = None, **params: Any
) -> Export:
    """One row per bucket: ``start`` (local ISO), ``start_ms``, ``value`` (a count, or an
    exact decimal for revenue); the buckets are counted while they are written."""
    await authorized_space(who, ctx, Action.READ_REPORTS, space_id)
    await ctx.store.catch_up_reports(ctx.settings.report_wait_s, cube_may_lag=True)
    window = {} if query is None else query.params()
    try:
        head, points = await reports.series_points(
            ctx.store, space_id, now_ms=report_now(ctx.clock), **window, **params
        )
    except ReportError as exc:
        raise Invalid(exc.field, exc.problem) from None
    return Export(
        f"series-{head['metric']}-space-{space_id}", head, "points", await _primed(points),
        ["start", "start_ms", "value"], lambda p: [p["start"], p["start_ms"], p["value"]],
    )  # fmt: skip


def delivery_columns() -> list[str]:
    """The deliveries report's CSV columns: its JSON fields, in order."""
    # Here, as the imports of the other exports' own modules below: a command exports one
    # report, and imports what that one needs (tests/server/test_cli_imports.py).
    from xtracker_server.store.api import DELIVERY_STATUSES

    return [
        "id", "name", "kind", "enabled", "healthy", "health_reason", *DELIVERY_STATUSES,
        "last_success_ms", "last_error", "last_error_ms", "recent_attempts", "recent_failures",
        "median_latency_ms",
    ]  # fmt: skip


async def deliveries_export(who: Principal, ctx: Context, space_id: int) -> Export:
    """One row per destination, its JSON fields as columns."""
    data = await reports.deliveries(who, ctx, space_id)
    columns = delivery_columns()
    return Export(
        f"deliveries-space-{space_id}", data, None, _rows(data["destinations"]),
        columns, lambda d: [d[c] for c in columns],
    )  # fmt: skip


#: The postback log's CSV columns: its JSON fields (``conflict`` as two columns, without the
#: deprecated ``attributed``).
POSTBACK_COLUMNS = [
    "id", "at_ms", "ip", "token_name", "test", "method", "query", "body", "outcome", "status",
    "event", "uid", "click_known", "value", "currency", "eid", "inbox_id", "conflict_value",
    "conflict_currency", "error", "detail",
]  # fmt: skip


def _postback_cells(r: dict[str, Any]) -> list[object]:
    conflict = r["conflict"] or {}
    return [
        conflict.get(c.removeprefix("conflict_")) if c.startswith("conflict_") else r[c]
        for c in POSTBACK_COLUMNS
    ]


async def postbacks_export(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    outcome: str | None = None,
    limit: int | None = None,
) -> Export:
    """The postback log, newest first, read ``LOG_PAGE`` rows at a time: all of it, or the
    latest ``limit`` rows."""
    from xtracker_server.services.postbacks import postback_log  # here: see delivery_columns
    from xtracker_server.views import postback_log_json

    first = await postback_log(
        who, ctx, space_id, outcome=outcome, limit=min(LOG_PAGE, limit or LOG_PAGE)
    )

    async def rows() -> AsyncIterator[dict[str, Any]]:
        page, left = first, limit
        while page:
            for entry in page[: left if left is not None else None]:
                yield postback_log_json(entry)
            if left is not None:
                left -= len(page)
                if left <= 0:
                    return
            if len(page) < LOG_PAGE:
                return
            page = await ctx.store.list_postback_log(
                space_id, outcome=outcome, limit=min(LOG_PAGE, left or LOG_PAGE),
                before_id=page[-1].id,
            )  # fmt: skip

    return Export(
        f"postbacks-space-{space_id}", {}, "postbacks", rows(), POSTBACK_COLUMNS, _postback_cells
    )


#: The grouped report's CSV columns of counts, after its dimensions and names and before the
#: money ones (docs/reports.md#exports).
GROUP_COUNT_COLUMNS = [
    "clicks", *CANONICAL_EVENTS, *(f"from_click_{e}" for e in CANONICAL_EVENTS),
    *(f"ttc_median_s_{e}" for e in CANONICAL_EVENTS), "deposits", "depositors", "first_deposits",
    "click_to_deposit", "reversed_deposits",
]  # fmt: skip
#: With a report currency: the cost columns (``cost_net_revenue``: the net revenue converted).
GROUP_COST_COLUMNS = ["cost_level", "cost", "cost_net_revenue", "profit", "roi", "roas", "cpc",
                      "cpl", "cpa"]  # fmt: skip


async def groups_export(who: Principal, ctx: Context, space_id: int, **params: Any) -> Export:
    """The grouped report (services/groups.py): one line per row, and after it one per child
    (``depth`` 2; the outer row's value repeated); a column per dimension (and the name beside
    an id), per step, per currency of each money column, and with a report currency the cost
    figures (empty where the row has no cost level)."""
    from xtracker_server.domain.groups import NAME_OF  # here: see delivery_columns
    from xtracker_server.services.groups import groups_report

    data = await groups_report(who, ctx, space_id, **params)
    by: list[str] = data["by"]
    names = [d for d in by if d in NAME_OF and NAME_OF[d] not in by]
    lines = [(1, r) for r in data["rows"]]
    lines = [line for depth, r in lines
             for line in [(depth, r), *((2, c) for c in r.get("children", []))]]  # fmt: skip
    money = _currencies(*(r["revenue"] for _, r in lines))
    costs = data["currency"] is not None

    def cells(line: dict[str, Any]) -> list[object]:
        r = line["row"]
        steps = {s["step"]: s for s in r["steps"]}
        cost = r.get("cost") or {}
        return [
            line["depth"], *(r["key"].get(d) for d in by), *(r["names"].get(d) for d in names),
            r["clicks"], *(steps[e]["uids"] for e in CANONICAL_EVENTS),
            *(steps[e]["from_click"] for e in CANONICAL_EVENTS),
            *(steps[e]["ttc_median_s"] for e in CANONICAL_EVENTS), r["deposits"],
            r["depositors"], r["first_deposits"], r["click_to_deposit"], r["reversed_deposits"],
            *(r["revenue"].get(c, "0") for c in money),
            *(r["reversed_revenue"].get(c, "0") for c in money),
            *(r["net_revenue"].get(c, "0") for c in money),
            *([cost.get("level"), cost.get("cost"), cost.get("net_revenue"),
               *(cost.get(f) for f in GROUP_COST_COLUMNS[3:])] if costs else []),
        ]  # fmt: skip

    header = [
        "depth", *by, *(NAME_OF[d] for d in names), *GROUP_COUNT_COLUMNS,
        *(f"revenue_{c}" for c in money), *(f"reversed_revenue_{c}" for c in money),
        *(f"net_revenue_{c}" for c in money), *(GROUP_COST_COLUMNS if costs else []),
    ]  # fmt: skip
    rows = _rows({"depth": depth, "row": r} for depth, r in lines)
    return Export(f"groups-space-{space_id}", data, None, rows, header, cells)
