"""Never lose an acknowledged event: SIGKILL the server in the middle of a concurrent load;
after a restart, every event that got a 2xx is in the inbox, under the inbox_id it was given."""

from __future__ import annotations

import asyncio
import sqlite3
from http.cookiejar import DefaultCookiePolicy

import httpx

from tests.conftest import TLS_VERIFY, AppServer, Server, ServerFactory

WORKERS = 24
#: The kill comes once this many answers are in: a few dozen group-commit batches, with the
#: other WORKERS - 1 requests in flight whatever the count (600 proved no more, at 4x the CPU).
KILL_AFTER_ACKS = 150


def restarted(server: Server) -> AppServer:
    """The app started again on the killed server's file (recovery replays the WAL). Only the
    kill needs a process; the restart is the same app, in this process."""
    again = AppServer(db=server.db, extra_args=server.extra_args)
    again.start()
    return again


def test_every_acknowledged_event_survives_sigkill(start_server: ServerFactory) -> None:
    server = start_server("--rate-limit", "0")
    space = server.new_space("durable")
    acked: dict[str, str] = {}  # eid -> inbox_id
    failures: list[str] = []

    async def worker(n: int, http: httpx.AsyncClient, killed: asyncio.Event) -> None:
        i = 0
        while True:
            eid = f"w{n}-{i}"
            i += 1
            body = {"uid": f"u{n}", "event": "deposit", "value": "1.50", "eid": eid}
            try:
                r = await http.post("/events", json=body, headers=space.auth)
            except httpx.TransportError as exc:
                failures.append(type(exc).__name__)
                return
            if r.is_success:
                acked[eid] = r.json()["inbox_id"]
                if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                    killed.set()
                    server.kill()  # SIGKILL: no shutdown, no flush, mid-batch
            if i > 5_000:  # bounded, whatever happens
                return

    async def load() -> None:
        killed = asyncio.Event()
        limits = httpx.Limits(max_connections=WORKERS)
        async with httpx.AsyncClient(
            verify=TLS_VERIFY, base_url=server.url, limits=limits, timeout=10
        ) as http:
            await asyncio.gather(*(worker(n, http, killed) for n in range(WORKERS)))

    asyncio.run(load())
    assert len(acked) >= KILL_AFTER_ACKS
    assert failures, "the kill should have cut some requests off"

    again = restarted(server)  # same file: recovery replays the WAL
    conn = sqlite3.connect(server.db)
    stored = dict(conn.execute("SELECT eid, id FROM inbox WHERE space_id = ?", (space.id,)))
    conn.close()
    missing = [eid for eid in acked if eid not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert all(str(stored[eid]) == inbox_id for eid, inbox_id in acked.items())

    # And the restarted server still knows them: a replay is a duplicate.
    eid, inbox_id = next(iter(acked.items()))
    n = eid[1:].split("-")[0]
    try:
        with again.client() as http:
            r = http.post(
                "/events",
                json={"uid": f"u{n}", "event": "deposit", "value": "1.50", "eid": eid},
                headers=space.auth,
            )
    finally:
        again.stop()
    assert r.json()["status"] == "duplicate" and r.json()["inbox_id"] == inbox_id


def test_every_uid_handed_out_survives_sigkill(start_server: ServerFactory) -> None:
    """Clicks are committed before the redirect that hands their uid out."""
    # Every visit comes from 127.0.0.1: off, the per-address click limit records them all.
    server = start_server("--rate-limit", "0", "--click-limit-per-ip", "0")
    space = server.new_space("clicks")
    server.cli(
        "link",
        "create",
        "--space",
        str(space.id),
        "--slug",
        "hot",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
    )
    handed_out: list[str] = []
    phone = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}

    async def visitor(http: httpx.AsyncClient, killed: asyncio.Event) -> None:
        for _ in range(5_000):  # bounded, whatever happens
            try:
                # A new browser each time: no cookies, so each visit is a new click.
                r = await http.get("/r/hot", headers=phone)
            except httpx.TransportError:
                return
            if r.status_code == 302:
                handed_out.append(r.headers["location"].split("start=fb_", 1)[1])
                if len(handed_out) >= KILL_AFTER_ACKS and not killed.is_set():
                    killed.set()
                    server.kill()

    async def load() -> None:
        killed = asyncio.Event()
        limits = httpx.Limits(max_connections=WORKERS)
        async with httpx.AsyncClient(
            verify=TLS_VERIFY, base_url=server.url, limits=limits, timeout=10
        ) as http:
            http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            await asyncio.gather(*(visitor(http, killed) for _ in range(WORKERS)))

    asyncio.run(load())
    assert len(handed_out) >= KILL_AFTER_ACKS
    assert len(set(handed_out)) == len(handed_out)
    restarted(server).stop()  # same file: the restart's recovery, then a clean stop
    conn = sqlite3.connect(server.db)
    stored = {
        uid for (uid,) in conn.execute("SELECT uid FROM clicks WHERE space_id = ?", (space.id,))
    }
    conn.close()
    missing = [uid for uid in handed_out if uid not in stored]
    assert not missing, f"{len(missing)} uids handed out but not stored, e.g. {missing[:5]}"
