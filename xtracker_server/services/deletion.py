"""Deleting spaces, links and destinations, and erasing a person (docs/api.md#deleting-and-
erasing). Each counts what it would remove with ``dry_run``, else removes it and returns
what it removed.

A deletion is marked first (its target stops answering at once: ``ctx.listener`` is told),
then the rest goes in short batches through the store (the plans of
xtracker_server/deletion.py). Once started it runs to its end even if its caller goes away;
a deletion cut short by a crash is finished by the server (``deletion.finish_unfinished``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from xtracker_server import deletion
from xtracker_server.domain.deletion import Person, check_tg_id, check_uid
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid, NotFound
from xtracker_server.services.principal import Action, Principal, authorize
from xtracker_server.services.spaces import authorized_space

__all__ = ["Erasure", "delete_destination", "delete_link", "delete_space", "erase"]

T = TypeVar("T")
#: Deletions under way, so that one whose caller went away stays referenced to its end.
_running: set[asyncio.Task[Any]] = set()


async def delete_space(
    who: Principal, ctx: Context, space_id: int, *, dry_run: bool = False
) -> dict[str, int]:
    """The space and everything of it; its credentials stop working and its links answer
    404 at once."""
    authorize(who, Action.ADMINISTER)
    if dry_run:
        return _found(await ctx.store.space_counts(space_id), "space", space_id)
    marked = await ctx.store.mark_space(space_id, ctx.clock())
    if marked is None:
        raise NotFound("space", space_id)
    ctx.listener.space_deleted(space_id, marked.slugs)
    return await _finish(deletion.run(ctx.store, deletion.delete_space(marked)))


async def delete_link(
    who: Principal, ctx: Context, space_id: int, slug: str, *, dry_run: bool = False
) -> dict[str, int]:
    """The link: its landing and redirect answer 404 at once. Its clicks and their events
    stay, counted under "no link" in the reports."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    if dry_run:
        found = await ctx.store.link_counts(space_id, slug)
        return _found(found, "link", space_id, slug)
    marked = await ctx.store.mark_link(space_id, slug, ctx.clock())
    if marked is None:
        raise NotFound("link", space_id, slug)
    ctx.listener.link_changed(slug)
    return await _finish(deletion.run(ctx.store, deletion.delete_link(space_id, marked)))


async def delete_destination(
    who: Principal, ctx: Context, space_id: int, destination_id: int, *, dry_run: bool = False
) -> dict[str, int]:
    """The destination and every delivery to it: those not sent yet are dropped."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    if dry_run:
        found = await ctx.store.destination_counts(space_id, destination_id)
        return _found(found, "destination", space_id, destination_id)
    marked = await ctx.store.mark_destination(space_id, destination_id, ctx.clock())
    if marked is None:
        raise NotFound("destination", space_id, destination_id)
    plan = deletion.delete_destination(space_id, marked)
    return await _finish(deletion.run(ctx.store, plan))


@dataclass(frozen=True)
class Erasure:
    """Whom an erasure was about, and what it removed (or would, with ``dry_run``)."""

    person: Person
    removed: dict[str, int]


async def erase(
    who: Principal,
    ctx: Context,
    space_id: int,
    named: Mapping[str, object],
    *,
    dry_run: bool = False,
) -> Erasure:
    """Erase what the space holds about one person (a privacy request), ``named`` by a click
    uid (``{"uid": …}``) or a Telegram user (``{"tg_id": …}``): clicks, events, binds,
    postback log rows, and the deliveries of those events. Reports follow."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    person = _person(named)
    if dry_run:
        found = await ctx.store.erasure_counts(space_id, person)
        return Erasure(person, _found(found, "space", space_id))
    removed = await _finish(deletion.run(ctx.store, deletion.erase(space_id, person)))
    return Erasure(person, _found(removed, "space", space_id))


def _person(named: Mapping[str, object]) -> Person:
    if set(named) not in ({"uid"}, {"tg_id"}):
        raise Invalid("uid", "give the uid or the tg_id to erase (one of them)")
    if "uid" in named:
        try:
            return Person(uid=check_uid(named["uid"]))
        except ValueError as exc:
            raise Invalid("uid", str(exc)) from None
    try:
        return Person(tg_id=check_tg_id(named["tg_id"]))
    except ValueError as exc:
        raise Invalid("tg_id", str(exc)) from None


def _found(
    found: dict[str, int] | None, what: str, space_id: int, key: str | int | None = None
) -> dict[str, int]:
    if found is None:
        raise NotFound(what, space_id, key)
    return found


async def _finish(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end even if the caller goes away (a request is then cancelled, not
    the deletion: it would be finished later anyway, but with its batches in the way)."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return await asyncio.shield(task)
