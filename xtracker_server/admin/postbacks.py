"""``/admin/spaces/{space_id}/postbacks``: the postback log, the space's aliases, and
ready-to-paste postback URLs per network."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._spaces import admin_space, no_such_token
from xtracker_server.auth import now_ms
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.postback_urls import (
    EVENT_CHOICES,
    NETWORKS,
    TOKEN_PLACEHOLDER,
    postback_urls,
)
from xtracker_server.domain.postbacks import (
    Aliases,
    check_param_alias,
    check_param_name,
    check_status_alias,
    check_status_name,
    effective_aliases,
)
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.state import AppState
from xtracker_server.store import postbacks as store
from xtracker_server.store import spaces
from xtracker_server.views import postback_aliases_json, postback_log_json, postback_urls_json


async def list_postbacks(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    outcome = request.query_params.get("outcome") or None
    if outcome is not None and outcome not in store.OUTCOMES:
        raise field_error("outcome", f"must be one of {', '.join(store.OUTCOMES)}")
    limit = whole_number(request.query_params.get("limit") or "100")
    if not limit:
        raise field_error("limit", "must be a positive integer (at most 18 digits)")
    rows = await state.store.read(store.list_log, space_id, outcome=outcome, limit=min(limit, 1000))
    return JSONResponse({"ok": True, "postbacks": [postback_log_json(r) for r in rows]})


async def get_aliases(request: Request) -> JSONResponse:
    state, space_id = await admin_space(request)
    aliases = await _aliases(state, space_id)
    return JSONResponse({"ok": True, **postback_aliases_json(aliases)})


async def change_aliases(request: Request) -> JSONResponse:
    """Body ``{"statuses": {ALIAS: EVENT | "ignore" | null}, "params": {NAME: FIELD | null}}``;
    merged into the current aliases, null removes one."""
    state, space_id = await admin_space(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"statuses", "params"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (statuses, params)")
    current = await _aliases(state, space_id)
    changes: list[tuple[str, str, str | None]] = []
    for kind, key in (("status", "statuses"), ("param", "params")):
        given = body.get(key, {})
        if not isinstance(given, dict):
            raise field_error(key, "must be an object of alias: target (null removes one)")
        for alias, target in given.items():
            changes.append(_checked(kind, key, alias, target, current))
    await state.store.set_postback_aliases(space_id, changes, now_ms())
    state.postback_aliases.forget(space_id)
    return JSONResponse({"ok": True, **postback_aliases_json(await _aliases(state, space_id))})


def _checked(
    kind: str, key: str, alias: str, target: object, current: Aliases
) -> tuple[str, str, str | None]:
    table = current.statuses if kind == "status" else current.params
    try:
        if target is None:
            name = check_status_name(alias) if kind == "status" else check_param_name(alias)
            if name not in table:
                raise ValueError(f"{name!r} is not an alias of this space")
            return kind, name, None
        if not isinstance(target, str):
            raise ValueError(f"{alias!r}: the target must be a string or null")
        check = check_status_alias if kind == "status" else check_param_alias
        name, checked = check(alias, target)
        return kind, name, checked
    except ValueError as exc:
        raise field_error(f"{key}.{alias}", str(exc)) from None


async def make_urls(request: Request) -> JSONResponse:
    """Body ``{"network", "event" (default all), "token" or "rotate": true}``. A given token is
    checked against the space's; ``rotate`` issues a new ingest token (the old one keeps
    working 24 hours) and prints it in the URLs; neither gives a placeholder."""
    state, space_id = await admin_space(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"network", "event", "token", "rotate"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (network, event, token, rotate)")
    network, event = body.get("network"), body.get("event", "all")
    if network not in NETWORKS:
        raise field_error("network", f"must be one of {', '.join(NETWORKS)}")
    if event not in EVENT_CHOICES:
        raise field_error("event", f"must be one of {', '.join(EVENT_CHOICES)}")
    token, rotate = body.get("token"), body.get("rotate", False)
    if not isinstance(rotate, bool):
        raise field_error("rotate", "must be true or false")
    if token is not None and (not isinstance(token, str) or rotate):
        raise field_error("token", "must be a string, and not given with rotate")
    source = "placeholder"
    if rotate:
        try:
            rotation = await state.store.write(
                spaces.rotate_credential, space_id, CredentialKind.INGEST, now_ms()
            )
        except spaces.NoSuchToken as exc:
            raise no_such_token(space_id, str(exc)) from None
        assert rotation is not None
        token, source = rotation.secret, "rotated"
    elif token is not None:
        token = token.strip()
        if not await state.store.read(store.is_ingest_token_of, space_id, token, now_ms()):
            raise field_error("token", f"is not a live ingest token of space {space_id}")
        source = "given"
    urls = postback_urls(str(network), state.settings.base_url, token or TOKEN_PLACEHOLDER,
                         str(event))  # fmt: skip
    return JSONResponse({"ok": True, **postback_urls_json(space_id, urls, source)})


async def _aliases(state: AppState, space_id: int) -> Aliases:
    return effective_aliases(await state.store.read(store.alias_rows, space_id))


routes = [
    Route("/admin/spaces/{space_id}/postbacks", list_postbacks, methods=["GET"]),
    Route("/admin/spaces/{space_id}/postbacks/aliases", get_aliases, methods=["GET"]),
    Route("/admin/spaces/{space_id}/postbacks/aliases", change_aliases, methods=["PATCH"]),
    Route("/admin/spaces/{space_id}/postbacks/urls", make_urls, methods=["POST"]),
]
