"""Ad costs, exchange rates and the costs report (docs/api.md#costs-and-exchange-rates,
docs/reports.md#costs): writes take the admin token, reads the space's bearer secret too."""

from __future__ import annotations

from xtracker_server.domain.costs import CostLevel
from xtracker_server.openapi.errors import ADMIN, JSON_BODY, REPORT
from xtracker_server.openapi.operation import Operation, Param, json_answer
from xtracker_server.openapi.schema import (
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

_LEVEL = enum([lv.value for lv in CostLevel])
_DAY: Schema = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_DECIMAL: Schema = {"type": "string", "description": "an exact decimal, such as 12.50"}
_AMOUNT = nullable({**_DECIMAL, "description": "null: a rate is missing (missing_rates)"})
_COST = closed(
    {
        "day": _DAY,
        "level": _LEVEL,
        "id": {**STR, "description": "the campaign, ad set or ad id; a link's slug"},
        "name": nullable(STR),
        "amount": _DECIMAL,
        "currency": STR,
    }
)
_COST_IN = closed(
    {"day": _DAY, "level": _LEVEL, "id": STR, "amount": {"anyOf": [_DECIMAL, {"type": "number"}]},
     "currency": STR},
    {"name": STR},
)  # fmt: skip
_RATE = {"from": STR, "to": STR, "day": _DAY, "rate": _DECIMAL}
_STORED = answer({"space_id": INT, "new": COUNT, "replaced": COUNT})
_FIGURES = {
    "clicks": COUNT,
    **{e: COUNT for e in CANONICAL_EVENTS},
    "cost": _AMOUNT,
    "revenue": _AMOUNT,
    "profit": _AMOUNT,
    "roi": _AMOUNT,
    "roas": _AMOUNT,
    "cpc": _AMOUNT,
    "cpl": _AMOUNT,
    "cpa": _AMOUNT,
    "cost_per": closed({e: _AMOUNT for e in CANONICAL_EVENTS}),
}
_REPORT = answer(
    {
        "from_ms": MS,
        "to_ms": MS,
        "from_day": _DAY,
        "to_day": {**_DAY, "description": "the first day after the window"},
        "tz": STR,
        "currency": STR,
        "level": _LEVEL,
        "costs": {
            "type": "object",
            "description": "level -> currency -> the costs entered, unconverted",
            "additionalProperties": {"type": "object", "additionalProperties": _DECIMAL},
        },
        "total": closed(_FIGURES),
        "links": array(closed({"link": STR, **_FIGURES})),
        "missing_rates": array(closed({"currency": STR, "to": STR, "day": _DAY, "detail": STR})),
    }
)
_DAYS = (
    Param("from", _DAY, "the first day listed"),
    Param("to", _DAY, "the first day not listed"),
    Param("level", _LEVEL),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="list_costs",
        route="GET /admin/spaces/{space_id}/costs",
        summary="The space's ad costs",
        tag="admin",
        auth="report",
        answers={
            200: json_answer(
                "By day, level and id.", answer({"space_id": INT, "costs": array(_COST)})
            )
        },
        errors=("invalid_field", *REPORT),
        params=(SPACE_ID, *_DAYS),
    ),
    Operation(
        id="set_costs",
        route="POST /admin/spaces/{space_id}/costs",
        summary="Set costs (each replaces the cost of its day, level and id)",
        tag="admin",
        auth="admin",
        answers={200: json_answer("All were stored, or none.", _STORED)},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed({"costs": {**array(_COST_IN), "minItems": 1, "maxItems": 1000}}),
    ),
    Operation(
        id="delete_cost",
        route="DELETE /admin/spaces/{space_id}/costs",
        summary="Delete one cost",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Deleted.", answer({"space_id": INT, "deleted": {"const": 1}}))},
        errors=("invalid_field", *ADMIN),
        params=(
            SPACE_ID,
            Param("day", _DAY, required=True),
            Param("level", _LEVEL, required=True),
            Param("id", STR, required=True),
        ),
    ),
    Operation(
        id="import_costs",
        route="POST /admin/spaces/{space_id}/costs/import",
        summary="Import a Facebook Ads Manager CSV export",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Every row was stored, or none (422 names each bad line).",
                answer(
                    {
                        "space_id": INT,
                        "level": _LEVEL,
                        "new": COUNT,
                        "replaced": COUNT,
                        "skipped": COUNT,
                    }
                ),
            )
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body={"type": "string", "description": "the CSV file, UTF-8"},
        body_media="text/csv",
    ),
    Operation(
        id="list_rates",
        route="GET /admin/spaces/{space_id}/rates",
        summary="The space's exchange rates",
        tag="admin",
        auth="report",
        answers={
            200: json_answer(
                "By pair and day.", answer({"space_id": INT, "rates": array(closed(_RATE))})
            )
        },
        errors=REPORT,
        params=(SPACE_ID,),
    ),
    Operation(
        id="set_rate",
        route="PUT /admin/spaces/{space_id}/rates",
        summary="Set what one unit of a currency is worth in another from a day on",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The rate stored.", answer({"space_id": INT, **_RATE}))},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed(_RATE),
    ),
    Operation(
        id="report_costs",
        route="GET /admin/spaces/{space_id}/reports/costs",
        summary="Cost, CPC, cost per step, ROI, ROAS and profit in one currency",
        tag="reports",
        auth="report",
        answers={200: json_answer("See docs/reports.md#costs.", _REPORT)},
        errors=("invalid_field", *REPORT),
        params=(
            SPACE_ID,
            Param("currency", STR, "the report currency (default USD)"),
            Param("level", _LEVEL, "the level costs are counted at (default: the coarsest)"),
            Param("days", {"type": "integer", "minimum": 1}, "the last N days (default 7)"),
            Param("from", STR, "the first day (an ISO date)"),
            Param("to", STR, "the first day after the window"),
            Param("tz", STR, "an IANA time zone; default UTC"),
        ),
    ),
)
