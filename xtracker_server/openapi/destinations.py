"""The admin API's destinations and their outbox of deliveries (docs/destinations.md)."""

from __future__ import annotations

from xtracker_server.domain.deletion import DESTINATION_KEYS
from xtracker_server.domain.destinations import DestinationKind
from xtracker_server.domain.outbound import Outcome
from xtracker_server.openapi.errors import ADMIN, JSON_BODY
from xtracker_server.openapi.operation import Operation, Param, json_answer
from xtracker_server.openapi.schema import (
    BOOL,
    INT,
    MS,
    STR,
    answer,
    array,
    closed,
    enum,
    nullable,
    ref,
)
from xtracker_server.openapi.shared import DESTINATION_ID, DRY_RUN, LIMIT, SPACE_ID, deleted
from xtracker_server.store.api import DELIVERY_STATUSES

__all__ = ["OPERATIONS"]

_DESTINATION = closed(
    {
        "id": INT,
        "space_id": INT,
        "kind": enum([k.value for k in DestinationKind]),
        "name": STR,
        "enabled": BOOL,
        "healthy": BOOL,
        "health_reason": nullable(STR),
        "config": {"type": "object", "description": "the kind's settings; header values hidden"},
        "event_map": {"type": "object", "additionalProperties": STR},
        "proxy": nullable(STR),
        "has_secret": BOOL,
        "created_ms": MS,
        "updated_ms": MS,
    }
)
_DELIVERY = closed(
    {
        "id": INT,
        "destination_id": INT,
        "inbox_id": STR,
        "event_id": STR,
        "event": STR,
        "status": enum(DELIVERY_STATUSES),
        "attempts": INT,
        "next_attempt_ms": MS,
        "created_ms": MS,
        "sent_ms": nullable(MS),
        "last_status": nullable(INT),
        "last_error": nullable(STR),
    }
)
_PROBE = closed(
    {
        "ok": BOOL,
        "outcome": enum([o.value for o in Outcome]),
        "reason": STR,
        "status_code": nullable(INT),
        "latency_ms": INT,
        "response": STR,
        "event_id": STR,
    }
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="list_destinations",
        route="GET /admin/spaces/{space_id}/destinations",
        summary="List destinations",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Oldest first; secrets are never shown.",
                answer({"destinations": array(_DESTINATION)}),
            )
        },
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="create_destination",
        route="POST /admin/spaces/{space_id}/destinations",
        summary="Add a destination",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "Its id, and a webhook's signing secret, shown only here.",
                answer({"id": INT, "kind": STR, "secret": nullable(STR)}),
            )
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=ref("DestinationInput"),
    ),
    Operation(
        id="update_destination",
        route="PATCH /admin/spaces/{space_id}/destinations/{destination_id}",
        summary="Change a destination",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The whole destination.", answer({"destination": _DESTINATION}))},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID, DESTINATION_ID),
        body=closed(
            {},
            {
                "name": STR,
                "enabled": BOOL,
                "proxy": nullable(STR),
                "event_map": {"type": "object", "additionalProperties": STR},
                "access_token": STR,
            },
        ),
    ),
    Operation(
        id="delete_destination",
        route="DELETE /admin/spaces/{space_id}/destinations/{destination_id}",
        summary="Delete a destination",
        tag="admin",
        auth="admin",
        answers=deleted({"destination_id": INT}, DESTINATION_KEYS),
        errors=("invalid_field", *ADMIN),
        params=(SPACE_ID, DESTINATION_ID, DRY_RUN),
        description="The destination and every delivery to it: those not sent yet are dropped."
        " 404: no such destination in this space.",
    ),
    Operation(
        id="test_destination",
        route="POST /admin/spaces/{space_id}/destinations/{destination_id}/test",
        summary="Send a test event now",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer("What the destination answered; ok: it accepted the event.", _PROBE)
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID, DESTINATION_ID),
        body=closed({}, {"test_event_code": STR, "live": BOOL}),
        body_required=False,
    ),
    Operation(
        id="list_outbox",
        route="GET /admin/spaces/{space_id}/outbox",
        summary="List deliveries",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Newest first, with the space's counts per status.",
                answer(
                    {
                        "counts": {"type": "object", "additionalProperties": INT},
                        "deliveries": array(_DELIVERY),
                    }
                ),
            )
        },
        errors=("invalid_field", *ADMIN),
        params=(
            SPACE_ID,
            Param("status", enum(DELIVERY_STATUSES)),
            Param("destination", {"type": "integer", "minimum": 1}, "a destination's id"),
            LIMIT,
        ),
    ),
    Operation(
        id="replay_outbox",
        route="POST /admin/spaces/{space_id}/outbox/replay",
        summary="Send deliveries again",
        tag="admin",
        auth="admin",
        answers={200: json_answer("How many became pending.", answer({"replayed": INT}))},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed({}, {"status": enum(DELIVERY_STATUSES), "destination_id": INT}),
        body_required=False,
    ),
)
