"""Click throughput of the real XTRACKER server (``GET /r/<slug>``, ``GET /l/<slug>``), as a ratio
to a bare baseline, with p50/p99 latency of both.

What it measures
    Requests per second and latency that ``xtracker serve`` sustains on its click paths under
    concurrency (wrk, 64 connections by default), as phone browsers with no cookies: every
    request is a first visit, so every answer mints a uid and records a click (link lookup,
    visitor capture, the click row committed to SQLite, WAL, ``synchronous=FULL`` by default,
    before the answer, and the two cookies set; the user agent is checked for bots, and the
    per-address click limit is off, since all of wrk is one address: ``--click-limit-per-ip 0``
    in ``_harness.xtracker_serve_argv``). ``/r/<slug>`` answers the 302 to
    ``https://t.me/<bot>?start=fb_<uid>``; ``/l/<slug>`` renders the landing page (~1 KB) with
    that link. In the same run, the same load goes to ``bench/bare_app.py``: bare Starlette
    routes on the same uvicorn options that answer the same 302 (``Location`` with 16 random
    url-safe characters, ``Cache-Control: no-store``), or a page of the same size with a random
    uid in its t.me link, and record nothing.

Why a ratio
    Absolute requests/s depend on the machine (CPU, disk fsync latency, what else runs). The
    baseline is the ceiling for *any* Python ASGI handler on this machine at this moment, so
    ``ours / baseline`` is the part we control: what our own code and the durable write cost.
    The two sides run alternately (baseline, ours, baseline, ours, ...) so that drift of the
    machine hits both; the median per side is compared (best is printed too). Target (issue 3):
    ratio >= 0.5 on ``/r`` with ``synchronous=FULL``; ``/l`` is measured the same way.

Integrity
    A run with non-2xx/3xx answers or socket errors is reported loudly (exit status 1). One
    request per path and side is checked by hand first (status, the deeplink's shape,
    ``Cache-Control: no-store``). At the end the click rows are counted per source (``redirect``
    for /r, ``landing`` for /l): every 302/200 our server gave must have its row (fewer rows
    means handed-out uids were lost, or requests were taken for crawlers). A few more rows than
    answers is normal: requests in flight when wrk stopped were committed but not counted.

Everything listens on and talks to 127.0.0.1 only.

    python bench/clicks.py [--path r|l|both] [--duration 10] [--connections 64] [--rounds 3]
                           [--sync FULL] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from _harness import (
    BENCH_DIR,
    Server,
    WrkRun,
    bench_env,
    create_space,
    describe,
    ensure_wrk,
    filesystem_of,
    http_request,
    log,
    print_problems,
    run_script,
    run_wrk,
    start_pair,
    xtracker_cli,
)

LUA_SCRIPT = BENCH_DIR / "get_clicks.lua"
TARGET_RATIO = 0.5
SLUG = "hot"
BOT = "offer_bot"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
DEEPLINK = re.compile(rf"https://t\.me/{BOT}\?start=fb_([A-Za-z0-9_-]{{8,61}})")
#: The click ``source`` each path records.
SOURCES = {"r": "redirect", "l": "landing"}
SIDES = ("baseline", "xtracker")


# --------------------------------------------------------------------------- checks


def bare_ok(url: str) -> bool:
    return http_request(f"{url}/r/{SLUG}")[0] == 302


def check_answer(side: str, path: str, url: str, user_agent: str) -> None:
    """One request by hand: the answer a browser gets is the one we mean to measure."""
    status, headers, body = http_request(f"{url}/{path}/{SLUG}", headers={"User-Agent": user_agent})
    where = f"{side} GET /{path}/{SLUG}"
    if headers.get("cache-control") != "no-store":
        raise RuntimeError(f"{where}: Cache-Control {headers.get('cache-control')!r}")
    if path == "r":
        location = headers.get("location", "")
        if status != 302 or not DEEPLINK.fullmatch(location):
            raise RuntimeError(f"{where} answered {status}, Location {location!r}")
    elif status != 200 or not DEEPLINK.search(body.decode("utf-8", "replace")):
        raise RuntimeError(f"{where} answered {status} without the deeplink: {body[:300]!r}")


# --------------------------------------------------------------------------- report


@dataclass
class PathReport:
    path: str  # "/r/hot" or "/l/hot"
    baseline_rps: float  # median of the measured runs
    xtracker_rps: float
    ratio: float
    baseline_best_rps: float
    xtracker_best_rps: float
    ratio_best: float
    baseline_p50_ms: float  # medians of the measured runs' percentiles
    baseline_p99_ms: float
    xtracker_p50_ms: float
    xtracker_p99_ms: float
    target_ratio: float
    meets_target: bool
    xtracker_acknowledged: int  # 302/200 answers of our server, warm-up and sanity included
    click_rows: int  # rows with this path's source
    rows_lost: int  # acknowledged but not in the clicks table: must be 0


@dataclass
class Report:
    sync: str
    journal_mode: str
    filesystem: str
    duration_s: float
    connections: int
    threads: int
    rounds: int
    user_agent: str
    paths: dict[str, PathReport]
    clean: bool  # no errors, no lost rows
    problems: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def path_report(path: str, runs: list[WrkRun], acknowledged: int, rows: int) -> PathReport:
    measured = {s: [r for r in runs if r.side == s and not r.warmup] for s in SIDES}

    def med(side: str, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in measured[side]))

    base, ours = med("baseline", "requests_per_s"), med("xtracker", "requests_per_s")
    base_best, ours_best = (max(r.requests_per_s for r in measured[s]) for s in SIDES)
    ratio = ours / base if base else 0.0
    return PathReport(
        path=f"/{path}/{SLUG}",
        baseline_rps=base,
        xtracker_rps=ours,
        ratio=ratio,
        baseline_best_rps=base_best,
        xtracker_best_rps=ours_best,
        ratio_best=ours_best / base_best if base_best else 0.0,
        baseline_p50_ms=med("baseline", "p50_ms"),
        baseline_p99_ms=med("baseline", "p99_ms"),
        xtracker_p50_ms=med("xtracker", "p50_ms"),
        xtracker_p99_ms=med("xtracker", "p99_ms"),
        target_ratio=TARGET_RATIO,
        meets_target=ratio >= TARGET_RATIO,
        xtracker_acknowledged=acknowledged,
        click_rows=rows,
        rows_lost=max(0, acknowledged - rows),
    )


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 78
    print(line, file=out)
    print(
        f"GET clicks as a browser without cookies, wrk {report.threads} thread(s), "
        f"{report.connections} connections, {report.duration_s:g} s x {report.rounds} round(s) "
        "per side",
        file=out,
    )
    print(
        f"SQLite synchronous={report.sync}, journal_mode={report.journal_mode}, "
        f"file system {report.filesystem}",
        file=out,
    )
    for p in report.paths.values():
        print(line, file=out)
        verdict = "meets" if p.meets_target else "BELOW"
        print(f"{p.path}", file=out)
        print(
            f"  baseline (bare Starlette) : {p.baseline_rps:>9,.0f} req/s  (median; best "
            f"{p.baseline_best_rps:,.0f})  p50 {p.baseline_p50_ms:.1f} ms  "
            f"p99 {p.baseline_p99_ms:.1f} ms",
            file=out,
        )
        print(
            f"  xtracker                  : {p.xtracker_rps:>9,.0f} req/s  (median; best "
            f"{p.xtracker_best_rps:,.0f})  p50 {p.xtracker_p50_ms:.1f} ms  "
            f"p99 {p.xtracker_p99_ms:.1f} ms",
            file=out,
        )
        print(
            f"  ratio xtracker/baseline   : {p.ratio:>9.2f}  ({verdict} target "
            f">= {p.target_ratio:g}; best/best {p.ratio_best:.2f})",
            file=out,
        )
        print(
            f"  click rows / answered     : {p.click_rows} / {p.xtracker_acknowledged} "
            f"({p.click_rows - p.xtracker_acknowledged:+d}: in flight when wrk stopped)",
            file=out,
        )
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="GET /r/<slug> and /l/<slug> throughput and latency of xtracker serve vs "
        "bare Starlette routes."
    )
    p.add_argument("--path", choices=["r", "l", "both"], default="both", help="which path(s)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per side")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (leave cores to servers)")
    p.add_argument("--rounds", type=int, default=3, help="measured runs per side, alternated")
    p.add_argument(
        "--sync",
        default="FULL",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        type=str.upper,
        help="SQLite synchronous mode of our server",
    )
    p.add_argument("--user-agent", default=IPHONE_SAFARI, help="the browser wrk pretends to be")
    p.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where the database goes (default: the system temp dir)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (db and logs)")
    p.add_argument(
        "--fail-below",
        type=float,
        default=None,
        metavar="RATIO",
        help="exit with status 2 when a path's ratio is below RATIO",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.connections < args.threads or args.rounds < 1 or args.duration < 1:
        p.error("need --connections >= --threads, --rounds >= 1 and --duration >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = ["r", "l"] if args.path == "both" else [args.path]
    wrk = ensure_wrk()
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="xtracker-bench-", dir=args.tmpdir))
        if args.keep:
            log(f"keeping {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        db = tmp / "x.db"
        space = create_space(db)
        xtracker_cli(
            [
                "link",
                "create",
                "--space",
                str(space["id"]),
                "--slug",
                SLUG,
                "--kind",
                "bot",
                "--target",
                BOT,
                "--db",
                str(db),
                "--json",
            ]
        )
        env = bench_env()

        runs: list[tuple[str, WrkRun]] = []
        acknowledged = dict.fromkeys(paths, 0)  # 302/200 answers of our server, per path
        with ExitStack() as servers:  # leaving it stops both servers, also on errors/Ctrl-C
            ours, bare = start_pair(
                servers, db=db, sync=args.sync, env=env, workdir=tmp, bare_ok=bare_ok
            )
            sides: dict[str, Server] = {"baseline": bare, "xtracker": ours}
            for path in paths:
                for side, server in sides.items():
                    check_answer(side, path, server.url, args.user_agent)
                acknowledged[path] += 1

            for path in paths:
                plan = [(side, True) for side in SIDES] if args.warmup >= 1 else []
                plan += [(side, False) for _ in range(args.rounds) for side in SIDES]
                for side, warmup in plan:
                    run = run_wrk(
                        wrk,
                        sides[side].url,
                        script=LUA_SCRIPT,
                        script_args=[f"/{path}/{SLUG}", args.user_agent],
                        side=side,
                        warmup=warmup,
                        duration=args.warmup if warmup else args.duration,
                        connections=args.connections,
                        threads=args.threads,
                    )
                    log(describe(run, f"/{path}  "))
                    runs.append((path, run))
                    if side == "xtracker":
                        acknowledged[path] += run.ok_responses
                    for server in sides.values():
                        if server.proc.poll() is not None:
                            raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
        # Our server was stopped gracefully (SIGINT: the writer drains); count what it stored.
        conn = sqlite3.connect(db)
        try:
            rows_by_source = {
                str(source): int(n)
                for source, n in conn.execute(
                    "SELECT source, count(*) FROM clicks GROUP BY source"
                ).fetchall()
            }
            journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        finally:
            conn.close()
        filesystem = filesystem_of(tmp)

    problems = [
        f"/{path} {r.side} {'warm-up' if r.warmup else 'run'}: {r.non2xx} non-2xx/3xx "
        f"responses, socket errors {r.socket_errors}"
        for path, r in runs
        if not r.clean
    ]
    reports: dict[str, PathReport] = {}
    for path in paths:
        path_runs = [r for p, r in runs if p == path]
        rows = rows_by_source.get(SOURCES[path], 0)
        report = path_report(path, path_runs, acknowledged[path], rows)
        reports[path] = report
        if report.rows_lost:
            problems.append(
                f"/{path}: {report.rows_lost} answered clicks are NOT in the clicks table "
                "(lost, or taken for a crawler)"
            )
        bound = args.connections * sum(1 for r in path_runs if r.side == "xtracker")
        if rows - acknowledged[path] > bound:
            problems.append(
                f"/{path}: {rows - acknowledged[path]} more click rows than answers "
                f"(more than the {bound} that could have been in flight)"
            )
    report_all = Report(
        sync=args.sync,
        journal_mode=journal_mode,
        filesystem=filesystem,
        duration_s=args.duration,
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
        user_agent=args.user_agent,
        paths=reports,
        clean=not problems,
        problems=problems,
        runs=[{"path": p, **asdict(r), "ok_responses": r.ok_responses} for p, r in runs],
    )
    if args.json:
        print(json.dumps(asdict(report_all), indent=2))
    else:
        print_summary(report_all, sys.stdout)
    if problems:
        return 1
    if args.fail_below is not None and any(p.ratio < args.fail_below for p in reports.values()):
        return 2
    return 0


if __name__ == "__main__":
    run_script(main)
