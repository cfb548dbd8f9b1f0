"""How fast the reports answer on a big space, and whether that grows with history (issue 17 §6).

What it measures
    A media buyer's month (bench/_reports_seed.py: 10,000 ads in 300 campaigns on 100 links, ads
    living a span of days, clicks with every dimension a report groups by, uids reaching 0 to 4
    steps, deposits in USD and EUR, a few reversals, ~1 % of events without a click) in a real
    SQLite file with the real schema, at each size of ``--sizes`` (events in the inbox; the same
    campaigns and ads at every size, only more traffic). The report rollup is built by the real
    catch-up (``store.sqlite.rollup.catch_up``, what the server runs in the background), and
    its time printed. Then, on a store opened like the server's (``open_store``: its reader
    threads and connections, its rollup caught up and its planner statistics fresh), each report
    once to warm the cache, then ``--repeat`` times, the median printed (a report that took over
    ``SLOW_S`` the first time is not run again: that run is its figure):

    grouped reports, ``Store.group_counts`` (cohort mode, UTC, the last 7 days but where said):
      g_funnel         by=() (the whole space as one group)
      g_link           by=link
      g_campaign       by=campaign
      g_ad             by=ad (10,000 ads)
      g_campaign_ad    by=campaign,ad (nested)
      g_filtered       by=campaign, filtered campaign=<the 5 busiest campaigns> and country=US,CA
      g_day            by=day over the 30 days
      g_hour           by=hour over the last 7 days (168 groups)
      g_day_kolkata    by=day over the 30 days in Asia/Kolkata (+5:30: days not on UTC hours)
    the existing reports, ``services.reports`` (what the admin API and the CLI answer):
      funnel           the space funnel of the last 7 days, with its previous window (the gauge)
      funnel_link      the same, for the link of the busiest campaign
      links            the per-link table of the last 7 days
      series           contact uids per hour over the last 7 days (168 buckets)
      series_day       deposit uids per day over 30 days
      revenue_day      USD revenue per day over 30 days
    and the same as a user asks them, the last 7 days ending now (``NOW_MS``: 05:07 UTC, off
    every grid): g_link_now, g_ad_now, g_campaign_ad_now, g_filtered_now, funnel_now, links_now,
    series_now; and reports on one dimension alone, read from its value rows:
      g_country_now          by=country, the last 7 days ending now
      g_country_day_kolkata  by=day,country over the last 7 days in Asia/Kolkata
      g_hour_us_now          by=hour, filtered country=US, the last 7 days ending now

Targets (issue 17 §6): every median under 200 ms on this machine, and each report at the largest
size within 2x of the same report at the smallest (the report reads pre-aggregated rows, so its
time does not grow with the events).

``group_counts``: until the Store has it (issue 17 §1), ``PendingGroupCounts`` stands in with the
same signature and answers what the existing store operations can (by=() and by=link, no
filters); the other grouped reports are printed ``n/a`` and the run does not pass. Once the
store has the operation, it is called and the stand-in is unused.

Seeding writes rows with plain SQL in one transaction. The seeded file is kept in ``--dir`` (the
temp directory by default), named after the seed's parameters and ``SEED_VERSION``, and reused by
the next run (``--fresh`` seeds again); its size and the seed and catch-up times are printed.

    python bench/reports.py [--sizes 1000000,10000000 | --events N] [--links 100]
                            [--campaigns 300] [--ads 10000] [--days 30] [--repeat 7]
                            [--only g_ad,funnel,...] [--dir DIR] [--fresh] [--no-cube]
                            [--chunk EVENTS] [--json]

Exit status: 0 every target met, 1 not.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from xtracker_server.domain.filters import parse_filters
from xtracker_server.domain.groups import GroupCounts, GroupQuery
from xtracker_server.domain.reports import Bucket, FunnelMode, Window
from xtracker_server.services import reports
from xtracker_server.store.api import Store, open_store
from xtracker_server.store.sqlite.db import reports_path
from xtracker_server.store.sqlite.rollup import CHUNK, catch_up, open_rollup


def _load_seeding() -> ModuleType:
    name = "_reports_seed"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


seeding = _load_seeding()
END_MS: int = seeding.END_MS
DAY_MS: int = seeding.DAY_MS
#: "Now" for the reports of a window that ends now (``*_now``), as a user's "last 7 days" asks
#: them: 18 h 53 min before the seed's end, so off every grid (the window's head most of a UTC
#: day, its tail 5 h 7 min).
NOW_MS: int = END_MS - (18 * 60 + 53) * 60_000
TARGET_MS = 200.0
#: The largest size's median over the smallest's, at most.
TARGET_RATIO = 2.0
#: A report whose first (warming) run takes longer than this (seconds) is not run again.
SLOW_S = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PendingGroupCounts:
    """A stand-in for ``Store.group_counts`` (issue 17 §1) while the store has none, with its
    signature: it answers by=() from ``funnel_counts`` and by=link from ``link_rows`` (the
    per-link table counts in activity mode whatever the query's mode, and the revenue comes as
    one day, the window's first), and nothing else (None: the report is printed ``n/a``).
    Replaced by the store's own operation as soon as there is one (``grouped``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def group_counts(self, space_id: int, query: GroupQuery) -> list[GroupCounts] | None:
        if query.filters:
            return None
        day = time.strftime("%Y-%m-%d", time.gmtime(query.window.from_ms / 1000))
        if query.by == ():
            c = await self.store.funnel_counts(space_id, query.window, mode=query.mode)
            return [GroupCounts(
                key=(), clicks=c.clicks, uids={s: n for s, n in c.uids.items() if s != "click"},
                deposits=c.deposits, first_deposits=c.first_deposits,
                revenue={k: {day: v} for k, v in c.revenue.items()},
                reversed_deposits=c.reversed_deposits,
                reversed_revenue={k: {day: v} for k, v in c.reversed_revenue.items()},
            )]  # fmt: skip
        if query.by == ("link",):
            rows = await self.store.link_rows(space_id, query.window)
            return [GroupCounts(
                key=(r.link,), clicks=r.clicks, uids=r.uids, deposits=r.deposits,
                revenue={k: {day: v} for k, v in r.revenue.items()},
                reversed_deposits=r.reversed_deposits,
                reversed_revenue={k: {day: v} for k, v in r.reversed_revenue.items()},
            ) for r in rows]  # fmt: skip
        return None


def grouped(store: Store) -> Callable[[int, GroupQuery], Awaitable[list[GroupCounts] | None]]:
    """``store.group_counts``, or the stand-in's while the store has none."""
    own = getattr(store, "group_counts", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    return PendingGroupCounts(store).group_counts


def file_name(args: argparse.Namespace, events: int) -> str:
    return (f"xtracker-bench-reports-v{seeding.SEED_VERSION}-{events}-{args.links}-"
            f"{args.campaigns}-{args.ads}-{args.days}.db")  # fmt: skip


def seeded_file(args: argparse.Namespace, events: int) -> tuple[Path, dict[str, Any]]:
    """The seeded file of ``events`` events (seeded now, or kept from a run before), with its
    rollup caught up; and what that took (None: done by an earlier run)."""
    path = Path(args.dir or tempfile.gettempdir()) / file_name(args, events)
    took: dict[str, Any] = {"seed_s": None, "catch_up_s": None, "caught_up": 0}
    if path.exists() and not args.fresh:
        log(f"reusing the seeded {path} (--fresh to seed again)")
    else:
        path.unlink(missing_ok=True)
        Path(reports_path(str(path))).unlink(missing_ok=True)
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        log(f"seeding {events:,} events: {args.ads:,} ads in {args.campaigns} campaigns,"
            f" {args.links} links, {args.days} days ...")  # fmt: skip
        started = time.perf_counter()
        seeding.seed(partial, events=events, links_n=args.links, campaigns=args.campaigns,
                     ads=args.ads, days=args.days)  # fmt: skip
        partial.rename(path)
        took["seed_s"] = round(time.perf_counter() - started, 1)
        log(f"seeded in {took['seed_s']} s: {path}")
    started = time.perf_counter()
    # what the server does in the background, all at once
    rollup = open_rollup(str(path), cube=args.cube)
    try:
        took["caught_up"] = catch_up(rollup, chunk=args.chunk)  # 0: caught up already
    finally:
        rollup.close()
    if took["caught_up"]:
        took["catch_up_s"] = round(time.perf_counter() - started, 1)
        rate = took["caught_up"] / max(took["catch_up_s"], 0.1)
        log(f"rolled up {took['caught_up']:,} events in {took['catch_up_s']} s"
            f" ({rate:,.0f} events/s)")  # fmt: skip
    took["file_mb"] = round(sum(p.stat().st_size for p in (path, Path(reports_path(str(path))))
                                if p.exists()) / 1e6)  # fmt: skip
    return path, took


def busiest(args: argparse.Namespace) -> tuple[list[str], str]:
    """The ids of the 5 campaigns with the most clicks in the last 7 days, and the slug of the
    first one's link."""
    plan = seeding.layout(campaigns=args.campaigns, ads=args.ads, links=args.links, days=args.days)
    ids: list[str] = seeding.top_campaigns(plan, last_days=7, count=5)
    link = next(c.link for c in plan.campaigns if c.campaign_id == ids[0])
    return ids, f"ad{link:03d}"


def group_queries(args: argparse.Namespace) -> dict[str, GroupQuery]:
    week = Window(END_MS - 7 * DAY_MS, END_MS)
    month = Window(END_MS - args.days * DAY_MS, END_MS)
    now_week = Window(NOW_MS - 7 * DAY_MS, NOW_MS)
    busiest_ids, _ = busiest(args)
    filters = parse_filters([f"campaign={','.join(busiest_ids)}", "country=US,CA"])
    cohort = FunnelMode.COHORT
    return {
        "g_funnel": GroupQuery(week, (), mode=cohort),
        "g_link": GroupQuery(week, ("link",), mode=cohort),
        "g_campaign": GroupQuery(week, ("campaign",), mode=cohort),
        "g_ad": GroupQuery(week, ("ad",), mode=cohort),
        "g_campaign_ad": GroupQuery(week, ("campaign", "ad"), mode=cohort),
        "g_filtered": GroupQuery(week, ("campaign",), filters, mode=cohort),
        "g_day": GroupQuery(month, ("day",), mode=cohort),
        "g_hour": GroupQuery(week, ("hour",), mode=cohort),
        "g_day_kolkata": GroupQuery(month, ("day",), tz="Asia/Kolkata", mode=cohort),
        # the last 7 days ending now (NOW_MS): read from the cube inside its grid, the minutes
        # at the ends from the events; a dimension's rows with campaign are UTC days, so the
        # filtered report's cut days are counted from the events (docs/reports.md)
        "g_link_now": GroupQuery(now_week, ("link",), mode=cohort),
        "g_ad_now": GroupQuery(now_week, ("ad",), mode=cohort),
        "g_campaign_ad_now": GroupQuery(now_week, ("campaign", "ad"), mode=cohort),
        "g_filtered_now": GroupQuery(now_week, ("campaign",), filters, mode=cohort),
        # one dimension alone: its value rows, per 15 minutes, answer any zone and window
        "g_country_now": GroupQuery(now_week, ("country",), mode=cohort),
        "g_country_day_kolkata": GroupQuery(
            week, ("day", "country"), tz="Asia/Kolkata", mode=cohort
        ),
        "g_hour_us_now": GroupQuery(
            now_week, ("hour",), parse_filters(["country=US"]), mode=cohort
        ),
    }


def service_reports(
    store: Store, args: argparse.Namespace
) -> dict[str, Callable[[], Awaitable[Any]]]:
    _, slug = busiest(args)
    days = args.days
    week: dict[str, Any] = {"now_ms": END_MS, "days": 7}
    month: dict[str, Any] = {"now_ms": END_MS, "days": days}
    now: dict[str, Any] = {"now_ms": NOW_MS, "days": 7}
    return {
        "funnel": lambda: reports.funnel_report(store, 1, **week),
        "funnel_link": lambda: reports.funnel_report(store, 1, link=slug, **week),
        "links": lambda: reports.links_report(store, 1, **week),
        "series": lambda: reports.series_report(
            store, 1, metric="contact", bucket=Bucket.HOUR, **week
        ),
        "series_day": lambda: reports.series_report(
            store, 1, metric="deposit", bucket=Bucket.DAY, **month
        ),
        "revenue_day": lambda: reports.series_report(
            store, 1, metric="revenue", currency="USD", bucket=Bucket.DAY, **month
        ),
        "funnel_now": lambda: reports.funnel_report(store, 1, **now),
        "links_now": lambda: reports.links_report(store, 1, **now),
        "series_now": lambda: reports.series_report(
            store, 1, metric="contact", bucket=Bucket.HOUR, **now
        ),
    }


def summary(answer: Any) -> dict[str, Any] | None:
    """What a report answered, in a few numbers (that it answered, and about what)."""
    if answer is None:
        return None
    if isinstance(answer, list):
        return {"groups": len(answer), "clicks": sum(g.clicks for g in answer),
                "depositors": sum(g.depositors for g in answer)}  # fmt: skip
    if "points" in answer:
        return {"points": len(answer["points"])}
    if "links" in answer:
        return {"links": len(answer["links"]), "clicks": sum(r["clicks"] for r in answer["links"])}
    return {"clicks": answer["steps"][0]["uids"]}


async def measure(fn: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    answer = await fn()  # warms the page cache: the server's readers stay open and warm
    first = time.perf_counter() - started
    if answer is None:
        return {"median_ms": None, "answer": None}
    # A report slower than SLOW_S is not run again: its one (cold) run is its figure.
    runs = 1 if first > SLOW_S else repeat
    times = [first * 1000] if runs == 1 else []
    for _ in range(len(times), runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "best_ms": round(min(times), 1),
            "runs": runs, "answer": summary(answer)}  # fmt: skip


async def measure_file(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(str(path), writer_process=False, report_cube=args.cube)
    await store.open()
    try:
        # as a server that has run a while: its rollup caught up, the planner's statistics fresh
        await store.catch_up_reports()
        await store.refresh_stats()
        group_counts = grouped(store)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            name: functools.partial(group_counts, 1, q) for name, q in group_queries(args).items()
        }
        calls.update(service_reports(store, args))
        if args.only:
            unknown = set(args.only) - set(calls)
            if unknown:
                raise SystemExit(f"--only: no report {', '.join(sorted(unknown))}")
            calls = {name: fn for name, fn in calls.items() if name in args.only}
        results: dict[str, Any] = {}
        for name, fn in calls.items():
            results[name] = r = await measure(fn, args.repeat)
            shown = "n/a (the store has no group_counts yet)" if r["median_ms"] is None else (
                f"median {r['median_ms']:7.1f} ms (best {r['best_ms']:.1f}, {r['runs']} runs)"
                f"  {r['answer']}")  # fmt: skip
            log(f"  {name:18} {shown}")
        return results
    finally:
        await store.close()


def counts(path: Path) -> dict[str, int]:
    import sqlite3  # the bench reads the file's size the plain way (it is no server code)

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM clicks),"
            " (SELECT count(DISTINCT ad_id) FROM clicks), (SELECT count(*) FROM links)"
        ).fetchone()
    finally:
        conn.close()
    return dict(zip(("events", "clicks", "ads", "links"), row, strict=True))


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for events in args.sizes:
        path, took = seeded_file(args, events)
        log(f"{events:,} events: measuring (median of {args.repeat}) ...")
        sizes[str(events)] = {**counts(path), **took, "path": str(path),
                              "queries": asyncio.run(measure_file(path, args))}  # fmt: skip
    small, large = sizes[str(min(args.sizes))], sizes[str(max(args.sizes))]
    verdicts: dict[str, Any] = {}
    for name in large["queries"]:
        medians = [s["queries"][name]["median_ms"] for s in sizes.values()]
        a, b = small["queries"][name]["median_ms"], large["queries"][name]["median_ms"]
        ratio = None if a is None or b is None or len(sizes) < 2 else round(b / max(a, 0.1), 2)
        verdicts[name] = {
            "under_target": None not in medians and all(m < TARGET_MS for m in medians),
            "ratio": ratio,
            "ratio_ok": len(sizes) < 2 or (ratio is not None and ratio <= TARGET_RATIO),
        }
    return {
        "sizes": sizes,
        "repeat": args.repeat,
        "report_cube": args.cube,
        "target_ms": TARGET_MS,
        "target_ratio": TARGET_RATIO,
        "verdicts": verdicts,
        "ok": all(v["under_target"] and v["ratio_ok"] for v in verdicts.values()),
    }


def print_table(result: dict[str, Any]) -> None:
    sizes = result["sizes"]
    for events, s in sizes.items():
        made = "" if s["seed_s"] is None else f", seeded in {s['seed_s']} s"
        rolled = "" if s["catch_up_s"] is None else f", rolled up in {s['catch_up_s']} s"
        print(f"{int(events):,} events, {s['clicks']:,} clicks, {s['ads']:,} ads,"
              f" {s['links']} links: {s['file_mb']:,} MB{made}{rolled}")  # fmt: skip
    head = "".join(f"{int(e):>12,}" for e in sizes)
    print(f"median ms of {result['repeat']}: {'report':18}{head}   ratio")
    for name, v in result["verdicts"].items():
        cells = "".join(
            f"{'n/a' if m is None else f'{m:.1f}':>12}"
            for m in (s["queries"][name]["median_ms"] for s in sizes.values())
        )
        ratio = "" if v["ratio"] is None else f"{v['ratio']:.2f}x"
        answered = None not in (s["queries"][name]["median_ms"] for s in sizes.values())
        marks = ("ok" if v["under_target"] else "SLOW") + ("" if v["ratio_ok"] else " GROWS")
        marks = marks if answered else "n/a"

        print(f"{'':16}{name:18}{cells}  {ratio:>6}  {marks}")
    print(
        "all met" if result["ok"] else "NOT all met",
        f"(each under {TARGET_MS:.0f} ms, largest/smallest within {TARGET_RATIO:.0f}x)",
    )


def _sizes(text: str) -> list[int]:
    return sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=_sizes, help="events of each seed, comma-separated"
                   " (default: --events alone)")  # fmt: skip
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--links", type=int, default=100)
    p.add_argument("--campaigns", type=int, default=300)
    p.add_argument("--ads", type=int, default=10_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument(
        "--only",
        type=lambda t: [n.strip() for n in t.split(",") if n.strip()],
        help="measure only these reports (names as printed, comma-separated)",
    )
    p.add_argument("--dir", help="where the seeded files are kept (default: the temp directory)")
    p.add_argument("--fresh", action="store_true", help="seed again even if a file exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--chunk", type=int, default=CHUNK,
                   help="events per catch-up round of a new file's rollup (the server's"
                   f" default: {CHUNK:,}; a bigger round sums more shares per row written,"
                   " and builds a large file's cube faster)")  # fmt: skip
    p.add_argument(
        "--cube",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with the report cube (XTRACKER_REPORT_CUBE's default) or without (--no-cube);"
        " a kept rollup built the other way is built again",
    )
    args = p.parse_args(argv)
    args.sizes = args.sizes or [args.events]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
