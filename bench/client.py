"""What one event costs the bot that reports it: XTRACKER's client against PostHog and Segment.

What it measures (the default run)
    The time a caller spends in one call that reports a conversion, as a bot's handler feels it:
    ``XTracker.deposit(uid, "25.00", eid=...)`` with the default durable SQLite spool (a file,
    WAL, ``synchronous=NORMAL``: the event is committed before the call returns) and with
    ``in_memory=True``, against ``posthog.Posthog.capture(event, distinct_id=..., properties=
    {...})`` and Segment's ``Client.track(user_id, event, {...})`` (PyPI ``posthog`` and
    ``segment-analytics-python``, the ``bench`` extra) carrying the same fields. ``--event
    contact`` compares ``contact(uid)`` with a property-less capture/track instead.

    Each round times ``--events`` calls per client (20,000 by default) with
    ``time.perf_counter_ns``, clients in turn (the order rotates every round, so drift of the
    machine hits all of them); ``--rounds`` rounds (5). A client's cost is the median over the
    rounds of its mean µs/event; per-call p50/p99/max are printed too. The ratios ours/theirs
    are the figures that matter (absolute times depend on the machine). Targets (issue 5):
    durable <= PostHog's cost, in-memory <= Segment's.

Why it is set up this way
    Only the caller's cost is measured, nothing of the delivery. Every client points at a
    closed port on 127.0.0.1 (nothing leaves the machine), and no background thread works
    during a round: PostHog's and Segment's consumers are not started (``thread=0``, an
    unbounded ``max_queue_size``), so ``capture()``/``track()`` build the message and append
    it to their in-memory queue, which is what users' handlers pay. Calls are timed in chunks
    (``--chunk``, 1,000): between chunks, untimed, their queues are emptied as their consumers
    would (a queue left to hold a whole round's messages makes every garbage collection walk
    them, a cost their callers do not pay while the server answers), and the count taken out
    is checked: every event was kept (none dropped). Ours start each round on a fresh spool,
    warmed up until the sender has failed once to connect and sleeps in a backoff of hours.
    This is the strict comparison for us: with their consumers running
    (``--consumers``: one thread each, batching thresholds raised so they never upload during
    a round), each of their events is also JSON-sized on the consumer thread, and under the
    GIL that time lands on the caller too.

The outage (``--outage``)
    Pushes ``--outage-events`` deposits (1,000,000) through one durable client (``--in-memory``
    for the in-memory spool) while the server is unreachable: the spool is bounded
    (``--max-rows``, by default the client's 100,000) and ``drop_oldest`` makes room. It
    prints progress (events/s, current and peak RSS from /proc/self/status, the spool file's
    size) and shows that memory stops growing once the spool is full, with the counts
    ``stats()`` gives: exactly ``max_rows`` queued and the rest dropped, none sent.
    ``--outage`` runs nothing else, in a process of its own: peak RSS is a high-water mark
    of the whole process, which the comparison would have raised already.

Everything talks to 127.0.0.1 only.

    python bench/client.py [--events 20000] [--rounds 5] [--chunk 1000] [--event deposit]
                           [--consumers] [--strict] [--json]
    python bench/client.py --outage [--outage-events 1000000] [--in-memory] [--json]
"""

from __future__ import annotations

import abc
import argparse
import gc
import importlib.util
import json
import logging
import os
import platform
import queue
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from _harness import filesystem_of, log, run_script

from xtracker_client import Backoff, XTracker

#: A closed port: the clients' senders get "connection refused" at once, nothing leaves.
DEAD_URL = "http://127.0.0.1:9"
BEARER = "xt_sk_bench"
#: Ours sleep this long after a failed send: during a round the sender does nothing.
SLEEPY = Backoff(base_s=86_400.0, cap_s=86_400.0)
AMOUNT = "25.00"
DURABLE = "xtracker durable"
IN_MEMORY = "xtracker in-memory"
POSTHOG = "posthog capture()"
SEGMENT = "segment track()"
#: (ours, theirs, what the issue asks of ours / theirs)
TARGETS = ((DURABLE, POSTHOG), (IN_MEMORY, SEGMENT))
WARMUP_CALLS = 500

Call = Callable[[str, str], object]


# --------------------------------------------------------------------------- contenders


class Contender(abc.ABC):
    """One client under test: ``call(uid, eid)`` reports one event."""

    name = ""

    @abc.abstractmethod
    def start_round(self) -> Call: ...

    @abc.abstractmethod
    def end_round(self, calls: int) -> list[str]:
        """After a timed round: problems seen (an event dropped), and make ready for the next."""

    def between_chunks(self) -> None:  # noqa: B027 (optional hook; nothing by default)
        """Untimed, every ``--chunk`` calls: what the client's own consumer would have done."""

    def close(self) -> None:  # noqa: B027 (optional hook; nothing by default)
        pass


class Ours(Contender):
    def __init__(self, name: str, event: str, tmp: Path, *, in_memory: bool) -> None:
        self.name = name
        self.event = event
        self.tmp = tmp
        self.in_memory = in_memory
        self.rounds = 0
        self.tracker: XTracker | None = None
        self.spool: Path | None = None
        self.before = 0

    def start_round(self) -> Call:
        """A fresh client on a fresh spool, warmed up, its sender asleep in a long backoff."""
        self.rounds += 1
        self.spool = None if self.in_memory else self.tmp / f"spool-{self.rounds}.sqlite3"
        tracker = XTracker(
            DEAD_URL,
            BEARER,
            spool=self.spool,
            in_memory=self.in_memory,
            backoff=SLEEPY,
            exit_flush_timeout=0,
        )
        self.tracker = tracker
        call = self._call(tracker)
        for n in range(WARMUP_CALLS):
            call(f"warm{n}", f"warm-{n}")
        deadline = time.monotonic() + 15
        while tracker.stats().retried < 1:  # the sender tried once, failed, and sleeps
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the sender never tried to send")
            time.sleep(0.01)
        self.before = tracker.stats().queued
        return call

    def _call(self, tracker: XTracker) -> Call:
        if self.event == "deposit":
            deposit = tracker.deposit

            def call(uid: str, eid: str) -> object:
                return deposit(uid, AMOUNT, eid=eid)

            return call
        contact = tracker.contact

        def call_contact(uid: str, eid: str) -> object:
            return contact(uid)

        return call_contact

    def end_round(self, calls: int) -> list[str]:
        assert self.tracker is not None
        stats = self.tracker.stats()
        problems = []
        if stats.queued != self.before + calls or stats.dropped:
            problems.append(
                f"{self.name}: {stats.queued - self.before} of {calls} events in the spool, "
                f"dropped {stats.dropped}"
            )
        if stats.sent:
            problems.append(f"{self.name}: {stats.sent} sent to a closed port?")
        self.close()
        return problems

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close(timeout=0)
            self.tracker = None
        if self.spool is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.spool}{suffix}").unlink(missing_ok=True)


class QueueClient(Contender):
    """PostHog or Segment: a message built by the caller and appended to a ``queue.Queue``."""

    def __init__(
        self,
        name: str,
        q: queue.Queue[Any],
        call: Call,
        shutdown: Callable[[], None],
        *,
        consumers: bool,
    ) -> None:
        self.name = name
        self.queue = q
        self.call = call
        self.shutdown = shutdown
        self.consumers = consumers
        self.taken = 0

    def start_round(self) -> Call:
        self.drain()
        self.taken = 0
        return self.call

    def between_chunks(self) -> None:
        # Their consumer takes the queue away in batches (100 events or 0.5 s by default): a
        # queue that kept a whole round's messages would make every garbage collection walk
        # them, a cost their callers do not pay while the server answers.
        self.taken += self.drain()

    def end_round(self, calls: int) -> list[str]:
        # Without consumers, every call must have left its message in the queue; with them, a
        # consumer holds part of it (the check is the client's own return values then).
        self.taken += self.drain()
        if not self.consumers and self.taken != calls:
            return [f"{self.name}: {self.taken} of {calls} events in its queue (dropped?)"]
        return []

    def drain(self) -> int:
        taken = 0
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return taken
            self.queue.task_done()
            taken += 1

    def close(self) -> None:
        self.drain()
        self.shutdown()


def posthog_contender(event: str, *, consumers: bool) -> QueueClient:
    from posthog import Posthog

    client = Posthog(
        "phc_bench",
        host=DEAD_URL,
        sync_mode=False,
        thread=1 if consumers else 0,
        max_queue_size=0,  # unbounded: nothing is dropped during a round
        flush_at=10**9,
        flush_interval=3600.0,
        max_retries=0,
        enable_exception_autocapture=False,
    )
    logging.getLogger("posthog").disabled = True  # failed uploads to the closed port are expected
    capture = client.capture
    checked: Call
    if event == "deposit":

        def checked(uid: str, eid: str) -> object:
            props = {"value": AMOUNT, "currency": "USD", "eid": eid}
            if capture(event, distinct_id=uid, properties=props) is None:
                raise RuntimeError("posthog dropped an event (capture returned None)")
            return None

    else:

        def checked(uid: str, eid: str) -> object:
            if capture(event, distinct_id=uid) is None:
                raise RuntimeError("posthog dropped an event (capture returned None)")
            return None

    q: queue.Queue[Any] = client._analytics_lane.queue
    return QueueClient(POSTHOG, q, checked, client.shutdown, consumers=consumers)


def segment_contender(event: str, *, consumers: bool) -> QueueClient:
    from segment.analytics import Client  # type: ignore[import-untyped]

    client: Any = Client(
        "wk_bench",
        host=DEAD_URL,
        thread=1 if consumers else 0,
        max_queue_size=0,  # unbounded
        upload_size=10**9,
        upload_interval=3600.0,
        max_retries=0,
    )
    if not consumers:
        client.consumers = []  # with thread=0 it is never set, and its atexit join needs it
    logging.getLogger("segment").disabled = True  # failed uploads to the closed port are expected
    track = client.track
    checked: Call
    if event == "deposit":

        def checked(uid: str, eid: str) -> object:
            ok, _ = track(uid, event, {"value": AMOUNT, "currency": "USD", "eid": eid})
            if not ok:
                raise RuntimeError("segment dropped an event (its queue is full)")
            return None

    else:

        def checked(uid: str, eid: str) -> object:
            ok, _ = track(uid, event)
            if not ok:
                raise RuntimeError("segment dropped an event (its queue is full)")
            return None

    q: queue.Queue[Any] = client.queue

    def shutdown() -> None:
        # Its consumer waits in queue.get() for up to upload_interval (an hour here), and its
        # atexit join() would wait that long: wake it with one message it uploads (and fails
        # to: the port is closed) and then stop.
        for consumer in client.consumers:
            consumer.pause()
            consumer.upload_size = 0
            q.put({"type": "track", "event": "stop", "userId": "stop"})
        for consumer in client.consumers:
            consumer.join(timeout=5)

    return QueueClient(SEGMENT, q, checked, shutdown, consumers=consumers)


# --------------------------------------------------------------------------- timing


@dataclass
class Run:
    client: str
    round: int
    position: int  # 0 = first client of its round
    events: int
    mean_us: float
    p50_us: float
    p99_us: float
    max_us: float


def timed_round(
    call: Call, uids: list[str], eids: list[str], chunk: int, between: Callable[[], None]
) -> tuple[int, array[int]]:
    """The time of all the calls (in chunks; ``between`` runs untimed after each) and each
    call's time, in ns."""
    n = len(uids)
    samples = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    total = 0
    for first in range(0, n, chunk):
        start = clock()
        for i in range(first, min(n, first + chunk)):
            t0 = clock()
            call(uids[i], eids[i])
            samples[i] = clock() - t0
        total += clock() - start
        between()
    return total, samples


def percentile(ordered: list[int], q: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@dataclass
class ClientSummary:
    client: str
    mean_us: float  # median over the rounds of the round's mean
    best_us: float
    p50_us: float  # medians over the rounds
    p99_us: float
    max_us: float  # worst over the rounds
    events_per_s: float


@dataclass
class Ratio:
    ours: str
    theirs: str
    ratio: float  # ours / theirs (medians); <= 1 means ours costs the caller no more
    meets_target: bool
    # ours / theirs within each round (the two ran seconds apart): drift of the machine cancels
    paired_median: float
    paired_min: float
    paired_max: float


@dataclass
class CompareReport:
    event: str
    events: int
    rounds: int
    chunk: int
    consumers: bool
    python: str
    sqlite: str
    posthog: str
    segment: str
    spool_filesystem: str
    clients: list[ClientSummary]
    ratios: list[Ratio]
    other_ratios: dict[str, float]
    problems: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def compare(args: argparse.Namespace) -> CompareReport:
    missing = [m for m in ("posthog", "segment") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not installed: pip install -e '.[bench]' (the bench extra)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="xtracker-client-bench-", dir=args.tmpdir))
    contenders: list[Contender] = []
    runs: list[Run] = []
    problems: list[str] = []
    try:
        contenders = [
            Ours(DURABLE, args.event, tmp, in_memory=False),
            Ours(IN_MEMORY, args.event, tmp, in_memory=True),
            posthog_contender(args.event, consumers=args.consumers),
            segment_contender(args.event, consumers=args.consumers),
        ]
        n = args.events
        uids = [f"{i:06d}Kq3vT9xLwYb2Zr8N" for i in range(n)]  # 22 chars, like a real uid
        eids = [f"tx-{i:08d}" for i in range(n)]
        log(f"warm-up: {WARMUP_CALLS} calls per client")
        for c in contenders:  # imports, caches, first allocations: not timed
            call = c.start_round()
            timed_round(call, uids[:WARMUP_CALLS], eids[:WARMUP_CALLS], n, c.between_chunks)
            c.end_round(WARMUP_CALLS)
        for r in range(args.rounds):
            shift = r % len(contenders)
            order = contenders[shift:] + contenders[:shift]
            for position, c in enumerate(order):
                call = c.start_round()
                gc.collect()  # no garbage of the previous client is charged to this one
                total_ns, samples = timed_round(call, uids, eids, args.chunk, c.between_chunks)
                problems += c.end_round(n)
                ordered = sorted(samples)
                run = Run(
                    client=c.name,
                    round=r + 1,
                    position=position,
                    events=n,
                    mean_us=total_ns / n / 1000,
                    p50_us=percentile(ordered, 0.50) / 1000,
                    p99_us=percentile(ordered, 0.99) / 1000,
                    max_us=ordered[-1] / 1000,
                )
                runs.append(run)
                log(
                    f"round {r + 1}/{args.rounds}  {c.name:<20} {run.mean_us:8.2f} µs/event  "
                    f"p50 {run.p50_us:7.2f}  p99 {run.p99_us:8.2f}  max {run.max_us:9.1f}"
                )
        filesystem = filesystem_of(tmp)
    finally:
        for c in contenders:
            c.close()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summaries: dict[str, ClientSummary] = {}
    for c in contenders:
        mine = [x for x in runs if x.client == c.name]
        mean = statistics.median(x.mean_us for x in mine)
        summaries[c.name] = ClientSummary(
            client=c.name,
            mean_us=mean,
            best_us=min(x.mean_us for x in mine),
            p50_us=statistics.median(x.p50_us for x in mine),
            p99_us=statistics.median(x.p99_us for x in mine),
            max_us=max(x.max_us for x in mine),
            events_per_s=1e6 / mean if mean else 0.0,
        )
    ratios = []
    for ours, theirs in TARGETS:
        ratio = summaries[ours].mean_us / summaries[theirs].mean_us
        mean_of = {(x.client, x.round): x.mean_us for x in runs}
        paired = [
            mean_of[ours, r] / mean_of[theirs, r]
            for r in range(1, args.rounds + 1)
            if (ours, r) in mean_of and (theirs, r) in mean_of
        ]
        ratios.append(
            Ratio(
                ours,
                theirs,
                ratio,
                ratio <= 1.0,
                statistics.median(paired),
                min(paired),
                max(paired),
            )
        )
    other = {
        f"{ours} / {theirs}": summaries[ours].mean_us / summaries[theirs].mean_us
        for ours in (DURABLE, IN_MEMORY)
        for theirs in (POSTHOG, SEGMENT)
        if (ours, theirs) not in TARGETS
    }
    return CompareReport(
        event=args.event,
        events=args.events,
        rounds=args.rounds,
        chunk=args.chunk,
        consumers=args.consumers,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        sqlite=sqlite3.sqlite_version,
        posthog=package_version("posthog"),
        segment=package_version("segment-analytics-python"),
        spool_filesystem=filesystem,
        clients=list(summaries.values()),
        ratios=ratios,
        other_ratios=other,
        problems=problems,
        runs=runs,
    )


def print_compare(report: CompareReport, out: TextIO) -> None:
    line = "=" * 78
    print(line, file=out)
    what = "deposit with amount, currency, eid" if report.event == "deposit" else "contact"
    print(
        f"caller's cost per event ({what}):\n{report.events:,} calls per client per round x "
        f"{report.rounds} rounds,\ntimed in chunks of {report.chunk:,}, clients in rotating order",
        file=out,
    )
    print(
        f"{report.python}, SQLite {report.sqlite}, posthog {report.posthog}, "
        f"segment-analytics-python {report.segment};\ndurable spool on "
        f"{report.spool_filesystem}; PostHog's and Segment's consumer threads "
        f"{'running' if report.consumers else 'not started'}",
        file=out,
    )
    print("-" * 78, file=out)
    print(
        f"{'client':<22}{'µs/event':>9}{'best':>8}{'p50':>8}{'p99':>9}{'max':>10}{'events/s':>12}",
        file=out,
    )
    for s in report.clients:
        print(
            f"{s.client:<22}{s.mean_us:>9.2f}{s.best_us:>8.2f}{s.p50_us:>8.2f}{s.p99_us:>9.2f}"
            f"{s.max_us:>10.1f}{s.events_per_s:>12,.0f}",
            file=out,
        )
    print("-" * 78, file=out)
    for r in report.ratios:
        verdict = "meets" if r.meets_target else "MISSES"
        name = f"{r.ours} / {r.theirs}"
        print(f"{name:<40} = {r.ratio:5.2f}  ({verdict} the target <= 1)", file=out)
        print(
            f"{'':<40}   per round: median {r.paired_median:.2f}, "
            f"{r.paired_min:.2f} to {r.paired_max:.2f}",
            file=out,
        )
    for name, value in report.other_ratios.items():
        print(f"{name:<40} = {value:5.2f}", file=out)
    if report.problems:
        print("-" * 78, file=out)
        print("!!! THE MEASUREMENT IS NOT CLEAN:", file=out)
        for problem in report.problems:
            print(f"!!!   {problem}", file=out)
    print(line, file=out)
    print(
        "µs/event: median over the rounds of (round time / calls); p50/p99: medians over the "
        "rounds of each call's time; max: the worst call of all rounds.",
        file=out,
    )


# --------------------------------------------------------------------------- the outage


def memory_kib() -> tuple[int, int]:
    """Current and peak resident set size of this process, in KiB."""
    current = peak = 0
    try:
        with open("/proc/self/status") as status:
            for row in status:
                if row.startswith("VmRSS:"):
                    current = int(row.split()[1])
                elif row.startswith("VmHWM:"):
                    peak = int(row.split()[1])
    except OSError:
        pass
    if not peak:  # not Linux: the peak from getrusage (KiB on Linux, bytes on macOS)
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = raw // 1024 if sys.platform == "darwin" else raw
    return current or peak, peak


def spool_bytes(path: Path | None) -> int:
    if path is None:
        return 0
    return sum(
        Path(f"{path}{s}").stat().st_size
        for s in ("", "-wal", "-shm")
        if Path(f"{path}{s}").exists()
    )


@dataclass
class Checkpoint:
    events: int
    seconds: float
    chunk_events_per_s: float
    rss_mib: float
    peak_rss_mib: float
    spool_mib: float
    queued: int
    dropped: int


@dataclass
class OutageReport:
    spool: str  # "durable" or "in-memory"
    events: int
    max_rows: int
    seconds: float
    events_per_s: float
    us_per_event_filling: float  # before the spool was full
    us_per_event_full: float  # once every event also drops the oldest
    rss_before_mib: float
    peak_before_mib: float
    rss_when_full_mib: float | None
    rss_after_mib: float
    peak_after_mib: float
    growth_after_full_mib: float | None
    bounded: bool
    spool_file_mib: float
    queued: int
    dropped: dict[str, int]
    sent: int
    retried: int
    last_error: str | None
    problems: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)


#: Growth of the RSS allowed after the spool is full (allocator noise, SQLite's page cache).
BOUNDED_SLACK_MIB = 16.0


def outage(args: argparse.Namespace) -> OutageReport:
    tmp = Path(tempfile.mkdtemp(prefix="xtracker-outage-", dir=args.tmpdir))
    path = None if args.in_memory else tmp / "spool.sqlite3"
    total, max_rows, every = args.outage_events, args.max_rows, args.progress
    checkpoints: list[Checkpoint] = []
    try:
        gc.collect()
        rss_before, peak_before = memory_kib()
        # The client as a bot gets it: default backoff, drop policy and bounds (but max_rows).
        tracker = XTracker(
            DEAD_URL,
            BEARER,
            spool=path,
            in_memory=args.in_memory,
            max_rows=max_rows,
            exit_flush_timeout=0,
        )
        log(
            f"outage: {total:,} deposits into {'a durable' if path else 'an in-memory'} spool of "
            f"{max_rows:,} rows, server unreachable; RSS {rss_before / 1024:.1f} MiB "
            f"(peak {peak_before / 1024:.1f})"
        )
        deposit = tracker.deposit
        clock = time.perf_counter
        start = last = clock()
        fill_s = full_s = 0.0
        full_events = 0
        rss_full: int | None = None
        done = 0
        while done < total:
            chunk = min(every, total - done)
            t0 = clock()
            for i in range(done, done + chunk):
                deposit(f"{i % 100_000:06d}Kq3vT9xLwYb2Zr8N", AMOUNT, eid=f"tx-{i}")
            t1 = clock()
            filling = min(chunk, max(0, max_rows - done))
            # Split the chunk's time between filling and full by events (exact when a chunk
            # does not straddle the moment the spool fills, the usual case).
            fill_s += (t1 - t0) * filling / chunk
            full_s += (t1 - t0) * (chunk - filling) / chunk
            full_events += chunk - filling
            done += chunk
            stats = tracker.stats()
            rss, peak = memory_kib()
            if rss_full is None and done >= max_rows:
                rss_full = rss
            point = Checkpoint(
                events=done,
                seconds=t1 - start,
                chunk_events_per_s=chunk / (t1 - last) if t1 > last else 0.0,
                rss_mib=rss / 1024,
                peak_rss_mib=peak / 1024,
                spool_mib=spool_bytes(path) / 2**20,
                queued=stats.queued,
                dropped=sum(stats.dropped.values()),
            )
            checkpoints.append(point)
            last = clock()
            log(
                f"  {done:>10,} events  {point.seconds:7.1f} s  "
                f"{point.chunk_events_per_s:>8,.0f}/s  RSS {point.rss_mib:6.1f} MiB "
                f"(peak {point.peak_rss_mib:6.1f})  "
                + (f"spool {point.spool_mib:6.1f} MiB  " if path else "")
                + f"queued {point.queued:>7,}  dropped {point.dropped:>9,}"
            )
        seconds = clock() - start
        stats = tracker.stats()
        tracker.close(timeout=0)
        gc.collect()
        rss_after, peak_after = memory_kib()
        # VmHWM is not always updated to the last page when memory is given back: the peak is
        # the highest of every reading.
        peak_after = max([peak_after, *(round(c.peak_rss_mib * 1024) for c in checkpoints)])
        file_mib = spool_bytes(path) / 2**20
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    problems = []
    expected_queued = min(total, max_rows)
    if stats.queued != expected_queued:
        problems.append(f"{stats.queued:,} queued, expected {expected_queued:,}")
    dropped = sum(stats.dropped.values())
    if dropped != total - expected_queued:
        problems.append(f"{dropped:,} dropped, expected {total - expected_queued:,}")
    if stats.sent:
        problems.append(f"{stats.sent} sent to a closed port?")
    growth = None if rss_full is None else (peak_after - rss_full) / 1024
    return OutageReport(
        spool="durable" if path else "in-memory",
        events=total,
        max_rows=max_rows,
        seconds=seconds,
        events_per_s=total / seconds if seconds else 0.0,
        us_per_event_filling=fill_s / min(total, max_rows) * 1e6 if total else 0.0,
        us_per_event_full=full_s / full_events * 1e6 if full_events else 0.0,
        rss_before_mib=rss_before / 1024,
        peak_before_mib=peak_before / 1024,
        rss_when_full_mib=None if rss_full is None else rss_full / 1024,
        rss_after_mib=rss_after / 1024,
        peak_after_mib=peak_after / 1024,
        growth_after_full_mib=growth,
        bounded=growth is not None and growth <= BOUNDED_SLACK_MIB,
        spool_file_mib=file_mib,
        queued=stats.queued,
        dropped=stats.dropped,
        sent=stats.sent,
        retried=stats.retried,
        last_error=stats.last_error,
        problems=problems,
        checkpoints=checkpoints,
    )


def print_outage(report: OutageReport, out: TextIO) -> None:
    line = "=" * 78
    print(line, file=out)
    print(
        f"outage: {report.events:,} deposits, {report.spool} spool bounded at "
        f"{report.max_rows:,} rows (drop_oldest), server unreachable",
        file=out,
    )
    print("-" * 78, file=out)
    print(
        f"time                 : {report.seconds:.1f} s ({report.events_per_s:,.0f} events/s; "
        f"{report.us_per_event_filling:.1f} µs/event while filling, "
        f"{report.us_per_event_full:.1f} µs/event once full)",
        file=out,
    )
    print(
        f"RSS before           : {report.rss_before_mib:.1f} MiB "
        f"(peak {report.peak_before_mib:.1f})",
        file=out,
    )
    if report.rss_when_full_mib is not None:
        print(f"RSS when spool full  : {report.rss_when_full_mib:.1f} MiB", file=out)
    print(
        f"RSS after            : {report.rss_after_mib:.1f} MiB (peak {report.peak_after_mib:.1f})",
        file=out,
    )
    if report.growth_after_full_mib is not None:
        verdict = "bounded" if report.bounded else "NOT BOUNDED"
        print(
            f"peak growth once full: {report.growth_after_full_mib:+.1f} MiB over "
            f"{report.events - report.max_rows:,} more events ({verdict}: "
            f"<= {BOUNDED_SLACK_MIB:g} MiB)",
            file=out,
        )
    if report.spool == "durable":
        print(f"spool file (+WAL)    : {report.spool_file_mib:.1f} MiB", file=out)
    print(
        f"stats()              : queued {report.queued:,}, dropped {report.dropped}, "
        f"sent {report.sent}, retried {report.retried:,}",
        file=out,
    )
    print(f"last error           : {report.last_error}", file=out)
    if report.problems:
        print("!!! COUNTS ARE WRONG:", file=out)
        for problem in report.problems:
            print(f"!!!   {problem}", file=out)
    print(line, file=out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The caller's cost per event of the xtracker client vs posthog.capture() "
        "and Segment's track(); --outage: memory during a long outage."
    )
    p.add_argument("--events", type=int, default=20_000, help="calls per client per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (clients alternate)")
    p.add_argument(
        "--chunk",
        type=int,
        default=1000,
        help="calls timed in one go; between chunks (untimed) PostHog's and Segment's queues "
        "are emptied, as their consumers would",
    )
    p.add_argument(
        "--event",
        choices=["deposit", "contact"],
        default="deposit",
        help="deposit (amount, currency, eid) or contact (a uid only)",
    )
    p.add_argument(
        "--consumers",
        action="store_true",
        help="run PostHog's and Segment's consumer threads during the rounds (they size each "
        "event as it arrives); by default they are not started",
    )
    p.add_argument("--outage", action="store_true", help="run the outage (memory) part instead")
    p.add_argument("--outage-events", type=int, default=1_000_000, help="events pushed in --outage")
    p.add_argument("--max-rows", type=int, default=100_000, help="the spool's bound in --outage")
    p.add_argument("--in-memory", action="store_true", help="--outage with the in-memory spool")
    p.add_argument(
        "--progress", type=int, default=50_000, help="--outage: a progress line every N events"
    )
    p.add_argument(
        "--tmpdir", type=Path, default=None, help="where spool files go (default: system temp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 2 when a target is missed (or memory is not bounded)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.events < 1000 or args.rounds < 1 or args.chunk < 1:
        p.error("need --events >= 1000, --rounds >= 1 and --chunk >= 1")
    if args.outage_events < 1 or args.max_rows < 1 or args.progress < 1:
        p.error("--outage-events, --max-rows and --progress must be positive")
    if args.in_memory and not args.outage:
        p.error("--in-memory goes with --outage (the comparison always runs both spools)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: CompareReport | OutageReport
    if args.outage:
        report = outage(args)
        missed = not report.bounded
    else:
        report = compare(args)
        missed = not all(r.meets_target for r in report.ratios)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    elif isinstance(report, OutageReport):
        print_outage(report, sys.stdout)
    else:
        print_compare(report, sys.stdout)
    if report.problems:
        return 1
    return 2 if args.strict and missed else 0


if __name__ == "__main__":
    os.environ.pop("XTRACKER_URL", None)  # the arguments above are the whole configuration
    os.environ.pop("XTRACKER_BEARER", None)
    run_script(main, "stopped")
