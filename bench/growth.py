"""How XTRACKER's hot paths hold up as the database grows: each path on a small and on a large
database, and the large ÷ small ratio against issue 14's targets.

What it measures
    Two databases of one space each, seeded fast through the store (bench/_growth_seed.py:
    clicks with realistic uids and campaign fields, the bot's binds, the funnel's events, the
    partner's postbacks and their log rows, every delivery sent and its attempts recorded, the
    report rollup caught up): ``--small`` events (10,000 by default) and ``--large`` events
    (5,000,000), clicks 60 % of the events, both over the 28 days before the same instant. On
    each, in this order (the same steps on both: each path sees the seed and what the paths
    before it added, and the rate-independent additions are the same on both):

    report funnel  ``xtracker serve --no-worker``, ``GET /admin/spaces/<id>/reports/funnel``
                   over the seed's last 7 days, with the space's bearer (2 connections: two
                   dashboards; more wait for the store's readers): the seed as it is
    deliveries     the server stopped; a backlog of exactly ``--backlog`` webhook deliveries
                   (deposits of 1,000 new clicks, added through the store) delivered by
                   ``xtracker worker`` to bench/sink.py for up to ``--seconds``: deliveries
                   settled per second
    POST /events   ``xtracker serve --no-worker`` again, wrk with bench/post_events.lua
                   (ingest.py's load: distinct deposits, each fanned out into a webhook delivery)
    GET /r/hot     the same server, wrk with bench/get_clicks.lua (clicks.py's load: a phone
                   browser's first visit, a click recorded per request)
    POST /bind     the same server, wrk with bench/growth.lua: each request binds a click
                   nobody has bound yet (a pool seeded for it just before, as large on both
                   databases) to a new Telegram id

    Each wrk path runs a warm-up, then ``--rounds`` runs of ``--seconds`` (the medians count).
    The three HTTP paths run on both databases' servers at once, their runs taking turns
    (small then large, then large then small, ...), each side's report rollup caught up after
    its run: a shared machine that slows down for a few minutes weighs on both sides alike
    (measured one database after the other, the ratios swung by 0.15 between two runs of the
    same code). The click limit per address is off (wrk is one address), as in the other
    benches.

Targets (issue 14): large/small throughput >= 0.8 and p99 <= 1.5 for ingest, clicks and binds;
delivery rate >= 0.66. The report funnel counts the whole window, so it grows with the data by
design: it is printed without a target.

Seeding 5 million events takes minutes (the seeding rate is printed): ``--keep DIR`` keeps the
seeded databases in DIR and reuses them; every run measures on a fresh copy, so a kept seed is
never changed. Both databases end at the same instant: a kept seed sets it, and the other one
is seeded again unless it ends then too. ``--quick`` is a smoke run (tiny databases, 1-second
runs).

Exit status: 0 all targets met, 2 a target missed, 1 the measurement is not clean (errors).
Everything listens on and talks to 127.0.0.1 only.

    python bench/growth.py [--small 10000] [--large 5000000] [--seconds 10] [--keep DIR]
                           [--quick] [--no-cube] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import _growth_seed as seeding
from _harness import (
    BENCH_DIR,
    HOST,
    WrkRun,
    add_cube_argument,
    add_sync_argument,
    bench_env,
    describe,
    ensure_wrk,
    filesystem_of,
    free_port,
    healthz_ok,
    http_request,
    log,
    print_problems,
    run_script,
    run_wrk,
    running_server,
    running_sink,
    sink_reset,
    sink_stats,
    with_cube,
    xtracker_command,
    xtracker_serve_argv,
)
from clicks import BOT, IPHONE_SAFARI, SLUG, check_answer
from clicks import LUA_SCRIPT as CLICKS_LUA
from delivery import HOOK_PATH
from ingest import LUA_SCRIPT as EVENTS_LUA

from xtracker_server.store.sqlite import outbox
from xtracker_server.store.sqlite.db import connect, reports_path

GROWTH_LUA = BENCH_DIR / "growth.lua"
#: path -> (throughput ratio at least, p99 ratio at most); None: printed without a target.
TARGETS: dict[str, tuple[float, float | None] | None] = {
    "ingest": (0.8, 1.5),
    "clicks": (0.8, 1.5),
    "binds": (0.8, 1.5),
    "report": None,
    "deliveries": (0.66, None),
}
LABELS = {
    "ingest": "POST /events",
    "clicks": "GET /r/<slug>",
    "binds": "POST /bind",
    "report": "report funnel",
    "deliveries": "deliveries",
}
REPORT_CONNECTIONS = 2
REPORT_DAYS = 7  # the funnel's window: the last days of the seed
#: The clicks made for POST /bind: this many times what the fastest path before it took, on the
#: first database; the second gets as many (both databases gain the same rows).
BIND_POOL_RATE = 2
BACKLOG_CLICKS = 1_000  # new clicks whose deposits make the delivery backlog
POLL_S = 0.05


# --------------------------------------------------------------------------- results


@dataclass
class PathResult:
    per_s: float  # requests (deliveries) per second: the median of the measured runs
    p99_ms: float | None  # the median of the runs' p99; None for deliveries
    count: int  # requests answered (deliveries settled) in the measured runs
    note: str = ""


@dataclass
class DbResult:
    label: str  # "small" or "large"
    events: int  # inbox rows as seeded
    clicks: int
    seed_s: float | None  # None: a kept seed was reused
    rollup_s: float | None
    seeded_bytes: int  # db + wal + reports db right after seeding
    final_bytes: int  # the same after the measurements
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    paths: dict[str, PathResult] = field(default_factory=dict)

    @property
    def bytes_per_million(self) -> float:
        return self.seeded_bytes / max(1, self.events) * 1_000_000


@dataclass
class Verdict:
    path: str
    rate_ratio: float
    p99_ratio: float | None
    target: str
    met: bool | None  # None: no target


@dataclass
class Report:
    commit: str
    sync: str
    filesystem: str
    seconds: float
    rounds: int
    connections: int
    backlog: int
    dbs: list[DbResult]
    verdicts: list[Verdict]
    clean: bool
    problems: list[str] = field(default_factory=list)


def files_size(db: Path) -> int:
    """The database, its WAL and its report rollup (and its WAL), in bytes."""
    total = 0
    for name in (str(db), reports_path(str(db))):
        for suffix in ("", "-wal"):
            path = Path(name + suffix)
            total += path.stat().st_size if path.exists() else 0
    return total


# --------------------------------------------------------------------------- seeding


def kept_seed(args: argparse.Namespace, events: int) -> Path | None:
    """Where ``--keep`` keeps the seed of ``events`` events (None: not kept)."""
    cube = "-cube" if args.cube else ""
    return args.keep / f"growth-v{seeding.SEED_VERSION}{cube}-{events}.db" if args.keep else None


def common_end_ms(args: argparse.Namespace) -> int:
    """The instant both databases end at: the clicks and events of each lie in the days before
    it, so "the last 7 days", retention and the report's window cover the same part of both.
    That of a kept seed (the large one's first: it is the one worth reusing), else now."""
    for events in (args.large, args.small):
        kept = kept_seed(args, events)
        if kept is not None and kept.exists() and kept.with_suffix(".json").exists():
            return seeding.Seeded.load(kept.with_suffix(".json")).to_ms
    return int(time.time() * 1000)


def seeded_database(
    label: str, events: int, args: argparse.Namespace, workdir: Path, end_ms: int
) -> tuple[Path, seeding.Seeded, DbResult]:
    """The database to measure on, in ``workdir``, ending at ``end_ms``: seeded now, or copied
    from a kept seed that ends then."""
    db = workdir / f"{label}.db"
    kept = kept_seed(args, events)
    seeded: seeding.Seeded | None = None
    if kept is not None and kept.exists() and kept.with_suffix(".json").exists():
        seeded = seeding.Seeded.load(kept.with_suffix(".json"))
        if seeded.to_ms != end_ms:
            log(f"{label}: the kept seed {kept} ends at another time than the other database:"
                " seeding it again")  # fmt: skip
            seeded = None
    if seeded is not None:
        assert kept is not None
        age_h = (time.time() * 1000 - end_ms) / 3_600_000
        log(f"{label}: reusing the seed {kept} (it ends {age_h:,.1f} h ago), copying it ...")
        started = time.perf_counter()
        shutil.copyfile(kept, db)
        shutil.copyfile(reports_path(str(kept)), reports_path(str(db)))
        log(f"{label}: copied in {time.perf_counter() - started:.1f} s")
        seed_s = rollup_s = None
    else:
        target = kept or db
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            seeding.remove(kept)
        log(f"{label}: seeding {events:,} events and {int(events * 0.6):,} clicks ...")
        seeded = seeding.seed(
            target,
            events=events,
            hot_slug=SLUG,
            bot=BOT,
            end_ms=end_ms,
            cube=args.cube,
            progress=lambda rows, s: log(
                f"{label}:   {rows['inbox']:>10,} events {rows['clicks']:>10,} clicks "
                f"{s:7.0f} s ({rows['inbox'] / s:,.0f} events/s)"
            ),
        )
        seed_s, rollup_s = seeded.seconds["write"], seeded.seconds["rollup"]
        log(
            f"{label}: seeded in {seed_s:.0f} s ({seeded.events / seed_s:,.0f} events/s), "
            f"report rollup in {rollup_s:.0f} s; checking it ..."
        )
        problems = seeding.check(target, seeded)
        if problems:
            raise RuntimeError(f"the seeded {label} database is wrong:\n" + "\n".join(problems))
        if kept is not None:
            seeded.save(kept.with_suffix(".json"))
            shutil.copyfile(kept, db)
            shutil.copyfile(reports_path(str(kept)), reports_path(str(db)))
    # Written just now (seeded or copied): the kernel would write the file back while the
    # first paths run, the more so the larger it is. Flushed first, on both databases alike.
    started = time.perf_counter()
    os.sync()
    log(f"{label}: written back to disk in {time.perf_counter() - started:.1f} s")
    result = DbResult(
        label=label,
        events=seeded.events,
        clicks=seeded.rows["clicks"],
        seed_s=seed_s,
        rollup_s=rollup_s,
        seeded_bytes=files_size(db),
        final_bytes=0,
        load_before=os.getloadavg(),
        load_after=(0.0, 0.0, 0.0),
    )
    return db, seeded, result


# --------------------------------------------------------------------------- measuring


def measure_wrk(
    wrk: str,
    url: str,
    name: str,
    script: Path,
    script_args: Callable[[int, list[WrkRun]], list[str]],
    args: argparse.Namespace,
    problems: list[str],
    label: str,
    connections: int | None = None,
) -> PathResult:
    runs: list[WrkRun] = []
    plan = ([True] if args.warmup >= 1 else []) + [False] * args.rounds
    for n, warmup in enumerate(plan):
        runs.append(wrk_run(wrk, url, name, label, script, script_args(n, runs), warmup, args,
                            problems, connections))  # fmt: skip
    return summary(runs)


def wrk_run(
    wrk: str, url: str, name: str, label: str, script: Path, script_args: list[str],
    warmup: bool, args: argparse.Namespace, problems: list[str], connections: int | None = None,
) -> WrkRun:  # fmt: skip
    """One wrk run of path ``name`` on ``label``'s server (a warm-up: ``--warmup`` seconds),
    logged; one that was not clean goes in ``problems``."""
    run = run_wrk(
        wrk, url, script=script, script_args=script_args, side=label, warmup=warmup,
        duration=args.warmup if warmup else args.seconds,
        connections=connections or args.connections, threads=args.threads,
    )  # fmt: skip
    log(describe(run, f"{LABELS[name]:<14}"))
    if not run.clean:
        problems.append(
            f"{label} {LABELS[name]} {'warm-up' if warmup else 'run'}: {run.non2xx} "
            f"non-2xx/3xx answers, socket errors {run.socket_errors}"
        )
    return run


def summary(runs: list[WrkRun]) -> PathResult:
    """The medians of the measured runs (not the warm-up)."""
    measured = [r for r in runs if not r.warmup]
    return PathResult(
        per_s=statistics.median(r.requests_per_s for r in measured),
        p99_ms=statistics.median(r.p99_ms for r in measured),
        count=sum(r.ok_responses for r in measured),
    )


def report_path(seeded: seeding.Seeded) -> str:
    """The funnel of the seed's last 7 days (up to now: the same rows in both databases)."""
    since = seeded.to_ms - REPORT_DAYS * seeding.DAY_MS
    return f"/admin/spaces/{seeded.space_id}/reports/funnel?from={since}"


def sanity(url: str, seeded: seeding.Seeded, path: str, uid: str) -> None:
    """One request by hand: the answer is the one we mean to measure."""
    if path == "clicks":
        check_answer("xtracker", "r", url, IPHONE_SAFARI)
        return
    checks: dict[str, tuple[str, dict[str, Any] | None, bytes]] = {
        "ingest": ("/events", {"uid": "u0", "event": "deposit", "value": "25.00",
                               "eid": f"sanity-{time.time()}"}, b'"queued"'),
        "binds": ("/bind", {"uid": uid, "tg_id": 5_999_999_999}, b'"matched":true'),
        "report": (report_path(seeded), None, b'"ok":true'),
    }  # fmt: skip
    what, body, expect = checks[path]
    status, _, answer = http_request(
        f"{url}{what}", body=body, headers={"Authorization": f"Bearer {seeded.bearer}"}, timeout=60
    )
    if status != 200 or expect not in answer.replace(b" ", b""):
        raise RuntimeError(f"sanity {what} answered {status}: {answer[:300]!r}")


def measure_report(
    db: Path,
    seeded: seeding.Seeded,
    result: DbResult,
    args: argparse.Namespace,
    wrk: str,
    env: dict[str, str],
    workdir: Path,
    problems: list[str],
) -> None:
    """The report funnel on ``xtracker serve --no-worker`` of the seed as it is."""
    label, port = result.label, free_port()
    log(f"{label}: starting xtracker serve --no-worker on {HOST}:{port} for the report ...")
    with running_server(
        f"serve-{label}-report",
        xtracker_serve_argv(db, port, "--no-worker", "--sync", args.sync),
        port,
        env,
        workdir,
        healthz_ok,
    ) as server:
        sanity(server.url, seeded, "report", "")
        result.paths["report"] = measure_wrk(
            wrk, server.url, "report", GROWTH_LUA,
            lambda n, _: ["get", seeded.bearer, report_path(seeded)],
            args, problems, label, REPORT_CONNECTIONS,
        )  # fmt: skip
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server died:\n{server.log_tail()}")


@dataclass
class Side:
    """One database's server while the HTTP paths are measured on both, turn about."""

    db: Path
    seeded: seeding.Seeded
    result: DbResult
    url: str = ""
    uid_file: Path | None = None
    pool: list[str] = field(default_factory=list)
    runs: list[WrkRun] = field(default_factory=list)


def measure_http(
    sides: list[Side],
    args: argparse.Namespace,
    wrk: str,
    env: dict[str, str],
    workdir: Path,
    problems: list[str],
) -> None:
    """Ingest, clicks and binds on ``xtracker serve --no-worker`` of both databases at once,
    their runs taking turns (small, large; then large, small...): a machine that slows down
    or speeds up for a while (a shared one does) weighs on both sides alike, where measuring
    one database after the other put minutes between them. After each run the side's report
    rollup is caught up (a report request waits for it) before the other side runs, so that
    neither measures the other's catch-up."""
    with ExitStack() as servers:
        for side in sides:
            label, port = side.result.label, free_port()
            log(f"{label}: starting xtracker serve --no-worker on {HOST}:{port} for ingest,"
                " clicks, binds ...")  # fmt: skip
            server = servers.enter_context(running_server(
                f"serve-{label}-http", xtracker_serve_argv(side.db, port, "--no-worker", "--sync",
                args.sync), port, env, workdir, healthz_ok,
            ))  # fmt: skip
            side.url, side.uid_file = server.url, workdir / f"{label}-uids.txt"
        for name in ("ingest", "clicks", "binds"):
            if name == "binds":  # clicks nobody bound yet, more than the binds will need
                seconds = args.warmup + args.seconds * args.rounds
                rate = max(r.per_s for side in sides for r in side.result.paths.values())
                pool_size = int(BIND_POOL_RATE * rate * seconds) + 1000
                for side in sides:
                    side.pool = seeding.add_clicks(side.db, side.seeded, pool_size)
                    assert side.uid_file is not None
                    side.uid_file.write_text("\n".join(side.pool[1:]) + "\n")
            for side in sides:
                sanity(side.url, side.seeded, name, side.pool[0] if side.pool else "")
                side.runs = []
            plan = ([True] if args.warmup >= 1 else []) + [False] * args.rounds
            for n, warmup in enumerate(plan):
                for side in sides if n % 2 == 0 else sides[::-1]:
                    side.runs.append(_http_run(side, name, n, warmup, args, wrk, problems))
                    catch_up_reports(side)
            for side in sides:
                side.result.paths[name] = summary(side.runs)
    for side in sides:
        binds = side.result.paths["binds"]
        beyond = binds.count - len(side.pool)
        if beyond > 0:
            binds.note = (
                f"{beyond:,} binds of uids of no click (the pool of {len(side.pool):,} ran out)"
            )


def _http_run(
    side: Side, name: str, n: int, warmup: bool, args: argparse.Namespace, wrk: str,
    problems: list[str],
) -> WrkRun:  # fmt: skip
    label, bearer = side.result.label, side.seeded.bearer
    if name == "ingest":
        script, script_args = EVENTS_LUA, [bearer, f"{label}-{n}"]
    elif name == "clicks":
        script, script_args = CLICKS_LUA, [f"/r/{side.seeded.hot_slug}", IPHONE_SAFARI]
    else:  # each run goes on in the file past what the runs before it may have bound
        offset = sum(r.requests + args.connections for r in side.runs)
        script, script_args = GROWTH_LUA, ["bind", bearer, str(side.uid_file), str(offset),
                                           str(args.threads)]  # fmt: skip
    return wrk_run(wrk, side.url, name, label, script, script_args, warmup, args, problems)


def catch_up_reports(side: Side) -> None:
    """Wait until the side's report rollup has read what the run wrote: a report request
    catches it up first (``Store.catch_up_reports``)."""
    status, _, answer = http_request(
        f"{side.url}{report_path(side.seeded)}",
        headers={"Authorization": f"Bearer {side.seeded.bearer}"}, timeout=600,
    )  # fmt: skip
    if status != 200:
        raise RuntimeError(f"the report after a run answered {status}: {answer[:300]!r}")


def measure_deliveries(
    db: Path,
    seeded: seeding.Seeded,
    result: DbResult,
    args: argparse.Namespace,
    env: dict[str, str],
    workdir: Path,
    sink_url: str,
    problems: list[str],
    sink: Any,
) -> None:
    """The worker's rate on a backlog of ``--backlog`` deliveries (new deposits of new clicks)
    for up to ``--seconds``."""
    label = result.label
    seeding.point_webhook(db, seeded, f"{sink_url}{HOOK_PATH}")
    reader = connect(str(db), readonly=True)
    try:
        pending = sum(outbox.depth(reader).values())
        if pending:  # the seed settles every delivery: another backlog would not compare
            raise RuntimeError(f"{label}: {pending:,} deliveries pending before the backlog")
        uids = seeding.add_clicks(db, seeded, BACKLOG_CLICKS)
        backlog = seeding.add_backlog(db, seeded, uids, args.backlog)
        sink_reset(sink)
        log(f"{label}: xtracker worker on a backlog of {backlog:,} deliveries ...")
        ready_mark = b" running (db:"
        log_path = workdir / f"worker-{label}.log"
        with running_server(
            f"worker-{label}",
            [*xtracker_command(), "worker", "--db", str(db), "--poll-s", str(POLL_S)],
            0,
            {**env, "XTRACKER_ALLOW_PRIVATE_DESTINATIONS": "on", "XTRACKER_SYNC": args.sync},
            workdir,
            lambda _url: log_path.exists() and ready_mark in log_path.read_bytes(),
        ) as worker:
            # The clock starts at the first settled delivery: the worker's start-up (imports,
            # opening the store, the first claim) is not what grows with the data.
            deadline = time.monotonic() + 60
            left = backlog
            while left == backlog:
                if worker.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker delivered nothing:\n{worker.log_tail()}")
                time.sleep(POLL_S / 5)
                left = sum(outbox.depth(reader).values())
            started, at_start = time.monotonic(), left
            while left and time.monotonic() - started < args.seconds:
                time.sleep(POLL_S)
                left = sum(outbox.depth(reader).values())
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"the worker died:\n{worker.log_tail()}")
            elapsed = time.monotonic() - started
    finally:
        reader.close()
    delivered = at_start - left
    paths, _ = sink_stats(sink)
    hook = paths.get(HOOK_PATH, {})
    if int(hook.get("distinct_ids", 0)) < delivered:
        problems.append(
            f"{label} deliveries: {delivered:,} settled but the sink saw "
            f"{hook.get('distinct_ids', 0):,} distinct webhook-ids"
        )
    result.paths["deliveries"] = PathResult(
        per_s=delivered / elapsed if elapsed else 0.0,
        p99_ms=None,
        count=delivered,
        note=f"backlog {backlog:,}" + (", all delivered" if not left else ""),
    )
    log(
        f"{'deliveries':<14}{label:<8} {result.paths['deliveries'].per_s:>9,.0f} /s  "
        f"{delivered:,} in {elapsed:.1f} s (backlog {backlog:,})"
    )


# --------------------------------------------------------------------------- verdicts


def verdicts(small: DbResult, large: DbResult) -> list[Verdict]:
    out = []
    for name, target in TARGETS.items():
        s, g = small.paths[name], large.paths[name]
        rate = g.per_s / s.per_s if s.per_s else 0.0
        p99 = g.p99_ms / s.p99_ms if g.p99_ms is not None and s.p99_ms else None
        if target is None:
            out.append(Verdict(name, rate, p99, "none (grows with the window's data)", None))
            continue
        min_rate, max_p99 = target
        met = rate >= min_rate and (max_p99 is None or (p99 is not None and p99 <= max_p99))
        text = f"rate >= {min_rate:g}" + (f", p99 <= {max_p99:g}" if max_p99 else "")
        out.append(Verdict(name, rate, p99, text, met))
    return out


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 100
    small, large = report.dbs
    print(line, file=out)
    print(
        f"xtracker {report.commit}: growth from {small.events:,} to {large.events:,} events in "
        f"one space; {report.seconds:g} s x {report.rounds} run(s) per path, "
        f"{report.connections} connections",
        file=out,
    )
    print(
        f"SQLite synchronous={report.sync}, file system {report.filesystem}; load average "
        f"{small.load_before[0]:.1f} (start) to {large.load_after[0]:.1f} (end) "
        f"on {os.cpu_count()} CPU(s)",
        file=out,
    )
    print(line, file=out)
    print(
        f"{'path':<15}{'small: rate':>14}{'p99':>10}{'large: rate':>15}{'p99':>10}"
        f"{'rate ratio':>12}{'p99 ratio':>11}   target",
        file=out,
    )
    for v in report.verdicts:
        s, g = small.paths[v.path], large.paths[v.path]

        def p99(r: PathResult) -> str:
            return "-" if r.p99_ms is None else f"{r.p99_ms:.1f} ms"

        mark = "" if v.met is None else (": met" if v.met else ": NOT MET")
        p99_ratio = "-" if v.p99_ratio is None else f"{v.p99_ratio:.2f}"
        print(
            f"{LABELS[v.path]:<15}{s.per_s:>12,.0f}/s{p99(s):>10}{g.per_s:>13,.0f}/s{p99(g):>10}"
            f"{v.rate_ratio:>12.2f}{p99_ratio:>11}   {v.target}{mark}",
            file=out,
        )
    notes = [f"{db.label} {LABELS[k]}: {p.note}" for db in report.dbs for k, p in db.paths.items()
             if p.note]  # fmt: skip
    for note in notes:
        print(f"  {note}", file=out)
    print(line, file=out)
    for db in report.dbs:
        seeded = (
            f"seeded in {db.seed_s:.0f} s ({db.events / db.seed_s:,.0f} events/s) + rollup "
            f"{db.rollup_s:.0f} s"
            if db.seed_s
            else "a kept seed"
        )
        print(
            f"{db.label:<6} {db.events:>10,} events {db.clicks:>10,} clicks, {seeded}; disk "
            f"{db.seeded_bytes / 1e6:,.0f} MB = {db.bytes_per_million / 1e6:,.0f} MB per million "
            f"events (db + wal + reports; {db.final_bytes / 1e6:,.0f} MB after the run)",
            file=out,
        )
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def git_commit() -> str:
    """The commit measured (``+changes``: with uncommitted changes), or ``?``."""
    git = ["git", "-C", str(BENCH_DIR.parent)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+changes" if dirty else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Each hot path of xtracker on a small and a large database: rate, p99 and "
        "the large/small ratio against issue 14's targets."
    )
    p.add_argument("--small", type=int, default=10_000, help="events of the small database")
    p.add_argument("--large", type=int, default=5_000_000, help="events of the large database")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per path")
    p.add_argument("--rounds", type=int, default=1, help="measured runs per path (median)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (leave cores to servers)")
    p.add_argument(
        "--backlog", type=int, default=20_000, help="pending deliveries the worker starts with"
    )
    add_sync_argument(p, "the server and the worker")
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the seeded databases in DIR and reuse them (runs measure on copies)",
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="where the working copies go")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny databases, 1 s runs")
    add_cube_argument(p, "the servers (and the seeds' rollup, kept apart from those without)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.quick:
        args.small, args.large = min(args.small, 1_000), min(args.large, 5_000)
        args.seconds, args.warmup, args.backlog = 1.0, 0.0, 500
        args.connections = min(args.connections, 16)
    if not 1_000 <= args.small < args.large or args.rounds < 1 or args.seconds < 1:
        p.error("need 1000 <= --small < --large, --rounds >= 1 and --seconds >= 1")
    if args.connections < args.threads:
        p.error("need --connections >= --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    commit = git_commit()  # what is measured: the code as it was at the start
    problems: list[str] = []
    dbs: list[DbResult] = []
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="xtracker-growth-", dir=args.tmpdir))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        env = with_cube(bench_env(), args.cube)
        sink_port = free_port()
        sink = cleanup.enter_context(running_sink(sink_port, env, workdir))
        end_ms = common_end_ms(args)
        sides: list[Side] = []
        for label, events in (("small", args.small), ("large", args.large)):
            # The same steps on both, in an order where each path sees the seed plus what the
            # paths before it added, as little of it as possible: the report on the seed as it
            # is, the worker on a backlog of the same size, then the HTTP writes (on both
            # databases at once, their runs taking turns: measure_http).
            db, seeded, result = seeded_database(label, events, args, workdir, end_ms)
            measure_report(db, seeded, result, args, wrk, env, workdir, problems)
            measure_deliveries(db, seeded, result, args, env, workdir, sink.url, problems, sink)
            sides.append(Side(db, seeded, result))
        measure_http(sides, args, wrk, env, workdir, problems)
        for side in sides:
            side.result.final_bytes = files_size(side.db)
            side.result.load_after = os.getloadavg()
            dbs.append(side.result)
            seeding.remove(side.db)  # a working copy (or a fresh seed without --keep)
        filesystem = filesystem_of(workdir)
    report = Report(
        commit=commit,
        sync=args.sync,
        filesystem=filesystem,
        seconds=args.seconds,
        rounds=args.rounds,
        connections=args.connections,
        backlog=args.backlog,
        dbs=dbs,
        verdicts=verdicts(*dbs),
        clean=not problems,
        problems=problems,
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_summary(report, sys.stdout)
    if problems:
        return 1
    return 0 if all(v.met is not False for v in report.verdicts) else 2


if __name__ == "__main__":
    run_script(main, "servers, worker and sink stopped")
