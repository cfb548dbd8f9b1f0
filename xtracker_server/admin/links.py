"""``/admin/spaces/{space_id}/links``: create, list and change a space's links."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, links
from xtracker_server.views import link_created_json, link_json


async def list_links(request: Request) -> JSONResponse:
    ctx = await operator(request)
    found = await links.list_links(OPERATOR, ctx, path_id(request))
    base = ctx.settings.base_url
    return JSONResponse({"ok": True, "links": [link_json(link, base) for link in found]})


async def create_link(request: Request) -> JSONResponse:
    """Body: ``slug`` and the link's fields (``LinkSpec``)."""
    ctx = await operator(request)
    space_id = path_id(request)
    fields = await read_json_object(request)
    link = await links.create_link(OPERATOR, ctx, space_id, fields)
    return JSONResponse({"ok": True, **link_created_json(link, ctx.settings.base_url)}, 201)


async def update_link(request: Request) -> JSONResponse:
    """Body: the fields to change."""
    ctx = await operator(request)
    space_id = path_id(request)
    changes = await read_json_object(request)
    link = await links.update_link(OPERATOR, ctx, space_id, request.path_params["slug"], changes)
    return JSONResponse({"ok": True, "link": link_json(link, ctx.settings.base_url)})


routes = [
    Route("/admin/spaces/{space_id}/links", list_links, methods=["GET"]),
    Route("/admin/spaces/{space_id}/links", create_link, methods=["POST"]),
    Route("/admin/spaces/{space_id}/links/{slug}", update_link, methods=["PATCH"]),
]
