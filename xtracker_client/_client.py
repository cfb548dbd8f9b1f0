"""``XTracker``: the synchronous client. Calls return once the event is committed to the spool;
a background thread sends the spool, oldest first, until the server has each item."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from xtracker_client._core import (
    PING_PATH,
    AnswerHook,
    Core,
    DropHook,
    ErrorHook,
    FlushResult,
    Judgement,
    Receipt,
    Stats,
    Verdict,
    check_ping,
    click_body,
    judge,
    monotonic,
)
from xtracker_client._exceptions import ClientClosedError
from xtracker_client._exit import deadline
from xtracker_client._retry import Backoff
from xtracker_client._sender import (
    IN_FLIGHT,
    Answer,
    Batching,
    Judged,
    Request,
    claim_limit,
    cut_round,
    judge_wave,
    requests_for,
    waves,
)
from xtracker_client._spool import DeadLetter, DropPolicy, SpooledItem
from xtracker_client._tls import shared_context
from xtracker_wire import CanonicalEvent

if TYPE_CHECKING:
    from xtracker_client._testing import RecordingXTracker

_CLIENTS: weakref.WeakSet[XTracker] = weakref.WeakSet()


class XTracker:
    """Report conversions from a bot.

        tracker = XTracker("https://track.example.com", "xt_sk_…")
        tracker.contact(uid, tg_id=message.from_user.id)
        tracker.deposit(uid, "25.00", "USD", eid="tx-1")

    Events go to a SQLite spool first (``spool=`` path, or one per server and key in the user's
    cache directory; ``in_memory=True`` for tests and serverless), so nothing is lost to a
    network outage, a server restart or the bot's own crash: what is not sent yet is sent by
    the next process that opens the same spool.

    ``test=True`` makes every event of this client a test event (a staging bot): stored and
    shown, never counted in reports nor sent to destinations, and deduplicated apart from the
    real events.
    """

    def __init__(
        self,
        url: str | None = None,
        bearer: str | None = None,
        *,
        spool: str | os.PathLike[str] | None = None,
        in_memory: bool = False,
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        drop_policy: DropPolicy = "drop_oldest",
        fsync: bool = False,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        on_error: ErrorHook | None = None,
        on_drop: DropHook | None = None,
        on_answer: AnswerHook | None = None,
        debug: bool = False,
        test: bool = False,
        exit_flush_timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = Core(
            url,
            bearer,
            spool=spool,
            in_memory=in_memory,
            max_rows=max_rows,
            max_bytes=max_bytes,
            drop_policy=drop_policy,
            fsync=fsync,
            timeout=timeout,
            backoff=backoff or Backoff(),
            on_error=on_error,
            on_drop=on_drop,
            on_answer=on_answer,
            debug=debug,
            test=test,
        )
        self._transport = transport
        self._exit_flush_timeout = exit_flush_timeout
        self._closed = False
        self._flushed: FlushResult | None = None
        self._start()
        _CLIENTS.add(self)

    @classmethod
    def testing(cls) -> RecordingXTracker:
        """A client for a bot's tests: every call is validated as here and recorded in its
        ``calls`` list instead of being sent; no spool file, no thread, no network, and
        ``close()`` returns at once. No URL or bearer needed."""
        from xtracker_client._testing import RecordingXTracker

        return RecordingXTracker()

    def _start(self) -> None:
        self._http = httpx.Client(
            base_url=self._core.url,
            headers=self._core.headers,
            timeout=self._core.timeout,
            transport=self._transport,
            verify=shared_context(),
        )
        self._wake = threading.Event()  # new items, a flush, a stop
        self._kick = threading.Event()  # a flush or a stop: end a backoff pause now
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._handoff = threading.Lock()
        self._sender_ended = self._release_at_end = False
        self._thread = threading.Thread(target=self._run, name="xtracker-sender", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child (gunicorn preload, Celery prefork): a fresh connection to the
        spool, a fresh HTTP pool and a sender thread of its own. Rows the parent had leased
        stay the parent's; nothing is sent twice."""
        self._core.after_fork()
        if not self._closed:
            self._start()

    # --- the four events, track and bind --------------------------------------------------

    def contact(
        self,
        uid: str | None = None,
        *,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
        eid: str | None = None,
    ) -> Receipt:
        """The user reached the bot (usually on ``/start fb_<uid>``)."""
        return self.track(
            CanonicalEvent.CONTACT, uid, tg_id=tg_id, occurred_at_ms=occurred_at_ms, eid=eid
        )

    def subscribed(
        self,
        uid: str | None = None,
        *,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
        eid: str | None = None,
    ) -> Receipt:
        """The user subscribed (joined the channel, accepted the offer's first step)."""
        return self.track(
            CanonicalEvent.SUBSCRIBED, uid, tg_id=tg_id, occurred_at_ms=occurred_at_ms, eid=eid
        )

    def registration(
        self,
        uid: str | None = None,
        *,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> Receipt:
        """The user registered with the offer (use the partner's id as ``eid``)."""
        return self.track(
            CanonicalEvent.REGISTRATION, uid, eid=eid, tg_id=tg_id, occurred_at_ms=occurred_at_ms
        )

    def deposit(
        self,
        uid: str | None = None,
        value: str | int | float | Decimal | None = None,
        currency: str = "USD",
        *,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> Receipt:
        """A deposit: ``value`` as a decimal string ("25.00") or a number; the transaction id
        as ``eid`` makes every resend a duplicate, never a second deposit."""
        return self.track(
            CanonicalEvent.DEPOSIT,
            uid,
            value=value,
            currency=currency,
            eid=eid,
            tg_id=tg_id,
            occurred_at_ms=occurred_at_ms,
        )

    def track(
        self,
        event: str | CanonicalEvent,
        uid: str | None = None,
        *,
        value: str | int | float | Decimal | None = None,
        currency: str | None = None,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> Receipt:
        """Any of the four events by name. Raises ``InvalidEventError`` at once for a bad
        event; never raises for transport trouble."""
        self._check_open()
        body = self._core.event_body(
            event,
            uid,
            value=value,
            currency=currency,
            eid=eid,
            tg_id=tg_id,
            occurred_at_ms=occurred_at_ms,
        )
        return self._buffer("event", body)

    def bind(self, uid: str, *, tg_id: int) -> Receipt:
        """The Telegram user ``tg_id`` came through the click ``uid`` (buffered like an event,
        and sent before the events that follow it): ``bind(uid, tg_id=user.id)``."""
        self._check_open()
        return self._buffer("bind", self._core.bind_body(uid, tg_id))

    def _buffer(self, kind: Any, body: dict[str, Any]) -> Receipt:
        receipt = self._core.store(kind, body)
        if not self._wake.is_set():
            self._wake.set()
        return receipt

    def new_click(
        self,
        *,
        link_slug: str | None = None,
        fbclid: str | None = None,
        campaign_name: str | None = None,
        raw_query: str | None = None,
        attempts: int = 3,
    ) -> str:
        """Mint a uid for a click that did not come through a landing page. Needs the answer,
        so it is sent at once (with retries) and raises ``APIError`` if it cannot be had."""
        self._check_open()
        body = click_body(link_slug, fbclid, campaign_name, raw_query)
        judgement = Judgement(Verdict.RETRY, "not sent")
        for attempt in range(1, attempts + 1):
            try:
                response: httpx.Response | None = self._http.post("/clicks", json=body)
                error: Exception | None = None
            except httpx.HTTPError as exc:
                response, error = None, exc
            judgement = judge(response, error)
            if judgement.verdict is Verdict.ACK and response is not None:
                uid: str = response.json()["uid"]
                return uid
            if judgement.verdict is Verdict.DEAD or attempt == attempts:
                break
            self._stop.wait(self._core.backoff.delay_s(attempt, judgement.retry_after_s))
        raise judgement.as_error()

    # --- lifecycle -------------------------------------------------------------------------

    def ping(self, timeout: float | None = None) -> None:
        """Check, now, that the URL leads to an XTRACKER server and that it accepts the bearer
        (for start-up: a wrong URL or bearer otherwise only shows in the log). Records nothing.
        Raises ``TransportError`` without an answer, ``APIError`` for a wrong URL (404), a
        refused bearer (401, 403) or a server that cannot answer now (5xx)."""
        self._check_open()
        try:
            response: httpx.Response | None = self._http.post(
                PING_PATH, json={}, timeout=self._core.timeout if timeout is None else timeout
            )
            error: Exception | None = None
        except httpx.HTTPError as exc:
            response, error = None, exc
        check_ping(self._core.url, response, error)

    def flush(self, timeout: float = 10.0) -> FlushResult:
        """Send everything buffered so far, now (backoffs are cut short), and say how it went:
        the result is true when all of it reached the server within ``timeout`` and nothing
        was dead-lettered since the previous flush (``FlushResult``). What is not sent stays
        in the spool."""
        self._check_fork()
        last = self._core.spool.last_id()
        self._core.spool.make_due(last)
        self._wake.set()
        self._kick.set()
        deadline = monotonic() + timeout
        with self._progress:
            while (pending := self._core.spool.pending_up_to(last)) > 0:
                left = deadline - monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._progress.wait(min(left, 0.05))
        return self._core.flush_result(pending)

    def close(self, timeout: float | None = None) -> FlushResult:
        """A bounded flush, then stop the sender. What is not sent stays in the spool for the
        next start (a memory spool's is counted as lost). Returns what ``flush`` returned (the
        first call's, when called again). Without ``timeout``: until the exit deadline that all
        the clients of the process share (``set_exit_timeout``, 3 s by default). Never
        raises."""
        if self._closed and self._flushed is not None:
            return self._flushed
        until = deadline(timeout)
        try:
            left = until - monotonic()
            if left > 0 and (timeout is None or timeout > 0):
                self._flushed = self.flush(left)
            else:  # no flush: not "complete", even with nothing pending
                pending = self._core.spool.pending_up_to(self._core.spool.last_id())
                self._flushed = self._core.flush_result(pending, flushed=False)
        except Exception as exc:  # a close always closes
            self._core.note_error(f"spool: {exc}")
            self._flushed = FlushResult(False, 0, 0, f"spool: {exc}")
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._kick.set()
        # A request still in flight is not waited for past the timeout: its item stays leased
        # in the spool, and the next start takes it over (the lease of a dead process is freed).
        self._thread.join(timeout=max(0.1, until - monotonic()))
        try:
            self._core.lose(self._core.spool.evacuate(), "XTracker closed")
        except Exception as exc:
            self._core.note_error(f"spool: {exc}")
        with self._handoff:  # the last of this and the sender lets go of the pool and spool
            if self._sender_ended:
                self._release()
            else:
                self._release_at_end = True
        _CLIENTS.discard(self)
        return self._flushed

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._http.close()
        with contextlib.suppress(Exception):
            self._core.spool.close()

    def _hurry(self) -> None:
        """What a flush begins with, without waiting for it (the exit hook starts every
        client's flush before it waits for any)."""
        self._core.spool.make_due(self._core.spool.last_id())
        self._wake.set()
        self._kick.set()

    def stats(self) -> Stats:
        """Counters and the spool's size; never raises (after ``close()`` too)."""
        with contextlib.suppress(Exception):
            self._check_fork()
        return self._core.stats()

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Items the server refused for good, with its reason (newest first)."""
        return self._core.spool.dead_letters(limit)

    def requeue_dead(self) -> int:
        """Send the dead letters again (after fixing what the server refused); returns how
        many. They keep their pinned time, so one the server already has is a duplicate."""
        count = self._core.spool.requeue_dead()
        self._wake.set()
        return count

    def __enter__(self) -> XTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this XTracker is closed")
        self._check_fork()

    def _check_fork(self) -> None:
        if os.getpid() != self._core.pid:  # a fork without os.register_at_fork (rare)
            self._after_fork()

    # --- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        """The sender thread's body. When a close did not wait for it (a request was in
        flight past the close's timeout), it closes the HTTP pool and the spool as it ends."""
        try:
            self._send_until_stopped()
        finally:
            with self._handoff:  # a close that did not wait for a request in flight
                self._sender_ended = True
                if self._release_at_end:
                    self._release()

    def _send_until_stopped(self) -> None:
        """Never dies: any spool or transport trouble is recorded and tried again shortly."""
        next_reclaim = 0.0
        batching = Batching()
        while not self._stop.is_set():
            try:
                if monotonic() >= next_reclaim:  # items a dead process had leased
                    self._core.spool.reclaim_orphans()
                    next_reclaim = monotonic() + 5.0
                self._round(batching)
            except Exception as exc:  # a locked, full or vanished spool
                self._core.note_error(f"spool: {exc}")
                self._stop.wait(0.5)
                with contextlib.suppress(Exception):  # what this round held is due again
                    self._core.spool.release_owner(self._core.owner)

    def _round(self, batching: Batching) -> None:
        """Claim what is due and send it in waves (xtracker_client/_sender.py)."""
        core = self._core
        claimed = core.spool.claim(core.owner, limit=claim_limit(batching), lease_ms=core.lease_ms)
        if not claimed:
            self._wake.wait(core.idle_wait_s())
            self._wake.clear()
            return
        items, later = cut_round(claimed, batch=batching.usable)
        core.spool.release([i.id for i in later], core.owner, 0)
        planned = waves(items)
        for n, wave in enumerate(planned):
            rest = [item for w in planned[n + 1 :] for item in w]
            if self._stop.is_set():
                core.spool.release([i.id for i in wave + rest], core.owner, 0)
                return
            settled, untried = self._send_wave(wave, batching)
            pause = core.settle_all(settled, untried + rest)
            with self._progress:
                self._progress.notify_all()
            if pause:  # the server is away: back off as a whole (a flush cuts it short)
                self._kick.clear()
                self._kick.wait(pause)
                return
            if untried:  # the server has no batch endpoint: one by one, from the next round
                core.spool.release([i.id for i in untried + rest], core.owner, 0)
                return

    def _send_wave(self, wave: list[SpooledItem], batching: Batching) -> Judged:
        """Each item of ``wave`` with its judgement, and the items left untried (the server
        would not take their batch as a whole)."""
        requests = requests_for(wave, batch=batching.usable)
        answers = _in_parallel(self._post, requests)
        return judge_wave(requests, answers, batching, read_answer=self._core.on_answer is not None)

    def _post(self, request: Request) -> Answer:
        try:
            return self._http.post(request.path, json=request.body), None
        except Exception as exc:  # on a helper thread: whatever it is, it is this request's
            return None, exc


def _in_parallel(post: Callable[[Request], Answer], requests: list[Request]) -> list[Answer]:
    """``post`` of each request, ``IN_FLIGHT`` at a time: on this thread and on short-lived
    daemon threads. (Not a ``ThreadPoolExecutor``: Python joins its threads, and refuses it
    work, before the exit handlers run, and the exit flush sends through it.)"""
    answers: list[Answer] = [(None, None)] * len(requests)
    if len(requests) == 1:
        answers[0] = post(requests[0])
        return answers
    todo = iter(list(enumerate(requests)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                nxt = next(todo, None)
            if nxt is None:
                return
            answers[nxt[0]] = post(nxt[1])

    helpers = [
        threading.Thread(target=work, name="xtracker-send", daemon=True)
        for _ in range(min(IN_FLIGHT, len(requests)) - 1)
    ]
    for helper in helpers:
        helper.start()
    work()
    for helper in helpers:
        helper.join()
    return answers


def _before_fork() -> None:
    # Let no fork happen in the middle of the sender's spool transaction or counter update:
    # the child would inherit the half-done state.
    for client in list(_CLIENTS):
        client._core.spool.lock.acquire()
        client._core.stats_lock.acquire()


def _after_fork_in_parent() -> None:
    for client in list(_CLIENTS):
        client._core.stats_lock.release()
        client._core.spool.lock.release()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork()


def _flush_at_exit() -> None:
    """Close every client still open, all within the one exit deadline: they all flush at
    once, then each is closed with what is left."""
    clients = [client for client in list(_CLIENTS) if not client._closed]
    if not clients:
        return
    until = deadline(None)
    for client in clients:
        with contextlib.suppress(Exception):
            client._hurry()
    for client in clients:
        left = until - monotonic()
        if client._exit_flush_timeout is not None:
            left = min(left, client._exit_flush_timeout)
        client.close(max(0.0, left))


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
atexit.register(_flush_at_exit)
