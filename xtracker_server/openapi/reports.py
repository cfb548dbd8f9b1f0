"""Reports and the live stream: the admin token, or the space's own bearer secret
(docs/reports.md)."""

from __future__ import annotations

from xtracker_server.admin.stream import END_REASONS
from xtracker_server.domain.reports import (
    LINK_COLUMNS,
    METRICS,
    UNRECORDED_COLUMNS,
    Bucket,
    FunnelMode,
)
from xtracker_server.openapi.errors import CREDENTIAL, REPORT
from xtracker_server.openapi.operation import Answer, Operation, Param, json_answer
from xtracker_server.openapi.schema import (
    BOOL,
    COUNT,
    INT,
    MS,
    STR,
    Schema,
    answer,
    array,
    closed,
    enum,
    nullable,
)
from xtracker_server.openapi.shared import SPACE_ID
from xtracker_server.store.api import DELIVERY_STATUSES
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["FORMAT", "OPERATIONS", "STREAM_END", "export_answer"]

#: The query parameter that asks for CSV (as ``Accept: text/csv`` does).
FORMAT = Param(
    "format",
    enum(["json", "csv"]),
    "csv: the report as CSV (as `Accept: text/csv`); default JSON. docs/reports.md#exports",
)


def export_answer(description: str, schema: Schema, csv: str) -> Answer:
    """A report's answer: its JSON, or CSV (RFC 4180, a header row; ``csv`` says the rows) for
    ``Accept: text/csv`` or ``?format=csv``, streamed as an attachment."""
    return Answer(
        description,
        {
            "application/json": schema,
            "text/csv": {
                "type": "string",
                "description": f"{csv} A cell of text that starts with = + - @ (not a number)"
                " gets a leading '. A storage fault while it is streamed ends it with a line"
                " `#error,storage_unavailable,…` and a connection closed before the answer's"
                " end (docs/reports.md#exports).",
            },
        },
    )


_STREAMS = answer(
    {
        "open": COUNT,
        "spaces": {
            "type": "object",
            "description": "space id -> its open streams",
            "propertyNames": {"pattern": "^[0-9]+$"},
            "additionalProperties": COUNT,
        },
        "reader": closed({"running": BOOL, "reads": COUNT}),
    }
)

#: The ``data`` of a live stream's last message, ``event: end``: why the server ended it.
STREAM_END = closed({"type": {"const": "end"}, "reason": enum(END_REASONS)})
_CURSOR_PART = "[0-9]+(\\.[0-9]+)*"  # one table's part of a stream cursor: 12, or 345.2.5
_MONEY: Schema = {
    "type": "object",
    "description": "currency -> exact decimal amount",
    "additionalProperties": {"type": "string"},
}
_RATIO = nullable({"type": "number"})
_STEP = closed({"step": STR, "uids": INT, "from_previous": _RATIO, "from_click": _RATIO})
_FUNNEL_NUMBERS = {
    "steps": array(_STEP),
    "deposits": INT,
    "depositors": INT,
    "first_deposits": INT,
    "revenue": _MONEY,
    "reversed_deposits": INT,
    "reversed_revenue": _MONEY,
    "net_revenue": _MONEY,
}
_WINDOW = {"from_ms": MS, "to_ms": MS}
_FUNNEL = answer(
    {
        **_WINDOW,
        "tz": STR,
        "link": nullable(STR),
        "mode": enum([m.value for m in FunnelMode]),
        **_FUNNEL_NUMBERS,
        "unattributed": closed({**{e: INT for e in CANONICAL_EVENTS}, "revenue": _MONEY}),
        "without_click": closed(
            {**{e: INT for e in CANONICAL_EVENTS}, "deposits": INT, "revenue": _MONEY}
        ),
        "gauge": closed(
            {
                "weakest": nullable(STR),
                "steps": array(
                    closed(
                        {
                            "step": STR,
                            "ratio": _RATIO,
                            "previous_ratio": _RATIO,
                            "change_points": _RATIO,
                            "weakest": BOOL,
                        }
                    )
                ),
            }
        ),
        "previous": closed({**_WINDOW, **_FUNNEL_NUMBERS}),
    }
)
_LINK_ROW = closed(
    {
        "link": nullable(STR),
        "clicks": INT,
        **{e: INT for e in CANONICAL_EVENTS},
        "deposits": INT,
        "depositors": INT,
        "click_to_deposit": _RATIO,
        "revenue": _MONEY,
        "revenue_per_click": {"type": "object", "additionalProperties": nullable(STR)},
        **{column: INT for column in UNRECORDED_COLUMNS},
        "reversed_deposits": INT,
        "reversed_revenue": _MONEY,
        "net_revenue": _MONEY,
    }
)
_LINKS_REPORT = answer(
    {
        **_WINDOW,
        "tz": STR,
        "sort": enum(LINK_COLUMNS),
        "desc": BOOL,
        "currency": STR,
        "links": array(_LINK_ROW),
    }
)
_SERIES = answer(
    {
        "metric": enum(METRICS),
        "bucket": enum([b.value for b in Bucket]),
        "tz": STR,
        **_WINDOW,
        "link": nullable(STR),
        "currency": nullable(STR),
        "points": array(
            closed({"start_ms": MS, "start": STR, "value": {"type": ["integer", "string"]}})
        ),
    }
)
_HEALTH_ROW = closed(
    {
        "id": INT,
        "name": STR,
        "kind": STR,
        "enabled": BOOL,
        "healthy": BOOL,
        "health_reason": nullable(STR),
        **{s: INT for s in DELIVERY_STATUSES},
        "last_success_ms": nullable(MS),
        "last_error": nullable(STR),
        "last_error_ms": nullable(MS),
        "recent_attempts": INT,
        "recent_failures": INT,
        "median_latency_ms": nullable(INT),
    }
)

_WINDOW_QUERY = (
    Param("days", {"type": "integer", "minimum": 1}, "the last N days (default 7)"),
    Param("from", STR, "the window's start: an ISO date or datetime, or epoch ms"),
    Param("to", STR, "the window's end (excluded); default now"),
    Param("tz", STR, "an IANA time zone; default UTC"),
)
_ONE_LINK = Param("link", STR, "one link's slug")
_FILTERS = Param(
    "filter",
    array(STR),
    "repeatable: DIMENSION=A,B keeps, DIMENSION=-A,-B drops; today the link dimension only"
    " (docs/reports.md#filters); another dimension answers 422",
)
_MODE = Param(
    "mode",
    enum([m.value for m in FunnelMode]),
    "cohort: the window's clicks and their steps whenever they happen; activity (default): the"
    " clicks and events of the window",
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="report_funnel",
        route="GET /admin/spaces/{space_id}/reports/funnel",
        summary="The funnel and its conversion gauge",
        tag="reports",
        auth="report",
        answers={
            200: export_answer(
                "See docs/reports.md.",
                _FUNNEL,
                "CSV: one row per step; the deposit row has the deposits and the revenue per"
                " currency (revenue_USD …).",
            )
        },
        errors=("invalid_field", *REPORT),
        params=(SPACE_ID, _ONE_LINK, _MODE, *_WINDOW_QUERY, _FILTERS, FORMAT),
    ),
    Operation(
        id="report_links",
        route="GET /admin/spaces/{space_id}/reports/links",
        summary="Per link",
        tag="reports",
        auth="report",
        answers={
            200: export_answer(
                "One row per link.",
                _LINKS_REPORT,
                "CSV: one row per link, a column per currency of each money column"
                " (revenue_USD, revenue_per_click_USD …).",
            )
        },
        errors=("invalid_field", *REPORT),
        params=(
            SPACE_ID,
            Param("sort", enum(LINK_COLUMNS)),
            Param("desc", BOOL),
            Param("currency", STR),
            *_WINDOW_QUERY,
            _FILTERS,
            FORMAT,
        ),
    ),
    Operation(
        id="report_series",
        route="GET /admin/spaces/{space_id}/reports/series",
        summary="A time series",
        tag="reports",
        auth="report",
        answers={
            200: export_answer(
                "Every bucket, zeros included; streamed.",
                _SERIES,
                "CSV: start,start_ms,value, one row per bucket.",
            )
        },
        errors=("invalid_field", *REPORT),
        params=(
            SPACE_ID,
            Param("metric", enum(METRICS), required=True),
            Param("bucket", enum([b.value for b in Bucket])),
            Param("currency", STR),
            _ONE_LINK,
            *_WINDOW_QUERY,
            _FILTERS,
            FORMAT,
        ),
    ),
    Operation(
        id="report_deliveries",
        route="GET /admin/spaces/{space_id}/reports/deliveries",
        summary="Delivery health",
        tag="reports",
        auth="report",
        answers={
            200: export_answer(
                "Per destination.",
                answer({"recent_ms": INT, "destinations": array(_HEALTH_ROW)}),
                "CSV: one row per destination, its fields as columns.",
            )
        },
        errors=("invalid_field", *REPORT),
        params=(SPACE_ID, FORMAT),
    ),
    Operation(
        id="stream",
        route="GET /admin/spaces/{space_id}/stream",
        summary="The live stream",
        tag="reports",
        auth="report",
        answers={
            200: Answer(
                "Server-Sent Events, until the client leaves or the server ends the stream: one"
                " message per click, event and delivery attempt of the space (`id:` a cursor,"
                " `event: click`, `event` or `delivery`, `data:` its JSON); a comment every 15 s;"
                " and when the server ends it, a last message `event: end` whose `data` is"
                " #/components/schemas/StreamEnd. See docs/reports.md#the-live-stream.",
                {"text/event-stream": STR},
            )
        },
        errors=("invalid_field", "too_many_streams", *REPORT),
        params=(
            SPACE_ID,
            Param(
                "since",
                {"type": "string", "pattern": f"^{_CURSOR_PART}-{_CURSOR_PART}-{_CURSOR_PART}$"},
                "resume after the message with this id (a cursor the stream sent)",
            ),
            Param("Last-Event-ID", STR, "as since", where="header"),
        ),
    ),
    Operation(
        id="stream_status",
        route="GET /admin/streams",
        summary="Open live streams",
        tag="reports",
        auth="admin",
        answers={200: json_answer("Open streams per space, and the one reader's reads.", _STREAMS)},
        errors=CREDENTIAL,
    ),
)
