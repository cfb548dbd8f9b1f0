"""A space's credentials: rotate and revoke its bearer secret and ingest tokens, add and
revoke named ingest tokens (one per partner network), and the operator's admin token.

Secrets are shown once, in what these return (``Rotation``, ``NewToken``); the store keeps
only their hashes. What stops working is told to ``ctx.listener`` (``credentials_ended``).
"""

from __future__ import annotations

from xtracker_server.domain.credentials import CredentialKind, check_token_name
from xtracker_server.domain.entities import IngestToken, NewToken, Revocation, Rotation
from xtracker_server.services.context import Context
from xtracker_server.services.errors import NAME_NEEDS_INGEST, Conflict, Invalid, NotFound
from xtracker_server.services.principal import Action, Principal, authorize
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import NoSuchToken, TokenNameTaken

__all__ = [
    "add_ingest_token",
    "list_ingest_tokens",
    "reset_admin_token",
    "revoke_ingest_token",
    "revoke_previous",
    "rotate",
]


def credential(kind: CredentialKind, name: str | None) -> str | None:
    """The ingest token's name checked (``check_token_name``), if given: only ingest tokens
    have names. Raises Invalid (field ``name``)."""
    if name is None:
        return None
    try:
        name = check_token_name(name)
    except ValueError as exc:
        raise Invalid("name", str(exc)) from None
    if kind is not CredentialKind.INGEST:
        raise Invalid("name", "only ingest tokens have names", rule=NAME_NEEDS_INGEST)
    return name


def no_such_token(space_id: int, name: str) -> NotFound:
    return NotFound(
        "token", space_id, name, detail=f"space {space_id} has no ingest token named {name!r}"
    )


async def rotate(
    who: Principal, ctx: Context, space_id: int, kind: CredentialKind, name: str | None = None
) -> Rotation:
    """A new secret for the bearer or an ingest token (``name``, by default ``default``); the
    previous one keeps working 24 hours (``revoke_previous`` ends it at once)."""
    authorize(who, Action.MANAGE, space_id)
    name = credential(kind, name)
    try:
        rotation = await ctx.store.rotate_credential(space_id, kind, ctx.clock(), name)
    except NoSuchToken as exc:
        raise no_such_token(space_id, str(exc)) from None
    if rotation is None:
        raise NotFound("space", space_id)
    return rotation


async def revoke_previous(
    who: Principal, ctx: Context, space_id: int, kind: CredentialKind, name: str | None = None
) -> Revocation:
    """End now the rotated-out secrets of the bearer or an ingest token (a leak); the current
    one keeps working. ``revoked`` 0: there was nothing to end."""
    authorize(who, Action.MANAGE, space_id)
    name = credential(kind, name)
    revocation = await ctx.store.revoke_previous(space_id, kind, ctx.clock(), name)
    if revocation is None:
        raise NotFound("space", space_id)
    ctx.listener.credentials_ended(revocation.hashes)
    return revocation


async def list_ingest_tokens(who: Principal, ctx: Context, space_id: int) -> list[IngestToken]:
    """The space's live ingest tokens: names, hints and last use, never the secrets."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.list_ingest_tokens(space_id, ctx.clock())


async def add_ingest_token(who: Principal, ctx: Context, space_id: int, name: str) -> NewToken:
    """A new ingest token called ``name`` (a partner network); Conflict token_name_taken if a
    live one has that name."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    checked = credential(CredentialKind.INGEST, name)
    assert checked is not None
    try:
        token = await ctx.store.add_ingest_token(space_id, checked, ctx.clock())
    except TokenNameTaken:
        raise Conflict(
            "token_name_taken",
            f"space {space_id} already has an ingest token named {checked!r}: pick another"
            " name, or revoke it first",
            space_id=space_id,
            key=checked,
        ) from None
    if token is None:  # the space was deleted meanwhile
        raise NotFound("space", space_id)
    return token


async def revoke_ingest_token(who: Principal, ctx: Context, space_id: int, name: str) -> Revocation:
    """End every secret of the named ingest token now (rotated-out ones too); the space's
    other tokens keep working."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    name = name.strip().lower()
    revocation = await ctx.store.revoke_ingest_token(space_id, name, ctx.clock())
    if revocation is None:
        raise NotFound("space", space_id)
    if not revocation.revoked:
        raise no_such_token(space_id, name)
    ctx.listener.credentials_ended(revocation.hashes)
    return revocation


async def reset_admin_token(who: Principal, ctx: Context) -> str:
    """A new stored admin token (shown once); the previous one stops working."""
    authorize(who, Action.ADMINISTER)
    return await ctx.store.reset_admin_token(ctx.clock())
