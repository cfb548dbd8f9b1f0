"""The grouped report: a space's numbers per campaign, ad, country…
(docs/reports.md#grouped-reports); the admin token, or the space's own bearer secret."""

from __future__ import annotations

from xtracker_server.domain.costs import CostLevel
from xtracker_server.domain.group_report import GROUP_COLUMNS, MAX_LIMIT
from xtracker_server.domain.groups import GROUP_DIMENSIONS
from xtracker_server.domain.reports import FunnelMode
from xtracker_server.openapi.errors import REPORT
from xtracker_server.openapi.operation import Operation, Param
from xtracker_server.openapi.reports import FORMAT, export_answer
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
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["OPERATIONS"]

_MONEY: Schema = {
    "type": "object",
    "description": "currency -> exact decimal amount",
    "additionalProperties": STR,
}
_RATIO = nullable({"type": "number"})
_TEXT = nullable(STR)
_STEP = closed(
    {
        "step": STR,
        "uids": INT,
        "from_previous": _RATIO,
        "from_click": _RATIO,
        "ttc_median_s": {
            **nullable(INT),
            "description": "median time from click to the step, an estimate from a histogram",
        },
    }
)
_COST = nullable(
    closed(
        {
            "level": enum([lv.value for lv in CostLevel]),
            "days": COUNT,
            "cost": _TEXT,
            "net_revenue": _TEXT,
            "profit": _TEXT,
            "roi": _TEXT,
            "roas": _TEXT,
            "cpc": _TEXT,
            "cpl": _TEXT,
            "cpa": _TEXT,
            "cost_per": closed({e: _TEXT for e in CANONICAL_EVENTS}),
        }
    )
)
_NUMBERS: dict[str, Schema] = {
    "key": {
        "type": "object",
        "description": "dimension -> the group's value (null: clicks without one)",
        "additionalProperties": _TEXT,
    },
    "names": {
        "type": "object",
        "description": "campaign, adset, ad -> the latest name of the id",
        "additionalProperties": STR,
    },
    "clicks": INT,
    "steps": array(_STEP),
    "deposits": INT,
    "depositors": INT,
    "first_deposits": INT,
    "click_to_deposit": _RATIO,
    "revenue": _MONEY,
    "reversed_deposits": INT,
    "reversed_revenue": _MONEY,
    "net_revenue": _MONEY,
}
_CHILD = closed(_NUMBERS, {"cost": _COST})
_ROW = closed(_NUMBERS, {"cost": _COST, "children": array(_CHILD)})
_REPORT = answer(
    {
        "from_ms": MS,
        "to_ms": MS,
        "tz": STR,
        "mode": enum([m.value for m in FunnelMode]),
        "by": array(STR),
        "filters": array(STR),
        "sort": enum(GROUP_COLUMNS),
        "desc": BOOL,
        "limit": INT,
        "currency": _TEXT,
        "sort_currency": STR,
        "ttc_estimate": {"const": True},
        "rows_total": COUNT,
        "total": closed(_NUMBERS),
        "rows": array(_ROW),
        "without_click": closed(
            {**{e: INT for e in CANONICAL_EVENTS}, "deposits": INT, "revenue": _MONEY}
        ),
        "missing_rates": array(closed({"currency": STR, "to": STR, "day": STR, "detail": STR})),
    }
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="report_groups",
        route="GET /admin/spaces/{space_id}/reports/groups",
        summary="Per campaign, ad set, ad, country… (grouped, nested, with costs)",
        tag="reports",
        auth="report",
        answers={
            200: export_answer(
                "One row per group; with two dimensions each row has its `children`.",
                _REPORT,
                "CSV: one line per row and per child (the outer row's value repeated), a column"
                " per dimension, step, currency of each money column, and with `currency` the"
                " cost figures.",
            )
        },
        errors=("invalid_field", *REPORT),
        params=(
            SPACE_ID,
            Param(
                "by",
                STR,
                "up to 2 dimensions, comma-separated, the outer first (campaign,ad): one of"
                f" {', '.join(GROUP_DIMENSIONS)}, or sub.NAME; none: the whole space",
            ),
            Param("mode", enum([m.value for m in FunnelMode]), "default cohort"),
            Param("sort", enum(GROUP_COLUMNS), "default clicks"),
            Param("desc", BOOL, "default true"),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                "rows (and children per row); default 100",
            ),
            Param("currency", STR, "the report currency of the cost figures"),
            Param("days", {"type": "integer", "minimum": 1}, "the last N days (default 7)"),
            Param("from", STR, "the window's start: an ISO date or datetime, or epoch ms"),
            Param("to", STR, "the window's end (excluded); default now"),
            Param("tz", STR, "an IANA time zone; default UTC"),
            Param(
                "filter",
                array(STR),
                "repeatable: DIMENSION=A,B keeps, DIMENSION=-A,-B drops (docs/reports.md#filters)",
            ),
            FORMAT,
        ),
    ),
)
