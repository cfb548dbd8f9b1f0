"""Which answers are worth retrying, and when (one place for the client's backoff)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE = frozenset({408, 425, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random wait between 0 and
    ``min(cap, base * 2**(attempt-1))``; a ``Retry-After`` asking for longer wins."""

    base_s: float = 0.5
    cap_s: float = 60.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(attempt - 1, 0), 32))
        delay = random.uniform(0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, 3600.0))
        return delay


def retry_after_s(response: httpx.Response) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The server's ``error`` code and ``detail``, whatever the body looks like."""
    try:
        body = response.json()
    except ValueError:
        return "http_error", response.text[:300] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("error", "http_error")), str(body.get("detail", ""))[:1000]
    return "http_error", str(body)[:300]
