"""``/admin/spaces/{space_id}/reports/…`` and ``…/stream``: the numbers of a space, and its
live stream (docs/reports.md).

Each report answers JSON, or CSV for ``Accept: text/csv`` or ``?format=csv`` (``answer``; the
serializers are services/exports.py, shared with the CLI).

Read with the admin token, or with the space's own bearer secret (a bot owner may read their
space's reports; another space's secret gets 403 and nothing else): the rule is the
services' (services/principal.py); these routes only say who is calling (``reader``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from xtracker_server.admin._services import path_id, reader
from xtracker_server.admin.stream import EventStreamResponse, LiveStreams
from xtracker_server.auth import bearer_of
from xtracker_server.domain.credentials import hash_secret
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import field_error
from xtracker_server.services import exports, reports
from xtracker_server.services.report_query import ReportQuery
from xtracker_server.state import app_state


def _window(request: Request) -> ReportQuery:
    q = request.query_params
    raw = q.get("days") or None
    days = None if raw is None else whole_number(raw)
    if raw is not None and days is None:
        raise field_error("days", "must be a positive whole number")
    # filter repeated: filter=country=US,CA&filter=link=-test (domain/filters.py)
    return ReportQuery(days, q.get("from") or None, q.get("to") or None, q.get("tz") or None,
                       tuple(q.getlist("filter")))  # fmt: skip


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise field_error(name, "must be true or false")


def wanted_format(request: Request) -> str:
    """``json`` or ``csv``: ``?format=`` if given (422 for another), else CSV when the Accept
    header ranks ``text/csv`` above JSON (``application/json``, ``application/*`` or ``*/*``),
    else JSON."""
    given = request.query_params.get("format")
    if given:
        if given.lower() not in exports.FORMATS:
            raise field_error("format", "must be json or csv")
        return given.lower()
    ranks = {"csv": 0.0, "json": 0.0}
    header = request.headers.get("accept")
    if not header:
        return "json"
    for part in header.split(","):
        kind, *options = (p.strip() for p in part.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = kind.lower()
        if kind == "text/csv":
            ranks["csv"] = max(ranks["csv"], quality)
        elif kind in ("application/json", "application/*", "*/*"):
            ranks["json"] = max(ranks["json"], quality)
    return "csv" if ranks["csv"] > ranks["json"] else "json"


def answer(request: Request, export: exports.Export) -> Response:
    """The export in the format asked for: CSV streamed as an attachment, JSON streamed if
    its rows are (else a plain JSON answer, as before exports)."""
    headers = {"Vary": "Accept"}
    if wanted_format(request) == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return StreamingResponse(
            exports.csv_chunks(export), media_type="text/csv; charset=utf-8", headers=headers
        )
    if export.key is None:
        return JSONResponse({"ok": True, **export.head}, headers=headers)
    return StreamingResponse(
        exports.json_chunks(export, ok=True), media_type="application/json", headers=headers
    )


async def funnel(request: Request) -> Response:
    who, ctx = await reader(request)
    wanted_format(request)  # a bad ?format= is refused before any work
    link = request.query_params.get("link") or None
    mode = request.query_params.get("mode") or None
    found = await exports.funnel_export(
        who, ctx, path_id(request), link=link, mode=mode, query=_window(request)
    )
    return answer(request, found)


async def links(request: Request) -> Response:
    who, ctx = await reader(request)
    wanted_format(request)
    q = request.query_params
    found = await exports.links_export(
        who, ctx, path_id(request), sort=q.get("sort") or "clicks",
        desc=_flag(request, "desc", True), currency=q.get("currency") or None,
        query=_window(request),
    )  # fmt: skip
    return answer(request, found)


async def series(request: Request) -> Response:
    who, ctx = await reader(request)
    wanted_format(request)
    q = request.query_params
    metric = q.get("metric")
    if not metric:
        raise field_error("metric", "is required (click, contact, … or revenue)")
    found = await exports.series_export(
        who, ctx, path_id(request), metric=metric, bucket=q.get("bucket") or "day",
        currency=q.get("currency") or None, link=q.get("link") or None, query=_window(request),
    )  # fmt: skip
    return answer(request, found)


async def groups(request: Request) -> Response:
    """The grouped report (services/groups.py): ``by=campaign,ad``, ``mode``, ``sort``,
    ``desc``, ``limit``, ``currency`` and the window and filters of every report."""
    who, ctx = await reader(request)
    wanted_format(request)
    q = request.query_params
    raw_limit = q.get("limit") or None
    limit = None if raw_limit is None else whole_number(raw_limit)
    if raw_limit is not None and limit is None:
        raise field_error("limit", "must be a positive whole number")
    query = _window(request)
    found = await exports.groups_export(
        who, ctx, path_id(request), by=q.get("by") or "", mode=q.get("mode") or None,
        sort=q.get("sort") or "clicks", desc=_flag(request, "desc", True), limit=limit,
        currency=q.get("currency") or None, query=query,
    )  # fmt: skip
    return answer(request, found)


async def deliveries(request: Request) -> Response:
    who, ctx = await reader(request)
    wanted_format(request)
    return answer(request, await exports.deliveries_export(who, ctx, path_id(request)))


async def stream(request: Request) -> Response:
    """Server-Sent Events: ``event: click|event|delivery``, ``data: {json}``, ``id: cursor``;
    a last ``event: end`` when the server ends it (admin/stream.py)."""
    who, ctx = await reader(request)
    space_id = path_id(request)
    since = request.query_params.get("since") or request.headers.get("last-event-id")
    cursor = await reports.stream_start(who, ctx, space_id, since)
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
    Route("/admin/spaces/{space_id}/reports/groups", groups, methods=["GET"]),
    Route("/admin/spaces/{space_id}/stream", stream, methods=["GET"]),
    Route("/admin/streams", stream_status, methods=["GET"]),
]
