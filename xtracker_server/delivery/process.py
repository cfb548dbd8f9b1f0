"""``serve``'s delivery worker in a process of its own (``XTRACKER_WORKER_PROCESS``, on by
default where it can run): the server's side, ``WorkerProcess``. The child runs
delivery/child.py, where the pipes between the two are described.

Why a process: in the server's process the worker shares one core (the GIL) with ingest, and at
a thousand events a second the two need more than one core (issue 14: the worker fell behind
at about 910 deliveries a second). In a process of its own it has a core of its own, and the
server's only part is a byte on a pipe per wake-up.

The server wakes it after every commit that owes deliveries, as it wakes a worker in its own
process; a wake-up that finds the previous one still in the pipe is dropped (one is enough).
The child's delivery figures reach the server's ``/metrics`` within ``RELAY_S``. A child that
dies is replaced (after ``RESPAWN_DELAY_S``, then twice as long while it keeps dying, up to
``RESPAWN_MAX_DELAY_S``); the deliveries it held are sent again, with the same event_id, once
their lease runs out. Stopping the server stops the child (and a killed server's child stops
by itself: its input ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time

from xtracker_server.config import Settings
from xtracker_server.delivery import child
from xtracker_server.metrics import Metrics

log = logging.getLogger("xtracker.delivery")

RESPAWN_DELAY_S = 0.5
RESPAWN_MAX_DELAY_S = 10.0
#: A child that ran this long before it died is replaced after the shortest delay again.
_HEALTHY_S = 30.0
#: How long ``stop`` waits for the child to finish what is in flight (its worker gives that
#: ten seconds) before it is killed.
STOP_TIMEOUT_S = 15.0


class WorkerProcess:
    """The delivery worker in a child process: ``wake`` it, ``stop`` it."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the child (without waiting for it: what is committed meanwhile is due, and
        its first claim takes it)."""
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name="xtracker-worker-process")

    async def _spawn(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # what imports here does
            child.SETTINGS_VARIABLE: child.settings_json(self.settings),
        }
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", child.__name__,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip

    def wake(self) -> None:
        """New deliveries were committed: one byte on the child's input, unless the last one
        is still waiting there."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        if proc.stdin.transport.get_write_buffer_size() == 0:
            proc.stdin.write(b"w")

    async def _supervise(self) -> None:
        """Read the child's figures until it exits; start another while not stopping."""
        delay = RESPAWN_DELAY_S
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            started = time.monotonic()
            while line := await proc.stdout.readline():
                self._count(line)
            code = await proc.wait()
            if self._stopping:
                return
            log.error("the delivery worker's process exited (exit code %s)", code)
            if time.monotonic() - started > _HEALTHY_S:
                delay = RESPAWN_DELAY_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESPAWN_MAX_DELAY_S)
            if self._stopping:
                return
            try:
                await self._spawn()
            except OSError as exc:
                log.error("the delivery worker's process could not be started: %s", exc)
                continue
            self.restarts += 1
            log.warning("a new delivery worker process runs (restart %d)", self.restarts)

    def _count(self, line: bytes) -> None:
        """Add a line of the child's figures (``MetricsRelay``) to the server's metrics."""
        if self.metrics is None:
            return
        try:
            figures = json.loads(line)
            for kind, outcome, count in figures["delivered"]:
                self.metrics.delivered(kind, outcome, count)
            for kind, latencies in figures["requests"].items():
                for seconds in latencies:
                    self.metrics.delivery_request(kind, seconds)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable figures from the delivery worker's process: %s", exc)

    async def stop(self) -> None:
        """Close the child's input (it finishes what is in flight and exits), wait for it,
        kill it if it takes longer than ``STOP_TIMEOUT_S``."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the delivery worker's process did not stop: killed")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._watch is not None:
            # It reads the child's last figures, or waits to start another: that is off.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._watch, 1.0)
