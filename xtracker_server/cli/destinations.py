"""``xtracker destination …`` and ``xtracker eventmap set``: where a space's events are
delivered, and under which names."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    DestinationOption,
    JsonOption,
    PublicUrlOption,
    SpaceOption,
    base_url,
    fail,
    group,
    out,
    print_json,
    run,
    setting_option,
)
from xtracker_server.cli.deletion import destination_delete
from xtracker_server.config import Settings
from xtracker_server.domain.query import MAX_WHOLE

dest_app = group()  # its help: COMMANDS in cli/__init__.py
eventmap_app = group()  # its help: COMMANDS in cli/__init__.py
dest_app.command("delete")(destination_delete)

#: The option of a destination's field.
FLAGS = {field: "--" + field.replace("_", "-") for field in
         ("url", "url_template", "proxy", "access_token", "test_event_code")}  # fmt: skip
#: The setting XTRACKER_ALLOW_PRIVATE_DESTINATIONS, for the checks this process makes.
AllowPrivateOption = Annotated[bool, setting_option("allow_private_destinations")]
AccessTokenOption = Annotated[
    str | None,
    typer.Option(envvar="XTRACKER_FB_ACCESS_TOKEN", help="fb_capi: the CAPI access token."),
]


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
    access_token: AccessTokenOption = None,
    test_event_code: Annotated[
        str | None, typer.Option(help="fb_capi: Events Manager test code.")
    ] = None,
    action_source: Annotated[str | None, typer.Option(help="fb_capi: default website.")] = None,
    proxy: Annotated[
        str | None, typer.Option(help="Outbound proxy URL for this destination.")
    ] = None,
    allow_private: AllowPrivateOption = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Add a destination. It receives the events that arrive from now on."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.destinations import create_destination

    headers = None
    if header:
        headers = {}
        for item in header:
            key, sep, value = item.partition(":")
            if not sep:
                fail(f"--header {item!r}: write 'Name: value'")
            headers[key.strip()] = value.strip()
    raw = {"kind": kind, "name": name, "url": url, "method": method.upper() if method else None,
           "headers": headers, "url_template": url_template, "expected_status": expected_status,
           "pixel_id": pixel_id, "access_token": access_token, "test_event_code": test_event_code,
           "action_source": action_source, "proxy": proxy}  # fmt: skip
    fields = {k: v for k, v in raw.items() if v is not None}
    settings = Settings(db=db, allow_private_destinations=allow_private)
    new = run(
        db,
        lambda ctx: create_destination(OPERATOR, ctx, space, fields),
        settings=settings,
        flags=FLAGS,
        loop=True,  # the address guard resolves the URL's host
    )
    created = new.destination
    data = {"id": created.id, "kind": created.kind.value, "secret": new.secret}
    if json_:
        print_json(data)
        return
    out.print(f"Destination {created.id} ({created.kind.value}, {created.name}) added.")
    if new.secret:
        out.print("Signing secret (shown once; verify webhook-signature with it):")
        out.print(new.secret, markup=False, highlight=False)


@dest_app.command("list")
def destination_list(
    space: SpaceOption, db: DbOption = DEFAULT_DB, json_: JsonOption = False
) -> None:
    """List a space's destinations (secrets are never shown)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.destinations import list_destinations
    from xtracker_server.views import destination_json

    found = run(db, lambda ctx: list_destinations(OPERATOR, ctx, space))
    if json_:
        print_json([destination_json(d) for d in found])
        return
    from rich.table import Table

    table = Table("id", "kind", "name", "enabled", "health", "events")
    for d in found:
        events = ", ".join(f"{k}→{v}" for k, v in d.event_map.items() if v)
        health = "ok" if d.health_reason is None else f"[red]{d.health_reason}[/red]"
        table.add_row(str(d.id), d.kind.value, d.name, "yes" if d.enabled else "no", health, events)
    out.print(table)


@dest_app.command("disable")
def destination_disable(
    space: SpaceOption,
    destination: DestinationOption,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Stop sending to a destination (its pending deliveries wait until it is enabled)."""
    _update_destination(db, space, destination, json_, {"enabled": False})


@dest_app.command("enable")
def destination_enable(
    space: SpaceOption,
    destination: DestinationOption,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Send to a destination again (also clears an unhealthy flag)."""
    _update_destination(db, space, destination, json_, {"enabled": True})


@dest_app.command("set-token")
def destination_set_token(
    space: SpaceOption,
    destination: DestinationOption,
    access_token: Annotated[str, typer.Option(envvar="XTRACKER_FB_ACCESS_TOKEN")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Replace a fb_capi destination's access token (and clear its unhealthy flag)."""
    _update_destination(db, space, destination, json_, {"access_token": access_token})


@dest_app.command("test")
def destination_test(
    space: SpaceOption,
    destination: DestinationOption,
    allow_private: AllowPrivateOption = False,
    test_event_code: Annotated[
        str | None, typer.Option(help="fb_capi: send the test under this Events Manager code.")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="fb_capi without a test code: count it for real.")
    ] = False,
    public_url: PublicUrlOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Send one test event to the destination now and show its answer."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.destinations import test_destination
    from xtracker_server.views import probe_json

    settings = Settings.from_env().with_(
        db=db, allow_private_destinations=allow_private, public_url=base_url(public_url)
    )
    result = run(
        db,
        lambda ctx: test_destination(
            OPERATOR, ctx, space, destination, test_event_code=test_event_code, live=live
        ),
        settings=settings,
        flags=FLAGS,
        loop=True,  # it sends a request
    )
    data = probe_json(result)
    if json_:
        print_json(data)
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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Rename events for a destination, or stop sending some: deposit=Purchase subscribed="""
    from xtracker_server.domain.destinations import parse_event_map
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.destinations import destination_space

    try:
        event_map = parse_event_map(assignments, {})
    except ValueError as exc:
        fail(str(exc))
    space = run(db, lambda ctx: destination_space(OPERATOR, ctx, destination))
    _update_destination(db, space, destination, json_, {"event_map": event_map})


def _update_destination(
    db: str, space: int, destination: int, json_: bool, changes: dict[str, Any]
) -> None:
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.destinations import update_destination
    from xtracker_server.views import destination_json

    updated = run(
        db,
        lambda ctx: update_destination(OPERATOR, ctx, space, destination, changes),
        flags=FLAGS,
        loop=True,  # the address guard resolves a new proxy's host
    )
    if json_:
        print_json(destination_json(updated))
    else:
        out.print(f"Destination {destination} updated.")
