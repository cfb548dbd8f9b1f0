"""The real client against the real server: an outage, a killed bot, a running event loop
and a fork — nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import TLS_VERIFY, Server, ServerFactory, free_port
from xtracker_client import AsyncXTracker, Backoff, XTracker

FAST = Backoff(base_s=0.05, cap_s=0.3)


def inbox(server: Server, space_id: int) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT event, uid, eid FROM inbox WHERE space_id = ? ORDER BY id", (space_id,)
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        conn.close()


def test_events_sent_while_the_server_is_down_arrive_exactly_once(
    start_app: ServerFactory, tmp_path: Path
) -> None:
    server = start_app("--rate-limit", "0")
    space = server.new_space()
    server.stop()  # the server is down while the bot reports
    xt = XTracker(server.url, space.bearer, spool=tmp_path / "spool.db", backoff=FAST)
    for i in range(200):
        xt.deposit(f"u{i % 20}", f"{i + 1}.00", eid=f"tx-{i}")
    assert not xt.flush(0.5)  # nothing can be sent yet
    assert xt.stats().queued == 200 and xt.stats().retried >= 1
    server.start()
    assert xt.flush(30), xt.stats()
    xt.close()
    rows = inbox(server, space.id)
    assert len(rows) == 200
    assert sorted(eid or "" for _, _, eid in rows) == sorted(f"tx-{i}" for i in range(200))


def test_a_killed_bot_hands_its_spool_over_on_the_next_start(
    server: Server, tmp_path: Path
) -> None:
    space = server.new_space("killed-bot")
    spool = tmp_path / "bot-spool.db"
    dead_port = free_port()  # nothing listens here: the bot's events stay in its spool
    script = textwrap.dedent(f"""
        import os, signal, sys
        from xtracker_client import XTracker
        xt = XTracker("http://127.0.0.1:{dead_port}", "{space.bearer}", spool={str(spool)!r})
        for i in range(50):
            xt.registration(f"u{{i}}", eid=f"reg-{{i}}")
        print("buffered", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no exit handler, no flush
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL and "buffered" in proc.stdout, proc.stderr
    assert inbox(server, space.id) == []

    # The next start of the bot, now with the right URL, opens the same spool.
    with XTracker(server.url, space.bearer, spool=spool, backoff=FAST) as xt:
        assert xt.flush(30)
    rows = inbox(server, space.id)
    assert sorted(eid or "" for _, _, eid in rows) == sorted(f"reg-{i}" for i in range(50))


def test_the_async_client_never_blocks_the_event_loop(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # A server process of its own: one in this process would stall the loop measured here.
    # Its writer and delivery worker on threads of that process (what they are off a POSIX
    # system): two more processes to start would add nothing to what is measured here.
    server = start_server("--no-worker", XTRACKER_WRITER_PROCESS="off")
    space = server.new_space("async")
    stalls: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            stalls.append(loop.time() - before - 0.001)

    async def run() -> None:
        stop = asyncio.Event()
        beat = asyncio.create_task(heartbeat(stop))
        async with AsyncXTracker(
            server.url, space.bearer, spool=tmp_path / "a.db", backoff=FAST
        ) as xt:
            for i in range(300):
                await xt.contact(f"u{i}", eid=f"c{i}")
            assert await xt.flush(30)
        stop.set()
        await beat

    asyncio.run(run())
    assert len(inbox(server, space.id)) == 300
    stalls.sort()
    # The spool's disk work runs on a thread: the loop never waits for it. The bound is loose
    # because CI machines are shared; tests/client proves it with a deliberately slow disk.
    assert stalls[-1] < 0.2, f"longest stall {stalls[-1] * 1000:.1f} ms"
    print(
        f"\nasync client: longest loop stall {stalls[-1] * 1000:.2f} ms, "
        f"p99 {stalls[int(len(stalls) * 0.99)] * 1000:.2f} ms over {len(stalls)} beats"
    )


def test_after_fork_the_child_sends_its_own_events_and_nothing_twice(
    server: Server, tmp_path: Path
) -> None:
    space = server.new_space("fork")
    spool = tmp_path / "shared.db"
    script = textwrap.dedent(f"""
        import os, sys
        from xtracker_client import XTracker, Backoff
        xt = XTracker({server.url!r}, {space.bearer!r}, spool={str(spool)!r},
                      backoff=Backoff(0.05, 0.3))
        for i in range(20):
            xt.contact(f"parent-{{i}}", eid=f"p{{i}}")
        pid = os.fork()
        if pid == 0:  # the child (gunicorn worker, Celery prefork)
            for i in range(20):
                xt.contact(f"child-{{i}}", eid=f"c{{i}}")
            ok = xt.flush(30)
            os._exit(0 if ok else 3)
        ok = xt.flush(30)
        _, status = os.waitpid(pid, 0)
        sys.exit(0 if ok and os.waitstatus_to_exitcode(status) == 0 else 1)
    """)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 0, proc.stderr
    rows = inbox(server, space.id)
    eids = sorted(eid for _, _, eid in rows if eid)
    assert eids == sorted([f"p{i}" for i in range(20)] + [f"c{i}" for i in range(20)])
    assert len(rows) == 40  # each exactly once


def resident_kib() -> int:
    """This process's resident size now, in KiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_memory_stays_bounded_while_the_server_is_away(tmp_path: Path) -> None:
    """A long outage fills the spool on disk, not the process's memory."""
    import resource

    # 10,000 calls against a spool of 8,000 rows (each call past the bound costs a delete and
    # an insert: 0.2 ms). The bound on growth is the one 50,000 calls had (50 MiB), per call:
    # under 1 KiB each, less than one event's body and its JSON kept in memory would take; a
    # few MiB of it are SQLite's cache and its WAL's index growing with the file (1 to 4 MiB
    # here, as with 20,000 calls: with fewer calls the bound per call is only stricter).
    calls = 10_000
    xt = XTracker(
        f"http://127.0.0.1:{free_port()}",
        "xt_sk_x",
        spool=tmp_path / "o.db",
        max_rows=8_000,
        backoff=Backoff(5, 30),
    )
    for i in range(4_000):
        xt.contact(f"u{i}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The peak above stays flat when an earlier test of this process peaked higher: the
    # resident size now (Linux's /proc, in KiB as ru_maxrss) shows a growth in any case.
    resident_before = resident_kib()
    started = time.monotonic()
    for i in range(calls):
        xt.contact(f"u{i}", eid=f"e{i}")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resident_after = resident_kib()
    stats = xt.stats()
    xt.close(0)
    assert stats.queued == 8_000 and stats.dropped["spool_full"] == 4_000 + calls - 8_000
    assert after - before < calls, f"grew {(after - before) / 1024:.1f} MiB"  # KiB on Linux
    grew = resident_after - resident_before
    assert grew < calls, f"resident size grew {grew / 1024:.1f} MiB"
    print(
        f"\n{calls:,} events in an outage: {time.monotonic() - started:.1f} s, "
        f"max RSS +{(after - before) / 1024:.1f} MiB, resident +{grew / 1024:.1f} MiB"
    )


def test_a_client_made_with_test_true_sends_test_events_that_never_count(
    server: Server, tmp_path: Path
) -> None:
    """``XTracker(test=True)`` (a staging bot): its events are stored as tests, counted
    nowhere, and its ``tx-1`` is not the production client's ``tx-1``."""
    import httpx

    from tests.conftest import ADMIN_TOKEN

    space = server.new_space("client-test-mode")
    r = httpx.post(f"{server.url}/clicks", json={}, headers=space.auth, verify=TLS_VERIFY)
    uid = r.json()["uid"]
    answers: list[str | None] = []
    with XTracker(
        server.url, space.bearer, in_memory=True, backoff=FAST, test=True,
        on_answer=lambda a: answers.append(a.status),
    ) as staging:  # fmt: skip
        staging.deposit(uid, "99.00", "USD", eid="tx-1")
        assert staging.flush(timeout=30)
    with XTracker(server.url, space.bearer, in_memory=True, backoff=FAST) as production:
        production.deposit(uid, "10.00", "USD", eid="tx-1")
        assert production.flush(timeout=30)
    assert answers == ["queued"]  # the staging deposit was answered, not a duplicate
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT eid, value, test FROM inbox WHERE space_id = ? ORDER BY id", (space.id,)
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("tx-1", "99.00", 1), ("tx-1", "10.00", 0)]
    now_ms = int(time.time() * 1000)  # a window around the events, whatever the server's clock
    funnel = httpx.get(
        f"{server.url}/admin/spaces/{space.id}/reports/funnel",
        verify=TLS_VERIFY,
        params={"from": now_ms - 3_600_000, "to": now_ms + 3_600_000},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert (funnel["deposits"], funnel["revenue"]) == (1, {"USD": "10.00"})
