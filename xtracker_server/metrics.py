"""Prometheus metrics, served at ``GET /metrics`` (admin/metrics.py; the list and the alerts
are in docs/operations.md#metrics).

Each app has a ``CollectorRegistry`` of its own (never prometheus_client's global one), so
several apps in one process, as in tests, keep apart. Two kinds of figures:

- counted where they happen: requests (``hot.HotPaths`` counts every request, the ones it
  serves itself included), write batches (the writer calls ``committed``/``failed``) and
  deliveries (the worker). The labelled child of a counter is looked up once and kept, so a
  request costs one dict lookup and one increment;
- read when scraped (``Sampled``): what another part keeps anyway (writer restarts, open live
  streams, unrecorded landing visits), and what the database holds (deliveries not settled,
  destinations flagged unhealthy), read with one query per scrape under a time bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xtracker_server.domain.entities import StorageFigures

if TYPE_CHECKING:
    from xtracker_server.store.api import Store

__all__ = ["READ_KEEP_S", "READ_TIMEOUT_S", "UNMATCHED", "Metrics", "Readings", "Sources"]

log = logging.getLogger("xtracker")

#: The route label of a request that matched no route (a 404, a redirect that adds a slash).
UNMATCHED = "unmatched"
#: Methods kept as they are in the ``method`` label; any other counts as ``OTHER``, so that
#: clients cannot add label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: How long a scrape waits for the database's figures. Past it, the scrape shows the last ones
#: read if they are at most ``READ_KEEP_S`` old, else none; the read goes on, and the next
#: scrape waits for it rather than start another (reads never pile up).
READ_TIMEOUT_S = 2.0
READ_KEEP_S = 60.0

#: Prometheus's classic text format: what any scraper reads, when the Accept header is no help.
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"

_BATCH_OPERATIONS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
_COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DELIVERY_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


#: What the database holds, across spaces, at scrape time (the store's ``storage_figures``).
Readings = StorageFigures


@dataclass(frozen=True)
class Sources:
    """Where the figures that other parts keep are read at scrape time."""

    writer_running: Callable[[], bool]
    writer_restarts: Callable[[], int]
    open_streams: Callable[[], int]
    unrecorded: Callable[[], Mapping[str, int]]  # landing visits not recorded, by reason


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._requests = Counter(
            "xtracker_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self._batch_operations = Histogram(
            "xtracker_write_batch_operations",
            "Operations in each committed write batch (group commit).",
            buckets=_BATCH_OPERATIONS,
            registry=r,
        )
        self._commit_seconds = Histogram(
            "xtracker_write_commit_seconds",
            "Time the writer took to run and commit a batch, as the server saw it.",
            buckets=_COMMIT_SECONDS,
            registry=r,
        )
        self._failed_batches = Counter(
            "xtracker_write_failed_batches",
            "Write batches not committed (a failed commit, or the writer died): every caller"
            " in them got 503.",
            registry=r,
        )
        self._failed_operations = Counter(
            "xtracker_write_failed_operations",
            "Operations in the write batches that were not committed.",
            registry=r,
        )
        self._deliveries = Counter(
            "xtracker_deliveries",
            "Delivery attempts settled by this process's worker, by destination kind and outcome"
            " (sent, retry, fail, hold).",
            ["kind", "outcome"],
            registry=r,
        )
        self._delivery_seconds = Histogram(
            "xtracker_delivery_request_seconds",
            "Duration of each request to a destination (one CAPI request carries a batch).",
            ["kind"],
            buckets=_DELIVERY_SECONDS,
            registry=r,
        )
        self.sampled = Sampled()
        r.register(self.sampled)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._reading: asyncio.Task[Readings] | None = None
        self._last: tuple[float, Readings] | None = None  # (when, what) the last read gave

    # ------------------------------------------------------------------ counted where it happens

    def request(self, method: str, route: str, status: int) -> None:
        """One answered request. ``route`` is a route template (``/r/{slug}``), never a path."""
        if method not in _METHODS:
            method = "OTHER"
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(method, route, str(status))
        child.inc()

    def committed(self, operations: int, seconds: float) -> None:
        """A write batch committed (the writer calls it, from its thread or the event loop)."""
        self._batch_operations.observe(operations)
        self._commit_seconds.observe(seconds)

    def failed(self, operations: int) -> None:
        """A write batch that was not committed: its commit failed, or the writer died."""
        self._failed_batches.inc()
        self._failed_operations.inc(operations)

    def delivered(self, kind: str, outcome: str, count: int = 1) -> None:
        key = ("delivered", kind, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._deliveries.labels(kind, outcome)
        child.inc(count)

    def delivery_request(self, kind: str, seconds: float) -> None:
        key = ("request", kind)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._delivery_seconds.labels(kind)
        child.observe(seconds)

    # ------------------------------------------------------------------ the scrape

    async def read_database(self, store: Store) -> Readings | None:
        """The database's figures (see ``READ_TIMEOUT_S``), or None."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(store.storage_figures())
            self._reading.add_done_callback(self._read_done)
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), READ_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("metrics: the outbox was not counted within %s s", READ_TIMEOUT_S)
            last = self._last
            if last is not None and time.monotonic() - last[0] <= READ_KEEP_S:
                return last[1]
        except Exception as exc:  # the database is down: the other figures still tell
            log.warning("metrics: the outbox could not be counted: %s", exc)
        return None

    def _read_done(self, task: asyncio.Task[Readings]) -> None:
        self._reading = None
        if not task.cancelled() and task.exception() is None:
            self._last = (time.monotonic(), task.result())

    def exposition(self, readings: Readings | None, accept: str = "") -> tuple[bytes, str]:
        """Every metric, and its content type: Prometheus's text format, or OpenMetrics if the
        ``Accept`` header asks for it. The database's figures are left out when ``readings`` is
        None (rather than shown stale)."""
        self.sampled.readings = readings
        try:
            encode, content_type = choose_encoder(accept)
        except Exception:  # a version it cannot parse ("version=abc" raises TypeError)
            encode, content_type = generate_latest, _TEXT_FORMAT
        return encode(self.registry), content_type


class Sampled(Collector):
    """The figures read when scraped."""

    def __init__(self) -> None:
        self.sources: Sources | None = None
        self.readings: Readings | None = None

    def collect(self) -> Iterator[Metric]:
        sources, readings = self.sources, self.readings
        if sources is not None:
            yield _family(
                GaugeMetricFamily,
                "xtracker_writer_running",
                "1 while the writer takes writes, 0 while it is down.",
                int(sources.writer_running()),
            )
            yield _family(
                CounterMetricFamily,
                "xtracker_writer_restarts",
                "Writer processes started again after one died.",
                sources.writer_restarts(),
            )
            yield _family(
                GaugeMetricFamily,
                "xtracker_live_streams",
                "Live streams open (GET /admin/spaces/{id}/stream).",
                sources.open_streams(),
            )
            yield _family(
                CounterMetricFamily,
                "xtracker_clicks_unrecorded",
                "Landing visits answered but not recorded as clicks, by reason.",
                labelled=("reason", sources.unrecorded().items()),
            )
        if readings is not None:
            yield _family(
                GaugeMetricFamily,
                "xtracker_outbox_deliveries",
                "Deliveries not settled yet (to send, or to retry), by state.",
                labelled=("state", readings.outbox.items()),
            )
            yield _family(
                GaugeMetricFamily,
                "xtracker_destinations_unhealthy",
                "Enabled destinations flagged unhealthy (their deliveries wait), by kind.",
                labelled=("kind", readings.unhealthy.items()),
            )
            if readings.wal_bytes is not None:
                yield _family(
                    GaugeMetricFamily,
                    "xtracker_wal_bytes",
                    "Size of the database's write-ahead log file (kept under 64 MiB).",
                    readings.wal_bytes,
                )


def _family(
    cls: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    value: float | None = None,
    *,
    labelled: tuple[str, Iterable[tuple[str, int]]] | None = None,
) -> Metric:
    if labelled is None:
        return cls(name, documentation, value=value)
    label, values = labelled
    family = cls(name, documentation, labels=[label])
    for key, count in sorted(values):
        family.add_metric([key], count)
    return family
