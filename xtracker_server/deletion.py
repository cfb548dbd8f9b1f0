"""Deleting spaces, links and destinations, and erasing a person, as the admin API, the CLI and
the server's housekeeping run them (docs/operations.md#deleting-and-erasing).

Each is a *plan*: a generator of steps, each a store operation (store/deletion.py) to run as a
write or a read, that is sent each step's result and returns the counts removed. The server
runs a plan through its writer and readers (``run``): every batch is one short transaction of
the group-commit writer, with other requests' writes in between. The CLI runs the same plan on
its own connection to the file (``run_on``). A deletion's first step, the mark, is run by the
caller (it says what goes, and the server drops its caches of it at once); the plan deletes the
rest and then has the report rollup forget what went (``forget_in_reports``).

    >>> marked = await store.write(deletion_store.mark_space, 3, now_ms)
    >>> removed = await run(store, delete_space(marked))
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from xtracker_server.domain.deletion import (
    DESTINATION_KEYS,
    ERASURE_KEYS,
    LINK_KEYS,
    SPACE_KEYS,
    Person,
    counts,
)
from xtracker_server.store import deletion as store
from xtracker_server.store.rollup import applied_removals

if TYPE_CHECKING:
    import sqlite3

    from xtracker_server.store.runtime import Store

T = TypeVar("T")
#: ("write" or "read", operation, its arguments after the connection); ("reports", …): bring
#: the report rollup up to date, answering how far it applied ``report_removals``.
Step = tuple[Literal["write", "read", "reports"], Callable[..., Any], tuple[Any, ...]]
Plan = Generator[Step, Any, T]


def delete_space(marked: store.Marked, batch: int = store.BATCH) -> Plan[dict[str, int]]:
    return _batches(SPACE_KEYS, marked, store.delete_space_batch, (marked.target_id, batch))


def delete_link(
    space_id: int, marked: store.Marked, batch: int = store.BATCH
) -> Plan[dict[str, int]]:
    return _batches(LINK_KEYS, marked, store.delete_link_batch, (space_id, marked.target_id, batch))


def delete_destination(
    space_id: int, marked: store.Marked, batch: int = store.BATCH
) -> Plan[dict[str, int]]:
    args = (space_id, marked.target_id, batch)
    return _batches(DESTINATION_KEYS, marked, store.delete_destination_batch, args)


def _batches(
    keys: Sequence[str], marked: store.Marked, op: Callable[..., store.Batch], args: tuple[Any, ...]
) -> Plan[dict[str, int]]:
    removed = counts(keys, marked.removed)
    while True:
        batch: store.Batch = yield ("write", op, args)
        removed = counts(keys, removed, batch.removed)
        if batch.done:
            break
    yield from forget_in_reports()
    return removed


def erase(space_id: int, person: Person, batch: int = store.BATCH) -> Plan[dict[str, int] | None]:
    """Erase the person from the space; None if there is no such space."""
    erased: store.Erased | None = yield ("write", store.erase_person, (space_id, person))
    if erased is None:
        return None
    removed = erased.removed
    if person.tg_id is not None:  # the user's events sent under a uid not bound to them
        ids = yield ("read", store.find_tg_events, (space_id, person.tg_id))
        for start in range(0, len(ids), batch):
            part = yield ("write", store.erase_events, (space_id, ids[start : start + batch],
                                                        erased.uids))  # fmt: skip
            removed = counts(ERASURE_KEYS, removed, part)
    rows = yield ("read", store.find_log_rows, (space_id, erased.uids, person.tg_id))
    for start in range(0, len(rows), batch):
        part = yield ("write", store.delete_log_rows, (space_id, rows[start : start + batch]))
        removed = counts(ERASURE_KEYS, removed, part)
    yield from forget_in_reports()
    return removed


def forget_in_reports() -> Plan[None]:
    """Bring the report rollup up to date (it drops what left), then forget the entries of
    ``report_removals`` it applied: an erased uid must stay nowhere."""
    upto = yield ("reports", applied_removals, ())
    if upto:
        yield ("write", store.prune_removals, (upto,))


async def run(db: Store, plan: Plan[T]) -> T:
    """Run ``plan`` on the server's store: writes through its writer, reads on its readers."""
    result: Any = None
    while True:
        try:
            kind, op, args = plan.send(result)
        except StopIteration as stop:
            done: T = stop.value
            return done
        if kind == "write":
            result = await db.write(op, *args)
        elif kind == "read":
            result = await db.read(op, *args)
        else:
            await db.catch_up_reports()
            result = await db.read(op, *args)


def run_on(
    conn: sqlite3.Connection, plan: Plan[T], *, reports: Callable[[Callable[..., Any]], Any]
) -> T:
    """Run ``plan`` on one connection (the CLI's): each write in a transaction of its own,
    each read in one snapshot. ``reports(op)`` brings the report rollup up to date (on a
    connection of its own: the CLI's writes must not lock the rollup's file) and runs ``op``
    on it."""
    from xtracker_server.store.db import transaction

    result: Any = None
    while True:
        try:
            kind, op, args = plan.send(result)
        except StopIteration as stop:
            done: T = stop.value
            return done
        if kind == "write":
            with transaction(conn):
                result = op(conn, *args)
        elif kind == "read":
            conn.execute("BEGIN")
            try:
                result = op(conn, *args)
            finally:
                conn.execute("COMMIT")
        else:
            result = reports(lambda rollup, op=op, args=args: op(rollup, *args))


#: A deletion marked this long ago and not finished is finished by the server (one that is
#: still running elsewhere, the CLI's say, is left alone until then).
UNFINISHED_AFTER_MS = 10 * 60_000


async def finish_unfinished(db: Store, now_ms: int) -> int:
    """Finish the deletions a crash or a stopped command left half-done, and forget what the
    report rollup has applied; returns how many deletions were finished."""
    left = await db.read(store.unfinished, now_ms - UNFINISHED_AFTER_MS)
    for kind, space_id, target in left:
        if kind == "space":
            marked = await db.write(store.mark_space, target, now_ms)
            if marked is not None:
                await run(db, delete_space(marked))
        elif kind == "link":
            slug = await db.read(store.slug_of_link, space_id, target)
            marked = await db.write(store.mark_link, space_id, slug, now_ms) if slug else None
            if marked is not None:
                await run(db, delete_link(space_id, marked))
        else:
            marked = await db.write(store.mark_destination, space_id, target, now_ms)
            if marked is not None:
                await run(db, delete_destination(space_id, marked))
    if await db.read(store.removals_pending):
        await run(db, forget_in_reports())
    return len(left)
