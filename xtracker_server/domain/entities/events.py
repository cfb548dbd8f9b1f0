"""Events and binds: the draft of an event to store, and what the store answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.binds import BindAction
    from xtracker_server.domain.dedup import AmountConflict

__all__ = ["BindOutcome", "InboxDraft", "InboxEvent", "InboxOutcome"]


@dataclass(frozen=True)
class InboxDraft:
    space_id: int
    dedup_key: bytes
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str  # "api" (POST /events) or "postback" (GET /e)
    test: bool = False  # a test event: stored and shown, never counted nor delivered


@dataclass(frozen=True)
class InboxOutcome:
    inbox_id: int
    duplicate: bool
    uid: str | None  # after attribution; None while unattributed
    deliveries: int = 0  # outbox rows created for it
    conflict: AmountConflict | None = None  # a duplicate naming another amount than the stored


@dataclass(frozen=True)
class InboxEvent:
    id: int
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str
    attributed_by: str | None


@dataclass(frozen=True)
class BindOutcome:
    action: BindAction
    matched: bool  # a click with this uid exists in the space
    attributed: int = 0  # earlier events of this user now carrying the uid
