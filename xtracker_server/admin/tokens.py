"""``/admin/spaces/{space_id}/tokens``: a space's named ingest tokens, one per partner network,
each revocable on its own. A token's secret is shown once, when it is added."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._spaces import admin_space, no_such_token
from xtracker_server.clock import now_ms
from xtracker_server.domain.credentials import check_token_name
from xtracker_server.errors import ApiError
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.store import spaces
from xtracker_server.store.postbacks import ingest_tokens
from xtracker_server.views import ingest_token_json, new_token_json, revocation_json


class TokenAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, raw: str) -> str:
        return check_token_name(raw)


async def list_tokens(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    found = await state.store.read(ingest_tokens, space_id, now_ms())
    return JSONResponse({"ok": True, "tokens": [ingest_token_json(t) for t in found]})


async def add_token(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    req = validate(TokenAdd, await read_json_object(request))
    try:
        token = await state.store.write(spaces.add_ingest_token, space_id, req.name, now_ms())
    except spaces.TokenNameTaken:
        raise ApiError(
            409,
            "token_name_taken",
            f"space {space_id} already has an ingest token named {req.name!r}: pick another"
            f" name, or revoke it first (DELETE /admin/spaces/{space_id}/tokens/{req.name})",
        ) from None
    if token is None:  # the space was deleted meanwhile
        raise ApiError(404, "not_found", f"no space {space_id}")
    return JSONResponse({"ok": True, **new_token_json(token)}, status_code=201)


async def revoke_token(request: Request) -> JSONResponse:
    """End every secret of the named token now (rotated-out ones too). The postback URLs that
    carry it answer 401 at once here, in other processes within ``credential_cache_s``."""
    state, space_id = await admin_space(request)
    name = request.path_params["name"].strip().lower()
    revocation = await state.store.write(spaces.revoke_ingest_token, space_id, name, now_ms())
    if revocation is None:
        raise ApiError(404, "not_found", f"no space {space_id}")
    if not revocation.revoked:
        raise no_such_token(space_id, name)
    state.auth.forget(revocation.hashes)
    return JSONResponse({"ok": True, **revocation_json(revocation)})


routes = [
    Route("/admin/spaces/{space_id}/tokens", list_tokens, methods=["GET"]),
    Route("/admin/spaces/{space_id}/tokens", add_token, methods=["POST"]),
    Route("/admin/spaces/{space_id}/tokens/{name}", revoke_token, methods=["DELETE"]),
]
