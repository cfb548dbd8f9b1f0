"""The wire models: what an event, a bind and a click look like on the wire.

The server validates every request with these same models, and the client every call before
it stores it, so the two can never disagree about what a valid event is.

    >>> EventIn.model_validate({"uid": "abc", "event": "deposit", "value": "25.00"}).value
    Decimal('25.00')
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from xtracker_wire._events import (
    CANONICAL_EVENTS,
    EVENT_NAMES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    REVERSAL,
    CanonicalEvent,
)
from xtracker_wire._fields import (
    MAX_EID_LEN,
    MAX_UID_LEN,
    check_currency,
    check_occurred_at_ms,
    check_tg_id,
    clean_text,
    parse_value,
    strict_int,
)

__all__ = [
    "CANONICAL_EVENTS",
    "EVENT_NAMES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "REVERSAL",
    "BindIn",
    "CanonicalEvent",
    "ClickIn",
    "EventBatchIn",
    "EventBatchOut",
    "EventIn",
    "EventResult",
]


_CLICK_FIELD_LIMITS = {"link_slug": 64, "fbclid": 512, "campaign_name": 256, "raw_query": 4096}


class _Wire(BaseModel):
    # Unknown fields are refused: a typo such as "valeu" must not silently drop revenue.
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_Wire):
    """One event as sent to ``POST /events`` (or ``GET /e``, where ``occurred_at_ms`` is ``t``)."""

    event: CanonicalEvent
    uid: str | None = None
    value: Decimal | None = None
    currency: str = "USD"
    # Checked even when absent: a reversal requires it.
    eid: str | None = Field(default=None, validate_default=True)
    occurred_at_ms: int | None = None
    tg_id: int | None = None
    #: A test: stored and shown (live tail, postback log), never counted in reports nor sent
    #: to destinations, deduplicated apart from real events.
    test: bool = False

    @field_validator("event", mode="before")
    @classmethod
    def _event(cls, raw: object) -> object:
        if isinstance(raw, str):
            name = raw.strip().lower()
            if name in EVENT_NAMES:
                return name
            raise ValueError(f"unknown event {raw[:40]!r}: use one of {', '.join(EVENT_NAMES)}")
        raise ValueError(f"must be one of {', '.join(EVENT_NAMES)}")

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, raw: object) -> str | None:
        return clean_text(raw, MAX_UID_LEN, identifier=True)

    @field_validator("eid", mode="before")
    @classmethod
    def _eid(cls, raw: object, info: ValidationInfo) -> str | None:
        eid = clean_text(raw, MAX_EID_LEN, identifier=True)
        if eid is None and info.data.get("event") is CanonicalEvent.DEPOSIT_REVERSED:
            raise ValueError("is required on deposit.reversed: the eid of the deposit it reverses")
        return eid

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, raw: object) -> Decimal | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return parse_value(raw)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, raw: object) -> str:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return "USD"
        return check_currency(raw)

    @field_validator("occurred_at_ms", mode="before")
    @classmethod
    def _occurred_at_ms(cls, raw: object) -> int | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return check_occurred_at_ms(strict_int(raw, "milliseconds since the epoch (an integer)"))

    @field_validator("tg_id", mode="before")
    @classmethod
    def _tg_id(cls, raw: object) -> int | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return check_tg_id(raw)

    @property
    def carries_money(self) -> bool:
        return self.event is CanonicalEvent.DEPOSIT and self.value is not None

    @property
    def is_reversal(self) -> bool:
        return self.event is CanonicalEvent.DEPOSIT_REVERSED


class BindIn(_Wire):
    """``POST /bind``: the Telegram user ``tg_id`` arrived through the click ``uid``."""

    uid: str
    tg_id: int

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, raw: object) -> str:
        uid = clean_text(raw, MAX_UID_LEN, identifier=True)
        if uid is None:
            raise ValueError("is required")
        return uid

    @field_validator("tg_id", mode="before")
    @classmethod
    def _tg_id(cls, raw: object) -> int:
        return check_tg_id(raw)


class ClickIn(_Wire):
    """``POST /clicks``: a click that did not come through our landing page."""

    link_slug: str | None = None
    fbclid: str | None = None
    campaign_name: str | None = None
    raw_query: str | None = None

    @field_validator("link_slug", "fbclid", "campaign_name", "raw_query", mode="before")
    @classmethod
    def _texts(cls, raw: object, info: ValidationInfo) -> str | None:
        return clean_text(raw, _CLICK_FIELD_LIMITS[info.field_name or ""])


class EventBatchIn(_Wire):
    """``POST /events/batch``: up to ``MAX_BATCH_EVENTS`` events, each as ``POST /events``
    takes it. The server checks each event on its own: a bad one is refused in its own result,
    and the others are stored."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class EventResult(BaseModel):
    """One event's result in ``EventBatchOut``: what ``POST /events`` would have answered
    for it (``queued`` or ``duplicate``), or ``refused`` with the error (``http_status``,
    ``error``, ``detail``, and ``field`` when one field is to blame)."""

    model_config = ConfigDict(extra="allow", frozen=True)  # a newer server may say more

    ok: bool
    status: Literal["queued", "duplicate", "refused"]
    inbox_id: str | None = None
    attributed: bool | None = None
    warnings: list[str] | None = None
    conflict: dict[str, Any] | None = None
    detail: str | None = None
    http_status: int | None = None
    error: str | None = None
    field: str | None = None


class EventBatchOut(BaseModel):
    """The answer to ``POST /events/batch`` (200): one result per event, in order, and how
    many were queued, duplicates and refused. Sent after the commit that holds them all."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ok: Literal[True]
    queued: int
    duplicate: int
    refused: int
    results: list[EventResult]
