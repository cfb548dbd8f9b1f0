"""The space a ``/admin/spaces/{space_id}/…`` path names."""

from __future__ import annotations

from starlette.requests import Request

from xtracker_server.domain.query import parse_id
from xtracker_server.errors import ApiError
from xtracker_server.state import AppState, app_state
from xtracker_server.store import spaces


async def existing_space(state: AppState, request: Request) -> int:
    """The id of the path's space; 404 when there is no such space."""
    raw = request.path_params["space_id"]
    space_id = parse_id(raw)
    space = None if space_id is None else await state.store.read(spaces.get_space, space_id)
    if space is None:
        raise ApiError(404, "not_found", f"no space {raw}")
    return space.id


async def admin_space(request: Request) -> tuple[AppState, int]:
    """The operator's request (admin token, or 401) on an existing space (or 404)."""
    state = app_state(request)
    await state.auth.admin(request)
    return state, await existing_space(state, request)
