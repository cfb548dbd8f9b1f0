"""The admin API's postbacks: the log, the aliases, the URLs for a partner network
(docs/postbacks.md)."""

from __future__ import annotations

from xtracker_server.domain.postback_urls import EVENT_CHOICES, NETWORKS
from xtracker_server.openapi.errors import ADMIN, JSON_BODY
from xtracker_server.openapi.operation import Operation, Param, json_answer
from xtracker_server.openapi.reports import FORMAT, export_answer
from xtracker_server.openapi.schema import BOOL, INT, MS, STR, answer, array, closed, enum, nullable
from xtracker_server.openapi.shared import CONFLICT, SPACE_ID
from xtracker_server.store.api import POSTBACK_OUTCOMES

__all__ = ["OPERATIONS"]

_POSTBACK = closed(
    {
        "id": INT,
        "at_ms": MS,
        "ip": nullable(STR),
        "token_name": nullable(STR),
        "test": BOOL,
        "method": STR,
        "query": STR,
        "body": nullable(STR),
        "outcome": enum(POSTBACK_OUTCOMES),
        "status": nullable(STR),
        "event": nullable(STR),
        "uid": nullable(STR),
        "click_known": nullable(BOOL),
        "attributed": {
            **nullable(BOOL),
            "deprecated": True,
            "description": "the old name of click_known, the same value; read click_known",
        },
        "value": nullable(STR),
        "currency": nullable(STR),
        "eid": nullable(STR),
        "inbox_id": nullable(STR),
        "conflict": nullable(CONFLICT),
        "error": nullable(STR),
        "detail": nullable(STR),
    }
)
_ORIGIN = enum(["default", "custom", "removed"])
_ALIASES = answer(
    {
        "statuses": array(closed({"alias": STR, "maps_to": nullable(STR), "origin": _ORIGIN})),
        "params": array(closed({"name": STR, "field": nullable(STR), "origin": _ORIGIN})),
    }
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="list_postbacks",
        route="GET /admin/spaces/{space_id}/postbacks",
        summary="The postback log",
        tag="admin",
        auth="admin",
        answers={
            200: export_answer(
                "Newest first; tokens masked; streamed, page by page.",
                answer({"postbacks": array(_POSTBACK)}),
                "CSV: one row per postback, its fields as columns (conflict_value,"
                " conflict_currency; without the deprecated attributed).",
            )
        },
        errors=("invalid_field", *ADMIN),
        params=(
            SPACE_ID,
            Param("outcome", enum(POSTBACK_OUTCOMES)),
            Param(
                "limit",
                {
                    "anyOf": [
                        {"type": "integer", "minimum": 1, "maximum": 10_000_000},
                        {"const": "all"},
                    ]
                },
                "the latest N rows (default 100), or all",
            ),
            FORMAT,
        ),
    ),
    Operation(
        id="get_aliases",
        route="GET /admin/spaces/{space_id}/postbacks/aliases",
        summary="The postback aliases in effect",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Sorted by name.", _ALIASES)},
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="change_aliases",
        route="PATCH /admin/spaces/{space_id}/postbacks/aliases",
        summary="Add, change or remove postback aliases",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Every alias now in effect.", _ALIASES)},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed(
            {},
            {
                "statuses": {
                    "type": "object",
                    "additionalProperties": nullable(STR),
                    "description": 'alias -> event or "ignore"; null removes',
                },
                "params": {
                    "type": "object",
                    "additionalProperties": nullable(STR),
                    "description": "name -> field; null removes",
                },
            },
        ),
    ),
    Operation(
        id="make_urls",
        route="POST /admin/spaces/{space_id}/postbacks/urls",
        summary="Postback URLs for a partner network",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The URLs to paste into the network's cabinet.",
                answer(
                    {
                        "space_id": INT,
                        "network": enum(NETWORKS),
                        "token": enum(["given", "rotated", "placeholder"]),
                        "offer_param": STR,
                        "urls": array(closed({"event": STR, "field": STR, "url": STR})),
                        "notes": array(STR),
                    }
                ),
            )
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed(
            {"network": enum(NETWORKS)},
            {"event": enum(EVENT_CHOICES), "token": STR, "rotate": BOOL},
        ),
    ),
)
