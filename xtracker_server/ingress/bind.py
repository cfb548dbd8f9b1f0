"""``POST /bind`` (bearer, JSON) and ``GET /bind`` (ingest token): uid -> Telegram user."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_client import BindIn
from xtracker_server.auth import now_ms
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.errors import ApiError
from xtracker_server.ingress._http import query_params, read_json_object, validate
from xtracker_server.state import app_state
from xtracker_server.store.binds import bind


async def post_bind(request: Request) -> JSONResponse:
    space_id = await app_state(request).auth.bearer_space(request)
    return await _bind(request, space_id, validate(BindIn, await read_json_object(request)))


async def get_bind(request: Request) -> JSONResponse:
    params = query_params(request)
    space_id = await app_state(request).auth.space(
        request, params.get("token"), CredentialKind.INGEST, "add ?token=<space ingest token>"
    )
    data: dict[str, Any] = {k: params[k] for k in ("uid", "tg_id") if k in params}
    return await _bind(request, space_id, validate(BindIn, data))


async def _bind(request: Request, space_id: int, req: BindIn) -> JSONResponse:
    outcome = await app_state(request).store.write(bind, space_id, req.uid, req.tg_id, now_ms())
    if outcome.conflict_tg_id is not None:
        raise ApiError(
            409,
            "uid_already_bound",
            f"uid {req.uid!r} is already bound to another Telegram user; the first binding"
            " stays (one click belongs to one user)",
        )
    return JSONResponse(
        {
            "ok": True,
            "matched": outcome.matched,
            "status": "bound" if outcome.created else "unchanged",
            "attributed_events": outcome.attributed,
        }
    )
