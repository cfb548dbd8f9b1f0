"""Destinations and their deliveries: what the store answers, and what the worker settles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.destinations import DestinationKind

__all__ = [
    "AttemptRecord",
    "Claimed",
    "DeliveryRow",
    "Destination",
    "DestinationHealth",
    "Settled",
    "Unhealthy",
]


@dataclass(frozen=True)
class Destination:
    id: int
    space_id: int
    kind: DestinationKind
    name: str
    enabled: bool
    config: dict[str, Any]
    #: The webhook signing secret or the CAPI access token. Needed in clear to sign and send;
    #: never returned by the API or the CLI after creation.
    secret: str | None
    event_map: dict[str, str]
    proxy: str | None
    health_reason: str | None  # None: healthy
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker leased (``claim``): it alone may settle it until the lease ends."""

    id: int
    space_id: int
    destination_id: int
    inbox_id: int
    event_id: str
    event_name: str
    attempts: int  # including the one just claimed
    age_from_ms: int


@dataclass(frozen=True)
class AttemptRecord:
    delivery_id: int
    space_id: int
    at_ms: int
    status_code: int | None
    latency_ms: int
    outcome: str
    error: str | None
    excerpt: str | None


@dataclass(frozen=True)  # no slots: a slotted dataclass pickles slowly (it travels to the writer)
class Settled:
    """A claimed delivery's new state (the worker's retry decision) and the attempt that led
    there (``Store.settle_deliveries``)."""

    delivery_id: int
    space_id: int
    status: str  # an outbox status: pending, retrying, sent, failed_permanently
    next_attempt_ms: int | None  # None: unchanged
    last_status: int | None  # the HTTP status, None without an answer
    last_error: str | None
    refund_attempt: bool  # the attempt does not count (the destination was at fault)
    outcome: str  # the verdict's Outcome value
    latency_ms: int
    excerpt: str | None


@dataclass(frozen=True)
class Unhealthy:
    """A destination an answer said is broken (flagged with ``reason``). ``as_of_ms``: the
    destination's ``updated_ms`` when the request was made: changed since (a new token, enabled
    again), the answer to its old settings does not flag it."""

    space_id: int
    destination_id: int
    reason: str
    as_of_ms: int | None = None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    destination_id: int
    inbox_id: int
    event_id: str
    event_name: str
    status: str
    attempts: int
    next_attempt_ms: int
    created_ms: int
    sent_ms: int | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class DestinationHealth:
    id: int
    name: str
    kind: str
    enabled: bool
    health_reason: str | None
    counts: dict[str, int]  # status -> deliveries, those pruned by retention included
    last_success_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    recent_attempts: int  # attempts in the recent window
    recent_failures: int  # of which did not deliver
    median_latency_ms: int | None  # over the recent attempts that got an answer
