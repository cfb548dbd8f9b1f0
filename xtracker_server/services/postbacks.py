"""A space's partner postbacks: the log of what arrived, the aliases that read a network's
statuses and parameters, and ready-to-paste postback URLs per network (docs/postbacks.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.entities import LoggedEntry
from xtracker_server.domain.postback_urls import (
    EVENT_CHOICES,
    NETWORKS,
    TOKEN_PLACEHOLDER,
    NetworkUrls,
    postback_urls,
)
from xtracker_server.domain.postbacks import (
    Aliases,
    check_param_alias,
    check_param_name,
    check_status_alias,
    check_status_name,
)
from xtracker_server.services import credentials
from xtracker_server.services.context import Context
from xtracker_server.services.errors import NOT_A_LIVE_TOKEN, NOT_AN_ALIAS, Invalid
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import POSTBACK_OUTCOMES as OUTCOMES

__all__ = [
    "OUTCOMES",
    "PostbackUrls",
    "aliases",
    "change_aliases",
    "make_urls",
    "postback_log",
]


async def postback_log(
    who: Principal, ctx: Context, space_id: int, *, outcome: str | None = None, limit: int = 100
) -> list[LoggedEntry]:
    """The postbacks the space received, newest first (tokens masked); of one ``outcome``
    (queued, duplicate, ignored, rejected) if given."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    if outcome is not None and outcome not in OUTCOMES:
        raise Invalid("outcome", f"must be one of {', '.join(OUTCOMES)}")
    return await ctx.store.list_postback_log(space_id, outcome=outcome, limit=limit)


async def aliases(who: Principal, ctx: Context, space_id: int) -> Aliases:
    """The aliases in effect: the defaults with the space's changes."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.postback_aliases(space_id)


async def change_aliases(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    statuses: Mapping[str, object] | None = None,
    params: Mapping[str, object] | None = None,
) -> Aliases:
    """Merge ``statuses`` ({ALIAS: EVENT or "ignore"}) and ``params`` ({NAME: FIELD}) into
    the space's aliases; a target None removes the alias (a default too: it then stays
    removed). All or nothing: one bad entry (Invalid, field ``statuses.ALIAS`` or
    ``params.NAME``) changes nothing. Returns the aliases in effect after."""
    current = await aliases(who, ctx, space_id)
    changes = [
        _checked(kind, key, alias, target, current)
        for kind, key, given in (("status", "statuses", statuses), ("param", "params", params))
        for alias, target in (given or {}).items()
    ]
    await ctx.store.set_postback_aliases(space_id, changes, ctx.clock())
    ctx.listener.aliases_changed(space_id)
    return await ctx.store.postback_aliases(space_id)


def _checked(
    kind: str, key: str, alias: str, target: object, current: Aliases
) -> tuple[str, str, str | None]:
    """``(kind, alias, target)`` normalised by the domain's checks, or Invalid."""
    table = current.statuses if kind == "status" else current.params
    try:
        if target is None:
            name = check_status_name(alias) if kind == "status" else check_param_name(alias)
            if name not in table:
                problem = f"{name!r} is not an alias of this space"
                raise Invalid(f"{key}.{alias}", problem, rule=NOT_AN_ALIAS)
            return kind, name, None
        if not isinstance(target, str):
            raise ValueError(f"{alias!r}: the target must be a string or null")
        check = check_status_alias if kind == "status" else check_param_alias
        name, checked = check(alias, target)
        return kind, name, checked
    except ValueError as exc:
        raise Invalid(f"{key}.{alias}", str(exc)) from None


@dataclass(frozen=True)
class PostbackUrls:
    """``source``: where the token in the URLs came from: given, rotated or placeholder."""

    urls: NetworkUrls
    source: str


async def make_urls(
    who: Principal,
    ctx: Context,
    space_id: int,
    *,
    network: str,
    event: str = "all",
    token: str | None = None,
    rotate: bool = False,
) -> PostbackUrls:
    """The postback URLs to paste into ``network``'s cabinet, for ``event`` (registration,
    deposit or all). Tokens are stored only hashed, so the URLs carry: ``token`` (checked
    against the space's), a new ingest token with ``rotate`` (the old one keeps working 24
    hours), or else a placeholder."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    if network not in NETWORKS:
        raise Invalid("network", f"must be one of {', '.join(NETWORKS)}")
    if event not in EVENT_CHOICES:
        raise Invalid("event", f"must be one of {', '.join(EVENT_CHOICES)}")
    if token is not None and rotate:
        raise Invalid("token", "must be a string, and not given with rotate")
    source = "placeholder"
    if rotate:
        rotation = await credentials.rotate(who, ctx, space_id, CredentialKind.INGEST)
        token, source = rotation.secret, "rotated"
    elif token is not None:
        token = token.strip()
        if not await ctx.store.is_ingest_token_of(space_id, token, ctx.clock()):
            raise Invalid(
                "token", f"is not a live ingest token of space {space_id}", rule=NOT_A_LIVE_TOKEN
            )
        source = "given"
    urls = postback_urls(network, ctx.settings.base_url, token or TOKEN_PLACEHOLDER, event)
    return PostbackUrls(urls, source)
