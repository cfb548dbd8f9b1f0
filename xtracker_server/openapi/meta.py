"""The server about itself: health, liveness, metrics, and this document."""

from __future__ import annotations

from xtracker_server.openapi.errors import CREDENTIAL, ERROR_EXTRAS, RETRY_AFTER
from xtracker_server.openapi.operation import Answer, Operation, json_answer
from xtracker_server.openapi.schema import INT, MS, STR, TRUE, answer, closed, enum, nullable

__all__ = ["OPERATIONS"]

_HEALTH_PARTS = {"version": STR, "schema": INT, "writer": enum(["running", "stopped"])}
_HEALTHY = closed({"ok": TRUE, **_HEALTH_PARTS, "storage": {"const": "ok"}})
#: /healthz while the storage fails: the error shape of 503 unavailable and the health fields.
_UNHEALTHY = closed(
    {
        "ok": {"const": False},
        "error": {"const": "unavailable"},
        "reason": ERROR_EXTRAS["reason"],
        "detail": STR,
        "since_ms": {**nullable(MS), "description": "since when (null: the writer is not up)"},
        **_HEALTH_PARTS,
        "storage": {"const": "failing"},
    }
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="healthz",
        route="GET /healthz",
        summary="Health: the storage takes writes",
        tag="meta",
        auth="none",
        answers={
            200: json_answer("The storage takes writes.", _HEALTHY),
            503: Answer(
                "The storage fails (or the writer is not running): the error shape of"
                " `unavailable` with its `reason`, since when, and the health fields; until a"
                " write commits again.",
                {"application/json": _UNHEALTHY},
                RETRY_AFTER,
            ),
        },
        description="Answers from what the last commits and reads showed, and the probe an idle"
        " server writes every 2 s; it reads nothing itself. For monitoring; a load balancer"
        " watches GET /livez.",
    ),
    Operation(
        id="livez",
        route="GET /livez",
        summary="Liveness: the server answers",
        tag="meta",
        auth="none",
        answers={200: json_answer("Always, without looking at the storage.", answer({}))},
    ),
    Operation(
        id="metrics",
        route="GET /metrics",
        summary="Prometheus metrics",
        tag="meta",
        auth="metrics",
        answers={
            200: Answer(
                "Prometheus's text format, or OpenMetrics when the Accept header asks for"
                " application/openmetrics-text. See docs/operations.md#metrics.",
                {"text/plain": STR, "application/openmetrics-text": STR},
            )
        },
        errors=CREDENTIAL,
        description="The admin token or XTRACKER_METRICS_TOKEN; no credential at all when"
        " XTRACKER_METRICS_PUBLIC is on.",
    ),
    Operation(
        id="openapi",
        route="GET /openapi.json",
        summary="This document",
        tag="meta",
        auth="none",
        answers={200: json_answer("The OpenAPI 3.1 document.", {"type": "object"})},
    ),
)
