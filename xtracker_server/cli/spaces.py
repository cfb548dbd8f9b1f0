"""``xtracker space …``: spaces (tenants), their currencies and their token binds."""

from __future__ import annotations

import time
from typing import Annotated

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
from xtracker_server.cli.deletion import space_delete

space_app = group()  # its help: COMMANDS in cli/__init__.py
space_app.command("delete")(space_delete)


@space_app.command("create")
def space_create(name: str, db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """Create a space; prints its bearer secret and ingest token, once."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.spaces import create_space
    from xtracker_server.views import new_space_json

    created = run(
        db, lambda ctx: create_space(OPERATOR, ctx, name), create=True, flags={"name": "NAME"}
    )
    data = new_space_json(created)
    if json_:
        print_json(data)
        return
    out.print(f"Space {created.space.id} [bold]{created.space.name}[/bold] created.")
    out.print("These secrets are shown once; they are stored only as hashes.")
    out.print(f"  bearer (Authorization: Bearer):  {created.bearer}", markup=False, highlight=False)
    out.print(
        f"  ingest token (?token= on GET):   {created.ingest_token}", markup=False, highlight=False
    )


@space_app.command("list")
def space_list(db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """List spaces."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.spaces import list_spaces
    from xtracker_server.views import space_json

    found = run(db, lambda ctx: list_spaces(OPERATOR, ctx))
    if json_:
        print_json([space_json(s) for s in found])
        return
    from rich.table import Table

    table = Table("id", "name", "created (UTC)")
    for s in found:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.created_ms / 1000))
        table.add_row(str(s.id), s.name, created)
    out.print(table)


@space_app.command("currencies")
def space_currencies(
    space: SpaceOption,
    allow: Annotated[
        str | None, typer.Option("--allow", help="Add these codes, comma-separated: GEMS,ABC.")
    ] = None,
    remove: Annotated[
        str | None, typer.Option("--remove", help="Remove these codes, comma-separated.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Show or change the space's own currency codes, accepted on its events besides ISO 4217
    codes and the common crypto tickers (docs/api.md#currency)."""
    from xtracker_server.domain.currencies import CRYPTO_TICKERS
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.currencies import change_currencies
    from xtracker_server.views import currencies_json

    codes = run(
        db,
        lambda ctx: change_currencies(
            OPERATOR, ctx, space, allow=(allow or "").split(","), remove=(remove or "").split(",")
        ),
        flags={"allowed": "--allow"},
    )
    if json_:
        print_json(currencies_json(space, codes))
        return
    shown = ", ".join(codes) or "none"
    out.print(f"Space {space} accepts ISO 4217 codes, the crypto tickers"
              f" {', '.join(CRYPTO_TICKERS)}, and its own: {shown}", markup=False,
              highlight=False)  # fmt: skip


@space_app.command("sub-ids")
def space_sub_ids(
    space: SpaceOption,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="The query parameters to record as sub-ids (replaces the list): sub1 creative.",
            show_default=False,
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Record no sub-ids.")] = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Show or set the query parameters the space records as sub-ids with each click of its
    landing, for reports to group and filter by (docs/reports.md#what-a-click-records)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.sub_ids import set_sub_ids, sub_ids
    from xtracker_server.views import sub_ids_json

    if clear and names:
        fail("give the names or --clear, not both")
    declared = run(
        db,
        lambda ctx: (
            set_sub_ids(OPERATOR, ctx, space, [] if clear else names or [])
            if clear or names
            else sub_ids(OPERATOR, ctx, space)
        ),
        flags={"params": "NAMES"},
    )
    if json_:
        print_json(sub_ids_json(space, declared))
        return
    out.print(f"Space {space} records as sub-ids: {', '.join(declared) or 'none'}", markup=False,
              highlight=False)  # fmt: skip


@space_app.command("token-binds")
def space_token_binds(
    space: SpaceOption,
    state: Annotated[
        str | None,
        typer.Argument(
            help="on: take GET /bind with the ingest token; off: refuse it (403).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Show, or turn on or off, the space's binds made with the ingest token (GET /bind). A
    token bind never replaces a bind; off refuses them all (the bot's POST /bind stays)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.spaces import set_token_binds, token_binds
    from xtracker_server.views import token_binds_json

    if state not in (None, "on", "off"):
        fail(f"{state!r}: say on or off")
    allowed = run(
        db,
        lambda ctx: (
            token_binds(OPERATOR, ctx, space)
            if state is None
            else set_token_binds(OPERATOR, ctx, space, state == "on")
        ),
    )
    if json_:
        print_json(token_binds_json(space, allowed))
        return
    said = (
        "on: GET /bind is taken (a token bind never replaces a bind)"
        if allowed
        else "off: GET /bind is refused (403)"
    )
    out.print(f"Token binds in space {space} are {said}.", markup=False, highlight=False)
