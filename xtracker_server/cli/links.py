"""``xtracker link …``: links, the landing pages and redirects that mint clicks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    PublicUrlOption,
    SlugOption,
    SpaceOption,
    base_url,
    group,
    out,
    print_json,
    run,
)
from xtracker_server.cli.deletion import link_delete

link_app = group()  # its help: COMMANDS in cli/__init__.py
link_app.command("delete")(link_delete)

#: The option of a link's field, where its name differs (the others: the field's name).
FLAGS = {"slug": "--slug", "app": "--app", "redirect_delay_ms": "--delay-ms", "enabled": "--enable"}


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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Create a link; prints its landing and redirect URLs."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.links import create_link
    from xtracker_server.views import link_created_json

    fields = {"slug": slug, "kind": kind, "target": target, "app": app_name, "prefix": prefix,
              "title": title, "text": text, "button": button, "image_url": image_url,
              "auto_redirect": auto_redirect, "redirect_delay_ms": delay_ms}  # fmt: skip
    link = run(db, lambda ctx: create_link(OPERATOR, ctx, space, fields), flags=FLAGS)
    slug = link.slug
    data = link_created_json(link, base_url(public_url))
    if json_:
        print_json(data)
        return
    out.print(f"Link [bold]{slug}[/bold] ({link.kind.value}) created.")
    out.print(f"  landing page:  {data['landing_url']}", markup=False, highlight=False)
    out.print(f"  redirect:      {data['redirect_url']}", markup=False, highlight=False)


@link_app.command("list")
def link_list(
    space: SpaceOption,
    public_url: PublicUrlOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """List a space's links."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.links import list_links
    from xtracker_server.views import link_json

    found = run(db, lambda ctx: list_links(OPERATOR, ctx, space))
    base = base_url(public_url)
    if json_:
        print_json([link_json(link, base) for link in found])
        return
    from rich.table import Table

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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Change a link; only the options given change. A running server sees it within seconds."""
    options = dict(
        kind=kind, target=target, app=app_name, prefix=prefix, title=title, text=text,
        button=button, image_url=image_url, auto_redirect=auto_redirect,
        redirect_delay_ms=delay_ms, enabled=enabled,
    )  # fmt: skip
    changes = {k: v for k, v in options.items() if v is not None}  # None: not given
    _update_link(space, slug, changes, public_url, db, json_)


@link_app.command("disable")
def link_disable(
    space: SpaceOption,
    slug: SlugOption,
    public_url: PublicUrlOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Turn a link off: its landing and redirect answer 404 and mint nothing."""
    _update_link(space, slug, {"enabled": False}, public_url, db, json_)


@link_app.command("enable")
def link_enable(
    space: SpaceOption,
    slug: SlugOption,
    public_url: PublicUrlOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Turn a disabled link back on."""
    _update_link(space, slug, {"enabled": True}, public_url, db, json_)


def _update_link(
    space: int, slug: str, changes: dict[str, Any], public_url: str | None, db: str, json_: bool
) -> None:
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.links import update_link
    from xtracker_server.views import link_json

    link = run(db, lambda ctx: update_link(OPERATOR, ctx, space, slug, changes), flags=FLAGS)
    data = link_json(link, base_url(public_url))
    if json_:
        print_json(data)
    else:
        state = "enabled" if link.enabled else "disabled"
        out.print(f"Link [bold]{slug}[/bold] updated ({state}).")
