"""The ``xtracker`` command. Scripts depend on these forms and on the ``--json`` shapes.

Every command that touches data takes ``--db`` (or ``XTRACKER_DB``) and works on the file
directly, also while a server runs on it: the server sees a new or rotated key within seconds.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from xtracker_server.config import SYNC_MODES, Settings, parse_proxies
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.store import spaces
from xtracker_server.store.db import open_db, transaction
from xtracker_server.views import new_space_json, rotation_json, space_json

T = TypeVar("T")

app = typer.Typer(
    help="XTRACKER: conversion tracking for Telegram funnels and affiliate offers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Spaces (tenants).", no_args_is_help=True)
key_app = typer.Typer(help="Space credentials.", no_args_is_help=True)
admin_app = typer.Typer(help="The operator's admin token.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(key_app, name="key")
app.add_typer(admin_app, name="admin")

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", envvar="XTRACKER_DB", help="The SQLite file.", show_default=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable, for scripts).")]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _write(db: str, op: Callable[[sqlite3.Connection], T]) -> T:
    conn = open_db(db)
    try:
        with transaction(conn):
            return op(conn)
    finally:
        conn.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


@app.command()
def serve(
    db: DbOption = "./xtracker.db",
    host: Annotated[str, typer.Option(envvar="XTRACKER_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="XTRACKER_PORT")] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option(envvar="XTRACKER_PUBLIC_URL", help="Base of URLs shown to users."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="XTRACKER_ADMIN_TOKEN",
            help="Operator token; if unset, one is generated on first start and printed once.",
            show_default=False,
        ),
    ] = None,
    sync: Annotated[
        str,
        typer.Option(envvar="XTRACKER_SYNC", help=f"SQLite synchronous: {', '.join(SYNC_MODES)}."),
    ] = "FULL",
    worker: Annotated[bool, typer.Option("--worker/--no-worker", envvar="XTRACKER_WORKER")] = True,
    retry_base_s: Annotated[float, typer.Option(envvar="XTRACKER_RETRY_BASE_S")] = 30.0,
    retry_cap_s: Annotated[float, typer.Option(envvar="XTRACKER_RETRY_CAP_S")] = 3600.0,
    retry_max_age_s: Annotated[float, typer.Option(envvar="XTRACKER_RETRY_MAX_AGE_S")] = 86400.0,
    allow_private_destinations: Annotated[
        bool,
        typer.Option(
            "--allow-private-destinations/--no-allow-private-destinations",
            envvar="XTRACKER_ALLOW_PRIVATE_DESTINATIONS",
        ),
    ] = False,
    fb_graph_url: Annotated[
        str, typer.Option(envvar="XTRACKER_FB_GRAPH_URL")
    ] = "https://graph.facebook.com",
    fb_api_version: Annotated[str, typer.Option(envvar="XTRACKER_FB_API_VERSION")] = "v21.0",
    trusted_proxies: Annotated[
        str | None,
        typer.Option(envvar="XTRACKER_TRUSTED_PROXIES", help="Comma-separated addresses/CIDRs."),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            envvar="XTRACKER_RATE_LIMIT", help="Requests/s per credential (burst 2x); 0 = off."
        ),
    ] = 1000.0,
    log_level: Annotated[str, typer.Option(envvar="XTRACKER_LOG_LEVEL")] = "info",
) -> None:
    """Run the server (ingress API and admin API) on an embedded SQLite file."""
    import uvicorn

    from xtracker_server.app import create_app

    try:
        settings = Settings(
            db=db,
            host=host,
            port=port,
            public_url=public_url,
            admin_token=admin_token,
            sync=sync.upper(),  # type: ignore[arg-type]
            worker=worker,
            retry_base_s=retry_base_s,
            retry_cap_s=retry_cap_s,
            retry_max_age_s=retry_max_age_s,
            allow_private_destinations=allow_private_destinations,
            fb_graph_url=fb_graph_url,
            fb_api_version=fb_api_version,
            trusted_proxies=parse_proxies(trusted_proxies),
            rate_limit=rate_limit,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    if settings.admin_token is None:
        generated = _write(
            db,
            lambda c: None if spaces.has_admin_token(c) else spaces.reset_admin_token(c, _now_ms()),
        )
        if generated is not None:
            out.print("Admin token (shown once; keep it, it guards the admin API):")
            out.print(generated, markup=False, highlight=False, soft_wrap=True)
    out.print(f"xtracker listening on http://{settings.host}:{settings.port} (db: {db})")
    sys.stdout.flush()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        # Access logs would write ?token= secrets of postback URLs to disk; they stay off.
        access_log=False,
        server_header=False,
    )


@space_app.command("create")
def space_create(name: str, db: DbOption = "./xtracker.db", json_: JsonOption = False) -> None:
    """Create a space; prints its bearer secret and ingest token, once."""
    name = name.strip()
    if not 0 < len(name) <= 100:
        err.print("[red]error:[/red] the name must be 1 to 100 characters")
        raise typer.Exit(2)
    created = _write(db, lambda c: spaces.create_space(c, name, _now_ms()))
    data = new_space_json(created)
    if json_:
        _print_json(data)
        return
    out.print(f"Space {created.space.id} [bold]{created.space.name}[/bold] created.")
    out.print("These secrets are shown once; they are stored only as hashes.")
    out.print(f"  bearer (Authorization: Bearer):  {created.bearer}", markup=False, highlight=False)
    out.print(
        f"  ingest token (?token= on GET):   {created.ingest_token}", markup=False, highlight=False
    )


@space_app.command("list")
def space_list(db: DbOption = "./xtracker.db", json_: JsonOption = False) -> None:
    """List spaces."""
    found = _write(db, spaces.list_spaces)
    if json_:
        _print_json([space_json(s) for s in found])
        return
    table = Table("id", "name", "created (UTC)")
    for s in found:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.created_ms / 1000))
        table.add_row(str(s.id), s.name, created)
    out.print(table)


@key_app.command("rotate")
def key_rotate(
    space: Annotated[int, typer.Option("--space", help="The space id.")],
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Rotate the ingest token instead of the bearer.")
    ] = False,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Issue a new bearer secret (or ingest token); the old one keeps working for 24 hours."""
    kind = CredentialKind.INGEST if ingest else CredentialKind.BEARER
    rotation = _write(db, lambda c: spaces.rotate_credential(c, space, kind, _now_ms()))
    if rotation is None:
        err.print(f"[red]error:[/red] no space {space} (see `xtracker space list`)")
        raise typer.Exit(1)
    data = rotation_json(rotation)
    if json_:
        _print_json(data)
        return
    out.print(f"New {kind.value} for space {space} (shown once):")
    out.print(rotation.secret, markup=False, highlight=False)
    if rotation.previous_valid_until_ms:
        until = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(rotation.previous_valid_until_ms / 1000)
        )
        out.print(f"The previous one stays valid until {until}.")


@admin_app.command("reset-token")
def admin_reset_token(db: DbOption = "./xtracker.db", json_: JsonOption = False) -> None:
    """Replace the stored admin token (the old one stops working within seconds)."""
    token = _write(db, lambda c: spaces.reset_admin_token(c, _now_ms()))
    if json_:
        _print_json({"admin_token": token})
    else:
        out.print("New admin token (shown once):")
        out.print(token, markup=False, highlight=False)


def main() -> None:
    app(prog_name="xtracker")
