"""Ingress: what bots and partner networks call (events, postbacks, binds, clicks)."""

from __future__ import annotations

from xtracker_server.openapi.errors import CREDENTIAL, ERROR_EXTRAS, JSON_BODY, MACRO
from xtracker_server.openapi.operation import Operation, Param, json_answer
from xtracker_server.openapi.schema import BOOL, INT, STR, TRUE, Schema, answer, array, closed, ref
from xtracker_server.openapi.shared import CONFLICT, TG_ID
from xtracker_wire import MAX_BATCH_EVENTS, MAX_EID_LEN, MAX_UID_LEN, MIN_OCCURRED_AT_MS

__all__ = ["OPERATIONS"]

_STORED = {"inbox_id": STR, "attributed": BOOL}
_EVENT_ANSWER: Schema = {
    "anyOf": [
        answer({"status": {"const": "queued"}, **_STORED}, {"warnings": array(STR), "test": TRUE}),
        {
            **answer(
                {"status": {"const": "duplicate"}, **_STORED},
                {"conflict": CONFLICT, "detail": STR, "test": TRUE},
            ),
            # a duplicate that names another amount or currency: both, or neither
            "dependentRequired": {"conflict": ["detail"], "detail": ["conflict"]},
        },
    ]
}
_IGNORED_ANSWER = answer({"status": {"const": "ignored"}, "detail": STR})


def _bind_answer(*statuses: str) -> Schema:
    """``bound``: a new binding (earlier events of the user attributed); ``unchanged``: this
    pair again; ``ignored``: a token bind for a user who has a bind (GET /bind only)."""
    none = {"const": 0}
    shapes: dict[str, tuple[Schema, Schema, Schema]] = {  # bound, attributed_events, more
        "bound": (TRUE, {"type": "integer", "minimum": 0}, {}),
        "unchanged": (TRUE, none, {}),
        "ignored": ({"const": False}, none, {"detail": STR}),
    }
    return {
        "anyOf": [
            answer(
                {
                    "matched": BOOL,
                    "status": {"const": s},
                    "bound": shapes[s][0],
                    "attributed_events": shapes[s][1],
                    **shapes[s][2],
                }
            )
            for s in statuses
        ]
    }


_EVENT_QUERY = (
    Param(
        "event",
        STR,
        "contact, subscribed, registration, deposit, deposit.reversed, or a status alias",
    ),
    Param("uid", {"type": "string", "maxLength": MAX_UID_LEN}, "the click's uid"),
    Param("tg_id", TG_ID, "the Telegram user id"),
    Param("value", STR, "the amount (deposits)"),
    Param("currency", STR, "the currency code; default USD"),
    Param("eid", {"type": "string", "maxLength": MAX_EID_LEN}, "the network's transaction id"),
    Param("t", {"type": "integer", "minimum": MIN_OCCURRED_AT_MS}, "when it happened (epoch ms)"),
    Param("test", STR, "1: a test event, stored but never counted (docs/api.md#test-events)"),
)
_POSTBACK_BODY: Schema = {
    "type": "object",
    "description": "the fields of GET /e, and `token`; unknown fields are ignored",
    "properties": {"token": STR, **{p.name: {"type": ["string", "number"]} for p in _EVENT_QUERY}},
}
_EVENT_OR_IGNORED = {"anyOf": [_EVENT_ANSWER, _IGNORED_ANSWER]}

# POST /events/batch: its body, and its answer (an event's result: POST /events's answer for
# it, or the error POST /events would answer, with that status as ``http_status``).
_BATCH_BODY = closed(
    {
        "events": {
            **array(ref("EventIn")),
            "minItems": 1,
            "maxItems": MAX_BATCH_EVENTS,
            "description": "the events, each as POST /events takes it (each checked on its own)",
        }
    }
)
_REFUSED_RESULT = closed(
    {
        "ok": {"const": False},
        "status": {"const": "refused"},
        "http_status": INT,
        "error": STR,
        "detail": STR,
    },
    {k: v for k, v in ERROR_EXTRAS.items() if k != "reason"},
)
_BATCH_ANSWER = answer(
    {
        "queued": INT,
        "duplicate": INT,
        "refused": INT,
        "results": array({"anyOf": [_EVENT_ANSWER, _REFUSED_RESULT]}),
    }
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="post_events",
        route="POST /events",
        summary="Report an event",
        tag="ingress",
        auth="bearer",
        answers={200: json_answer("Stored (queued), or stored before (duplicate).", _EVENT_ANSWER)},
        errors=(*JSON_BODY, *MACRO, *CREDENTIAL),
        body=ref("EventIn"),
    ),
    Operation(
        id="post_events_batch",
        route="POST /events/batch",
        summary="Report up to 500 events in one request",
        tag="ingress",
        auth="bearer",
        answers={
            200: json_answer(
                "One result per event, in order: what POST /events answers for it, or the error"
                " it would answer; the accepted events stored in one commit.",
                _BATCH_ANSWER,
            )
        },
        errors=(*JSON_BODY, *CREDENTIAL),
        body=_BATCH_BODY,
        description="Each event is checked as POST /events checks it, and a bad one is refused"
        " in its own result (`http_status`, `error`, `detail`) while the others are stored."
        " The whole request is refused only for its credential, a body that is not a JSON"
        " object, no `events` list, an empty one or another field beside it (422), more than"
        " 500 events or a body over 1 MiB (413). A 503 stored none of the batch.",
    ),
    Operation(
        id="get_e",
        route="GET /e",
        summary="Report an event from a postback URL",
        tag="ingress",
        auth="ingest",
        answers={
            200: json_answer(
                "Stored, a duplicate, or an ignored status (logged, not counted).",
                _EVENT_OR_IGNORED,
            )
        },
        errors=("invalid_field", *MACRO, *CREDENTIAL),
        params=_EVENT_QUERY,
        description="Reads the space's parameter and status aliases too; other parameters are"
        " ignored. Every call is written to the space's postback log.",
    ),
    Operation(
        id="post_e",
        route="POST /e",
        summary="Report an event from a posted postback",
        tag="ingress",
        auth="ingest_or_body",
        answers={200: json_answer("As GET /e.", _EVENT_OR_IGNORED)},
        errors=(*JSON_BODY, *MACRO, *CREDENTIAL),
        params=_EVENT_QUERY,
        body=_POSTBACK_BODY,
        body_required=False,
        form=True,
        description="A form or JSON body; the token in the query or as the body field `token`."
        " Query parameters win over body fields of the same name.",
    ),
    Operation(
        id="post_bind",
        route="POST /bind",
        summary="Bind a Telegram user to a click uid",
        tag="ingress",
        auth="bearer",
        answers={
            200: json_answer(
                "Bound, or this pair again (unchanged).", _bind_answer("bound", "unchanged")
            )
        },
        errors=(*JSON_BODY, *MACRO, "uid_already_bound", *CREDENTIAL),
        body=ref("BindIn"),
    ),
    Operation(
        id="get_bind",
        route="GET /bind",
        summary="Bind from a URL",
        tag="ingress",
        auth="ingest",
        answers={
            200: json_answer(
                "As POST /bind; or ignored: the user has a bind, which a token bind never"
                " replaces (nothing stored).",
                _bind_answer("bound", "unchanged", "ignored"),
            )
        },
        errors=("invalid_field", *MACRO, "token_binds_off", "uid_already_bound", *CREDENTIAL),
        params=(
            Param(
                "uid",
                {"type": "string", "minLength": 1, "maxLength": MAX_UID_LEN},
                "the click's uid",
                required=True,
            ),
            Param("tg_id", TG_ID, "the Telegram user id", required=True),
        ),
    ),
    Operation(
        id="post_clicks",
        route="POST /clicks",
        summary="Record a click made outside our landing pages",
        tag="ingress",
        auth="bearer",
        answers={200: json_answer("The new click's uid.", answer({"uid": STR}))},
        errors=(*JSON_BODY, *CREDENTIAL),
        body=ref("ClickIn"),
    ),
)
