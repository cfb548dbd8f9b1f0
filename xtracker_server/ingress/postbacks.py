"""``GET /e`` and ``POST /e``: postbacks from partner networks (ingest token).

The network's words are mapped with the space's aliases (``domain/postbacks.py``). Every call
whose token names a space is written to the postback log, whatever its outcome: an accepted
event in the same operation as its inbox row (one commit), a refusal on its own."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.clock import now_ms
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.entities import Credential, LogEntry
from xtracker_server.domain.macros import UnfilledMacroError
from xtracker_server.domain.postbacks import PostbackProblem, clip, mask_token, read_postback
from xtracker_server.domain.query import parse_query
from xtracker_server.domain.visitors import client_ip
from xtracker_server.errors import ApiError, field_error, unfilled_macro_error
from xtracker_server.ingress._http import (
    JSON,
    parse_json_object,
    query_params,
    read_body,
    validate,
)
from xtracker_server.ingress.events import check_space_currency, event_answer, event_draft
from xtracker_server.state import AppState, app_state
from xtracker_wire import EventIn

log = logging.getLogger("xtracker.postbacks")

_HOW = "add ?token=<space ingest token>"
_HOW_POST = "add ?token=<space ingest token> to the URL, or token to the body"
#: How much of a query string or body the log keeps.
MAX_LOGGED_CHARS = 2048


async def get_e(request: Request) -> JSONResponse:
    state = app_state(request)
    params = query_params(request)
    token = params.get("token")
    cred = await state.auth.credential(request, token, CredentialKind.INGEST, _HOW)
    entry = _log_entry(request, cred, token, None)
    return JSON(await _record(state, params, entry))


async def post_e(request: Request) -> JSONResponse:
    """A form or JSON body, with the token in the query (checked before the body is read)
    or in the body. Query parameters win over body fields of the same name."""
    state = app_state(request)
    query = query_params(request)
    token = query.get("token")
    auth = state.auth
    cred = await auth.credential(request, token, CredentialKind.INGEST, _HOW) if token else None
    raw = b""
    try:
        raw = await read_body(request)
        body = _parse_body(raw, request.headers.get("content-type", ""))
    except ApiError as exc:
        if cred is not None:
            shown = raw.decode("utf-8", "replace") if raw else None
            await _log_refusal(state, _log_entry(request, cred, token, shown), exc)
        raise
    if cred is None:
        given = body.get("token")
        token = given.strip() if isinstance(given, str) else None
        cred = await auth.credential(request, token, CredentialKind.INGEST, _HOW_POST)
    entry = _log_entry(request, cred, token, raw.decode("utf-8", "replace"))
    return JSON(await _record(state, {**body, **query}, entry))


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if kind == "application/json" or (
        kind != "application/x-www-form-urlencoded" and raw.lstrip().startswith(b"{")
    ):
        return parse_json_object(raw)
    if kind in ("", "application/x-www-form-urlencoded", "text/plain"):
        return dict(parse_query(raw.decode("utf-8", "replace")))
    raise ApiError(
        400,
        "malformed",
        f"cannot read a {kind} body: send application/x-www-form-urlencoded or JSON",
    )


async def _record(state: AppState, params: dict[str, Any], entry: LogEntry) -> dict[str, Any]:
    try:
        aliases = await state.postback_aliases.get(entry.space_id)
        try:
            read = read_postback(params, aliases)
        except PostbackProblem as exc:
            raise field_error(exc.field, exc.problem) from None
        except UnfilledMacroError as exc:
            raise unfilled_macro_error(exc.found) from None
        if read.ignored:
            await state.store.log_postback(
                replace(
                    entry,
                    outcome="ignored",
                    status=clip(read.status, 64),
                    uid=clip(_text(read.data.get("uid")), 128),
                    eid=clip(_text(read.data.get("eid")), 256),
                ),
            )
            return {
                "ok": True,
                "status": "ignored",
                "detail": f"status {read.status!r} is ignored in this space: logged, not counted",
            }
        event = validate(EventIn, read.data, renames=read.renames)
        await check_space_currency(
            state, entry.space_id, event.currency, field=read.renames.get("currency", "currency")
        )
    except ApiError as exc:
        await _log_refusal(state, entry, exc)
        raise
    draft, warnings = event_draft(entry.space_id, event, source="postback")
    entry = replace(
        entry,
        status=clip(read.status, 64),
        event=draft.event,
        value=draft.value,
        currency=draft.currency,
        eid=draft.eid,
        test=draft.test,
    )
    outcome, _ = await state.store.record_postback(draft, entry)
    return event_answer(state, outcome, warnings, test=draft.test)


async def _log_refusal(state: AppState, entry: LogEntry, exc: ApiError) -> None:
    """Log a refused postback. The answer stays the refusal even if this write fails."""
    try:
        await state.store.log_postback(
            replace(entry, outcome="rejected", error=exc.error, detail=clip(exc.detail, 1000))
        )
    except Exception as failure:
        log.warning("could not log a refused postback of space %s: %s", entry.space_id, failure)


def _log_entry(request: Request, cred: Credential, token: str | None, body: str | None) -> LogEntry:
    state = app_state(request)
    query = request.scope["query_string"].decode("utf-8", "replace")
    assert cred.space_id is not None  # an ingest token's
    return LogEntry(
        space_id=cred.space_id,
        token_name=cred.name,
        at_ms=now_ms(),
        ip=client_ip(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            state.trusted_proxies,
        ),
        method=request.method,
        query=clip(mask_token(query, token), MAX_LOGGED_CHARS) or "",
        body=clip(mask_token(body, token), MAX_LOGGED_CHARS) if body else None,
    )


def _text(raw: object) -> str | None:
    if raw is None or isinstance(raw, (dict, list)):
        return None
    return str(raw).strip() or None
