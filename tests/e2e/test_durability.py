"""Never lose an acknowledged event, nor a click whose uid was handed out: SIGKILL the server
in the middle of a concurrent load of both; after a restart, every event that got a 2xx is in
the inbox, under the inbox_id it was given, and every uid a redirect handed out is a click."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy

import httpx
import pytest

from tests.conftest import TLS_VERIFY, AppServer, Server, SpaceKeys, free_port

WORKERS = 24
#: The kill comes once this many answers of each kind are in: a few dozen group-commit
#: batches, with the other requests in flight whatever the count (600 proved no more, at 4x
#: the CPU).
KILL_AFTER_ACKS = 150
PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}


def restarted(server: Server) -> AppServer:
    """The app started again on the killed server's file (recovery replays the WAL). Only the
    kill needs a process; the restart is the same app, in this process."""
    again = AppServer(db=server.db, extra_args=server.extra_args)
    again.start()
    return again


@dataclass
class Killed:
    """What a server process was told and answered before its SIGKILL, and the app started
    again on its file."""

    events: SpaceKeys
    clicks: SpaceKeys
    again: AppServer
    acked: dict[str, str] = field(default_factory=dict)  # eid -> inbox_id
    failures: list[str] = field(default_factory=list)
    handed_out: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killed]:
    """One ``xtracker serve`` process under a load of events (WORKERS at once) and of visits
    to a redirect (WORKERS more), SIGKILLed once both have had KILL_AFTER_ACKS answers; then
    restarted in this process on the same file. One process for both loads: a ``serve``
    process and its writer and worker processes cost seconds of CPU to start."""
    db = tmp_path_factory.mktemp("durability") / "xtracker.db"
    # Every visit comes from 127.0.0.1: off, the per-address click limit records them all.
    args = ("--rate-limit", "0", "--click-limit-per-ip", "0")
    server = Server(db=db, port=free_port(), extra_args=args)
    server.start()
    try:
        events, clicks = server.new_space("durable"), server.new_space("clicks")
        server.cli(
            "link", "create", "--space", str(clicks.id), "--slug", "hot",
            "--kind", "bot", "--target", "offer_bot",
        )  # fmt: skip
        acked: dict[str, str] = {}
        failures: list[str] = []
        handed_out: list[str] = []

        def kill_once_both_are_in(killed: asyncio.Event) -> None:
            if min(len(acked), len(handed_out)) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                server.kill()  # SIGKILL: no shutdown, no flush, mid-batch

        async def sender(n: int, http: httpx.AsyncClient, killed: asyncio.Event) -> None:
            for i in range(5_000):  # bounded, whatever happens
                eid = f"w{n}-{i}"
                body = {"uid": f"u{n}", "event": "deposit", "value": "1.50", "eid": eid}
                try:
                    r = await http.post("/events", json=body, headers=events.auth)
                except httpx.TransportError as exc:
                    failures.append(type(exc).__name__)
                    return
                if r.is_success:
                    acked[eid] = r.json()["inbox_id"]
                    kill_once_both_are_in(killed)

        async def visitor(http: httpx.AsyncClient, killed: asyncio.Event) -> None:
            for _ in range(5_000):  # bounded, whatever happens
                try:
                    # A new browser each time: no cookies, so each visit is a new click.
                    r = await http.get("/r/hot", headers=PHONE)
                except httpx.TransportError:
                    return
                if r.status_code == 302:
                    handed_out.append(r.headers["location"].split("start=fb_", 1)[1])
                    kill_once_both_are_in(killed)

        def client() -> httpx.AsyncClient:
            limits = httpx.Limits(max_connections=WORKERS)
            return httpx.AsyncClient(
                verify=TLS_VERIFY, base_url=server.url, limits=limits, timeout=10
            )

        async def load() -> None:
            killed = asyncio.Event()
            async with client() as api, client() as browsers:
                browsers.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
                await asyncio.gather(
                    *(sender(n, api, killed) for n in range(WORKERS)),
                    *(visitor(browsers, killed) for _ in range(WORKERS)),
                )

        asyncio.run(load())
    finally:
        server.kill()
    again = restarted(server)  # same file: recovery replays the WAL
    try:
        yield Killed(events, clicks, again, acked, failures, handed_out)
    finally:
        again.stop()


def test_every_acknowledged_event_survives_sigkill(killed: Killed) -> None:
    acked, space = killed.acked, killed.events
    assert len(acked) >= KILL_AFTER_ACKS
    assert killed.failures, "the kill should have cut some requests off"
    conn = sqlite3.connect(killed.again.db)
    stored = dict(conn.execute("SELECT eid, id FROM inbox WHERE space_id = ?", (space.id,)))
    conn.close()
    missing = [eid for eid in acked if eid not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert all(str(stored[eid]) == inbox_id for eid, inbox_id in acked.items())

    # And the restarted server still knows them: a replay is a duplicate.
    eid, inbox_id = next(iter(acked.items()))
    n = eid[1:].split("-")[0]
    with killed.again.client() as http:
        r = http.post(
            "/events",
            json={"uid": f"u{n}", "event": "deposit", "value": "1.50", "eid": eid},
            headers=space.auth,
        )
    assert r.json()["status"] == "duplicate" and r.json()["inbox_id"] == inbox_id


def test_every_uid_handed_out_survives_sigkill(killed: Killed) -> None:
    """Clicks are committed before the redirect that hands their uid out."""
    handed_out = killed.handed_out
    assert len(handed_out) >= KILL_AFTER_ACKS
    assert len(set(handed_out)) == len(handed_out)
    conn = sqlite3.connect(killed.again.db)
    stored = {
        uid
        for (uid,) in conn.execute("SELECT uid FROM clicks WHERE space_id = ?", (killed.clicks.id,))
    }
    conn.close()
    missing = [uid for uid in handed_out if uid not in stored]
    assert not missing, f"{len(missing)} uids handed out but not stored, e.g. {missing[:5]}"
