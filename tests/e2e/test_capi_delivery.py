"""Facebook CAPI end to end: a landing click, a bind and a deposit reach a fake Graph endpoint
(a real local HTTP server) as the official SDK would have built them; a revoked token holds
the destination instead of burning retries; one bad event does not sink its batch."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, TLS_VERIFY, Server, ServerFactory, SpaceKeys
from tests.e2e.test_delivery import deliveries, settled
from tests.fb_oracle import sdk_event, sdk_hash
from tests.sink import Received, Reply, Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PIXEL = "1234567890123"
TOKEN = "EAAB-test-token-not-real"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile"
GRAPH_OK = Reply(200, b'{"events_received": 1, "messages": [], "fbtrace_id": "T"}')
TOKEN_EXPIRED = Reply(
    400,
    b'{"error": {"message": "Error validating access token: Session has expired", '
    b'"type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "X"}}',
)


def capi_server(start: ServerFactory, graph: Sink) -> Server:
    return start(
        *FAST_RETRY,
        "--fb-graph-url",
        graph.url,
        "--fb-api-version",
        "v21.0",
        "--public-url",
        "https://go.example.com",
    )


def add_capi(server: Server, space: SpaceKeys, *extra: str) -> int:
    added = server.cli_json(
        "destination",
        "add",
        "--space",
        str(space.id),
        "--kind",
        "fb_capi",
        "--pixel-id",
        PIXEL,
        "--access-token",
        TOKEN,
        *extra,
    )
    assert added["secret"] is None  # the token is never shown back
    return int(added["id"])


def landing_click(server: Server, space: SpaceKeys, fbclid: str) -> tuple[str, dict[str, Any]]:
    server.cli(
        "link",
        "create",
        "--space",
        str(space.id),
        "--slug",
        "ad1",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
    )
    with httpx.Client(
        verify=TLS_VERIFY, base_url=server.url, headers={"User-Agent": PHONE}
    ) as phone:
        r = phone.get(f"/r/ad1?fbclid={fbclid}")
    uid = r.headers["location"].split("start=fb_", 1)[1]
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    click = dict(conn.execute("SELECT * FROM clicks WHERE uid = ?", (uid,)).fetchone())
    conn.close()
    return uid, click


def wait_unhealthy(server: Server, space: SpaceKeys, timeout: float = 10.0) -> dict[str, Any]:
    """The destination as listed once the worker (another process) has flagged it."""
    deadline = time.monotonic() + timeout
    while True:
        listed: dict[str, Any] = server.cli_json("destination", "list", "--space", str(space.id))[0]
        if not listed["healthy"] or time.monotonic() > deadline:
            return listed
        time.sleep(0.05)


def set_token(server: Server, space: SpaceKeys, dest: int, token: str) -> None:
    server.cli(
        "destination",
        "set-token",
        "--space",
        str(space.id),
        "--id",
        str(dest),
        "--access-token",
        token,
    )


def events_of(request: Received) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = request.json()["data"]
    return data


def test_a_deposit_reaches_capi_as_the_sdk_builds_it(start_app: ServerFactory, sink: Sink) -> None:
    sink.default = GRAPH_OK
    server = capi_server(start_app, sink)
    space = server.new_space()
    add_capi(server, space, "--test-event-code", "TEST123")
    uid, click = landing_click(server, space, "IwAR_Kept_Case")
    with server.client() as http:
        http.post("/bind", json={"uid": uid, "tg_id": 777000111}, headers=space.auth)
        r = http.post(
            "/events",
            json={
                "uid": uid,
                "event": "deposit",
                "value": "25.00",
                "currency": "USD",
                "eid": "tx-9",
            },
            headers=space.auth,
        )
    assert r.status_code == 200
    (request,) = sink.wait_for(1)
    assert request.method == "POST"
    assert request.target == f"/v21.0/{PIXEL}/events"  # the token is not in the URL
    body = request.json()
    assert body["access_token"] == TOKEN and body["test_event_code"] == "TEST123"
    (event,) = body["data"]
    row = settled(server, 1, "sent")[0]
    expected = sdk_event(
        event_name="Purchase",
        event_time=event["event_time"],
        event_id=row["event_id"],
        event_source_url="https://go.example.com/l/ad1",
        user_data={
            "fbc": click["fbc"],
            "fbp": click["fbp"],
            "client_ip_address": "127.0.0.1",
            "client_user_agent": PHONE,
            "external_ids": [sdk_hash("external_id", "777000111")],
        },
        custom_data={"value": 25.0, "currency": "USD", "order_id": "tx-9"},
    )
    assert event == expected
    assert click["fbc"].endswith(".IwAR_Kept_Case")
    assert abs(event["event_time"] - time.time()) < 60


def test_token_190_flags_the_destination_and_holds_events_until_a_new_token(
    start_app: ServerFactory, sink: Sink
) -> None:
    sink.default = TOKEN_EXPIRED
    server = capi_server(start_app, sink)
    space = server.new_space()
    dest = add_capi(server, space)
    uid, _ = landing_click(server, space, "F")
    with server.client() as http:
        for i in range(5):
            http.post(
                "/events",
                json={"uid": uid, "event": "deposit", "value": f"{i + 1}", "eid": f"t{i}"},
                headers=space.auth,
            )
    sink.wait_for(1)
    listed = wait_unhealthy(server, space)
    assert listed["healthy"] is False and "190" in listed["health_reason"]
    assert "token" in listed["health_reason"]
    # The worker claims ahead: a batch it held when the flag came is settled a moment later,
    # its attempt refunded too. Once that is done, the broken token has burned no attempt.
    deadline = time.monotonic() + 20  # a hang guard: this takes well under a second
    rows = deliveries(server)
    while any(r["attempts"] for r in rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = deliveries(server)
    assert len(rows) == 5 and all(r["status"] in ("pending", "retrying") for r in rows)
    assert all(r["attempts"] == 0 for r in rows)  # the broken token burned no attempt
    seen = len(sink.received)

    sink.default = GRAPH_OK
    set_token(server, space, dest, "EAAB-new-token")
    assert len(settled(server, 5, "sent")) == 5
    batches = sink.received[seen:]
    assert sum(len(events_of(b)) for b in batches) >= 5
    assert any(len(events_of(b)) > 1 for b in batches)  # held events go out together
    assert batches[-1].json()["access_token"] == "EAAB-new-token"


def test_one_bad_event_does_not_sink_its_batch(start_app: ServerFactory, sink: Sink) -> None:
    bad_value = "13"

    def graph(req: Received) -> Reply:
        if "oauth" in req.target:
            return GRAPH_OK
        events = events_of(req)
        if any(e.get("custom_data", {}).get("value") == int(bad_value) for e in events):
            return Reply(
                400,
                json.dumps(
                    {
                        "error": {
                            "message": "Invalid parameter",
                            "type": "OAuthException",
                            "code": 100,
                            "error_subcode": 2804019,
                            "fbtrace_id": "B",
                        }
                    }
                ).encode(),
            )
        return Reply(200, json.dumps({"events_received": len(events)}).encode())

    sink.default = TOKEN_EXPIRED  # hold everything first, so the events go out as one batch
    server = capi_server(start_app, sink)
    space = server.new_space()
    dest = add_capi(server, space)
    uid, _ = landing_click(server, space, "F")
    with server.client() as http:
        for value in ("10", "11", "12", bad_value, "14", "15"):
            http.post(
                "/events",
                json={"uid": uid, "event": "deposit", "value": value, "eid": f"v{value}"},
                headers=space.auth,
            )
    sink.wait_for(1)
    assert not wait_unhealthy(server, space)["healthy"]
    sink.responder = graph
    set_token(server, space, dest, "EAAB-new")
    sent = settled(server, 5, "sent")
    failed = settled(server, 1, "failed_permanently")
    assert len(sent) == 5 and len(failed) == 1
    assert "2804019" in failed[0]["last_error"]
    delivered = {
        e["custom_data"]["value"]
        for r in sink.received[1:]
        for e in events_of(r)
        if r.responder_status == 200
    }
    assert delivered == {10, 11, 12, 14, 15}


def test_an_event_without_a_landing_click_fails_with_a_clear_reason(
    start_app: ServerFactory, sink: Sink
) -> None:
    sink.default = GRAPH_OK
    server = capi_server(start_app, sink)
    space = server.new_space()
    add_capi(server, space)
    with server.client() as http:
        http.post(
            "/events",
            json={"uid": "no-click", "event": "deposit", "value": "5"},
            headers=space.auth,
        )
    row = settled(server, 1, "failed_permanently")[0]
    assert re.search(r"event_source_url and client_user_agent", row["last_error"])
    assert sink.received == []


def test_a_pixel_test_needs_a_test_event_code_unless_live(
    start_app: ServerFactory, sink: Sink
) -> None:
    sink.default = GRAPH_OK
    server = capi_server(start_app, sink)
    space = server.new_space()
    dest = str(add_capi(server, space))
    base = (
        "destination",
        "test",
        "--space",
        str(space.id),
        "--id",
        dest,
        "--allow-private-destinations",
        "--json",
    )
    refused = server.cli(*base, check=False)
    assert refused.returncode == 2 and "real purchase" in refused.stderr
    assert sink.received == []
    with server.client() as http:  # the server's own settings point at the fake Graph API
        url = f"/admin/spaces/{space.id}/destinations/{dest}/test"
        r = http.post(url, json={}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["field"] == "test_event_code"
        ok = http.post(url, json={"test_event_code": "TEST42"}, headers=ADMIN).json()
    assert ok["ok"] is True
    assert sink.received[0].json()["test_event_code"] == "TEST42"
    assert sink.received[0].json()["data"][0]["event_name"] == "Purchase"
