"""The client against a mocked server (respx): receipts, every retry class, Retry-After,
dead letters, the drop policy, hooks, validation at the call site, new_click."""

from __future__ import annotations

import asyncio
import json
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
        assert xt.flush(5)
        (dead,) = xt.dead_letters()
        stats = xt.stats()
    assert events.call_count == 1  # never retried
    assert stats.dead == 1 and stats.queued == 0
    assert "longer than 128" in dead.reason and dead.status == 422 and dead.body["uid"] == "u1"
    assert errors[0].status == 422 and errors[0].code == "invalid_field"


def test_a_failing_hook_never_crashes_the_sender(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=[httpx.Response(400, json={"error": "x"}), OK])

    def explode(error: DeliveryError) -> None:
        raise RuntimeError("hook bug")

    with tracker(on_error=explode) as xt:
        xt.contact("a")
        xt.contact("b")
        assert xt.flush(5)
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
        (lambda xt: xt.bind("u", -3), "Telegram user id"),
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
        xt.bind("u", 42)
        xt.contact("u")
        xt.subscribed("u")
        assert xt.flush(5)
    assert order == ["bind", "contact", "subscribed"]


def test_flush_gives_up_at_its_timeout_and_keeps_the_events(
    server: respx.MockRouter, tmp_path: Path
) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    spool = tmp_path / "spool.db"
    xt = XTracker(URL, "xt_sk_test", spool=spool, backoff=FAST)
    xt.contact("u")
    assert xt.flush(0.3) is False
    assert xt.close(0.1) is False
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
            assert await xt.flush(5)
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
        assert xt.flush(5) and len(xt.dead_letters()) == 1
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


def test_close_reports_the_same_result_twice(server: respx.MockRouter) -> None:
    server.post("/events").mock(side_effect=httpx.ConnectError("down"))
    xt = tracker()
    xt.contact("a")
    assert xt.close(0.2) is False
    assert xt.close() is False


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
