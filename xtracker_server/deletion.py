"""Deleting spaces, links and destinations, and erasing a person, as the admin API, the CLI and
the server's housekeeping run them (docs/operations.md#deleting-and-erasing).

Each is a *plan*: a generator of steps, each a Store operation (store/api.py) by name with its
arguments, that is sent each step's result and returns the counts removed. The server runs a
plan on its store (``run``): every batch is one short transaction of the group-commit writer,
with other requests' writes in between (the CLI runs them the same way, on a store of its own:
services/deletion.py). A deletion's first step, the mark, is run by the caller (it says what goes,
and the server drops its caches of it at once); the plan deletes the rest and then has the
report rollup forget what went (``forget_in_reports``).

    >>> marked = await store.mark_space(3, now_ms)
    >>> removed = await run(store, delete_space(marked))
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from xtracker_server.domain.deletion import (
    DESTINATION_KEYS,
    ERASURE_KEYS,
    LINK_KEYS,
    SPACE_KEYS,
    Person,
    counts,
)
from xtracker_server.domain.entities import Batch, Erased, Marked

if TYPE_CHECKING:
    from xtracker_server.store.api import Store

T = TypeVar("T")
#: A step: the name of a Store operation and its arguments.
Step = tuple[str, tuple[Any, ...]]
Plan = Generator[Step, Any, T]
#: Rows one batch of a deletion takes at most (one short write transaction).
BATCH = 500


def delete_space(marked: Marked, batch: int = BATCH) -> Plan[dict[str, int]]:
    return _batches(SPACE_KEYS, marked, "delete_space_batch", (marked.target_id, batch))


def delete_link(space_id: int, marked: Marked, batch: int = BATCH) -> Plan[dict[str, int]]:
    return _batches(LINK_KEYS, marked, "delete_link_batch", (space_id, marked.target_id, batch))


def delete_destination(space_id: int, marked: Marked, batch: int = BATCH) -> Plan[dict[str, int]]:
    args = (space_id, marked.target_id, batch)
    return _batches(DESTINATION_KEYS, marked, "delete_destination_batch", args)


def _batches(
    keys: Sequence[str], marked: Marked, op: str, args: tuple[Any, ...]
) -> Plan[dict[str, int]]:
    removed = counts(keys, marked.removed)
    while True:
        batch: Batch = yield (op, args)
        removed = counts(keys, removed, batch.removed)
        if batch.done:
            break
    yield from forget_in_reports()
    return removed


def erase(space_id: int, person: Person, batch: int = BATCH) -> Plan[dict[str, int] | None]:
    """Erase the person from the space; None if there is no such space."""
    erased: Erased | None = yield ("erase_person", (space_id, person))
    if erased is None:
        return None
    removed = erased.removed
    if person.tg_id is not None:  # the user's events sent under a uid not bound to them
        ids = yield ("find_tg_events", (space_id, person.tg_id))
        for start in range(0, len(ids), batch):
            part = yield ("erase_events", (space_id, ids[start : start + batch], erased.uids))
            removed = counts(ERASURE_KEYS, removed, part)
    rows = yield ("find_log_rows", (space_id, erased.uids, person.tg_id))
    for start in range(0, len(rows), batch):
        part = yield ("delete_log_rows", (space_id, rows[start : start + batch]))
        removed = counts(ERASURE_KEYS, removed, part)
    yield from forget_in_reports()
    return removed


def forget_in_reports() -> Plan[None]:
    """Bring the report rollup up to date (it drops what left), then forget the entries of
    ``report_removals`` it applied: an erased uid must stay nowhere."""
    upto = yield ("applied_removals", ())
    if upto:
        yield ("prune_removals", (upto,))


async def run(db: Store, plan: Plan[T]) -> T:
    """Run ``plan`` on the server's store: writes through its writer, reads on its readers."""
    result: Any = None
    while True:
        try:
            name, args = plan.send(result)
        except StopIteration as stop:
            done: T = stop.value
            return done
        result = await getattr(db, name)(*args)


#: A deletion marked this long ago and not finished is finished by the server (one that is
#: still running elsewhere, the CLI's say, is left alone until then).
UNFINISHED_AFTER_MS = 10 * 60_000


async def finish_unfinished(db: Store, now_ms: int) -> int:
    """Finish the deletions a crash or a stopped command left half-done, and forget what the
    report rollup has applied; returns how many deletions were finished."""
    left = await db.unfinished_deletions(now_ms - UNFINISHED_AFTER_MS)
    for kind, space_id, target in left:
        if kind == "space":
            marked = await db.mark_space(target, now_ms)
            if marked is not None:
                await run(db, delete_space(marked))
        elif kind == "link":
            slug = await db.slug_of_link(space_id, target)
            marked = await db.mark_link(space_id, slug, now_ms) if slug else None
            if marked is not None:
                await run(db, delete_link(space_id, marked))
        else:
            marked = await db.mark_destination(space_id, target, now_ms)
            if marked is not None:
                await run(db, delete_destination(space_id, marked))
    if await db.removals_pending():
        await run(db, forget_in_reports())
    return len(left)
