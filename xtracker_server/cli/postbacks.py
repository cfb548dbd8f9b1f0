"""``xtracker postback …``: the postback URLs to paste into a partner network's cabinet, the
status and parameter aliases that read them, and the log of what arrived."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    PublicUrlOption,
    SpaceOption,
    base_url,
    fail,
    group,
    out,
    print_json,
    run,
)
from xtracker_server.cli.reports import FormatOption, chosen_format, write_export
from xtracker_server.config import Settings
from xtracker_server.domain.postback_urls import NETWORKS

# Every postback command reads the aliases (domain/postbacks.py): imported here for --help.
from xtracker_server.domain.postbacks import FIELDS, check_param_name, check_status_name

if TYPE_CHECKING:
    from xtracker_server.domain.postback_urls import NetworkUrls
    from xtracker_server.domain.postbacks import Aliases

postback_app = group()  # its help: COMMANDS in cli/__init__.py
alias_app = group("Status aliases: a network's status -> an event, or ignore.")
param_app = group("Parameter aliases: a network's parameter name -> our field.")
postback_app.add_typer(alias_app, name="alias")
postback_app.add_typer(param_app, name="param")


@dataclass(frozen=True)
class _Aliases:
    """One of the two kinds of alias, which the ``alias`` and ``param`` commands share: how
    its commands name it, and how its entries read in ``--json`` and in a table."""

    key: str  # the field of Aliases, and of postback_aliases_json
    command: str  # xtracker postback <command> …
    noun: str
    name: str  # an entry's name and target in --json
    target: str
    columns: tuple[str, str, str]
    unmapped: str  # a table's cell for an entry that maps to nothing
    checked: Callable[[str], str]  # a name as the service stores it


STATUSES = _Aliases(
    key="statuses", command="alias", noun="Status", name="alias", target="maps_to",
    columns=("status", "counts as", "origin"), unmapped="(unknown: 422)",
    checked=check_status_name,
)  # fmt: skip
PARAMS = _Aliases(
    key="params", command="param", noun="Parameter", name="name", target="field",
    columns=("parameter", "read as", "origin"), unmapped="(not read)", checked=check_param_name,
)  # fmt: skip


def _change_alias(db: str, space: int, kind: _Aliases, name: str, target: str | None) -> Aliases:
    """Apply one alias change (target None removes it); the aliases in effect after it."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.errors import NOT_AN_ALIAS
    from xtracker_server.services.postbacks import change_aliases

    hint = f" (see `xtracker postback {kind.command} list --space {space}`)"
    return run(
        db,
        lambda ctx: change_aliases(OPERATOR, ctx, space, **{kind.key: {name: target}}),
        flags=lambda field: field.partition(".")[2] or field,
        hints={NOT_AN_ALIAS: hint},
    )


def _alias_entry(aliases: Aliases, kind: _Aliases, name: str) -> dict[str, Any]:
    from xtracker_server.views import postback_aliases_json

    found = [e for e in postback_aliases_json(aliases)[kind.key] if e[kind.name] == name]
    return found[0] if found else {}


def _set(db: str, space: int, kind: _Aliases, name: str, target: str, json_: bool) -> None:
    aliases = _change_alias(db, space, kind, name, target)
    name = kind.checked(name)
    mapped = getattr(aliases, kind.key)[name]
    if json_:
        print_json(_alias_entry(aliases, kind, name))
    else:
        out.print(f"{kind.noun} {name!r} -> {mapped} in space {space}.", markup=False,
                  highlight=False)  # fmt: skip


def _unset(db: str, space: int, kind: _Aliases, name: str, json_: bool) -> None:
    aliases = _change_alias(db, space, kind, name, None)
    name = kind.checked(name)
    if json_:
        print_json(_alias_entry(aliases, kind, name) or {kind.name: name, kind.target: None})
    else:
        out.print(f"{kind.noun} {name!r} removed from space {space}.", markup=False,
                  highlight=False)  # fmt: skip


def _list(db: str, space: int, kind: _Aliases, json_: bool) -> None:
    """The aliases in effect (defaults and the space's own), as a table or as ``--json``."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.postbacks import aliases as space_aliases
    from xtracker_server.views import postback_aliases_json

    aliases = run(db, lambda ctx: space_aliases(OPERATOR, ctx, space))
    entries: list[dict[str, Any]] = postback_aliases_json(aliases)[kind.key]
    if json_:
        print_json(entries)
        return
    from rich.table import Table

    table = Table(*kind.columns)
    for e in entries:
        table.add_row(e[kind.name], e[kind.target] or kind.unmapped, e["origin"])
    out.print(table)


@alias_app.command("set")
def postback_alias_set(
    space: SpaceOption,
    alias: Annotated[str, typer.Argument(help="The network's status, e.g. ftd (any case).")],
    event: Annotated[
        str,
        typer.Argument(
            help="contact, subscribed, registration, deposit, deposit.reversed or ignore."
        ),
    ],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Count a network's status as an event, or answer it 'ignored'. A running server sees
    the change within seconds."""
    _set(db, space, STATUSES, alias, event, json_)


@alias_app.command("unset")
def postback_alias_unset(
    space: SpaceOption,
    alias: Annotated[str, typer.Argument(help="The status alias to remove (defaults too).")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Remove a status alias: the status becomes unknown (refused with 422). `alias set`
    brings a default back."""
    _unset(db, space, STATUSES, alias, json_)


@alias_app.command("list")
def postback_alias_list(
    space: SpaceOption, db: DbOption = DEFAULT_DB, json_: JsonOption = False
) -> None:
    """The status aliases in effect (defaults and the space's own)."""
    _list(db, space, STATUSES, json_)


@param_app.command("set")
def postback_param_set(
    space: SpaceOption,
    name: Annotated[str, typer.Argument(help="The network's parameter name, e.g. cid.")],
    field: Annotated[str, typer.Argument(help=f"One of ours: {', '.join(FIELDS)}.")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Read a network's parameter as one of ours (when ours is absent)."""
    _set(db, space, PARAMS, name, field, json_)


@param_app.command("unset")
def postback_param_unset(
    space: SpaceOption,
    name: Annotated[str, typer.Argument(help="The parameter alias to remove (defaults too).")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Stop reading a parameter name (for instance a default that a network uses for
    something else)."""
    _unset(db, space, PARAMS, name, json_)


@param_app.command("list")
def postback_param_list(
    space: SpaceOption, db: DbOption = DEFAULT_DB, json_: JsonOption = False
) -> None:
    """The parameter aliases in effect (defaults and the space's own)."""
    _list(db, space, PARAMS, json_)


@postback_app.command("log")
def postback_log(
    space: SpaceOption,
    outcome: Annotated[
        str | None, typer.Option(help="queued, duplicate, ignored or rejected.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="The latest N rows (default 50).")
    ] = 50,
    all_: Annotated[
        bool, typer.Option("--all", help="Every row (with --format csv|json).")
    ] = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
    format_: FormatOption = None,
) -> None:
    """The postbacks the space received, newest first (tokens masked). ``--format csv|json``
    writes them as they are read, page by page."""
    from rich.markup import escape

    from xtracker_server.services import OPERATOR
    from xtracker_server.services.exports import postbacks_export
    from xtracker_server.services.postbacks import postback_log as log_of

    fmt = chosen_format(format_, json_)
    if fmt != "table":
        write_export(db, lambda ctx: postbacks_export(OPERATOR, ctx, space, outcome=outcome,
                     limit=None if all_ else limit), fmt, {"outcome": "--outcome"},
                     rows_only=True)  # fmt: skip
        return
    if all_:
        fail("--all: only with --format csv or json (a table of every row is no help)")
    if limit > 10_000:
        fail("--limit: at most 10000 rows as a table (use --format csv or json for more)")
    rows = run(db, lambda ctx: log_of(OPERATOR, ctx, space, outcome=outcome, limit=limit),
               flags={"outcome": "--outcome"})  # fmt: skip
    for r in rows:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at_ms / 1000))
        colour = {"queued": "green", "duplicate": "cyan", "ignored": "yellow"}.get(r.outcome, "red")
        parts = []
        if r.event or r.status:
            said = f" ({r.status})" if r.status and r.status.lower() != r.event else ""
            parts.append(f"{r.event or 'not counted'}{said}")
        if r.uid:
            parts.append(f"uid {r.uid}" + (" (no click)" if r.click_known is False else ""))
        if r.value:
            parts.append(f"{r.value} {r.currency}")
        if r.conflict is not None:
            c = r.conflict
            stored = f"{c.value} {c.currency}" if c.value is not None else "no amount"
            parts.append(f"CONFLICT: stored {stored}, not counted")
        if r.eid:
            parts.append(f"eid {r.eid}")
        if r.test:
            parts.append("TEST (not counted)")
        if r.inbox_id is not None:
            parts.append(f"inbox {r.inbox_id}")
        parts.append(
            f"from {r.ip or '?'}" + (f" with token {r.token_name}" if r.token_name else "")
        )
        line = f"{at}  [{colour}]{r.outcome:<9}[/{colour}]  " + escape("  ".join(parts))
        out.print(line, soft_wrap=True, highlight=False)
        if r.error:
            out.print(f"    {r.error}: {r.detail}", markup=False, soft_wrap=True, highlight=False)
        request = f"    {r.method} ?{r.query}" + (f"  body: {r.body}" if r.body else "")
        out.print(request, markup=False, soft_wrap=True, highlight=False)
    if not rows:
        out.print(f"No postbacks in space {space} (within the log's retention).")


@postback_app.command("url")
def postback_url(
    space: SpaceOption,
    network: Annotated[str, typer.Option(help=f"One of {', '.join(NETWORKS)}.")],
    event: Annotated[str, typer.Option(help="registration, deposit or all.")] = "all",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="XTRACKER_INGEST_TOKEN",
            help="The space's ingest token to put in the URLs (checked against its hash).",
            show_default=False,
        ),
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate",
            help="Issue a new ingest token for the URLs (the old one keeps working 24 hours).",
        ),
    ] = False,
    public_url: PublicUrlOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Print the postback URL(s) to paste into a partner network's cabinet, and the offer-link
    parameter that carries the click uid. Tokens are stored only hashed: pass --token (or
    XTRACKER_INGEST_TOKEN), or --rotate for a new one; otherwise the URLs show <INGEST_TOKEN>."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.errors import NOT_A_LIVE_TOKEN
    from xtracker_server.services.postbacks import make_urls
    from xtracker_server.views import postback_urls_json

    if token and rotate:
        fail("give --token or --rotate, not both")
    settings = Settings(db=db, public_url=base_url(public_url))
    made = run(
        db,
        lambda ctx: make_urls(OPERATOR, ctx, space, network=network, event=event,
                              token=token or None, rotate=rotate),
        settings=settings,
        flags={"network": "--network", "event": "--event", "token": "--token"},
        hints={NOT_A_LIVE_TOKEN: "; omit --token to get a placeholder, or --rotate for a new"
                                 " token"},
    )  # fmt: skip
    urls, source = made.urls, made.source
    data = postback_urls_json(space, urls, source)
    if json_:
        print_json(data)
        return
    _print_urls(space, network, urls, source)


def _print_urls(space: int, network: str, urls: NetworkUrls, source: str) -> None:
    from xtracker_server.domain.postback_urls import TOKEN_PLACEHOLDER

    plain: dict[str, Any] = {"markup": False, "highlight": False, "soft_wrap": True}
    out.print(f"Postback URLs for {network}, space {space}:", **plain)
    for u in urls.urls:
        out.print(f"\n{u.field}:", **plain)
        out.print(u.url, **plain)
    out.print(f"\nOffer link: add {urls.offer_param} to the target of your web link"
              " (xtracker link create --kind web --target '…'). ", **plain)  # fmt: skip
    for note in urls.notes:
        out.print(f"- {note}", **plain)
    if source == "placeholder":
        out.print(f"\nReplace {TOKEN_PLACEHOLDER} with the space's ingest token (shown when the"
                  " space was created), or run again with --token xt_it_… (checked) or --rotate"
                  " (a new token; the old one keeps working 24 hours).", **plain)  # fmt: skip
    elif source == "rotated":
        out.print("\nThe token in these URLs is new (shown only here); the previous one keeps"
                  " working for 24 hours: update every URL that uses it.", **plain)  # fmt: skip
    out.print(f"\nCheck what arrives with: xtracker postback log --space {space}", **plain)
