"""``/admin/spaces``: create and list spaces, rotate their credentials and end rotated-out
ones at once, their bind setting."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.spaces import MAX_SPACE_NAME
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.services import OPERATOR, credentials, spaces
from xtracker_server.views import (
    new_space_json,
    revocation_json,
    rotation_json,
    space_json,
    token_binds_json,
)


class SpaceCreate(BaseModel):
    """The name's rule (trimmed, 1 to 100 characters) is the service's; the schema says it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(json_schema_extra={"minLength": 1, "maxLength": MAX_SPACE_NAME})


class Rotate(BaseModel):
    """Which credential: the bearer, or an ingest token (``name``, by default ``default``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bearer", "ingest"] = "bearer"
    name: str | None = None


async def list_spaces(request: Request) -> JSONResponse:
    ctx = await operator(request)
    found = await spaces.list_spaces(OPERATOR, ctx)
    return JSONResponse({"ok": True, "spaces": [space_json(s) for s in found]})


async def create_space(request: Request) -> JSONResponse:
    ctx = await operator(request)
    req = validate(SpaceCreate, await read_json_object(request))
    created = await spaces.create_space(OPERATOR, ctx, req.name)
    return JSONResponse({"ok": True, **new_space_json(created)}, status_code=201)


async def rotate_key(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    req = validate(Rotate, await read_json_object(request, empty_ok=True))
    rotation = await credentials.rotate(OPERATOR, ctx, space_id, CredentialKind(req.kind), req.name)
    return JSONResponse({"ok": True, **rotation_json(rotation)})


class TokenBinds(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token_binds: bool


async def get_token_binds(request: Request) -> JSONResponse:
    ctx = await operator(request)
    space_id = path_id(request)
    allowed = await spaces.token_binds(OPERATOR, ctx, space_id)
    return JSONResponse({"ok": True, **token_binds_json(space_id, allowed)})


async def set_token_binds(request: Request) -> JSONResponse:
    """Body ``{"token_binds": false}``: refuse ``GET /bind`` in this space (403), or take it
    again with ``true`` (domain/binds.py)."""
    ctx = await operator(request)
    space_id = path_id(request)
    req = validate(TokenBinds, await read_json_object(request))
    allowed = await spaces.set_token_binds(OPERATOR, ctx, space_id, req.token_binds)
    return JSONResponse({"ok": True, **token_binds_json(space_id, allowed)})


async def revoke_key(request: Request) -> JSONResponse:
    """End now the rotated-out secrets of the bearer or an ingest token (a leak): they stop
    working here at once, in other processes within ``credential_cache_s``."""
    ctx = await operator(request)
    space_id = path_id(request)
    req = validate(Rotate, await read_json_object(request, empty_ok=True))
    revocation = await credentials.revoke_previous(
        OPERATOR, ctx, space_id, CredentialKind(req.kind), req.name
    )
    return JSONResponse({"ok": True, **revocation_json(revocation)})


routes = [
    Route("/admin/spaces", list_spaces, methods=["GET"]),
    Route("/admin/spaces", create_space, methods=["POST"]),
    Route("/admin/spaces/{space_id}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/spaces/{space_id}/token-binds", get_token_binds, methods=["GET"]),
    Route("/admin/spaces/{space_id}/token-binds", set_token_binds, methods=["PATCH"]),
    Route("/admin/spaces/{space_id}/revoke", revoke_key, methods=["POST"]),
]
