"""When to try a delivery again, how to read a destination's answer, and what a delivery
becomes after an attempt (``next_state``).

The schedule: the n-th retry waits ``base * 2**(n-1)`` seconds times a jitter between 0.8 and
1.2 (so a burst of failures does not come back as a burst), capped at ``cap``; a
``Retry-After`` from the destination is honoured when it asks for longer (up to a day). A
delivery whose next attempt would fall past ``max_age`` is given up (``failed_permanently``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from xtracker_server.domain.delivery_status import DeliveryStatus
from xtracker_server.domain.outbound import Outcome, Verdict
from xtracker_server.domain.query import whole_number

MAX_RETRY_AFTER_S = 86400.0
#: A paused destination (expired token, 410) is looked at again after this long.
HOLD_S = 60.0
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
    from email.utils import parsedate_to_datetime  # here: the email package is heavy to import

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


class Attempted(Protocol):
    """A claimed delivery, as the retry decision sees it."""

    @property
    def attempts(self) -> int: ...  # including the attempt just made

    @property
    def age_from_ms(self) -> int: ...  # the retry window starts here (reset by a replay)


@dataclass(frozen=True, slots=True)
class NextState:
    """What a delivery becomes after an attempt."""

    status: DeliveryStatus
    next_attempt_ms: int | None  # None: unchanged
    error: str | None  # its last_error (None once sent)
    refund_attempt: bool = False  # the attempt is not counted (the destination was held)


def next_state(
    claimed: Attempted,
    verdict: Verdict,
    policy: RetryPolicy,
    now_ms: int,
    *,
    rng: random.Random | None = None,
) -> NextState:
    """The state of ``claimed`` after an attempt judged ``verdict`` at ``now_ms``: sent; retried
    after the policy's delay, or given up once that would pass its max age; failed for good;
    or, when the destination itself is broken (HOLD), kept as it was for ``HOLD_S`` without
    counting the attempt."""
    error = None if verdict.outcome is Outcome.SENT else verdict.reason
    if verdict.outcome is Outcome.SENT:
        return NextState(DeliveryStatus.SENT, None, None)
    if verdict.outcome is Outcome.FAIL:
        return NextState(DeliveryStatus.FAILED, None, error)
    if verdict.outcome is Outcome.HOLD:
        status = DeliveryStatus.RETRYING if claimed.attempts > 1 else DeliveryStatus.PENDING
        return NextState(status, now_ms + int(HOLD_S * 1000), error, refund_attempt=True)
    delay_s = policy.delay_s(claimed.attempts, retry_after_s=verdict.retry_after_s, rng=rng)
    next_ms = now_ms + int(delay_s * 1000)
    if policy.gives_up(claimed.age_from_ms, next_ms):
        reason = f"gave up after {claimed.attempts} attempts; last: {verdict.reason}"
        return NextState(DeliveryStatus.FAILED, next_ms, reason)
    return NextState(DeliveryStatus.RETRYING, next_ms, error)
