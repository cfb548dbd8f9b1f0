"""A space's own currency codes, accepted on its events besides ISO 4217 codes and the common
crypto tickers (domain/currencies.py)."""

from __future__ import annotations

from collections.abc import Iterable

from xtracker_server.domain.currencies import check_allowed
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.spaces import authorized_space

__all__ = ["change_currencies", "currencies", "set_currencies"]


async def currencies(who: Principal, ctx: Context, space_id: int) -> tuple[str, ...]:
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.allowed_currencies(space_id) or ()


async def set_currencies(
    who: Principal, ctx: Context, space_id: int, codes: Iterable[str]
) -> tuple[str, ...]:
    """Replace the space's list (empty: none); returns it normalised (upper case, sorted)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    try:
        checked = check_allowed(codes)
    except ValueError as exc:
        raise Invalid("allowed", str(exc)) from None
    await ctx.store.set_allowed_currencies(space_id, checked)
    return checked


async def change_currencies(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    allow: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> tuple[str, ...]:
    """Add the codes ``allow`` and remove the codes ``remove`` (any case) from the space's
    list; returns it."""
    current = await currencies(who, ctx, space_id)
    added = [code for code in allow if code.strip()]
    gone = {code.strip().upper() for code in remove if code.strip()}
    if not added and not gone:
        return current
    return await set_currencies(
        who, ctx, space_id, [*(c for c in current if c not in gone), *added]
    )
