"""Whether delivery keeps pace (issue 14): the worker's rate on a small and on a large pending
backlog, and the backlog under a sustained ingest load.

What it measures
    (a) **Backlog rates.** For each backlog size (``--small``, 10,000, and ``--large``,
    2,000,000, by default) a database is seeded through the store (not over HTTP: the store's
    own ``insert_clicks`` and ``insert_events``, in large transactions): one space, one webhook
    destination pointing at a local sink (``bench/sink.py``), one click per ten events, and
    that many deposits received over the past hour, each with its pending delivery. Then
    ``xtracker worker`` runs on it and the sink's request count is polled: the rate is the
    deliveries between the ``--warmup``-th and the end of the backlog (small) or of the
    ``--window`` (large), divided by the time between. Printed: both rates and large / small
    (the target is >= 1 / 1.5, i.e. within 1.5x).

    (b) **Sustained load.** ``xtracker serve`` (its worker in a process of its own, or in the
    server's with ``--worker-in-server``; synchronous=FULL by default) on a fresh database with
    one webhook destination to the sink; ``--rate`` deposits per second (1,000 by default) are
    POSTed for ``--minutes`` (5 by default) over ``LOAD_CONNECTIONS`` keep-alive connections,
    each sent at its scheduled time (an open loop: a slow server does not slow the load down, it
    falls behind and it shows). Every 10 s it prints the events acknowledged, the deliveries the
    sink has received, the backlog (acknowledged and not delivered) and the server's own
    ``xtracker_outbox_deliveries{state="pending"}`` from ``/metrics``. The result is the largest
    backlog in seconds' worth of the load (target: under 5 s), and whether it all drains after.
    A server that cannot take the asked rate (a busy machine) is reported as a problem, and its
    backlog is then counted in seconds of the rate it did take.

Integrity
    Every delivery reaches the sink once (its distinct ``webhook-id`` count equals its request
    count), every event is acknowledged ``queued``, and a backlog or load run that does not
    finish in time is reported. Any problem makes the exit status 1.

Everything listens on and talks to 127.0.0.1 only.

    python bench/pace.py [--small 10000] [--large 2000000] [--rate 1000] [--minutes 5]
                         [--skip-backlog] [--skip-load] [--worker-in-server] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from _harness import (
    HOST,
    Server,
    bench_env,
    filesystem_of,
    free_port,
    healthz_ok,
    http_request,
    log,
    print_problems,
    run_script,
    running_server,
    running_sink,
    sink_reset,
    sink_stats,
    stop_process,
    xtracker_command,
    xtracker_serve_argv,
)

from xtracker_server.domain.clicks import ClickDraft, new_uid
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    prepare_destination,
)
from xtracker_server.store.sqlite import destinations as dest_store
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.clicks import insert_clicks
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_events

HOOK_PATH = "/hook"
TARGET_RATIO = 1 / 1.5  # the large backlog's rate, as a share of the small one's
TARGET_BACKLOG_S = 5.0
SEED_BATCH = 20_000
REPORT_EVERY_S = 10.0
POLL_S = 0.2
#: Requests in flight at most: each waits for its commit (a few ms with an fsync), so that
#: 16 would cap the load at 16 per commit's latency, below the asked rate on a slow disk.
LOAD_CONNECTIONS = 64


# --------------------------------------------------------------------------- sink


def sink_counts(sink: Server) -> tuple[int, int]:
    """(requests, distinct webhook-ids) the sink got on ``HOOK_PATH`` since its last reset."""
    hook = sink_stats(sink)[0].get(HOOK_PATH, {})
    return int(hook.get("requests", 0)), int(hook.get("distinct_ids", 0))


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeded:
    db: Path
    space_id: int
    bearer: str
    events: int


def seed(db: Path, events: int, hook_url: str) -> Seeded:
    """A database with one space, a webhook destination at ``hook_url`` and ``events``
    deposits (one click per ten), each owing a pending delivery: written through the store's
    functions in transactions of ``SEED_BATCH`` rows, synchronous off (a bench's scratch file)."""
    started = time.monotonic()
    conn = open_db(str(db), sync="OFF")
    try:
        now = int(time.time() * 1000)
        with transaction(conn):
            new = spaces.create_space(conn, "pace", now)
            space_id = new.space.id
            destination = prepare_destination(
                DestinationInput(kind=DestinationKind.WEBHOOK, url=hook_url)
            )
            dest_store.create_destination(conn, space_id, destination, now)
        clicks = max(1, events // 10)
        uids = [new_uid() for _ in range(clicks)]
        hour_ago = now - 3_600_000
        for start in range(0, clicks, SEED_BATCH):
            drafts = [
                ClickDraft(space_id, uid, hour_ago, "api", fbclid=f"fb.{uid}", country="DE")
                for uid in uids[start : start + SEED_BATCH]
            ]
            with transaction(conn):
                insert_clicks(conn, drafts)
        for start in range(0, events, SEED_BATCH):
            batch = []
            for i in range(start, min(events, start + SEED_BATCH)):
                uid, eid = uids[i % clicks], f"pace-{i}"
                at = hour_ago + i * 3_600_000 // events  # an hour's backlog, oldest first
                key = dedup_key(space_id, uid, None, "deposit", eid, at)
                batch.append(
                    InboxDraft(space_id, key, "deposit", uid, None, eid, "25.00", "USD", at, at,
                               "api")
                )  # fmt: skip
            with transaction(conn):
                insert_events(conn, batch)
            if (start // SEED_BATCH) % 25 == 24:
                log(f"  seeded {start + len(batch):,} of {events:,} events ...")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    log(f"seeded {events:,} events in {time.monotonic() - started:.1f} s ({db.name})")
    return Seeded(db, space_id, new.bearer, events)


# --------------------------------------------------------------------------- (a) backlog


@dataclass
class BacklogRun:
    backlog: int
    measured: int  # deliveries counted in the rate
    seconds: float
    per_s: float
    problems: list[str] = field(default_factory=list)


def run_backlog(
    seeded: Seeded, warmup: int, window_s: float, sink: Server, env: dict[str, str], tmp: Path
) -> BacklogRun:
    """``xtracker worker`` on the seeded database; the rate from the ``warmup``-th delivery to
    the end of the backlog or of ``window_s``, whichever comes first."""
    sink_reset(sink)
    log_path = tmp / f"worker-{seeded.events}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*xtracker_command(), "worker", "--db", str(seeded.db), "--poll-s", "0.05"],
            env={**env, "XTRACKER_ALLOW_PRIVATE_DESTINATIONS": "on"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while b" running (db:" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
            time.sleep(0.01)
        first: tuple[float, int] | None = None
        last = (time.monotonic(), 0)
        give_up = time.monotonic() + 120 + window_s
        while True:
            time.sleep(POLL_S)
            now = time.monotonic()
            requests, _ = sink_counts(sink)
            if first is None and requests >= warmup:
                first = (now, requests)
            if requests > last[1]:
                last = (now, requests)
            if requests >= seeded.events or (first and now - first[0] >= window_s):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker died:\n{log_path.read_text()[-2000:]}")
            if now > give_up:
                problems.append(f"timed out with {requests:,} of {seeded.events:,} delivered")
                break
    finally:
        stop_process(proc)
    requests, distinct = sink_counts(sink)
    if requests != distinct:
        problems.append(f"{requests - distinct} redeliveries (the same webhook-id twice)")
    if first is None or last[0] <= first[0]:
        problems.append(f"too few deliveries to measure ({requests:,})")
        return BacklogRun(seeded.events, 0, 0.0, 0.0, problems)
    measured, seconds = last[1] - first[1], last[0] - first[0]
    return BacklogRun(seeded.events, measured, seconds, measured / seconds, problems)


# --------------------------------------------------------------------------- (b) load


@dataclass
class Sample:
    at_s: float
    acknowledged: int
    delivered: int  # distinct webhook-ids at the sink
    backlog: int
    pending_metric: int | None  # xtracker_outbox_deliveries{state="pending"}


@dataclass
class LoadRun:
    rate: int
    seconds: float
    acknowledged: int
    achieved_per_s: float
    samples: list[Sample]
    max_backlog: int
    max_backlog_s: float
    drained_s: float | None  # after the load stopped, until everything was delivered
    problems: list[str] = field(default_factory=list)


_PENDING = re.compile(rb'^xtracker_outbox_deliveries\{state="pending"\} ([0-9.e+]+)$', re.M)


def pending_metric(server: Server, admin_token: str) -> int | None:
    status, _, body = http_request(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {admin_token}"}, timeout=5
    )
    m = _PENDING.search(body) if status == 200 else None
    return int(float(m.group(1))) if m else None


async def _post_paced(
    port: int, bearer: str, rate: int, seconds: float, acked: list[int], problems: list[str]
) -> None:
    """POST ``rate`` deposits a second for ``seconds``: event i is sent at start + i / rate
    (over ``LOAD_CONNECTIONS`` keep-alive connections), whenever a connection is free; a server
    that falls behind is not waited for past ``seconds``."""
    total = int(rate * seconds)
    head = (
        f"POST /events HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {bearer}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    next_index = 0
    start = time.monotonic()

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while next_index < total and len(problems) < 10:
                if time.monotonic() >= start + seconds:
                    break
                i = next_index
                next_index += 1
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = (
                    f'{{"uid":"load{i % 5000}","event":"deposit","value":"25.00",'
                    f'"currency":"USD","eid":"pace-load-{i}"}}'
                ).encode()
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                lines = answer.decode("latin-1").split("\r\n")
                length = next(
                    int(v)
                    for k, _, v in (h.partition(":") for h in lines[1:])
                    if k.strip().lower() == "content-length"
                )
                text = await reader.readexactly(length)
                if lines[0].startswith("HTTP/1.1 200") and b'"queued"' in text:
                    acked[0] += 1
                else:
                    problems.append(f"event {i}: {lines[0]} {text[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(LOAD_CONNECTIONS)))


def run_load(
    rate: int,
    minutes: float,
    sink: Server,
    env: dict[str, str],
    tmp: Path,
    out: TextIO,
    *serve_flags: str,
) -> LoadRun:
    sink_reset(sink)
    seeded = seed(tmp / "load.db", 0, f"{sink.url}{HOOK_PATH}")
    port = free_port()
    seconds = minutes * 60
    problems: list[str] = []
    samples: list[Sample] = []
    acked = [0]
    with running_server(
        "serve",
        xtracker_serve_argv(seeded.db, port, "--allow-private-destinations", *serve_flags),
        port,
        env,
        tmp,
        healthz_ok,
    ) as server:
        admin = env["XTRACKER_ADMIN_TOKEN"]
        log(f"posting {rate:,} events/s for {seconds:g} s ...")

        def sample(t0: float) -> Sample:
            _, delivered = sink_counts(sink)
            s = Sample(
                round(time.monotonic() - t0, 1),
                acked[0],
                delivered,
                acked[0] - delivered,
                pending_metric(server, admin),
            )
            print(
                f"  t={s.at_s:>6.1f} s  acknowledged {s.acknowledged:>9,}  delivered "
                f"{s.delivered:>9,}  backlog {s.backlog:>8,} ({s.backlog / rate:5.1f} s of the "
                f"asked rate)  "
                f"pending (metrics) {s.pending_metric}",
                file=out,
                flush=True,
            )
            return s

        async def load_and_watch() -> None:
            t0 = time.monotonic()
            load = asyncio.create_task(
                _post_paced(port, seeded.bearer, rate, seconds, acked, problems)
            )
            while not load.done():
                await asyncio.wait({load}, timeout=REPORT_EVERY_S)
                samples.append(await asyncio.to_thread(sample, t0))
            await load

        started = time.monotonic()
        asyncio.run(load_and_watch())
        load_seconds = time.monotonic() - started
        drained_s = None
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < 120:
            _, delivered = sink_counts(sink)
            if delivered >= acked[0]:
                drained_s = time.monotonic() - drain_started
                break
            time.sleep(POLL_S)
        requests, delivered = sink_counts(sink)
        if drained_s is None:
            problems.append(f"not drained 120 s after the load: {delivered:,} of {acked[0]:,}")
        if requests != delivered:
            problems.append(f"{requests - delivered} redeliveries (the same webhook-id twice)")
        if server.proc.poll() is not None:
            problems.append(f"the server exited:\n{server.log_tail()}")
    max_backlog = max((s.backlog for s in samples), default=0)
    achieved = acked[0] / load_seconds if load_seconds else 0.0
    if achieved < 0.95 * rate:
        problems.append(
            f"the server took {achieved:,.0f} events/s, not the {rate:,} asked: the load was"
            " lighter than meant (a busy machine?), the backlog is in seconds of what it took"
        )
    return LoadRun(
        rate=rate,
        seconds=load_seconds,
        acknowledged=acked[0],
        achieved_per_s=achieved,
        samples=samples,
        max_backlog=max_backlog,
        # seconds' worth of the load the server took (the asked rate when it took it all)
        max_backlog_s=max_backlog / max(1.0, min(float(rate), achieved)),
        drained_s=drained_s,
        problems=problems,
    )


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    filesystem: str
    small: BacklogRun | None
    large: BacklogRun | None
    ratio: float | None
    load: LoadRun | None
    problems: list[str]


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 72
    print(line, file=out)
    print(f"delivery pace, one webhook destination, local sink ({report.filesystem})", file=out)
    print(line, file=out)
    for run in (report.small, report.large):
        if run is not None:
            print(
                f"backlog {run.backlog:>11,}: {run.per_s:>8,.0f} deliveries/s "
                f"({run.measured:,} in {run.seconds:.1f} s)",
                file=out,
            )
    if report.ratio is not None:
        verdict = "meets" if report.ratio >= TARGET_RATIO else "BELOW"
        print(
            f"large / small        : {report.ratio:>8.2f}  ({verdict} target >= "
            f"{TARGET_RATIO:.2f}, i.e. within 1.5x)",
            file=out,
        )
    if report.load is not None:
        load = report.load
        verdict = "meets" if load.max_backlog_s < TARGET_BACKLOG_S else "ABOVE"
        drained = f"{load.drained_s:.1f} s" if load.drained_s is not None else "not drained"
        print(
            f"sustained load       : {load.rate:,}/s asked, {load.achieved_per_s:,.0f}/s "
            f"acknowledged over {load.seconds:.0f} s",
            file=out,
        )
        print(
            f"max backlog          : {load.max_backlog:,} ({load.max_backlog_s:.1f} s worth; "
            f"{verdict} target < {TARGET_BACKLOG_S:g} s); drained {drained} after the load",
            file=out,
        )
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Does delivery keep pace? Backlog rates, load.")
    p.add_argument("--small", type=int, default=10_000, help="the small backlog")
    p.add_argument("--large", type=int, default=2_000_000, help="the large backlog")
    p.add_argument("--warmup", type=int, default=1_000, help="deliveries before the rate counts")
    p.add_argument("--window", type=float, default=30.0, help="seconds the large rate is taken")
    p.add_argument("--rate", type=int, default=1_000, help="events/s of the sustained load")
    p.add_argument("--minutes", type=float, default=5.0, help="how long the load lasts")
    p.add_argument("--skip-backlog", action="store_true", help="only the sustained load")
    p.add_argument("--skip-load", action="store_true", help="only the backlog rates")
    p.add_argument(
        "--worker-in-server",
        action="store_true",
        help="the load's worker in the server's process (XTRACKER_WORKER_PROCESS=off)",
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="where the databases go")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.small <= args.warmup or args.large <= args.warmup:
        p.error("--small and --large must be larger than --warmup")
    if args.rate < 1 or args.minutes <= 0:
        p.error("need --rate >= 1 and --minutes > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    small = large = load = None
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="xtracker-pace-", dir=args.tmpdir))
        if args.keep:
            log(f"keeping {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        env = bench_env()
        sink_port = free_port()
        sink = cleanup.enter_context(running_sink(sink_port, env, tmp))
        hook = f"{sink.url}{HOOK_PATH}"
        if not args.skip_backlog:
            for size, name in ((args.small, "small"), (args.large, "large")):
                seeded = seed(tmp / f"{name}.db", size, hook)
                run = run_backlog(seeded, args.warmup, args.window, sink, env, tmp)
                log(f"backlog {size:,}: {run.per_s:,.0f} deliveries/s")
                small, large = (run, large) if name == "small" else (small, run)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{seeded.db}{suffix}").unlink(missing_ok=True)
                Path(reports_path(str(seeded.db))).unlink(missing_ok=True)
        if not args.skip_load:
            flags = ("--no-worker-process",) if args.worker_in_server else ()
            load = run_load(args.rate, args.minutes, sink, env, tmp, out, *flags)
        filesystem = filesystem_of(tmp)
    problems = [
        f"{what}: {p}"
        for what, run in (("small backlog", small), ("large backlog", large), ("load", load))
        if run is not None
        for p in run.problems
    ]
    ratio = large.per_s / small.per_s if small and large and small.per_s else None
    report = Report(filesystem, small, large, ratio, load, problems)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_summary(report, sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    run_script(main, "worker, server and sink stopped")
