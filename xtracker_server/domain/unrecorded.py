"""Landing visits that are answered but not recorded as clicks: why, the per-address limit on
recording, and the tally of what was not recorded (docs/links.md#what-is-not-a-click).

A visitor is always sent on. Its click is not recorded when the visitor is a bot
(``domain/bots.py``), or when its address has used up ``XTRACKER_CLICK_LIMIT_PER_IP``: each
address may record that many clicks at once, and then that many per minute, refilled
continuously (a token bucket). A whole IPv6 ``/64`` counts as one address (one subscriber's
network, as a single IPv4 address is). Such a visit leads to the link's destination with an
empty uid (``NO_UID``) and gets no cookie. ``Tally`` counts those visits per link, hour and
reason until the server writes them to the store, with the clicks that were minted while
storage failed and then lost (``Reason.DROPPED``, landing/pending.py).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from enum import Enum

HOUR_MS = 3_600_000

#: The uid in the destination of a visit that was not recorded: ``?start=fb_``, ``click_id=``.
#: The client SDK's ``parse_start_payload`` reads ``fb_`` as an organic ``/start``.
NO_UID = ""


class Reason(str, Enum):
    """Why a visit was not recorded (the ``reason`` column of ``unrecorded_clicks``)."""

    BOT = "bot"
    LIMITED = "limited"
    #: The visitor was sent on with its uid, but its click was lost: storage failed and the
    #: landing's side buffer was full (landing/pending.py).
    DROPPED = "dropped"


def hour_start(ms: int) -> int:
    """The start of the UTC hour that holds ``ms``: what the tally counts by."""
    return ms - ms % HOUR_MS


def address_key(ip: str | None) -> str | None:
    """What the limit counts by: the IPv4 address, or the IPv6 address's ``/64``. None for no
    address (no peer, as on a Unix socket): such visits are not limited."""
    if not ip:
        return None
    return ip if ":" not in ip else _ipv6_network(ip)


@functools.lru_cache(maxsize=4096)
def _ipv6_network(ip: str) -> str:
    """The ``/64`` of an IPv6 address (cached: parsing one costs several microseconds)."""
    try:
        return ipaddress.IPv6Address(ip).packed[:8].hex()
    except ValueError:
        return ip


class ClickLimiter:
    """Per address: at most ``per_minute`` clicks at once, then ``per_minute`` a minute.

    Memory is bounded: past ``max_addresses`` tracked addresses, those whose bucket has filled
    up again (idle for a minute) are forgotten, and if that is not enough, the oldest half; a
    forgotten address starts again with a full bucket."""

    def __init__(self, per_minute: int, *, max_addresses: int = 100_000) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1 (use no limiter to turn it off)")
        self.capacity = float(per_minute)
        self.per_s = per_minute / 60.0
        self.max_addresses = max_addresses
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, at_s]

    def allow(self, ip: str | None, now_s: float) -> bool:
        """Whether a click from ``ip`` may be recorded now; takes one click from its bucket."""
        key = address_key(ip)
        if key is None:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses:
                self._forget(now_s)
            self._buckets[key] = [self.capacity - 1, now_s]
            return True
        tokens = min(self.capacity, bucket[0] + max(0.0, now_s - bucket[1]) * self.per_s)
        bucket[1] = now_s
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self, now_s: float) -> None:
        full_after_s = self.capacity / self.per_s
        self._buckets = {k: b for k, b in self._buckets.items() if now_s - b[1] < full_after_s}
        if len(self._buckets) >= self.max_addresses:
            keep = list(self._buckets.items())[len(self._buckets) // 2 :]
            self._buckets = dict(keep)


@dataclass(frozen=True)
class UnrecordedCount:
    """Visits of one link in one UTC hour not recorded for one reason."""

    space_id: int
    link_id: int
    hour_ms: int
    reason: Reason
    count: int


class Tally:
    """Unrecorded visits counted in memory; ``take`` hands them over to be stored. ``totals``
    counts them by reason since the start, whatever was taken (what /metrics shows)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int, int, Reason], int] = {}
        self._totals = dict.fromkeys(Reason, 0)

    def add(self, space_id: int, link_id: int, reason: Reason, now_ms: int) -> None:
        key = (space_id, link_id, hour_start(now_ms), reason)
        self._counts[key] = self._counts.get(key, 0) + 1
        self._totals[reason] += 1

    def totals(self) -> dict[str, int]:
        """Visits not recorded since the start, by reason (``bot``, ``limited``)."""
        return {reason.value: count for reason, count in self._totals.items()}

    def take(self) -> list[UnrecordedCount]:
        """Everything counted so far, and start again from zero."""
        counts, self._counts = self._counts, {}
        return [UnrecordedCount(*key, count) for key, count in counts.items()]

    def put_back(self, counts: list[UnrecordedCount]) -> None:
        """Counts that could not be stored: they are stored with the next ones."""
        for c in counts:
            key = (c.space_id, c.link_id, c.hour_ms, c.reason)
            self._counts[key] = self._counts.get(key, 0) + c.count
