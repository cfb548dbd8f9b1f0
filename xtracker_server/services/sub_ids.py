"""The query parameters a space declares as sub-ids (``sub1`` … ``sub5``, ``creative``): the
landing records their values with each click, so reports can group and filter by them
(docs/reports.md#what-a-click-records)."""

from __future__ import annotations

from collections.abc import Iterable

from xtracker_server.domain.clicks import check_sub_id_names
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.spaces import authorized_space

__all__ = ["set_sub_ids", "sub_ids"]


async def sub_ids(who: Principal, ctx: Context, space_id: int) -> tuple[str, ...]:
    """The space's sub-id parameters, in the order declared."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.sub_id_params(space_id) or ()


async def set_sub_ids(
    who: Principal, ctx: Context, space_id: int, names: Iterable[object]
) -> tuple[str, ...]:
    """Replace the space's sub-id parameters (empty: none). Clicks made from then on record
    the values of these; clicks made before keep what they recorded."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    try:
        checked = check_sub_id_names(names)
    except ValueError as exc:
        raise Invalid("params", str(exc)) from None
    await ctx.store.set_sub_id_params(space_id, checked)
    ctx.listener.sub_ids_changed(space_id)
    return checked
