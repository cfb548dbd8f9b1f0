"""The delivery worker in a process of its own: what ``python -m xtracker_server.delivery.child``
runs, the child that ``xtracker serve`` starts (``WorkerProcess``, delivery/process.py) when
``XTRACKER_WORKER_PROCESS`` is on.

It runs the same ``Worker`` as ``xtracker worker``, on a store of its own (opened like the
server's). The server talks to it over two pipes:

- its standard input: every byte is a wake-up (new deliveries were committed: claim now rather
  than at the next poll); the end of the input (the server closed it, or died) stops it, giving
  what is in flight the worker's usual ten seconds;
- its standard output: one JSON line twice a second at most, the delivery figures of
  ``/metrics`` counted since the last line (``RELAY_S``), which the server adds to its own.

Its settings come in the variable ``SETTINGS_VARIABLE`` (JSON, without the admin and metrics
tokens, which a worker never needs). It ignores SIGINT and SIGTERM, as the writer process does:
they are the server's to handle (a Ctrl-C reaches the whole process group), and it stops when
the server closes its input. Its log lines go to the server's standard error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, fields
from typing import Any, BinaryIO

from xtracker_server.config import Settings

__all__ = ["RELAY_S", "SETTINGS_VARIABLE", "MetricsRelay", "main", "settings_json"]

#: The variable that carries the worker's settings to the child.
SETTINGS_VARIABLE = "XTRACKER_WORKER_CHILD_SETTINGS"
#: Seconds between two lines of figures (at most: none is written while nothing happens).
RELAY_S = 0.5


def settings_json(settings: Settings) -> str:
    """``settings`` as the child reads them, without the credentials a worker never uses."""
    return json.dumps(asdict(settings.with_(admin_token=None, metrics_token=None)))


def settings_from_json(text: str) -> Settings:
    values: dict[str, Any] = json.loads(text)
    tuples = {f.name for f in fields(Settings) if isinstance(f.default, tuple)}
    given: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in values.items()}
    return Settings(**given)


class MetricsRelay:
    """The worker's delivery figures (the methods it calls on the server's ``Metrics``), sent
    to the server as a JSON line at most every ``RELAY_S``: ``{"delivered": [[kind, outcome,
    count], ...], "requests": {kind: [seconds, ...]}}``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._delivered: Counter[tuple[str, str]] = Counter()
        self._requests: defaultdict[str, list[float]] = defaultdict(list)
        self._timer: asyncio.TimerHandle | None = None

    def delivered(self, kind: str, outcome: str, count: int = 1) -> None:
        self._delivered[kind, outcome] += count
        self._soon()

    def delivery_request(self, kind: str, seconds: float) -> None:
        self._requests[kind].append(round(seconds, 6))
        self._soon()

    def _soon(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RELAY_S, self.flush)

    def flush(self) -> None:
        """Send what was counted since the last line (nothing if nothing was)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._delivered and not self._requests:
            return
        line = {
            "delivered": [[k, o, n] for (k, o), n in self._delivered.items()],
            "requests": dict(self._requests),
        }
        self._delivered.clear()
        self._requests.clear()
        try:
            self._out.write(json.dumps(line).encode() + b"\n")
            self._out.flush()
        except OSError:  # the server is gone: nobody to count them for
            pass


class _Wakes(asyncio.Protocol):
    """Reads the server's wake-ups off standard input, and notices its end."""

    def __init__(self, wake: Any, ended: asyncio.Event) -> None:
        self._wake = wake
        self._ended = ended

    def data_received(self, data: bytes) -> None:
        self._wake()

    def eof_received(self) -> bool:
        self._ended.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended.set()


async def run(settings: Settings) -> None:
    from xtracker_server.delivery.worker import Worker
    from xtracker_server.store.api import open_store

    store = open_store(
        settings.db,
        sync=settings.sync,
        timeout_s=settings.write_timeout_s,
        writer_process=settings.writer_process,
        stats_on_open=False,  # the server's store keeps the planner's statistics
    )
    await store.open()
    relay = MetricsRelay(sys.stdout.buffer)
    worker = Worker(store, settings, metrics=relay)
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: _Wakes(worker.wake, ended), os.fdopen(sys.stdin.fileno(), "rb", buffering=0)
    )
    try:
        await worker.start()
        await ended.wait()
        await worker.stop()
        relay.flush()
    finally:
        transport.close()
        await store.close()


def _log_level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.DEBUG  # uvicorn's "trace"


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's to handle: we stop when it does
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = settings_from_json(os.environ[SETTINGS_VARIABLE])
    logging.basicConfig(
        stream=sys.stderr,
        level=_log_level(settings.log_level),
        format="%(levelname)s:     (delivery worker) %(message)s",
    )
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
