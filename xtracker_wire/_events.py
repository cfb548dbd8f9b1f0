"""The event names of the wire contract and the batch limits: plain constants and an enum,
apart from the pydantic models of ``_models`` so that what needs a name or a limit (the
server's domain rules, its commands) does not build the models."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CANONICAL_EVENTS",
    "EVENT_NAMES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "REVERSAL",
    "CanonicalEvent",
]


class CanonicalEvent(str, Enum):
    """The four steps of the funnel after the click (only ``deposit`` carries money), and
    ``deposit.reversed``: a deposit taken back (a chargeback, a deposit the network rejected),
    named by the deposit's ``eid``. A reversal is not a funnel step."""

    CONTACT = "contact"
    SUBSCRIBED = "subscribed"
    REGISTRATION = "registration"
    DEPOSIT = "deposit"
    DEPOSIT_REVERSED = "deposit.reversed"


#: The funnel steps after the click, in order.
CANONICAL_EVENTS: tuple[str, ...] = ("contact", "subscribed", "registration", "deposit")
#: The event that reverses a deposit (docs/api.md, "Reversals").
REVERSAL = CanonicalEvent.DEPOSIT_REVERSED.value
#: Every event name ``POST /events`` and ``GET /e`` take.
EVENT_NAMES: tuple[str, ...] = (*CANONICAL_EVENTS, REVERSAL)

#: ``POST /events/batch`` takes at most this many events, in a body of at most this many bytes
#: (about 2 KiB an event: a typical one is under 200 bytes).
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
