"""``/admin/spaces/{space_id}/currencies``: the space's own currency codes, accepted on its
events besides ISO 4217 and the common crypto tickers (``domain/currencies.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._spaces import admin_space
from xtracker_server.domain.currencies import check_allowed
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.store import spaces
from xtracker_server.views import currencies_json


async def get_currencies(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    allowed = await state.store.read(spaces.allowed_currencies, space_id)
    return JSONResponse({"ok": True, **currencies_json(space_id, allowed or ())})


async def put_currencies(request: Request) -> JSONResponse:
    """Body ``{"allowed": ["ABC", "XYZ"]}``: replaces the list (``[]`` empties it)."""
    state, space_id = await admin_space(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"allowed"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (allowed)")
    given = body.get("allowed")
    if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
        raise field_error("allowed", 'must be a list of currency codes, such as ["GEMS"]')
    try:
        codes = check_allowed(given)
    except ValueError as exc:
        raise field_error("allowed", str(exc)) from None
    await state.store.write(spaces.set_allowed_currencies, space_id, codes)
    return JSONResponse({"ok": True, **currencies_json(space_id, codes)})


routes = [
    Route("/admin/spaces/{space_id}/currencies", get_currencies, methods=["GET"]),
    Route("/admin/spaces/{space_id}/currencies", put_currencies, methods=["PUT"]),
]
