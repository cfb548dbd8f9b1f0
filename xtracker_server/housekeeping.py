"""Chores the server does on its own: pruning what is past its retention, keeping the report
rollup up to date, storing the tally of landing visits that were not recorded as clicks, probing
the storage when nothing else uses it, finishing deletions a crash cut short
(xtracker_server/deletion.py), and keeping the query planner's statistics current
(store/sqlite/stats.py).

Retention (docs/operations.md#disk-upkeep): postback log rows older than
``XTRACKER_POSTBACK_LOG_DAYS``, sent deliveries older than ``XTRACKER_DELIVERY_SENT_DAYS`` and
deliveries given up older than ``XTRACKER_DELIVERY_DEAD_DAYS`` (each with its attempts), and
the entries of the report rollup's queues (``report_backlog``, ``report_removals``) that the
rollup has applied. They are deleted at start-up and then periodically, oldest first, in
batches: each batch is one writer operation of about 20 ms (``PRUNE_BATCH``), and the next one
waits ``PRUNE_PAUSE_S``, so neither a request nor the writer ever waits long, even for a
database that holds millions of rows to prune. Pending and retrying deliveries are never
pruned. The report rollup (store/sqlite/rollup.py) catches up with the inbox every
``ROLLUP_EVERY_S``, on its own thread and file, so that a report rarely has much left to do.
The landing counts unrecorded visits in memory (domain/unrecorded.py); they are added to the
store every ``UNRECORDED_EVERY_S`` and once more when the server stops.

When nothing has committed for ``PROBE_IDLE_S``, a probe writes one row and reads (store/health.py):
an idle server's /healthz notices a storage that went read-only or stalled, and that it works
again. A chore that meets a storage fault waits for its next round quietly: the fault is logged
once, by the store's health trackers (a traceback every second would bury it).

Every ``STATS_EVERY_S`` the tables whose planner statistics are missing or stale are analysed,
a bounded amount of work each (store/sqlite/stats.py; the store analysed every table when it
opened)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.deletion import finish_unfinished
from xtracker_server.domain.unrecorded import Tally
from xtracker_server.store.api import FaultReason, FaultTracker, Store, StoreUnavailable

log = logging.getLogger("xtracker.housekeeping")

#: Rows one pruning batch deletes: measured on a database holding a million rows to prune, a
#: batch of 1,000 postback log rows holds the writer about 20 ms, and a batch of 500
#: deliveries (each with its attempt) about 25 ms (docs/operations.md#disk-upkeep).
PRUNE_BATCH = 1000
DELIVERY_PRUNE_BATCH = 500
#: The pause between two batches: the writer is left to requests most of the time.
PRUNE_PAUSE_S = 0.05
DAY_MS = 86_400_000
ROLLUP_EVERY_S = 1.0
#: How long one catch-up of housekeeping's runs before it gives the rollup's thread back: a
#: build of the rollup (hours at 100M events) goes on in slices, and a report request's own
#: catch-up runs between two of them (and answers 503 ``rebuilding`` past its time).
ROLLUP_SLICE_S = 1.0
UNRECORDED_EVERY_S = 1.0
#: The storage is probed after this long without a commit (and then at most this often).
PROBE_IDLE_S = 2.0
#: How often unfinished deletions are looked for (a space whose deletion a crash cut short,
#: an event that landed in a deleted space from a process that still had its secret cached).
DELETIONS_EVERY_S = 60.0
#: How often the planner's statistics are checked (and refreshed where stale:
#: store/sqlite/stats.py).
STATS_EVERY_S = 600.0


class Housekeeper:
    def __init__(self, store: Store, settings: Settings, unrecorded: Tally | None = None) -> None:
        self.store = store
        self.unrecorded = unrecorded
        self.log_keep_ms = int(settings.postback_log_days * DAY_MS)
        self.sent_keep_ms = int(settings.delivery_sent_days * DAY_MS)
        self.dead_keep_ms = int(settings.delivery_dead_days * DAY_MS)
        shortest = min(self.log_keep_ms, self.sent_keep_ms, self.dead_keep_ms)
        # Often enough that a row outlives its retention by at most a quarter of it (an hour
        # at most), rarely enough to cost nothing.
        self.interval_s = min(3600.0, max(1.0, shortest / 4000))
        self._rollup_health = FaultTracker("report rollup")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="xtracker-housekeeping"),
            asyncio.create_task(self._roll_up(), name="xtracker-rollup"),
            asyncio.create_task(self._probe(), name="xtracker-probe"),
            asyncio.create_task(self._finish_deletions(), name="xtracker-deletions"),
            asyncio.create_task(self._keep_stats(), name="xtracker-stats"),
        ]
        if self.unrecorded is not None:
            self._tasks.append(
                asyncio.create_task(self._keep_unrecorded(), name="xtracker-unrecorded")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.store_unrecorded()  # what was counted since the last time
        except Exception:
            log.exception("storing the unrecorded visits failed; their counts are lost")

    async def store_unrecorded(self) -> int:
        """Add the unrecorded visits counted so far to the store; returns how many rows."""
        if self.unrecorded is None:
            return 0
        counts = self.unrecorded.take()
        if not counts:
            return 0
        try:
            # Shielded: a stop that cancels the loop here lets the write go on (the writer
            # finishes what it was given), so nothing is put back and counted twice.
            await asyncio.shield(self.store.add_unrecorded(counts))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.unrecorded.put_back(counts)  # stored with the next ones
            raise
        return len(counts)

    async def prune(self) -> dict[str, int]:
        """Delete everything past its retention (see the module's docstring), a batch at a
        time; returns how many rows of each kind went."""
        now = now_ms()
        store = self.store
        before = now - self.log_keep_ms
        log_rows = await _in_batches(lambda n: store.prune_postback_log(before, n), PRUNE_BATCH)
        sent_before, dead_before = now - self.sent_keep_ms, now - self.dead_keep_ms
        sent = await _in_batches(
            lambda n: store.prune_settled_deliveries("sent", sent_before, n), DELIVERY_PRUNE_BATCH
        )
        dead = await _in_batches(
            lambda n: store.prune_settled_deliveries("failed_permanently", dead_before, n),
            DELIVERY_PRUNE_BATCH,
        )
        # How far the report rollup got, read before pruning: only what it applied goes.
        applied = await store.applied_backlog()
        backlog = await _in_batches(lambda n: store.prune_report_backlog(applied, n), PRUNE_BATCH)
        removals = await store.applied_removals()
        # A deletion forgets them once its rollup ran (xtracker_server/deletion.py); these are
        # what a crash left. Few: one entry per deletion or erased person.
        removals = await store.prune_removals(removals) if removals else 0
        return {
            "postback log rows": log_rows,
            "sent deliveries": sent,
            "deliveries given up": dead,
            "report backlog entries": backlog,
            "report removals": removals,
        }

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if any(pruned.values()):
                    said = ", ".join(f"{n:,} {what}" for what, n in pruned.items() if n)
                    log.info("pruned %s", said)
            except StoreUnavailable:  # logged by the store's health: try again next time
                pass
            except Exception:
                log.exception("pruning failed")
            await asyncio.sleep(self.interval_s)

    async def _roll_up(self) -> None:
        while True:
            try:
                await self.store.catch_up_reports(budget_s=ROLLUP_SLICE_S, background=True)
            except StoreUnavailable as exc:
                if exc.reason is FaultReason.REBUILDING:  # more to build: the next slice now
                    continue
                # the next round (or the next report) catches up
                self._rollup_health.failed(exc.reason, exc.detail)
            except Exception:
                log.exception("rolling up the reports failed")
            else:
                self._rollup_health.succeeded()
            await asyncio.sleep(ROLLUP_EVERY_S)

    async def _keep_unrecorded(self) -> None:
        while True:
            await asyncio.sleep(UNRECORDED_EVERY_S)
            try:
                await self.store_unrecorded()
            except StoreUnavailable:  # kept in memory for the next round; the fault is logged
                pass  # once, by the store's health
            except Exception:  # kept in memory for the next round
                log.exception("storing the unrecorded visits failed")

    async def _probe(self) -> None:
        writes = self.store.health.writes
        while True:
            idle = writes.idle_s()
            if idle < PROBE_IDLE_S:
                await asyncio.sleep(PROBE_IDLE_S - idle)
                continue
            try:
                await self.store.probe()
            except StoreUnavailable:  # recorded by the store's health: /healthz says it
                pass
            except Exception:
                log.exception("probing the storage failed")
                await asyncio.sleep(PROBE_IDLE_S)

    async def _keep_stats(self) -> None:
        while True:  # the store analysed every table when it opened
            await asyncio.sleep(STATS_EVERY_S)
            try:
                analysed = await self.store.refresh_stats()
                if analysed:
                    log.info("refreshed the planner statistics of %s", ", ".join(analysed))
            except StoreUnavailable:  # logged by the store's health: the next round tries
                pass
            except Exception:
                log.exception("refreshing the planner statistics failed")

    async def _finish_deletions(self) -> None:
        while True:
            try:
                finished = await finish_unfinished(self.store, now_ms())
                if finished:
                    log.info("finished %d deletions left unfinished", finished)
            except StoreUnavailable:  # logged by the store's health: the next round tries
                pass
            except Exception:  # the next round tries again
                log.exception("finishing deletions failed")
            await asyncio.sleep(DELETIONS_EVERY_S)


async def _in_batches(prune: Callable[[int], Awaitable[int]], limit: int) -> int:
    """``prune(limit)`` (one write) until it deletes fewer than ``limit`` rows, a pause between
    two; returns how many it deleted."""
    total = 0
    while True:
        deleted = await prune(limit)
        total += deleted
        if deleted < limit:
            return total
        await asyncio.sleep(PRUNE_PAUSE_S)
