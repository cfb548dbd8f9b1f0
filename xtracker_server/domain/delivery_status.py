"""A delivery's status, what the outbox stores and lists. Apart from the retry rules
(domain/retry.py, which decides the next one), so that listing deliveries (``xtracker outbox
list``) does not import what sends them."""

from __future__ import annotations

from enum import Enum

__all__ = ["DELIVERY_STATUSES", "DeliveryStatus"]


class DeliveryStatus(str, Enum):
    PENDING = "pending"  # not tried yet, or held for a destination flagged unhealthy
    RETRYING = "retrying"  # at least one attempt failed; the next is due at next_attempt_ms
    SENT = "sent"
    FAILED = "failed_permanently"


#: Every status, in the order reports list them.
DELIVERY_STATUSES = tuple(s.value for s in DeliveryStatus)
