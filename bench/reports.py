"""How fast the reports answer on a big space: the funnel, the per-link table and a series.

What it measures
    A space with 1,000,000 events (contact, subscribed, registration, deposit) over 100 links
    and 30 days, plus the clicks they came from (one per uid) and about 1 % unattributed events,
    in a real SQLite file with the real schema (every migration). Then the same report
    functions the admin API and the CLI call (``xtracker_server.services.reports``), on a reader
    connection like the server's, each run ``--repeat`` times: the median is printed.

    funnel        the space funnel of the last 7 days, with its previous window (the gauge)
    funnel_link   the same, for one link
    links         the per-link table of the last 7 days
    series        contact uids per hour over the last 7 days (168 buckets)
    series_day    deposit uids per day over 30 days
    revenue_day   USD revenue per day over 30 days

Target: each median under 200 ms on this machine.

Seeding writes rows with plain SQL in one transaction (the ingest path would take minutes and
is measured by bench/ingest.py). The seeded file is kept in the temp directory, named after the
seed's parameters and ``SEED_VERSION``, and reused by the next run; ``--fresh`` seeds again.

    python bench/reports.py [--events 1000000] [--links 100] [--days 30] [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import Bucket
from xtracker_server.services import reports
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite.db import (
    attach_reports,
    connect,
    open_db,
    reports_path,
    transaction,
)
from xtracker_server.store.sqlite.rollup import catch_up, open_rollup

#: Bump when the seed's shape changes: cached files of older versions are not reused.
SEED_VERSION = 5
#: The seeded data ends here (fixed, so a cached file gives the same answers).
END_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
DAY_MS = 86_400_000
TARGET_MS = 200.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed(path: Path, *, events: int, link_count: int, days: int) -> None:
    """A space whose funnel leaks differently per link, ``events`` inbox rows in all."""
    rng = random.Random(20250601)
    start_ms = END_MS - days * DAY_MS
    conn = open_db(str(path), sync="OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    try:
        with transaction(conn):
            space = spaces.create_space(conn, "bench-reports", start_ms).space.id
            link_ids = [
                links.create_link(
                    conn, space, f"ad{i:03d}", LinkSpec(kind=LinkKind.BOT, target="bench_bot"),
                    start_ms,
                ).id
                for i in range(link_count)
            ]  # fmt: skip
            # Each link converts differently: the leak is somewhere else for each of them.
            quality = [(rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.7),
                        rng.uniform(0.2, 0.6)) for _ in link_ids]  # fmt: skip
            made = 0
            clicks: list[tuple[Any, ...]] = []
            inbox: list[tuple[Any, ...]] = []
            n = 0
            while made < events:
                n += 1
                uid = f"u{n:09d}"
                li = rng.randrange(link_count)
                t = start_ms + rng.randrange(days * DAY_MS)
                clicks.append((space, uid, link_ids[li], "landing", t))
                steps = ("contact", "subscribed", "registration")
                for step, p in zip(steps, quality[li], strict=False):
                    if rng.random() > p or made >= events:
                        break
                    t += rng.randrange(60_000, 6 * 3_600_000)
                    inbox.append(_event(space, uid, step, None, min(t, END_MS - 1), n))
                    made += 1
                else:
                    if rng.random() < quality[li][3]:
                        for k in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
                            if made >= events:
                                break
                            t += rng.randrange(60_000, 2 * DAY_MS)
                            value = rng.choice(("10.00", "25.00", "50.00", "100.00", "99.99"))
                            if rng.random() < 0.4:
                                value = f"{rng.randrange(500, 50_000) / 100:.2f}"
                            currency = "EUR" if rng.random() < 0.15 else "USD"
                            inbox.append(_event(space, uid, "deposit", (value, currency),
                                                min(t, END_MS - 1), n, k))  # fmt: skip
                            made += 1
                if made < events and rng.random() < 0.01:  # a bot event that never got a uid
                    tg = 10_000_000 + n
                    inbox.append(_event(space, None, "registration", None,
                                        start_ms + rng.randrange(days * DAY_MS), tg))  # fmt: skip
                    made += 1
                if len(inbox) >= 50_000:
                    _flush(conn, clicks, inbox)
            _flush(conn, clicks, inbox)
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _event(
    space: int,
    uid: str | None,
    event: str,
    money: tuple[str, str] | None,
    at: int,
    n: int,
    k: int = 0,
) -> tuple[Any, ...]:
    tg_id = None if uid is not None else n
    key = dedup_key(space, uid, tg_id, event, f"e{n}.{k}", at)
    value, currency = money if money else (None, None)
    return (space, key, event, uid, tg_id, f"e{n}.{k}", value, currency, at, at, "api",
            "request" if uid else None)  # fmt: skip


def _flush(conn: sqlite3.Connection, clicks: list[Any], inbox: list[Any]) -> None:
    conn.executemany(
        "INSERT INTO clicks (space_id, uid, link_id, source, created_ms) VALUES (?, ?, ?, ?, ?)",
        clicks,
    )
    conn.executemany(
        "INSERT INTO inbox (space_id, dedup_key, event, uid, tg_id, eid, value, currency,"
        " occurred_at_ms, received_ms, source, attributed_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        inbox,
    )
    clicks.clear()
    inbox.clear()


def seeded_file(args: argparse.Namespace) -> Path:
    name = f"xtracker-bench-reports-v{SEED_VERSION}-{args.events}-{args.links}-{args.days}.db"
    path = Path(args.dir or tempfile.gettempdir()) / name
    if path.exists() and not args.fresh:
        log(f"reusing the seeded {path} (--fresh to seed again)")
        return path
    path.unlink(missing_ok=True)
    Path(reports_path(str(path))).unlink(missing_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    log(f"seeding {args.events:,} events over {args.links} links and {args.days} days ...")
    started = time.perf_counter()
    seed(partial, events=args.events, link_count=args.links, days=args.days)
    partial.rename(path)
    log(f"seeded in {time.perf_counter() - started:.1f} s: {path}")
    started = time.perf_counter()
    rollup = open_rollup(str(path))  # what the server does in the background, all at once
    fed = catch_up(rollup)
    rollup.close()
    log(f"rolled up {fed:,} events in {time.perf_counter() - started:.1f} s")
    return path


def timed(fn: Callable[[], object], repeat: int) -> Iterator[float]:
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        yield (time.perf_counter() - started) * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    path = seeded_file(args)
    rollup = open_rollup(str(path))
    catch_up(rollup)  # a no-op unless seeding was cut short after the rename
    rollup.close()
    conn = attach_reports(connect(str(path), readonly=True), str(path))
    space = 1
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM clicks),"
        " (SELECT count(*) FROM links)"
    ).fetchone()
    week = {"now_ms": END_MS, "days": 7}
    month = {"now_ms": END_MS, "days": args.days}
    queries: dict[str, Callable[[], object]] = {
        "funnel": lambda: reports.funnel_report(conn, space, **week),
        "funnel_link": lambda: reports.funnel_report(conn, space, link="ad007", **week),
        "links": lambda: reports.links_report(conn, space, **week),
        "series": lambda: reports.series_report(
            conn, space, metric="contact", bucket=Bucket.HOUR, **week
        ),
        "series_day": lambda: reports.series_report(
            conn, space, metric="deposit", bucket=Bucket.DAY, **month
        ),
        "revenue_day": lambda: reports.series_report(
            conn, space, metric="revenue", currency="USD", bucket=Bucket.DAY, **month
        ),
    }
    results: dict[str, Any] = {}
    for name, fn in queries.items():
        fn()  # warm the page cache: the server's readers stay open and warm
        times = list(timed(fn, args.repeat))
        results[name] = {
            "median_ms": round(statistics.median(times), 1),
            "best_ms": round(min(times), 1),
        }
        log(f"{name:12} median {results[name]['median_ms']:7.1f} ms"
            f"  (best {results[name]['best_ms']:.1f})")  # fmt: skip
    conn.close()
    return {
        "events": counts[0],
        "clicks": counts[1],
        "links": counts[2],
        "days": args.days,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "queries": results,
        "ok": all(r["median_ms"] < TARGET_MS for r in results.values()),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--links", type=int, default=100)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--dir", help="where the seeded file is kept (default: the temp directory)")
    p.add_argument("--fresh", action="store_true", help="seed again even if a file exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['events']:,} events, {result['clicks']:,} clicks, {result['links']} links"
            f" over {result['days']} days; median of {args.repeat}:"
        )
        for name, r in result["queries"].items():
            mark = "ok" if r["median_ms"] < TARGET_MS else "SLOW"
            print(f"  {name:12} {r['median_ms']:7.1f} ms  {mark}")
        print("all under" if result["ok"] else "NOT all under", f"{TARGET_MS:.0f} ms")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
