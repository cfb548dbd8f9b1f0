"""Chores the server does on its own: pruning the postback log, keeping the report rollup up
to date, storing the tally of landing visits that were not recorded as clicks, probing the
storage when nothing else uses it, and finishing deletions a crash cut short
(xtracker_server/deletion.py).

Postback log rows older than ``XTRACKER_POSTBACK_LOG_DAYS`` are deleted at start-up and then
periodically, in batches (one writer operation each), so neither a request nor the writer ever
waits long. The report rollup (store/rollup.py) catches up with the inbox every
``ROLLUP_EVERY_S``, on its own thread and file, so that a report rarely has much left to do.
The landing counts unrecorded visits in memory (domain/unrecorded.py); they are added to the
store every ``UNRECORDED_EVERY_S`` and once more when the server stops.

When nothing has committed for ``PROBE_IDLE_S``, a probe writes one row and reads (store/health.py):
an idle server's /healthz notices a storage that went read-only or stalled, and that it works
again. A chore that meets a storage fault waits for its next round quietly: the fault is logged
once, by the store's health trackers (a traceback every second would bury it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.deletion import finish_unfinished
from xtracker_server.domain.unrecorded import Tally
from xtracker_server.store.faults import StoreUnavailable
from xtracker_server.store.health import FaultTracker
from xtracker_server.store.postbacks import prune_log
from xtracker_server.store.runtime import Store
from xtracker_server.store.unrecorded import add_unrecorded

log = logging.getLogger("xtracker.housekeeping")

PRUNE_BATCH = 1000
ROLLUP_EVERY_S = 1.0
UNRECORDED_EVERY_S = 1.0
#: The storage is probed after this long without a commit (and then at most this often).
PROBE_IDLE_S = 2.0
#: How often unfinished deletions are looked for (a space whose deletion a crash cut short,
#: an event that landed in a deleted space from a process that still had its secret cached).
DELETIONS_EVERY_S = 60.0


class Housekeeper:
    def __init__(self, store: Store, settings: Settings, unrecorded: Tally | None = None) -> None:
        self.store = store
        self.unrecorded = unrecorded
        self.keep_ms = int(settings.postback_log_days * 86400 * 1000)
        # Often enough that a row outlives its retention by at most a quarter of it (an hour
        # at most), rarely enough to cost nothing.
        self.interval_s = min(3600.0, max(1.0, self.keep_ms / 4000))
        self._rollup_health = FaultTracker("report rollup")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="xtracker-housekeeping"),
            asyncio.create_task(self._roll_up(), name="xtracker-rollup"),
            asyncio.create_task(self._probe(), name="xtracker-probe"),
            asyncio.create_task(self._finish_deletions(), name="xtracker-deletions"),
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
            await asyncio.shield(self.store.write(add_unrecorded, counts))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.unrecorded.put_back(counts)  # stored with the next ones
            raise
        return len(counts)

    async def prune_postback_log(self) -> int:
        """Delete every log row past its retention, a batch at a time; returns how many."""
        before = now_ms() - self.keep_ms
        total = 0
        while True:
            deleted = await self.store.write(prune_log, before, PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune_postback_log()
                if pruned:
                    log.info("pruned %d postback log rows", pruned)
            except StoreUnavailable:  # logged by the store's health: try again next time
                pass
            except Exception:
                log.exception("pruning the postback log failed")
            await asyncio.sleep(self.interval_s)

    async def _roll_up(self) -> None:
        while True:
            try:
                await self.store.catch_up_reports()
            except StoreUnavailable as exc:  # the next round (or the next report) catches up
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
