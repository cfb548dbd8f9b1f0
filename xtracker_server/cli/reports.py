"""``xtracker report …``: the reports on the command line (docs/reports.md). Like every
command they work on the database file (``--db``), also while a server runs on it; the numbers
and ``--json`` shapes are the admin API's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    group,
    out,
    print_json,
    run,
)

# Every report reads them (domain/reports.py): imported here for --help.
from xtracker_server.domain.reports import METRICS

if TYPE_CHECKING:
    from xtracker_server.services.context import Context

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


#: The option of each field a report may refuse.
REFUSABLE = ("from", "to", "link", "days", "tz", "sort", "currency", "metric", "bucket")
OPTIONS = {field: f"--{field}" for field in REFUSABLE}


def read(db: str, call: Callable[[Context], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """A report of services/reports.py, as the operator; its refusal of an option, as an
    error."""
    return run(db, call, flags=OPTIONS)


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
    days: DaysOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    tz: TzOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """The funnel click → contact → subscribed → registration → deposit, with the conversion
    gauge against the previous window of the same length (weakest step highlighted)."""
    from xtracker_server.services import OPERATOR, reports

    data = read(
        db, lambda ctx: reports.funnel(OPERATOR, ctx, space, link=link, days=days, from_=from_,
                                       to=to, tz=tz)
    )  # fmt: skip
    if json_:
        print_json(data)
        return
    gauge = {g["step"]: g for g in data["gauge"]["steps"]}
    title = f"Funnel of space {space}" + (f", link {link}" if link else "")
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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Every link: clicks, each step, depositors, revenue, click→deposit rate, revenue per
    click."""
    from xtracker_server.services import OPERATOR, reports

    data = read(
        db, lambda ctx: reports.links(OPERATOR, ctx, space, sort=sort, desc=desc,
                                      currency=currency, days=days, from_=from_, to=to, tz=tz)
    )  # fmt: skip
    if json_:
        print_json(data)
        return
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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """A step (distinct uids) or revenue per hour or day; every bucket shown, zeros too."""
    from xtracker_server.services import OPERATOR, reports

    data = read(
        db, lambda ctx: reports.series(OPERATOR, ctx, space, metric=metric, bucket=bucket,
                                       currency=currency, link=link, days=days, from_=from_,
                                       to=to, tz=tz)
    )  # fmt: skip
    if json_:
        print_json(data)
        return
    label = data["metric"] + (f" ({data['currency']})" if data["currency"] else "")
    from rich.table import Table

    table = Table(f"{data['bucket']} ({data['tz']})", label,
                  title=f"Space {space}" + (f", link {link}" if link else ""))  # fmt: skip
    for p in data["points"]:
        table.add_row(p["start"], str(p["value"]))
    out.print(table)


@report_app.command("deliveries")
def deliveries(space: SpaceOption, db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """Delivery health per destination: counts by status, last success, last error, and the
    median latency of the last 24 hours."""
    from xtracker_server.services import OPERATOR, reports

    data = read(db, lambda ctx: reports.deliveries(OPERATOR, ctx, space))
    if json_:
        print_json(data)
        return
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
