"""``/admin/spaces``: create and list spaces, rotate their credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.auth import now_ms
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.query import parse_id
from xtracker_server.errors import ApiError
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.state import app_state
from xtracker_server.store import spaces
from xtracker_server.views import new_space_json, rotation_json, space_json


class SpaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name", mode="before")
    @classmethod
    def _strip(cls, raw: object) -> object:
        return raw.strip() if isinstance(raw, str) else raw


class Rotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["bearer", "ingest"] = "bearer"


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

    rotation = await state.store.write(
        spaces.rotate_credential, space_id, CredentialKind(req.kind), now_ms()
    )
    if rotation is None:
        raise ApiError(404, "not_found", f"no space {space_id}")
    return JSONResponse({"ok": True, **rotation_json(rotation)})


def _space_id(request: Request) -> int:
    raw = request.path_params["space_id"]
    space_id = parse_id(raw)
    if space_id is None:
        raise ApiError(404, "not_found", f"no space {raw}")
    return space_id


routes = [
    Route("/admin/spaces", list_spaces, methods=["GET"]),
    Route("/admin/spaces", create_space, methods=["POST"]),
    Route("/admin/spaces/{space_id}/rotate", rotate_key, methods=["POST"]),
]
