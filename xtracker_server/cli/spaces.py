"""``xtracker space …``: spaces (tenants), their currencies and their token binds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    err,
    fail,
    group,
    no_space,
    out,
    print_json,
    write,
)
from xtracker_server.cli.deletion import space_delete
from xtracker_server.clock import now_ms

if TYPE_CHECKING:
    import sqlite3

space_app = group()  # its help: COMMANDS in cli/__init__.py
space_app.command("delete")(space_delete)


@space_app.command("create")
def space_create(name: str, db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """Create a space; prints its bearer secret and ingest token, once."""
    from xtracker_server.store import spaces
    from xtracker_server.views import new_space_json

    name = name.strip()
    if not 0 < len(name) <= 100:
        err.print("[red]error:[/red] the name must be 1 to 100 characters")
        raise typer.Exit(2)
    created = write(db, lambda c: spaces.create_space(c, name, now_ms()), create=True)
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
    from xtracker_server.store import spaces
    from xtracker_server.views import space_json

    found = write(db, spaces.list_spaces)
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
    from xtracker_server.domain.currencies import CRYPTO_TICKERS, check_allowed
    from xtracker_server.store import spaces
    from xtracker_server.views import currencies_json

    added = [c for c in (allow or "").split(",") if c.strip()]
    removed = {c.strip().upper() for c in (remove or "").split(",") if c.strip()}

    def change(conn: sqlite3.Connection) -> tuple[str, ...]:
        current = spaces.allowed_currencies(conn, space)
        if current is None:
            no_space(space)
        if not added and not removed:
            return current
        try:
            codes = check_allowed([*(c for c in current if c not in removed), *added])
        except ValueError as exc:
            fail(f"--allow: {exc}")
        spaces.set_allowed_currencies(conn, space, codes)
        return codes

    codes = write(db, change)
    if json_:
        print_json(currencies_json(space, codes))
        return
    shown = ", ".join(codes) or "none"
    out.print(f"Space {space} accepts ISO 4217 codes, the crypto tickers"
              f" {', '.join(CRYPTO_TICKERS)}, and its own: {shown}", markup=False,
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
    from xtracker_server.store import binds, spaces
    from xtracker_server.views import token_binds_json

    if state not in (None, "on", "off"):
        fail(f"{state!r}: say on or off")

    def apply(conn: sqlite3.Connection) -> bool | None:
        if spaces.get_space(conn, space) is None:
            return None
        if state is not None:
            binds.set_token_binds(conn, space, state == "on")
        return binds.token_binds_allowed(conn, space)

    allowed = write(db, apply)
    if allowed is None:
        no_space(space)
    if json_:
        print_json(token_binds_json(space, allowed))
        return
    said = (
        "on: GET /bind is taken (a token bind never replaces a bind)"
        if allowed
        else "off: GET /bind is refused (403)"
    )
    out.print(f"Token binds in space {space} are {said}.", markup=False, highlight=False)
