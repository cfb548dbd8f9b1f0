"""What a delivery knows about its event, and what an adapter turns it into.

Adapters are pure: ``DeliveryContext`` in, ``OutboundRequest`` out; the worker sends the request
and hands the answer back to the adapter's classifier, which returns a ``Verdict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class ClickInfo:
    """The click an event is attributed to (all optional: an event may be unattributed)."""

    uid: str | None = None
    link: str | None = None  # the link's slug
    landing_url: str | None = None  # XTRACKER_PUBLIC_URL/l/<slug>
    created_ms: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    fbclid: str | None = None
    fbc: str | None = None
    fbp: str | None = None
    country: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    adset_id: str | None = None
    adset_name: str | None = None
    ad_id: str | None = None
    ad_name: str | None = None
    placement: str | None = None


@dataclass(frozen=True)
class DeliveryContext:
    """One event as one destination will receive it."""

    event_id: str  # stable for this event and destination across every retry and restart
    event_name: str  # the destination's name for the event (from its event map)
    canonical: str  # contact | subscribed | registration | deposit | deposit.reversed
    occurred_at_ms: int
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None  # exact decimal text, deposits only
    currency: str | None
    click: ClickInfo = field(default_factory=ClickInfo)


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


class Outcome(str, Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later
    FAIL = "fail"  # permanent for this delivery
    HOLD = "hold"  # the destination itself is broken (e.g. expired token): keep, do not burn


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""
    retry_after_s: float | None = None
    #: Set when the destination must be flagged unhealthy (token revoked, endpoint gone).
    unhealthy: str | None = None
