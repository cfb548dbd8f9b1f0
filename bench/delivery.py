"""Webhook deliveries per second of XTRACKER's outbox worker, as a ratio to plain httpx posting
the same bodies to the same sink.

What it measures
    N deposits (``--events``, 10,000 by default) go in through ``POST /events`` of ``xtracker
    serve --no-worker``; each fans out into one pending ``deliveries`` row for a webhook
    destination pointing at a local sink (``bench/sink.py``: a bare asyncio HTTP server that
    answers ``200 {"ok":true}`` and counts requests and distinct ``webhook-id`` headers). That
    database is the template of every round. A round of *ours* starts ``xtracker worker`` on a
    fresh copy of it and times from the worker's "running" line until the last row is ``sent``
    (its ``sent_ms``; rows are polled in the SQLite file): N / that time is deliveries/s. Each
    delivery is a claim under a lease, the context read, the Standard Webhooks body built and
    signed, the POST, and the row settled with its attempt recorded, committed (WAL,
    ``synchronous=FULL`` by default). A round of the *baseline* posts N bodies of the same size
    (a body and headers the sink captured from our worker, each with its own ``webhook-id``)
    with one plain ``httpx.AsyncClient``, in the same asyncio event loop type as the worker,
    with the worker's concurrency per destination (``DEFAULT_INFLIGHT``, 8 requests in flight),
    recording nothing: requests/s. A round of *plain aiohttp* does the same with one
    ``aiohttp.ClientSession``.

Why a ratio
    Absolute rates depend on the machine. The baseline (issue 4's) is plain httpx, a common
    Python sender, on this machine at this moment, with the same concurrency, sink and bodies.
    Our worker sends with aiohttp (xtracker_server/delivery/sender.py), which by itself posts
    several times faster than httpx, so a second reference is printed: *plain aiohttp*, the
    worker's own client recording nothing. ``ours / plain aiohttp`` is then what the outbox
    bookkeeping (leases, context reads, signing, the durable settle) leaves of the client's
    rate. Rounds alternate (ours, httpx, aiohttp, ours, ...; ours first because the baselines
    replay a body our worker sent) so that drift of the machine hits all; medians are compared
    (best is printed too). Target (issue 4): ours / plain httpx >= 0.5.

Integrity
    For ours: every row ends ``sent`` (none ``failed_permanently`` or left over), and the sink
    received at least N webhook requests with exactly N distinct ``webhook-id`` values (more
    requests than N would be redeliveries: reported). For the baseline: the sink counted
    exactly N requests, all answered 200. A round that misses any of it makes the exit
    status 1.

Everything listens on and talks to 127.0.0.1 only.

    python bench/delivery.py [--events 10000] [--rounds 3] [--sync FULL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import httpx
from _harness import (
    HOST,
    Server,
    bench_env,
    create_space,
    filesystem_of,
    free_port,
    healthz_ok,
    log,
    print_problems,
    run_script,
    running_server,
    running_sink,
    sink_reset,
    sink_stats,
    stop_process,
    xtracker_cli,
    xtracker_command,
    xtracker_serve_argv,
)

from xtracker_server.delivery.adapters import DEFAULT_INFLIGHT

TARGET_RATIO = 0.5
HOOK_PATH = "/hook"  # where our worker delivers
BASE_PATH = "/base"  # where the baseline posts
PRELOAD_CONCURRENCY = 32
POLL_S = 0.02


# --------------------------------------------------------------------------- template


async def _preload(port: int, bearer: str, count: int) -> list[str]:
    """POST ``count`` distinct deposits over keep-alive connections (raw HTTP/1.1: a Python
    HTTP client would be slower than the server); the problems, empty when all were queued."""
    problems: list[str] = []
    next_index = 0
    head = (
        f"POST /events HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {bearer}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    async def post_some() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while next_index < count and len(problems) < 10:
                i = next_index
                next_index += 1
                body = (
                    f'{{"uid":"u{i % 5000}","event":"deposit","value":"25.00",'
                    f'"currency":"USD","eid":"bench-tx-{i}"}}'
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
                if not lines[0].startswith("HTTP/1.1 200") or b'"queued"' not in text:
                    problems.append(f"event {i}: {lines[0]} {text[:200]!r}")
        finally:
            writer.close()

    await asyncio.wait_for(
        asyncio.gather(*(post_some() for _ in range(PRELOAD_CONCURRENCY))), 60 + count / 50
    )
    return problems


def build_template(tmp: Path, events: int, sync: str, env: dict[str, str]) -> tuple[Path, int, str]:
    """A database with one space, a webhook destination at the sink's ``HOOK_PATH`` and
    ``events`` pending deliveries to it. Returns (path, destination id, sink port)."""
    db = tmp / "template.db"
    space = create_space(db)
    sink_port = free_port()
    destination = json.loads(
        xtracker_cli(
            [
                "destination",
                "add",
                "--space",
                str(space["id"]),
                "--kind",
                "webhook",
                "--url",
                f"http://{HOST}:{sink_port}{HOOK_PATH}",
                "--allow-private-destinations",
                "--json",
                "--db",
                str(db),
            ],
            env=env,
        )
    )
    port = free_port()
    log(f"pre-loading {events:,} events through POST /events (serve --no-worker) ...")
    started = time.monotonic()
    with running_server(
        "preload",
        xtracker_serve_argv(db, port, "--no-worker", "--sync", sync),
        port,
        env,
        tmp,
        healthz_ok,
    ):
        problems = asyncio.run(_preload(port, space["bearer"], events))
    if problems:
        raise RuntimeError("pre-loading failed:\n" + "\n".join(problems))
    log(f"pre-loaded in {time.monotonic() - started:.1f} s")
    conn = sqlite3.connect(db)
    try:
        pending = conn.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
        ).fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file: copyable
    finally:
        conn.close()
    if pending != events:
        raise RuntimeError(f"{pending} pending deliveries after pre-loading {events} events")
    return db, int(destination["id"]), str(sink_port)


# --------------------------------------------------------------------------- rounds


@dataclass
class Round:
    side: str  # "xtracker", "baseline" (plain httpx) or "plain aiohttp"
    deliveries: int
    seconds: float
    per_s: float
    sink_requests: int  # what the sink counted on this side's path
    sink_distinct_ids: int
    sink_connections: int  # TCP connections the client opened to the sink
    problems: list[str] = field(default_factory=list)
    steady_per_s: float | None = None  # ours: first to last sent_ms


def _counts(db: Path) -> tuple[dict[str, int], int | None, int | None]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        by_status = {
            str(s): int(n)
            for s, n in conn.execute(
                "SELECT status, count(*) FROM deliveries GROUP BY status"
            ).fetchall()
        }
        first, last = conn.execute(
            "SELECT min(sent_ms), max(sent_ms) FROM deliveries WHERE status = 'sent'"
        ).fetchone()
    finally:
        conn.close()
    return by_status, first, last


def run_ours(
    template: Path, tmp: Path, n: int, events: int, sink: Server, env: dict[str, str]
) -> Round:
    db = tmp / f"round{n}.db"
    shutil.copyfile(template, db)
    sink_reset(sink)
    log_path = tmp / f"worker{n}.log"
    worker_env = {**env, "XTRACKER_ALLOW_PRIVATE_DESTINATIONS": "on"}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*xtracker_command(), "worker", "--db", str(db), "--poll-s", "0.05"],
            env=worker_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while b" running (db:" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
            time.sleep(0.005)
        started = time.time()
        deadline = time.monotonic() + 60 + events / 20
        while True:
            by_status, first, last = _counts(db)
            if by_status.get("sent", 0) >= events:
                break
            if by_status.get("failed_permanently") or by_status.get("retrying"):
                problems.append(f"deliveries not sent: {by_status}")
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker died:\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                problems.append(f"timed out: {by_status}")
                break
            time.sleep(POLL_S)
    finally:
        stop_process(proc)
    by_status, first, last = _counts(db)
    sent = by_status.get("sent", 0)
    seconds = (last / 1000 - started) if last else float("nan")
    paths, connections = sink_stats(sink)
    hook = paths.get(HOOK_PATH, {})
    requests, distinct = int(hook.get("requests", 0)), int(hook.get("distinct_ids", 0))
    if sent != events:
        problems.append(f"{sent} of {events} deliveries sent ({by_status})")
    if distinct != events:
        problems.append(f"the sink saw {distinct} distinct webhook-ids, not {events}")
    if requests < events:
        problems.append(f"the sink got only {requests} requests for {events} deliveries")
    elif requests > events:
        problems.append(f"{requests - events} redeliveries (same webhook-id) during the round")
    db.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return Round(
        side="xtracker",
        deliveries=sent,
        seconds=seconds,
        per_s=sent / seconds if seconds > 0 else 0.0,
        sink_requests=requests,
        sink_distinct_ids=distinct,
        sink_connections=connections,
        problems=problems,
        steady_per_s=(sent - 1) / ((last - first) / 1000)
        if first and last and last > first
        else None,
    )


async def _post_all(
    client_name: str, url: str, headers: dict[str, str], body: bytes, id_prefix: str, count: int
) -> tuple[float, int]:
    """``count`` POSTs, ``DEFAULT_INFLIGHT`` at a time, on one fresh client of ``client_name``
    (httpx or aiohttp); (seconds, answers that were not 200)."""
    started = time.perf_counter()
    bad = 0
    next_index = 0

    async def post_some(post: Callable[[dict[str, str]], Awaitable[int]]) -> None:
        nonlocal next_index, bad
        while next_index < count:
            i = next_index
            next_index += 1
            if await post({**headers, "webhook-id": f"{id_prefix}{i:08d}"}) != 200:
                bad += 1

    if client_name not in ("httpx", "aiohttp"):
        raise ValueError(f"unknown client {client_name!r}")
    if client_name == "httpx":
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:

            async def post_httpx(h: dict[str, str]) -> int:
                return (await client.post(url, content=body, headers=h)).status_code

            await asyncio.gather(*(post_some(post_httpx) for _ in range(DEFAULT_INFLIGHT)))
    else:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def post_aiohttp(h: dict[str, str]) -> int:
                async with session.post(url, data=body, headers=h) as response:
                    await response.read()
                    return response.status

            await asyncio.gather(*(post_some(post_aiohttp) for _ in range(DEFAULT_INFLIGHT)))
    return time.perf_counter() - started, bad


def run_baseline(
    side: str,
    sink: Server,
    sample_headers: dict[str, str],
    body: bytes,
    id_prefix: str,
    events: int,
) -> Round:
    sink_reset(sink)
    seconds, bad = asyncio.run(
        _post_all(
            "aiohttp" if side == "plain aiohttp" else "httpx",
            f"{sink.url}{BASE_PATH}",
            sample_headers,
            body,
            id_prefix,
            events,
        )
    )
    paths, connections = sink_stats(sink)
    base = paths.get(BASE_PATH, {})
    requests, distinct = int(base.get("requests", 0)), int(base.get("distinct_ids", 0))
    problems = []
    if bad:
        problems.append(f"{bad} answers were not 200")
    if requests != events or distinct != events:
        problems.append(f"the sink counted {requests} requests, {distinct} distinct ids")
    return Round(
        side=side,
        deliveries=events - bad,
        seconds=seconds,
        per_s=(events - bad) / seconds,
        sink_requests=requests,
        sink_distinct_ids=distinct,
        sink_connections=connections,
        problems=problems,
    )


def replayable(hook: dict[str, Any]) -> tuple[dict[str, str], bytes, str]:
    """The headers (without the per-request ones), body and an id prefix of the same length
    as our webhook-ids, from the sink's sample of what our worker sent."""
    headers: dict[str, str] = hook.get("sample_headers") or {}
    encoded = hook.get("sample_body_b64")
    if not headers or not encoded:
        raise RuntimeError("the sink captured no webhook from our worker")
    body = base64.b64decode(encoded)
    msg_id = headers.get("webhook-id", "")
    keep = {
        k: v
        for k, v in headers.items()
        if k in ("content-type", "user-agent", "webhook-timestamp", "webhook-signature")
    }
    return keep, body, msg_id[: max(0, len(msg_id) - 8)] or "evt_"


def describe(r: Round) -> str:
    text = (
        f"{r.side:<13} {r.per_s:>8,.0f} deliveries/s  {r.deliveries:>6} in {r.seconds:6.2f} s"
        f"  sink {r.sink_requests} requests, {r.sink_distinct_ids} ids,"
        f" {r.sink_connections} connections"
    )
    if r.steady_per_s is not None:
        text += f"  (first-to-last sent {r.steady_per_s:,.0f}/s)"
    if r.problems:
        text += "  !!! " + "; ".join(r.problems)
    return text


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    sync: str
    filesystem: str
    events: int
    rounds: int
    inflight: int
    body_bytes: int
    baseline_per_s: float  # medians
    xtracker_per_s: float
    ratio: float
    baseline_best_per_s: float
    xtracker_best_per_s: float
    ratio_best: float
    aiohttp_per_s: float  # median of plain aiohttp: the worker's own client, recording nothing
    ratio_to_aiohttp: float  # what the bookkeeping leaves of the client's own rate
    target_ratio: float
    meets_target: bool
    clean: bool
    problems: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 72
    print(line, file=out)
    print(
        f"webhook deliveries to a local sink, {report.events:,} per round x {report.rounds} "
        f"round(s) per side, {report.inflight} in flight, body {report.body_bytes} bytes",
        file=out,
    )
    print(f"SQLite synchronous={report.sync}, file system {report.filesystem}", file=out)
    print(line, file=out)
    print(
        f"baseline (plain httpx)    : {report.baseline_per_s:>8,.0f} requests/s  (median; best "
        f"{report.baseline_best_per_s:,.0f})",
        file=out,
    )
    print(
        f"xtracker worker           : {report.xtracker_per_s:>8,.0f} deliveries/s (median; "
        f"best {report.xtracker_best_per_s:,.0f})",
        file=out,
    )
    verdict = "meets" if report.meets_target else "BELOW"
    print(
        f"ratio xtracker/baseline   : {report.ratio:>8.2f}  ({verdict} target "
        f">= {report.target_ratio:g}; best/best {report.ratio_best:.2f})",
        file=out,
    )
    print(
        f"plain aiohttp (our client): {report.aiohttp_per_s:>8,.0f} requests/s  (median; "
        f"xtracker/plain aiohttp {report.ratio_to_aiohttp:.2f}: the cost of the bookkeeping)",
        file=out,
    )
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Webhook deliveries/s of the xtracker worker vs plain httpx, same sink."
    )
    p.add_argument("--events", type=int, default=10_000, help="deliveries per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side, alternated")
    p.add_argument(
        "--sync",
        default="FULL",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        type=str.upper,
        help="SQLite synchronous mode of the worker (and of the pre-loading server)",
    )
    p.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where the databases go (default: the system temp dir)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (template and logs)")
    p.add_argument(
        "--fail-below",
        type=float,
        default=None,
        metavar="RATIO",
        help="exit with status 2 when the ratio is below RATIO",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.events < 100 or args.rounds < 1:
        p.error("need --events >= 100 and --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds: list[Round] = []
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="xtracker-bench-", dir=args.tmpdir))
        if args.keep:
            log(f"keeping {tmp}")
        else:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        env = {**bench_env(), "XTRACKER_SYNC": args.sync}
        template, _, sink_port = build_template(tmp, args.events, args.sync, env)
        sink = cleanup.enter_context(running_sink(int(sink_port), env, tmp))
        replay: tuple[dict[str, str], bytes, str] | None = None
        for n in range(args.rounds):
            ours = run_ours(template, tmp, n, args.events, sink, env)
            log(describe(ours))
            rounds.append(ours)
            if replay is None:
                replay = replayable(sink_stats(sink)[0].get(HOOK_PATH, {}))
            for side in ("baseline", "plain aiohttp"):
                base = run_baseline(side, sink, *replay, args.events)
                log(describe(base))
                rounds.append(base)
        filesystem = filesystem_of(tmp)
    assert replay is not None

    sides = ("baseline", "xtracker", "plain aiohttp")
    per_side = {s: [r.per_s for r in rounds if r.side == s] for s in sides}
    base_med, ours_med, aiohttp_med = (statistics.median(per_side[s]) for s in sides)
    base_best, ours_best = (max(per_side[s]) for s in ("baseline", "xtracker"))
    problems = [f"{r.side} round: {p}" for r in rounds for p in r.problems]
    ratio = ours_med / base_med if base_med else 0.0
    report = Report(
        sync=args.sync,
        filesystem=filesystem,
        events=args.events,
        rounds=args.rounds,
        inflight=DEFAULT_INFLIGHT,
        body_bytes=len(replay[1]),
        baseline_per_s=base_med,
        xtracker_per_s=ours_med,
        ratio=ratio,
        baseline_best_per_s=base_best,
        xtracker_best_per_s=ours_best,
        ratio_best=ours_best / base_best if base_best else 0.0,
        aiohttp_per_s=aiohttp_med,
        ratio_to_aiohttp=ours_med / aiohttp_med if aiohttp_med else 0.0,
        target_ratio=TARGET_RATIO,
        meets_target=ratio >= TARGET_RATIO,
        clean=not problems,
        problems=problems,
        runs=[asdict(r) for r in rounds],
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
    run_script(main, "worker, sink and servers stopped")
