"""``POST /bind`` (bearer, JSON) and ``GET /bind`` (ingest token): uid -> Telegram user.

Who may replace whom (a token bind never replaces a bind; the bot's bearer bind replaces a
token bind) is ``domain.binds``; the store applies it inside the write."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.clock import now_ms
from xtracker_server.domain.binds import BindAction, BindKind
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.errors import ApiError
from xtracker_server.ingress._http import (
    query_params,
    read_json_object,
    refuse_unfilled_macros,
    validate,
)
from xtracker_server.state import app_state
from xtracker_wire import BindIn


async def post_bind(request: Request) -> JSONResponse:
    space_id = await app_state(request).auth.bearer_space(request)
    data = await read_json_object(request)
    refuse_unfilled_macros(data, BindIn)
    return await _bind(request, space_id, validate(BindIn, data), BindKind.BEARER)


async def get_bind(request: Request) -> JSONResponse:
    params = query_params(request)
    space_id = await app_state(request).auth.space(
        request, params.get("token"), CredentialKind.INGEST, "add ?token=<space ingest token>"
    )
    data: dict[str, Any] = {k: params[k] for k in ("uid", "tg_id") if k in params}
    refuse_unfilled_macros(data, BindIn)
    return await _bind(request, space_id, validate(BindIn, data), BindKind.TOKEN)


async def _bind(request: Request, space_id: int, req: BindIn, kind: BindKind) -> JSONResponse:
    outcome = await app_state(request).store.bind(space_id, req.uid, req.tg_id, now_ms(), kind)
    if outcome.action is BindAction.CONFLICT:
        raise ApiError(
            409,
            "uid_already_bound",
            f"uid {req.uid!r} is already bound to another Telegram user; the first binding"
            " stays (one click belongs to one user)",
        )
    if outcome.action is BindAction.REFUSE:
        raise ApiError(
            403,
            "token_binds_off",
            "this space takes no binds with the ingest token: the bot binds with POST /bind"
            " and its bearer secret (the operator can turn token binds on with"
            f" `xtracker space token-binds --space {space_id} on`)",
        )
    answer: dict[str, Any] = {
        "ok": True,
        "matched": outcome.matched,
        "status": outcome.action.value,
        "bound": outcome.action is not BindAction.IGNORE,
        "attributed_events": outcome.attributed,
    }
    if outcome.action is BindAction.IGNORE:
        answer["detail"] = (
            f"tg_id {req.tg_id} is already bound in this space, and a bind made with the ingest"
            " token never replaces a bind: nothing was stored"
        )
    return JSONResponse(answer)
