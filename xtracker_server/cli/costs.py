"""``xtracker cost …`` and ``xtracker rate …``: a space's ad costs (one by one, or imported from
a Facebook Ads Manager CSV export) and the exchange rates its reports convert money with
(services/costs.py; docs/reports.md#costs). ``xtracker report costs`` (cli/reports.py) shows
what the costs bought; its body is ``report_costs`` here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    fail,
    group,
    out,
    print_json,
    run,
)

cost_app = group()  # its help: COMMANDS in cli/__init__.py
rate_app = group()

LevelOption = Annotated[
    str, typer.Option("--level", help="campaign, adset, ad or link (the id is then the slug).")
]
DayOption = Annotated[str, typer.Option("--day", help="The day, YYYY-MM-DD.")]
_FLAGS = {"day": "--day", "level": "--level", "id": "--id", "amount": "--amount",
          "currency": "--currency", "name": "--name", "from": "--from", "to": "--to",
          "rate": "--rate", "days": "--days", "tz": "--tz"}  # fmt: skip


@cost_app.command("add")
def cost_add(
    space: SpaceOption,
    day: DayOption,
    amount: Annotated[str, typer.Option("--amount", help="What was spent, e.g. 12.50.")],
    currency: Annotated[str, typer.Option("--currency", help="Its currency, e.g. USD.")],
    campaign: Annotated[str | None, typer.Option("--campaign", help="A campaign id.")] = None,
    adset: Annotated[str | None, typer.Option("--adset", help="An ad set id.")] = None,
    ad: Annotated[str | None, typer.Option("--ad", help="An ad id.")] = None,
    link: Annotated[str | None, typer.Option("--link", help="A link's slug.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Its name, shown in lists.")] = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Set one day's cost of a campaign, ad set, ad or link (give one of them). It replaces
    that day's cost of the same object: running it twice does not double it."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import set_costs

    given = {"campaign": campaign, "adset": adset, "ad": ad, "link": link}
    chosen = [(level, object_id) for level, object_id in given.items() if object_id is not None]
    if len(chosen) != 1:
        fail("give exactly one of --campaign, --adset, --ad or --link")
    (level, object_id), flag = chosen[0], f"--{chosen[0][0]}"
    item = {"day": day, "level": level, "id": object_id, "amount": amount, "currency": currency}
    if name is not None:
        item["name"] = name
    stored = run(
        db,
        lambda ctx: set_costs(OPERATOR, ctx, space, [item]),
        flags={**_FLAGS, "id": flag, "level": flag},
    )
    item["currency"] = currency.strip().upper()  # as the service stored it
    if json_:
        print_json({"space_id": space, "new": stored.new, "replaced": stored.replaced, **item})
        return
    verb = "replaced" if stored.replaced else "added"
    out.print(f"Cost of {level} {object_id} on {day}: {amount} {item['currency']} ({verb}).",
              markup=False, highlight=False)  # fmt: skip


@cost_app.command("import")
def cost_import(
    space: SpaceOption,
    file: Annotated[Path, typer.Argument(help="The CSV an Ads Manager export wrote.")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Import a Facebook Ads Manager export (Reports → Export table data → .csv, broken down
    by day, with the Campaign/Ad set/Ad ID column). Every row is stored, or none: a bad line
    is named. Importing the same export again replaces its costs (never doubles them)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import import_costs

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text: export the table as CSV from Ads Manager")
    done = run(db, lambda ctx: import_costs(OPERATOR, ctx, space, text), flags=lambda f: f)
    data = {"space_id": space, "level": done.level.value, "new": done.new,
            "replaced": done.replaced, "skipped": done.skipped}  # fmt: skip
    if json_:
        print_json(data)
        return
    out.print(
        f"Imported {done.new + done.replaced} {done.level.value} costs into space {space}:"
        f" {done.new} new, {done.replaced} replaced"
        + (f", {done.skipped} totals or blank lines skipped" if done.skipped else "")
        + ".",
        markup=False,
        highlight=False,
    )


@cost_app.command("list")
def cost_list(
    space: SpaceOption,
    from_: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="First day not listed.")] = None,
    level: Annotated[str | None, typer.Option("--level", help="Only this level.")] = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """The space's costs, by day, level and id."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import cost_json, list_costs

    found = run(
        db,
        lambda ctx: list_costs(OPERATOR, ctx, space, from_day=from_, to_day=to, level=level),
        flags=_FLAGS,
    )
    rows = [cost_json(e) for e in found]
    if json_:
        print_json({"space_id": space, "costs": rows})
        return
    from rich.table import Table

    table = Table("day", "level", "id", "name", "amount", "currency",
                  title=f"Costs of space {space}")  # fmt: skip
    for r in rows:
        table.add_row(r["day"], r["level"], r["id"], r["name"] or "", r["amount"], r["currency"])
    out.print(table)


@cost_app.command("delete")
def cost_delete(
    space: SpaceOption,
    day: DayOption,
    level: LevelOption,
    object_id: Annotated[str, typer.Option("--id", help="The id (a link: its slug).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete one day's cost of one object."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import delete_cost

    run(
        db,
        lambda ctx: delete_cost(OPERATOR, ctx, space, day=day, level=level, object_id=object_id),
        flags=_FLAGS,
    )
    out.print(f"Deleted the cost of {level} {object_id} on {day}.", markup=False, highlight=False)


@rate_app.command("set")
def rate_set(
    space: SpaceOption,
    base: Annotated[str, typer.Option("--from", help="The currency converted, e.g. EUR.")],
    quote: Annotated[str, typer.Option("--to", help="The report currency, e.g. USD.")],
    day: Annotated[str, typer.Option("--day", help="From this day on, YYYY-MM-DD.")],
    rate: Annotated[str, typer.Option("--rate", help="One --from is worth this many --to.")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Set what one unit of --from is worth in --to from --day on (until a later day's rate).
    Reports use only the direction entered: set USD → EUR too if you report in EUR."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import rate_json, set_rate

    stored = run(
        db,
        lambda ctx: set_rate(OPERATOR, ctx, space, base=base, quote=quote, day=day, rate=rate),
        flags=_FLAGS,
    )
    data = rate_json(stored)
    if json_:
        print_json({"space_id": space, **data})
        return
    out.print(f"1 {data['from']} = {data['rate']} {data['to']} from {data['day']} in space"
              f" {space}.", markup=False, highlight=False)  # fmt: skip


@rate_app.command("list")
def rate_list(space: SpaceOption, db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """The space's exchange rates, by pair and day."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import rate_json, rates

    found = [rate_json(r) for r in run(db, lambda ctx: rates(OPERATOR, ctx, space))]
    if json_:
        print_json({"space_id": space, "rates": found})
        return
    from rich.table import Table

    table = Table("from", "to", "day", "rate", title=f"Exchange rates of space {space}")
    for r in found:
        table.add_row(r["from"], r["to"], r["day"], r["rate"])
    out.print(table)


def report_costs(
    db: str,
    space: int,
    *,
    currency: str,
    level: str | None,
    days: int | None,
    from_: str | None,
    to: str | None,
    tz: str | None,
    json_: bool,
) -> None:
    """``xtracker report costs``: the costs report, printed or as JSON."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.costs import costs_report

    data = run(
        db,
        lambda ctx: costs_report(OPERATOR, ctx, space, currency=currency, level=level,
                                 days=days, from_=from_, to=to, tz=tz),
        flags={**_FLAGS, "currency": "--currency", "level": "--level"},
    )  # fmt: skip
    if json_:
        print_json(data)
        return
    from rich.table import Table

    code = data["currency"]
    title = (f"Cost and ROI of space {space} in {code}, {data['from_day']} to {data['to_day']}"
             f" (excluded, {data['tz']}), costs at the {data['level']} level")  # fmt: skip
    table = Table("", "clicks", "cost", "revenue", "profit", "ROI", "ROAS", "CPC", "CPL", "CPA",
                  title=title)  # fmt: skip

    def row(label: str, r: dict[str, Any]) -> None:
        pct = "-" if r["roi"] is None else f"{float(r['roi']) * 100:.2f} %"
        cells = [r[k] or "-" for k in ("cost", "revenue", "profit")]
        table.add_row(label, str(r["clicks"]), *cells, pct,
                      *(r[k] or "-" for k in ("roas", "cpc", "cpl", "cpa")))  # fmt: skip

    row("total", data["total"])
    for r in data["links"]:
        row(f"link {r['link']}", r)
    out.print(table)
    for m in data["missing_rates"]:
        out.print(f"missing rate: {m['detail']}", markup=False, highlight=False, style="red")
