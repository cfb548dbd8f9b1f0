"""``xtracker space delete``, ``link delete``, ``destination delete`` and ``xtracker erase``
(docs/operations.md#deleting-and-erasing). Like every command they work on the database file,
also while a server runs on it: each prints what it takes, asks (unless ``--yes``), then
deletes in short transactions, the same batches as the admin API (xtracker_server/deletion.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    err,
    fail,
    no_space,
    out,
    print_json,
)
from xtracker_server.clock import now_ms

if TYPE_CHECKING:
    import sqlite3

    from xtracker_server import deletion

T = TypeVar("T")

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
    from xtracker_server import deletion
    from xtracker_server.store import deletion as store

    with _file(db) as conn:
        found = _read(conn, store.space_counts, space)
        if found is None:
            no_space(space)
        head = {"space_id": space}
        if not _go_ahead(f"Deleting space {space} removes", head, found, yes, dry_run, json_):
            return
        marked = _write(conn, store.mark_space, space, now_ms())
        if marked is None:
            no_space(space)
        removed = _run(conn, db, deletion.delete_space(marked))
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
    from xtracker_server import deletion
    from xtracker_server.store import deletion as store

    missing = f"no link {slug!r} in space {space} (see `xtracker link list --space {space}`)"
    with _file(db) as conn:
        found = _read(conn, store.link_counts, space, slug)
        if found is None:
            fail(missing, 1)
        head = {"space_id": space, "link": slug}
        if not _go_ahead(f"Deleting link {slug} of space {space}", head, found, yes, dry_run,
                         json_):  # fmt: skip
            return
        marked = _write(conn, store.mark_link, space, slug, now_ms())
        if marked is None:
            fail(missing, 1)
        removed = _run(conn, db, deletion.delete_link(space, marked))
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
    from xtracker_server import deletion
    from xtracker_server.store import deletion as store

    missing = f"no destination {destination} in space {space}"
    with _file(db) as conn:
        found = _read(conn, store.destination_counts, space, destination)
        if found is None:
            fail(missing, 1)
        head = {"space_id": space, "destination_id": destination}
        said = f"Deleting destination {destination} of space {space} removes"
        if not _go_ahead(said, head, found, yes, dry_run, json_):
            return
        marked = _write(conn, store.mark_destination, space, destination, now_ms())
        if marked is None:
            fail(missing, 1)
        removed = _run(conn, db, deletion.delete_destination(space, marked))
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
    from xtracker_server import deletion
    from xtracker_server.domain.deletion import Person, check_tg_id, check_uid
    from xtracker_server.store import deletion as store

    if (uid is None) == (tg_id is None):
        fail("give --uid or --tg-id (one of them)")
    try:
        person = Person(uid=check_uid(uid)) if uid is not None else Person(tg_id=check_tg_id(tg_id))
    except ValueError as exc:
        fail(f"{'--uid' if uid is not None else '--tg-id'}: {exc}")
    head: dict[str, Any] = {"space_id": space, "person": {"uid": uid} if uid else {"tg_id": tg_id}}
    with _file(db) as conn:
        found = _read(conn, store.erasure_counts, space, person)
        if found is None:
            no_space(space)
        said = f"Erasing {person} from space {space} removes"
        if not _go_ahead(said, head, found, yes, dry_run, json_):
            return
        removed = _run(conn, db, deletion.erase(space, person))
        if removed is None:
            no_space(space)
    _done(f"Erased {person} from space {space}; removed", head, removed, json_)


# ----------------------------------------------------------------------------- helpers


@contextmanager
def _file(db: str) -> Iterator[sqlite3.Connection]:
    import sqlite3

    from xtracker_server.store.db import open_db

    if db != ":memory:" and not Path(db).expanduser().exists():
        fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    try:
        conn = open_db(db)
    except (RuntimeError, sqlite3.DatabaseError) as exc:
        fail(f"cannot open {db}: {exc}", 1)
    try:
        yield conn
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, op: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN")
    try:
        return op(conn, *args)
    finally:
        conn.execute("COMMIT")


def _write(conn: sqlite3.Connection, op: Callable[..., T], *args: Any) -> T:
    from xtracker_server.store.db import transaction

    with transaction(conn):
        return op(conn, *args)


def _run(conn: sqlite3.Connection, db: str, plan: deletion.Plan[T]) -> T:
    """The plan on the CLI's connection; the report rollup on a connection of its own."""
    from xtracker_server import deletion
    from xtracker_server.store.rollup import catch_up, open_rollup

    def reports(op: Callable[[sqlite3.Connection], Any]) -> Any:
        rollup = open_rollup(db)
        try:
            catch_up(rollup)
            return op(rollup)
        finally:
            rollup.close()

    return deletion.run_on(conn, plan, reports=reports)


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
