"""``AsyncXTracker``: the asyncio client. Same guarantees as ``XTracker``; the spool is touched
only from a helper thread, so no call ever blocks the event loop, and the sender is a task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

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
)
from xtracker_client._exceptions import ClientClosedError
from xtracker_client._exit import deadline
from xtracker_client._retry import Backoff
from xtracker_client._sender import (
    IN_FLIGHT,
    Batching,
    Judged,
    Request,
    claim_limit,
    cut_round,
    judge_wave,
    requests_for,
    waves,
)
from xtracker_client._spool import DeadLetter, DropPolicy, Kind, Mark, SpooledItem
from xtracker_client._tls import shared_context
from xtracker_wire import CanonicalEvent

if TYPE_CHECKING:
    from xtracker_client._testing import AsyncRecordingXTracker

T = TypeVar("T")


class AsyncXTracker:
    """The asyncio twin of ``XTracker`` (aiogram, FastAPI, …)::

        async with AsyncXTracker("https://track.example.com", "xt_sk_…") as tracker:
            await tracker.contact(uid, tg_id=user.id)

    Each call returns once the event is committed to the spool (a thread does the disk work);
    a background task sends it. Create it inside the running loop.
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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-spool")
        self._http = httpx.AsyncClient(
            base_url=self._core.url,
            headers=self._core.headers,
            timeout=timeout,
            transport=transport,
            verify=shared_context(),
        )
        self._wake = asyncio.Event()  # new items, a flush, a stop
        self._kick = asyncio.Event()  # a flush or a stop: end a backoff pause now
        self._progress = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._flushed: FlushResult | None = None
        self._transport = transport
        self._task: asyncio.Task[None] | None = None
        # Never closed (dropped, or still open at the interpreter's exit, when no loop is left
        # to send from): what it held only in memory is lost, and said so.
        self._unclosed = weakref.finalize(self, _lost_unclosed, self._core)
        try:  # created inside the running loop: send what an earlier run left, right away
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self._ensure_sender()

    @classmethod
    def testing(cls) -> AsyncRecordingXTracker:
        """A client for a bot's tests (see ``XTracker.testing``): calls are validated and
        recorded in ``calls``; nothing is stored or sent. Works inside or outside a loop."""
        from xtracker_client._testing import AsyncRecordingXTracker

        return AsyncRecordingXTracker()

    async def _spool(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def _ensure_sender(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="xtracker-sender")

    # --- the four events, track and bind --------------------------------------------------

    async def contact(
        self,
        uid: str | None = None,
        *,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
        eid: str | None = None,
    ) -> Receipt:
        return await self.track(
            CanonicalEvent.CONTACT, uid, tg_id=tg_id, occurred_at_ms=occurred_at_ms, eid=eid
        )

    async def subscribed(
        self,
        uid: str | None = None,
        *,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
        eid: str | None = None,
    ) -> Receipt:
        return await self.track(
            CanonicalEvent.SUBSCRIBED, uid, tg_id=tg_id, occurred_at_ms=occurred_at_ms, eid=eid
        )

    async def registration(
        self,
        uid: str | None = None,
        *,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> Receipt:
        return await self.track(
            CanonicalEvent.REGISTRATION, uid, eid=eid, tg_id=tg_id, occurred_at_ms=occurred_at_ms
        )

    async def deposit(
        self,
        uid: str | None = None,
        value: str | int | float | Decimal | None = None,
        currency: str = "USD",
        *,
        eid: str | None = None,
        tg_id: int | None = None,
        occurred_at_ms: int | None = None,
    ) -> Receipt:
        return await self.track(
            CanonicalEvent.DEPOSIT,
            uid,
            value=value,
            currency=currency,
            eid=eid,
            tg_id=tg_id,
            occurred_at_ms=occurred_at_ms,
        )

    async def track(
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
        return await self._buffer("event", body)

    async def bind(self, uid: str, *, tg_id: int) -> Receipt:
        self._check_open()
        return await self._buffer("bind", self._core.bind_body(uid, tg_id))

    async def _buffer(self, kind: Kind, body: dict[str, Any]) -> Receipt:
        receipt: Receipt = await self._spool(self._core.store, kind, body)
        self._ensure_sender()
        self._wake.set()
        return receipt

    async def new_click(
        self,
        *,
        link_slug: str | None = None,
        fbclid: str | None = None,
        campaign_name: str | None = None,
        raw_query: str | None = None,
        attempts: int = 3,
    ) -> str:
        self._check_open()
        body = click_body(link_slug, fbclid, campaign_name, raw_query)
        judgement = Judgement(Verdict.RETRY, "not sent")
        for attempt in range(1, attempts + 1):
            try:
                response: httpx.Response | None = await self._http.post("/clicks", json=body)
                error: Exception | None = None
            except httpx.HTTPError as exc:
                response, error = None, exc
            judgement = judge(response, error)
            if judgement.verdict is Verdict.ACK and response is not None:
                uid: str = response.json()["uid"]
                return uid
            if judgement.verdict is Verdict.DEAD or attempt == attempts:
                break
            await asyncio.sleep(self._core.backoff.delay_s(attempt, judgement.retry_after_s))
        raise judgement.as_error()

    # --- lifecycle -------------------------------------------------------------------------

    async def ping(self, timeout: float | None = None) -> None:
        """Check, now, that the URL leads to an XTRACKER server that accepts the bearer (see
        ``XTracker.ping``). Records nothing; raises ``TransportError`` or ``APIError``."""
        self._check_open()
        try:
            response: httpx.Response | None = await self._http.post(
                PING_PATH, json={}, timeout=self._core.timeout if timeout is None else timeout
            )
            error: Exception | None = None
        except httpx.HTTPError as exc:
            response, error = None, exc
        check_ping(self._core.url, response, error)

    async def flush(self, timeout: float = 10.0) -> FlushResult:
        """Send everything buffered so far, now, and say how it went (see ``XTracker.flush``):
        true when it all reached the server and nothing was dead-lettered."""
        self._check_fork()
        spool = self._core.spool
        last: Mark = await self._spool(spool.last_id)
        await self._spool(spool.make_due, last)
        self._ensure_sender()
        self._wake.set()
        self._kick.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (pending := await self._spool(spool.pending_up_to, last)) > 0:
            left = deadline - loop.time()
            if left <= 0:
                break
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.05))
        result: FlushResult = await self._spool(self._core.flush_result, pending)
        return result

    async def close(self, timeout: float | None = None) -> FlushResult:
        """A bounded flush, then stop the sender; what is not sent stays in the spool (a memory
        spool's is counted as lost). Returns what ``flush`` returned (the first call's, when
        called again). Without ``timeout``: until the exit deadline that all the clients of the
        process share (``set_exit_timeout``, 3 s by default). Never raises."""
        if self._closed and self._flushed is not None:
            return self._flushed
        until = deadline(timeout)
        try:
            left = until - time.monotonic()
            if left > 0 and (timeout is None or timeout > 0):
                self._flushed = await self.flush(left)
            else:  # no flush: not "complete", even with nothing pending
                spool = self._core.spool
                pending = await self._spool(lambda: spool.pending_up_to(spool.last_id()))
                self._flushed = await self._spool(
                    functools.partial(self._core.flush_result, pending, flushed=False)
                )
        except Exception as exc:  # a close always closes
            self._core.note_error(f"spool: {exc}")
            self._flushed = FlushResult(False, 0, 0, f"spool: {exc}")
        self._closed = True
        self._unclosed.detach()
        self._stopping = True
        self._wake.set()
        self._kick.set()
        if self._task is not None:
            try:  # an item in flight past the timeout stays leased for the next start
                await asyncio.wait_for(self._task, max(0.1, until - time.monotonic()))
            except asyncio.TimeoutError:
                self._task.cancel()
            except Exception as exc:
                self._core.note_error(f"sender: {exc}")
        with contextlib.suppress(Exception):
            await self._http.aclose()
        try:
            lost = await self._spool(self._core.spool.evacuate)
            self._core.lose(lost, "AsyncXTracker closed")
        except Exception as exc:
            self._core.note_error(f"spool: {exc}")
        with contextlib.suppress(Exception):
            await self._spool(self._core.spool.close)
        self._io.shutdown(wait=True)
        return self._flushed

    async def stats(self) -> Stats:
        """Counters and the spool's size; never raises (after ``close()`` too)."""
        if self._closed:
            return self._core.stats()  # no disk work left: the spool answers from memory
        with contextlib.suppress(Exception):
            self._check_fork()
        try:
            result: Stats = await self._spool(self._core.stats)
        except RuntimeError:  # the helper thread is gone (closed meanwhile)
            result = self._core.stats()
        return result

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        self._check_fork()
        result: list[DeadLetter] = await self._spool(self._core.spool.dead_letters, limit)
        return result

    async def requeue_dead(self) -> int:
        """Send the dead letters again; returns how many."""
        self._check_fork()
        count: int = await self._spool(self._core.spool.requeue_dead)
        self._ensure_sender()
        self._wake.set()
        return count

    async def __aenter__(self) -> AsyncXTracker:
        self._check_fork()
        self._ensure_sender()  # send what an earlier run left in the spool
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this AsyncXTracker is closed")
        self._check_fork()

    def _check_fork(self) -> None:
        if os.getpid() != self._core.pid:
            self._after_fork()

    def _after_fork(self) -> None:
        """Used in a forked child: its own spool connection, helper thread, HTTP pool and
        sender task; the parent's leased items stay the parent's."""
        self._core.after_fork()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-spool")
        self._http = httpx.AsyncClient(
            base_url=self._core.url,
            headers=self._core.headers,
            timeout=self._core.timeout,
            transport=self._transport,
            verify=shared_context(),
        )
        self._wake, self._kick, self._progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._task = None

    # --- the sender task -------------------------------------------------------------------

    async def _run(self) -> None:
        """Never dies: any spool or transport trouble is recorded and tried again shortly."""
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        batching = Batching()
        while not self._stopping:
            self._wake.clear()  # a wake from now on is kept for the wait below
            try:
                if loop.time() >= next_reclaim:  # items a dead process had leased
                    await self._spool(self._core.spool.reclaim_orphans)
                    next_reclaim = loop.time() + 5.0
                await self._round(batching)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked, full or vanished spool
                self._core.note_error(f"spool: {exc}")
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):  # what this round held is due again
                    await self._spool(self._core.spool.release_owner, self._core.owner)

    async def _round(self, batching: Batching) -> None:
        """Claim what is due and send it in waves (xtracker_client/_sender.py)."""
        core = self._core
        claimed = await self._spool(
            functools.partial(
                core.spool.claim, core.owner, limit=claim_limit(batching), lease_ms=core.lease_ms
            )
        )
        if not claimed:
            wait: float = await self._spool(core.idle_wait_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            return
        items, later = cut_round(claimed, batch=batching.usable)
        await self._spool(core.spool.release, [i.id for i in later], core.owner, 0)
        planned = waves(items)
        for n, wave in enumerate(planned):
            rest = [item for w in planned[n + 1 :] for item in w]
            if self._stopping:
                await self._spool(core.spool.release, [i.id for i in wave + rest], core.owner, 0)
                return
            settled, untried = await self._send_wave(wave, batching)
            pause = await self._spool(core.settle_all, settled, untried + rest)
            self._progress.set()
            if pause:  # the server is away: back off as a whole (a flush cuts it short)
                self._kick.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), pause)
                return
            if untried:  # the server has no batch endpoint: one by one, from the next round
                ids = [i.id for i in untried + rest]
                await self._spool(core.spool.release, ids, core.owner, 0)
                return

    async def _send_wave(self, wave: list[SpooledItem], batching: Batching) -> Judged:
        """Each item of ``wave`` with its judgement, and the items left untried (the server
        would not take their batch as a whole)."""
        requests = requests_for(wave, batch=batching.usable)
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        async def post(request: Request) -> tuple[httpx.Response | None, Exception | None]:
            async with in_flight:
                try:
                    return await self._http.post(request.path, json=request.body), None
                except Exception as exc:  # whatever it is, it is this request's
                    return None, exc

        answers = await asyncio.gather(*(post(r) for r in requests))
        return judge_wave(
            requests, list(answers), batching, read_answer=self._core.on_answer is not None
        )


def _lost_unclosed(core: Core) -> None:
    """An ``AsyncXTracker`` that was never closed: what its spool file's memory buffer holds
    goes to the file if it can; what a memory spool holds is lost, and a warning says so."""
    try:
        core.lose(
            core.spool.evacuate(),
            "an AsyncXTracker was never closed (await tracker.close(), or async with)",
        )
    except Exception as exc:
        core.note_error(f"spool: {exc}")
