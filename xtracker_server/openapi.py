"""The machine-readable contract: an OpenAPI 3.1 document of every endpoint, served at
``GET /openapi.json`` (no credential).

``OPERATIONS`` holds one ``Operation`` per route and method: documenting a new endpoint is one
entry there. Request bodies reuse the pydantic models the server validates with (the wire
models of ``xtracker_wire``, ``LinkSpec``, ``DestinationInput`` ...); answers are described
here, next to the handlers' shapes in ``views.py`` and ``services/reports.py``. Two tests keep the
document true (tests/e2e/test_openapi.py): every route of the app must be in it, and real
answers of a running server, successes and errors, must match its schemas.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xtracker_server.admin.routes import Rotate, SpaceCreate, TokenBinds
from xtracker_server.admin.stream import END_REASONS
from xtracker_server.admin.tokens import TokenAdd
from xtracker_server.domain.deletion import (
    DESTINATION_KEYS,
    ERASURE_KEYS,
    LINK_KEYS,
    SPACE_KEYS,
)
from xtracker_server.domain.destinations import DestinationInput, DestinationKind
from xtracker_server.domain.links import LinkSpec
from xtracker_server.domain.outbound import Outcome
from xtracker_server.domain.postback_urls import EVENT_CHOICES, NETWORKS
from xtracker_server.domain.reports import LINK_COLUMNS, METRICS, UNRECORDED_COLUMNS, Bucket
from xtracker_server.state import app_state
from xtracker_server.store.api import DELIVERY_STATUSES, POSTBACK_OUTCOMES, FaultReason
from xtracker_server.version import VERSION
from xtracker_wire import (
    CANONICAL_EVENTS,
    MAX_BATCH_EVENTS,
    MAX_EID_LEN,
    MAX_TG_ID,
    MAX_UID_LEN,
    MIN_OCCURRED_AT_MS,
    BindIn,
    ClickIn,
    EventIn,
)

Schema = dict[str, Any]

# --- JSON Schema building blocks -----------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
MS: Schema = {"type": "integer", "description": "milliseconds since the Unix epoch (UTC)"}
TRUE: Schema = {"const": True}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum(values: tuple[str, ...] | list[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A JSON object with exactly these properties: an answer that gains a field the document
    does not know fails the conformance test, so the document cannot fall behind."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def answer(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A successful JSON answer: ``"ok": true`` and these fields."""
    return closed({"ok": TRUE, **required}, optional)


# --- Request bodies, from the models the server validates with ------------------------------

#: An ingest token's name (``domain.credentials.check_token_name``).
_TOKEN_NAME: Schema = {
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
    "description": "an ingest token's name: 1 to 40 letters, digits, '.', '_' or '-', starting"
    " with a letter or digit; lower-cased",
}

_MODELS: tuple[type[BaseModel], ...] = (
    EventIn,
    BindIn,
    ClickIn,
    SpaceCreate,
    Rotate,
    TokenBinds,
    TokenAdd,
    LinkSpec,
    DestinationInput,
)


def _model_schemas() -> dict[str, Schema]:
    """The pydantic models' JSON schemas (their ``$defs`` included), named after the model,
    with the limits their validators enforce in code added where JSON Schema can say them."""
    _, top = models_json_schema(
        [(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Schema] = top["$defs"]
    props = schemas["EventIn"]["properties"]
    props["uid"]["anyOf"][0]["maxLength"] = MAX_UID_LEN
    props["eid"]["anyOf"][0]["maxLength"] = MAX_EID_LEN
    props["tg_id"]["anyOf"][0].update(minimum=1, maximum=MAX_TG_ID - 1)
    props["occurred_at_ms"]["anyOf"][0]["minimum"] = MIN_OCCURRED_AT_MS
    props["value"]["description"] = 'an amount, exact: a decimal string ("25.00") or a number'
    props["currency"]["description"] = "the currency code; default USD"
    bind = schemas["BindIn"]["properties"]
    bind["uid"].update(minLength=1, maxLength=MAX_UID_LEN)
    bind["tg_id"].update(minimum=1, maximum=MAX_TG_ID - 1)
    schemas["Rotate"]["properties"]["name"]["anyOf"][0].update(_TOKEN_NAME)
    schemas["TokenAdd"]["properties"]["name"].update(_TOKEN_NAME)
    return schemas


def _link_create(spec: Schema) -> Schema:
    """``LinkSpec`` and the slug, which is not part of a link's definition."""
    body = copy.deepcopy(spec)
    slug = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9-]+$"}
    body["properties"] = {"slug": slug, **body["properties"]}
    body["required"] = ["slug", *body["required"]]
    body["title"] = "LinkCreate"
    return body


def _link_change(spec: Schema) -> Schema:
    """Any fields of ``LinkSpec``; the link is validated again as a whole."""
    body = copy.deepcopy(spec)
    body.pop("required", None)
    body["title"] = "LinkChange"
    return body


def _link(spec: Schema) -> Schema:
    """A link as the admin API shows it: every field of its definition, and more."""
    props = {name: _without_default(p) for name, p in spec["properties"].items()}
    return closed(
        {
            "slug": STR,
            "space_id": INT,
            **props,
            "landing_url": STR,
            "redirect_url": STR,
            "created_ms": MS,
            "updated_ms": MS,
        }
    )


def _without_default(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k not in ("default", "title")}


_FIELD_PROBLEM = closed({"field": STR, "problem": STR})

#: The keys an error may carry besides ``ok``, ``error`` and ``detail``.
_ERROR_EXTRAS: dict[str, Schema] = {
    "field": {"type": "string", "description": "the field at fault, as the sender named it"},
    "fields": array(_FIELD_PROBLEM),
    "macro": {"type": "string", "description": "the unfilled placeholder, URL-decoded"},
    "reason": {
        **enum([r.value for r in FaultReason]),
        "description": "how the storage failed (docs/operations.md#health-checks-and-storage"
        "-faults)",
    },
}
#: ``{"ok": false, "error": "<code>", "detail": "..."}``, whatever the code.
_ERROR = closed({"ok": {"const": False}, "error": STR, "detail": STR}, _ERROR_EXTRAS)


@dataclass(frozen=True)
class ErrorCode:
    """One ``error`` code: its status, when it is answered, the extra keys it always carries
    (``required``) or may carry (``optional``), and whether a Retry-After header comes with it."""

    status: int
    when: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    retry_after: bool = False

    def schema(self, code: str) -> Schema:
        out = closed(
            {
                "ok": {"const": False},
                "error": {"const": code},
                "detail": STR,
                **{k: _ERROR_EXTRAS[k] for k in self.required},
            },
            {k: _ERROR_EXTRAS[k] for k in self.optional},
        )
        return {"description": self.when, **out}


#: Every error code an operation may answer (docs/api.md#errors, xtracker_server/errors.py).
ERROR_CODES: dict[str, ErrorCode] = {
    "malformed": ErrorCode(
        400,
        "The body is not JSON, not a JSON object, not I-JSON (a field given twice, a lone"
        " surrogate: `field` names it), or unreadable.",
        optional=("field",),
    ),
    "unfilled_macro": ErrorCode(
        400,
        "A field holds a placeholder its sender never filled, such as {transaction_id}:"
        " `field` names it as sent, `macro` is the placeholder. Nothing was stored.",
        required=("field", "macro"),
    ),
    "unauthorized": ErrorCode(
        401, "No credential, a wrong or expired one, or one of the wrong kind."
    ),
    "forbidden": ErrorCode(403, "A bearer secret of another space."),
    "token_binds_off": ErrorCode(
        403, "The space takes no binds made with the ingest token; nothing was stored."
    ),
    "not_found": ErrorCode(
        404, "No such space, link, destination, ingest token (by name) or endpoint."
    ),
    "uid_already_bound": ErrorCode(
        409, "The uid is bound to another Telegram user; the first binding stays."
    ),
    "slug_taken": ErrorCode(409, "Another link on the server has this slug.", required=("field",)),
    "token_name_taken": ErrorCode(409, "The space has a live ingest token of this name."),
    "too_large": ErrorCode(413, "The body is over 64 KiB."),
    "invalid_field": ErrorCode(
        422,
        "A field is missing, unknown, of the wrong type or impossible: `field` names the first,"
        " `fields` lists every problem.",
        required=("field", "fields"),
    ),
    "rate_limited": ErrorCode(
        429,
        "Too many requests with this credential, or too many failed authentications from"
        " this address (XTRACKER_AUTH_FAILURES_PER_MINUTE); retry after Retry-After seconds.",
        retry_after=True,
    ),
    "too_many_streams": ErrorCode(
        429,
        "As many live streams are open as allowed, with this credential or on this space;"
        " retry when one has closed.",
        retry_after=True,
    ),
    "unavailable": ErrorCode(
        503,
        "The storage failed (`reason`: read_only, disk_full, io_error, locked, corrupt,"
        " writer_down, timeout, commit_failed); nothing was stored (after `timeout` the write"
        " may still commit: a retried event is then a duplicate); retry after Retry-After"
        " seconds.",
        required=("reason",),
        retry_after=True,
    ),
}
_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "seconds to wait",
    }
}


def _error_schema_name(code: str) -> str:
    return f"Error_{code}"


def _error_response_name(codes: tuple[str, ...]) -> str:
    return f"Error{ERROR_CODES[codes[0]].status}_" + "_or_".join(codes)


def _error_response(codes: tuple[str, ...]) -> Schema:
    """The answer of one status that holds one of ``codes`` (all of that status)."""
    schemas = [ref(_error_schema_name(c)) for c in codes]
    response: Schema = {
        "description": " ".join(f"`{c}`: {ERROR_CODES[c].when}" for c in codes),
        "content": {
            "application/json": {"schema": schemas[0] if len(codes) == 1 else {"anyOf": schemas}}
        },
    }
    if all(ERROR_CODES[c].retry_after for c in codes):
        response["headers"] = _RETRY_AFTER
    return response


def _errors_by_status(codes: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """An operation's error codes grouped by status, in the order of ``ERROR_CODES``."""
    grouped: dict[int, tuple[str, ...]] = {}
    for code in ERROR_CODES:
        if code in codes:
            status = ERROR_CODES[code].status
            grouped[status] = (*grouped.get(status, ()), code)
    return dict(sorted(grouped.items()))


# --- Answers -------------------------------------------------------------------------------

_STORED = {"inbox_id": STR, "attributed": BOOL}
#: The stored event's amount, on a duplicate that names another one (domain/dedup.py).
_CONFLICT = {
    "description": "the stored event's amount and currency (null: stored without an amount)",
    **closed({"value": nullable(STR), "currency": nullable(STR)}),
}
_EVENT_ANSWER: Schema = {
    "anyOf": [
        answer({"status": {"const": "queued"}, **_STORED}, {"warnings": array(STR)}),
        {
            **answer(
                {"status": {"const": "duplicate"}, **_STORED},
                {"conflict": _CONFLICT, "detail": STR},
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


_HEALTH_PARTS = {"version": STR, "schema": INT, "writer": enum(["running", "stopped"])}
_HEALTHY = closed({"ok": TRUE, **_HEALTH_PARTS, "storage": {"const": "ok"}})
#: /healthz while the storage fails: the error shape of 503 unavailable and the health fields.
_UNHEALTHY = closed(
    {
        "ok": {"const": False},
        "error": {"const": "unavailable"},
        "reason": _ERROR_EXTRAS["reason"],
        "detail": STR,
        "since_ms": {**nullable(MS), "description": "since when (null: the writer is not up)"},
        **_HEALTH_PARTS,
        "storage": {"const": "failing"},
    }
)
_SPACE = closed({"id": INT, "name": STR, "created_ms": MS})
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
_POSTBACK = closed(
    {
        "id": INT,
        "at_ms": MS,
        "ip": nullable(STR),
        "token_name": nullable(STR),
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
        "conflict": nullable(_CONFLICT),
        "error": nullable(STR),
        "detail": nullable(STR),
    }
)
_COUNT: Schema = {"type": "integer", "minimum": 0}
_TOKEN_BINDS = answer({"space_id": INT, "token_binds": BOOL})
_BEARER_REVOKED = answer({"space_id": INT, "kind": {"const": "bearer"}, "revoked": _COUNT})
_INGEST_REVOKED = answer(
    {"space_id": INT, "kind": {"const": "ingest"}, "name": STR, "revoked": _COUNT}
)
_INGEST_TOKEN = closed(
    {
        "name": STR,
        "hint": {"type": "string", "description": "the prefix and last four characters"},
        "created_ms": MS,
        "expires_ms": {
            **nullable(MS),
            "description": "null: the token's current secret; else a rotated-out one's end",
        },
        "last_postback_ms": nullable(MS),
    }
)
_CURRENCY_CODE: Schema = {
    "type": "string",
    "pattern": "^[A-Za-z0-9]{3,10}$",
    "description": "3 to 10 ASCII letters or digits; upper-cased",
}
_CURRENCIES = answer(
    {
        "space_id": INT,
        "allowed": {**array(STR), "description": "the space's own codes, sorted"},
        "crypto": {**array(STR), "description": "the crypto tickers every space accepts"},
    }
)
_STREAMS = answer(
    {
        "open": _COUNT,
        "spaces": {
            "type": "object",
            "description": "space id -> its open streams",
            "propertyNames": {"pattern": "^[0-9]+$"},
            "additionalProperties": _COUNT,
        },
        "reader": closed({"running": BOOL, "reads": _COUNT}),
    }
)


def _removed(keys: tuple[str, ...]) -> Schema:
    return {
        "description": "what it removed, or would remove (dry_run): every count, zeros included"
        " (docs/api.md#deleting-and-erasing)",
        **closed({k: _COUNT for k in keys}),
    }


def _deletion(head: Mapping[str, Schema], keys: tuple[str, ...]) -> Schema:
    return answer({"space_id": INT, **head, "dry_run": BOOL, "removed": _removed(keys)})


_ERASE_UID: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_UID_LEN}
_ERASE_TG_ID: Schema = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_TG_ID - 1},
        {"type": "string", "pattern": "^[0-9]+$"},
    ]
}
_ERASE_BODY: Schema = {
    "description": "exactly one of uid and tg_id; dry_run: only count",
    "oneOf": [
        closed({"uid": _ERASE_UID}, {"dry_run": BOOL}),
        closed({"tg_id": _ERASE_TG_ID}, {"dry_run": BOOL}),
    ],
}
_PERSON: Schema = {"anyOf": [closed({"uid": STR}), closed({"tg_id": INT})]}
#: The ``data`` of a live stream's last message, ``event: end``: why the server ended it.
_STREAM_END = closed({"type": {"const": "end"}, "reason": enum(END_REASONS)})
_CURSOR_PART = "[0-9]+(\\.[0-9]+)*"  # one table's part of a stream cursor: 12, or 345.2.5
_ORIGIN = enum(["default", "custom", "removed"])
_ALIASES = answer(
    {
        "statuses": array(closed({"alias": STR, "maps_to": nullable(STR), "origin": _ORIGIN})),
        "params": array(closed({"name": STR, "field": nullable(STR), "origin": _ORIGIN})),
    }
)
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
}
_WINDOW = {"from_ms": MS, "to_ms": MS}
_FUNNEL = answer(
    {
        **_WINDOW,
        "tz": STR,
        "link": nullable(STR),
        **_FUNNEL_NUMBERS,
        "unattributed": closed({**{e: INT for e in CANONICAL_EVENTS}, "revenue": _MONEY}),
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


# --- Operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    description: str = ""
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class Answer:
    """An answer other than the error shape: its media types and their schemas."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)


def json_answer(description: str, schema: Schema) -> Answer:
    return Answer(description, {"application/json": schema})


@dataclass(frozen=True)
class Operation:
    """One route and method. ``route``: "METHOD /path"; ``auth``: a key of ``SECURITY``;
    ``answers``: its answers other than errors; ``errors``: the codes of ``ERROR_CODES`` it may
    answer; ``body``: the schema of its request body (JSON, and a form where ``form``)."""

    id: str
    route: str
    summary: str
    tag: str
    auth: str
    answers: Mapping[int, Answer]
    errors: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    form: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.errors) - ERROR_CODES.keys())
        if unknown:
            raise ValueError(f"{self.id}: unknown error codes {unknown}; add them to ERROR_CODES")

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]


SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "bearer": [{"spaceBearer": []}],
    "ingest": [{"ingestToken": []}],
    # POST /e: the token in the query, or the body field ``token`` (hence the empty option)
    "ingest_or_body": [{"ingestToken": []}, {}],
    "admin": [{"adminToken": []}],
    "report": [{"adminToken": []}, {"spaceBearer": []}],
    "metrics": [{"adminToken": []}, {"metricsToken": []}],
}

_SPACE_ID = Param(
    "space_id", {"type": "integer", "minimum": 1}, "the space's id", required=True, where="path"
)
_DESTINATION_ID = Param(
    "destination_id",
    {"type": "integer", "minimum": 1},
    "the destination's id",
    required=True,
    where="path",
)
_SLUG = Param("slug", STR, "the link's slug", required=True, where="path")
_TOKEN = Param("name", STR, "the ingest token's name", required=True, where="path")
_TG_ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_TG_ID - 1}
_DRY_RUN = Param(
    "dry_run",
    enum(["1", "0", "true", "false", "yes", "no"]),
    "1, true or yes: only count what would be removed; 0, false, no or absent: delete (any"
    " case); anything else is 422",
)
_LIMIT = Param("limit", {"type": "integer", "minimum": 1}, "default 100, at most 1000")

# The error codes, by what an operation does.
_JSON_BODY = ("malformed", "too_large", "invalid_field")
_SPACE_CRED = ("unauthorized", "rate_limited", "unavailable")
_ADMIN = ("unauthorized", "not_found", "rate_limited", "unavailable")  # no such space
_REPORT = ("unauthorized", "forbidden", "not_found", "rate_limited", "unavailable")
_MACRO = ("unfilled_macro",)  # the ingress endpoints refuse unfilled macros

_EVENT_QUERY = (
    Param("event", STR, "contact, subscribed, registration, deposit, or a status alias"),
    Param("uid", {"type": "string", "maxLength": MAX_UID_LEN}, "the click's uid"),
    Param("tg_id", _TG_ID, "the Telegram user id"),
    Param("value", STR, "the amount (deposits)"),
    Param("currency", STR, "the currency code; default USD"),
    Param("eid", {"type": "string", "maxLength": MAX_EID_LEN}, "the network's transaction id"),
    Param("t", {"type": "integer", "minimum": MIN_OCCURRED_AT_MS}, "when it happened (epoch ms)"),
)
_POSTBACK_BODY: Schema = {
    "type": "object",
    "description": "the fields of GET /e, and `token`; unknown fields are ignored",
    "properties": {"token": STR, **{p.name: {"type": ["string", "number"]} for p in _EVENT_QUERY}},
}
_WINDOW_QUERY = (
    Param("days", {"type": "integer", "minimum": 1}, "the last N days (default 7)"),
    Param("from", STR, "the window's start: an ISO date or datetime, or epoch ms"),
    Param("to", STR, "the window's end (excluded); default now"),
    Param("tz", STR, "an IANA time zone; default UTC"),
)
_ONE_LINK = Param("link", STR, "one link's slug")
_EVENT_OR_IGNORED = {"anyOf": [_EVENT_ANSWER, _IGNORED_ANSWER]}
_NO_LINK = Answer(
    "No such link or a disabled one (an HTML page), or a path that is not a slug (the error"
    " shape).",
    {"text/html": STR, "application/json": ref("Error")},
)
_LANDING_DOWN = Answer(
    "The link cannot be looked up: storage fails and this server has not seen the link since"
    " it started (an HTML page). A link it knows is still served, its click kept until storage"
    " takes it.",
    {"text/html": STR},
    _RETRY_AFTER,
)
_LANDING = (
    "Records a click and mints its uid (a HEAD request or a crawler records none). No"
    " credential: the slug finds the link. See docs/links.md."
)

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
    {k: v for k, v in _ERROR_EXTRAS.items() if k != "reason"},
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
    # --- ingress: what bots and partner networks call
    Operation(
        id="post_events",
        route="POST /events",
        summary="Report an event",
        tag="ingress",
        auth="bearer",
        answers={200: json_answer("Stored (queued), or stored before (duplicate).", _EVENT_ANSWER)},
        errors=(*_JSON_BODY, *_MACRO, *_SPACE_CRED),
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
        errors=(*_JSON_BODY, *_SPACE_CRED),
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
        errors=("invalid_field", *_MACRO, *_SPACE_CRED),
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
        errors=(*_JSON_BODY, *_MACRO, *_SPACE_CRED),
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
        errors=(*_JSON_BODY, *_MACRO, "uid_already_bound", *_SPACE_CRED),
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
        errors=("invalid_field", *_MACRO, "token_binds_off", "uid_already_bound", *_SPACE_CRED),
        params=(
            Param(
                "uid",
                {"type": "string", "minLength": 1, "maxLength": MAX_UID_LEN},
                "the click's uid",
                required=True,
            ),
            Param("tg_id", _TG_ID, "the Telegram user id", required=True),
        ),
    ),
    Operation(
        id="post_clicks",
        route="POST /clicks",
        summary="Record a click made outside our landing pages",
        tag="ingress",
        auth="bearer",
        answers={200: json_answer("The new click's uid.", answer({"uid": STR}))},
        errors=(*_JSON_BODY, *_SPACE_CRED),
        body=ref("ClickIn"),
    ),
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
                _RETRY_AFTER,
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
        errors=("unauthorized", "rate_limited", "unavailable"),
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
    # --- landing pages (public)
    Operation(
        id="get_landing",
        route="GET /l/{slug}",
        summary="A link's landing page",
        tag="landing",
        auth="none",
        answers={200: Answer("The page.", {"text/html": STR}), 404: _NO_LINK, 503: _LANDING_DOWN},
        params=(_SLUG,),
        description=_LANDING,
    ),
    Operation(
        id="head_landing",
        route="HEAD /l/{slug}",
        summary="A link's landing page, without a click",
        tag="landing",
        auth="none",
        answers={200: Answer("The page's headers."), 404: _NO_LINK, 503: _LANDING_DOWN},
        params=(_SLUG,),
    ),
    Operation(
        id="get_redirect",
        route="GET /r/{slug}",
        summary="A link's instant redirect",
        tag="landing",
        auth="none",
        answers={
            302: Answer(
                "To where the link leads.", headers={"Location": {"required": True, "schema": STR}}
            ),
            404: _NO_LINK,
            503: _LANDING_DOWN,
        },
        params=(_SLUG,),
        description=_LANDING,
    ),
    Operation(
        id="head_redirect",
        route="HEAD /r/{slug}",
        summary="A link's redirect, without a click",
        tag="landing",
        auth="none",
        answers={
            302: Answer(
                "To the link's landing page.",
                headers={"Location": {"required": True, "schema": STR}},
            ),
            404: _NO_LINK,
            503: _LANDING_DOWN,
        },
        params=(_SLUG,),
    ),
    # --- admin: spaces and credentials (admin token)
    Operation(
        id="list_spaces",
        route="GET /admin/spaces",
        summary="List spaces",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Every space.", answer({"spaces": array(_SPACE)}))},
        errors=("unauthorized", "rate_limited", "unavailable"),
    ),
    Operation(
        id="create_space",
        route="POST /admin/spaces",
        summary="Create a space",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The space and its credentials, shown only here.",
                answer({"id": INT, "name": STR, "bearer": STR, "ingest_token": STR}),
            )
        },
        errors=(*_JSON_BODY, "unauthorized", "rate_limited", "unavailable"),
        body=ref("SpaceCreate"),
    ),
    Operation(
        id="rotate_key",
        route="POST /admin/spaces/{space_id}/rotate",
        summary="Rotate a credential",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The new secret; the previous ones stay valid until previous_valid_until_ms.",
                {
                    "anyOf": [
                        answer({"space_id": INT, **secret, "previous_valid_until_ms": nullable(MS)})
                        for secret in ({"bearer": STR}, {"name": STR, "ingest_token": STR})
                    ]
                },
            )
        },
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("Rotate"),
        body_required=False,
    ),
    Operation(
        id="revoke_key",
        route="POST /admin/spaces/{space_id}/revoke",
        summary="End rotated-out secrets now",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "How many secrets stopped working (0: none was left to end); the current one"
                " stays.",
                {"anyOf": [_BEARER_REVOKED, _INGEST_REVOKED]},
            )
        },
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("Rotate"),
        body_required=False,
        description="After a leak: rotate, then revoke. The live streams the revoked secrets"
        " opened end too.",
    ),
    Operation(
        id="get_token_binds",
        route="GET /admin/spaces/{space_id}/token-binds",
        summary="Whether the space takes binds made with the ingest token",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The setting (on by default).", _TOKEN_BINDS)},
        errors=_ADMIN,
        params=(_SPACE_ID,),
    ),
    Operation(
        id="set_token_binds",
        route="PATCH /admin/spaces/{space_id}/token-binds",
        summary="Take binds made with the ingest token, or refuse them",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The setting now in effect.", _TOKEN_BINDS)},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("TokenBinds"),
        description="Off: GET /bind answers 403 token_binds_off; POST /bind is unaffected.",
    ),
    Operation(
        id="list_tokens",
        route="GET /admin/spaces/{space_id}/tokens",
        summary="List ingest tokens",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The live ones, rotated-out secrets in their grace period too, by name; never"
                " the secrets.",
                answer({"tokens": array(_INGEST_TOKEN)}),
            )
        },
        errors=_ADMIN,
        params=(_SPACE_ID,),
    ),
    Operation(
        id="add_token",
        route="POST /admin/spaces/{space_id}/tokens",
        summary="Add a named ingest token",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The new token's secret, shown only here.",
                answer({"space_id": INT, "name": STR, "ingest_token": STR}),
            )
        },
        errors=(*_JSON_BODY, "token_name_taken", *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("TokenAdd"),
    ),
    Operation(
        id="revoke_token",
        route="DELETE /admin/spaces/{space_id}/tokens/{name}",
        summary="Revoke a named ingest token",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Every secret of the token stopped working (rotated-out ones too).",
                answer(
                    {
                        "space_id": INT,
                        "kind": {"const": "ingest"},
                        "name": STR,
                        "revoked": {"type": "integer", "minimum": 1},
                    }
                ),
            )
        },
        errors=_ADMIN,
        params=(_SPACE_ID, _TOKEN),
        description="404 when the space has no live ingest token of that name.",
    ),
    Operation(
        id="get_currencies",
        route="GET /admin/spaces/{space_id}/currencies",
        summary="The space's own currency codes",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Besides ISO 4217 and the crypto tickers.", _CURRENCIES)},
        errors=_ADMIN,
        params=(_SPACE_ID,),
    ),
    Operation(
        id="put_currencies",
        route="PUT /admin/spaces/{space_id}/currencies",
        summary="Replace the space's own currency codes",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The list now in effect.", _CURRENCIES)},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=closed(
            {
                "allowed": {
                    **array(_CURRENCY_CODE),
                    "description": "the whole list ([] empties it); at most 50 different codes",
                }
            }
        ),
    ),
    # --- admin: links
    Operation(
        id="list_links",
        route="GET /admin/spaces/{space_id}/links",
        summary="List links",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The space's links, oldest first.", answer({"links": array(ref("Link"))})
            )
        },
        errors=_ADMIN,
        params=(_SPACE_ID,),
    ),
    Operation(
        id="create_link",
        route="POST /admin/spaces/{space_id}/links",
        summary="Create a link",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The link's slug, kind and URLs.",
                answer({"slug": STR, "kind": STR, "landing_url": STR, "redirect_url": STR}),
            )
        },
        errors=(*_JSON_BODY, "slug_taken", *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("LinkCreate"),
    ),
    Operation(
        id="update_link",
        route="PATCH /admin/spaces/{space_id}/links/{slug}",
        summary="Change a link",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The whole link.", answer({"link": ref("Link")}))},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID, _SLUG),
        body=ref("LinkChange"),
    ),
    Operation(
        id="delete_link",
        route="DELETE /admin/spaces/{space_id}/links/{slug}",
        summary="Delete a link",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "What it removed, or with dry_run what it would remove.",
                _deletion({"link": STR}, LINK_KEYS),
            )
        },
        errors=("invalid_field", *_ADMIN),
        params=(_SPACE_ID, _SLUG, _DRY_RUN),
        description="Its landing and redirect answer 404 at once; its clicks and their events"
        " stay and count under no link. 404: no such link in this space.",
    ),
    Operation(
        id="delete_space",
        route="DELETE /admin/spaces/{space_id}",
        summary="Delete a space",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "What it removed, or with dry_run what it would remove.",
                _deletion({}, SPACE_KEYS),
            )
        },
        errors=("invalid_field", *_ADMIN),
        params=(_SPACE_ID, _DRY_RUN),
        description="The space and everything of it; its credentials stop working and its live"
        " streams end at once. A deletion cut short is finished by the same request.",
    ),
    Operation(
        id="erase",
        route="POST /admin/spaces/{space_id}/erase",
        summary="Erase one person's data",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "What it removed, or with dry_run what it would remove.",
                _deletion({"person": _PERSON}, ERASURE_KEYS),
            )
        },
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=_ERASE_BODY,
        description="Everything the space holds about a uid or a Telegram user id: clicks,"
        " events, binds, postback log rows and deliveries.",
    ),
    # --- admin: destinations and the outbox
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
        errors=_ADMIN,
        params=(_SPACE_ID,),
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
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=ref("DestinationInput"),
    ),
    Operation(
        id="update_destination",
        route="PATCH /admin/spaces/{space_id}/destinations/{destination_id}",
        summary="Change a destination",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The whole destination.", answer({"destination": _DESTINATION}))},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID, _DESTINATION_ID),
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
        answers={
            200: json_answer(
                "What it removed, or with dry_run what it would remove.",
                _deletion({"destination_id": INT}, DESTINATION_KEYS),
            )
        },
        errors=("invalid_field", *_ADMIN),
        params=(_SPACE_ID, _DESTINATION_ID, _DRY_RUN),
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
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID, _DESTINATION_ID),
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
        errors=("invalid_field", *_ADMIN),
        params=(
            _SPACE_ID,
            Param("status", enum(DELIVERY_STATUSES)),
            Param("destination", {"type": "integer", "minimum": 1}, "a destination's id"),
            _LIMIT,
        ),
    ),
    Operation(
        id="replay_outbox",
        route="POST /admin/spaces/{space_id}/outbox/replay",
        summary="Send deliveries again",
        tag="admin",
        auth="admin",
        answers={200: json_answer("How many became pending.", answer({"replayed": INT}))},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=closed({}, {"status": enum(DELIVERY_STATUSES), "destination_id": INT}),
        body_required=False,
    ),
    # --- admin: postbacks
    Operation(
        id="list_postbacks",
        route="GET /admin/spaces/{space_id}/postbacks",
        summary="The postback log",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Newest first; tokens masked.", answer({"postbacks": array(_POSTBACK)})
            )
        },
        errors=("invalid_field", *_ADMIN),
        params=(_SPACE_ID, Param("outcome", enum(POSTBACK_OUTCOMES)), _LIMIT),
    ),
    Operation(
        id="get_aliases",
        route="GET /admin/spaces/{space_id}/postbacks/aliases",
        summary="The postback aliases in effect",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Sorted by name.", _ALIASES)},
        errors=_ADMIN,
        params=(_SPACE_ID,),
    ),
    Operation(
        id="change_aliases",
        route="PATCH /admin/spaces/{space_id}/postbacks/aliases",
        summary="Add, change or remove postback aliases",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Every alias now in effect.", _ALIASES)},
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
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
        errors=(*_JSON_BODY, *_ADMIN),
        params=(_SPACE_ID,),
        body=closed(
            {"network": enum(NETWORKS)},
            {"event": enum(EVENT_CHOICES), "token": STR, "rotate": BOOL},
        ),
    ),
    # --- reports and the live stream (admin token, or the space's own bearer secret)
    Operation(
        id="report_funnel",
        route="GET /admin/spaces/{space_id}/reports/funnel",
        summary="The funnel and its conversion gauge",
        tag="reports",
        auth="report",
        answers={200: json_answer("See docs/reports.md.", _FUNNEL)},
        errors=("invalid_field", *_REPORT),
        params=(_SPACE_ID, _ONE_LINK, *_WINDOW_QUERY),
    ),
    Operation(
        id="report_links",
        route="GET /admin/spaces/{space_id}/reports/links",
        summary="Per link",
        tag="reports",
        auth="report",
        answers={200: json_answer("One row per link.", _LINKS_REPORT)},
        errors=("invalid_field", *_REPORT),
        params=(
            _SPACE_ID,
            Param("sort", enum(LINK_COLUMNS)),
            Param("desc", BOOL),
            Param("currency", STR),
            *_WINDOW_QUERY,
        ),
    ),
    Operation(
        id="report_series",
        route="GET /admin/spaces/{space_id}/reports/series",
        summary="A time series",
        tag="reports",
        auth="report",
        answers={200: json_answer("Every bucket, zeros included.", _SERIES)},
        errors=("invalid_field", *_REPORT),
        params=(
            _SPACE_ID,
            Param("metric", enum(METRICS), required=True),
            Param("bucket", enum([b.value for b in Bucket])),
            Param("currency", STR),
            _ONE_LINK,
            *_WINDOW_QUERY,
        ),
    ),
    Operation(
        id="report_deliveries",
        route="GET /admin/spaces/{space_id}/reports/deliveries",
        summary="Delivery health",
        tag="reports",
        auth="report",
        answers={
            200: json_answer(
                "Per destination.", answer({"recent_ms": INT, "destinations": array(_HEALTH_ROW)})
            )
        },
        errors=_REPORT,
        params=(_SPACE_ID,),
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
        errors=("invalid_field", "too_many_streams", *_REPORT),
        params=(
            _SPACE_ID,
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
        errors=("unauthorized", "rate_limited", "unavailable"),
    ),
)


# --- The document --------------------------------------------------------------------------


def _parameter(p: Param) -> Schema:
    out: Schema = {"name": p.name, "in": p.where, "schema": p.schema}
    if p.required:
        out["required"] = True
    if p.description:
        out["description"] = p.description
    return out


def _responses(op: Operation) -> Schema:
    responses: Schema = {}
    for status, a in op.answers.items():
        response: Schema = {"description": a.description}
        if a.content:
            response["content"] = {m: {"schema": s} for m, s in a.content.items()}
        if a.headers:
            response["headers"] = dict(a.headers)
        responses[str(status)] = response
    for status, codes in _errors_by_status(op.errors).items():
        responses[str(status)] = {"$ref": f"#/components/responses/{_error_response_name(codes)}"}
    return responses


def _operation(op: Operation) -> Schema:
    out: Schema = {
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "responses": _responses(op),
    }
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        content = {"application/json": {"schema": op.body}}
        if op.form:
            content["application/x-www-form-urlencoded"] = {"schema": op.body}
        out["requestBody"] = {"required": op.body_required, "content": content}
    return out


def _schemas() -> dict[str, Schema]:
    models = _model_schemas()
    spec = models["LinkSpec"]
    return {
        "Error": _ERROR,
        **{_error_schema_name(c): e.schema(c) for c, e in ERROR_CODES.items()},
        **models,
        "LinkCreate": _link_create(spec),
        "LinkChange": _link_change(spec),
        "Link": _link(spec),
        "StreamEnd": _STREAM_END,
    }


def _error_responses() -> dict[str, Schema]:
    """One shared response per set of codes that an operation answers with one status."""
    sets = {codes for op in OPERATIONS for codes in _errors_by_status(op.errors).values()}
    ordered = sorted(sets, key=lambda codes: (ERROR_CODES[codes[0]].status, codes))
    return {_error_response_name(c): _error_response(c) for c in ordered}


@functools.cache
def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document of a server whose public URL is ``base_url``."""
    paths: dict[str, dict[str, Schema]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "XTRACKER",
            "version": VERSION,
            "description": "Conversion tracking for Telegram funnels. Errors answer"
            ' `{"ok": false, "error": "<code>", "detail": "..."}`; the prose is docs/api.md.',
        },
        "servers": [{"url": base_url}],
        "tags": [{"name": t} for t in ("ingress", "landing", "admin", "reports", "meta")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "spaceBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the space's bearer secret (xt_sk_…)",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the operator's admin token",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "XTRACKER_METRICS_TOKEN, for GET /metrics only",
                },
                "ingestToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "the space's ingest token (xt_it_…)",
                },
            },
            "schemas": _schemas(),
            "responses": _error_responses(),
        },
    }


async def openapi_json(request: Request) -> Response:
    body = json.dumps(document(app_state(request).settings.base_url), separators=(",", ":"))
    return Response(body, media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
