"""``xtracker space delete``, ``link delete``, ``destination delete`` and ``xtracker erase``
(docs/operations.md#deleting-and-erasing). Like every command they work on the database file,
also while a server runs on it: each prints what it takes, asks (unless ``--yes``), then
deletes in short transactions, the same batches as the admin API (services/deletion.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    err,
    fail,
    out,
    print_json,
    run,
)

# Without the 1..MAX_WHOLE range of other commands: `--space 0` says "no space 0" (exit 1).
SpaceOption = Annotated[int, typer.Option("--space", help="The space id.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: delete.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")]


def space_delete(
    space: SpaceOption,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Delete a space and everything of it: clicks, events, binds, postback log, deliveries,
    credentials (they stop working), links and destinations. Says what it takes first."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deletion import delete_space

    found = run(db, lambda ctx: delete_space(OPERATOR, ctx, space, dry_run=True))
    head = {"space_id": space}
    if not _go_ahead(f"Deleting space {space} removes", head, found, yes, dry_run, json_):
        return
    removed = run(db, lambda ctx: delete_space(OPERATOR, ctx, space), loop=True)
    _done(f"Space {space} deleted; removed", head, removed, json_)


def link_delete(
    space: SpaceOption,
    slug: Annotated[str, typer.Option("--slug", help="The link's slug (its URL path).")],
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Delete a link: its landing and redirect answer 404. Its clicks and their events stay,
    counted under "no link" in the reports."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deletion import delete_link

    found = run(db, lambda ctx: delete_link(OPERATOR, ctx, space, slug, dry_run=True))
    head = {"space_id": space, "link": slug}
    if not _go_ahead(f"Deleting link {slug} of space {space}", head, found, yes, dry_run, json_):
        return
    removed = run(db, lambda ctx: delete_link(OPERATOR, ctx, space, slug), loop=True)
    _done(f"Link {slug} deleted", head, removed, json_)


def destination_delete(
    space: SpaceOption,
    destination: Annotated[int, typer.Option("--id", "--destination", help="Destination id.")],
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Delete a destination and every delivery to it (those not sent yet are dropped)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deletion import delete_destination

    found = run(db, lambda ctx: delete_destination(OPERATOR, ctx, space, destination, dry_run=True))
    head = {"space_id": space, "destination_id": destination}
    said = f"Deleting destination {destination} of space {space} removes"
    if not _go_ahead(said, head, found, yes, dry_run, json_):
        return
    removed = run(db, lambda ctx: delete_destination(OPERATOR, ctx, space, destination), loop=True)
    _done(f"Destination {destination} deleted; removed", head, removed, json_)


def erase(
    space: SpaceOption,
    uid: Annotated[str | None, typer.Option("--uid", help="Erase this click uid.")] = None,
    tg_id: Annotated[
        int | None, typer.Option("--tg-id", help="Erase this Telegram user, and every uid bound.")
    ] = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Erase what a space holds about one person (a privacy request): the clicks, events,
    binds and postback log rows of a uid, or of every uid bound to a Telegram user (and the
    events sent with that tg_id), with the deliveries of those events. Reports follow."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deletion import erase as erase_person

    if (uid is None) == (tg_id is None):
        fail("give --uid or --tg-id (one of them)")
    named = {"uid": uid} if uid is not None else {"tg_id": tg_id}
    flags = {"uid": "--uid", "tg_id": "--tg-id"}
    counted = run(
        db, lambda ctx: erase_person(OPERATOR, ctx, space, named, dry_run=True), flags=flags
    )
    head: dict[str, Any] = {"space_id": space, "person": {"uid": uid} if uid else {"tg_id": tg_id}}
    said = f"Erasing {counted.person} from space {space} removes"
    if not _go_ahead(said, head, counted.removed, yes, dry_run, json_):
        return
    erased = run(db, lambda ctx: erase_person(OPERATOR, ctx, space, named), flags=flags, loop=True)
    _done(f"Erased {erased.person} from space {space}; removed", head, erased.removed, json_)


# ----------------------------------------------------------------------------- helpers


def _go_ahead(
    said: str, head: dict[str, Any], found: dict[str, int], yes: bool, dry_run: bool, json_: bool
) -> bool:
    """Print what would be removed; whether to go on (``--yes``, or the user said so)."""
    from xtracker_server.views import deletion_json

    if json_:
        if dry_run:
            print_json(deletion_json(head, found, True))
            return False
        if not yes:
            fail("with --json, pass --yes to delete, or --dry-run to only count")
        return True
    out.print(f"{said}:", markup=False, highlight=False)
    _print_counts(found)
    if dry_run:
        out.print("Nothing was deleted (--dry-run).")
        return False
    if yes:
        return True
    if not typer.confirm("Go ahead?", default=False, err=True):
        err.print("Nothing was deleted.")
        raise typer.Exit(1)
    return True


def _done(said: str, head: dict[str, Any], removed: dict[str, int], json_: bool) -> None:
    from xtracker_server.views import deletion_json

    if json_:
        print_json(deletion_json(head, removed, False))
        return
    out.print(f"{said}:", markup=False, highlight=False)
    _print_counts(removed)


def _print_counts(found: dict[str, int]) -> None:
    from xtracker_server.domain.deletion import COUNT_LABELS

    for key, n in found.items():
        out.print(f"  {n:>12,}  {COUNT_LABELS[key]}", markup=False, highlight=False)
