"""``xtracker outbox …``: deliveries, what was sent where and what failed; sending them again."""

from __future__ import annotations

from typing import Annotated

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    group,
    out,
    print_json,
    run,
)
from xtracker_server.domain.query import MAX_WHOLE

outbox_app = group()  # its help: COMMANDS in cli/__init__.py
#: The option of the deliveries services' field.
FLAGS = {"status": "--status"}


@outbox_app.command("list")
def outbox_list(
    space: SpaceOption,
    status: Annotated[
        str | None, typer.Option(help="pending, retrying, sent, failed_permanently")
    ] = None,
    destination: Annotated[int | None, typer.Option("--destination", min=1, max=MAX_WHOLE)] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_WHOLE)] = 100,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Deliveries of a space, newest first."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deliveries import list_deliveries
    from xtracker_server.views import delivery_json

    rows = run(db, lambda ctx: list_deliveries(OPERATOR, ctx, space, status=status,
                                               destination_id=destination, limit=limit),
               flags=FLAGS)  # fmt: skip
    if json_:
        print_json([delivery_json(r) for r in rows])
        return
    from rich.table import Table

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
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Send deliveries again (same event_id, so receivers can deduplicate). A running worker
    picks them up at its next poll."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.deliveries import replay

    count = run(db, lambda ctx: replay(OPERATOR, ctx, space, status=status,
                                       destination_id=destination), flags=FLAGS)  # fmt: skip
    if json_:
        print_json({"replayed": count})
    else:
        out.print(f"{count} deliveries queued again.")
