"""``POST /events/batch`` (bearer, JSON): up to 500 events in one request, each checked and
answered as ``POST /events`` answers it, all stored in one commit (docs/api.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.domain.entities import InboxDraft
from xtracker_server.errors import ApiError, field_error
from xtracker_server.ingress._http import (
    JSON,
    Refused,
    parse_batch_object,
    read_body,
    refuse_unfilled_macros,
    validate,
)
from xtracker_server.ingress.events import check_space_currency, event_answer, event_draft
from xtracker_server.state import AppState, app_state
from xtracker_wire import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, EventIn


async def post_events_batch(request: Request) -> JSONResponse:
    state = app_state(request)
    space_id = await state.auth.bearer_space(request)
    items = batch_items(parse_batch_object(await read_body(request, limit=MAX_BATCH_BYTES)))
    results: list[dict[str, Any] | None] = [None] * len(items)
    drafts: list[InboxDraft] = []
    accepted: list[tuple[int, list[str]]] = []  # (index in the batch, warnings)
    currencies: dict[str, ApiError | None] = {}  # each code is checked once per batch
    for i, item in enumerate(items):
        try:
            event = await _checked_event(state, space_id, item, currencies)
        except ApiError as exc:
            results[i] = refused(exc)
            continue
        draft, warnings = event_draft(space_id, event, source="api")
        drafts.append(draft)
        accepted.append((i, warnings))
    if drafts:  # one commit for the whole batch; StoreUnavailable: 503, none of it stored
        outcomes = await state.store.record_events(drafts)
        for (i, warnings), draft, outcome in zip(accepted, drafts, outcomes, strict=True):
            results[i] = event_answer(state, outcome, warnings, test=draft.test)
    answers = [r for r in results if r is not None]
    counts = {"queued": 0, "duplicate": 0, "refused": 0}
    for answer in answers:
        counts[answer["status"]] += 1
    return JSON({"ok": True, **counts, "results": answers})


def batch_items(data: dict[str, Any]) -> list[Any]:
    """The body's ``events``: a list of 1 to ``MAX_BATCH_EVENTS`` items (each checked later
    on its own), or the error of the whole request."""
    unknown = sorted(set(data) - {"events"})
    if unknown:
        raise field_error(unknown[0], 'unknown field: the body is {"events": [...]}')
    items = data.get("events")
    if not isinstance(items, list):
        raise field_error("events", "is required: a list of events, as POST /events takes them")
    if not items:
        raise field_error("events", "is empty: send 1 to 500 events")
    if len(items) > MAX_BATCH_EVENTS:
        raise ApiError(
            413,
            "too_large",
            f"{len(items)} events: a batch takes at most {MAX_BATCH_EVENTS}; split it",
        )
    return items


async def _checked_event(
    state: AppState, space_id: int, item: Any, currencies: dict[str, ApiError | None]
) -> EventIn:
    """``item`` as ``POST /events`` checks its body, or the ``ApiError`` it would answer."""
    if isinstance(item, Refused):
        raise item.error
    if not isinstance(item, dict):
        raise ApiError(400, "malformed", "each event must be a JSON object")
    for value in item.values():
        if isinstance(value, Refused):  # an object inside the event that breaks the rules
            raise value.error
    refuse_unfilled_macros(item, EventIn)
    event = validate(EventIn, item)
    code = event.currency
    if code not in currencies:
        try:
            await check_space_currency(state, space_id, code)
            currencies[code] = None
        except ApiError as exc:
            currencies[code] = exc
    problem = currencies[code]
    if problem is not None:
        raise problem
    return event


def refused(exc: ApiError) -> dict[str, Any]:
    """An event's result when it is refused: the error ``POST /events`` would answer, with
    its status code as ``http_status``."""
    return {
        "ok": False,
        "status": "refused",
        "http_status": exc.status,
        "error": exc.error,
        "detail": exc.detail,
        **exc.extra,
    }
