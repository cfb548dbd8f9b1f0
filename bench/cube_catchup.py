"""How fast the rollup's catch-up (report steps and the report cube: XTRACKER_REPORT_CUBE on)
eats events.

What it measures
    A space of ``--events`` inbox rows (uids with 0..4 steps, deposits in 2 currencies, a few
    reversals) and the clicks they came from, each click with campaign, ad set, ad, country,
    device, OS, browser, placement, two utm fields and a sub-id, seeded with plain SQL into the
    real schema. Then:

    rebuild       the whole rollup built from nothing by the real ``catch_up`` (what a new
                  server or a ROLLUP_FORMAT bump does): events per second
    incremental   ``--more`` events (and their clicks) added afterwards, caught up in rounds of
                  ``--round`` events, as the server does while ingest goes on: events per second.
                  They are spread in time as the seeded ones (about 27 clicks per 15 minutes at
                  100,000 events), or, with ``--rate``, come at that many events per second:
                  the traffic of an ingest running at full speed

    Compare with bench/ingest.py's acknowledged events per second (about 2,400 on this
    machine): the catch-up keeps pace when its rate is higher. It runs off the write path.

    python bench/cube_catchup.py [--events 1000000] [--more 50000] [--round 2000] [--rate N]
                                 [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.rollup import catch_up, open_rollup

START_MS = 1_748_736_000_000 - 30 * 86_400_000
DAYS = 30
COUNTRIES = ("US", "CA", "DE", "GB", "FR", "BR", "IN", "MX", None)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Seeder:
    """Clicks with dimensions and their uids' events, written with plain SQL."""

    def __init__(
        self, conn: sqlite3.Connection, space: int, links_: list[int], events: int
    ) -> None:
        self.conn, self.space, self.links = conn, space, links_
        self.rng = random.Random(17)
        self.n = 0
        # Clicks come in time order (as they are stored, and as a rebuild reads them), about
        # 1.3 events per click, ``events`` of them over the DAYS.
        self.clock: float = START_MS
        self.gap_ms = DAYS * 86_400_000 * 1.3 / events

    def write(self, events: int) -> None:
        rng, made = self.rng, 0
        clicks: list[tuple[Any, ...]] = []
        inbox: list[tuple[Any, ...]] = []
        while made < events:
            self.n += 1
            uid = f"u{self.n:09d}"
            self.clock += self.gap_ms
            t = int(self.clock)
            c = rng.randrange(300)
            s = f"{c}-{rng.randrange(4)}"
            link = self.links[c % len(self.links)]  # each campaign sends to one link
            clicks.append((self.space, uid, link, "landing", t, f"c{c}",
                           f"camp {c}", f"s{s}", f"a{s}-{rng.randrange(8)}",
                           rng.choice(COUNTRIES), rng.choice(("mobile", "desktop", "tablet")),
                           rng.choice(("iOS", "Android", "Windows")),
                           rng.choice(("Safari", "Chrome", "Firefox")),
                           rng.choice(("feed", "stories", "reels")), "fb", f"camp {c}",
                           json.dumps({"creative": f"v{rng.randrange(5)}"})))  # fmt: skip
            for step in ("contact", "subscribed", "registration", "deposit"):
                if made >= events or rng.random() > 0.6:
                    break
                t += rng.randrange(60_000, 6 * 3_600_000)
                self.n += 1
                money = (f"{rng.randrange(500, 50_000) / 100:.2f}", rng.choice(("USD", "EUR")))
                value, currency = money if step == "deposit" else (None, None)
                inbox.append((self.space, f"{self.n}".encode(), step, uid, f"e{self.n}", value,
                              currency, t, t))  # fmt: skip
                made += 1
                if step == "deposit" and rng.random() < 0.03 and made < events:
                    inbox.append((self.space, f"r{self.n}".encode(), "deposit.reversed", uid,
                                  f"e{self.n}", None, None, t + 1, t + 1))  # fmt: skip
                    made += 1
            if len(inbox) >= 50_000 or made >= events:
                self.flush(clicks, inbox)

    def flush(self, clicks: list[tuple[Any, ...]], inbox: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(
            "INSERT INTO clicks (space_id, uid, link_id, source, created_ms, campaign_id,"
            " campaign_name, adset_id, ad_id, country, device, os, browser, placement,"
            " utm_source, utm_campaign, sub_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            clicks,
        )
        self.conn.executemany(
            "INSERT INTO inbox (space_id, dedup_key, event, uid, eid, value, currency,"
            " occurred_at_ms, received_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'api')",
            inbox,
        )
        clicks.clear()
        inbox.clear()


def run(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.dir or tempfile.mkdtemp()) / f"cube-catchup-{args.events}.db"
    for p in (path, Path(reports_path(str(path)))):
        p.unlink(missing_ok=True)
    conn = open_db(str(path), sync="OFF")
    with transaction(conn):
        space = spaces.create_space(conn, "bench-cube", START_MS).space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="bench_bot")
        link_ids = [links.create_link(conn, space, f"l{i}", spec, START_MS).id for i in range(20)]
    seeder = Seeder(conn, space, link_ids, args.events)
    started = time.perf_counter()
    with transaction(conn):
        seeder.write(args.events)
    log(f"seeded {args.events:,} events in {time.perf_counter() - started:.1f} s: {path}")
    rollup = open_rollup(str(path), cube=True)  # XTRACKER_REPORT_CUBE on
    started = time.perf_counter()
    fed = catch_up(rollup)
    rebuild_s = time.perf_counter() - started
    log(f"rebuild: {fed:,} events in {rebuild_s:.1f} s = {fed / rebuild_s:,.0f} events/s")
    fed_more, more_s = 0, 0.0
    if args.rate:  # the traffic after, at ``rate`` events per second (1.3 per click)
        seeder.gap_ms = 1000 * 1.3 / args.rate
    while fed_more < args.more:
        with transaction(conn):
            seeder.write(args.round)
        started = time.perf_counter()
        fed_more += catch_up(rollup)
        more_s += time.perf_counter() - started
    log(f"incremental: {fed_more:,} events in {more_s:.1f} s = {fed_more / more_s:,.0f} events/s")
    cube_rows = rollup.execute("SELECT count(*) FROM reports.cube").fetchone()[0]
    rollup.close()
    conn.close()
    return {
        "events": fed, "rebuild_s": round(rebuild_s, 2), "rebuild_per_s": round(fed / rebuild_s),
        "incremental_events": fed_more, "incremental_per_s": round(fed_more / more_s),
        "cube_rows": cube_rows,
        "reports_file_mb": round(Path(reports_path(str(path))).stat().st_size / 1e6, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--more", type=int, default=50_000)
    p.add_argument("--round", type=int, default=2_000)
    p.add_argument("--rate", type=float, help="the added events come at this many per second"
                   " (as while ingest runs at bench/ingest.py's rate; default: spread as the"
                   " seeded ones, over the days)")  # fmt: skip
    p.add_argument("--dir", help="where the database is written (default: a temp directory)")
    print(json.dumps(run(p.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
