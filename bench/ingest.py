"""Sustained ``POST /events`` throughput of the real XTRACKER server, as a ratio to a bare baseline.

What it measures
    Requests per second that ``xtracker serve`` acknowledges on ``POST /events`` under
    concurrency (wrk, 64 connections by default), every request a distinct deposit that is
    authenticated, validated, deduplicated and committed to SQLite (WAL, ``synchronous=FULL`` by
    default) before the answer. In the same run, the same load goes to ``bench/bare_app.py``: a
    bare Starlette route on the same uvicorn options that parses the same JSON and stores nothing.

Why a ratio
    Absolute requests/s depend on the machine (CPU, disk fsync latency, what else runs). The
    baseline is the ceiling for *any* Python ASGI handler on this machine at this moment, so
    ``ours / baseline`` is the part we control: what our own code and the durable write cost.
    The two sides run alternately (baseline, ours, baseline, ours, ...) so that drift of the
    machine hits both; the median per side is compared (best is printed too).

Integrity
    A run with non-2xx answers or socket errors is reported loudly (and the exit status is 1).
    At the end the inbox rows in the database are counted: every 2xx answer must have its row
    (rows < acknowledged means acknowledged events were lost). A few more rows than
    acknowledged is normal: requests still in flight when wrk stopped were committed but not
    counted by wrk (at most one per connection per run).

Everything listens on and talks to 127.0.0.1 only.

    python bench/ingest.py [--duration 10] [--connections 64] [--rounds 3] [--sync FULL]
                            [--no-cube] [--json]
"""

from __future__ import annotations

import argparse
import json
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
    WrkRun,
    add_cube_argument,
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
    with_cube,
)

LUA_SCRIPT = BENCH_DIR / "post_events.lua"
TARGET_RATIO = 0.4


def bare_ok(url: str) -> bool:
    return http_request(f"{url}/events", body={"event": "contact"})[0] == 200


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    sync: str
    report_cube: bool
    journal_mode: str
    filesystem: str
    duration_s: float
    connections: int
    threads: int
    rounds: int
    baseline_rps: float  # median of the measured runs
    xtracker_rps: float
    ratio: float
    baseline_best_rps: float
    xtracker_best_rps: float
    ratio_best: float
    target_ratio: float
    meets_target: bool
    xtracker_acknowledged: int  # 2xx answers wrk saw from our server, warm-up included
    inbox_rows: int
    rows_lost: int  # acknowledged but not in the inbox: must be 0
    clean: bool  # no non-2xx, no socket errors, no lost rows
    problems: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 72
    print(line, file=out)
    print(
        f"POST /events, wrk {report.threads} thread(s), {report.connections} connections, "
        f"{report.duration_s:g} s x {report.rounds} round(s) per side",
        file=out,
    )
    print(
        f"SQLite synchronous={report.sync}, journal_mode={report.journal_mode}, "
        f"file system {report.filesystem}, report cube {'on' if report.report_cube else 'off'}",
        file=out,
    )
    print(line, file=out)
    print(
        f"baseline (bare Starlette) : {report.baseline_rps:>9,.0f} req/s  (median; best "
        f"{report.baseline_best_rps:,.0f})",
        file=out,
    )
    print(
        f"xtracker                  : {report.xtracker_rps:>9,.0f} req/s  (median; best "
        f"{report.xtracker_best_rps:,.0f})",
        file=out,
    )
    verdict = "meets" if report.meets_target else "BELOW"
    print(
        f"ratio xtracker/baseline   : {report.ratio:>9.2f}  ({verdict} target "
        f">= {report.target_ratio:g}; best/best {report.ratio_best:.2f})",
        file=out,
    )
    print(
        f"inbox rows / acknowledged : {report.inbox_rows} / {report.xtracker_acknowledged} "
        f"({report.inbox_rows - report.xtracker_acknowledged:+d}: in flight when wrk stopped)",
        file=out,
    )
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="POST /events throughput of xtracker serve vs a bare Starlette baseline."
    )
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
    add_cube_argument(p, "our server")
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
        help="exit with status 2 when the ratio is below RATIO",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.connections < args.threads or args.rounds < 1 or args.duration < 1:
        p.error("need --connections >= --threads, --rounds >= 1 and --duration >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="xtracker-bench-", dir=args.tmpdir))
        if args.keep:
            log(f"keeping {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        db = tmp / "x.db"
        space = create_space(db)
        bearer = space["bearer"]
        env = with_cube(bench_env(), args.cube)

        runs: list[WrkRun] = []
        acknowledged = 0  # 2xx answers of our server, all runs and the sanity request
        with ExitStack() as servers:  # leaving it stops both servers, also on errors/Ctrl-C
            ours, bare = start_pair(
                servers, db=db, sync=args.sync, env=env, workdir=tmp, bare_ok=bare_ok
            )

            # One request by hand first: the credential works and the answer is as expected.
            status, _, body = http_request(
                f"{ours.url}/events",
                headers={"Authorization": f"Bearer {bearer}"},
                body={
                    "uid": "u0",
                    "event": "deposit",
                    "value": "25.00",
                    "currency": "USD",
                    "eid": "bench-sanity",
                },
            )
            if status != 200 or json.loads(body).get("status") != "queued":
                raise RuntimeError(f"sanity POST /events answered {status}: {body!r}")
            acknowledged += 1

            sides = {"baseline": bare, "xtracker": ours}
            plan = [(side, True) for side in sides] if args.warmup >= 1 else []
            plan += [(side, False) for _ in range(args.rounds) for side in sides]
            for n, (side, warmup) in enumerate(plan):
                run = run_wrk(
                    wrk,
                    sides[side].url,
                    script=LUA_SCRIPT,
                    script_args=[bearer, str(n)],
                    side=side,
                    warmup=warmup,
                    duration=args.warmup if warmup else args.duration,
                    connections=args.connections,
                    threads=args.threads,
                )
                log(describe(run))
                runs.append(run)
                if side == "xtracker":
                    acknowledged += run.ok_responses
                for server in sides.values():
                    if server.proc.poll() is not None:
                        raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
        # Our server was stopped gracefully (SIGINT: the writer drains); count what it stored.
        conn = sqlite3.connect(db)
        try:
            inbox_rows = int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
            journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        finally:
            conn.close()
        filesystem = filesystem_of(tmp)

    measured = {
        side: [r.requests_per_s for r in runs if r.side == side and not r.warmup]
        for side in ("baseline", "xtracker")
    }
    base_med, ours_med = (statistics.median(measured[s]) for s in ("baseline", "xtracker"))
    base_best, ours_best = (max(measured[s]) for s in ("baseline", "xtracker"))
    problems = [
        f"{r.side} {'warm-up' if r.warmup else 'run'}: {r.non2xx} non-2xx responses, "
        f"socket errors {r.socket_errors}"
        for r in runs
        if not r.clean
    ]
    rows_lost = max(0, acknowledged - inbox_rows)
    if rows_lost:
        problems.append(f"{rows_lost} acknowledged events are NOT in the inbox (data loss)")
    in_flight_bound = args.connections * sum(1 for r in runs if r.side == "xtracker")
    if inbox_rows - acknowledged > in_flight_bound:
        problems.append(
            f"{inbox_rows - acknowledged} more inbox rows than acknowledged "
            f"(more than the {in_flight_bound} that could have been in flight)"
        )
    ratio = ours_med / base_med if base_med else 0.0
    report = Report(
        sync=args.sync,
        report_cube=args.cube,
        journal_mode=journal_mode,
        filesystem=filesystem,
        duration_s=args.duration,
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
        baseline_rps=base_med,
        xtracker_rps=ours_med,
        ratio=ratio,
        baseline_best_rps=base_best,
        xtracker_best_rps=ours_best,
        ratio_best=ours_best / base_best if base_best else 0.0,
        target_ratio=TARGET_RATIO,
        meets_target=ratio >= TARGET_RATIO,
        xtracker_acknowledged=acknowledged,
        inbox_rows=inbox_rows,
        rows_lost=rows_lost,
        clean=not problems,
        problems=problems,
        runs=[{**asdict(r), "ok_responses": r.ok_responses} for r in runs],
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_summary(report, sys.stdout)
    if problems:
        return 1
    if args.fail_below is not None and ratio < args.fail_below:
        return 2
    return 0


if __name__ == "__main__":
    run_script(main)
