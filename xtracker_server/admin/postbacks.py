"""``/admin/spaces/{space_id}/postbacks``: the postback log, the space's aliases, and
ready-to-paste postback URLs per network."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.admin.reports import answer, wanted_format
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, exports, postbacks
from xtracker_server.views import postback_aliases_json, postback_urls_json

#: The most log rows one listing answers (it is streamed, page by page, as JSON or CSV).
MAX_LISTED = 10_000_000


async def list_postbacks(request: Request) -> Response:
    """Newest first: the latest ``limit`` (default 100; ``limit=all``: every row), of one
    ``outcome`` if given; JSON, or CSV (``Accept: text/csv`` or ``?format=csv``)."""
    ctx = await operator(request)
    wanted_format(request)
    space_id = path_id(request)
    raw = request.query_params.get("limit") or "100"
    limit = None if raw == "all" else whole_number(raw)
    if raw != "all" and (not limit or limit > MAX_LISTED):
        raise field_error("limit", f"must be all or a whole number from 1 to {MAX_LISTED}")
    outcome = request.query_params.get("outcome") or None
    found = await exports.postbacks_export(OPERATOR, ctx, space_id, outcome=outcome, limit=limit)
    return answer(request, found)


async def get_aliases(request: Request) -> JSONResponse:
    ctx = await operator(request)
    aliases = await postbacks.aliases(OPERATOR, ctx, path_id(request))
    return JSONResponse({"ok": True, **postback_aliases_json(aliases)})


async def change_aliases(request: Request) -> JSONResponse:
    """Body ``{"statuses": {ALIAS: EVENT | "ignore" | null}, "params": {NAME: FIELD | null}}``;
    merged into the current aliases, null removes one."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"statuses", "params"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (statuses, params)")
    for key in ("statuses", "params"):
        if not isinstance(body.get(key, {}), dict):
            raise field_error(key, "must be an object of alias: target (null removes one)")
    aliases = await postbacks.change_aliases(
        OPERATOR, ctx, space_id, statuses=body.get("statuses"), params=body.get("params")
    )
    return JSONResponse({"ok": True, **postback_aliases_json(aliases)})


async def make_urls(request: Request) -> JSONResponse:
    """Body ``{"network", "event" (default all), "token" or "rotate": true}``. A given token is
    checked against the space's; ``rotate`` issues a new ingest token (the old one keeps
    working 24 hours) and prints it in the URLs; neither gives a placeholder."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"network", "event", "token", "rotate"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (network, event, token, rotate)")
    network, event = body.get("network"), body.get("event", "all")
    token, rotate = body.get("token"), body.get("rotate", False)
    if not isinstance(rotate, bool):
        raise field_error("rotate", "must be true or false")
    if token is not None and not isinstance(token, str):
        raise field_error("token", "must be a string, and not given with rotate")
    made = await postbacks.make_urls(
        OPERATOR, ctx, space_id, network=str(network), event=str(event), token=token,
        rotate=rotate,
    )  # fmt: skip
    return JSONResponse({"ok": True, **postback_urls_json(space_id, made.urls, made.source)})


routes = [
    Route("/admin/spaces/{space_id}/postbacks", list_postbacks, methods=["GET"]),
    Route("/admin/spaces/{space_id}/postbacks/aliases", get_aliases, methods=["GET"]),
    Route("/admin/spaces/{space_id}/postbacks/aliases", change_aliases, methods=["PATCH"]),
    Route("/admin/spaces/{space_id}/postbacks/urls", make_urls, methods=["POST"]),
]
