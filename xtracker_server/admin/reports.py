"""``/admin/spaces/{space_id}/reports/…`` and ``…/stream``: the numbers of a space, and its
live stream (docs/reports.md).

Read with the admin token, or with the space's own bearer secret (a bot owner may read their
space's reports; another space's secret gets 403 and nothing else).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xtracker_server import reports
from xtracker_server.admin._spaces import existing_space
from xtracker_server.admin.stream import EventStreamResponse, LiveStreams
from xtracker_server.auth import bearer_of
from xtracker_server.domain.credentials import CredentialKind, hash_secret
from xtracker_server.domain.query import whole_number
from xtracker_server.domain.reports import ReportError
from xtracker_server.domain.tail import StreamCursor
from xtracker_server.errors import ApiError, field_error
from xtracker_server.state import AppState, app_state
from xtracker_server.store.tail import tail_top

_HOW = "send Authorization: Bearer <admin token or the space's bearer secret>"


async def authorize(request: Request) -> tuple[AppState, int]:
    """The space of the path, if the caller may read it: 401 without a valid credential, 403
    with another space's, 404 for no such space."""
    state = app_state(request)
    secret = bearer_of(request)
    if not secret:
        raise state.auth.refused(request, f"missing credential: {_HOW}")
    raw = request.path_params["space_id"]
    if not await state.auth.is_admin(request):
        owner = await state.auth.space(request, secret, CredentialKind.BEARER, _HOW)
        if str(owner) != raw:
            raise ApiError(
                403, "forbidden", f"this bearer secret is not space {raw}'s: use that space's"
                " bearer secret or the admin token"
            )  # fmt: skip
    return state, await existing_space(state, request)


def _window(request: Request) -> dict[str, Any]:
    q = request.query_params
    raw = q.get("days") or None
    days = None if raw is None else whole_number(raw)
    if raw is not None and days is None:
        raise field_error("days", "must be a positive whole number")
    return {
        "days": days,
        "from_": q.get("from") or None,
        "to": q.get("to") or None,
        "tz": q.get("tz") or None,
    }


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise field_error(name, "must be true or false")


async def _answer(
    state: AppState, op: Any, space_id: int, *, rollup: bool = True, **params: Any
) -> JSONResponse:
    if rollup:  # count everything committed before this request
        await state.store.catch_up_reports()
    try:
        data = await state.store.read(op, space_id, **params)
    except ReportError as exc:
        raise field_error(exc.field, exc.problem) from None
    return JSONResponse({"ok": True, **data})


async def funnel(request: Request) -> JSONResponse:
    state, space_id = await authorize(request)
    link = request.query_params.get("link") or None
    return await _answer(state, reports.funnel_report, space_id, link=link, **_window(request))


async def links(request: Request) -> JSONResponse:
    state, space_id = await authorize(request)
    q = request.query_params
    return await _answer(
        state, reports.links_report, space_id, sort=q.get("sort") or "clicks",
        desc=_flag(request, "desc", True), currency=q.get("currency") or None,
        **_window(request),
    )  # fmt: skip


async def series(request: Request) -> JSONResponse:
    state, space_id = await authorize(request)
    q = request.query_params
    metric = q.get("metric")
    if not metric:
        raise field_error("metric", "is required (click, contact, … or revenue)")
    return await _answer(
        state, reports.series_report, space_id, metric=metric, bucket=q.get("bucket") or "day",
        currency=q.get("currency") or None, link=q.get("link") or None, **_window(request),
    )  # fmt: skip


async def deliveries(request: Request) -> JSONResponse:
    state, space_id = await authorize(request)
    return await _answer(state, reports.deliveries_report, space_id, rollup=False)


async def stream(request: Request) -> Response:
    """Server-Sent Events: ``event: click|event|delivery``, ``data: {json}``, ``id: cursor``;
    a last ``event: end`` when the server ends it (admin/stream.py)."""
    state, space_id = await authorize(request)
    since = request.query_params.get("since") or request.headers.get("last-event-id")
    cursor = None
    if since:
        cursor = StreamCursor.parse(since)
        if cursor is None:
            raise field_error("since", "must be an id the stream sent (such as 12-345-6)")
        top = await state.store.read(tail_top)
        if any(mine > newest for mine, newest in zip(cursor.newest, top, strict=True)):
            raise field_error(
                "since", "is ahead of this server's rows (not an id it sent): reconnect without it"
            )
    streams: LiveStreams = request.app.state.streams
    secret = bearer_of(request) or ""
    sub = streams.open(space_id, hash_secret(secret))
    return EventStreamResponse(streams.follow(sub, cursor), lambda: streams.close(sub))


async def stream_status(request: Request) -> JSONResponse:
    """The open live streams per space, and the reads of their one reader (admin token)."""
    state = app_state(request)
    await state.auth.admin(request)
    streams: LiveStreams = request.app.state.streams
    return JSONResponse({"ok": True, **streams.status()})


routes = [
    Route("/admin/spaces/{space_id}/reports/funnel", funnel, methods=["GET"]),
    Route("/admin/spaces/{space_id}/reports/links", links, methods=["GET"]),
    Route("/admin/spaces/{space_id}/reports/series", series, methods=["GET"]),
    Route("/admin/spaces/{space_id}/reports/deliveries", deliveries, methods=["GET"]),
    Route("/admin/spaces/{space_id}/stream", stream, methods=["GET"]),
    Route("/admin/streams", stream_status, methods=["GET"]),
]
