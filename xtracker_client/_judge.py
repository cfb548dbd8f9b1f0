"""How a server's answer is judged: acknowledged, to be retried, or refused for good (a dead
letter); and what ``ping()`` makes of the answer to an empty event. Pure functions of the
response, shared by the sync and the async client; ``Core.settle`` acts on the judgement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from xtracker_client._exceptions import APIError, TransportError
from xtracker_client._retry import RETRYABLE, error_of, retry_after_s

__all__ = ["PING_PATH", "Judgement", "Verdict", "check_ping", "judge"]

log = logging.getLogger("xtracker_client")


class Verdict(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    detail: str = ""
    status: int | None = None
    code: str = ""
    retry_after_s: float | None = None
    answer: dict[str, Any] | None = None  # the server's JSON, read only for on_answer

    def as_error(self) -> APIError:
        """What a call that needed the answer raises when it could not have it."""
        if self.status is None:
            return TransportError(self.detail)
        return APIError(self.status, self.code, self.detail)


def judge(
    response: httpx.Response | None, error: Exception | None, *, read_answer: bool = False
) -> Judgement:
    """Connection errors, timeouts, 408, 425, 429 and 5xx are retried, and so are 401/403 (a
    key problem, not the event's); any other 4xx is final. ``read_answer``: parse an
    acknowledgement's JSON (only when someone asked for it: ``on_answer``)."""
    if response is None:
        return Judgement(Verdict.RETRY, f"{type(error).__name__}: {error}"[:300])
    status = response.status_code
    if 200 <= status < 300:
        answer = None
        if read_answer:
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            answer = parsed if isinstance(parsed, dict) else {}
        return Judgement(Verdict.ACK, status=status, answer=answer)
    code, detail = error_of(response)
    if status in (401, 403):
        # A wrong or expired key is fixed by the operator, not by the event: keep the events
        # (retried with backoff) rather than dead-letter everything the bot reports.
        return Judgement(
            Verdict.RETRY,
            f"HTTP {status} {code}: {detail} (check the bearer)",
            status,
            code,
            retry_after_s(response),
        )
    if status in RETRYABLE:
        return Judgement(
            Verdict.RETRY,
            f"HTTP {status} {code}: {detail}"[:300],
            status,
            code,
            retry_after_s(response),
        )
    return Judgement(Verdict.DEAD, detail or f"HTTP {status}", status, code)


#: ``ping()`` sends an empty event: the server checks the credential first and then refuses the
#: event as invalid (422), so the check records nothing and works with every server version.
PING_PATH = "/events"


def check_ping(url: str, response: httpx.Response | None, error: Exception | None) -> None:
    """What ``ping()`` raises for the server's answer to an empty event, or nothing when the
    URL leads to an XTRACKER server that accepts the bearer."""
    if response is None:
        raise TransportError(
            f"no answer from {url} ({type(error).__name__}: {error}): check the URL and that"
            " the server runs"
        )
    status = response.status_code
    code, detail = error_of(response)
    if status == 422 and code == "invalid_field":
        log.info("XTRACKER server %s accepts the bearer", url)
        return
    if status in (401, 403):
        raise APIError(
            status,
            code,
            f"the server at {url} refuses the bearer ({detail}): give the space's current"
            " bearer secret (bearer= or XTRACKER_BEARER)",
        )
    if status == 404 or code == "http_error":
        raise APIError(
            status,
            code,
            f"POST {url}{PING_PATH} answered HTTP {status}, not as an XTRACKER server does:"
            " check the URL (the server's base URL, without /events)",
        )
    raise APIError(status, code, f"the server at {url} answered HTTP {status}: {detail}")
