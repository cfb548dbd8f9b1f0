"""The error shape ``{"ok": false, "error": "<code>", "detail": "..."}``: every code an operation
may answer (``ERROR_CODES``), the groups of codes by what an operation does, and the shared
responses the document names them by (``#/components/responses/Error422_invalid_field``)."""

from __future__ import annotations

from dataclasses import dataclass

from xtracker_server.openapi.schema import STR, Schema, array, closed, enum, ref
from xtracker_server.store.api import FaultReason

__all__ = [
    "ADMIN",
    "CREDENTIAL",
    "ERROR",
    "ERROR_CODES",
    "ERROR_EXTRAS",
    "JSON_BODY",
    "MACRO",
    "REPORT",
    "RETRY_AFTER",
    "ErrorCode",
    "error_response",
    "error_response_name",
    "error_schema_name",
    "errors_by_status",
]

_FIELD_PROBLEM = closed({"field": STR, "problem": STR})

#: The keys an error may carry besides ``ok``, ``error`` and ``detail``.
ERROR_EXTRAS: dict[str, Schema] = {
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
ERROR = closed({"ok": {"const": False}, "error": STR, "detail": STR}, ERROR_EXTRAS)


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
                **{k: ERROR_EXTRAS[k] for k in self.required},
            },
            {k: ERROR_EXTRAS[k] for k in self.optional},
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
        " writer_down, timeout, commit_failed; a report: rebuilding, while the report rollup is"
        " being built); nothing was stored (after `timeout` the write"
        " may still commit: a retried event is then a duplicate); retry after Retry-After"
        " seconds.",
        required=("reason",),
        retry_after=True,
    ),
}

# The error codes, by what an operation does.
JSON_BODY = ("malformed", "too_large", "invalid_field")  # it reads a JSON body
CREDENTIAL = ("unauthorized", "rate_limited", "unavailable")  # it takes a credential
ADMIN = ("unauthorized", "not_found", "rate_limited", "unavailable")  # no such space
REPORT = ("unauthorized", "forbidden", "not_found", "rate_limited", "unavailable")
MACRO = ("unfilled_macro",)  # the ingress endpoints refuse unfilled macros

RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "seconds to wait",
    }
}


def error_schema_name(code: str) -> str:
    return f"Error_{code}"


def error_response_name(codes: tuple[str, ...]) -> str:
    return f"Error{ERROR_CODES[codes[0]].status}_" + "_or_".join(codes)


def error_response(codes: tuple[str, ...]) -> Schema:
    """The answer of one status that holds one of ``codes`` (all of that status)."""
    schemas = [ref(error_schema_name(c)) for c in codes]
    response: Schema = {
        "description": " ".join(f"`{c}`: {ERROR_CODES[c].when}" for c in codes),
        "content": {
            "application/json": {"schema": schemas[0] if len(codes) == 1 else {"anyOf": schemas}}
        },
    }
    if all(ERROR_CODES[c].retry_after for c in codes):
        response["headers"] = RETRY_AFTER
    return response


def errors_by_status(codes: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """An operation's error codes grouped by status, in the order of ``ERROR_CODES``."""
    grouped: dict[int, tuple[str, ...]] = {}
    for code in ERROR_CODES:
        if code in codes:
            status = ERROR_CODES[code].status
            grouped[status] = (*grouped.get(status, ()), code)
    return dict(sorted(grouped.items()))
