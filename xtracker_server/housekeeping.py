"""Chores the server does on its own: pruning the postback log, keeping the report rollup
up to date, and finishing deletions a crash cut short (xtracker_server/deletion.py).

Postback log rows older than ``XTRACKER_POSTBACK_LOG_DAYS`` are deleted at start-up and then
periodically, in batches (one writer operation each), so neither a request nor the writer ever
waits long. The report rollup (store/rollup.py) catches up with the inbox every
``ROLLUP_EVERY_S``, on its own thread and file, so that a report rarely has much left to do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from xtracker_server.config import Settings
from xtracker_server.deletion import finish_unfinished
from xtracker_server.store.postbacks import prune_log
from xtracker_server.store.runtime import Store

log = logging.getLogger("xtracker.housekeeping")

PRUNE_BATCH = 1000
ROLLUP_EVERY_S = 1.0
#: How often unfinished deletions are looked for (a space whose deletion a crash cut short,
#: an event that landed in a deleted space from a process that still had its secret cached).
DELETIONS_EVERY_S = 60.0


class Housekeeper:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.keep_ms = int(settings.postback_log_days * 86400 * 1000)
        # Often enough that a row outlives its retention by at most a quarter of it (an hour
        # at most), rarely enough to cost nothing.
        self.interval_s = min(3600.0, max(1.0, self.keep_ms / 4000))
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="xtracker-housekeeping"),
            asyncio.create_task(self._roll_up(), name="xtracker-rollup"),
            asyncio.create_task(self._finish_deletions(), name="xtracker-deletions"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def prune_postback_log(self) -> int:
        """Delete every log row past its retention, a batch at a time; returns how many."""
        before = int(time.time() * 1000) - self.keep_ms
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
            except Exception:  # the database was busy or gone: try again next time
                log.exception("pruning the postback log failed")
            await asyncio.sleep(self.interval_s)

    async def _roll_up(self) -> None:
        while True:
            try:
                await self.store.catch_up_reports()
            except Exception:  # busy or gone: the next round (or the next report) catches up
                log.exception("rolling up the reports failed")
            await asyncio.sleep(ROLLUP_EVERY_S)

    async def _finish_deletions(self) -> None:
        while True:
            try:
                finished = await finish_unfinished(self.store, int(time.time() * 1000))
                if finished:
                    log.info("finished %d deletions left unfinished", finished)
            except Exception:  # busy or gone: the next round tries again
                log.exception("finishing deletions failed")
            await asyncio.sleep(DELETIONS_EVERY_S)
