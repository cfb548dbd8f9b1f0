"""The inbox's idempotency key (docs/api.md), and what a repeat may disagree about."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal


def dedup_key(
    space_id: int,
    uid: str | None,
    tg_id: int | None,
    event: str,
    eid: str | None,
    occurred_at_ms: int,
    *,
    test: bool = False,
) -> bytes:
    """``sha256(space_id|uid|event|eid or occurred_at_ms)``; a test event's key starts with
    ``test|``, so a test ``tx-1`` and the real ``tx-1`` never meet (docs/api.md#test-events).

    An event sent with only ``tg_id`` stands in for its uid as ``tg:<id>``: the key must depend
    only on what the request said, never on what a bind resolved it to, or a retry after a
    bind would count twice.
    """
    who = uid if uid is not None else (f"tg:{tg_id}" if tg_id is not None else "")
    discriminator = eid if eid is not None else str(occurred_at_ms)
    # Free-form parts carry their length, so a "|" inside a uid or eid cannot forge another key.
    parts = f"{space_id}|{len(who)}:{who}|{event}|{len(discriminator)}:{discriminator}"
    if test:
        parts = "test|" + parts
    return hashlib.sha256(parts.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class AmountConflict:
    """A duplicate that names another amount or currency than the stored event, which stands
    unchanged: ``value`` and ``currency`` are the stored ones (None: stored without an amount),
    ``sent_value`` and ``sent_currency`` the repeat's."""

    value: str | None
    currency: str | None
    sent_value: str
    sent_currency: str | None

    @property
    def message(self) -> str:
        stored = f"{self.value} {self.currency}" if self.value is not None else "no amount"
        return (
            f"an event with this dedup key is already stored with {stored}; this call's"
            f" {self.sent_value} {self.sent_currency} was not counted and the stored event is"
            " unchanged. If it is another deposit, send it with its own eid"
        )


def amount_conflict(
    stored_value: str | None,
    stored_currency: str | None,
    value: str | None,
    currency: str | None,
) -> AmountConflict | None:
    """Whether a repeat (``value``, ``currency``) contradicts the stored event. A repeat without
    an amount claims none and agrees; amounts compare as numbers (``25.5`` is ``25.50``)."""
    if value is None:
        return None
    if (
        stored_value is None
        or Decimal(stored_value) != Decimal(value)
        or stored_currency != currency
    ):
        return AmountConflict(stored_value, stored_currency, value, currency)
    return None
