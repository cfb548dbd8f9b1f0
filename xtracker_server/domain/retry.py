"""When to try a delivery again, and how to read a destination's answer.

The schedule: the n-th retry waits ``base * 2**(n-1)`` seconds times a jitter between 0.8 and
1.2 (so a burst of failures does not come back as a burst), capped at ``cap``; a
``Retry-After`` from the destination is honoured when it asks for longer (up to a day). A
delivery whose next attempt would fall past ``max_age`` is given up (``failed_permanently``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from xtracker_server.domain.outbound import Outcome, Verdict
from xtracker_server.domain.query import whole_number

MAX_RETRY_AFTER_S = 86400.0
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 30.0
    cap_s: float = 3600.0
    max_age_s: float = 86400.0

    def delay_s(self, attempts: int, *, retry_after_s: float | None = None,
                rng: random.Random | None = None) -> float:  # fmt: skip
        """How long to wait after the ``attempts``-th failed attempt (1 for the first)."""
        exponent = max(0, attempts - 1)
        nominal = self.cap_s if exponent >= 64 else min(self.cap_s, self.base_s * 2**exponent)
        delay = min(nominal * (rng or random).uniform(0.8, 1.2), self.cap_s)
        if retry_after_s is not None:  # the destination knows best; a day at most
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay

    def gives_up(self, created_ms: int, next_attempt_ms: int) -> bool:
        return next_attempt_ms - created_ms > self.max_age_s * 1000


def parse_retry_after(raw: str | None, now_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not raw:
        return None
    raw = raw.strip()
    seconds = whole_number(raw)
    if seconds is not None:
        return float(seconds)
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now_s)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def classify_http(
    status: int | None,
    *,
    expected: int | None = None,
    error: str | None = None,
    retry_after_s: float | None = None,
) -> Verdict:
    """A plain HTTP destination's answer. ``status`` None is a transport failure (timeout,
    refused connection): retried. ``expected`` demands one exact status (s2s postbacks)."""
    if status is None:
        return Verdict(Outcome.RETRY, error or "no answer", retry_after_s)
    ok = status == expected if expected is not None else 200 <= status < 300
    if ok:
        return Verdict(Outcome.SENT, f"HTTP {status}")
    if status in RETRYABLE_STATUSES:
        return Verdict(Outcome.RETRY, f"HTTP {status}", retry_after_s)
    if status == 410:
        return Verdict(Outcome.FAIL, "HTTP 410 Gone", unhealthy="the endpoint answered 410 Gone")
    wanted = f", expected {expected}" if expected is not None else ""
    return Verdict(Outcome.FAIL, f"HTTP {status}{wanted}")
