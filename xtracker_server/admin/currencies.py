"""``/admin/spaces/{space_id}/currencies``: the space's own currency codes, accepted on its
events besides ISO 4217 and the common crypto tickers (``domain/currencies.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, currencies
from xtracker_server.views import currencies_json


async def get_currencies(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    allowed = await currencies.currencies(OPERATOR, ctx, space_id)
    return JSONResponse({"ok": True, **currencies_json(space_id, allowed)})


async def put_currencies(request: Request) -> JSONResponse:
    """Body ``{"allowed": ["ABC", "XYZ"]}``: replaces the list (``[]`` empties it)."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"allowed"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (allowed)")
    given = body.get("allowed")
    if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
        raise field_error("allowed", 'must be a list of currency codes, such as ["GEMS"]')
    codes = await currencies.set_currencies(OPERATOR, ctx, space_id, given)
    return JSONResponse({"ok": True, **currencies_json(space_id, codes)})


routes = [
    Route("/admin/spaces/{space_id}/currencies", get_currencies, methods=["GET"]),
    Route("/admin/spaces/{space_id}/currencies", put_currencies, methods=["PUT"]),
]
