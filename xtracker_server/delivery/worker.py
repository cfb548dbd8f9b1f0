"""The outbox worker: claims due deliveries under a lease, sends them, settles each row.

- Runs for ``xtracker serve`` (woken by every fan-out), in a process of its own
  (delivery/process.py) or in the server's, or alone as ``xtracker worker`` (polling); several
  workers may share one database: leases keep them apart.
- Concurrency is bounded per destination (its sender tasks, ``requests_in_flight``), so a slow
  or failing destination only ever holds its own senders: the others keep flowing.
- It works ahead: while some deliveries of a destination are being sent, the next ones are
  already claimed, read and queued for its senders, and the outcomes of those answered are
  being written.
- Claims follow the drain order of domain/drain.py (oldest due first, a share of each claim for
  the newest), and are made a chunk at a time (``min_claim``), not a row at a time.
- Outcomes are written in batches: whatever was answered while the previous batch was being
  written goes in the next, one store write (one transaction) for all of it. What a delivery
  becomes is decided by the pure ``domain.retry.next_state``. A delivery counts against its
  destination's hold (``hold_limit``) until it is answered, not until its outcome is written:
  the write's latency never stalls the claims, and the lease keeps the row until then.
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
from collections import defaultdict, deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.delivery.adapters import (
    LEASE_ROUNDS,
    Adapter,
    batch_size,
    hold_limit,
    min_claim,
    requests_in_flight,
)
from xtracker_server.delivery.sender import Answer, Sender
from xtracker_server.domain.destinations import DestinationKind
from xtracker_server.domain.drain import claim_plan
from xtracker_server.domain.entities import Claimed, Destination, Settled, Unhealthy
from xtracker_server.domain.outbound import DeliveryContext, Outcome, Verdict
from xtracker_server.domain.retry import RetryPolicy, next_state
from xtracker_server.store.api import Store, StoreUnavailable

log = logging.getLogger("xtracker.delivery")


class DeliveryMetrics(Protocol):
    """What the worker counts: the server's ``Metrics``, or a child's relay of them
    (delivery/child.py)."""

    def delivered(self, kind: str, outcome: str, count: int = 1) -> None: ...

    def delivery_request(self, kind: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Settlement:
    claimed: Claimed
    verdict: Verdict
    answer: Answer | None


_Batch = list[tuple[Claimed, DeliveryContext]]  # what one request carries
#: A batch waiting for a request: its adapter, and until when (the loop's clock) its
#: deliveries are leased to this worker.
_Queued = tuple[Adapter, _Batch, float]


@dataclass
class _Queue:
    """One destination's batches read and waiting for a request, and the sender tasks that
    take them (at most ``requests_in_flight`` of its kind: its concurrency)."""

    batches: deque[_Queued] = field(default_factory=deque)
    senders: int = 0


#: Deliveries made due per write when a destination recovers, and the pause between writes:
#: tens of thousands a second, more than a worker sends, without holding the writer long.
#: Each write's rows go oldest first; a larger outage is made due over a few seconds, during
#: which the rows already due go out (so its order is oldest first within each write).
HASTEN_BATCH = 2000
HASTEN_PAUSE_S = 0.05


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        poll_s: float | None = None,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        # The server's (or relayed to it); None in ``xtracker worker`` (no /metrics there).
        self.metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.policy = RetryPolicy(
            settings.retry_base_s, settings.retry_cap_s, settings.retry_max_age_s
        )
        self.poll_s = settings.worker_poll_s if poll_s is None else poll_s
        # LEASE_ROUNDS requests, each timing out after delivery_timeout_s: a held delivery
        # whose turn comes later than that is let go, not sent (``_sender``). A worker that
        # loses its lease anyway only causes a redelivery with the same event_id.
        self.lease_ms = int((settings.delivery_timeout_s * LEASE_ROUNDS + 5) * 1000)
        self.sender = Sender(
            timeout_s=settings.delivery_timeout_s,
            allow_private=settings.allow_private_destinations,
        )
        self._wake = asyncio.Event()
        self._held: dict[int, int] = defaultdict(int)  # per destination: claimed, not answered yet
        self._queues: dict[int, _Queue] = defaultdict(_Queue)  # per destination
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        # Outcomes not written yet, and the task writing them (one batch at a time).
        self._outcomes: list[tuple[Destination, list[Settlement]]] = []
        self._settling: asyncio.Task[None] | None = None
        # Claimed deliveries let go unsent, not given back yet, and the task giving them back.
        self._let_go: list[Claimed] = []
        self._giving_back: asyncio.Task[None] | None = None
        # Recovery after an outage (``_recovered``): the destinations that showed an outage's
        # symptom since they were last hastened, those hastened since this worker started, and
        # the hastening under way.
        self._suspect: set[int] = set()
        self._hastened: set[int] = set()
        self._hastening: dict[int, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """New deliveries were committed: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="xtracker-worker")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; give what is in flight ``timeout_s`` to finish. What was claimed and
        not sent yet is given back (due again at once, its attempt not counted); a request cut
        off keeps its lease until it runs out and is then sent again (same event_id)."""
        self._stopping = True
        self.wake()
        if self._main is not None:
            await self._main
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # A delivery that finishes hands its outcomes to a settling task started meanwhile.
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())
        for task in self._tasks:
            task.cancel()
        for queue in self._queues.values():
            while queue.batches:
                _, batch, _ = queue.batches.popleft()
                self._let_go.extend(claimed for claimed, _ in batch)
        with contextlib.suppress(Exception):  # logged there; their leases run out instead
            await asyncio.wait_for(self._give_back(), max(1.0, deadline - loop.time()))
        await self.sender.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _release(self, destination_id: int, count: int) -> None:
        """``count`` held rows of a destination are settled (or given up): claim more."""
        if count:
            self._held[destination_id] -= count
            self.wake()

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
        now = now_ms()
        due = await self.store.due_destinations(now)
        claimed_any = False
        for destination_id, kind in due:
            held = self._held[destination_id]
            concurrency = self.settings.delivery_concurrency
            free = hold_limit(kind, concurrency) - held
            # While some are held, wait until a chunk is free: a claim and its read cost the
            # same for one row as for many.
            if self._stopping or free <= 0 or (held and free < min_claim(kind, concurrency)):
                continue
            plan = claim_plan(free, now)
            leased_until = asyncio.get_running_loop().time() + self.lease_ms / 1000
            rows = await self.store.claim(
                destination_id, self.owner, now, self.lease_ms, plan.limit,
                fresh_limit=plan.fresh_limit, fresh_since_ms=plan.fresh_since_ms,
            )  # fmt: skip
            if not rows:
                continue
            claimed_any = True
            self._held[destination_id] += len(rows)
            self._spawn(self._deliver(destination_id, kind, rows, leased_until))
        return claimed_any

    async def _deliver(
        self, destination_id: int, kind: DestinationKind, rows: list[Claimed], leased_until: float
    ) -> None:
        """Read what the claimed rows send and queue their requests for the destination's
        senders."""
        queued = 0
        try:
            space_id = rows[0].space_id
            dest, contexts = await asyncio.gather(  # two reads at once: one wait, not two
                self.store.get_destination(space_id, destination_id),
                self.store.delivery_contexts(space_id, rows, self.settings.base_url),
            )
            if dest is None:
                return
            adapter = Adapter(dest, self.settings)
            items = [(c, contexts[c.id]) for c in rows if c.id in contexts]
            size = batch_size(kind)
            queue = self._queues[destination_id]
            for i in range(0, len(items), size):
                queue.batches.append((adapter, items[i : i + size], leased_until))
            queued = len(items)
            concurrency = requests_in_flight(kind, self.settings.delivery_concurrency)
            while queue.senders < min(concurrency, len(queue.batches)):
                queue.senders += 1
                self._spawn(self._sender(queue))
        except StoreUnavailable:  # logged once by the store's health; the leases run out and
            pass  # the rows are claimed again
        except Exception:
            log.exception("delivering to destination %s failed", destination_id)
        finally:
            # What was not queued keeps its lease until it runs out.
            self._release(destination_id, len(rows) - queued)

    async def _sender(self, queue: _Queue) -> None:
        """Send the queue's batches one after the other, and hand their outcomes over. A batch
        whose lease could run out before its request times out is let go, not sent: once the
        lease has run out it is due again (another worker may have it by then)."""
        loop = asyncio.get_running_loop()
        try:
            while queue.batches:
                adapter, batch, leased_until = queue.batches.popleft()
                if loop.time() + self.settings.delivery_timeout_s + 1 > leased_until:
                    self._release(adapter.destination.id, len(batch))
                    self._let_go.extend(claimed for claimed, _ in batch)
                    if self._giving_back is None or self._giving_back.done():
                        self._giving_back = self._spawn(self._give_back())
                    continue
                try:
                    settled = await self._send(adapter, batch)
                except Exception:
                    log.exception("delivering to destination %s failed", adapter.destination.id)
                    self._release(adapter.destination.id, len(batch))
                    continue
                self._outcomes.append((adapter.destination, settled))
                if self._settling is None or self._settling.done():
                    self._settling = self._spawn(self._settle_outcomes())
                # Answered: no longer waiting for a request. Their leases keep them from being
                # claimed again until the outcome is written (or the lease runs out).
                self._release(adapter.destination.id, len(batch))
        finally:
            queue.senders -= 1

    async def _give_back(self) -> None:
        """Give back what was let go unsent (``Store.give_back``): due again at once, the
        claim's attempt not counted. If the store cannot, their leases run out instead."""
        while self._let_go:
            taken, self._let_go = self._let_go, []
            by_space: dict[int, list[int]] = defaultdict(list)
            for claimed in taken:
                by_space[claimed.space_id].append(claimed.id)
            for space_id, ids in by_space.items():
                try:
                    await self.store.give_back(space_id, ids, self.owner)
                except StoreUnavailable:  # logged once by the store's health
                    pass
                except Exception:
                    log.exception("giving back %d deliveries failed", len(ids))

    async def _send(self, adapter: Adapter, batch: _Batch) -> list[Settlement]:
        """One request for ``batch`` (after the events that cannot go at all); the outcome of
        each of its deliveries."""
        now = now_ms()
        settled: list[Settlement] = []
        ready = []
        for claimed, ctx in batch:
            refusal = adapter.refusal(ctx, now)
            if refusal:
                settled.append(Settlement(claimed, Verdict(Outcome.FAIL, refusal), None))
            else:
                ready.append((claimed, ctx))
        if not ready:
            return settled
        answer = await self.sender.send(
            adapter.request([ctx for _, ctx in ready]), proxy=adapter.destination.proxy
        )
        if self.metrics is not None and not answer.refused:
            self.metrics.delivery_request(adapter.destination.kind.value, answer.latency_ms / 1000)
        verdict = adapter.classify(answer)
        if verdict.outcome is Outcome.FAIL and len(ready) > 1:
            # One bad event rejects a whole CAPI batch: split it so the good ones still go
            # (one half after the other: the destination's concurrency stays as it is).
            half = len(ready) // 2
            return (
                settled
                + await self._send(adapter, ready[:half])
                + await self._send(adapter, ready[half:])
            )
        return settled + [Settlement(claimed, verdict, answer) for claimed, _ in ready]

    async def _settle_outcomes(self) -> None:
        """Write the outcomes handed over, a batch at a time: those that arrive while one batch
        is being written go together in the next."""
        while self._outcomes:
            taken, self._outcomes = self._outcomes, []
            now = now_ms()
            rows, unhealthy = outcome_rows(taken, self.policy, now)
            for u in unhealthy:
                log.warning("destination %s flagged unhealthy: %s", u.destination_id, u.reason)
            try:
                await self.store.settle_deliveries(self.owner, rows, now, unhealthy)
            except StoreUnavailable:  # logged once by the store's health; the leases run out
                continue  # and the rows are sent again (same event_id)
            except Exception:
                log.exception("settling %d deliveries failed", len(rows))
                continue
            if self.metrics is not None:
                for destination, settled in taken:
                    for s in settled:
                        self.metrics.delivered(destination.kind.value, s.verdict.outcome.value)
            for destination, settled in taken:
                self._recovered(destination.id, settled)

    def _recovered(self, destination_id: int, settled: list[Settlement]) -> None:
        """After an outage, the deliveries it left waiting out a backoff go as soon as the
        destination answers again, not when each one's backoff ends: a destination that
        answered with an outage's symptom (no answer, a 5xx), or one this worker has not seen
        since it started, is hastened when a delivery to it is sent (``_hasten``)."""
        if any(outage_symptom(s) for s in settled):
            self._suspect.add(destination_id)
            return
        if not any(s.verdict.outcome is Outcome.SENT for s in settled):
            return
        if destination_id in self._hastened and destination_id not in self._suspect:
            return
        self._suspect.discard(destination_id)
        self._hastened.add(destination_id)
        if destination_id not in self._hastening and not self._stopping:
            self._hastening[destination_id] = self._spawn(self._hasten(destination_id))

    async def _hasten(self, destination_id: int) -> None:
        """Make the destination's deliveries that an outage left waiting due, ``HASTEN_BATCH``
        at a time (each a short write), until none is left or the destination fails again."""
        total = 0
        try:
            while not self._stopping and destination_id not in self._suspect:
                count = await self.store.hasten_retries(destination_id, now_ms(), HASTEN_BATCH)
                total += count
                if count:
                    self.wake()
                if count < HASTEN_BATCH:
                    break
                await asyncio.sleep(HASTEN_PAUSE_S)
        except StoreUnavailable:  # logged once by the store's health; the backoffs stand
            pass
        except Exception:
            log.exception("hastening the retries of destination %s failed", destination_id)
        finally:
            del self._hastening[destination_id]
        if total:
            log.info("destination %s answers again: %d deliveries waiting for a retry are"
                     " due now", destination_id, total)  # fmt: skip


def outage_symptom(s: Settlement) -> bool:
    """A retried attempt that got no answer, or a 5xx: the destination is down, not asking
    for time (408, 425 and 429 are not symptoms: their backoff stands)."""
    if s.verdict.outcome is not Outcome.RETRY:
        return False
    return s.answer is None or s.answer.status is None or s.answer.status >= 500


def outcome_rows(
    taken: list[tuple[Destination, list[Settlement]]], policy: RetryPolicy, now: int
) -> tuple[list[Settled], list[Unhealthy]]:
    """The store's rows for a batch of outcomes (each delivery's ``next_state``), and the
    destinations an answer said are broken."""
    rows: list[Settled] = []
    unhealthy: list[Unhealthy] = []
    for destination, settled in taken:
        for s in settled:
            state = next_state(s.claimed, s.verdict, policy, now)
            rows.append(
                Settled(
                    delivery_id=s.claimed.id,
                    space_id=s.claimed.space_id,
                    status=state.status.value,
                    next_attempt_ms=state.next_attempt_ms,
                    last_status=s.answer.status if s.answer else None,
                    last_error=state.error,
                    refund_attempt=state.refund_attempt,
                    outcome=s.verdict.outcome.value,
                    latency_ms=s.answer.latency_ms if s.answer else 0,
                    excerpt=s.answer.excerpt if s.answer else None,
                )
            )
        reason = next((s.verdict.unhealthy for s in settled if s.verdict.unhealthy), None)
        if reason:
            unhealthy.append(
                Unhealthy(destination.space_id, destination.id, reason, destination.updated_ms)
            )
    return rows, unhealthy
