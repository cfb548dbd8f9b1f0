"""``/admin/spaces/{space_id}/destinations`` and ``…/outbox``: where events go, and how their
deliveries are doing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, deliveries, destinations
from xtracker_server.views import delivery_json, destination_json, probe_json

#: The most deliveries one listing answers.
MAX_LISTED = 1000


async def list_destinations(request: Request) -> JSONResponse:
    ctx = await operator(request)
    found = await destinations.list_destinations(OPERATOR, ctx, path_id(request))
    return JSONResponse({"ok": True, "destinations": [destination_json(d) for d in found]})


async def create_destination(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    fields = await read_json_object(request)
    new = await destinations.create_destination(OPERATOR, ctx, space_id, fields)
    created = new.destination
    answer = {"ok": True, "id": created.id, "kind": created.kind.value, "secret": new.secret}
    return JSONResponse(answer, status_code=201)


async def update_destination(request: Request) -> JSONResponse:
    """Change name, enabled, proxy, event_map (merged), or the access token (which also clears
    an unhealthy flag: the usual fix for an expired token)."""
    ctx = await operator(request)
    space_id = path_id(request)
    destination_id = path_id(request, "destination_id", "destination")
    changes = await read_json_object(request)
    updated = await destinations.update_destination(
        OPERATOR, ctx, space_id, destination_id, changes
    )
    return JSONResponse({"ok": True, "destination": destination_json(updated)})


async def test_destination(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    destination_id = path_id(request, "destination_id", "destination")
    body = await read_json_object(request, empty_ok=True)
    code, live = body.get("test_event_code"), body.get("live", False)
    if code is not None and not isinstance(code, str):
        raise field_error("test_event_code", "must be a string")
    if not isinstance(live, bool):
        raise field_error("live", "must be true or false")
    result = await destinations.test_destination(
        OPERATOR, ctx, space_id, destination_id, test_event_code=code, live=live
    )
    return JSONResponse(probe_json(result))


async def list_outbox(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    q = request.query_params
    rows = await deliveries.list_deliveries(
        OPERATOR, ctx, space_id, status=q.get("status") or None,
        destination_id=_optional_int(q.get("destination"), "destination"),
        limit=min(_optional_int(q.get("limit"), "limit") or 100, MAX_LISTED),
    )  # fmt: skip
    counts = await deliveries.delivery_counts(OPERATOR, ctx, space_id)
    return JSONResponse(
        {"ok": True, "counts": counts, "deliveries": [delivery_json(r) for r in rows]}
    )


async def replay_outbox(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request, empty_ok=True)
    status = body.get("status", "failed_permanently")
    if not isinstance(status, str):
        raise field_error("status", f"must be one of {', '.join(deliveries.STATUSES)}")
    destination_id = body.get("destination_id")
    if destination_id is not None and (isinstance(destination_id, bool)
                                       or not isinstance(destination_id, int)):  # fmt: skip
        raise field_error("destination_id", "must be an integer")
    count = await deliveries.replay(
        OPERATOR, ctx, space_id, status=status, destination_id=destination_id
    )
    return JSONResponse({"ok": True, "replayed": count})


def _optional_int(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    number = whole_number(raw)
    if number is None:
        raise field_error(field, "must be a positive integer (at most 18 digits)")
    return number


routes = [
    Route("/admin/spaces/{space_id}/destinations", list_destinations, methods=["GET"]),
    Route("/admin/spaces/{space_id}/destinations", create_destination, methods=["POST"]),
    Route("/admin/spaces/{space_id}/destinations/{destination_id}", update_destination,
          methods=["PATCH"]),
    Route("/admin/spaces/{space_id}/destinations/{destination_id}/test", test_destination,
          methods=["POST"]),
    Route("/admin/spaces/{space_id}/outbox", list_outbox, methods=["GET"]),
    Route("/admin/spaces/{space_id}/outbox/replay", replay_outbox, methods=["POST"]),
]  # fmt: skip
