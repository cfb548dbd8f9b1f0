"""The call site: an event, a bind or a click checked with the wire models and turned into the
body the spool keeps, with ``occurred_at_ms`` pinned when the call is made. A mistake raises
here, in the bot's own call, never later in the sender.
"""

from __future__ import annotations

import os
import threading
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from xtracker_client._exceptions import InvalidEventError
from xtracker_client._spool import now_ms
from xtracker_wire import BindIn, CanonicalEvent, ClickIn, EventIn, decimal_text

__all__ = ["bind_body", "check_uid_type", "click_body", "event_body", "pin_time"]

_pin_lock = threading.Lock()
#: The last time pinned for each (event, uid or tg id) of this process, kept while it is not in
#: the past: a burst of events of different users all take the clock's time.
_last_pinned: dict[tuple[str, str], int] = {}
#: Past this many keys, those pinned before now are dropped (they cannot collide any more).
_PIN_KEYS = 1024


def _new_pin_lock() -> None:
    global _pin_lock
    _pin_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_pin_lock)


def event_body(
    event: str | CanonicalEvent,
    uid: str | None,
    *,
    value: str | int | float | Decimal | None = None,
    currency: str | None = None,
    eid: str | None = None,
    tg_id: int | None = None,
    occurred_at_ms: int | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """Validated with the wire model, with ``occurred_at_ms`` pinned now; ``test``: a test
    event (stored and shown, never counted nor sent on, deduplicated apart)."""
    check_uid_type(uid)
    raw: dict[str, Any] = {
        "event": event.value if isinstance(event, CanonicalEvent) else event,
        # now while it is checked; pinned below, once the event and its user are known
        "occurred_at_ms": occurred_at_ms if occurred_at_ms is not None else now_ms(),
    }
    # Absent fields are left out, so their validators do not run for nothing.
    for name, given in (
        ("uid", uid),
        ("value", value),
        ("eid", eid),
        ("tg_id", tg_id),
        ("currency", currency),
    ):
        if given is not None:
            raw[name] = given
    if test:
        raw["test"] = True
    try:
        parsed = EventIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEventError(_explain(exc)) from None
    if parsed.uid is None and parsed.tg_id is None:
        raise InvalidEventError("give the uid (from /start) or the tg_id of a bound user")
    who = parsed.uid if parsed.uid is not None else f"tg:{parsed.tg_id}"
    body: dict[str, Any] = {
        "event": parsed.event.value,
        "occurred_at_ms": (
            parsed.occurred_at_ms
            if occurred_at_ms is not None or parsed.eid is not None
            else pin_time(parsed.event.value, who)
        ),
    }
    for name in ("uid", "eid", "tg_id"):
        if getattr(parsed, name) is not None:
            body[name] = getattr(parsed, name)
    if parsed.value is not None:
        body["value"] = decimal_text(parsed.value)
        body["currency"] = parsed.currency
    if parsed.test:
        body["test"] = True
    return body


def pin_time(event: str, who: str) -> int:
    """Now, in ms, but never a time this process pinned already for the same event of the same
    user (``who``: the uid, or ``tg:<id>``), whatever client pinned it: two events without
    ``eid`` in one millisecond would otherwise share a dedup key on the server and count once.
    Events of different users or steps take the clock's time, however many arrive at once."""
    now = now_ms()
    with _pin_lock:
        key = (event, who)
        last = _last_pinned.get(key)
        pinned = now if last is None or last < now else last + 1
        if len(_last_pinned) >= _PIN_KEYS:
            for old_key in [k for k, t in _last_pinned.items() if t < now]:
                del _last_pinned[old_key]
        _last_pinned[key] = pinned
        return pinned


def bind_body(uid: str, tg_id: int) -> dict[str, Any]:
    check_uid_type(uid)
    try:
        parsed = BindIn.model_validate({"uid": uid, "tg_id": tg_id})
    except ValidationError as exc:
        raise InvalidEventError(_explain(exc)) from None
    return {"uid": parsed.uid, "tg_id": parsed.tg_id}


def check_uid_type(uid: object) -> None:
    """An int where the uid goes is a Telegram id passed by position (``contact(user.id)``):
    stored as a uid, it would look real and attribute to nothing."""
    if uid is not None and not isinstance(uid, str):
        raise TypeError(
            f"uid must be a str (the uid from /start fb_<uid>), not {type(uid).__name__}"
            + (
                ": a Telegram user id goes in the keyword tg_id=, e.g. contact(tg_id=user.id)"
                if isinstance(uid, int)
                else ""
            )
        )


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        field_name = ".".join(str(p) for p in err["loc"]) or "event"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field_name}: {message}")
    return "; ".join(parts)


def click_body(
    link_slug: str | None, fbclid: str | None, campaign_name: str | None, raw_query: str | None
) -> dict[str, str]:
    raw = {
        "link_slug": link_slug,
        "fbclid": fbclid,
        "campaign_name": campaign_name,
        "raw_query": raw_query,
    }
    try:
        parsed = ClickIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEventError(_explain(exc)) from None
    return {k: v for k, v in parsed.model_dump().items() if v is not None}
