"""Shared pieces of the benchmark scripts in ``bench/`` (ingest, clicks, delivery, pace).

Tools (wrk, the ``xtracker`` CLI), free ports on 127.0.0.1, subprocess servers that are
stopped in order whatever happens (graceful SIGINT first, then SIGTERM, then SIGKILL), a tiny
stdlib HTTP helper, wrk runs parsed from the ``XTRACKER_BENCH {...}`` line the Lua scripts
print, the local sink that delivery benchmarks send to (``bench/sink.py``), and the signal
handling that turns SIGTERM into the same cleanup as Ctrl-C.

Not a benchmark itself: imported by the scripts (``python bench/<name>.py`` puts ``bench/`` on
``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
BARE_APP = BENCH_DIR / "bare_app.py"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """The path of wrk; installed with apt-get when missing and we are root."""
    path = shutil.which("wrk")
    if path:
        return path
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found: installing it with apt-get ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL
        )
        path = shutil.which("wrk")
        if path:
            return path
    sys.exit(
        "error: the load generator `wrk` is not installed.\n"
        "Install it (Debian/Ubuntu: `sudo apt-get install wrk`; macOS: `brew install wrk`) "
        "and run again, or run this script as root to let it install wrk itself."
    )


def xtracker_command() -> list[str]:
    """How to run the ``xtracker`` CLI of the Python running this script."""
    beside = Path(sys.executable).parent / "xtracker"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("xtracker")
    return [found] if found else [sys.executable, "-m", "xtracker_server"]


def xtracker_cli(args: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """Run ``xtracker ARGS`` to completion; its stdout, or RuntimeError with what it said."""
    out = subprocess.run(
        [*xtracker_command(), *args], capture_output=True, text=True, check=False, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"`xtracker {' '.join(args[:2])}` failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def filesystem_of(path: Path) -> str:
    """The file system type under ``path`` (fsync on tmpfs is free: worth knowing)."""
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[-1] if len(out) > 1 else "?"
    except (OSError, subprocess.CalledProcessError):
        return "?"


def bench_env() -> dict[str, str]:
    """The environment for our subprocesses: no XTRACKER_* leaking in from the caller, and an
    admin token set (so ``serve`` does not generate and print one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTRACKER_")}
    env["XTRACKER_ADMIN_TOKEN"] = "bench-" + os.urandom(18).hex()
    return env


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGINT (uvicorn's graceful shutdown: the writer drains), then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout if sig is signal.SIGINT else 5.0)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


@contextmanager
def running_server(
    name: str,
    argv: list[str],
    port: int,
    env: dict[str, str],
    workdir: Path,
    ready: Callable[[str], bool],
) -> Iterator[Server]:
    """Start ``argv`` in its own session (so a Ctrl-C reaches only us and we shut it down in
    order), wait until ``ready(url)``, and stop it whatever happens."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(name, f"http://{HOST}:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while not ready(server.url):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready in 30 s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        stop_process(proc)


# --------------------------------------------------------------------------- the sink

SINK_APP = BENCH_DIR / "sink.py"


def sink_ok(url: str) -> bool:
    return http_request(f"{url}/_stats")[0] == 200


@contextmanager
def running_sink(port: int, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """``bench/sink.py`` on ``port``, the local HTTP server the delivery benchmarks send to."""
    argv = [sys.executable, str(SINK_APP), "--port", str(port)]
    with running_server("sink", argv, port, env, workdir, sink_ok) as sink:
        yield sink


def sink_stats(sink: Server) -> tuple[dict[str, dict[str, Any]], int]:
    """Per path what the sink got since its last reset (``requests``, ``distinct_ids`` of
    ``webhook-id`` …), and the TCP connections opened to it."""
    status, _, body = http_request(f"{sink.url}/_stats", timeout=10)
    if status != 200:
        raise RuntimeError(f"the sink answered {status} to /_stats:\n{sink.log_tail()}")
    stats = json.loads(body)
    return stats["paths"], int(stats["connections"])


def sink_reset(sink: Server) -> None:
    if http_request(f"{sink.url}/_reset", body={})[0] != 200:
        raise RuntimeError(f"the sink did not reset:\n{sink.log_tail()}")


def start_pair(
    stack: ExitStack,
    *,
    db: Path,
    sync: str,
    env: dict[str, str],
    workdir: Path,
    bare_ok: Callable[[str], bool],
) -> tuple[Server, Server]:
    """``xtracker serve`` on ``db`` and the bare baseline app, each on a free port, stopped when
    ``stack`` closes (also on errors and Ctrl-C). Returns (ours, bare)."""
    ours_port, bare_port = free_port(), free_port()
    log(
        f"starting xtracker serve (sync={sync}) on {HOST}:{ours_port} and the "
        f"baseline on {HOST}:{bare_port} ..."
    )
    ours = stack.enter_context(
        running_server(
            "xtracker",
            xtracker_serve_argv(db, ours_port, "--sync", sync),
            ours_port,
            env,
            workdir,
            healthz_ok,
        )
    )
    bare = stack.enter_context(
        running_server(
            "baseline",
            [sys.executable, str(BARE_APP), "--port", str(bare_port)],
            bare_port,
            env,
            workdir,
            bare_ok,
        )
    )
    return ours, bare


def xtracker_serve_argv(db: Path, port: int, *extra: str) -> list[str]:
    return [
        *xtracker_command(),
        "serve",
        "--db",
        str(db),
        "--host",
        HOST,
        "--port",
        str(port),
        "--rate-limit",
        "0",
        # wrk's load comes from one address: every click of it is recorded.
        "--click-limit-per-ip",
        "0",
        *extra,
    ]


def add_sync_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--sync``: the SQLite synchronous mode of ``what``."""
    parser.add_argument(
        "--sync",
        default="FULL",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        type=str.upper,
        help=f"SQLite synchronous mode of {what}",
    )


def add_cube_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--cube`` / ``--no-cube``: the report cube of ``what`` on or off (XTRACKER_REPORT_CUBE's
    default); set in the environment by :func:`with_cube` either way, so that the run says
    which it measured."""
    parser.add_argument(
        "--cube",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"the report cube of {what} on (the default, XTRACKER_REPORT_CUBE's), or off",
    )


def with_cube(env: dict[str, str], cube: bool) -> dict[str, str]:
    """``env`` with XTRACKER_REPORT_CUBE set as ``--cube`` says."""
    return {**env, "XTRACKER_REPORT_CUBE": "on" if cube else "off"}


def http_request(
    url: str,
    *,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request with the stdlib (no redirects followed): status (0 when there was no
    answer), headers with lower-case names, body."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, _lower(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, b""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _lower(items: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


def healthz_ok(url: str) -> bool:
    return http_request(f"{url}/healthz")[0] == 200


def create_space(db: Path) -> dict[str, Any]:
    space: dict[str, Any] = json.loads(
        xtracker_cli(["space", "create", "bench", "--json", "--db", str(db)])
    )
    return space


# --------------------------------------------------------------------------- load


@dataclass
class WrkRun:
    side: str  # "baseline" or "xtracker"
    warmup: bool
    requests_per_s: float
    requests: int  # completed responses (any status)
    non2xx: int  # wrk's "non-2xx or 3xx": a 302 counts as a success
    socket_errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok_responses(self) -> int:
        return self.requests - self.non2xx

    @property
    def clean(self) -> bool:
        return self.non2xx == 0 and not any(self.socket_errors.values())


_MARK = re.compile(r"^XTRACKER_BENCH (\{.*\})$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def run_wrk(
    wrk: str,
    url: str,
    *,
    script: Path,
    script_args: Sequence[str],
    side: str,
    warmup: bool,
    duration: float,
    connections: int,
    threads: int,
) -> WrkRun:
    """One wrk run against ``url`` with a Lua ``script`` whose ``done()`` prints the
    ``XTRACKER_BENCH {...}`` line (see bench/post_events.lua)."""
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    rps_text = _RPS.search(out.stdout)
    if out.returncode != 0 or rps_text is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    mark = _MARK.search(out.stdout)
    if mark is None:
        raise RuntimeError(f"wrk printed no XTRACKER_BENCH line:\n{out.stdout}{out.stderr}")
    stats = json.loads(mark.group(1))
    non2xx = int(stats["non2xx"])
    non2xx_text = _NON2XX.search(out.stdout)
    if non2xx_text is not None:  # the same counter, printed by wrk itself
        non2xx = max(non2xx, int(non2xx_text.group(1)))
    return WrkRun(
        side=side,
        warmup=warmup,
        requests_per_s=float(rps_text.group(1)),
        requests=int(stats["requests"]),
        non2xx=non2xx,
        socket_errors={k: int(stats[k]) for k in ("connect", "read", "write", "timeout")},
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        max_ms=stats["max_us"] / 1000,
    )


def describe(run: WrkRun, label: str = "") -> str:
    text = (
        f"{label}{run.side:<8} {'warm-up' if run.warmup else 'measured':<8} "
        f"{run.requests_per_s:>9,.0f} req/s  {run.requests:>7} responses  "
        f"p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms"
    )
    if not run.clean:
        errors = ", ".join(f"{k} {v}" for k, v in run.socket_errors.items() if v)
        text += f"  !!! ERRORS: non-2xx {run.non2xx}" + (f", socket {errors}" if errors else "")
    return text


# --------------------------------------------------------------------------- entry point


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the same cleanup as Ctrl-C


def run_script(main: Callable[[], int], what: str = "servers stopped") -> None:
    """Run ``main`` as the script's entry point: SIGTERM and Ctrl-C unwind through the
    ``with`` blocks (every subprocess is stopped), RuntimeError is an error message."""
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started with `&` by a shell
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log(f"interrupted: {what}")
        sys.exit(130)
    except RuntimeError as exc:
        log(f"error: {exc}")
        sys.exit(1)


def print_problems(problems: Sequence[str], line: str, out: TextIO) -> None:
    """The closing lines of a report: what made the measurement unclean, if anything."""
    if problems:
        print(line, file=out)
        print("!!! THE MEASUREMENT IS NOT CLEAN:", file=out)
        for problem in problems:
            print(f"!!!   {problem}", file=out)
    print(line, file=out)
