"""Never lose an acknowledged event: SIGKILL the server in the middle of a concurrent load;
after a restart, every event that got a 2xx is in the inbox, under the inbox_id it was given."""

from __future__ import annotations

import asyncio
import sqlite3
from http.cookiejar import DefaultCookiePolicy

import httpx

from tests.conftest import ServerFactory

WORKERS = 24
KILL_AFTER_ACKS = 600


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
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=10) as http:
            await asyncio.gather(*(worker(n, http, killed) for n in range(WORKERS)))

    asyncio.run(load())
    assert len(acked) >= KILL_AFTER_ACKS
    assert failures, "the kill should have cut some requests off"

    server.start()  # same file: recovery replays the WAL
    conn = sqlite3.connect(server.db)
    stored = dict(conn.execute("SELECT eid, id FROM inbox WHERE space_id = ?", (space.id,)))
    conn.close()
    missing = [eid for eid in acked if eid not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert all(str(stored[eid]) == inbox_id for eid, inbox_id in acked.items())

    # And the restarted server still knows them: a replay is a duplicate.
    eid, inbox_id = next(iter(acked.items()))
    n = eid[1:].split("-")[0]
    with server.client() as http:
        r = http.post(
            "/events",
            json={"uid": f"u{n}", "event": "deposit", "value": "1.50", "eid": eid},
            headers=space.auth,
        )
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
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=10) as http:
            http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
            await asyncio.gather(*(visitor(http, killed) for _ in range(WORKERS)))

    asyncio.run(load())
    assert len(handed_out) >= KILL_AFTER_ACKS
    assert len(set(handed_out)) == len(handed_out)
    server.start()
    conn = sqlite3.connect(server.db)
    stored = {
        uid for (uid,) in conn.execute("SELECT uid FROM clicks WHERE space_id = ?", (space.id,))
    }
    conn.close()
    missing = [uid for uid in handed_out if uid not in stored]
    assert not missing, f"{len(missing)} uids handed out but not stored, e.g. {missing[:5]}"
