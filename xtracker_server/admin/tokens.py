"""``/admin/spaces/{space_id}/tokens``: a space's named ingest tokens, one per partner network,
each revocable on its own. A token's secret is shown once, when it is added."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.services import OPERATOR, credentials
from xtracker_server.views import ingest_token_json, new_token_json, revocation_json


class TokenAdd(BaseModel):
    """The name's rule (``check_token_name``) is the service's."""

    model_config = ConfigDict(extra="forbid")
    name: str


async def list_tokens(request: Request) -> JSONResponse:
    ctx = await operator(request)
    found = await credentials.list_ingest_tokens(OPERATOR, ctx, path_id(request))
    return JSONResponse({"ok": True, "tokens": [ingest_token_json(t) for t in found]})


async def add_token(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    req = validate(TokenAdd, await read_json_object(request))
    token = await credentials.add_ingest_token(OPERATOR, ctx, space_id, req.name)
    return JSONResponse({"ok": True, **new_token_json(token)}, status_code=201)


async def revoke_token(request: Request) -> JSONResponse:
    """End every secret of the named token now (rotated-out ones too). The postback URLs that
    carry it answer 401 at once here, in other processes within ``credential_cache_s``."""
    ctx = await operator(request)
    space_id = path_id(request)
    revocation = await credentials.revoke_ingest_token(
        OPERATOR, ctx, space_id, request.path_params["name"]
    )
    return JSONResponse({"ok": True, **revocation_json(revocation)})


routes = [
    Route("/admin/spaces/{space_id}/tokens", list_tokens, methods=["GET"]),
    Route("/admin/spaces/{space_id}/tokens", add_token, methods=["POST"]),
    Route("/admin/spaces/{space_id}/tokens/{name}", revoke_token, methods=["DELETE"]),
]
