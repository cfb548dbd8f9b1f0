"""The client against a mocked server (respx): receipts, every retry class, Retry-After,
dead letters, the drop policy, hooks, validation at the call site, new_click."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from xtracker_client import (
    APIError,
    AsyncXTracker,
    Backoff,
    DeliveryError,
    InvalidEventError,
    SpoolFullError,
    TransportError,
    XTracker,
)

URL = "http://xt.test"
FAST = Backoff(base_s=0.01, cap_s=0.05)
OK = httpx.Response(200, json={"ok": True, "status": "queued", "inbox_id": "1"})
NO_BATCH = {"ok": False, "error": "not_found", "detail": "no endpoint /events/batch"}


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    """A server without ``POST /events/batch`` (404), as before it: the tests here check how
    each single request's answer is handled (batches: tests/client/test_sender.py)."""
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        router.post("/events/batch").mock(return_value=httpx.Response(404, json=NO_BATCH))
        yield router


def tracker(**kwargs: Any) -> XTracker:
    return XTracker(URL, "xt_sk_test", backoff=FAST, **{"in_memory": True, **kwargs})


def bodies(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


def test_a_call_returns_a_receipt_and_the_event_is_sent_with_its_time_pinned(
    server: respx.MockRouter,
) -> None:
    events = server.post("/events").mock(return_value=OK)
    with tracker() as xt:
        before = int(time.time() * 1000)
        receipt = xt.deposit("abc", "25.00", "usd", eid="tx-1")
        assert receipt.kind == "event" and receipt.event == "deposit" and receipt.uid == "abc"
        assert receipt.occurred_at_ms is not None and receipt.occurred_at_ms >= before
        assert xt.flush(5)
        assert xt.stats().sent == 1 and xt.stats().queued == 0
    (body,) = bodies(events)
    assert body == {
        "event": "deposit",
        "uid": "abc",
        "eid": "tx-1",
        "value": "25.00",
        "currency": "USD",
        "occurred_at_ms": receipt.occurred_at_ms,
    }
    assert events.calls[0].request.headers["authorization"] == "Bearer xt_sk_test"


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(408),
        httpx.Response(429),
        httpx.Response(500),
        httpx.Response(503),
    ],
    ids=["connect", "timeout", "408", "429", "500", "503"],
)
def test_transient_failures_are_retried_with_the_same_body(
    server: respx.MockRouter, failure: Any
) -> None:
    events = server.post("/events").mock(side_effect=[failure, failure, OK])
    with tracker() as xt:
        xt.contact("u1", tg_id=5)
        assert xt.flush(5)
        stats = xt.stats()
    assert events.call_count == 3
    assert stats.retried == 2 and stats.sent == 1 and stats.dead == 0
    first, _, last = bodies(events)
    assert first == last  # same occurred_at_ms: a resend can only be a server-side duplicate


def test_retry_after_is_honoured(server: respx.MockRouter) -> None:
    times: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return OK

    server.post("/events").mock(side_effect=answer)
    with tracker() as xt:
        xt.contact("u1")
        assert xt.flush(5)
    assert times[1] - times[0] >= 0.95  # the backoff alone would wait at most 0.05 s


def test_other_4xx_is_dead_lettered_with_the_servers_reason(server: respx.MockRouter) -> None:
    refused = httpx.Response(
        422,
        json={
            "ok": False,
            "error": "invalid_field",
            "detail": "uid: is longer than 128 characters",
        },
    )
    events = server.post("/events").mock(return_value=refused)
    errors: list[DeliveryError] = []
    with tracker(on_error=errors.append) as xt:
        xt.contact("u1")
        flushed = xt.flush(5)
        (dead,) = xt.dead_letters()
        stats = xt.stats()
    assert events.call_count == 1  # never retried
    assert stats.dead == 1 and stats.queued == 0
    assert flushed.complete and flushed.dead == 1 and not flushed  # answered, but refused
    assert "longer than 128" in dead.reason and dead.status == 422 and dead.body["uid"] == "u1"
    assert errors[0].status == 422 and errors[0].code == "invalid_field"


def test_a_failing_hook_never_crashes_the_sender(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=[httpx.Response(400, json={"error": "x"}), OK])

    def explode(error: DeliveryError) -> None:
        raise RuntimeError("hook bug")

    with tracker(on_error=explode) as xt:
        xt.contact("a")
        xt.contact("b")
        assert xt.flush(5).complete
        assert xt.stats().sent == 1 and xt.stats().dead == 1


def test_drop_oldest_keeps_the_newest_and_reports_the_drops(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    dropped: list[tuple[dict[str, Any], str]] = []
    xt = tracker(max_rows=3, on_drop=lambda body, why: dropped.append((body, why)))
    for i in range(5):
        xt.contact(f"u{i}")
    stats = xt.stats()
    assert stats.queued == 3 and stats.dropped == {"spool_full": 2}
    assert [b["uid"] for b, _ in dropped] == ["u0", "u1"]
    assert {why for _, why in dropped} == {"spool_full"}
    xt.close(0)


def test_drop_newest_refuses_the_new_event(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    xt = tracker(max_rows=2, drop_policy="drop_newest")
    xt.contact("u0")
    xt.contact("u1")
    with pytest.raises(SpoolFullError):
        xt.contact("u2")
    assert xt.stats().dropped == {"spool_full": 1} and xt.stats().queued == 2
    xt.close(0)


def test_the_spool_is_bounded_in_bytes(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    xt = tracker(max_bytes=4096)
    for i in range(200):
        xt.contact(f"user-{i:04d}", eid="e" * 40)
    assert xt.stats().queued_bytes <= 4096
    assert xt.stats().dropped["spool_full"] > 100
    xt.close(0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda xt: xt.track("purchase", "u"), "contact, subscribed"),
        (lambda xt: xt.deposit("u", "-5"), "greater than zero"),
        (lambda xt: xt.deposit("u", "abc"), "not a decimal"),
        (lambda xt: xt.deposit("u", "5", "$"), "ISO 4217"),
        (lambda xt: xt.contact(None), "uid"),
        (lambda xt: xt.contact("u", occurred_at_ms=1_700_000_000), "seconds"),
        (lambda xt: xt.bind("u", tg_id=-3), "Telegram user id"),
    ],
)
def test_bad_events_raise_at_the_call_site(
    server: respx.MockRouter, call: Any, message: str
) -> None:
    with tracker() as xt:
        with pytest.raises(InvalidEventError, match=message):
            call(xt)
        assert xt.stats().queued == 0


def test_binds_and_events_go_out_in_order(server: respx.MockRouter) -> None:
    order: list[str] = []
    server.post("/bind").mock(side_effect=lambda r: order.append("bind") or OK)
    server.post("/events").mock(
        side_effect=lambda r: order.append(json.loads(r.content)["event"]) or OK
    )
    with tracker() as xt:
        xt.bind("u", tg_id=42)
        xt.contact("u")
        xt.subscribed("u")
        assert xt.flush(5)
    # The bind before the uid's later events; the events among themselves in any order: they
    # share requests in flight (docs/client.md "Batches, requests in flight, and order").
    assert order[0] == "bind"
    assert sorted(order[1:]) == ["contact", "subscribed"]


def test_flush_gives_up_at_its_timeout_and_keeps_the_events(
    server: respx.MockRouter, tmp_path: Path
) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    spool = tmp_path / "spool.db"
    xt = XTracker(URL, "xt_sk_test", spool=spool, backoff=FAST)
    xt.contact("u")
    assert xt.flush(0.3).complete is False
    assert xt.close(0.1).pending == 1
    again = XTracker(URL, "xt_sk_test", spool=spool, backoff=FAST)
    assert again.stats().queued == 1  # still on disk for the next start
    again.close(0)


def test_new_click_returns_the_uid_and_retries(server: respx.MockRouter) -> None:
    clicks = server.post("/clicks").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"ok": True, "uid": "U1"})]
    )
    with tracker() as xt:
        assert xt.new_click(link_slug="chan", raw_query="fbclid=F") == "U1"
    assert clicks.call_count == 2
    assert json.loads(clicks.calls[0].request.content) == {
        "link_slug": "chan",
        "raw_query": "fbclid=F",
    }


def test_new_click_raises_what_the_server_said(server: respx.MockRouter) -> None:
    server.post("/clicks").mock(
        return_value=httpx.Response(
            422, json={"ok": False, "error": "invalid_field", "detail": "link_slug: no such link"}
        )
    )
    with tracker() as xt, pytest.raises(APIError, match="no such link") as caught:
        xt.new_click(link_slug="nope")
    assert caught.value.status == 422


def test_new_click_raises_a_transport_error_when_unreachable(server: respx.MockRouter) -> None:
    server.post("/clicks").mock(side_effect=httpx.ConnectError("down"))
    with tracker() as xt, pytest.raises(TransportError):
        xt.new_click(attempts=2)


def test_the_async_client_sends_retries_and_dead_letters(server: respx.MockRouter) -> None:
    deposits = iter([httpx.Response(503), OK])

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["event"] == "deposit":
            return next(deposits)
        return httpx.Response(400, json={"error": "bad"})

    events = server.post("/events").mock(side_effect=answer)

    async def run() -> Any:
        async with AsyncXTracker(URL, "xt_sk_test", in_memory=True, backoff=FAST) as xt:
            receipt = await xt.deposit("abc", 10, eid="t")
            assert receipt.event == "deposit"
            await xt.contact("abc")
            assert (await xt.flush(5)).complete
            return await xt.stats(), await xt.dead_letters()

    stats, dead = asyncio.run(run())
    assert events.call_count == 3
    assert stats.sent == 1 and stats.retried == 1 and stats.dead == 1
    assert dead[0].body["event"] == "contact"


def test_the_async_client_keeps_the_loop_free_while_the_disk_is_slow(
    server: respx.MockRouter,
) -> None:
    server.post("/events").mock(return_value=OK)
    stalls: list[float] = []

    async def run() -> None:
        xt = AsyncXTracker(URL, "xt_sk_test", in_memory=True, backoff=FAST)
        real_put = xt._core.spool.put

        def slow_put(*args: Any) -> Any:
            time.sleep(0.3)  # a disk that takes 300 ms to commit
            return real_put(*args)

        xt._core.spool.put = slow_put  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                before = loop.time()
                await asyncio.sleep(0.005)
                stalls.append(loop.time() - before - 0.005)

        beat = asyncio.create_task(heartbeat())
        await xt.contact("u1")
        done.set()
        await beat
        assert await xt.flush(5)
        await xt.close()

    asyncio.run(run())
    assert len(stalls) >= 20  # the loop kept beating during the 300 ms commit
    assert max(stalls) < 0.1


def test_the_sender_survives_a_spool_error(server: respx.MockRouter) -> None:
    import sqlite3

    server.post("/events").mock(return_value=OK)
    with tracker() as xt:
        real_ack = xt._core.spool.ack_many
        calls = {"n": 0}

        def flaky_ack(*args: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise sqlite3.OperationalError("database is locked")
            real_ack(*args)

        xt._core.spool.ack_many = flaky_ack  # type: ignore[method-assign]
        xt.contact("a")
        xt.contact("b")
        assert xt.flush(10)  # the item whose ack failed is sent again when its lease ends
        assert xt._thread.is_alive()
        assert "database is locked" in (xt.stats().last_error or "")


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_problem_keeps_the_events_instead_of_dead_lettering_them(
    server: respx.MockRouter, status: int
) -> None:
    events = server.post("/events").mock(
        side_effect=[
            httpx.Response(status, json={"error": "unauthorized", "detail": "bad key"}),
            OK,
        ]
    )
    with tracker() as xt:
        xt.contact("a")
        assert xt.flush(5)
        assert xt.stats().dead == 0 and xt.stats().sent == 1
    assert events.call_count == 2


def test_dead_letters_can_be_sent_again(server: respx.MockRouter) -> None:
    events = server.post("/events").mock(
        side_effect=[httpx.Response(422, json={"error": "invalid_field", "detail": "x"}), OK]
    )
    with tracker() as xt:
        xt.contact("a")
        assert xt.flush(5).complete and len(xt.dead_letters()) == 1
        assert xt.requeue_dead() == 1
        assert xt.flush(5)
        assert xt.dead_letters() == [] and xt.stats().sent == 1
    first, second = bodies(events)
    assert first == second


def test_events_without_eid_never_share_a_pinned_time(server: respx.MockRouter) -> None:
    server.post("/events").mock(return_value=OK)
    with tracker() as xt:
        times = [xt.deposit("same", "10.00").occurred_at_ms for _ in range(50)]
    assert len(set(times)) == 50  # else the server would count them as one deposit
    with tracker() as xt:
        by_tg = [xt.contact(tg_id=42).occurred_at_ms for _ in range(20)]
    assert len(set(by_tg)) == 20


def test_a_burst_of_events_of_many_users_keeps_the_clock_s_time(
    server: respx.MockRouter,
) -> None:
    """Only the same event of the same user needs a time of its own: a burst of thousands of
    users' events in a few milliseconds must not run the times ahead of the clock (the server
    would read them as events of the future, after a report's window)."""
    server.post("/events").mock(return_value=OK)
    ahead = []
    with tracker() as xt:
        for i in range(3000):
            pinned = xt.contact(f"burst-{i}").occurred_at_ms
            assert pinned is not None
            ahead.append(pinned - int(time.time() * 1000))  # the clock the client reads
    assert max(ahead) <= 0, f"pinned up to {max(ahead)} ms ahead of the clock"


def test_close_reports_the_same_result_twice(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    xt = tracker()
    xt.contact("a")
    first = xt.close(0.2)
    assert not first and first.pending == 1
    assert xt.close() is first


def test_backoff_grows_with_failures_in_a_row_even_when_items_are_dropped(
    server: respx.MockRouter,
) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    xt = XTracker(
        URL, "xt_sk_test", in_memory=True, max_rows=1, backoff=Backoff(base_s=0.001, cap_s=0.01)
    )
    for i in range(6):
        xt.contact(f"u{i}")  # each drops the previous one: every item is on its first attempt
        assert not xt.flush(0.05)
    assert xt._core.failures_in_row >= 6
    xt.close(0)


# --- storage errors and the exit deadline (issue 16 §2, §6) ------------------------------------


def unwritable_spool(tmp_path: Path) -> Path:
    """A spool path that cannot be created, even by root: its directory is a regular file."""
    (tmp_path / "not-a-dir").write_text("")
    return tmp_path / "not-a-dir" / "spool.db"


def test_a_spool_that_cannot_be_written_never_fails_a_call(
    server: respx.MockRouter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = server.post("/events").mock(return_value=OK)
    errors: list[DeliveryError] = []
    with caplog.at_level(logging.WARNING, logger="xtracker_client"):
        xt = tracker(in_memory=False, spool=unwritable_spool(tmp_path), on_error=errors.append)
        for i in range(20):
            xt.deposit(f"u{i}", "1.00", eid=f"tx-{i}")
        assert xt.flush(10)  # sent from memory
    stats = xt.stats()
    assert stats.sent == 20 and stats.spool_errors >= 1 and stats.held_in_memory == 0
    assert len(events.calls) == 20
    assert [(e.code, e.status) for e in errors] == [("spool_unwritable", None)]  # once
    warnings = [r for r in caplog.records if "cannot be written" in r.message]
    assert len(warnings) == 1 and "spool: " in (stats.last_error or "")
    xt.close()


def test_the_memory_buffer_of_a_failing_spool_is_bounded_and_reports_drops(
    server: respx.MockRouter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.post("/events").mock(return_value=httpx.Response(503))
    drops: list[tuple[str, str]] = []
    xt = tracker(
        in_memory=False,
        spool=unwritable_spool(tmp_path),
        max_rows=5,
        on_drop=lambda body, reason: drops.append((body["uid"], reason)),
    )
    with caplog.at_level(logging.WARNING, logger="xtracker_client"):
        for i in range(8):
            xt.contact(f"u{i}")
    assert drops == [("u0", "memory_full"), ("u1", "memory_full"), ("u2", "memory_full")]
    assert sum("memory buffer" in r.message for r in caplog.records) == 1  # not one per drop
    assert xt.stats().held_in_memory == 5 and xt.stats().dropped == {"memory_full": 3}
    xt.close(0)


def test_stats_after_close_answer_and_never_raise(server: respx.MockRouter) -> None:
    server.post("/events").mock(return_value=OK)
    xt = tracker()
    xt.contact("a")
    assert xt.close(5)
    assert xt.stats().sent == 1 and xt.stats().queued == 0

    async def main() -> None:
        axt = AsyncXTracker(URL, "xt_sk_test", in_memory=True, backoff=FAST)
        await axt.contact("a")
        assert await axt.close(5)
        assert (await axt.stats()).sent == 1

    asyncio.run(main())


def test_close_without_a_timeout_ends_at_the_shared_exit_deadline(
    server: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XTRACKER_EXIT_TIMEOUT", "0.5")
    server.post("/events").mock(return_value=httpx.Response(503))  # the tracker is away
    first, second = tracker(), tracker()
    first.contact("a")
    second.contact("b")
    started = time.monotonic()
    assert not first.close() and not second.close()  # one deadline for both
    took = time.monotonic() - started
    assert took < 5, f"{took:.1f} s: the two closes did not share the 0.5 s deadline"


def test_a_memory_spool_counts_what_close_could_not_send_as_lost(
    server: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    server.post("/events").mock(return_value=httpx.Response(503))
    lost: list[str] = []
    xt = tracker(on_drop=lambda body, reason: lost.append(reason))
    xt.contact("a")
    xt.contact("b")
    with caplog.at_level(logging.WARNING, logger="xtracker_client"):
        assert not xt.close(0.2)
    assert lost == ["lost_at_close", "lost_at_close"]
    assert xt.stats().dropped == {"lost_at_close": 2}
    assert any("2 events" in r.message and "lost" in r.message for r in caplog.records)


def test_the_exit_timeout_is_configured_once_for_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from xtracker_client import ConfigurationError, _exit, set_exit_timeout

    monkeypatch.setattr(_exit, "_configured", None)  # restored after the test
    assert _exit.exit_timeout() == 3.0  # the default leaves most of Docker's 10 s to the bot
    monkeypatch.setenv("XTRACKER_EXIT_TIMEOUT", "soon")
    with caplog.at_level(logging.WARNING, logger="xtracker_client"):
        assert _exit.exit_timeout() == 3.0
    assert "XTRACKER_EXIT_TIMEOUT='soon'" in caplog.text
    monkeypatch.setenv("XTRACKER_EXIT_TIMEOUT", "1.5")
    assert _exit.exit_timeout() == 1.5
    set_exit_timeout(0.25)  # the code's choice wins over the environment
    assert _exit.exit_timeout() == 0.25
    for bad in (-1, float("nan"), "3"):
        with pytest.raises(ConfigurationError):
            set_exit_timeout(bad)  # type: ignore[arg-type]


class _HeldTransport(httpx.BaseTransport):
    """Answers 200 to each request once ``release`` is set: a request in flight, held."""

    def __init__(self) -> None:
        self.entered, self.release, self.closed = threading.Event(), threading.Event(), False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        self.release.wait(30)  # bounded: a broken test ends
        return httpx.Response(404 if request.url.path.endswith("/batch") else 200, json=OK.json())

    def close(self) -> None:
        self.closed = True


def test_a_close_that_leaves_a_request_in_flight_lets_the_sender_close_the_pool(
    tmp_path: Path,
) -> None:
    """close(0) does not wait for a request in flight; the sender, when that request ends,
    closes the HTTP pool and the spool itself (left open, the pool's sockets reach the garbage
    collector unclosed)."""
    held = _HeldTransport()
    xt = XTracker(URL, "xt_sk_test", spool=tmp_path / "spool.db", transport=held, backoff=FAST)
    xt.contact("a")
    assert held.entered.wait(10), "the sender never sent"
    xt.close(0)
    assert xt._thread.is_alive() and not held.closed  # the request is still in flight
    held.release.set()
    xt._thread.join(10)
    assert not xt._thread.is_alive()
    assert held.closed and xt._http.is_closed
    with pytest.raises(Exception, match="closed"):  # the spool's connection is closed too
        xt._core.spool.last_id()


def test_the_clients_of_a_process_load_the_ca_bundle_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle costs ~50 ms of CPU: the clients share httpx's default context
    (made once, certificates and host names still checked) instead of each loading it."""
    from xtracker_client._tls import shared_context

    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    shared_context.cache_clear()
    clients = [XTracker("https://track.example.com", "xt_sk_test", in_memory=True) for _ in "ab"]

    async def run() -> None:
        async with AsyncXTracker("https://track.example.com", "xt_sk_test", in_memory=True):
            pass

    asyncio.run(run())
    for xt in clients:
        xt.close(0)
    assert len(loads) == 1, loads
    context = shared_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
