"""Every error a client can get: ``{"ok": false, "error": "<code>", "detail": "..."}``.

400 malformed          the body is not JSON, or not a JSON object
400 unfilled_macro     a field holds a placeholder its sender never filled ({transaction_id})
401 unauthorized       no credential, a wrong one, or one of the wrong kind
403 forbidden          reports/stream: a bearer secret of another space
403 token_binds_off    GET /bind: the space takes no binds made with the ingest token
404 not_found          no such endpoint or object
405 method_not_allowed
409 uid_already_bound  /bind: the uid belongs to another Telegram user (the first bind stays)
409 slug_taken         admin: another link already has this slug (slugs are server-wide)
409 token_name_taken   admin: the space already has a live ingest token of this name
413 too_large          the body is over 64 KiB (POST /events/batch: 1 MiB or 500 events)
422 invalid_field      a field is missing, has the wrong type or an impossible value
429 rate_limited       too many requests with this credential, or too many failed
                       authentications from this address; see Retry-After
429 too_many_streams   admin: as many live streams open as allowed (credential or space)
503 unavailable        the storage failed (``reason``: read_only, disk_full, io_error, locked,
                       corrupt, writer_down, timeout, commit_failed; a report: rebuilding, the
                       report rollup being built); see Retry-After. Nothing
                       was acknowledged; after ``timeout`` the write may still commit, and a
                       retried event is then answered ``duplicate``
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xtracker_server.domain.macros import UnfilledMacro
from xtracker_server.exceptions import XTrackerServerError
from xtracker_server.services.errors import (
    NAME_NEEDS_INGEST,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    problems_of,
)
from xtracker_server.store.api import FaultReason, StoreUnavailable, retry_after_s, storage_fault

log = logging.getLogger("xtracker")


class ApiError(XTrackerServerError):
    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra


def invalid(exc: ValidationError, *, renames: dict[str, str] | None = None) -> ApiError:
    """422 naming the first bad field and why (all of them in ``fields``)."""
    return _invalid_fields(problems_of(exc, renames=renames))


def _invalid_fields(problems: Sequence[tuple[str, str]]) -> ApiError:
    detail = "; ".join(f"{field}: {problem}" for field, problem in problems)
    fields = [{"field": field, "problem": problem} for field, problem in problems]
    return ApiError(422, "invalid_field", detail, field=fields[0]["field"], fields=fields)


def field_error(field: str, problem: str) -> ApiError:
    """422 for one field, in the same shape as a validation failure."""
    return ApiError(
        422,
        "invalid_field",
        f"{field}: {problem}",
        field=field,
        fields=[{"field": field, "problem": problem}],
    )


def api_error(exc: ServiceError) -> ApiError:
    """A service's refusal (services/errors.py) as the admin API answers it: 403 forbidden,
    404 not_found, 409 with its code, 422 invalid_field; with the API's next step where the
    refusal has one (the endpoints that list or revoke ingest tokens)."""
    if isinstance(exc, Invalid):
        (field, problem), *more = exc.problems
        return _invalid_fields([(field, problem + _api_hint(exc)), *more])
    status = 403 if isinstance(exc, Forbidden) else 404 if isinstance(exc, NotFound) else 409
    detail = exc.detail + _api_hint(exc)
    if isinstance(exc, Conflict) and exc.field:
        return ApiError(status, exc.code, detail, field=exc.field)
    return ApiError(status, exc.code, detail)


def _api_hint(exc: ServiceError) -> str:
    if isinstance(exc, NotFound) and exc.what == "token":
        space = exc.space_id
        return f": see GET /admin/spaces/{space}/tokens, or add one with POST"
    if isinstance(exc, Conflict) and exc.code == "token_name_taken":
        return f" (DELETE /admin/spaces/{exc.space_id}/tokens/{exc.key})"
    if exc.rule == NAME_NEEDS_INGEST:
        return ': add "kind": "ingest"'
    return ""


async def on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(api_error(exc))


def unfilled_macro_error(found: UnfilledMacro) -> ApiError:
    """400 naming the field (as the sender named it) and the macro it holds."""
    return ApiError(400, "unfilled_macro", found.message, field=found.sent_as, macro=found.macro)


def error_response(exc: ApiError) -> JSONResponse:
    body = {"ok": False, "error": exc.error, "detail": exc.detail, **exc.extra}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "malformed"}


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = {
        404: f"no endpoint {request.url.path}; see docs/api.md",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(ApiError(exc.status_code, code, detail, headers=exc.headers))


_UNAVAILABLE_DETAIL = {
    FaultReason.TIMEOUT: "storage did not answer in time; the write may still be stored:"
    " retry (a retried event is answered duplicate if it was)",
}


async def on_store_unavailable(request: Request, exc: Exception) -> Response:
    """503 with the reason; what SQLite said goes to the log (store/health.py), not here."""
    assert isinstance(exc, StoreUnavailable)
    detail = _UNAVAILABLE_DETAIL.get(
        exc.reason, f"storage is unavailable ({exc.reason.value}); nothing was stored, retry later"
    )
    if exc.reason is FaultReason.REBUILDING:  # our own words, with how far the build is
        detail = exc.detail
    return error_response(
        ApiError(
            503,
            "unavailable",
            detail,
            headers={"Retry-After": str(retry_after_s(exc.reason))},
            reason=exc.reason.value,
        )
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # A storage error that reached here without passing the store's classification is still
    # one: 503, never 500.
    reason = storage_fault(exc)
    if reason is not None:
        return await on_store_unavailable(request, StoreUnavailable(reason, str(exc)))
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal", "internal error; nothing was acknowledged"))


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    ServiceError: on_service_error,
    HTTPException: on_http_error,
    StoreUnavailable: on_store_unavailable,
    Exception: on_unexpected,
}
