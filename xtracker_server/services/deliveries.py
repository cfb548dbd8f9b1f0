"""A space's deliveries (the outbox): what was sent where, what failed, and sending again."""

from __future__ import annotations

from xtracker_server.domain.entities import DeliveryRow
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import DELIVERY_STATUSES as STATUSES

__all__ = ["STATUSES", "delivery_counts", "list_deliveries", "replay"]


def _status(status: str) -> str:
    if status not in STATUSES:
        raise Invalid("status", f"must be one of {', '.join(STATUSES)}")
    return status


async def list_deliveries(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    status: str | None = None,
    destination_id: int | None = None,
    limit: int = 100,
) -> list[DeliveryRow]:
    """The space's deliveries, newest first: of one ``status`` and one destination, if given."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.list_deliveries(
        space_id,
        status=None if status is None else _status(status),
        destination_id=destination_id,
        limit=limit,
    )


async def delivery_counts(who: Principal, ctx: Context, space_id: int) -> dict[str, int]:
    """How many of the space's deliveries are in each status (absent: none)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.delivery_counts(space_id)


async def replay(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    status: str = "failed_permanently",
    destination_id: int | None = None,
) -> int:
    """Send again the deliveries in ``status`` (of one destination, if given), with the same
    event_id so receivers can deduplicate; returns how many."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    count = await ctx.store.replay(
        space_id,
        status=_status(status),
        destination_id=destination_id,
        now_ms=ctx.clock(),
    )
    if count:
        ctx.listener.deliveries_due()
    return count
