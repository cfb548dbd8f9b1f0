"""``xtracker report …`` and ``xtracker tail``: the reports and the live stream on the command
line (docs/reports.md). Like every command they work on the database file (``--db``), also
while a server runs on it; the numbers and ``--json`` shapes are the admin API's.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Column, Table

from xtracker_server import reports
from xtracker_server.domain.query import MAX_WHOLE
from xtracker_server.domain.reports import METRICS, ReportError
from xtracker_server.domain.tail import StreamCursor, Watermark
from xtracker_server.store import spaces
from xtracker_server.store.db import attach_reports, open_db
from xtracker_server.store.rollup import catch_up, with_rollup
from xtracker_server.store.tail import Marks, TailItem, tail_poll, tail_top

T = TypeVar("T")

report_app = typer.Typer(
    help="Reports: funnel, per link, time series, delivery health.", no_args_is_help=True
)

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", envvar="XTRACKER_DB", help="The SQLite file.", show_default=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable, for scripts).")]
SpaceOption = Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")]
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


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _read(db: str, space: int, op: Callable[[sqlite3.Connection], T], *, rollup: bool = True) -> T:
    """Run ``op`` on one snapshot of the file (a read transaction)."""
    if db != ":memory:" and not Path(db).expanduser().exists():
        _fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    try:
        conn = open_db(db)
        if rollup:  # bring the report rollup up to date first (also while a server runs)
            catch_up(with_rollup(conn, db))
        else:
            attach_reports(conn, db)
    except (RuntimeError, sqlite3.DatabaseError) as exc:
        _fail(f"cannot open {db}: {exc}", 1)
    try:
        conn.execute("BEGIN")
        try:
            if spaces.get_space(conn, space) is None:
                _fail(f"no space {space} (see `xtracker space list`)", 1)
            return op(conn)
        except ReportError as exc:
            option = {"from": "--from", "to": "--to", "link": "--link"}.get(exc.field)
            _fail(f"{option or '--' + exc.field}: {exc.problem}")
        finally:
            conn.execute("COMMIT")
    finally:
        conn.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


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
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """The funnel click → contact → subscribed → registration → deposit, with the conversion
    gauge against the previous window of the same length (weakest step highlighted)."""
    data = _read(
        db, space, lambda c: reports.funnel_report(c, space, link=link, days=days, from_=from_,
                                                   to=to, tz=tz)
    )  # fmt: skip
    if json_:
        _print_json(data)
        return
    gauge = {g["step"]: g for g in data["gauge"]["steps"]}
    title = f"Funnel of space {space}" + (f", link {link}" if link else "")
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
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Every link: clicks, each step, depositors, revenue, click→deposit rate, revenue per
    click."""
    data = _read(
        db, space, lambda c: reports.links_report(c, space, sort=sort, desc=desc,
                                                  currency=currency, days=days, from_=from_,
                                                  to=to, tz=tz)
    )  # fmt: skip
    if json_:
        _print_json(data)
        return
    cur = data["currency"]
    table = Table(Column("link", no_wrap=True), "clicks", "contact", "subscr.", "reg.",
                  "dep.", "deposits", "click→dep", f"revenue {cur}", "per click", "bots",
                  "limited", "dropped",
                  title=f"Links of space {space}, by {data['sort']}\n{_period(data)}",
                  caption="bots, limited, dropped: visits not recorded as clicks")  # fmt: skip
    for r in data["links"]:
        table.add_row(
            r["link"] or "(no link)", str(r["clicks"]), str(r["contact"]), str(r["subscribed"]),
            str(r["registration"]), str(r["deposit"]), str(r["deposits"]),
            _pct(r["click_to_deposit"]), r["revenue"].get(cur, "0"),
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
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """A step (distinct uids) or revenue per hour or day; every bucket shown, zeros too."""
    data = _read(
        db, space, lambda c: reports.series_report(c, space, metric=metric, bucket=bucket,
                                                   currency=currency, link=link, days=days,
                                                   from_=from_, to=to, tz=tz)
    )  # fmt: skip
    if json_:
        _print_json(data)
        return
    label = data["metric"] + (f" ({data['currency']})" if data["currency"] else "")
    table = Table(f"{data['bucket']} ({data['tz']})", label,
                  title=f"Space {space}" + (f", link {link}" if link else ""))  # fmt: skip
    for p in data["points"]:
        table.add_row(p["start"], str(p["value"]))
    out.print(table)


@report_app.command("deliveries")
def deliveries(
    space: SpaceOption, db: DbOption = "./xtracker.db", json_: JsonOption = False
) -> None:
    """Delivery health per destination: counts by status, last success, last error, and the
    median latency of the last 24 hours."""
    data = _read(db, space, lambda c: reports.deliveries_report(c, space), rollup=False)
    if json_:
        _print_json(data)
        return
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


def _line(item: TailItem) -> str:
    d = item.data
    when = datetime.fromtimestamp(item.at_ms / 1000, timezone.utc).strftime("%H:%M:%S")
    if item.kind == "click":
        return f"{when} click    {d['uid']} link={d['link'] or '-'} source={d['source']}"
    if item.kind == "event":
        money = f" {d['value']} {d['currency']}" if d["value"] else ""
        who = d["uid"] or f"tg:{d['tg_id']} (unattributed)"
        return f"{when} event    {d['event']}{money} uid={who} source={d['source']}"
    status = d["status_code"] if d["status_code"] is not None else "-"
    error = f" error={d['error']}" if d["error"] else ""
    return (f"{when} delivery {d['event']} -> {d['destination']} ({d['destination_id']}):"
            f" {d['outcome']} HTTP {status} {d['latency_ms']} ms{error}")  # fmt: skip


def tail(
    space: SpaceOption,
    since: Annotated[
        str | None, typer.Option(help="Resume after this cursor (printed with --json).")
    ] = None,
    poll_s: Annotated[float, typer.Option(help="Seconds between looks at the file.")] = 0.2,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Print each click, event and delivery attempt of a space as it is committed (by the
    server, a worker or the CLI), one line each, until Ctrl-C. Reads the file like the
    server's live stream does (GET /admin/spaces/{id}/stream), gaps of ids included."""
    cursor = StreamCursor.parse(since) if since else None
    if since and cursor is None:
        _fail("--since: must be a cursor printed by tail --json (such as 12-345-6)")
    top = _read(db, space, tail_top, rollup=False)
    marks: Marks | None = None
    if cursor is not None:
        if any(mine > newest for mine, newest in zip(cursor.newest, top, strict=True)):
            _fail("--since: is ahead of the file's rows (not an id tail printed)")
        now = time.monotonic()
        a, b, c = (
            Watermark.resuming(low, seen, now)
            for low, seen in zip(cursor.lows, cursor.seen, strict=True)
        )
        marks = (a, b, c)
    conn = open_db(db)
    try:
        while True:
            poll = tail_poll(conn, marks, {space}, time.monotonic())
            marks = poll.marks
            if space not in poll.spaces:
                _fail(f"space {space} was deleted", 1)
            if cursor is None:  # the first poll: start at "now"
                cursor = StreamCursor(poll.lows)
            for item in poll.items.get(space, []):
                if not cursor.delivers(item.table, item.id, poll.lows[item.table]):
                    continue
                if json_:
                    _print_json({"type": item.kind, **item.data, "cursor": cursor.text()})
                else:
                    out.print(_line(item), markup=False, highlight=False, soft_wrap=True)
            cursor.settle(poll.lows)
            sys.stdout.flush()
            if not poll.full:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()
