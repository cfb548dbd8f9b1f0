"""``/admin/spaces``: create and list spaces, rotate their credentials and end rotated-out
ones at once, their bind setting."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._spaces import admin_space, no_such_token
from xtracker_server.clock import now_ms
from xtracker_server.domain.credentials import CredentialKind, check_token_name
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import ApiError, field_error
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.state import app_state
from xtracker_server.store import binds, spaces
from xtracker_server.views import (
    new_space_json,
    revocation_json,
    rotation_json,
    space_json,
    token_binds_json,
)


class SpaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name", mode="before")
    @classmethod
    def _strip(cls, raw: object) -> object:
        return raw.strip() if isinstance(raw, str) else raw


class Rotate(BaseModel):
    """Which credential: the bearer, or an ingest token (``name``, by default ``default``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bearer", "ingest"] = "bearer"
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, raw: str | None) -> str | None:
        return None if raw is None else check_token_name(raw)

    def credential_kind(self) -> CredentialKind:
        if self.name is not None and self.kind != "ingest":
            raise field_error("name", 'only ingest tokens have names: add "kind": "ingest"')
        return CredentialKind(self.kind)


async def list_spaces(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    found = await state.store.read(spaces.list_spaces)
    return JSONResponse({"ok": True, "spaces": [space_json(s) for s in found]})


async def create_space(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    req = validate(SpaceCreate, await read_json_object(request))
    created = await state.store.write(spaces.create_space, req.name, now_ms())
    return JSONResponse({"ok": True, **new_space_json(created)}, status_code=201)


async def rotate_key(request: Request) -> JSONResponse:
    state = app_state(request)
    await state.auth.admin(request)
    space_id = _space_id(request)
    req = validate(Rotate, await read_json_object(request, empty_ok=True))

    try:
        rotation = await state.store.write(
            spaces.rotate_credential, space_id, req.credential_kind(), now_ms(), req.name
        )
    except spaces.NoSuchToken as exc:
        raise no_such_token(space_id, str(exc)) from None
    if rotation is None:
        raise ApiError(404, "not_found", f"no space {space_id}")
    return JSONResponse({"ok": True, **rotation_json(rotation)})


class TokenBinds(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token_binds: bool


async def get_token_binds(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    allowed = await state.store.read(binds.token_binds_allowed, space_id)
    return JSONResponse({"ok": True, **token_binds_json(space_id, allowed)})


async def set_token_binds(request: Request) -> JSONResponse:
    """Body ``{"token_binds": false}``: refuse ``GET /bind`` in this space (403), or take it
    again with ``true`` (domain/binds.py)."""
    state, space_id = await admin_space(request)
    req = validate(TokenBinds, await read_json_object(request))
    await state.store.write(binds.set_token_binds, space_id, req.token_binds)
    return JSONResponse({"ok": True, **token_binds_json(space_id, req.token_binds)})


async def revoke_key(request: Request) -> JSONResponse:
    """End now the rotated-out secrets of the bearer or an ingest token (a leak): they stop
    working here at once, in other processes within ``credential_cache_s``."""
    state = app_state(request)
    await state.auth.admin(request)
    space_id = _space_id(request)
    req = validate(Rotate, await read_json_object(request, empty_ok=True))
    revocation = await state.store.write(
        spaces.revoke_previous, space_id, req.credential_kind(), now_ms(), req.name
    )
    if revocation is None:
        raise ApiError(404, "not_found", f"no space {space_id}")
    state.auth.forget(revocation.hashes)
    return JSONResponse({"ok": True, **revocation_json(revocation)})


def _space_id(request: Request) -> int:
    raw = request.path_params["space_id"]
    space_id = whole_number(raw)
    if space_id is None:
        raise ApiError(404, "not_found", f"no space {raw[:40]}")
    return space_id


routes = [
    Route("/admin/spaces", list_spaces, methods=["GET"]),
    Route("/admin/spaces", create_space, methods=["POST"]),
    Route("/admin/spaces/{space_id}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/spaces/{space_id}/token-binds", get_token_binds, methods=["GET"]),
    Route("/admin/spaces/{space_id}/token-binds", set_token_binds, methods=["PATCH"]),
    Route("/admin/spaces/{space_id}/revoke", revoke_key, methods=["POST"]),
]
