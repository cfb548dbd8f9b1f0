"""A space's links: list, create and change them (deleting one: services/deletion.py). A
link's slug is its URL path, unique on the server; its landing and redirect see a change at
once here (``ctx.listener.link_changed``), in other processes within ``credential_cache_s``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xtracker_server.domain.links import LinkSettings, check_slug
from xtracker_server.services.context import Context
from xtracker_server.services.errors import Conflict, Invalid, NotFound
from xtracker_server.services.principal import Action, Principal
from xtracker_server.services.spaces import authorized_space
from xtracker_server.store.api import SlugTaken

if TYPE_CHECKING:
    from xtracker_server.domain.entities import Link

__all__ = ["create_link", "list_links", "update_link"]

#: What a change may name: the fields of a link.
_FIELDS = frozenset(f.name for f in dataclasses.fields(LinkSettings))


async def list_links(who: Principal, ctx: Context, space_id: int) -> list[Link]:
    await authorized_space(who, ctx, Action.MANAGE, space_id)
    return await ctx.store.list_links(space_id)


async def create_link(
    who: Principal, ctx: Context, space_id: int, fields: Mapping[str, Any]
) -> Link:
    """A new link from ``fields``: its ``slug`` and the link's fields (``LinkSpec``: kind,
    target, …). Conflict slug_taken if any space has that slug."""
    # Here: pydantic validates a link that is created or changed; listing links needs none.
    from pydantic import ValidationError

    from xtracker_server.domain.link_input import LinkSpec

    await authorized_space(who, ctx, Action.MANAGE, space_id)
    spec_fields = dict(fields)
    slug = _slug(spec_fields.pop("slug", None))
    try:
        spec = LinkSpec.model_validate(spec_fields)
    except ValidationError as exc:
        raise Invalid.from_validation(exc) from None
    try:
        link = await ctx.store.create_link(space_id, slug, spec, ctx.clock())
    except SlugTaken as exc:
        raise Conflict("slug_taken", str(exc), space_id=space_id, key=slug, field="slug") from None
    ctx.listener.link_changed(slug)
    return link


def _slug(raw: object) -> str:
    if raw is None:
        raise Invalid("slug", "is required")
    if not isinstance(raw, str):
        raise Invalid("slug", "must be a string")
    try:
        return check_slug(raw)
    except ValueError as exc:
        raise Invalid("slug", str(exc)) from None


async def update_link(
    who: Principal, ctx: Context, space_id: int, slug: str, changes: Mapping[str, Any]
) -> Link:
    """Change the fields in ``changes`` (``enabled`` False: its landing and redirect answer
    404); the result is validated as a whole link."""
    from pydantic import ValidationError  # here: see create_link

    await authorized_space(who, ctx, Action.MANAGE, space_id)
    unknown = sorted(set(changes) - _FIELDS)
    if unknown:
        raise Invalid(unknown[0], "is not a field of a link")
    try:
        link = await ctx.store.update_link(space_id, slug, dict(changes), ctx.clock())
    except ValidationError as exc:
        raise Invalid.from_validation(exc) from None
    if link is None:
        raise NotFound("link", space_id, slug)
    ctx.listener.link_changed(slug)
    return link
