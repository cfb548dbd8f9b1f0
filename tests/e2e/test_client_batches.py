"""The real client against the real server, sending in batches: events go out in
``POST /events/batch`` requests, each event gets the result the server gave it, a batch the
server could not commit (503) is sent again whole and stored once, and against a server without
the batch endpoint (an older one) the client sends one event per request."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, AppServer, Server, ServerFactory
from tests.databases import migrated
from xtracker_client import AsyncXTracker, Backoff, DeliveryError, XTracker

FAST = Backoff(base_s=0.05, cap_s=0.3)


def requests_by_route(server: Server) -> dict[tuple[str, int], int]:
    """POST requests the server answered, by (route, status), from its /metrics."""
    r = httpx.get(
        f"{server.url}/metrics",
        verify=TLS_VERIFY,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 200, r.text
    out: dict[tuple[str, int], int] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name == "xtracker_http_requests_total" and s.labels["method"] == "POST":
                out[s.labels["route"], int(s.labels["status"])] = int(s.value)
    return out


def requests_since(
    server: Server, before: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """The POST requests the server answered since ``before`` (``requests_by_route``): the
    tests of this module share a server, one at a time, each in a space of its own."""
    now = requests_by_route(server)
    return {key: n - before.get(key, 0) for key, n in now.items() if n - before.get(key, 0)}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server for the tests of this module that need no other flags."""
    server = AppServer(
        db=migrated(tmp_path_factory.mktemp("batches") / "xtracker.db"),
        extra_args=("--rate-limit", "0", "--no-worker"),
    )
    server.start()
    yield server
    server.stop()


def stored(server: Server, space_id: int) -> list[tuple[str, str | None, str | None]]:
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT event, uid, eid FROM inbox WHERE space_id = ? ORDER BY id", (space_id,)
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


def test_events_go_out_in_batches_and_each_is_stored_once(shared: Server, tmp_path: Path) -> None:
    server = shared
    space = server.new_space("in-batches")
    before = requests_by_route(server)
    with XTracker(server.url, space.bearer, spool=tmp_path / "spool.db", backoff=FAST) as xt:
        for i in range(1200):
            xt.registration(f"u{i % 50}", eid=f"reg-{i}")
        assert xt.flush(60), xt.stats()
        assert xt.stats().sent == 1200
    assert sorted(eid or "" for _, _, eid in stored(server, space.id)) == sorted(
        f"reg-{i}" for i in range(1200)
    )
    seen = requests_since(server, before)
    assert seen.get(("/events", 200), 0) == 0, seen
    # 1200 events in 3 to a few dozen requests (the sender sends what is due when it wakes).
    assert 3 <= seen[("/events/batch", 200)] <= 100, seen


def test_each_event_gets_the_result_the_server_gave_it(shared: Server) -> None:
    server = shared
    space = server.new_space("results")
    before = requests_by_route(server)
    refused: list[DeliveryError] = []
    xt = XTracker(server.url, space.bearer, in_memory=True, backoff=FAST,
                  on_error=refused.append)  # fmt: skip
    with xt:
        xt.deposit("d0", "10.00", "USD", eid="tx-0")
        assert xt.flush(30)
        for i in range(20):
            # XYZ is a well-formed code that the server does not know: refused, 422.
            xt.deposit(f"d{i}", "10.00", "XYZ" if i % 7 == 3 else "USD", eid=f"tx-{i}")
        flushed = xt.flush(30)
        assert flushed.complete and flushed.dead == 3 and not flushed, flushed
        letters = xt.dead_letters()
        assert xt.stats().dead == 3 and xt.stats().sent == 18  # tx-0 twice: a duplicate
    assert sorted(d.body["eid"] for d in letters) == ["tx-10", "tx-17", "tx-3"]
    assert {(d.status, d.reason.split(":")[0]) for d in letters} == {(422, "invalid_field")}
    assert sorted(e.body["eid"] for e in refused) == ["tx-10", "tx-17", "tx-3"]
    assert sorted(eid or "" for _, _, eid in stored(server, space.id)) == sorted(
        f"tx-{i}" for i in range(20) if i % 7 != 3
    )
    assert requests_since(server, before)[("/events/batch", 200)] >= 1


def test_a_batch_the_server_could_not_commit_is_sent_again_whole_and_stored_once(
    start_app: ServerFactory, tmp_path: Path
) -> None:
    server = start_app("--write-timeout-s", "1", "--rate-limit", "0", "--no-worker")
    space = server.new_space()
    with XTracker(server.url, space.bearer, spool=tmp_path / "spool.db", backoff=FAST) as xt:
        xt.contact("warm-up")
        assert xt.flush(60)
        blocker = sqlite3.connect(server.db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            for i in range(300):
                xt.subscribed(f"s{i}", eid=f"sub-{i}")
            deadline = time.monotonic() + 60
            while requests_by_route(server).get(("/events/batch", 503), 0) < 1:
                assert time.monotonic() < deadline, requests_by_route(server)
                time.sleep(0.05)
            assert xt.stats().retried >= 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert xt.flush(60), xt.stats()
    rows = stored(server, space.id)
    assert len(rows) == 301 and len(set(rows)) == 301  # each once
    assert sorted(eid or "" for _, _, eid in rows[1:]) == sorted(f"sub-{i}" for i in range(300))


class OlderServer:
    """The real app as a server that predates ``POST /events/batch``: that request is answered
    as a server without the route answers it (404), or (``status=405``) as one whose
    ``/events/batch`` takes other methods only."""

    def __init__(self, app: Any, status: int) -> None:
        self.app = app.app  # what AppServer.stop reaches for (the Starlette app)
        self._front: ASGIApp = app
        self._status = status
        self.batch_requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/events/batch":
            self.batch_requests += 1
            error = "not_found" if self._status == 404 else "method_not_allowed"
            body = {"ok": False, "error": error, "detail": "no endpoint /events/batch"}
            await JSONResponse(body, status_code=self._status)(scope, receive, send)
            return
        await self._front(scope, receive, send)


@pytest.fixture
def older_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from xtracker_server import app as app_module

    made: list[OlderServer] = []
    servers: list[AppServer] = []
    real = app_module.create_app

    def start(status: int) -> tuple[AppServer, OlderServer]:
        def create_app(settings: Any) -> Any:
            made.append(OlderServer(real(settings), status))
            return made[-1]

        monkeypatch.setattr(app_module, "create_app", create_app)
        server = AppServer(db=tmp_path / "old.db", extra_args=("--rate-limit", "0", "--no-worker"))
        server.start()
        servers.append(server)
        return server, made[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("status", [404, 405])
def test_against_a_server_without_the_batch_endpoint_events_go_one_by_one(
    older_app: Any, status: int
) -> None:
    server, front = older_app(status)
    space = server.new_space()
    with XTracker(server.url, space.bearer, in_memory=True, backoff=FAST) as xt:
        for i in range(60):
            xt.contact(f"o{i}", eid=f"c-{i}")
        assert xt.flush(60), xt.stats()
        assert (xt.stats().sent, xt.stats().dead, xt.stats().retried) == (60, 0, 0)
        for i in range(60, 70):  # the client remembers: no batch is tried again
            xt.contact(f"o{i}", eid=f"c-{i}")
        assert xt.flush(60), xt.stats()
    assert front.batch_requests == 1
    assert sorted(eid or "" for _, _, eid in stored(server, space.id)) == sorted(
        f"c-{i}" for i in range(70)
    )
    assert requests_by_route(server)[("/events", 200)] == 70


def test_the_async_client_sends_batches_with_requests_in_flight(
    shared: Server, tmp_path: Path
) -> None:
    server = shared
    space = server.new_space("in-flight")
    before = requests_by_route(server)
    in_flight: list[int] = []
    busy = [0]
    lock = threading.Lock()

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with lock:
                busy[0] += 1
                in_flight.append(busy[0])
            try:
                return await super().handle_async_request(request)
            finally:
                with lock:
                    busy[0] -= 1

    spool = tmp_path / "spool.sqlite3"
    with socket.socket() as s:  # a port nobody listens on: the events wait in the spool
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"

    async def main() -> None:
        # Buffered while the tracker is away, so that the sender finds them all at once (as
        # after an outage): one round, waves cut by the binds, several batches per wave.
        away = AsyncXTracker(down, space.bearer, spool=str(spool), backoff=FAST)
        for i in range(1500):
            await away.contact(f"a{i}", eid="c")
            if i % 600 == 0:
                await away.bind(f"a{i}", tg_id=1000 + i)  # a bind ends a wave: order kept
        await away.close(0)
        xt = AsyncXTracker(server.url, space.bearer, spool=str(spool), backoff=FAST,
                           transport=Counting())  # fmt: skip
        async with xt:
            assert await xt.flush(60)
            assert (await xt.stats()).sent == 1503

    asyncio.run(main())
    assert len(stored(server, space.id)) == 1500
    seen = requests_since(server, before)
    assert seen[("/bind", 200)] == 3 and seen.get(("/events", 200), 0) == 0
    assert max(in_flight) > 1  # several batches were in flight at once
