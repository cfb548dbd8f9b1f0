"""The outbox worker: claims due deliveries under a lease, sends them, settles each row.

- Runs inside ``xtracker serve`` (woken by every fan-out) or alone as ``xtracker worker``
  (polling); several workers may share one database: leases keep them apart.
- Concurrency is bounded per destination, so a slow or failing destination only ever holds
  its own slots: the others keep flowing.
- It works ahead: while some deliveries of a destination are being sent, the next ones are
  already claimed and read, and the outcomes of those answered are being written. A slot is
  taken only for the request itself.
- Every attempt is recorded. A row is settled only while this worker still holds its lease.
- A restart resumes everything unfinished: rows whose lease ran out are due again, and their
  event_id never changes, so a receiver sees a redelivery, never a new event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from dataclasses import dataclass

from xtracker_server.config import Settings
from xtracker_server.delivery.adapters import (
    DEFAULT_HOLD_AHEAD,
    Adapter,
    batch_size,
    hold_limit,
    requests_in_flight,
)
from xtracker_server.delivery.sender import Answer, Sender
from xtracker_server.domain.entities import Destination, Settled, Unhealthy
from xtracker_server.domain.outbound import DeliveryContext, Outcome, Verdict
from xtracker_server.domain.retry import RetryPolicy
from xtracker_server.metrics import Metrics
from xtracker_server.store import destinations as dest_store
from xtracker_server.store import outbox
from xtracker_server.store.faults import StoreUnavailable
from xtracker_server.store.runtime import Store

log = logging.getLogger("xtracker.delivery")

#: A paused destination (expired token, 410) is looked at again after this long.
HOLD_S = 60.0


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Settlement:
    claimed: outbox.Claimed
    verdict: Verdict
    answer: Answer | None


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        poll_s: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics  # the server's; None in ``xtracker worker`` (no /metrics there)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.policy = RetryPolicy(
            settings.retry_base_s, settings.retry_cap_s, settings.retry_max_age_s
        )
        self.poll_s = settings.worker_poll_s if poll_s is None else poll_s
        # Longer than a held delivery can wait for its slot and then be sent: the rows held
        # ahead of it go DEFAULT_HOLD_AHEAD - 1 rounds at most, each request timing out after
        # delivery_timeout_s. A worker that loses its lease anyway only causes a redelivery
        # with the same event_id.
        self.lease_ms = int((settings.delivery_timeout_s * (DEFAULT_HOLD_AHEAD + 1) + 5) * 1000)
        self.sender = Sender(
            timeout_s=settings.delivery_timeout_s,
            allow_private=settings.allow_private_destinations,
        )
        self._wake = asyncio.Event()
        self._held: dict[int, int] = defaultdict(int)  # per destination: claimed, not settled
        self._slots: dict[int, asyncio.Semaphore] = {}  # per destination: requests at once
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """New deliveries were committed: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="xtracker-worker")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; give what is in flight ``timeout_s`` to finish. Whatever does not
        finish keeps its lease until it runs out and is then sent again (same event_id)."""
        self._stopping = True
        self.wake()
        if self._main is not None:
            await self._main
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in self._tasks:
                task.cancel()
        await self.sender.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # a wake during the round below is kept for the wait after it
            try:
                claimed = await self._claim_round()
            except StoreUnavailable:  # logged once by the store's health: try again later
                claimed = False
            except Exception:
                log.exception("claiming deliveries failed")
                claimed = False
            if claimed:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _claim_round(self) -> bool:
        now = _now_ms()
        due = await self.store.read(outbox.due_destinations, now)
        claimed_any = False
        for destination_id, kind in due:
            free = hold_limit(kind) - self._held[destination_id]
            if free <= 0 or self._stopping:
                continue
            rows = await self.store.write(
                outbox.claim, destination_id, self.owner, now, self.lease_ms, free
            )
            if not rows:
                continue
            claimed_any = True
            self._held[destination_id] += len(rows)
            if destination_id not in self._slots:
                self._slots[destination_id] = asyncio.Semaphore(requests_in_flight(kind))
            task = asyncio.create_task(self._deliver(destination_id, rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return claimed_any

    async def _deliver(self, destination_id: int, rows: list[outbox.Claimed]) -> None:
        try:
            space_id = rows[0].space_id
            dest = await self.store.read(dest_store.get_destination, space_id, destination_id)
            contexts = await self.store.read(
                outbox.contexts, space_id, rows, self.settings.base_url
            )
            if dest is None:
                return
            adapter = Adapter(dest, self.settings)
            items = [(c, contexts[c.id]) for c in rows if c.id in contexts]
            size = batch_size(dest.kind)
            batches = [items[i : i + size] for i in range(0, len(items), size)]
            await asyncio.gather(*(self._send(adapter, batch) for batch in batches))
        except StoreUnavailable:  # logged once by the store's health; the leases run out and
            pass  # the rows are claimed again
        except Exception:
            log.exception("delivering to destination %s failed", destination_id)
        finally:
            self._held[destination_id] -= len(rows)
            self.wake()

    async def _send(
        self, adapter: Adapter, batch: list[tuple[outbox.Claimed, DeliveryContext]]
    ) -> None:
        now = _now_ms()
        settled: list[Settlement] = []
        ready = []
        for claimed, ctx in batch:
            refusal = adapter.refusal(ctx, now)
            if refusal:
                settled.append(Settlement(claimed, Verdict(Outcome.FAIL, refusal), None))
            else:
                ready.append((claimed, ctx))
        if ready:
            async with self._slots[adapter.destination.id]:
                answer = await self.sender.send(
                    adapter.request([ctx for _, ctx in ready]), proxy=adapter.destination.proxy
                )
            if self.metrics is not None and not answer.refused:
                self.metrics.delivery_request(
                    adapter.destination.kind.value, answer.latency_ms / 1000
                )
            verdict = adapter.classify(answer)
            if verdict.outcome is Outcome.FAIL and len(ready) > 1:
                # One bad event rejects a whole CAPI batch: split it so the good ones still go.
                half = len(ready) // 2
                await asyncio.gather(
                    self._send(adapter, ready[:half]), self._send(adapter, ready[half:])
                )
            else:
                settled += [Settlement(claimed, verdict, answer) for claimed, _ in ready]
        if settled:
            now = _now_ms()
            rows, unhealthy = settlements(self.policy, adapter.destination, settled, now)
            if unhealthy:
                log.warning("destination %s flagged unhealthy: %s", unhealthy.destination_id,
                            unhealthy.reason)  # fmt: skip
            await self.store.settle_deliveries(
                self.owner, rows, now, [unhealthy] if unhealthy else None
            )
            if self.metrics is not None:
                kind = adapter.destination.kind.value
                for s in settled:
                    self.metrics.delivered(kind, s.verdict.outcome.value)


def settlements(
    policy: RetryPolicy, destination: Destination, settled: list[Settlement], now: int
) -> tuple[list[Settled], Unhealthy | None]:
    """What each delivery in ``settled`` becomes (``Store.settle_deliveries`` writes it while
    the worker still holds its lease), and the destination to flag if an answer said it is
    broken."""
    rows = []
    for s in settled:
        claimed, verdict, answer = s.claimed, s.verdict, s.answer
        status, next_ms, refund = "sent", None, False
        error = None if verdict.outcome is Outcome.SENT else verdict.reason
        if verdict.outcome is Outcome.RETRY:
            next_ms = now + int(
                policy.delay_s(claimed.attempts, retry_after_s=verdict.retry_after_s) * 1000
            )
            status = "retrying"
            if policy.gives_up(claimed.age_from_ms, next_ms):
                status = "failed_permanently"
                error = f"gave up after {claimed.attempts} attempts; last: {verdict.reason}"
        elif verdict.outcome is Outcome.FAIL:
            status = "failed_permanently"
        elif verdict.outcome is Outcome.HOLD:
            # The destination is broken, not the event: keep it, do not count the attempt.
            status = "retrying" if claimed.attempts > 1 else "pending"
            next_ms, refund = now + int(HOLD_S * 1000), True
        rows.append(
            Settled(
                delivery_id=claimed.id,
                space_id=claimed.space_id,
                status=status,
                next_attempt_ms=next_ms,
                last_status=answer.status if answer else None,
                last_error=error,
                refund_attempt=refund,
                outcome=verdict.outcome.value,
                latency_ms=answer.latency_ms if answer else 0,
                excerpt=answer.excerpt if answer else None,
            )
        )
    reason = next((s.verdict.unhealthy for s in settled if s.verdict.unhealthy), None)
    unhealthy = Unhealthy(destination.space_id, destination.id, reason) if reason else None
    return rows, unhealthy
