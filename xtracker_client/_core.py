"""What the sync and the async client share: configuration, the spool, counters, hooks, and
settling what the server answered. No I/O of its own beyond the spool. The call site's checks
are ``_events.py``; how an answer is judged, ``_judge.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtracker_client._events import bind_body, check_uid_type, click_body, event_body, pin_time
from xtracker_client._exceptions import ConfigurationError, SpoolFullError
from xtracker_client._exit import new_client
from xtracker_client._judge import PING_PATH, Judgement, Verdict, check_ping, judge
from xtracker_client._logging import ServerLog, enable_debug
from xtracker_client._retry import Backoff
from xtracker_client._spool import DropPolicy, Kind, Spool, SpooledItem, SpoolFull, now_ms
from xtracker_client._url import base_url
from xtracker_client._version import __version__
from xtracker_wire import CanonicalEvent

# What the clients and the test helpers take from here (some of it defined in the modules above).
__all__ = [
    "PING_PATH",
    "Answer",
    "AnswerHook",
    "Core",
    "DeliveryError",
    "DropHook",
    "ErrorHook",
    "FlushResult",
    "Judgement",
    "Receipt",
    "Stats",
    "Verdict",
    "check_ping",
    "check_uid_type",
    "click_body",
    "default_spool_path",
    "judge",
    "monotonic",
]

log = logging.getLogger("xtracker_client")

ErrorHook = Callable[["DeliveryError"], None]
DropHook = Callable[[dict[str, Any], str], None]
AnswerHook = Callable[["Answer"], None]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that an event is safely buffered (committed to the spool); the background sender
    takes it from there. ``occurred_at_ms`` is pinned, so a resend can only ever be a
    server-side duplicate, never a second event. A negative ``id``: held in memory, as the
    spool file could not be written."""

    id: int
    kind: str  # "event" or "bind"
    event: str | None
    uid: str | None
    occurred_at_ms: int | None
    eid: str | None


@dataclass(frozen=True)
class DeliveryError:
    """Given to ``on_error``: the server refused an item for good (it is dead-lettered); or,
    with ``code == "spool_unwritable"`` and no status, the spool file stopped taking writes
    (once per failure: this item and the next are held in memory, not lost)."""

    kind: str
    body: dict[str, Any]
    status: int | None
    code: str
    detail: str


@dataclass(frozen=True)
class Answer:
    """Given to ``on_answer``: what the server answered to an item it accepted.

    ``status`` is ``"queued"`` or ``"duplicate"`` for an event (None for a bind); ``matched``
    says whether a bind's uid is a click of the space (None for an event); ``conflict`` is set
    when a duplicate deposit disagrees with the stored one (``{"value": …, "currency": …}``:
    the stored amount, which stays). ``id`` is the ``Receipt.id`` of the call."""

    id: int
    kind: str
    body: dict[str, Any]
    status: str | None
    matched: bool | None
    conflict: dict[str, Any] | None
    inbox_id: str | None
    raw: dict[str, Any]

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"


@dataclass(frozen=True)
class FlushResult:
    """What ``flush()`` and ``close()`` return. True (as a bool) only when every item buffered
    before the call reached the server within the timeout AND nothing was dead-lettered since
    the previous flush: ``if not tracker.flush(): …`` catches both.

    ``complete``: every item buffered before the call was answered (the bool of 0.1);
    ``pending``: how many of them are still in the spool; ``dead``: items this client's sender
    dead-lettered since the previous flush (or the start), with ``last_error`` the latest
    reason."""

    complete: bool
    pending: int
    dead: int
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.complete and self.dead == 0

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Stats:
    queued: int = 0  # items in the spool (all processes sharing it)
    queued_bytes: int = 0
    oldest_pending_age_s: float | None = None
    sent: int = 0  # by this client
    retried: int = 0
    dead: int = 0  # refused by the server, kept in the dead-letter table
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    last_error: str | None = None
    held_in_memory: int = 0  # items kept in memory because the spool file cannot be written
    spool_errors: int = 0  # writes to the spool file that failed (each one was kept in memory)


def default_spool_path(url: str, bearer: str) -> Path:
    """One spool per server and credential, in the user's cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = hashlib.sha256(f"{url}|{bearer}".encode()).hexdigest()[:16]
    return Path(base) / "xtracker" / f"spool-{key}.sqlite3"


class Core:
    def __init__(
        self,
        url: str | None,
        bearer: str | None,
        *,
        spool: str | os.PathLike[str] | None,
        in_memory: bool,
        max_rows: int,
        max_bytes: int,
        drop_policy: DropPolicy,
        fsync: bool,
        timeout: float,
        backoff: Backoff,
        on_error: ErrorHook | None,
        on_drop: DropHook | None,
        on_answer: AnswerHook | None = None,
        debug: bool = False,
        test: bool = False,
    ) -> None:
        url = url or os.environ.get("XTRACKER_URL")
        bearer = bearer or os.environ.get("XTRACKER_BEARER")
        if not url:
            raise ConfigurationError("no server URL: pass url= or set XTRACKER_URL")
        if not bearer:
            raise ConfigurationError("no bearer secret: pass bearer= or set XTRACKER_BEARER")
        self.url = base_url(url)
        self.bearer = bearer
        self.timeout = timeout
        self.backoff = backoff
        self.on_error = on_error
        self.on_drop = on_drop
        self.on_answer = on_answer
        self.test = test
        if debug:
            enable_debug()
        self.server_log = ServerLog(self.url)
        path: str | os.PathLike[str] = (
            ":memory:" if in_memory else spool or default_spool_path(self.url, bearer)
        )
        self.spool = Spool(
            path, max_rows=max_rows, max_bytes=max_bytes, drop_policy=drop_policy, fsync=fsync
        )
        self.stats_lock = threading.Lock()
        self.counters = Stats()
        self.failures_in_row = 0
        self.dead_reported = 0  # counters.dead at the end of the previous flush
        self.last_size: tuple[int, int, int | None] = (0, 0, None)
        self.fault_reported = False  # on_error was told that the spool file fails
        self.new_owner()
        new_client()

    def after_fork(self) -> None:
        """In a forked child: locks that another thread of the parent may have held at the fork
        are replaced, and the child gets its own spool connection and owner name."""
        self.stats_lock = threading.Lock()
        self.spool.after_fork()
        self.new_owner()

    def new_owner(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.pid = os.getpid()

    @property
    def lease_ms(self) -> int:
        return int((self.timeout * 2 + 5) * 1000)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.bearer}",
            "User-Agent": f"xtracker-client/{__version__}",
        }

    # --- the call site ---------------------------------------------------------------------

    # The checks are _events.py's; the clients call them through their core.
    def event_body(
        self, event: str | CanonicalEvent, uid: str | None, **fields: Any
    ) -> dict[str, Any]:
        """An event's body; every event of a client made with ``test=True`` is a test."""
        return event_body(event, uid, test=self.test, **fields)

    bind_body = staticmethod(bind_body)
    pin_time = staticmethod(pin_time)

    def store(self, kind: Kind, body: dict[str, Any]) -> Receipt:
        """Into the spool; a spool file that fails is reported here (once per failure) and
        never raised: the spool holds the item in memory."""
        try:
            item_id, dropped = self.spool.put(kind, body)
        except SpoolFull as exc:
            self.count_drop(exc.reason)
            self.call_drop_hook(body, exc.reason)
            raise SpoolFullError(
                f"{exc}; the event was not stored (drop_policy=drop_newest)"
            ) from None
        except (sqlite3.Error, OSError, MemoryError) as exc:  # even the memory buffer failed
            log.error("the event could not be stored anywhere, it is lost: %s", exc)
            self.count_drop("spool_error")
            self.call_drop_hook(body, "spool_error")
            item_id, dropped = 0, []
        fault = self.spool.fault
        if fault is None:
            self.fault_reported = False
        elif not self.fault_reported:  # once per failure, whenever it began
            self.fault_reported = True
            self.note_error(f"spool: {fault}")
            self.call_error_hook(
                DeliveryError(
                    kind,
                    body,
                    None,
                    "spool_unwritable",
                    f"the spool file {self.spool.path} cannot be written ({fault}); events are"
                    " held in memory until it can",
                )
            )
        reason = "memory_full" if item_id < 0 else "spool_full"
        for old in dropped:
            self.count_drop(reason)
            self.call_drop_hook(old, reason)
        return Receipt(
            item_id,
            kind,
            body.get("event"),
            body.get("uid"),
            body.get("occurred_at_ms"),
            body.get("eid"),
        )

    # --- the sender's side -----------------------------------------------------------------

    def settle(
        self, item: SpooledItem, judgement: Judgement, rest: list[SpooledItem] | None = None
    ) -> float:
        """Record the answer in the spool, the counters and the hooks. After a transient
        failure the ``rest`` of the batch waits for the same retry, untried, so items keep
        their order (a bind before the events that follow it) and a down server is not
        hammered. Returns how long the sender should pause (a transient failure pauses it)."""
        self.server_log.observe(item.kind, judgement)
        if judgement.verdict is Verdict.ACK:
            self.spool.ack(item.id, self.owner)
            with self.stats_lock:
                self.counters.sent += 1
                self.failures_in_row = 0
            if self.on_answer is not None:
                self.call_answer_hook(item.id, item.kind, item.body, judgement.answer or {})
        elif judgement.verdict is Verdict.RETRY:
            # Backoff grows with the failures in a row, not only this item's attempts: when the
            # oldest items are dropped (a long outage) the next one starts at attempt 1.
            with self.stats_lock:
                self.failures_in_row += 1
                attempt = max(item.attempts, self.failures_in_row)
            delay = self.backoff.delay_s(attempt, judgement.retry_after_s)
            at = now_ms() + int(delay * 1000)
            not_before = (
                now_ms() + int(judgement.retry_after_s * 1000) if judgement.retry_after_s else 0
            )
            self.spool.retry_later(item.id, self.owner, at, judgement.detail, not_before)
            self.spool.release([r.id for r in rest or []], self.owner, at, not_before)
            with self.stats_lock:
                self.counters.retried += 1
                self.counters.last_error = judgement.detail
            return delay
        else:
            self.spool.kill(
                item.id, self.owner, f"{judgement.code}: {judgement.detail}", judgement.status
            )
            with self.stats_lock:
                self.counters.dead += 1
                self.counters.last_error = (
                    f"HTTP {judgement.status} {judgement.code}: {judgement.detail}"
                )
            self.call_error_hook(
                DeliveryError(
                    item.kind, item.body, judgement.status, judgement.code, judgement.detail
                )
            )
        return 0.0

    def settle_all(
        self, settled: list[tuple[SpooledItem, Judgement]], rest: list[SpooledItem]
    ) -> float:
        """``settle`` for the items of a wave at once: the acknowledged leave the spool in one
        transaction, the refused become dead letters, and if any failed transiently they and
        the ``rest`` (untried) wait for one retry, as after one failure. Returns the pause."""
        for item, judgement in settled:
            if judgement.verdict is not Verdict.DEAD:  # a dead letter: ``settle`` observes it
                self.server_log.observe(item.kind, judgement)
        acked = [item.id for item, j in settled if j.verdict is Verdict.ACK]
        retried = [(item, j) for item, j in settled if j.verdict is Verdict.RETRY]
        if acked:
            self.spool.ack_many(acked, self.owner)
            with self.stats_lock:
                self.counters.sent += len(acked)
                if not retried:
                    self.failures_in_row = 0
            if self.on_answer is not None:
                for item, j in settled:
                    if j.verdict is Verdict.ACK:
                        self.call_answer_hook(item.id, item.kind, item.body, j.answer or {})
        for item, judgement in settled:
            if judgement.verdict is Verdict.DEAD:
                self.settle(item, judgement)
        if not retried:
            return 0.0
        with self.stats_lock:
            self.failures_in_row += 1
            attempt = max(max(item.attempts for item, _ in retried), self.failures_in_row)
        asked = max((j.retry_after_s or 0.0 for _, j in retried), default=0.0) or None
        delay = self.backoff.delay_s(attempt, asked)
        at = now_ms() + int(delay * 1000)
        not_before = now_ms() + int(asked * 1000) if asked else 0
        self.spool.retry_many([(item.id, j.detail) for item, j in retried], self.owner, at,
                              not_before)  # fmt: skip
        self.spool.release([r.id for r in rest], self.owner, at, not_before)
        with self.stats_lock:
            self.counters.retried += len(retried)
            self.counters.last_error = retried[0][1].detail
        return delay

    def note_error(self, message: str) -> None:
        with self.stats_lock:
            self.counters.last_error = message

    def count_drop(self, reason: str) -> None:
        with self.stats_lock:
            self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + 1

    def call_error_hook(self, error: DeliveryError) -> None:
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # a hook can never crash the sender
                log.exception("on_error hook failed")

    def call_answer_hook(
        self, item_id: int, kind: str, body: dict[str, Any], raw: dict[str, Any]
    ) -> None:
        if self.on_answer is None:
            return
        status, matched, conflict = raw.get("status"), raw.get("matched"), raw.get("conflict")
        inbox_id = raw.get("inbox_id")
        answer = Answer(
            id=item_id,
            kind=kind,
            body=body,
            status=status if isinstance(status, str) else None,
            matched=matched if isinstance(matched, bool) else None,
            conflict=conflict if isinstance(conflict, dict) else None,
            inbox_id=inbox_id if isinstance(inbox_id, str) else None,
            raw=raw,
        )
        try:
            self.on_answer(answer)
        except Exception:  # a hook can never crash the sender
            log.exception("on_answer hook failed")

    def flush_result(self, pending: int, *, flushed: bool = True) -> FlushResult:
        """What a flush that left ``pending`` of its items unanswered returns (``flushed``:
        False for a ``close(0)``, which does not flush); the dead letters it reports are not
        reported again by the next flush."""
        with self.stats_lock:
            dead = self.counters.dead - self.dead_reported
            self.dead_reported = self.counters.dead
            last_error = self.counters.last_error
        return FlushResult(flushed and pending == 0, pending, dead, last_error)

    def call_drop_hook(self, body: dict[str, Any], reason: str) -> None:
        if self.on_drop is not None:
            try:
                self.on_drop(body, reason)
            except Exception:
                log.exception("on_drop hook failed")

    def lose(self, bodies: list[dict[str, Any]], why: str) -> None:
        """Items held only in memory that the process will not send: counted, given to
        ``on_drop`` and logged (one line)."""
        if not bodies:
            return
        for body in bodies:
            self.count_drop("lost_at_close")
            self.call_drop_hook(body, "lost_at_close")
        log.warning(
            "%s: %d events not sent to %s were held only in memory and are lost"
            " (stats().dropped['lost_at_close'])",
            why,
            len(bodies),
            self.url,
        )

    def stats(self) -> Stats:
        """Never raises: a spool that cannot be read (closed, failing) answers what it last
        could."""
        try:
            self.last_size = self.spool.size()
        except Exception as exc:
            self.note_error(f"spool: {exc}")
        queued, size, oldest = self.last_size
        with self.stats_lock:
            c = self.counters
            return Stats(
                queued=queued,
                queued_bytes=size,
                oldest_pending_age_s=None if oldest is None else (now_ms() - oldest) / 1000,
                sent=c.sent,
                retried=c.retried,
                dead=c.dead,
                dropped=dict(c.dropped),
                last_error=c.last_error,
                held_in_memory=self.spool.held_in_memory,
                spool_errors=self.spool.write_errors,
            )

    def idle_wait_s(self) -> float:
        due = self.spool.next_due_ms()
        if due is None:
            return 5.0
        return min(5.0, max(0.01, (due - now_ms()) / 1000))


def monotonic() -> float:
    return time.monotonic()
