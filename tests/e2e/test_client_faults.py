"""The client in a real process when its disk fails and when it must exit with the tracker down:
a full disk (a file size limit, RLIMIT_FSIZE, on the bot's process) never fails a tracking call,
and every client of a process shares one exit deadline (issue 16 §2, §6)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, free_port
from tests.e2e.test_client_e2e import inbox

ROOT = Path(__file__).resolve().parents[2]

# What the bot does, in a process of its own: the file size limit applies to all its files.
DISK_FULL_BOT = textwrap.dedent("""
    import asyncio, json, logging, resource, signal, sys, time
    from xtracker_client import AsyncXTracker, Backoff, XTracker

    url, bearer, spool, mode = sys.argv[1:5]
    # Past the limit a write fails with EFBIG (as on a full disk) instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def disk_full():  # no file of this process may grow any more
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))

    def disk_ok():
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

    said = []

    class Keep(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    logging.getLogger("xtracker_client").addHandler(Keep())
    logging.getLogger("xtracker_client").setLevel(logging.INFO)
    errors, drops, raised = [], [], []
    hooks = dict(
        on_error=lambda e: errors.append(e.code),
        on_drop=lambda body, reason: drops.append(reason),
        backoff=Backoff(base_s=0.05, cap_s=0.3),
    )

    async def track(xt, name, n):
        for i in range(n):
            try:
                call = xt.deposit(f"u{i % 7}", "5.00", eid=f"{name}-{i}")
                if mode == "async":
                    await call
            except Exception as exc:  # what the bot's handler would have died of
                raised.append(f"{type(exc).__name__}: {exc}")

    async def answer(value):
        return await value if mode == "async" else value

    async def main():
        if mode == "async":
            xt = AsyncXTracker(url, bearer, spool=spool, **hooks)
        else:
            xt = XTracker(url, bearer, spool=spool, **hooks)
        await track(xt, "before", 10)
        assert await answer(xt.flush(30))
        disk_full()
        await track(xt, "full", 200)
        full = await answer(xt.stats())
        flushed_full = bool(await answer(xt.flush(30)))  # sent from memory meanwhile
        disk_ok()
        time.sleep(1.2)  # the file is tried again once a second
        await track(xt, "after", 10)
        after = await answer(xt.stats())
        flushed_after = bool(await answer(xt.flush(30)))
        disk_full()
        await track(xt, "closing", 5)
        try:
            closed = bool(await answer(xt.close()))
        except Exception as exc:
            raised.append(f"close: {type(exc).__name__}: {exc}")
            closed = None
        try:
            last = await answer(xt.stats())
        except Exception as exc:
            raised.append(f"stats: {type(exc).__name__}: {exc}")
            last = None
        print(json.dumps({
            "raised": raised,
            "errors": errors,
            "drops": drops,
            "held_when_full": getattr(full, "held_in_memory", None),
            "spool_errors": getattr(full, "spool_errors", None),
            "flushed_full": flushed_full,
            "held_after": getattr(after, "held_in_memory", None),
            "flushed_after": flushed_after,
            "closed": closed,
            "sent": last and last.sent,
            "failing": sum("cannot be written" in m for m in said),
            "healed": sum("can be written again" in m for m in said),
        }))

    asyncio.run(main())
""")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_full_disk_never_fails_a_tracking_call_and_every_event_arrives(
    server: Server, tmp_path: Path, mode: str
) -> None:
    space = server.new_space(f"disk-{mode}")
    spool = tmp_path / "bot" / "spool.db"
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_BOT, server.url, space.bearer, str(spool), mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["raised"] == []  # no call, not close(), not stats() after it
    assert seen["held_when_full"] > 0 and seen["spool_errors"] >= 1
    assert seen["flushed_full"] is True and seen["flushed_after"] is True
    assert seen["held_after"] == 0  # new events go to the file again
    # Told once per state change: on_error and a warning when the file failed (twice: at the
    # 200 calls, at the close), one line when it worked again.
    assert seen["errors"] == ["spool_unwritable", "spool_unwritable"]
    assert seen["failing"] == 2 and seen["healed"] == 1
    assert seen["drops"] == [] and seen["closed"] is True
    assert seen["sent"] == 225
    expected = (
        [f"before-{i}" for i in range(10)]
        + [f"full-{i}" for i in range(200)]
        + [f"after-{i}" for i in range(10)]
        + [f"closing-{i}" for i in range(5)]
    )
    assert sorted(eid or "" for _, _, eid in inbox(server, space.id)) == sorted(expected)


# --- the exit deadline -------------------------------------------------------------------------


@pytest.fixture
def hung_tracker() -> Iterator[str]:
    """A tracker that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


SYNC_CLIENTS_AT_EXIT = textwrap.dedent("""
    import sys
    from xtracker_client import XTracker

    url, folder = sys.argv[1:3]
    clients = [XTracker(url, "xt_sk_x", spool=f"{folder}/spool-{n}.db") for n in range(4)]
    for n, xt in enumerate(clients):
        for i in range(3):
            xt.deposit(f"u{i}", "5.00", eid=f"tx-{n}-{i}")
    print("done", flush=True)  # the end of the script: the exit hook closes all four
""")

ASYNC_CLIENTS_AT_EXIT = textwrap.dedent("""
    import asyncio, contextlib, sys
    from xtracker_client import AsyncXTracker

    url, folder = sys.argv[1:3]

    async def main():
        async with contextlib.AsyncExitStack() as stack:
            for n in range(3):
                xt = await stack.enter_async_context(
                    AsyncXTracker(url, "xt_sk_x", spool=f"{folder}/spool-{n}.db")
                )
                for i in range(3):
                    await xt.deposit(f"u{i}", "5.00", eid=f"tx-{n}-{i}")
            print("done", flush=True)  # leaving the block closes the three, one after another

    asyncio.run(main())
""")


def time_to_exit(script: str, url: str, folder: Path, exit_timeout: float) -> float:
    """Seconds from the script's "done" to the end of its process (bounded: 60 s)."""
    with subprocess.Popen(
        [sys.executable, "-c", script, url, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XTRACKER_EXIT_TIMEOUT": str(exit_timeout)},
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            assert proc.stdout.readline().strip() == "done", proc.stderr.read()
            done = time.monotonic()
            proc.wait(timeout=60)
            took = time.monotonic() - done
        finally:
            proc.kill()
        assert proc.returncode == 0, proc.stderr.read()
    return took


def queued(spool: Path) -> int:
    conn = sqlite3.connect(spool)
    try:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("tracker", ["refused", "hung"])
@pytest.mark.parametrize("script", ["sync", "async"])
def test_several_clients_exit_within_one_shared_deadline_with_the_tracker_down(
    tmp_path: Path, hung_tracker: str, tracker: str, script: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if tracker == "refused" else hung_tracker
    source = SYNC_CLIENTS_AT_EXIT if script == "sync" else ASYNC_CLIENTS_AT_EXIT
    took = time_to_exit(source, url, tmp_path, exit_timeout=1.0)
    # One deadline for all (1 s), plus a moment to stop each sender: not one per client (the
    # sync clients took 2 s each, the async ones 10 s each).
    assert took < 5.0, f"{took:.1f} s to exit"
    spools = sorted(tmp_path.glob("spool-*.db"))
    assert spools and all(queued(s) == 3 for s in spools)  # nothing sent, nothing lost
    print(f"\n{script}, tracker {tracker}: {len(spools)} clients exited in {took:.2f} s")


NEVER_CLOSED = textwrap.dedent("""
    import asyncio, sys
    from xtracker_client import AsyncXTracker

    async def main():
        xt = AsyncXTracker(sys.argv[1], "xt_sk_x", in_memory=True)
        for i in range(3):
            await xt.contact(f"u{i}")
        # ... and the bot ends without closing it

    asyncio.run(main())
    print("done", flush=True)
""")


def test_an_in_memory_async_tracker_never_closed_warns_that_its_events_are_lost() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NEVER_CLOSED, f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    assert "never closed" in proc.stderr and "3 events" in proc.stderr, proc.stderr
