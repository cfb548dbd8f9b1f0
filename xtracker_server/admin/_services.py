"""What the admin routes share: who is calling (``operator``, ``reader``), the services'
``Context`` of this server (its ``Listener`` drops the server's caches and wakes its worker),
and the ids a path names.

A route parses its request, calls a service (xtracker_server/services/) and renders the
answer; a service's refusal becomes the API's JSON error (``errors.api_error``)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request

from xtracker_server.auth import bearer_of
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import ApiError
from xtracker_server.services import OPERATOR, Principal, SpaceCredential
from xtracker_server.services.context import Context, Listener
from xtracker_server.state import AppState, app_state

_READER = "send Authorization: Bearer <admin token or the space's bearer secret>"


class ServerListener(Listener):
    """Drops what this server keeps of what a service changed (other servers on the file
    notice within ``credential_cache_s``), and wakes its delivery worker."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    def link_changed(self, slug: str) -> None:
        self._state.links.forget(slug)

    def credentials_ended(self, hashes: Iterable[bytes]) -> None:
        self._state.auth.forget(hashes)

    def space_deleted(self, space_id: int, slugs: Iterable[str]) -> None:
        self._state.auth.forget_space(space_id)
        for slug in slugs:
            self._state.links.forget(slug)

    def aliases_changed(self, space_id: int) -> None:
        self._state.postback_aliases.forget(space_id)

    def sub_ids_changed(self, space_id: int) -> None:
        self._state.sub_ids.forget(space_id)

    def deliveries_due(self) -> None:
        self._state.wake_worker()


def context(state: AppState) -> Context:
    return Context(state.store, state.settings, ServerListener(state))


async def operator(request: Request) -> Context:
    """The operator's request: the admin token, or 401 (429 when the address failed too
    often). The admin API's routes other than reports take no other credential."""
    state = app_state(request)
    await state.auth.admin(request)
    return context(state)


async def reader(request: Request) -> tuple[Principal, Context]:
    """Who reads a space's reports: the operator (the admin token) or a space (its bearer
    secret); 401 (or 429) for neither. Which space it may read is the service's to say."""
    state = app_state(request)
    secret = bearer_of(request)
    if not secret:
        raise state.auth.refused(request, f"missing credential: {_READER}")
    if await state.auth.is_admin(request):
        return OPERATOR, context(state)
    owner = await state.auth.space(request, secret, CredentialKind.BEARER, _READER)
    return SpaceCredential(owner, CredentialKind.BEARER), context(state)


def path_id(request: Request, param: str = "space_id", what: str = "space") -> int:
    """The id in the path (``space_id``, ``destination_id``), or 404: "²" and 2**70 are no
    ids (whole_number)."""
    raw = request.path_params[param]
    found = whole_number(raw)
    if found is None:
        raise ApiError(404, "not_found", f"no {what} {raw[:40]}")
    return found
