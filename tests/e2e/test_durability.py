"""Never lose an acknowledged event: SIGKILL the server in the middle of a concurrent load;
after a restart, every event that got a 2xx is in the inbox, under the inbox_id it was given."""

from __future__ import annotations

import asyncio
import sqlite3

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
