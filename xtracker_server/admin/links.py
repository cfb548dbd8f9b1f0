"""``/admin/spaces/{space_id}/links``: create, list and change a space's links."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._spaces import existing_space
from xtracker_server.clock import now_ms
from xtracker_server.domain.links import LinkSpec, check_slug
from xtracker_server.errors import ApiError, field_error, invalid
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.state import app_state
from xtracker_server.store import links
from xtracker_server.views import link_created_json, link_json


async def list_links(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    space_id = await existing_space(app_state(request), request)
    found = await state.store.read(links.list_links, space_id)
    base = state.settings.base_url
    return JSONResponse({"ok": True, "links": [link_json(link, base) for link in found]})


async def create_link(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    space_id = await existing_space(app_state(request), request)
    body = await read_json_object(request)
    slug = _slug(body.pop("slug", None))
    spec = validate(LinkSpec, body)
    try:
        link = await state.store.write(links.create_link, space_id, slug, spec, now_ms())
    except links.SlugTaken as exc:
        raise ApiError(409, "slug_taken", str(exc), field="slug") from None
    state.links.forget(slug)
    return JSONResponse({"ok": True, **link_created_json(link, state.settings.base_url)}, 201)


async def update_link(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    space_id = await existing_space(app_state(request), request)
    slug = request.path_params["slug"]
    changes: dict[str, Any] = await read_json_object(request)
    unknown = set(changes) - set(LinkSpec.model_fields)
    if unknown:
        raise field_error(sorted(unknown)[0], "is not a field of a link")
    try:
        link = await state.store.write(links.update_link, space_id, slug, changes, now_ms())
    except ValidationError as exc:
        raise invalid(exc) from None
    if link is None:
        raise ApiError(404, "not_found", f"no link {slug!r} in space {space_id}")
    state.links.forget(slug)
    return JSONResponse({"ok": True, "link": link_json(link, state.settings.base_url)})


def _slug(raw: object) -> str:
    if raw is None:
        raise field_error("slug", "is required")
    if not isinstance(raw, str):
        raise field_error("slug", "must be a string")
    try:
        return check_slug(raw)
    except ValueError as exc:
        raise field_error("slug", str(exc)) from None


routes = [
    Route("/admin/spaces/{space_id}/links", list_links, methods=["GET"]),
    Route("/admin/spaces/{space_id}/links", create_link, methods=["POST"]),
    Route("/admin/spaces/{space_id}/links/{slug}", update_link, methods=["PATCH"]),
]
