"""``xtracker report …``: the reports on the command line (docs/reports.md). Like every
command they work on the database file (``--db``), also while a server runs on it; the numbers
and ``--json`` shapes are the admin API's. ``--format csv|json`` writes a report through the
serializers the API uses (services/exports.py), row by row as it is read.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    fail,
    group,
    out,
    run,
)

# Every report reads them (domain/reports.py): imported here for --help.
from xtracker_server.domain.reports import METRICS, STEPS

if TYPE_CHECKING:
    from xtracker_server.services.context import Context
    from xtracker_server.services.exports import Export
    from xtracker_server.services.report_query import ReportQuery

report_app = group()  # its help: COMMANDS in cli/__init__.py

DaysOption = Annotated[
    int | None, typer.Option("--days", help="The last N days (default 7), ending now.")
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", help="Start: YYYY-MM-DD (midnight in --tz) or an ISO datetime."),
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="End, excluded (default: now); same forms as --from.")
]
TzOption = Annotated[
    str | None, typer.Option("--tz", help="Time zone of dates and buckets (default UTC).")
]
LinkOption = Annotated[str | None, typer.Option("--link", help="Only this link's uids (slug).")]
FilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="DIMENSION=A,B keeps, DIMENSION=-A drops; repeatable (docs/reports.md#filters).",
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", help="table (default), json or csv (json and csv are written as read)."
    ),
]


#: The option of each field a report may refuse.
REFUSABLE = ("from", "to", "link", "days", "tz", "sort", "currency", "metric", "bucket", "filter",
             "by", "mode", "limit")  # fmt: skip
OPTIONS = {field: f"--{field}" for field in REFUSABLE}


def read(db: str, call: Callable[[Context], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """A report of services/reports.py, as the operator; its refusal of an option, as an
    error."""
    return run(db, call, flags=OPTIONS)


def chosen_format(format_: str | None, json_: bool) -> str:
    """``table``, ``json`` or ``csv``: ``--format``, or ``--json`` (the same as --format json)."""
    if format_ is None:
        return "json" if json_ else "table"
    if format_ not in ("table", "json", "csv"):
        fail("--format: must be table, json or csv")
    if json_ and format_ != "json":
        fail("--json is --format json: give one of them")
    return format_


def report_query(
    days: int | None, from_: str | None, to: str | None, tz: str | None, filters: list[str] | None
) -> ReportQuery:
    """The window and filters of a report's options, as the services read them."""
    from xtracker_server.services.report_query import ReportQuery

    return ReportQuery(days, from_, to, tz, tuple(filters or ()))


def write_export(
    db: str,
    build: Callable[[Context], Awaitable[Export]],
    format_: str,
    flags: dict[str, str] | None = None,
    *,
    rows_only: bool = False,
) -> None:
    """Write the export ``build`` makes to stdout as CSV or JSON, chunk by chunk as its rows
    are read (``rows_only``: JSON of the rows alone, ``json_chunks``). A fault after the
    first byte: the CSV's ``#error`` line, a message, exit 1."""
    from xtracker_server.services.exports import ExportBroken, csv_chunks, json_chunks

    async def call(ctx: Context) -> None:
        found = await build(ctx)
        chunks = (
            csv_chunks(found)
            if format_ == "csv"
            else json_chunks(found, ok=False, rows_only=rows_only)
        )
        try:
            async for text in chunks:
                sys.stdout.write(text)
        except ExportBroken as exc:
            sys.stdout.flush()
            fail(f"the export stopped: {exc}; what was written is incomplete", 1)

    run(db, call, flags=OPTIONS if flags is None else flags)


def _pct(r: float | None) -> str:
    return "-" if r is None else f"{r * 100:.2f} %"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _period(data: dict[str, Any]) -> str:
    return f"{_when(data['from_ms'])} → {_when(data['to_ms'])}"


def _money(totals: dict[str, str]) -> str:
    return ", ".join(f"{v} {c}" for c, v in totals.items()) or "0"


@report_app.command("funnel")
def funnel(
    space: SpaceOption,
    link: LinkOption = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="cohort: the window's clicks and their steps whenever they happen;"
            " activity: the clicks and events of the window",
        ),
    ] = "activity",
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    filter_: FilterOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """The funnel click → contact → subscribed → registration → deposit, with the conversion
    gauge against the previous window of the same length (weakest step highlighted)."""
    from xtracker_server.services import OPERATOR, exports, reports

    fmt = chosen_format(format_, json_)
    query = report_query(days, from_, to, tz, filter_)
    if fmt != "table":
        write_export(db, lambda ctx: exports.funnel_export(OPERATOR, ctx, space, link=link,
                     mode=mode, query=query), fmt)  # fmt: skip
        return
    data = read(
        db, lambda ctx: reports.funnel(OPERATOR, ctx, space, link=link, mode=mode, query=query)
    )
    gauge = {g["step"]: g for g in data["gauge"]["steps"]}
    title = f"Funnel of space {space}" + (f", link {link}" if link else "")
    title += "".join(f", {f}" for f in filter_ or ())
    title += f" ({data['mode']} mode)"
    from rich.table import Table

    table = Table("step", "uids", "from previous", "from click", "before", "change",
                  title=f"{title}\n{_period(data)}")  # fmt: skip
    for s in data["steps"]:
        g = gauge.get(s["step"])
        before = _pct(g["previous_ratio"]) if g else ""
        change = "" if not g or g["change_points"] is None else f"{g['change_points']:+.2f} pts"
        weakest = bool(g and g["weakest"])
        table.add_row(
            s["step"] + ("  ◀ weakest" if weakest else ""),
            str(s["uids"]),
            _pct(s["from_previous"]) if s["from_previous"] is not None or g else "",
            _pct(s["from_click"]),
            before,
            change,
            style="bold red" if weakest else None,
        )
    out.print(table)
    out.print(
        f"deposits {data['deposits']}  depositors {data['depositors']}  "
        f"first deposits {data['first_deposits']}  revenue {_money(data['revenue'])}",
        highlight=False,
    )
    if data["reversed_deposits"]:
        out.print(
            f"reversed deposits {data['reversed_deposits']}  reversed"
            f" {_money(data['reversed_revenue'])}  net revenue {_money(data['net_revenue'])}",
            highlight=False,
        )
    loose = data["unattributed"]
    counts = ", ".join(f"{k} {v}" for k, v in loose.items() if k != "revenue" and v)
    out.print(
        f"unattributed (no uid, not in the steps): {counts or 'none'}"
        + (f"; revenue {_money(loose['revenue'])}" if loose["revenue"] else ""),
        highlight=False,
    )
    alone = data["without_click"]
    counts = ", ".join(f"{e} {alone[e]}" for e in STEPS[1:] if alone[e])
    out.print(
        f"without a known click (uid of no click, not in the steps): {counts or 'none'}"
        + (f"; revenue {_money(alone['revenue'])}" if alone["revenue"] else ""),
        highlight=False,
    )


@report_app.command("links")
def links(
    space: SpaceOption,
    sort: Annotated[
        str, typer.Option("--sort", help="Column: clicks, deposit, revenue, click_to_deposit, …")
    ] = "clicks",
    desc: Annotated[bool, typer.Option("--desc/--asc", help="Largest first (default).")] = True,
    currency: Annotated[
        str | None, typer.Option(help="Currency of the money columns (default: most deposits).")
    ] = None,
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    filter_: FilterOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """Every link: clicks, each step, depositors, revenue, click→deposit rate, revenue per
    click."""
    from xtracker_server.services import OPERATOR, exports, reports

    fmt = chosen_format(format_, json_)
    query = report_query(days, from_, to, tz, filter_)
    if fmt != "table":
        write_export(db, lambda ctx: exports.links_export(OPERATOR, ctx, space, sort=sort,
                     desc=desc, currency=currency, query=query), fmt)  # fmt: skip
        return
    data = read(
        db, lambda ctx: reports.links(OPERATOR, ctx, space, sort=sort, desc=desc,
                                      currency=currency, query=query)
    )  # fmt: skip
    cur = data["currency"]
    from rich.table import Column, Table

    table = Table(Column("link", no_wrap=True), "clicks", "contact", "subscr.", "reg.",
                  "dep.", "deposits", "click→dep", f"revenue {cur}", f"net {cur}", "per click",
                  "bots", "limited", "dropped",
                  title=f"Links of space {space}, by {data['sort']}\n{_period(data)}",
                  caption="bots, limited, dropped: visits not recorded as clicks")  # fmt: skip
    for r in data["links"]:
        table.add_row(
            r["link"] or "(no link)", str(r["clicks"]), str(r["contact"]), str(r["subscribed"]),
            str(r["registration"]), str(r["deposit"]), str(r["deposits"]),
            _pct(r["click_to_deposit"]), r["revenue"].get(cur, "0"), r["net_revenue"].get(cur, "0"),
            r["revenue_per_click"].get(cur) or "-", str(r["unrecorded_bots"]),
            str(r["unrecorded_limited"]), str(r["unrecorded_dropped"]),
        )  # fmt: skip
    out.print(table)


@report_app.command("series")
def series(
    space: SpaceOption,
    metric: Annotated[str, typer.Option(help=f"One of {', '.join(METRICS)}.")],
    bucket: Annotated[str, typer.Option(help="hour or day.")] = "day",
    currency: Annotated[str | None, typer.Option(help="revenue: the currency (USD).")] = None,
    link: LinkOption = None,
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    filter_: FilterOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """A step (distinct uids) or revenue per hour or day; every bucket shown, zeros too."""
    from xtracker_server.services import OPERATOR, exports, reports

    fmt = chosen_format(format_, json_)
    query = report_query(days, from_, to, tz, filter_)
    if fmt != "table":
        write_export(db, lambda ctx: exports.series_export(OPERATOR, ctx, space, metric=metric,
                     bucket=bucket, currency=currency, link=link, query=query), fmt)  # fmt: skip
        return
    data = read(
        db, lambda ctx: reports.series(OPERATOR, ctx, space, metric=metric, bucket=bucket,
                                       currency=currency, link=link, query=query)
    )  # fmt: skip
    label = data["metric"] + (f" ({data['currency']})" if data["currency"] else "")
    from rich.table import Table

    table = Table(f"{data['bucket']} ({data['tz']})", label,
                  title=f"Space {space}" + (f", link {link}" if link else ""))  # fmt: skip
    for p in data["points"]:
        table.add_row(p["start"], str(p["value"]))
    out.print(table)


@report_app.command("deliveries")
def deliveries(
    space: SpaceOption,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """Delivery health per destination: counts by status, last success, last error, and the
    median latency of the last 24 hours."""
    from xtracker_server.services import OPERATOR, exports, reports

    fmt = chosen_format(format_, json_)
    if fmt != "table":
        write_export(db, lambda ctx: exports.deliveries_export(OPERATOR, ctx, space), fmt)
        return
    data = read(db, lambda ctx: reports.deliveries(OPERATOR, ctx, space))
    from rich.table import Table

    table = Table("id", "name", "kind", "sent", "pending", "retrying", "failed", "last success",
                  "last error", "median ms", title=f"Deliveries of space {space}")  # fmt: skip
    for d in data["destinations"]:
        error = f"{_when(d['last_error_ms'])}: {d['last_error']}" if d["last_error"] else "-"
        name = d["name"] + ("" if d["healthy"] else f" [red](paused: {d['health_reason']})[/red]")
        table.add_row(
            str(d["id"]), name, d["kind"], str(d["sent"]), str(d["pending"]), str(d["retrying"]),
            f"[red]{d['failed_permanently']}[/red]" if d["failed_permanently"] else "0",
            _when(d["last_success_ms"]), error[:80],
            "-" if d["median_latency_ms"] is None else str(d["median_latency_ms"]),
        )  # fmt: skip
    out.print(table)


@report_app.command("groups")
def groups(
    space: SpaceOption,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Up to 2 dimensions, the outer first: campaign,ad; country;"
            " day; sub.NAME … (none: the whole space).",
        ),
    ] = "",
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="cohort (default): the window's clicks and their steps"
            " whenever they happen; activity: the clicks and events of the window",
        ),
    ] = "cohort",
    sort: Annotated[
        str, typer.Option("--sort", help="Column: clicks, deposit, net_revenue, profit, roi, …")
    ] = "clicks",
    desc: Annotated[bool, typer.Option("--desc/--asc", help="Largest first (default).")] = True,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Rows (and children per row); default 100.")
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(help="Report currency: adds cost, profit, ROI… (rates: xtracker rate set)."),
    ] = None,
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    filter_: FilterOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """Clicks, each step, deposits, revenue and the time to convert per campaign, ad, country…
    (nested: --by campaign,ad); with --currency the cost, CPC, CPL, CPA, ROI, ROAS and profit
    of each campaign, ad set, ad or link row (docs/reports.md#grouped-reports)."""
    from xtracker_server.services import OPERATOR, exports
    from xtracker_server.services.groups import groups_report

    fmt = chosen_format(format_, json_)
    query = report_query(days, from_, to, tz, filter_)
    params: dict[str, Any] = {"by": by, "mode": mode, "sort": sort, "desc": desc,
                              "limit": limit, "currency": currency, "query": query}  # fmt: skip
    if fmt != "table":
        write_export(db, lambda ctx: exports.groups_export(OPERATOR, ctx, space, **params), fmt)
        return
    data = read(db, lambda ctx: groups_report(OPERATOR, ctx, space, **params))
    _groups_table(space, data)


def _groups_table(space: int, data: dict[str, Any]) -> None:
    from rich.table import Column, Table

    cur, costs = data["sort_currency"], data["currency"] is not None
    by = data["by"] or ["space"]
    title = f"Space {space} by {', '.join(by)}, {data['mode']} mode, sorted by {data['sort']}"
    title += "".join(f", {f}" for f in data["filters"])
    shown = f"{len(data['rows'])} of {data['rows_total']} rows" if data["by"] else ""
    table = Table(Column(" → ".join(by), no_wrap=True), "clicks", "contact", "subscr.", "reg.",
                  "dep.", "deposits", "click→dep", f"revenue {cur}", f"net {cur}",
                  *(["cost", "profit", "ROI"] if costs else []),
                  title=f"{title}\n{_period(data)}", caption=shown)  # fmt: skip

    def add(row: dict[str, Any], depth: int) -> None:
        dim = list(row["key"])[-1] if row["key"] else None
        value = "(all)" if dim is None else row["key"][dim] or f"(no {dim})"
        name = row["names"].get(dim or "")
        label = ("  └ " if depth else "") + value + (f" {name}" if name else "")
        steps = {s["step"]: s["uids"] for s in row["steps"]}
        cost = row.get("cost") or {}
        table.add_row(
            label, str(row["clicks"]), *(str(steps[e]) for e in STEPS[1:]), str(row["deposits"]),
            _pct(row["click_to_deposit"]), row["revenue"].get(cur, "0"),
            row["net_revenue"].get(cur, "0"),
            *([cost.get("cost") or "-", cost.get("profit") or "-", cost.get("roi") or "-"]
              if costs else []),
        )  # fmt: skip

    for row in data["rows"] if data["by"] else [data["total"]]:
        add(row, 0)
        for child in row.get("children", []):
            add(child, 1)
    out.print(table)
    for m in data["missing_rates"]:
        out.print(f"[yellow]missing rate[/yellow] {m['detail']}", highlight=False)
    alone = data["without_click"]
    counts = ", ".join(f"{e} {alone[e]}" for e in STEPS[1:] if alone[e])
    out.print(f"without a known click (in no group): {counts or 'none'}", highlight=False)


@report_app.command("costs")
def costs(
    space: SpaceOption,
    currency: Annotated[
        str, typer.Option("--currency", help="The report currency (rates: xtracker rate set).")
    ] = "USD",
    level: Annotated[
        str | None,
        typer.Option("--level", help="Count costs at campaign, adset, ad or link level."),
    ] = None,
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Cost, CPC, CPL, CPA, ROI, ROAS and profit in one currency, over whole days (the costs
    come from `xtracker cost add` and `cost import`; docs/reports.md#costs)."""
    from xtracker_server.cli.costs import report_costs

    report_costs(db, space, currency=currency, level=level, days=days, from_=from_, to=to,
                 tz=tz, json_=json_)  # fmt: skip
