"""The ``xtracker`` command. Scripts depend on these forms and on the ``--json`` shapes.

Every command that touches data takes ``--db`` (or ``XTRACKER_DB``) and works on the file
directly, also while a server runs on it: the server sees a new or rotated key within seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xtracker_server.cli_deletion import destination_delete, erase, link_delete, space_delete
from xtracker_server.cli_report import report_app, tail
from xtracker_server.config import SYNC_MODES, Settings, parse_proxies
from xtracker_server.delivery.guard import address_problem
from xtracker_server.delivery.probe import ProbeRefused, probe
from xtracker_server.domain.credentials import CredentialKind, check_token_name
from xtracker_server.domain.currencies import CRYPTO_TICKERS, check_allowed
from xtracker_server.domain.destinations import (
    DestinationInput,
    parse_event_map,
    prepare_destination,
)
from xtracker_server.domain.links import LinkSpec, check_slug
from xtracker_server.domain.postback_urls import (
    EVENT_CHOICES,
    NETWORKS,
    TOKEN_PLACEHOLDER,
    postback_urls,
)
from xtracker_server.domain.postbacks import (
    FIELDS,
    Aliases,
    check_param_alias,
    check_param_name,
    check_status_alias,
    check_status_name,
    effective_aliases,
)
from xtracker_server.domain.query import MAX_WHOLE
from xtracker_server.store import binds, links, outbox, spaces
from xtracker_server.store import destinations as dest_store
from xtracker_server.store import postbacks as pb_store
from xtracker_server.store.backup import BackupError
from xtracker_server.store.backup import backup as backup_database
from xtracker_server.store.backup import restore as restore_database
from xtracker_server.store.db import open_db, transaction
from xtracker_server.store.inuse import DatabaseInUse, RestoreInProgress, hold_shared
from xtracker_server.store.links import Link
from xtracker_server.views import (
    currencies_json,
    delivery_json,
    destination_json,
    ingest_token_json,
    link_created_json,
    link_json,
    new_space_json,
    new_token_json,
    postback_aliases_json,
    postback_log_json,
    postback_urls_json,
    probe_json,
    revocation_json,
    rotation_json,
    space_json,
    token_binds_json,
)

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
token_app = typer.Typer(help="Named ingest tokens: one per partner network, each revocable.",
                        no_args_is_help=True)  # fmt: skip
link_app = typer.Typer(
    help="Links: landing pages and redirects that mint clicks.", no_args_is_help=True
)
dest_app = typer.Typer(help="Destinations: where events are delivered.", no_args_is_help=True)
eventmap_app = typer.Typer(help="Which events a destination gets, and by what name.",
                           no_args_is_help=True)  # fmt: skip
outbox_app = typer.Typer(help="Deliveries: what was sent where, and what failed.",
                         no_args_is_help=True)  # fmt: skip
postback_app = typer.Typer(help="Partner postbacks: URLs to paste, aliases and the log.",
                           no_args_is_help=True)  # fmt: skip
alias_app = typer.Typer(help="Status aliases: a network's status -> an event, or ignore.",
                        no_args_is_help=True)  # fmt: skip
param_app = typer.Typer(help="Parameter aliases: a network's parameter name -> our field.",
                        no_args_is_help=True)  # fmt: skip
postback_app.add_typer(alias_app, name="alias")
postback_app.add_typer(param_app, name="param")
app.add_typer(postback_app, name="postback")
app.add_typer(dest_app, name="destination")
app.add_typer(eventmap_app, name="eventmap")
app.add_typer(outbox_app, name="outbox")
app.add_typer(space_app, name="space")
app.add_typer(link_app, name="link")
app.add_typer(key_app, name="key")
app.add_typer(token_app, name="token")
app.add_typer(admin_app, name="admin")
app.add_typer(report_app, name="report")
app.command("tail")(tail)
space_app.command("delete")(space_delete)
link_app.command("delete")(link_delete)
dest_app.command("delete")(destination_delete)
app.command("erase")(erase)

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", envvar="XTRACKER_DB", help="The SQLite file.", show_default=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable, for scripts).")]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _write(db: str, op: Callable[[sqlite3.Connection], T], *, create: bool = False) -> T:
    """Run ``op`` in one transaction on the file. Only commands that start a database
    (``serve``, ``space create``) may create the file: a mistyped --db must not look empty."""
    if not create and db != ":memory:" and not Path(db).expanduser().exists():
        _fail(f"no database at {db}: pass --db (or XTRACKER_DB), or start with `xtracker serve`", 1)
    try:
        conn = open_db(db)
    except (RuntimeError, sqlite3.DatabaseError) as exc:
        _fail(f"cannot open {db}: {exc}", 1)
    try:
        with transaction(conn):
            return op(conn)
    finally:
        conn.close()


def _check_database(db: str, sync: str) -> None:
    """Refuse to start on a database that cannot be written or is damaged (store/startup.py)."""
    from xtracker_server.store.startup import DatabaseRefused, check_database

    try:
        checked = check_database(db, sync=sync)
    except DatabaseRefused as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if checked.quick_check == "skipped":
        err.print(
            f"PRAGMA quick_check of {db} stopped after {checked.seconds:.1f} s: the file is"
            " started on unchecked (check it with `sqlite3 FILE 'PRAGMA quick_check'` while"
            " xtracker is stopped).",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


@app.command()
def worker(
    db: DbOption = "./xtracker.db",
    poll_s: Annotated[
        float,
        typer.Option(envvar="XTRACKER_WORKER_POLL_S", help="Seconds between looks for due work."),
    ] = 1.0,
) -> None:
    """Run the delivery worker alone (settings from the XTRACKER_* environment). Several
    workers, and servers started with --no-worker, can share one database."""
    from xtracker_server.delivery.worker import Worker
    from xtracker_server.store.runtime import Store

    if not Path(db).expanduser().exists():
        _fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    try:
        settings = Settings.from_env().with_(db=db, worker_poll_s=poll_s)
    except ValueError as exc:
        _fail(str(exc))

    _check_database(db, settings.sync)

    async def run() -> None:
        store = Store(
            settings.db,
            sync=settings.sync,
            timeout_s=settings.write_timeout_s,
            writer_process=settings.writer_process,
        )
        await store.open()
        worker = Worker(store, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        out.print(f"xtracker worker {worker.owner} running (db: {db})")
        sys.stdout.flush()
        await stop.wait()
        await worker.stop()
        await store.close()

    try:
        asyncio.run(run())
    except RestoreInProgress as exc:
        _fail(str(exc), 1)


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
    country_header: Annotated[
        str | None,
        typer.Option(
            envvar="XTRACKER_COUNTRY_HEADER",
            help="Header with the visitor's country (CF-IPCountry).",
        ),
    ] = None,
    click_window_s: Annotated[
        float,
        typer.Option(
            envvar="XTRACKER_CLICK_WINDOW_S", help="A repeat visit within this keeps its uid."
        ),
    ] = 86400.0,
    delivery_timeout_s: Annotated[
        float, typer.Option(envvar="XTRACKER_DELIVERY_TIMEOUT_S", help="Per delivery request.")
    ] = 10.0,
    worker_poll_s: Annotated[
        float, typer.Option(envvar="XTRACKER_WORKER_POLL_S", help="Outbox poll interval.")
    ] = 1.0,
    postback_log_days: Annotated[
        float,
        typer.Option(envvar="XTRACKER_POSTBACK_LOG_DAYS", help="Days the postback log keeps."),
    ] = 30.0,
    stream_poll_s: Annotated[
        float, typer.Option(envvar="XTRACKER_STREAM_POLL_S", help="Live stream poll interval.")
    ] = 0.2,
    stream_max_per_credential: Annotated[
        int,
        typer.Option(
            envvar="XTRACKER_STREAM_MAX_PER_CREDENTIAL", help="Live streams per credential."
        ),
    ] = 4,
    stream_max_per_space: Annotated[
        int, typer.Option(envvar="XTRACKER_STREAM_MAX_PER_SPACE", help="Live streams per space.")
    ] = 16,
    click_limit_per_ip: Annotated[
        int,
        typer.Option(
            envvar="XTRACKER_CLICK_LIMIT_PER_IP",
            help="Clicks recorded per visitor address per minute; 0 = off.",
        ),
    ] = 300,
    auth_failures_per_minute: Annotated[
        float,
        typer.Option(
            envvar="XTRACKER_AUTH_FAILURES_PER_MINUTE",
            help="Failed authentications per client address a minute before 429; 0 = off.",
        ),
    ] = 20.0,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            envvar="XTRACKER_METRICS_TOKEN",
            help="A token for GET /metrics besides the admin token (for a Prometheus scraper).",
            show_default=False,
        ),
    ] = None,
    metrics_public: Annotated[
        bool,
        typer.Option(
            "--metrics-public/--no-metrics-public",
            envvar="XTRACKER_METRICS_PUBLIC",
            help="Serve GET /metrics with no credential.",
        ),
    ] = False,
    write_timeout_s: Annotated[
        float,
        typer.Option(
            envvar="XTRACKER_WRITE_TIMEOUT_S",
            help="Deadline of a request's storage access; past it: 503 (reason timeout).",
        ),
    ] = 5.0,
    click_buffer_max: Annotated[
        int,
        typer.Option(
            envvar="XTRACKER_CLICK_BUFFER_MAX",
            help="Clicks kept while storage fails, stored when it recovers; 0 = none.",
        ),
    ] = 50_000,
    writer_process: Annotated[
        bool,
        typer.Option(
            "--writer-process/--no-writer-process",
            envvar="XTRACKER_WRITER_PROCESS",
            help="Commit writes in a process of their own (off: a thread of the server).",
        ),
    ] = True,
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
            country_header=country_header or None,
            click_window_s=click_window_s,
            delivery_timeout_s=delivery_timeout_s,
            worker_poll_s=worker_poll_s,
            postback_log_days=postback_log_days,
            stream_poll_s=stream_poll_s,
            stream_max_per_credential=stream_max_per_credential,
            stream_max_per_space=stream_max_per_space,
            click_limit_per_ip=click_limit_per_ip,
            auth_failures_per_minute=auth_failures_per_minute,
            metrics_token=metrics_token or None,
            metrics_public=metrics_public,
            write_timeout_s=write_timeout_s,
            click_buffer_max=click_buffer_max,
            writer_process=writer_process,
        )
    except ValueError as exc:
        _fail(str(exc))  # one line: scripts and tests read it whole

    _check_database(db, settings.sync)

    if settings.admin_token is None:
        generated = _write(
            db,
            lambda c: None if spaces.has_admin_token(c) else spaces.reset_admin_token(c, _now_ms()),
            create=True,
        )
        if generated is not None:
            out.print("Admin token (shown once; keep it, it guards the admin API):")
            out.print(generated, markup=False, highlight=False, soft_wrap=True)
    try:  # the store takes the lock for good when the app starts; say it plainly before
        hold_shared(db).release()
    except RestoreInProgress as exc:
        _fail(str(exc), 1)
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
        # Client addresses are resolved by us, against XTRACKER_TRUSTED_PROXIES only; uvicorn's
        # own handling would believe X-Forwarded-For from any loopback peer.
        proxy_headers=False,
    )


@space_app.command("create")
def space_create(name: str, db: DbOption = "./xtracker.db", json_: JsonOption = False) -> None:
    """Create a space; prints its bearer secret and ingest token, once."""
    name = name.strip()
    if not 0 < len(name) <= 100:
        err.print("[red]error:[/red] the name must be 1 to 100 characters")
        raise typer.Exit(2)
    created = _write(db, lambda c: spaces.create_space(c, name, _now_ms()), create=True)
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


@space_app.command("currencies")
def space_currencies(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    allow: Annotated[
        str | None, typer.Option("--allow", help="Add these codes, comma-separated: GEMS,ABC.")
    ] = None,
    remove: Annotated[
        str | None, typer.Option("--remove", help="Remove these codes, comma-separated.")
    ] = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Show or change the space's own currency codes, accepted on its events besides ISO 4217
    codes and the common crypto tickers (docs/api.md#currency)."""
    added = [c for c in (allow or "").split(",") if c.strip()]
    removed = {c.strip().upper() for c in (remove or "").split(",") if c.strip()}

    def change(conn: sqlite3.Connection) -> tuple[str, ...]:
        current = spaces.allowed_currencies(conn, space)
        if current is None:
            _fail(f"no space {space} (see `xtracker space list`)", 1)
        if not added and not removed:
            return current
        try:
            codes = check_allowed([*(c for c in current if c not in removed), *added])
        except ValueError as exc:
            _fail(f"--allow: {exc}")
        spaces.set_allowed_currencies(conn, space, codes)
        return codes

    codes = _write(db, change)
    if json_:
        _print_json(currencies_json(space, codes))
        return
    shown = ", ".join(codes) or "none"
    out.print(f"Space {space} accepts ISO 4217 codes, the crypto tickers"
              f" {', '.join(CRYPTO_TICKERS)}, and its own: {shown}", markup=False,
              highlight=False)  # fmt: skip


@space_app.command("token-binds")
def space_token_binds(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    state: Annotated[
        str | None,
        typer.Argument(
            help="on: take GET /bind with the ingest token; off: refuse it (403).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Show, or turn on or off, the space's binds made with the ingest token (GET /bind). A
    token bind never replaces a bind; off refuses them all (the bot's POST /bind stays)."""
    if state not in (None, "on", "off"):
        _fail(f"{state!r}: say on or off")

    def apply(conn: sqlite3.Connection) -> bool | None:
        if spaces.get_space(conn, space) is None:
            return None
        if state is not None:
            binds.set_token_binds(conn, space, state == "on")
        return binds.token_binds_allowed(conn, space)

    allowed = _write(db, apply)
    if allowed is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    if json_:
        _print_json(token_binds_json(space, allowed))
        return
    said = (
        "on: GET /bind is taken (a token bind never replaces a bind)"
        if allowed
        else "off: GET /bind is refused (403)"
    )
    out.print(f"Token binds in space {space} are {said}.", markup=False, highlight=False)


IngestOption = Annotated[
    bool, typer.Option("--ingest", help="An ingest token instead of the bearer.")
]
TokenNameOption = Annotated[
    str | None,
    typer.Option("--name", help="With --ingest: the ingest token's name (default: default)."),
]


def _key_kind(ingest: bool, name: str | None) -> tuple[CredentialKind, str | None]:
    """The credential that ``--ingest`` and ``--name`` choose."""
    if name is not None and not ingest:
        _fail("--name names an ingest token: add --ingest")
    kind = CredentialKind.INGEST if ingest else CredentialKind.BEARER
    try:
        return kind, None if name is None else check_token_name(name)
    except ValueError as exc:
        _fail(f"--name: {exc}")


def _no_token(space: int, name: str) -> NoReturn:
    _fail(
        f"space {space} has no ingest token named {name!r}"
        f" (see `xtracker token list --space {space}`)",
        1,
    )


@key_app.command("rotate")
def key_rotate(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    ingest: IngestOption = False,
    name: TokenNameOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Issue a new bearer secret (or ingest token); the old one keeps working for 24 hours
    (end it at once with `xtracker key revoke`)."""
    kind, name = _key_kind(ingest, name)
    try:
        rotation = _write(db, lambda c: spaces.rotate_credential(c, space, kind, _now_ms(), name))
    except spaces.NoSuchToken as exc:
        _no_token(space, str(exc))
    if rotation is None:
        err.print(f"[red]error:[/red] no space {space} (see `xtracker space list`)")
        raise typer.Exit(1)
    data = rotation_json(rotation)
    if json_:
        _print_json(data)
        return
    what = kind.value if rotation.name is None else f"ingest token {rotation.name!r}"
    out.print(f"New {what} for space {space} (shown once):", markup=False, highlight=False)
    out.print(rotation.secret, markup=False, highlight=False)
    if rotation.previous_valid_until_ms:
        until = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(rotation.previous_valid_until_ms / 1000)
        )
        out.print(f"The previous one stays valid until {until}.")


@key_app.command("revoke")
def key_revoke(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    ingest: IngestOption = False,
    name: TokenNameOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """End now the previous bearer secret (or ingest token) that a rotation left valid for 24
    hours, after a leak. The current one keeps working; a running server refuses the old one
    within seconds."""
    kind, name = _key_kind(ingest, name)
    revocation = _write(db, lambda c: spaces.revoke_previous(c, space, kind, _now_ms(), name))
    if revocation is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    if json_:
        _print_json(revocation_json(revocation))
        return
    what = kind.value if revocation.name is None else f"ingest token {revocation.name!r}"
    if revocation.revoked:
        message = (
            f"Ended {revocation.revoked} previous {what} secret(s) of space {space}; the"
            " current one keeps working."
        )
    else:
        message = (
            f"No previous {what} secret of space {space} was still valid: nothing to end"
            " (rotate first: `xtracker key rotate`)."
        )
    out.print(message, markup=False, highlight=False, soft_wrap=True)


@token_app.command("add")
def token_add(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    name: Annotated[str, typer.Option("--name", help="The partner network, e.g. adcombo.")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Add an ingest token for one partner network; prints it once. The postback log names
    the token each postback used."""
    try:
        name = check_token_name(name)
    except ValueError as exc:
        _fail(f"--name: {exc}")
    try:
        token = _write(db, lambda c: spaces.add_ingest_token(c, space, name, _now_ms()))
    except spaces.TokenNameTaken:
        _fail(
            f"space {space} already has an ingest token named {name!r}: pick another name,"
            f" or revoke it first (xtracker token revoke --space {space} --name {name})",
            1,
        )
    if token is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    if json_:
        _print_json(new_token_json(token))
        return
    out.print(f"Ingest token {name!r} of space {space} (shown once; stored only as a hash):",
              markup=False, highlight=False, soft_wrap=True)  # fmt: skip
    out.print(token.secret, markup=False, highlight=False)


@token_app.command("list")
def token_list(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """The space's live ingest tokens: names and hints, never the secrets."""
    found = _space_read(db, space, lambda c, s: pb_store.ingest_tokens(c, s, _now_ms()))
    if json_:
        _print_json([ingest_token_json(t) for t in found])
        return

    def when(ms: int | None, none: str) -> str:
        return none if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))

    table = Table("name", "hint", "created (UTC)", "valid until", "last postback")
    for t in found:
        table.add_row(t.name, t.hint, when(t.created_ms, ""), when(t.expires_ms, "until revoked"),
                      when(t.last_postback_ms, "never"))  # fmt: skip
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    space: Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")],
    name: Annotated[str, typer.Option("--name", help="The token's name.")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """End an ingest token now (also its rotated-out secrets): postbacks that use it get 401.
    The space's other tokens keep working."""
    name = name.strip().lower()
    revocation = _write(db, lambda c: spaces.revoke_ingest_token(c, space, name, _now_ms()))
    if revocation is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    if not revocation.revoked:
        _no_token(space, name)
    if json_:
        _print_json(revocation_json(revocation))
        return
    out.print(f"Ingest token {name!r} of space {space} revoked; a running server refuses it"
              " within seconds.", markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@admin_app.command("reset-token")
def admin_reset_token(db: DbOption = "./xtracker.db", json_: JsonOption = False) -> None:
    """Replace the stored admin token (the old one stops working within seconds)."""
    token = _write(db, lambda c: spaces.reset_admin_token(c, _now_ms()))
    if json_:
        _print_json({"admin_token": token})
    else:
        out.print("New admin token (shown once):")
        out.print(token, markup=False, highlight=False)


PublicUrlOption = Annotated[
    str | None,
    typer.Option(
        envvar="XTRACKER_PUBLIC_URL", help="Base of the printed URLs (default http://HOST:PORT)."
    ),
]
SpaceOption = Annotated[int, typer.Option("--space", min=1, max=MAX_WHOLE, help="The space id.")]
SlugOption = Annotated[str, typer.Option("--slug", help="The link's slug (its URL path).")]


def _base_url(public_url: str | None) -> str:
    if public_url:
        return public_url.rstrip("/")
    host = os.environ.get("XTRACKER_HOST") or "127.0.0.1"
    return f"http://{host}:{os.environ.get('XTRACKER_PORT') or 8000}"


def _link_changes(**options: Any) -> dict[str, Any]:
    """The link fields given on the command line (None means: not given)."""
    return {k: v for k, v in options.items() if v is not None}


def _invalid_link(exc: ValidationError) -> NoReturn:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'link'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False)
    )
    _fail(problems)


@link_app.command("create")
def link_create(
    space: SpaceOption,
    slug: SlugOption,
    kind: Annotated[str, typer.Option(help="bot, miniapp, channel or web.")],
    target: Annotated[
        str, typer.Option(help="Bot username, bot/app, invite link, or URL with {uid}.")
    ],
    app_name: Annotated[str | None, typer.Option("--app", help="Mini App short name.")] = None,
    prefix: Annotated[str, typer.Option(help="Start payload prefix: <prefix>_<uid>.")] = "fb",
    title: Annotated[str, typer.Option(help="Landing page title.")] = "",
    text: Annotated[str, typer.Option(help="Landing page text.")] = "",
    button: Annotated[str, typer.Option(help="Landing button label.")] = "Open",
    image_url: Annotated[str | None, typer.Option(help="https:// image on the landing.")] = None,
    auto_redirect: Annotated[
        bool, typer.Option("--auto-redirect/--no-auto-redirect", help="Redirect after a delay.")
    ] = False,
    delay_ms: Annotated[int, typer.Option(help="Auto-redirect delay in milliseconds.")] = 0,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Create a link; prints its landing and redirect URLs."""
    try:
        slug = check_slug(slug)
        spec = LinkSpec.model_validate(
            {"kind": kind, "target": target, "app": app_name, "prefix": prefix, "title": title,
             "text": text, "button": button, "image_url": image_url,
             "auto_redirect": auto_redirect, "redirect_delay_ms": delay_ms}
        )  # fmt: skip
    except ValidationError as exc:
        _invalid_link(exc)
    except ValueError as exc:
        _fail(f"--slug {exc}")

    def create(conn: sqlite3.Connection) -> Link | None:
        if spaces.get_space(conn, space) is None:
            return None
        return links.create_link(conn, space, slug, spec, _now_ms())

    try:
        link = _write(db, create)
    except links.SlugTaken as exc:
        _fail(str(exc), 1)
    if link is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    data = link_created_json(link, _base_url(public_url))
    if json_:
        _print_json(data)
        return
    out.print(f"Link [bold]{slug}[/bold] ({link.kind.value}) created.")
    out.print(f"  landing page:  {data['landing_url']}", markup=False, highlight=False)
    out.print(f"  redirect:      {data['redirect_url']}", markup=False, highlight=False)


@link_app.command("list")
def link_list(
    space: SpaceOption,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """List a space's links."""

    def space_links(conn: sqlite3.Connection) -> list[Link] | None:
        return None if spaces.get_space(conn, space) is None else links.list_links(conn, space)

    found = _write(db, space_links)
    if found is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    base = _base_url(public_url)
    if json_:
        _print_json([link_json(link, base) for link in found])
        return
    table = Table("slug", "kind", "target", "enabled", "landing URL")
    for link in found:
        target = link.spec.target + (f"/{link.spec.app}" if link.spec.app else "")
        table.add_row(link.slug, link.kind.value, target, "yes" if link.enabled else "no",
                      f"{base}/l/{link.slug}")  # fmt: skip
    out.print(table)


@link_app.command("update")
def link_update(
    space: SpaceOption,
    slug: SlugOption,
    kind: Annotated[str | None, typer.Option()] = None,
    target: Annotated[str | None, typer.Option()] = None,
    app_name: Annotated[str | None, typer.Option("--app")] = None,
    prefix: Annotated[str | None, typer.Option()] = None,
    title: Annotated[str | None, typer.Option()] = None,
    text: Annotated[str | None, typer.Option()] = None,
    button: Annotated[str | None, typer.Option()] = None,
    image_url: Annotated[str | None, typer.Option()] = None,
    auto_redirect: Annotated[
        bool | None, typer.Option("--auto-redirect/--no-auto-redirect")
    ] = None,
    delay_ms: Annotated[int | None, typer.Option()] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Change a link; only the options given change. A running server sees it within seconds."""
    changes = _link_changes(
        kind=kind, target=target, app=app_name, prefix=prefix, title=title, text=text,
        button=button, image_url=image_url, auto_redirect=auto_redirect,
        redirect_delay_ms=delay_ms, enabled=enabled,
    )  # fmt: skip
    _update_link(space, slug, changes, public_url, db, json_)


@link_app.command("disable")
def link_disable(
    space: SpaceOption,
    slug: SlugOption,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Turn a link off: its landing and redirect answer 404 and mint nothing."""
    _update_link(space, slug, {"enabled": False}, public_url, db, json_)


@link_app.command("enable")
def link_enable(
    space: SpaceOption,
    slug: SlugOption,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Turn a disabled link back on."""
    _update_link(space, slug, {"enabled": True}, public_url, db, json_)


def _update_link(
    space: int, slug: str, changes: dict[str, Any], public_url: str | None, db: str, json_: bool
) -> None:
    try:
        link = _write(db, lambda c: links.update_link(c, space, slug, changes, _now_ms()))
    except ValidationError as exc:
        _invalid_link(exc)
    if link is None:
        _fail(f"no link {slug!r} in space {space} (see `xtracker link list --space {space}`)", 1)
    data = link_json(link, _base_url(public_url))
    if json_:
        _print_json(data)
    else:
        state = "enabled" if link.enabled else "disabled"
        out.print(f"Link [bold]{slug}[/bold] updated ({state}).")


@dest_app.command("add")
def destination_add(
    space: SpaceOption,
    kind: Annotated[str, typer.Option(help="fb_capi, webhook or s2s_postback.")],
    name: Annotated[str, typer.Option(help="A name to recognise it by.")] = "",
    url: Annotated[str | None, typer.Option(help="webhook: the endpoint.")] = None,
    method: Annotated[
        str | None, typer.Option(help="webhook: POST (default) or PUT; s2s: GET or POST.")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="webhook: extra header 'Name: value' (repeatable).")
    ] = None,
    url_template: Annotated[
        str | None, typer.Option(help="s2s_postback: URL with macros such as {uid} {value}.")
    ] = None,
    expected_status: Annotated[
        int | None, typer.Option(help="s2s_postback: success status.")
    ] = None,
    pixel_id: Annotated[str | None, typer.Option(help="fb_capi: the pixel (dataset) id.")] = None,
    access_token: Annotated[
        str | None,
        typer.Option(envvar="XTRACKER_FB_ACCESS_TOKEN", help="fb_capi: the CAPI access token."),
    ] = None,
    test_event_code: Annotated[
        str | None, typer.Option(help="fb_capi: Events Manager test code.")
    ] = None,
    action_source: Annotated[str | None, typer.Option(help="fb_capi: default website.")] = None,
    proxy: Annotated[
        str | None, typer.Option(help="Outbound proxy URL for this destination.")
    ] = None,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private-destinations/--no-allow-private-destinations",
            envvar="XTRACKER_ALLOW_PRIVATE_DESTINATIONS",
        ),
    ] = False,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Add a destination. It receives the events that arrive from now on."""
    headers = None
    if header:
        headers = {}
        for item in header:
            key, sep, value = item.partition(":")
            if not sep:
                _fail(f"--header {item!r}: write 'Name: value'")
            headers[key.strip()] = value.strip()
    raw = {"kind": kind, "name": name, "url": url, "method": method.upper() if method else None,
           "headers": headers, "url_template": url_template, "expected_status": expected_status,
           "pixel_id": pixel_id, "access_token": access_token, "test_event_code": test_event_code,
           "action_source": action_source, "proxy": proxy}  # fmt: skip
    try:
        inp = DestinationInput.model_validate({k: v for k, v in raw.items() if v is not None})
        prepared = prepare_destination(inp)
    except ValidationError as exc:
        _invalid_link(exc)
    except ValueError as exc:
        _fail(str(exc))
    if not allow_private:
        for field, url in inp.guarded_urls():
            problem = asyncio.run(address_problem(url))
            if problem:
                _fail(f"--{field.replace('_', '-')}: {problem}")
    created = _write(db, lambda c: dest_store.create_destination(c, space, prepared, _now_ms()))
    if created is None:
        _fail(f"no space {space} (see `xtracker space list`)", 1)
    data = {"id": created.id, "kind": created.kind.value, "secret": prepared.shown_secret}
    if json_:
        _print_json(data)
        return
    out.print(f"Destination {created.id} ({created.kind.value}, {created.name}) added.")
    if prepared.shown_secret:
        out.print("Signing secret (shown once; verify webhook-signature with it):")
        out.print(prepared.shown_secret, markup=False, highlight=False)


@dest_app.command("list")
def destination_list(
    space: SpaceOption, db: DbOption = "./xtracker.db", json_: JsonOption = False
) -> None:
    """List a space's destinations (secrets are never shown)."""
    found = _space_read(db, space, dest_store.list_destinations)
    if json_:
        _print_json([destination_json(d) for d in found])
        return
    table = Table("id", "kind", "name", "enabled", "health", "events")
    for d in found:
        events = ", ".join(f"{k}→{v}" for k, v in d.event_map.items() if v)
        health = "ok" if d.health_reason is None else f"[red]{d.health_reason}[/red]"
        table.add_row(str(d.id), d.kind.value, d.name, "yes" if d.enabled else "no", health, events)
    out.print(table)


DestinationOption = Annotated[
    int, typer.Option("--id", "--destination", min=1, max=MAX_WHOLE, help="Destination id.")
]


@dest_app.command("disable")
def destination_disable(
    space: SpaceOption,
    destination: DestinationOption,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Stop sending to a destination (its pending deliveries wait until it is enabled)."""
    _update_destination(db, space, destination, json_, enabled=False)


@dest_app.command("enable")
def destination_enable(
    space: SpaceOption,
    destination: DestinationOption,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Send to a destination again (also clears an unhealthy flag)."""
    _update_destination(db, space, destination, json_, enabled=True, health_reason=None)


@dest_app.command("set-token")
def destination_set_token(
    space: SpaceOption,
    destination: DestinationOption,
    access_token: Annotated[str, typer.Option(envvar="XTRACKER_FB_ACCESS_TOKEN")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Replace a fb_capi destination's access token (and clear its unhealthy flag)."""
    current = _space_read(db, space, lambda c, s: dest_store.get_destination(c, s, destination))
    if current is None or current.kind.value != "fb_capi":
        _fail(f"no fb_capi destination {destination} in space {space}", 1)
    _update_destination(db, space, destination, json_, secret=access_token.strip(),
                        health_reason=None)  # fmt: skip


@dest_app.command("test")
def destination_test(
    space: SpaceOption,
    destination: DestinationOption,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private-destinations/--no-allow-private-destinations",
            envvar="XTRACKER_ALLOW_PRIVATE_DESTINATIONS",
        ),
    ] = False,
    test_event_code: Annotated[
        str | None, typer.Option(help="fb_capi: send the test under this Events Manager code.")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="fb_capi without a test code: count it for real.")
    ] = False,
    public_url: PublicUrlOption = None,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Send one test event to the destination now and show its answer."""
    dest = _space_read(db, space, lambda c, s: dest_store.get_destination(c, s, destination))
    if dest is None:
        _fail(f"no destination {destination} in space {space}", 1)
    settings = Settings.from_env().with_(
        allow_private_destinations=allow_private, public_url=_base_url(public_url)
    )
    try:
        result = asyncio.run(probe(dest, settings, test_event_code=test_event_code, live=live))
    except ProbeRefused as exc:
        _fail(str(exc))
    data = probe_json(result)
    if json_:
        _print_json(data)
    else:
        colour = "green" if data["ok"] else "red"
        out.print(f"[{colour}]{data['outcome']}[/{colour}] {data['reason']} "
                  f"({data['latency_ms']} ms)", highlight=False)  # fmt: skip
        if data["response"]:
            out.print(data["response"], markup=False, highlight=False)
    if not data["ok"]:
        raise typer.Exit(1)


@eventmap_app.command("set")
def eventmap_set(
    destination: Annotated[
        int, typer.Option("--destination", min=1, max=MAX_WHOLE, help="Destination id.")
    ],
    assignments: Annotated[
        list[str], typer.Argument(help="EVENT=NAME, or EVENT= to stop sending it.")
    ],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Rename events for a destination, or stop sending some: deposit=Purchase subscribed="""
    space = _space_read_any(db, lambda c: dest_store.space_of_destination(c, destination))
    if space is None:
        _fail(f"no destination {destination}", 1)
    current = _space_read(db, space, lambda c, s: dest_store.get_destination(c, s, destination))
    assert current is not None
    try:
        event_map = parse_event_map(assignments, current.event_map)
    except ValueError as exc:
        _fail(str(exc))
    _update_destination(db, space, destination, json_, event_map=event_map)


@outbox_app.command("list")
def outbox_list(
    space: SpaceOption,
    status: Annotated[
        str | None, typer.Option(help="pending, retrying, sent, failed_permanently")
    ] = None,
    destination: Annotated[int | None, typer.Option("--destination", min=1, max=MAX_WHOLE)] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_WHOLE)] = 100,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Deliveries of a space, newest first."""
    if status is not None and status not in outbox.STATUSES:
        _fail(f"--status must be one of {', '.join(outbox.STATUSES)}")
    rows = _space_read(db, space, lambda c, s: outbox.list_deliveries(
        c, s, status=status, destination_id=destination, limit=limit))  # fmt: skip
    if json_:
        _print_json([delivery_json(r) for r in rows])
        return
    table = Table("id", "dest", "event", "status", "tries", "last", "event_id")
    for r in rows:
        last = r.last_error or (str(r.last_status) if r.last_status else "")
        table.add_row(str(r.id), str(r.destination_id), r.event_name, r.status, str(r.attempts),
                      last[:60], r.event_id)  # fmt: skip
    out.print(table)


@outbox_app.command("replay")
def outbox_replay(
    space: SpaceOption,
    destination: Annotated[int | None, typer.Option("--destination", min=1, max=MAX_WHOLE)] = None,
    status: Annotated[str, typer.Option()] = "failed_permanently",
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Send deliveries again (same event_id, so receivers can deduplicate). A running worker
    picks them up at its next poll."""
    if status not in outbox.STATUSES:
        _fail(f"--status must be one of {', '.join(outbox.STATUSES)}")
    count = _space_read(
        db,
        space,
        lambda c, s: outbox.replay(
            c, s, status=status, destination_id=destination, now_ms=_now_ms()
        ),
    )
    if json_:
        _print_json({"replayed": count})
    else:
        out.print(f"{count} deliveries queued again.")


def _space_read(db: str, space: int, op: Callable[[sqlite3.Connection, int], T]) -> T:
    def read(conn: sqlite3.Connection) -> T:
        if spaces.get_space(conn, space) is None:
            _fail(f"no space {space} (see `xtracker space list`)", 1)
        return op(conn, space)

    return _write(db, read)


def _space_read_any(db: str, op: Callable[[sqlite3.Connection], T]) -> T:
    return _write(db, op)


def _update_destination(db: str, space: int, destination: int, json_: bool, **changes: Any) -> None:
    updated = _space_read(
        db,
        space,
        lambda c, s: dest_store.update_destination(c, s, destination, _now_ms(), **changes),
    )
    if updated is None:
        _fail(f"no destination {destination} in space {space}", 1)
    if json_:
        _print_json(destination_json(updated))
    else:
        out.print(f"Destination {destination} updated.")


def _change_alias(db: str, space: int, kind: str, alias: str, target: str | None) -> Aliases:
    """Apply one alias change (target None removes it); the aliases in effect after it."""

    def change(conn: sqlite3.Connection, space_id: int) -> Aliases:
        current = effective_aliases(pb_store.alias_rows(conn, space_id))
        table = current.statuses if kind == "status" else current.params
        if target is None and alias not in table:
            command = "alias" if kind == "status" else "param"
            _fail(
                f"{alias!r} is not an alias of space {space_id} (see `xtracker postback"
                f" {command} list --space {space_id}`)",
                1,
            )
        pb_store.set_alias(conn, space_id, kind, alias, target, _now_ms())
        return effective_aliases(pb_store.alias_rows(conn, space_id))

    return _space_read(db, space, change)


def _alias_entry(aliases: Aliases, key: str, name: str) -> dict[str, Any]:
    found = [e for e in postback_aliases_json(aliases)[key]
             if e.get("alias", e.get("name")) == name]  # fmt: skip
    return found[0] if found else {}


@alias_app.command("set")
def postback_alias_set(
    space: SpaceOption,
    alias: Annotated[str, typer.Argument(help="The network's status, e.g. ftd (any case).")],
    event: Annotated[
        str, typer.Argument(help="contact, subscribed, registration, deposit or ignore.")
    ],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Count a network's status as an event, or answer it 'ignored'. A running server sees
    the change within seconds."""
    try:
        name, target = check_status_alias(alias, event)
    except ValueError as exc:
        _fail(f"{alias}: {exc}")
    aliases = _change_alias(db, space, "status", name, target)
    if json_:
        _print_json(_alias_entry(aliases, "statuses", name))
    else:
        out.print(f"Status {name!r} -> {target} in space {space}.", markup=False, highlight=False)


@alias_app.command("unset")
def postback_alias_unset(
    space: SpaceOption,
    alias: Annotated[str, typer.Argument(help="The status alias to remove (defaults too).")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Remove a status alias: the status becomes unknown (refused with 422). `alias set`
    brings a default back."""
    try:
        name = check_status_name(alias)
    except ValueError as exc:
        _fail(f"{alias}: {exc}")
    aliases = _change_alias(db, space, "status", name, None)
    if json_:
        _print_json(_alias_entry(aliases, "statuses", name) or {"alias": name, "maps_to": None})
    else:
        out.print(f"Status {name!r} removed from space {space}.", markup=False, highlight=False)


@alias_app.command("list")
def postback_alias_list(
    space: SpaceOption, db: DbOption = "./xtracker.db", json_: JsonOption = False
) -> None:
    """The status aliases in effect (defaults and the space's own)."""
    aliases = _space_read(db, space, lambda c, s: effective_aliases(pb_store.alias_rows(c, s)))
    entries = postback_aliases_json(aliases)["statuses"]
    if json_:
        _print_json(entries)
        return
    table = Table("status", "counts as", "origin")
    for e in entries:
        table.add_row(e["alias"], e["maps_to"] or "(unknown: 422)", e["origin"])
    out.print(table)


@param_app.command("set")
def postback_param_set(
    space: SpaceOption,
    name: Annotated[str, typer.Argument(help="The network's parameter name, e.g. cid.")],
    field: Annotated[str, typer.Argument(help=f"One of ours: {', '.join(FIELDS)}.")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Read a network's parameter as one of ours (when ours is absent)."""
    try:
        param, target = check_param_alias(name, field)
    except ValueError as exc:
        _fail(f"{name}: {exc}")
    aliases = _change_alias(db, space, "param", param, target)
    if json_:
        _print_json(_alias_entry(aliases, "params", param))
    else:
        out.print(f"Parameter {param!r} -> {target} in space {space}.", markup=False,
                  highlight=False)  # fmt: skip


@param_app.command("unset")
def postback_param_unset(
    space: SpaceOption,
    name: Annotated[str, typer.Argument(help="The parameter alias to remove (defaults too).")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Stop reading a parameter name (for instance a default that a network uses for
    something else)."""
    try:
        param = check_param_name(name)
    except ValueError as exc:
        _fail(f"{name}: {exc}")
    aliases = _change_alias(db, space, "param", param, None)
    if json_:
        _print_json(_alias_entry(aliases, "params", param) or {"name": param, "field": None})
    else:
        out.print(f"Parameter {param!r} removed from space {space}.", markup=False,
                  highlight=False)  # fmt: skip


@param_app.command("list")
def postback_param_list(
    space: SpaceOption, db: DbOption = "./xtracker.db", json_: JsonOption = False
) -> None:
    """The parameter aliases in effect (defaults and the space's own)."""
    aliases = _space_read(db, space, lambda c, s: effective_aliases(pb_store.alias_rows(c, s)))
    entries = postback_aliases_json(aliases)["params"]
    if json_:
        _print_json(entries)
        return
    table = Table("parameter", "read as", "origin")
    for e in entries:
        table.add_row(e["name"], e["field"] or "(not read)", e["origin"])
    out.print(table)


@postback_app.command("log")
def postback_log(
    space: SpaceOption,
    outcome: Annotated[
        str | None, typer.Option(help="queued, duplicate, ignored or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """The postbacks the space received, newest first (tokens masked)."""
    if outcome is not None and outcome not in pb_store.OUTCOMES:
        _fail(f"--outcome must be one of {', '.join(pb_store.OUTCOMES)}")
    rows = _space_read(db, space, lambda c, s: pb_store.list_log(c, s, outcome=outcome,
                                                                  limit=limit))  # fmt: skip
    if json_:
        _print_json([postback_log_json(r) for r in rows])
        return
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
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Print the postback URL(s) to paste into a partner network's cabinet, and the offer-link
    parameter that carries the click uid. Tokens are stored only hashed: pass --token (or
    XTRACKER_INGEST_TOKEN), or --rotate for a new one; otherwise the URLs show <INGEST_TOKEN>."""
    if network not in NETWORKS:
        _fail(f"--network must be one of {', '.join(NETWORKS)}")
    if event not in EVENT_CHOICES:
        _fail(f"--event must be one of {', '.join(EVENT_CHOICES)}")
    if token and rotate:
        _fail("give --token or --rotate, not both")
    source = "placeholder"
    if rotate:
        try:
            rotation = _space_read(db, space, lambda c, s: spaces.rotate_credential(
                c, s, CredentialKind.INGEST, _now_ms()))  # fmt: skip
        except spaces.NoSuchToken as exc:
            _no_token(space, str(exc))
        assert rotation is not None
        token, source = rotation.secret, "rotated"
    elif token:
        token = token.strip()
        given = token
        if not _space_read(
            db, space, lambda c, s: pb_store.is_ingest_token_of(c, s, given, _now_ms())
        ):
            _fail(
                f"that is not a live ingest token of space {space}; omit --token to get a"
                " placeholder, or --rotate for a new token",
                1,
            )
        source = "given"
    else:
        _space_read(db, space, lambda c, s: None)  # the space must exist
    urls = postback_urls(network, _base_url(public_url), token or TOKEN_PLACEHOLDER, event)
    data = postback_urls_json(space, urls, source)
    if json_:
        _print_json(data)
        return
    plain = {"markup": False, "highlight": False, "soft_wrap": True}
    out.print(f"Postback URLs for {network}, space {space}:", **plain)  # type: ignore[arg-type]
    for u in urls.urls:
        out.print(f"\n{u.field}:", **plain)  # type: ignore[arg-type]
        out.print(u.url, **plain)  # type: ignore[arg-type]
    out.print(f"\nOffer link: add {urls.offer_param} to the target of your web link"
              " (xtracker link create --kind web --target '…'). ", **plain)  # type: ignore[arg-type]  # fmt: skip
    for note in urls.notes:
        out.print(f"- {note}", **plain)  # type: ignore[arg-type]
    if source == "placeholder":
        out.print(f"\nReplace {TOKEN_PLACEHOLDER} with the space's ingest token (shown when the"
                  " space was created), or run again with --token xt_it_… (checked) or --rotate"
                  " (a new token; the old one keeps working 24 hours).", **plain)  # type: ignore[arg-type]  # fmt: skip
    elif source == "rotated":
        out.print("\nThe token in these URLs is new (shown only here); the previous one keeps"
                  " working for 24 hours: update every URL that uses it.", **plain)  # type: ignore[arg-type]  # fmt: skip
    out.print("\nCheck what arrives with: xtracker postback log --space "
              f"{space}", **plain)  # type: ignore[arg-type]  # fmt: skip


@app.command("backup")
def backup(
    file: Annotated[str, typer.Argument(help="The backup to write (a new file).")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Copy the database to FILE while the server runs: a consistent snapshot of every commit
    before the command started. FILE is created 0600 (it holds destination secrets in clear)."""
    if db == ":memory:" or not Path(db).expanduser().exists():
        _fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    try:
        done = backup_database(db, file, force=force)
    except (BackupError, OSError) as exc:
        _fail(str(exc), 1)
    if json_:
        _print_json({"file": done.path, "bytes": done.bytes, "seconds": round(done.seconds, 3)})
    else:
        out.print(f"Backed up {db} to {done.path} ({done.bytes:,} bytes, {done.seconds:.1f} s).",
                  markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@app.command("restore")
def restore(
    file: Annotated[str, typer.Argument(help="The backup (made by `xtracker backup`).")],
    db: DbOption = "./xtracker.db",
    json_: JsonOption = False,
) -> None:
    """Replace the database with the backup FILE. Stop every server and worker of the database
    first: it refuses to run while one uses it. What the backup lacks is lost, and deliveries
    it has as unsettled are sent again (see docs/operations.md)."""
    try:
        done = restore_database(db, file)
    except (DatabaseInUse, BackupError, OSError) as exc:
        _fail(f"{exc} (nothing was changed)", 1)
    if json_:
        _print_json({"db": done.path, "events": done.events, "clicks": done.clicks,
                     "schema": done.schema, "generation": done.generation,
                     "deliveries_due": done.deliveries_due,
                     "leases_released": done.leases_released,
                     "seconds": round(done.seconds, 3)})  # fmt: skip
        return
    plain = {"markup": False, "highlight": False, "soft_wrap": True}
    out.print(f"Restored {file} into {done.path}: {done.events:,} events, {done.clicks:,} clicks"
              f" (generation {done.generation}).", **plain)  # type: ignore[arg-type]  # fmt: skip
    out.print("The report rollup is rebuilt from the restored inbox at the next start.",
              **plain)  # type: ignore[arg-type]  # fmt: skip
    if done.deliveries_due:
        out.print(f"{done.deliveries_due:,} deliveries are not settled in the backup: the worker"
                  " sends them, also those already sent after the backup was made (with the"
                  " same event_id).", **plain)  # type: ignore[arg-type]  # fmt: skip


def main() -> None:
    app(prog_name="xtracker")
