"""Spaces: list and create them, and a space's setting for binds made with its ingest token.

>>> created = await create_space(OPERATOR, ctx, "My funnel")
>>> created.bearer  # shown once
"""

from __future__ import annotations

from xtracker_server.domain.entities import NewSpace, Space
from xtracker_server.domain.spaces import check_space_name
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid, NotFound
from xtracker_server.services.principal import Action, Principal, authorize

__all__ = [
    "authorized_space",
    "create_space",
    "list_spaces",
    "set_token_binds",
    "token_binds",
]


async def authorized_space(who: Principal, ctx: Context, action: Action, space_id: int) -> Space:
    """The space, if ``who`` may do ``action`` on it (else Forbidden) and it exists (else
    NotFound): the first step of every service on a space."""
    authorize(who, action, space_id)
    space = await ctx.store.get_space(space_id)
    if space is None:
        raise NotFound("space", space_id)
    return space


async def list_spaces(who: Principal, ctx: Context) -> list[Space]:
    authorize(who, Action.ADMINISTER)
    return await ctx.store.list_spaces()


async def create_space(who: Principal, ctx: Context, name: str) -> NewSpace:
    """A new space with its bearer secret and ``default`` ingest token (shown only here)."""
    authorize(who, Action.ADMINISTER)
    try:
        name = check_space_name(name)
    except ValueError as exc:
        raise Invalid("name", str(exc)) from None
    return await ctx.store.create_space(name, ctx.clock())


async def token_binds(who: Principal, ctx: Context, space_id: int) -> bool:
    """Whether the space takes binds made with its ingest token (``GET /bind``)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.token_binds_allowed(space_id)


async def set_token_binds(who: Principal, ctx: Context, space_id: int, allowed: bool) -> bool:
    """Take (True) or refuse (False, 403 token_binds_off) ``GET /bind`` in the space
    (domain/binds.py); returns the setting now."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    await ctx.store.set_token_binds(space_id, allowed)
    return allowed
