"""``/admin/spaces/{space_id}/sub-ids``: the query parameters the space declares as sub-ids,
recorded with each click of its landing (docs/reports.md#what-a-click-records)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, sub_ids
from xtracker_server.views import sub_ids_json


async def get_sub_ids(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    names = await sub_ids.sub_ids(OPERATOR, ctx, space_id)
    return JSONResponse({"ok": True, **sub_ids_json(space_id, names)})


async def put_sub_ids(request: Request) -> JSONResponse:
    """Body ``{"params": ["sub1", "creative"]}``: replaces the list (``[]`` empties it)."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"params"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (params)")
    given = body.get("params")
    if not isinstance(given, list):
        raise field_error("params", 'must be a list of query parameter names, such as ["sub1"]')
    names = await sub_ids.set_sub_ids(OPERATOR, ctx, space_id, given)
    return JSONResponse({"ok": True, **sub_ids_json(space_id, names)})


routes = [
    Route("/admin/spaces/{space_id}/sub-ids", get_sub_ids, methods=["GET"]),
    Route("/admin/spaces/{space_id}/sub-ids", put_sub_ids, methods=["PUT"]),
]
