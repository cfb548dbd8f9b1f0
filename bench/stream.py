"""What open live streams cost ingest: ``POST /events`` p99 with 100 streams open, as a ratio to
the same with none.

What it measures
    One real ``xtracker serve`` (SQLite, ``synchronous=FULL`` by default, no delivery worker:
    there are no destinations) and two spaces: one takes the load (wrk, 16 connections by
    default, every request a distinct deposit committed before the answer,
    bench/post_events.lua), the other is a "noisy" tenant that keeps
    ``--streams`` Server-Sent Events streams open on ``GET /admin/spaces/{id}/stream`` (raw
    sockets read by a thread of this script, so the server never blocks on them). The server's
    one stream reader still reads every row the load commits (it must, to see every space's
    rows), so this is what streams cost ingest for everyone: before issue 12, each stream polled
    the database itself five times a second, and 100 streams took p99 from a few ms to ~1 s.

Why a ratio
    Absolute latency depends on the machine and what else runs on it. Runs with and without
    streams alternate (none, streams, none, streams, ...) on the same server, so drift hits both;
    the median p99 per side is compared. Target: ratio <= 1.5. The absolute figures (p50, p99,
    requests/s per side) are printed too, and the reads of the stream reader per second (about
    one per ``XTRACKER_STREAM_POLL_S`` whatever the number of streams).

Integrity
    A run with non-2xx answers or socket errors, or a stream that was refused or ended during
    its run, is reported loudly (exit status 1).

Everything listens on and talks to 127.0.0.1 only.

    python bench/stream.py [--streams 100] [--duration 10] [--connections 16] [--rounds 3]
                           [--sync FULL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import urlsplit

from _harness import (
    BENCH_DIR,
    WrkRun,
    bench_env,
    create_space,
    describe,
    ensure_wrk,
    free_port,
    healthz_ok,
    http_request,
    log,
    print_problems,
    run_script,
    run_wrk,
    running_server,
    xtracker_serve_argv,
)

LUA_SCRIPT = BENCH_DIR / "post_events.lua"
TARGET_RATIO = 1.5


# --------------------------------------------------------------------------- the streams


class StreamPool:
    """``count`` open SSE streams of one space, read and discarded by an event loop in a
    thread of its own. ``with`` opens them all (RuntimeError unless every one answered 200) and
    closes them."""

    def __init__(self, url: str, space_id: int, bearer: str, count: int) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._request = (
            f"GET /admin/spaces/{space_id}/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {bearer}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.count = count
        self.refused: list[str] = []  # status lines other than 200
        self.ended = 0  # streams the server closed while we held them
        self.bytes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def __enter__(self) -> StreamPool:
        self._thread.start()
        opened = asyncio.run_coroutine_threadsafe(self._open_all(), self._loop)
        try:
            opened.result(timeout=60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        if self.refused:
            self.__exit__(None, None, None)
            raise RuntimeError(f"{len(self.refused)} streams refused: {self.refused[0]}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._thread.is_alive():
            return
        self._closing = True
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _open_all(self) -> None:
        opened = [asyncio.get_running_loop().create_future() for _ in range(self.count)]
        self._tasks = [asyncio.create_task(self._one(f)) for f in opened]
        await asyncio.gather(*opened)

    async def _one(self, opened: asyncio.Future[None]) -> None:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except OSError as exc:
            self.refused.append(f"connect: {exc}")
            opened.set_result(None)
            return
        try:
            writer.write(self._request)
            status = (await reader.readline()).decode("latin-1").strip()
            if " 200 " not in f"{status} ":
                self.refused.append(status or "no answer")
            opened.set_result(None)
            while chunk := await reader.read(65536):
                self.bytes += len(chunk)
            if not self._closing:
                self.ended += 1
        except (OSError, asyncio.IncompleteReadError):
            if not opened.done():
                self.refused.append("connection lost")
                opened.set_result(None)
            elif not self._closing:
                self.ended += 1
        finally:
            writer.close()

    async def _close_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --------------------------------------------------------------------------- report


@dataclass
class Side:
    name: str  # "none" or "streams"
    p99_ms: float  # median over the measured runs
    p50_ms: float
    requests_per_s: float
    p99_runs_ms: list[float]


@dataclass
class Report:
    sync: str
    streams: int
    duration_s: float
    connections: int
    rounds: int
    none: Side
    with_streams: Side
    ratio: float  # p99 with streams / p99 with none (medians)
    target_ratio: float
    meets_target: bool
    reader_reads_per_s: float  # the stream reader's reads during the runs with streams
    clean: bool
    problems: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def side_of(name: str, runs: list[WrkRun]) -> Side:
    measured = [r for r in runs if r.side == name and not r.warmup]
    return Side(
        name=name,
        p99_ms=statistics.median(r.p99_ms for r in measured),
        p50_ms=statistics.median(r.p50_ms for r in measured),
        requests_per_s=statistics.median(r.requests_per_s for r in measured),
        p99_runs_ms=[r.p99_ms for r in measured],
    )


def print_summary(report: Report, out: TextIO) -> None:
    line = "=" * 72
    print(line, file=out)
    print(
        f"POST /events, wrk 1 thread, {report.connections} connections, {report.duration_s:g} s"
        f" x {report.rounds} round(s) per side; SQLite synchronous={report.sync}",
        file=out,
    )
    print(f"streams: {report.streams} open on another space during the 'streams' runs", file=out)
    print(line, file=out)
    for side in (report.none, report.with_streams):
        runs = ", ".join(f"{p:.1f}" for p in side.p99_runs_ms)
        print(
            f"{side.name:<8} p99 {side.p99_ms:7.1f} ms  p50 {side.p50_ms:6.1f} ms  "
            f"{side.requests_per_s:>7,.0f} req/s  (medians; p99 per run: {runs})",
            file=out,
        )
    verdict = "meets" if report.meets_target else "ABOVE"
    print(
        f"ratio p99 streams/none : {report.ratio:.2f}  ({verdict} target <= "
        f"{report.target_ratio:g})",
        file=out,
    )
    print(f"stream reader          : {report.reader_reads_per_s:.1f} reads/s", file=out)
    print_problems(report.problems, line, out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="POST /events p99 with live streams open vs none, on one xtracker serve."
    )
    p.add_argument("--streams", type=int, default=100, help="streams open in the streams runs")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per side")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--rounds", type=int, default=3, help="measured runs per side, alternated")
    p.add_argument(
        "--sync",
        default="FULL",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        type=str.upper,
        help="SQLite synchronous mode of the server",
    )
    p.add_argument("--tmpdir", type=Path, default=None, help="where the database goes")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (db and logs)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.streams < 1 or args.rounds < 1 or args.duration < 1 or args.connections < 1:
        p.error("need --streams, --rounds, --connections >= 1 and --duration >= 1")
    return args


def reader_reads(url: str, admin: str) -> int:
    status, _, body = http_request(
        f"{url}/admin/streams", headers={"Authorization": f"Bearer {admin}"}
    )
    if status != 200:
        raise RuntimeError(f"GET /admin/streams answered {status}: {body[:200]!r}")
    return int(json.loads(body)["reader"]["reads"])


def wait_for_no_streams(url: str, admin: str) -> None:
    """Until the server has let the last stream go (and its reader stopped)."""
    deadline = time.monotonic() + 30
    while True:
        status, _, body = http_request(
            f"{url}/admin/streams", headers={"Authorization": f"Bearer {admin}"}
        )
        if status == 200 and not json.loads(body)["reader"]["running"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the streams did not close in 30 s: {body[:200]!r}")
        time.sleep(0.1)


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
        ingest, noisy = create_space(db), create_space(db)
        env = bench_env()
        port = free_port()
        cap = str(args.streams)
        argv_ = xtracker_serve_argv(
            db, port, "--sync", args.sync, "--no-worker",
            "--stream-max-per-credential", cap, "--stream-max-per-space", cap,
        )  # fmt: skip
        log(f"starting xtracker serve (sync={args.sync}) on port {port} ...")
        server = cleanup.enter_context(
            running_server("xtracker", argv_, port, env, tmp, healthz_ok)
        )
        admin = env["XTRACKER_ADMIN_TOKEN"]
        # One request by hand first: the credential works, and the server is warm.
        status, _, body = http_request(
            f"{server.url}/events",
            headers={"Authorization": f"Bearer {ingest['bearer']}"},
            body={"uid": "u0", "event": "deposit", "value": "25.00", "eid": "bench-sanity"},
            timeout=30,
        )
        if status != 200:
            raise RuntimeError(f"sanity POST /events answered {status}: {body!r}")

        runs: list[WrkRun] = []
        problems: list[str] = []
        reads, seconds = 0, 0.0
        plan = [(side, True) for side in ("none", "streams")] if args.warmup >= 1 else []
        plan += [(side, False) for _ in range(args.rounds) for side in ("none", "streams")]
        for n, (side, warmup) in enumerate(plan):
            with ExitStack() as held:
                pool = None
                if side == "streams":
                    pool = StreamPool(server.url, noisy["id"], noisy["bearer"], args.streams)
                    held.enter_context(pool)
                    time.sleep(1)  # let every stream take its place with the reader
                else:
                    wait_for_no_streams(server.url, admin)
                before, started = reader_reads(server.url, admin), time.monotonic()
                run = run_wrk(
                    wrk, server.url, script=LUA_SCRIPT, script_args=[ingest["bearer"], str(n)],
                    side=side, warmup=warmup,
                    duration=args.warmup if warmup else args.duration,
                    connections=args.connections, threads=1,
                )  # fmt: skip
                if pool is not None:
                    if pool.ended:
                        problems.append(f"run {n}: {pool.ended} streams ended during the run")
                    if not warmup:
                        reads += reader_reads(server.url, admin) - before
                        seconds += time.monotonic() - started
            log(describe(run))
            runs.append(run)
            if not run.ok_responses:
                problems.append(f"run {n} ({side}): no answer at all")
            if not run.clean:
                problems.append(f"run {n} ({side}): {run.non2xx} non-2xx, {run.socket_errors}")
            if server.proc.poll() is not None:
                raise RuntimeError(f"the server died:\n{server.log_tail()}")

    none, with_streams = side_of("none", runs), side_of("streams", runs)
    ratio = with_streams.p99_ms / none.p99_ms if none.p99_ms else 0.0
    report = Report(
        sync=args.sync,
        streams=args.streams,
        duration_s=args.duration,
        connections=args.connections,
        rounds=args.rounds,
        none=none,
        with_streams=with_streams,
        ratio=ratio,
        target_ratio=TARGET_RATIO,
        meets_target=ratio <= TARGET_RATIO,
        reader_reads_per_s=reads / seconds if seconds else 0.0,
        clean=not problems,
        problems=problems,
        runs=[asdict(r) for r in runs],
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_summary(report, sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    run_script(main)
