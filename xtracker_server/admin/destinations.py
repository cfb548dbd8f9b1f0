"""``/admin/spaces/{space_id}/destinations`` and ``…/outbox``: where events go, and how their
deliveries are doing."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_client import CANONICAL_EVENTS
from xtracker_server.admin._spaces import admin_space
from xtracker_server.clock import now_ms
from xtracker_server.delivery.guard import address_problem
from xtracker_server.delivery.probe import ProbeRefused, probe
from xtracker_server.domain.destinations import (
    DestinationInput,
    check_event_map,
    prepare_destination,
)
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import ApiError, field_error, invalid
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.state import AppState
from xtracker_server.store import destinations as store
from xtracker_server.store import outbox
from xtracker_server.views import delivery_json, destination_json, probe_json


async def list_destinations(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    found = await state.store.read(store.list_destinations, space_id)
    return JSONResponse({"ok": True, "destinations": [destination_json(d) for d in found]})


async def create_destination(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    inp = validate(DestinationInput, await read_json_object(request))
    try:
        prepared = prepare_destination(inp)
    except ValidationError as exc:
        raise invalid(exc) from None
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise field_error(field, problem) from None
    for field, url in inp.guarded_urls():
        await check_address(state, url, field)
    created = await state.store.write(store.create_destination, space_id, prepared, now_ms())
    assert created is not None
    body = {"ok": True, "id": created.id, "kind": created.kind.value,
            "secret": prepared.shown_secret}  # fmt: skip
    return JSONResponse(body, status_code=201)


async def update_destination(request: Request) -> JSONResponse:
    """Change name, enabled, proxy, event_map (merged), or the access token (which also clears
    an unhealthy flag: the usual fix for an expired token)."""
    state, space_id = await admin_space(request)
    destination_id = _int_param(request, "destination_id")
    body = await read_json_object(request)
    allowed = {"name", "enabled", "proxy", "event_map", "access_token"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise field_error(
            unknown[0], f"cannot be changed here (one of {', '.join(sorted(allowed))})"
        )
    current = await state.store.read(store.get_destination, space_id, destination_id)
    if current is None:
        raise ApiError(404, "not_found", f"no destination {destination_id} in space {space_id}")
    changes: dict[str, Any] = {}
    if "name" in body:
        if not isinstance(body["name"], str) or not 0 < len(body["name"].strip()) <= 100:
            raise field_error("name", "must be 1 to 100 characters")
        changes["name"] = body["name"].strip()
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise field_error("enabled", "must be true or false")
        changes["enabled"] = body["enabled"]
        if body["enabled"]:
            changes["health_reason"] = None
    if "proxy" in body:
        try:
            changes["proxy"] = DestinationInput(kind=current.kind, proxy=body["proxy"]).proxy
        except ValidationError as exc:
            raise invalid(exc) from None
        await check_address(state, changes["proxy"], "proxy")
    if "event_map" in body:
        changes["event_map"] = _merged_map(current.event_map, body["event_map"])
    if "access_token" in body:
        token = body["access_token"]
        if current.kind.value != "fb_capi" or not isinstance(token, str) or not token.strip():
            raise field_error("access_token", "only a fb_capi destination has one; a string")
        changes.update(secret=token.strip(), health_reason=None)
    updated = await state.store.write(
        store.update_destination, space_id, destination_id, now_ms(), **changes
    )
    assert updated is not None
    if changes.get("health_reason", "unchanged") is None:
        state.wake_worker()
    return JSONResponse({"ok": True, "destination": destination_json(updated)})


async def test_destination(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    destination_id = _int_param(request, "destination_id")
    dest = await state.store.read(store.get_destination, space_id, destination_id)
    if dest is None:
        raise ApiError(404, "not_found", f"no destination {destination_id} in space {space_id}")
    body = await read_json_object(request, empty_ok=True)
    code, live = body.get("test_event_code"), body.get("live", False)
    if code is not None and not isinstance(code, str):
        raise field_error("test_event_code", "must be a string")
    if not isinstance(live, bool):
        raise field_error("live", "must be true or false")
    try:
        result = await probe(dest, state.settings, test_event_code=code, live=live)
    except ProbeRefused as exc:
        raise field_error("test_event_code", str(exc)) from None
    return JSONResponse(probe_json(result))


async def list_outbox(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in outbox.STATUSES:
        raise field_error("status", f"must be one of {', '.join(outbox.STATUSES)}")
    destination_id = _optional_int(request.query_params.get("destination"), "destination")
    limit = _optional_int(request.query_params.get("limit"), "limit") or 100
    rows = await state.store.read(
        outbox.list_deliveries, space_id, status=status, destination_id=destination_id,
        limit=min(limit, 1000),
    )  # fmt: skip
    counts = await state.store.read(outbox.status_counts, space_id)
    return JSONResponse(
        {"ok": True, "counts": counts, "deliveries": [delivery_json(r) for r in rows]}
    )


async def replay_outbox(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    body = await read_json_object(request, empty_ok=True)
    status = body.get("status", "failed_permanently")
    if status not in outbox.STATUSES:
        raise field_error("status", f"must be one of {', '.join(outbox.STATUSES)}")
    destination_id = body.get("destination_id")
    if destination_id is not None and (isinstance(destination_id, bool)
                                       or not isinstance(destination_id, int)):  # fmt: skip
        raise field_error("destination_id", "must be an integer")
    count = await state.store.write(
        outbox.replay, space_id, status=status, destination_id=destination_id, now_ms=now_ms()
    )
    if count:
        state.wake_worker()
    return JSONResponse({"ok": True, "replayed": count})


async def check_address(state: AppState, url: str | None, field: str) -> None:
    """Refuse a destination URL or proxy whose host is, or resolves to, an address that is not
    public (the address guard) unless XTRACKER_ALLOW_PRIVATE_DESTINATIONS is on. The worker
    checks again at every send."""
    if url is None or state.settings.allow_private_destinations:
        return
    problem = await address_problem(url)
    if problem:
        raise field_error(field, problem)


def _merged_map(current: dict[str, str], raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise field_error("event_map", f"must map events ({', '.join(CANONICAL_EVENTS)}) to names")
    try:
        return check_event_map({**current, **raw})
    except ValueError as exc:
        raise field_error("event_map", str(exc)) from None


def _int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    number = whole_number(raw)
    if number is None:
        raise ApiError(404, "not_found", f"no {name.replace('_id', '')} {raw[:40]}")
    return number


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
