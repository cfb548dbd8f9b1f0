"""``POST /events`` (bearer, JSON), and recording an event in the inbox (shared with the
postback endpoint ``/e``, in ``postbacks.py``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.clock import now_ms
from xtracker_server.domain.currencies import currency_problem, is_known
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.entities import InboxDraft, InboxOutcome
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import JSON, read_json_object, refuse_unfilled_macros, validate
from xtracker_server.state import AppState, app_state
from xtracker_server.views import conflict_json
from xtracker_wire import CanonicalEvent, EventIn, decimal_text


async def post_events(request: Request) -> JSONResponse:
    state = app_state(request)
    space_id = await state.auth.bearer_space(request)
    data = await read_json_object(request)
    refuse_unfilled_macros(data, EventIn)
    event = validate(EventIn, data)
    await check_space_currency(state, space_id, event.currency)
    return JSON(await record_event(state, space_id, event, source="api"))


async def check_space_currency(
    state: AppState, space_id: int, code: str, *, field: str = "currency"
) -> None:
    """422 unless ``code`` is ISO 4217, a known crypto ticker or on the space's own list
    (``domain/currencies.py``); the list is read only for a code that is neither."""
    if is_known(code):
        return
    allowed = await state.store.allowed_currencies(space_id)
    problem = currency_problem(code, allowed or ())
    if problem is not None:
        raise field_error(field, problem)


async def record_event(
    state: AppState, space_id: int, event: EventIn, *, source: str
) -> dict[str, Any]:
    """Write the event to the inbox (deduplicated) and answer only after the commit."""
    draft, warnings = event_draft(space_id, event, source=source)
    outcome = await state.store.record_event(draft)
    return event_answer(state, outcome, warnings, test=draft.test)


def event_draft(space_id: int, event: EventIn, *, source: str) -> tuple[InboxDraft, list[str]]:
    """The inbox row for an event, and warnings about what of it has no effect."""
    received = now_ms()
    occurred = event.occurred_at_ms if event.occurred_at_ms is not None else received
    warnings: list[str] = []
    value = currency = None
    if event.event is CanonicalEvent.DEPOSIT:
        if event.value is None:
            warnings.append("deposit without value: recorded, but it adds no revenue")
        else:
            value, currency = decimal_text(event.value), event.currency
    elif event.value is not None or "currency" in event.model_fields_set:
        warnings.append(
            f"value and currency are kept only on deposit; not stored for {event.event.value}"
        )
    draft = InboxDraft(
        space_id=space_id,
        dedup_key=dedup_key(
            space_id,
            event.uid,
            event.tg_id,
            event.event.value,
            event.eid,
            occurred,
            test=event.test,
        ),
        event=event.event.value,
        uid=event.uid,
        tg_id=event.tg_id,
        eid=event.eid,
        value=value,
        currency=currency,
        occurred_at_ms=occurred,
        received_ms=received,
        source=source,
        test=event.test,
    )
    return draft, warnings


def event_answer(
    state: AppState, outcome: InboxOutcome, warnings: list[str], *, test: bool = False
) -> dict[str, Any]:
    if outcome.deliveries:
        state.wake_worker()
    answer: dict[str, Any] = {
        "ok": True,
        "status": "duplicate" if outcome.duplicate else "queued",
        "inbox_id": str(outcome.inbox_id),
        "attributed": outcome.uid is not None,
    }
    if test:  # docs/api.md#test-events
        answer["test"] = True
    if warnings and not outcome.duplicate:
        answer["warnings"] = warnings
    if outcome.conflict is not None:
        answer["conflict"] = conflict_json(outcome.conflict)
        answer["detail"] = outcome.conflict.message
    return answer
