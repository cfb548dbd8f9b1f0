"""``/admin/spaces/{space_id}/costs``, ``…/costs/import``, ``…/rates`` and
``…/reports/costs``: a space's ad costs, the operator's exchange rates, and cost and ROI
(services/costs.py; docs/api.md#costs-and-exchange-rates, docs/reports.md#costs).

Writes take the admin token; reads also the space's own bearer secret (the services say so).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id, reader
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import ApiError, field_error
from xtracker_server.ingress._http import parse_json_object, read_body, read_json_object
from xtracker_server.services import OPERATOR
from xtracker_server.services import costs as service

#: The largest JSON body of ``POST …/costs`` (1000 costs of about 200 bytes each).
MAX_COSTS_BYTES = 256 * 1024
#: The largest CSV an import takes (100,000 rows of an Ads Manager export, with room).
MAX_IMPORT_BYTES = 32 * 1024 * 1024


async def list_costs(request: Request) -> JSONResponse:
    who, ctx = await reader(request)
    space_id = path_id(request)
    q = request.query_params
    found = await service.list_costs(
        who, ctx, space_id,
        from_day=q.get("from") or None, to_day=q.get("to") or None, level=q.get("level") or None,
    )  # fmt: skip
    return JSONResponse(
        {"ok": True, "space_id": space_id, "costs": [service.cost_json(e) for e in found]}
    )


async def post_costs(request: Request) -> JSONResponse:
    """Body ``{"costs": [{"day", "level", "id", "amount", "currency", "name"?}, …]}``."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = parse_json_object(await read_body(request, limit=MAX_COSTS_BYTES))
    unknown = sorted(set(body) - {"costs"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (costs)")
    items = body.get("costs")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise field_error("costs", "must be a list of objects such as"
                          ' {"day": "2026-11-01", "level": "campaign", "id": "120",'
                          ' "amount": "12.50", "currency": "USD"}')  # fmt: skip
    stored = await service.set_costs(OPERATOR, ctx, space_id, items)
    return JSONResponse(
        {"ok": True, "space_id": space_id, "new": stored.new, "replaced": stored.replaced}
    )


async def delete_cost(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    q = request.query_params
    for name in ("day", "level", "id"):
        if not q.get(name):
            raise field_error(name, "is required (day, level and id name the cost)")
    await service.delete_cost(
        OPERATOR, ctx, space_id, day=q["day"], level=q["level"], object_id=q["id"]
    )
    return JSONResponse({"ok": True, "space_id": space_id, "deleted": 1})


async def import_costs(request: Request) -> JSONResponse:
    """Body: the CSV file an Ads Manager export wrote (UTF-8, with or without a BOM)."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_body(request, limit=MAX_IMPORT_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed", "the body is not UTF-8 text: send the CSV file") from None
    done = await service.import_costs(OPERATOR, ctx, space_id, text)
    return JSONResponse(
        {
            "ok": True,
            "space_id": space_id,
            "level": done.level.value,
            "new": done.new,
            "replaced": done.replaced,
            "skipped": done.skipped,
        }
    )


async def list_rates(request: Request) -> JSONResponse:
    who, ctx = await reader(request)
    space_id = path_id(request)
    found = await service.rates(who, ctx, space_id)
    return JSONResponse(
        {"ok": True, "space_id": space_id, "rates": [service.rate_json(r) for r in found]}
    )


async def put_rate(request: Request) -> JSONResponse:
    """Body ``{"from": "EUR", "to": "USD", "day": "2026-11-01", "rate": "1.0832"}``."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    fields = ("from", "to", "day", "rate")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise field_error(unknown[0], f"is not a known field ({', '.join(fields)})")
    for name in fields:
        if not isinstance(body.get(name), str):
            raise field_error(name, 'is required, as a string ("1.0832", "2026-11-01", "EUR")')
    rate = await service.set_rate(
        OPERATOR, ctx, space_id, base=body["from"], quote=body["to"], day=body["day"],
        rate=body["rate"],
    )  # fmt: skip
    return JSONResponse({"ok": True, "space_id": space_id, **service.rate_json(rate)})


def _days(request: Request) -> int | None:
    raw = request.query_params.get("days") or None
    days = None if raw is None else whole_number(raw)
    if raw is not None and days is None:
        raise field_error("days", "must be a positive whole number")
    return days


async def costs_report(request: Request) -> JSONResponse:
    who, ctx = await reader(request)
    q = request.query_params
    params: dict[str, Any] = {
        "days": _days(request), "from_": q.get("from") or None, "to": q.get("to") or None,
        "tz": q.get("tz") or None, "level": q.get("level") or None,
    }  # fmt: skip
    found = await service.costs_report(
        who, ctx, path_id(request), currency=q.get("currency") or "USD", **params
    )
    return JSONResponse({"ok": True, **found})


routes = [
    Route("/admin/spaces/{space_id}/costs", list_costs, methods=["GET"]),
    Route("/admin/spaces/{space_id}/costs", post_costs, methods=["POST"]),
    Route("/admin/spaces/{space_id}/costs", delete_cost, methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/costs/import", import_costs, methods=["POST"]),
    Route("/admin/spaces/{space_id}/rates", list_rates, methods=["GET"]),
    Route("/admin/spaces/{space_id}/rates", put_rate, methods=["PUT"]),
    Route("/admin/spaces/{space_id}/reports/costs", costs_report, methods=["GET"]),
]
