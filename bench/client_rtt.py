"""How fast a bot's backlog drains over a slow link: our client against PostHog's consumer.

What it measures
    Drained events per second through a link with ``--delay-ms`` (50) added each way: a
    contender is handed ``--events`` events (10,000) as fast as its calls take them, and the
    clock runs from the first call until the receiving server has every one of them. It is the
    most a bot can report for long without building an ever-growing backlog.

    - ours: ``XTracker(...).deposit(uid, "25.00", eid=...)`` with the default durable spool,
      sent by its own background sender to a real ``xtracker serve`` (``--sync`` FULL by
      default: every batch is on disk before it is acknowledged); drained = the inbox of the
      server's database holds them all (counted with SQL), and ``stats()`` says all sent.
    - theirs: ``posthog.Posthog(...).capture("deposit", distinct_id=uid, properties={...})``
      with PostHog's defaults (one consumer thread, batches of ``flush_at`` = 100), sent by its
      own consumer to a local sink that answers PostHog's batch endpoint 200 at once and
      counts the events; drained = the sink counted them all.

    The targets (issue 16): ours/theirs >= 1, and ours >= 1,000 events/s.

Why it is set up this way
    Each server sits behind its own delay line (a TCP proxy on 127.0.0.1, in a process of its
    own): every chunk of bytes, either way, is passed on ``--delay-ms`` after it arrived, in
    order and without a bandwidth limit, and a new connection waits one round trip before it
    is connected (its handshake). Both contenders talk HTTP/1.1 with keep-alive through it.
    The two servers, the proxies and the sink are processes of their own; the contenders run
    here, one after the other, ``--rounds`` times in alternating order, and a contender's
    figure is its median. Nothing leaves the machine.

    The comparison favours PostHog: its sink stores nothing, ours commits every event to a
    SQLite file with fsync before answering.

    python bench/client_rtt.py [--events 10000] [--delay-ms 50] [--rounds 3] [--sync FULL]
                               [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

from _harness import (
    HOST,
    add_sync_argument,
    bench_env,
    create_space,
    free_port,
    healthz_ok,
    http_request,
    log,
    print_problems,
    run_script,
    running_server,
    xtracker_serve_argv,
)

from xtracker_client import XTracker

OURS = "xtracker client"
POSTHOG = "posthog consumer"
AMOUNT = "25.00"
#: A contender that has not drained its events by then has failed (it only catches a hang).
DRAIN_LIMIT_S = 600.0


# --------------------------------------------------------------------------- the delay line


async def _delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
) -> None:
    """Pass what ``reader`` gets to ``writer``, each chunk ``delay_s`` after it arrived."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await line.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            line.put_nowait((loop.time() + delay_s, data))
            if not data:
                break
        await delivering
    except (ConnectionError, OSError):
        delivering.cancel()
        writer.close()


async def _proxy(listen_port: int, target_port: int, delay_s: float) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2 * delay_s)  # the handshake's round trip
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _delayed(reader, up_writer, delay_s),
            _delayed(up_reader, writer, delay_s),
            return_exceptions=True,
        )

    server = await asyncio.start_server(connection, HOST, listen_port)
    async with server:
        await server.serve_forever()


def proxy_main(listen_port: int, target_port: int, delay_ms: float) -> int:
    asyncio.run(_proxy(listen_port, target_port, delay_ms / 1000))
    return 0


# --------------------------------------------------------------------------- PostHog's sink


class _Sink(BaseHTTPRequestHandler):
    """PostHog's batch endpoint, answering 200 at once; ``GET /count``: events received."""

    protocol_version = "HTTP/1.1"  # keep-alive, as PostHog's servers
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        events = json.loads(body).get("batch", [])
        with _Sink.lock:
            _Sink.received += len(events)
        self._answer(b'{"status": 1}')

    def do_GET(self) -> None:
        with _Sink.lock:
            count = _Sink.received
        self._answer(json.dumps({"received": count}).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def sink_main(port: int) -> int:
    ThreadingHTTPServer((HOST, port), _Sink).serve_forever()
    return 0


def sink_ready(url: str) -> bool:
    return http_request(f"{url}/count", timeout=5)[0] == 200


def sink_count(url: str) -> int:
    status, _, body = http_request(f"{url}/count")
    if status != 200:
        raise RuntimeError(f"the PostHog sink did not answer: HTTP {status}")
    received: int = json.loads(body)["received"]
    return received


# --------------------------------------------------------------------------- the contenders


@dataclass
class Drain:
    contender: str
    events: int
    enqueue_s: float  # the calls alone
    drain_s: float  # from the first call until the server had every event

    @property
    def per_s(self) -> float:
        return self.events / self.drain_s


def wait_until(done: Any, what: str) -> None:
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not drained within {DRAIN_LIMIT_S:g} s")
        time.sleep(0.005)  # the server counts in another process: nothing to await


def drain_ours(url: str, bearer: str, db: Path, events: int, round_no: int, spool: Path) -> Drain:
    def stored() -> int:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            count: int = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
        return count

    before = stored()
    xt = XTracker(url, bearer, spool=spool)
    try:
        started = time.perf_counter()
        for i in range(events):
            xt.deposit(f"u{i % 1000}", AMOUNT, eid=f"r{round_no}-{i}")
        enqueued = time.perf_counter()
        wait_until(lambda: stored() - before >= events, OURS)
        drained = time.perf_counter()
        stats = xt.stats()
        if stored() - before != events or stats.dead or stats.dropped:
            raise RuntimeError(f"ours: {stored() - before} of {events} stored; {stats}")
    finally:
        xt.close(30)
    return Drain(OURS, events, enqueued - started, drained - started)


def drain_posthog(url: str, count_url: str, events: int, round_no: int) -> Drain:
    from posthog import Posthog

    before = sink_count(count_url)
    # PostHog's defaults, but a queue that takes the whole round (its default, 10,000, would
    # drop events instead of measuring how fast they drain).
    client = Posthog("phc_bench", host=url, max_queue_size=events + 1)
    try:
        started = time.perf_counter()
        for i in range(events):
            props = {"value": AMOUNT, "currency": "USD", "eid": f"r{round_no}-{i}"}
            if client.capture("deposit", distinct_id=f"u{i % 1000}", properties=props) is None:
                raise RuntimeError("posthog dropped an event (capture returned None)")
        enqueued = time.perf_counter()
        wait_until(lambda: sink_count(count_url) - before >= events, POSTHOG)
        drained = time.perf_counter()
        if sink_count(count_url) - before != events:
            raise RuntimeError(f"posthog: {sink_count(count_url) - before} of {events} arrived")
    finally:
        client.shutdown()
    return Drain(POSTHOG, events, enqueued - started, drained - started)


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    events: int
    delay_ms: float
    rounds: list[Drain] = field(default_factory=list)
    ours_per_s: float = 0.0
    posthog_per_s: float = 0.0
    ratio: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpus: int = 0
    python: str = ""
    posthog: str = ""
    sync: str = ""
    problems: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> Report:
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    report = Report(args.events, args.delay_ms, sync=args.sync, cpus=os.cpu_count() or 0,
                    python=platform.python_version(), posthog=version("posthog"))  # fmt: skip
    env = bench_env()
    with tempfile.TemporaryDirectory(prefix="xt-rtt-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        db = work / "xtracker.db"
        space = create_space(db)
        ports = {name: free_port() for name in ("xt", "xt_proxy", "sink", "sink_proxy")}
        me = [sys.executable, str(Path(__file__).resolve())]
        log(f"starting xtracker serve (sync={args.sync}), PostHog's sink and two delay lines "
            f"of {args.delay_ms:g} ms each way ...")  # fmt: skip
        serve = xtracker_serve_argv(db, ports["xt"], "--sync", args.sync, "--no-worker")
        stack.enter_context(running_server("xtracker", serve, ports["xt"], env, work, healthz_ok))
        sink_argv = [*me, "--sink", str(ports["sink"])]
        sink = stack.enter_context(
            running_server("sink", sink_argv, ports["sink"], env, work, sink_ready)
        )
        proxies = {}
        for name, target, ready in (("xt_proxy", "xt", healthz_ok),
                                    ("sink_proxy", "sink", sink_ready)):  # fmt: skip
            argv = [*me, "--proxy", str(ports[name]), str(ports[target]), str(args.delay_ms)]
            proxies[name] = stack.enter_context(
                running_server(name, argv, ports[name], env, work, ready)
            )
        for r in range(args.rounds):
            order = ("ours", "posthog") if r % 2 == 0 else ("posthog", "ours")
            for who in order:
                if who == "ours":
                    drain = drain_ours(proxies["xt_proxy"].url, space["bearer"], db,
                                       args.events, r, work / f"spool-{r}.db")  # fmt: skip
                else:
                    drain = drain_posthog(proxies["sink_proxy"].url, sink.url, args.events, r)
                log(f"round {r + 1}: {drain.contender}: {drain.per_s:,.0f} events/s (calls "
                    f"{drain.enqueue_s:.2f} s, drained in {drain.drain_s:.2f} s)")  # fmt: skip
                report.rounds.append(drain)
    report.ours_per_s = statistics.median(d.per_s for d in report.rounds if d.contender == OURS)
    report.posthog_per_s = statistics.median(
        d.per_s for d in report.rounds if d.contender == POSTHOG
    )
    report.ratio = report.ours_per_s / report.posthog_per_s
    report.load = os.getloadavg()
    if report.load[0] > report.cpus:
        report.problems.append(
            f"load average {report.load[0]:.1f} on {report.cpus} CPUs: other work ran meanwhile"
        )
    return report


def print_report(report: Report, out: TextIO) -> None:
    line = "-" * 78
    print(line, file=out)
    print(f"drained events/s through {report.delay_ms:g} ms each way (RTT "
          f"{2 * report.delay_ms:g} ms), {report.events:,} events a round, "
          f"{len(report.rounds) // 2} rounds, median", file=out)  # fmt: skip
    print(f"  {OURS:<18} {report.ours_per_s:>10,.0f} events/s  (xtracker serve, sync="
          f"{report.sync})", file=out)  # fmt: skip
    print(f"  {POSTHOG:<18} {report.posthog_per_s:>10,.0f} events/s  (posthog "
          f"{report.posthog}, defaults)", file=out)  # fmt: skip
    ok_ratio, ok_abs = report.ratio >= 1, report.ours_per_s >= 1000
    print(f"  ours/posthog = {report.ratio:.2f} (target >= 1: {'met' if ok_ratio else 'MISSED'});"
          f" ours >= 1,000 events/s: {'met' if ok_abs else 'MISSED'}", file=out)  # fmt: skip
    print(f"  Python {report.python}, {report.cpus} CPUs, load {report.load[0]:.2f} "
          f"{report.load[1]:.2f} {report.load[2]:.2f}", file=out)  # fmt: skip
    print_problems(report.problems, line, out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events a round (10,000)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="added each way (50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each contender (3)")
    add_sync_argument(parser, "the xtracker server")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    # The helper processes: this same script, started by the run.
    parser.add_argument("--proxy", nargs=3, metavar=("LISTEN", "TARGET", "DELAY_MS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.proxy:
        return proxy_main(int(args.proxy[0]), int(args.proxy[1]), float(args.proxy[2]))
    if args.sink:
        return sink_main(args.sink)
    report = run(args)
    if args.json:
        data = asdict(report)
        print(json.dumps(data, indent=2))
    else:
        print_report(report, sys.stdout)
    return 1 if report.ratio < 1 or report.ours_per_s < 1000 else 0


if __name__ == "__main__":
    run_script(main)
