"""``xtracker backup`` and ``xtracker restore``: a consistent copy of the database while the
server runs, and putting one back while nothing runs (docs/operations.md#backups)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xtracker_server.cli._common import DEFAULT_DB, DbOption, JsonOption, fail, out, print_json


def backup(
    file: Annotated[str, typer.Argument(help="The backup to write (a new file).")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Copy the database to FILE while the server runs: a consistent snapshot of every commit
    before the command started. FILE is created 0600 (it holds destination secrets in clear)."""
    from xtracker_server.store.api import BackupError, backup_database

    if db == ":memory:" or not Path(db).expanduser().exists():
        fail(f"no database at {db}: pass --db (or XTRACKER_DB)", 1)
    try:
        done = backup_database(db, file, force=force)
    except (BackupError, OSError) as exc:
        fail(str(exc), 1)
    if json_:
        print_json({"file": done.path, "bytes": done.bytes, "seconds": round(done.seconds, 3)})
    else:
        out.print(f"Backed up {db} to {done.path} ({done.bytes:,} bytes, {done.seconds:.1f} s).",
                  markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def restore(
    file: Annotated[str, typer.Argument(help="The backup (made by `xtracker backup`).")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Replace the database with the backup FILE. Stop every server and worker of the database
    first: it refuses to run while one uses it. What the backup lacks is lost, and deliveries
    it has as unsettled are sent again (see docs/operations.md)."""
    from xtracker_server.store.api import BackupError, DatabaseInUse, restore_database

    try:
        done = restore_database(db, file)
    except (DatabaseInUse, BackupError, OSError) as exc:
        fail(f"{exc} (nothing was changed)", 1)
    if json_:
        print_json({"db": done.path, "events": done.events, "clicks": done.clicks,
                    "schema": done.schema, "generation": done.generation,
                    "deliveries_due": done.deliveries_due,
                    "leases_released": done.leases_released,
                    "seconds": round(done.seconds, 3)})  # fmt: skip
        return
    plain = {"markup": False, "highlight": False, "soft_wrap": True}
    out.print(f"Restored {file} into {done.path}: {done.events:,} events, {done.clicks:,} clicks"
              f" (generation {done.generation}).", **plain)  # fmt: skip
    out.print("The report rollup is rebuilt from the restored inbox at the next start.", **plain)
    if done.deliveries_due:
        out.print(f"{done.deliveries_due:,} deliveries are not settled in the backup: the worker"
                  " sends them, also those already sent after the backup was made (with the"
                  " same event_id).", **plain)  # fmt: skip
