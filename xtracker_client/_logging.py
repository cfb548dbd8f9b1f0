"""What the client logs (logger ``xtracker_client``): one line when what the sender sees of the
server changes, never one per event (DEBUG adds a line per answer).

    WARNING  the server cannot be reached (no answer), or answers that it cannot take events
             now (5xx, 408, 425, 429): events are kept and retried
    ERROR    the server refuses the bearer (401, 403): events are kept and retried
    INFO     the server takes events again, after one of the above
    WARNING  the server refused an item for good (dead-lettered): the first of each reason,
             then at most one line per reason every ``REPEAT_S`` with the count since

Without any logging configuration Python prints WARNING and above to stderr, so a bot with a
wrong bearer or a server that is down says so. ``debug=True`` on a client turns on DEBUG.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xtracker_client._core import Judgement

__all__ = ["REPEAT_S", "ServerLog", "enable_debug", "log"]

log = logging.getLogger("xtracker_client")

#: How often a repeated refusal (same status and code) is logged again, with its count.
REPEAT_S = 300.0


class Reach(Enum):
    OK = "ok"
    UNREACHABLE = "unreachable"  # no answer: refused connection, DNS, timeout
    UNAVAILABLE = "unavailable"  # an answer saying "not now": 5xx, 408, 425, 429
    REFUSED = "refused"  # the credential: 401, 403


class ServerLog:
    """Follows the answers the sender settles and logs the changes. Thread-safe; the path of
    an accepted item while all is well takes no lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reach = Reach.OK
        self._since = 0.0
        self._lock = threading.Lock()
        self._refusals: dict[tuple[int | None, str], tuple[float, int]] = {}

    def observe(self, kind: str, judgement: Judgement) -> None:
        verdict = judgement.verdict.value  # (_core imports this module: no Verdict here)
        if log.isEnabledFor(logging.DEBUG):
            status = judgement.status if judgement.status is not None else "no answer"
            log.debug("%s: %s, %s %s", kind, verdict, status, judgement.detail)
        if verdict == "ack":
            if self.reach is not Reach.OK:
                self._change(Reach.OK, judgement)
        elif verdict == "retry":
            reach = _reach_of(judgement.status)
            # A refused bearer stays the news until an item is accepted: the 429 a server
            # answers after many failed logins says nothing about the bearer being fixed.
            if reach is not self.reach and not (
                self.reach is Reach.REFUSED and reach is Reach.UNAVAILABLE
            ):
                self._change(reach, judgement)
        else:
            self._refused(kind, judgement)

    def _change(self, reach: Reach, judgement: Judgement) -> None:
        with self._lock:
            if reach is self.reach:
                return
            before, since = self.reach, self._since
            self.reach, self._since = reach, time.monotonic()
        what = f"HTTP {judgement.status} {judgement.code}: " if judgement.status else ""
        detail = judgement.detail.removeprefix(what)
        if reach is Reach.OK:
            log.info(
                "XTRACKER server %s takes events again (it was %s for %.0f s)",
                self.url,
                before.value,
                time.monotonic() - since,
            )
        elif reach is Reach.UNREACHABLE:
            log.warning(
                "XTRACKER server %s cannot be reached (%s): events are kept in the spool and"
                " retried",
                self.url,
                detail,
            )
        elif reach is Reach.UNAVAILABLE:
            log.warning(
                "XTRACKER server %s cannot take events now (%s%s): events are kept in the spool"
                " and retried",
                self.url,
                what,
                detail,
            )
        else:
            log.error(
                "XTRACKER server %s refuses the bearer (%s%s): events are kept in the spool and"
                " retried; give the space's current bearer secret (bearer= or XTRACKER_BEARER)",
                self.url,
                what,
                detail.removesuffix(" (check the bearer)"),
            )

    def _refused(self, kind: str, judgement: Judgement) -> None:
        key = (judgement.status, judgement.code)
        now = time.monotonic()
        with self._lock:
            logged_at, skipped = self._refusals.get(key, (float("-inf"), 0))
            if now - logged_at < REPEAT_S:
                self._refusals[key] = (logged_at, skipped + 1)
                return
            self._refusals[key] = (now, 0)
        since = f" ({skipped} more since the last line)" if skipped else ""
        log.warning(
            "XTRACKER server %s refused a%s %s for good%s: HTTP %s %s: %s. It is kept as a dead"
            " letter (dead_letters(), requeue_dead()); more refusals for this reason are"
            " counted and logged at most every %.0f s",
            self.url,
            "n" if kind == "event" else "",
            kind,
            since,
            judgement.status,
            judgement.code,
            judgement.detail,
            REPEAT_S,
        )


def _reach_of(status: int | None) -> Reach:
    if status is None:
        return Reach.UNREACHABLE
    if status in (401, 403):
        return Reach.REFUSED
    return Reach.UNAVAILABLE


def enable_debug() -> None:
    """``debug=True``: the ``xtracker_client`` logger at DEBUG, printed to stderr when nothing
    in the process handles log records yet."""
    log.setLevel(logging.DEBUG)
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
