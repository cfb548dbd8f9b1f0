"""A space's destinations: where its events are delivered. List, add, change and test them
(deleting one: services/deletion.py).

Two rules live here for every front end: a destination's URL or proxy must be on a public
address (``check_address``, unless ``allow_private_destinations``), and enabling a destination
or giving it a new access token clears its unhealthy flag (what was held for it is due now).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtracker_server.domain.destinations import DestinationKind, check_event_map
from xtracker_server.domain.entities import Destination
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Invalid, NotFound
from xtracker_server.services.principal import Action, Principal, authorize
from xtracker_server.services.spaces import authorized_space
from xtracker_wire import EVENT_NAMES

if TYPE_CHECKING:
    from xtracker_server.delivery.probe import ProbeResult

__all__ = [
    "CHANGEABLE",
    "NewDestination",
    "check_address",
    "create_destination",
    "destination_space",
    "list_destinations",
    "test_destination",
    "update_destination",
]

#: What ``update_destination`` changes.
CHANGEABLE = ("access_token", "enabled", "event_map", "name", "proxy")
#: The longest destination name, in characters.
MAX_NAME = 100


@dataclass(frozen=True)
class NewDestination:
    """A destination just added; ``secret``: the webhook signing secret it was given, shown
    only here (None for other kinds)."""

    destination: Destination
    secret: str | None


async def list_destinations(who: Principal, ctx: Context, space_id: int) -> list[Destination]:
    """The space's destinations (their secrets are for sending: views never show them)."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.list_destinations(space_id)


async def create_destination(
    who: Principal, ctx: Context, space_id: int, fields: Mapping[str, Any]
) -> NewDestination:
    """A new destination from ``fields`` (``DestinationInput``: kind, its settings, name,
    proxy, event_map). It receives the events that arrive from now on."""
    # Here: pydantic validates a destination that is added or changed; listing needs none.
    from pydantic import ValidationError

    from xtracker_server.domain.destination_input import DestinationInput, prepare_destination

    await authorized_space(who, ctx, Action.MANAGE, space_id)
    try:
        inp = DestinationInput.model_validate(fields)
        prepared = prepare_destination(inp)
    except ValidationError as exc:
        raise Invalid.from_validation(exc) from None
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise Invalid(field, problem) from None
    for field, url in inp.guarded_urls():
        await check_address(ctx, url, field)
    created = await ctx.store.create_destination(space_id, prepared, ctx.clock())
    if created is None:  # the space was deleted meanwhile
        raise NotFound("space", space_id)
    return NewDestination(created, prepared.shown_secret)


async def update_destination(
    who: Principal, ctx: Context, space_id: int, destination_id: int, changes: Mapping[str, Any]
) -> Destination:
    """Change ``name``, ``enabled``, ``proxy``, ``event_map`` (merged into the current one)
    or a fb_capi destination's ``access_token``. Enabling it or a new access token (the usual
    fix for an expired one) also clears its unhealthy flag."""
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise Invalid(unknown[0], f"cannot be changed here (one of {', '.join(CHANGEABLE)})")
    current = await ctx.store.get_destination(space_id, destination_id)
    if current is None:
        raise NotFound("destination", space_id, destination_id)
    columns = await _columns(ctx, current, changes)
    updated = await ctx.store.update_destination(space_id, destination_id, ctx.clock(), **columns)
    if updated is None:  # deleted meanwhile
        raise NotFound("destination", space_id, destination_id)
    if "health_reason" in columns:
        ctx.listener.deliveries_due()
    return updated


async def _columns(
    ctx: Context, current: Destination, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The store's columns for ``changes``, each checked."""
    columns: dict[str, Any] = {}
    if "name" in changes:
        name = changes["name"]
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_NAME:
            raise Invalid("name", f"must be 1 to {MAX_NAME} characters")
        columns["name"] = name.strip()
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise Invalid("enabled", "must be true or false")
        columns["enabled"] = changes["enabled"]
        if changes["enabled"]:
            columns["health_reason"] = None
    if "proxy" in changes:
        from pydantic import ValidationError  # here: see create_destination

        from xtracker_server.domain.destination_input import DestinationInput

        try:
            columns["proxy"] = DestinationInput(kind=current.kind, proxy=changes["proxy"]).proxy
        except ValidationError as exc:
            raise Invalid.from_validation(exc) from None
        await check_address(ctx, columns["proxy"], "proxy")
    if "event_map" in changes:
        columns["event_map"] = _merged_map(current.event_map, changes["event_map"])
    if "access_token" in changes:
        token = changes["access_token"]
        if (
            current.kind is not DestinationKind.FB_CAPI
            or not isinstance(token, str)
            or not token.strip()
        ):
            raise Invalid("access_token", "only a fb_capi destination has one; a string")
        columns.update(secret=token.strip(), health_reason=None)
    return columns


def _merged_map(current: dict[str, str], raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise Invalid("event_map", f"must map events ({', '.join(EVENT_NAMES)}) to names")
    try:
        return check_event_map({**current, **raw})
    except ValueError as exc:
        raise Invalid("event_map", str(exc)) from None


async def check_address(ctx: Context, url: str | None, field: str) -> None:
    """Refuse (Invalid, naming ``field``) a destination URL or proxy whose host is, or
    resolves to, an address that is not public (the address guard), unless
    ``allow_private_destinations``. The worker checks again at every send."""
    if url is None or ctx.settings.allow_private_destinations:
        return
    from xtracker_server.delivery.guard import address_problem  # aiohttp: only when needed

    problem = await address_problem(url, ctx.resolver)
    if problem:
        raise Invalid(field, problem)


async def test_destination(
    who: Principal,
    ctx: Context,
    space_id: int,
    destination_id: int,
    *,
    test_event_code: str | None = None,
    live: bool = False,
) -> ProbeResult:
    """Send one test event to the destination now (delivery/probe.py): a pixel's test goes
    under a test event code, or ``live`` on purpose."""
    from xtracker_server.delivery.probe import ProbeRefused, probe  # aiohttp: only when needed

    await authorized_space(who, ctx, Action.MANAGE, space_id)
    dest = await ctx.store.get_destination(space_id, destination_id)
    if dest is None:
        raise NotFound("destination", space_id, destination_id)
    try:
        return await probe(
            dest, ctx.settings, test_event_code=test_event_code, live=live, resolver=ctx.resolver
        )
    except ProbeRefused as exc:
        raise Invalid("test_event_code", str(exc)) from None


async def destination_space(who: Principal, ctx: Context, destination_id: int) -> int:
    """The space of a destination known by its id alone (the operator's shortcut)."""
    authorize(who, Action.ADMINISTER)
    space_id = await ctx.store.space_of_destination(destination_id)
    if space_id is None:
        raise NotFound(
            "destination", None, destination_id, detail=f"no destination {destination_id}"
        )
    return space_id
