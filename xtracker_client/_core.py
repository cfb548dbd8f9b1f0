"""What the sync and the async client share: configuration, validation at the call site, the
spool, counters, hooks, and how a server's answer is judged. No I/O of its own beyond the spool.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from xtracker_client._exceptions import (
    APIError,
    ConfigurationError,
    InvalidEventError,
    SpoolFullError,
    TransportError,
)
from xtracker_client._retry import RETRYABLE, Backoff, error_of, retry_after_s
from xtracker_client._spool import DropPolicy, Kind, Spool, SpooledItem, SpoolFull, now_ms
from xtracker_client._version import __version__
from xtracker_wire import BindIn, CanonicalEvent, ClickIn, EventIn, decimal_text

log = logging.getLogger("xtracker_client")

ErrorHook = Callable[["DeliveryError"], None]
DropHook = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that an event is safely buffered (committed to the spool); the background sender
    takes it from there. ``occurred_at_ms`` is pinned, so a resend can only ever be a
    server-side duplicate, never a second event."""

    id: int
    kind: str  # "event" or "bind"
    event: str | None
    uid: str | None
    occurred_at_ms: int | None
    eid: str | None


@dataclass(frozen=True)
class DeliveryError:
    """Given to ``on_error``: the server refused an item for good (it is dead-lettered)."""

    kind: str
    body: dict[str, Any]
    status: int | None
    code: str
    detail: str


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

    def as_error(self) -> APIError:
        """What a call that needed the answer raises when it could not have it."""
        if self.status is None:
            return TransportError(self.detail)
        return APIError(self.status, self.code, self.detail)


def judge(response: httpx.Response | None, error: Exception | None) -> Judgement:
    """Connection errors, timeouts, 408, 425, 429 and 5xx are retried, and so are 401/403 (a
    key problem, not the event's); any other 4xx is final."""
    if response is None:
        return Judgement(Verdict.RETRY, f"{type(error).__name__}: {error}"[:300])
    status = response.status_code
    if 200 <= status < 300:
        return Judgement(Verdict.ACK, status=status)
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


_pin_lock = threading.Lock()
_last_pinned = 0


def _new_pin_lock() -> None:
    global _pin_lock
    _pin_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_pin_lock)


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
    ) -> None:
        url = url or os.environ.get("XTRACKER_URL")
        bearer = bearer or os.environ.get("XTRACKER_BEARER")
        if not url:
            raise ConfigurationError("no server URL: pass url= or set XTRACKER_URL")
        if not bearer:
            raise ConfigurationError("no bearer secret: pass bearer= or set XTRACKER_BEARER")
        self.url = url.rstrip("/")
        self.bearer = bearer
        self.timeout = timeout
        self.backoff = backoff
        self.on_error = on_error
        self.on_drop = on_drop
        path: str | os.PathLike[str] = (
            ":memory:" if in_memory else spool or default_spool_path(self.url, bearer)
        )
        self.spool = Spool(
            path, max_rows=max_rows, max_bytes=max_bytes, drop_policy=drop_policy, fsync=fsync
        )
        self.stats_lock = threading.Lock()
        self.counters = Stats()
        self.failures_in_row = 0
        self.new_owner()

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

    def event_body(
        self,
        event: str | CanonicalEvent,
        uid: str | None,
        *,
        value: str | int | float | Decimal | None = None,
        currency: str | None = None,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> dict[str, Any]:
        """Validated with the wire model, with ``occurred_at_ms`` pinned now."""
        raw: dict[str, Any] = {
            "event": event.value if isinstance(event, CanonicalEvent) else event,
            "occurred_at_ms": occurred_at_ms if occurred_at_ms is not None else self.pin_time(),
        }
        # Absent fields are left out, so their validators do not run for nothing.
        for name, given in (
            ("uid", uid),
            ("value", value),
            ("eid", eid),
            ("tg_id", tg_id),
            ("currency", currency),
        ):
            if given is not None:
                raw[name] = given
        try:
            parsed = EventIn.model_validate(raw)
        except ValidationError as exc:
            raise InvalidEventError(_explain(exc)) from None
        if parsed.uid is None and parsed.tg_id is None:
            raise InvalidEventError("give the uid (from /start) or the tg_id of a bound user")
        body: dict[str, Any] = {
            "event": parsed.event.value,
            "occurred_at_ms": parsed.occurred_at_ms,
        }
        for name in ("uid", "eid", "tg_id"):
            if getattr(parsed, name) is not None:
                body[name] = getattr(parsed, name)
        if parsed.value is not None:
            body["value"] = decimal_text(parsed.value)
            body["currency"] = parsed.currency
        return body

    @staticmethod
    def pin_time() -> int:
        """Now, in ms, but never the same as the last pinned time of this process (whatever
        client pinned it): two events without ``eid`` in one millisecond would otherwise share
        a dedup key on the server and count once."""
        global _last_pinned
        with _pin_lock:
            _last_pinned = max(now_ms(), _last_pinned + 1)
            return _last_pinned

    def bind_body(self, uid: str, tg_id: int) -> dict[str, Any]:
        try:
            parsed = BindIn.model_validate({"uid": uid, "tg_id": tg_id})
        except ValidationError as exc:
            raise InvalidEventError(_explain(exc)) from None
        return {"uid": parsed.uid, "tg_id": parsed.tg_id}

    def store(self, kind: Kind, body: dict[str, Any]) -> Receipt:
        try:
            item_id, dropped = self.spool.put(kind, body)
        except SpoolFull as exc:
            self.count_drop("spool_full")
            self.call_drop_hook(body, "spool_full")
            raise SpoolFullError(
                f"{exc}; the event was not stored (drop_policy=drop_newest)"
            ) from None
        for old in dropped:
            self.count_drop("spool_full")
            self.call_drop_hook(old, "spool_full")
        return Receipt(
            item_id,
            kind,
            body.get("event"),
            body.get("uid"),
            body.get("occurred_at_ms"),
            body.get("eid"),
        )

    # --- the sender's side -----------------------------------------------------------------

    @staticmethod
    def path_of(item: SpooledItem) -> str:
        return "/events" if item.kind == "event" else "/bind"

    def settle(
        self, item: SpooledItem, judgement: Judgement, rest: list[SpooledItem] | None = None
    ) -> float:
        """Record the answer in the spool, the counters and the hooks. After a transient
        failure the ``rest`` of the batch waits for the same retry, untried, so items keep
        their order (a bind before the events that follow it) and a down server is not
        hammered. Returns how long the sender should pause (a transient failure pauses it)."""
        if judgement.verdict is Verdict.ACK:
            self.spool.ack(item.id, self.owner)
            with self.stats_lock:
                self.counters.sent += 1
                self.failures_in_row = 0
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
        acked = [item.id for item, j in settled if j.verdict is Verdict.ACK]
        retried = [(item, j) for item, j in settled if j.verdict is Verdict.RETRY]
        if acked:
            self.spool.ack_many(acked, self.owner)
            with self.stats_lock:
                self.counters.sent += len(acked)
                if not retried:
                    self.failures_in_row = 0
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

    def call_drop_hook(self, body: dict[str, Any], reason: str) -> None:
        if self.on_drop is not None:
            try:
                self.on_drop(body, reason)
            except Exception:
                log.exception("on_drop hook failed")

    def stats(self) -> Stats:
        queued, size, oldest = self.spool.size()
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
            )

    def idle_wait_s(self) -> float:
        due = self.spool.next_due_ms()
        if due is None:
            return 5.0
        return min(5.0, max(0.01, (due - now_ms()) / 1000))


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        field_name = ".".join(str(p) for p in err["loc"]) or "event"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field_name}: {message}")
    return "; ".join(parts)


def click_body(
    link_slug: str | None, fbclid: str | None, campaign_name: str | None, raw_query: str | None
) -> dict[str, str]:
    raw = {
        "link_slug": link_slug,
        "fbclid": fbclid,
        "campaign_name": campaign_name,
        "raw_query": raw_query,
    }
    try:
        parsed = ClickIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEventError(_explain(exc)) from None
    return {k: v for k, v in parsed.model_dump().items() if v is not None}


def monotonic() -> float:
    return time.monotonic()
