"""Destinations and the outbox end to end: a real server, real local HTTP sinks, retry
timings shortened through the settings."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, AppServer, Server, ServerFactory, SpaceKeys
from tests.databases import migrated
from tests.sink import Received, Reply, Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def deliveries(
    server: Server, where: str = "1", *args: object, space: SpaceKeys | None = None
) -> list[dict[str, Any]]:
    """The outbox's rows (those of ``space`` only, on a server the module's tests share)."""
    if space is not None:
        where, args = f"space_id = ? AND ({where})", (space.id, *args)
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM deliveries WHERE {where}", args)]
    finally:
        conn.close()


def attempts(server: Server, delivery_id: int) -> list[dict[str, Any]]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY id", (delivery_id,)
        )
        return [dict(r) for r in rows]
    finally:
        conn.close()


def settled(
    server: Server,
    count: int,
    status: str,
    timeout: float = 20.0,
    space: SpaceKeys | None = None,
) -> list[dict[str, Any]]:
    """Poll the outbox until ``count`` rows (of ``space``, if given) have ``status`` (the worker
    may run in another process; there is no event to wait on across it)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(server, "status = ?", status, space=space)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def add_webhook(server: Server, space: SpaceKeys, url: str, *extra: str) -> dict[str, Any]:
    data: dict[str, Any] = server.cli_json(
        "destination",
        "add",
        "--space",
        str(space.id),
        "--kind",
        "webhook",
        "--url",
        url,
        "--allow-private-destinations",
        *extra,
    )
    return data


def deposit(http: httpx.Client, space: SpaceKeys, uid: str, eid: str, value: str = "25.00") -> str:
    r = http.post(
        "/events",
        json={"uid": uid, "event": "deposit", "value": value, "eid": eid},
        headers=space.auth,
    )
    assert r.status_code == 200, r.text
    inbox_id: str = r.json()["inbox_id"]
    return inbox_id


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with short retries for the module's tests, each in a space of its own (what
    they look at in the outbox is their space's), each of whose deliveries is settled (sent or
    given up) when it ends: none is left retrying into another test's sink."""
    db = migrated(tmp_path_factory.mktemp("fast") / "xtracker.db")
    server = AppServer(db=db, extra_args=FAST_RETRY)
    server.start()
    yield server
    server.stop()


def test_503_twice_then_200_arrives_three_times_with_one_webhook_id_and_a_valid_signature(
    fast: Server, sink: Sink
) -> None:
    space = fast.new_space()
    added = add_webhook(fast, space, f"{sink.url}/hook")
    assert set(added) == {"id", "kind", "secret"} and added["secret"].startswith("whsec_")
    sink.script = [Reply(503), Reply(503)]
    with fast.client() as http:
        http.post(
            "/clicks", json={"raw_query": "fbclid=F1&campaign_name=Spring"}, headers=space.auth
        )
        deposit(http, space, "abc", "tx-1")

    got = sink.wait_for(3)
    assert len(got) == 3
    assert len({r.headers["webhook-id"] for r in got}) == 1
    row = settled(fast, 1, "sent", space=space)[0]
    assert row["attempts"] == 3 and row["event_id"] == got[0].headers["webhook-id"]
    tries = attempts(fast, row["id"])
    assert [a["status_code"] for a in tries] == [503, 503, 200]
    assert all(a["latency_ms"] >= 0 for a in tries)

    last = got[-1]
    Webhook(added["secret"]).verify(last.body, last.headers)  # raises if the signature is bad
    body = last.json()
    assert body["event"] == "deposit" and body["canonical"] == "deposit"
    assert body["event_id"] == row["event_id"]
    assert body["data"] == {"value": "25.00", "currency": "USD"}
    assert body["click"]["uid"] == "abc"
    assert set(body["click"]) >= {
        "uid",
        "tg_id",
        "fbclid",
        "campaign_id",
        "campaign_name",
        "adset_id",
        "adset_name",
        "ad_id",
        "ad_name",
        "placement",
        "country",
        "link",
    }
    assert isinstance(body["occurred_at_ms"], int)


def test_a_400_is_tried_once_fails_permanently_and_replay_sends_it_again(
    fast: Server, sink: Sink
) -> None:
    space = fast.new_space()
    add_webhook(fast, space, f"{sink.url}/hook")
    sink.script = [Reply(400, b'{"error": "bad payload"}')]
    with fast.client() as http:
        deposit(http, space, "u1", "tx-400")
    sink.wait_for(1)
    row = settled(fast, 1, "failed_permanently", space=space)[0]
    assert row["attempts"] == 1 and "400" in row["last_error"]
    assert attempts(fast, row["id"])[0]["excerpt"] == '{"error": "bad payload"}'
    assert len(sink.received) == 1

    listed = fast.cli_json(
        "outbox", "list", "--space", str(space.id), "--status", "failed_permanently"
    )
    assert [d["id"] for d in listed] == [row["id"]]
    assert fast.cli_json("outbox", "replay", "--space", str(space.id)) == {"replayed": 1}
    got = sink.wait_for(2)
    assert got[1].headers["webhook-id"] == got[0].headers["webhook-id"]
    assert settled(fast, 1, "sent", space=space)[0]["id"] == row["id"]


def test_a_sink_down_for_a_while_then_back_gets_every_event(
    start_app: ServerFactory, tmp_path: Any
) -> None:
    server = start_app(*FAST_RETRY)
    space = server.new_space()
    down = Sink()
    port = down.port
    down.close()  # nothing listens there now: connection refused
    add_webhook(server, space, f"http://127.0.0.1:{port}/hook")
    with server.client() as http:
        for i in range(30):
            deposit(http, space, f"u{i}", f"tx-{i}", value=f"{i + 1}.00")
    # Wait until every delivery has failed at least once and is waiting to retry.
    assert len(settled(server, 30, "retrying")) == 30
    back = Sink.__new__(Sink)
    _rebind(back, port)
    try:
        got = back.wait_for(30)
        assert len(settled(server, 30, "sent")) == 30
        values = sorted(float(r.json()["data"]["value"]) for r in got)
        assert values[:30] == [float(i + 1) for i in range(30)]
        assert len({r.headers["webhook-id"] for r in got}) == 30
    finally:
        back.close()


def _rebind(sink: Sink, port: int) -> None:
    """Start a sink on a given port (the destination's URL stays the same)."""
    from http.server import ThreadingHTTPServer

    fresh = Sink()
    handler = fresh.server.RequestHandlerClass
    fresh.server.shutdown()
    fresh.server.server_close()
    sink.__dict__.update(fresh.__dict__)
    sink.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    sink.server.daemon_threads = True
    sink.port = port
    import threading

    sink.thread = threading.Thread(target=sink.server.serve_forever, daemon=True)
    sink.thread.start()


def test_s2s_postback_example_byte_for_byte(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    template = (
        f"{sink.url}/postback?clickid={{uid}}&goal={{canonical}}&sum={{value}}&cur={{currency}}"
    )
    fast.cli_json(
        "destination",
        "add",
        "--space",
        str(space.id),
        "--kind",
        "s2s_postback",
        "--url-template",
        template,
        "--allow-private-destinations",
    )
    with fast.client() as http:
        deposit(http, space, "abc123", "tx-s2s")
        http.post(
            "/events", json={"uid": "a b&c", "event": "contact", "eid": "c1"}, headers=space.auth
        )
    got = sink.wait_for(2)
    targets = sorted(r.target for r in got)
    assert targets == [
        # Macros are URL-encoded; missing values are empty.
        "/postback?clickid=a%20b%26c&goal=contact&sum=&cur=",
        "/postback?clickid=abc123&goal=deposit&sum=25.00&cur=USD",
    ]


def test_s2s_expected_status_is_an_exact_match(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    fast.cli_json(
        "destination",
        "add",
        "--space",
        str(space.id),
        "--kind",
        "s2s_postback",
        "--url-template",
        f"{sink.url}/pb?c={{uid}}",
        "--expected-status",
        "202",
        "--allow-private-destinations",
    )
    sink.default = Reply(200)
    with fast.client() as http:
        deposit(http, space, "u", "tx")
    row = settled(fast, 1, "failed_permanently", space=space)[0]
    assert "expected 202" in row["last_error"]


def test_private_destinations_are_refused_without_the_setting(server: Server) -> None:
    space = server.new_space("private")
    for url in (
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://localhost/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
    ):
        proc = server.cli(
            "destination",
            "add",
            "--space",
            str(space.id),
            "--kind",
            "webhook",
            "--url",
            url,
            "--json",
            check=False,
        )
        assert proc.returncode != 0 and "address" in proc.stderr, (url, proc.stderr)
    with server.client() as http:
        r = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={"kind": "webhook", "url": "http://192.168.1.5/x"},
            headers=ADMIN,
        )
    assert r.status_code == 422 and r.json()["field"] == "url"
    assert "private" in r.json()["detail"]


def test_private_address_is_refused_again_at_send_time(
    start_app: ServerFactory, sink: Sink
) -> None:
    """A destination added while allowed, sent by a server that does not allow it."""
    server = start_app("--retry-base-s", "0.2", "--retry-cap-s", "1")
    space = server.new_space()
    add_webhook(server, space, f"{sink.url}/hook")  # the CLI was allowed, the server is not
    with server.client() as http:
        deposit(http, space, "u", "tx")
    row = settled(server, 1, "failed_permanently")[0]
    assert "loopback" in row["last_error"]
    assert sink.received == []


def test_non_global_and_embedded_ipv4_addresses_are_refused_at_creation(server: Server) -> None:
    space = server.new_space("non-global")
    with server.client() as http:
        for url in (
            "http://100.100.100.200/latest/meta-data",  # cloud metadata, in 100.64.0.0/10
            "http://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
            "http://[::127.0.0.1]/x",  # IPv4-compatible 127.0.0.1
            "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of 169.254.169.254
            "http://198.18.0.1/x",
            "http://224.0.0.1/x",
        ):
            r = http.post(
                f"/admin/spaces/{space.id}/destinations",
                json={"kind": "s2s_postback", "url_template": url + "?c={uid}"},
                headers=ADMIN,
            )
            assert r.status_code == 422 and r.json()["field"] == "url_template", (url, r.text)
    proc = server.cli(
        "destination", "add", "--space", str(space.id), "--kind", "webhook", "--url",
        "http://100.100.100.200/latest/meta-data", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--url: 100.100.100.200 is a shared (carrier-grade NAT) address" in proc.stderr
    assert server.cli_json("destination", "list", "--space", str(space.id)) == []


def test_a_proxy_on_a_private_address_is_refused_at_creation_and_update(server: Server) -> None:
    space = server.new_space("private-proxy")
    pixel = ["--kind", "fb_capi", "--pixel-id", "1234567890", "--access-token", "EAAB"]
    proc = server.cli(
        "destination", "add", "--space", str(space.id), *pixel, "--proxy",
        "http://user:pw@127.0.0.1:3128", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "--proxy: 127.0.0.1 is a loopback address" in proc.stderr
    pixel_body = {"kind": "fb_capi", "pixel_id": "1234567890", "access_token": "EAAB"}
    with server.client() as http:
        base = f"/admin/spaces/{space.id}/destinations"
        r = http.post(base, json={**pixel_body, "proxy": "http://10.0.0.3:3128"}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["field"] == "proxy", r.text
        assert "10.0.0.3 is a private" in r.json()["detail"]
        created = http.post(base, json=pixel_body, headers=ADMIN)
        assert created.status_code == 201, created.text
        for proxy in ("http://[::ffff:127.0.0.1]:3128", "http://100.100.100.200:3128"):
            r = http.patch(f"{base}/{created.json()['id']}", json={"proxy": proxy}, headers=ADMIN)
            assert r.status_code == 422 and r.json()["field"] == "proxy", (proxy, r.text)
        (dest,) = http.get(base, headers=ADMIN).json()["destinations"]
    assert dest["proxy"] is None


def test_delivery_through_a_proxy_on_loopback_is_refused_at_send(
    start_app: ServerFactory, sink: Sink
) -> None:
    """The sink plays a proxy on 127.0.0.1 (added while allowed); the server does not allow it,
    so the delivery fails permanently and the proxy never hears of it."""
    server = start_app("--retry-base-s", "0.2", "--retry-cap-s", "1")
    space = server.new_space()
    add_webhook(server, space, "http://partner.test/hook", "--proxy", sink.url)
    with server.client() as http:
        deposit(http, space, "u", "tx")
    (row,) = settled(server, 1, "failed_permanently")
    assert row["last_error"].startswith("proxy: 127.0.0.1 is a loopback address")
    assert row["attempts"] == 1
    assert sink.received == []


def test_destination_test_refuses_a_proxy_on_loopback(server: Server, sink: Sink) -> None:
    space = server.new_space("probe-proxy")
    dest = add_webhook(server, space, "http://partner.test/hook", "--proxy", sink.url)
    with server.client() as http:
        r = http.post(
            f"/admin/spaces/{space.id}/destinations/{dest['id']}/test", json={}, headers=ADMIN
        )
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    assert r.json()["reason"].startswith("proxy: 127.0.0.1 is a loopback address")
    proc = server.cli(
        "destination", "test", "--space", str(space.id), "--id", str(dest["id"]), "--json",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and json.loads(proc.stdout)["reason"].startswith("proxy: ")
    assert sink.received == []


def test_header_values_with_control_characters_are_refused(server: Server) -> None:
    space = server.new_space("headers")
    with server.client() as http:
        for value in ("v\r\nX-Injected: 1", "a\nb", "nul\x00", "tab\tx", "del\x7f", "rtl\u202e"):
            r = http.post(
                f"/admin/spaces/{space.id}/destinations",
                json={"kind": "webhook", "url": "http://127.0.0.1:9/x", "headers": {"X-A": value}},
                headers=ADMIN,
            )
            assert r.status_code == 422 and r.json()["field"] == "headers", (value, r.text)
            assert "X-A" in r.json()["detail"] and "U+" in r.json()["detail"]
    proc = server.cli(
        "destination", "add", "--space", str(space.id), "--kind", "webhook", "--url",
        "http://127.0.0.1:9/x", "--header", "X-A: v\rX-Injected: 1",
        "--allow-private-destinations", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "U+000D" in proc.stderr, proc.stderr
    assert server.cli_json("destination", "list", "--space", str(space.id)) == []


def test_event_maps_rename_and_silence_events(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    dest = add_webhook(fast, space, f"{sink.url}/hook")
    changed = fast.cli_json(
        "eventmap", "set", "--destination", str(dest["id"]), "deposit=ftd", "contact="
    )
    assert changed["event_map"] == {
        "contact": "",
        "subscribed": "subscribed",
        "registration": "registration",
        "deposit": "ftd",
        "deposit.reversed": "deposit.reversed",
    }
    with fast.client() as http:
        http.post("/events", json={"uid": "u", "event": "contact"}, headers=space.auth)
        deposit(http, space, "u", "tx")
    got = sink.wait_for(1)
    assert [r.json()["event"] for r in got] == ["ftd"]
    assert len(deliveries(fast, space=space)) == 1  # no row at all for the silenced contact


def test_a_destination_added_later_gets_only_later_events(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    with fast.client() as http:
        deposit(http, space, "u", "before")
        add_webhook(fast, space, f"{sink.url}/hook")
        deposit(http, space, "u", "after")
    got = sink.wait_for(1)
    assert settled(fast, 1, "sent", space=space)
    assert len(deliveries(fast, space=space)) == 1 and len(got) == 1


def test_a_duplicate_event_fans_out_nothing(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    add_webhook(fast, space, f"{sink.url}/hook")
    with fast.client() as http:
        deposit(http, space, "u", "once")
        deposit(http, space, "u", "once")
    assert len(settled(fast, 1, "sent", space=space)) == 1
    assert len(deliveries(fast, space=space)) == 1


def test_a_failing_destination_does_not_slow_the_others(fast: Server) -> None:
    slow, quick = Sink(), Sink()
    answer = threading.Event()  # the slow sink answers nothing until the quick one has all

    def hang(req: Received) -> Reply:
        answer.wait(60)  # a hang guard only: set at the latest when the test ends
        return Reply()

    slow.responder = hang
    try:
        space = fast.new_space()
        add_webhook(fast, space, f"{slow.url}/slow")
        add_webhook(fast, space, f"{quick.url}/quick")
        started = time.monotonic()
        with fast.client() as http:
            for i in range(20):
                deposit(http, space, "u", f"t{i}")
        quick.wait_for(20)
        elapsed = time.monotonic() - started
        # The slow sink has not answered one of its 20 (8 wait on the wire): behind them, the
        # quick one would have got nothing. It must not wait behind them.
        assert elapsed < 6.0, elapsed
        assert len(slow.received) < 20
        answer.set()
        slow.wait_for(20)  # the rest go once it answers: none is left retrying when it closes
        assert len(settled(fast, 40, "sent", space=space)) == 40
    finally:
        answer.set()
        slow.close()
        quick.close()


def test_at_most_eight_requests_at_once_go_to_one_webhook(fast: Server, sink: Sink) -> None:
    # The worker claims ahead (up to 32 x 8 rows), but only 8 requests are ever on the wire to
    # one destination; every event still arrives once, and every row ends sent.
    lock = threading.Lock()
    now = [0]
    peak = [0]

    def slow(req: Received) -> Reply:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.15)
        with lock:
            now[0] -= 1
        return Reply()

    sink.responder = slow
    space = fast.new_space()
    add_webhook(fast, space, f"{sink.url}/hook")
    with fast.client() as http:
        for i in range(40):
            deposit(http, space, f"u{i}", f"t{i}")
    got = sink.wait_for(40)
    assert len(got) == 40
    assert len({r.headers["webhook-id"] for r in got}) == 40
    assert 2 <= peak[0] <= 8, peak[0]
    assert len(settled(fast, 40, "sent", space=space)) == 40


def test_retry_after_is_honoured(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    add_webhook(fast, space, f"{sink.url}/hook")
    sink.script = [Reply(429, headers={"Retry-After": "2"})]
    with fast.client() as http:
        deposit(http, space, "u", "tx")
    got = sink.wait_for(2, timeout=30)
    assert got[1].at - got[0].at >= 1.9  # base is 0.2 s: only Retry-After explains the wait


def test_gives_up_after_the_max_age(start_app: ServerFactory, sink: Sink) -> None:
    server = start_app(*FAST_RETRY, "--retry-max-age-s", "2")
    space = server.new_space()
    add_webhook(server, space, f"{sink.url}/hook")
    sink.default = Reply(503)
    with server.client() as http:
        deposit(http, space, "u", "tx")
    row = settled(server, 1, "failed_permanently")[0]
    assert row["last_error"].startswith("gave up after") and "503" in row["last_error"]
    assert row["attempts"] >= 2


def test_destination_admin_api_never_shows_secrets(server: Server) -> None:
    space = server.new_space("admin-dest")
    with server.client() as http:
        r = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={"kind": "fb_capi", "pixel_id": "1234567890", "access_token": "EAAB-secret-token"},
            headers=ADMIN,
        )
        assert r.status_code == 201 and r.json()["secret"] is None
        listed = http.get(f"/admin/spaces/{space.id}/destinations", headers=ADMIN)
        assert "EAAB-secret-token" not in listed.text
        assert listed.json()["destinations"][0]["event_map"]["deposit"] == "Purchase"
        bad = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={"kind": "fb_capi", "pixel_id": "12"},
            headers=ADMIN,
        )
        assert bad.status_code == 422 and bad.json()["field"] == "pixel_id"
        bad = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={"kind": "webhook", "url": "https://x.example", "pixel_id": "1"},
            headers=ADMIN,
        )
        assert bad.status_code == 422 and bad.json()["field"] == "pixel_id"
        bad = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={"kind": "s2s_postback", "url_template": "https://x.example/?a={nope}"},
            headers=ADMIN,
        )
        assert bad.status_code == 422 and "nope" in bad.json()["detail"]
    listed_cli = server.cli("destination", "list", "--space", str(space.id), "--json").stdout
    assert "EAAB-secret-token" not in listed_cli
    assert "EAAB-secret-token" not in server.log_text()
    assert json.loads(listed_cli)[0]["has_secret"] is True


def test_destination_test_sends_now(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    dest = add_webhook(fast, space, f"{sink.url}/hook")
    result = json.loads(
        fast.cli(
            "destination",
            "test",
            "--space",
            str(space.id),
            "--id",
            str(dest["id"]),
            "--allow-private-destinations",
            "--json",
        ).stdout
    )
    assert result["ok"] is True and result["status_code"] == 200
    assert sink.received[0].headers["webhook-id"] == result["event_id"]
    sink.default = Reply(500)
    proc = fast.cli(
        "destination",
        "test",
        "--space",
        str(space.id),
        "--id",
        str(dest["id"]),
        "--allow-private-destinations",
        "--json",
        check=False,
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["status_code"] == 500


def test_a_disabled_destination_gets_nothing_new(fast: Server, sink: Sink) -> None:
    space = fast.new_space()
    dest = add_webhook(fast, space, f"{sink.url}/hook")
    fast.cli("destination", "disable", "--space", str(space.id), "--id", str(dest["id"]))
    with fast.client() as http:
        deposit(http, space, "u", "tx")
    assert deliveries(fast, space=space) == []


def test_proxy_passwords_and_header_values_are_not_shown(server: Server) -> None:
    space = server.new_space("masked")
    with server.client() as http:
        r = http.post(
            f"/admin/spaces/{space.id}/destinations",
            json={
                "kind": "webhook",
                "url": "https://hooks.example.com/x",
                "headers": {"X-Api-Key": "k-123-secret"},
                "proxy": "http://user:pw-secret@proxy.example.com:3128",
            },
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        listed = http.get(f"/admin/spaces/{space.id}/destinations", headers=ADMIN).json()
    (dest,) = listed["destinations"]
    assert dest["proxy"] == "http://user:…@proxy.example.com:3128"
    assert dest["config"]["headers"] == {"X-Api-Key": "…"}
    cli = server.cli("destination", "list", "--space", str(space.id), "--json").stdout
    for secret in ("k-123-secret", "pw-secret"):
        assert secret not in json.dumps(listed) and secret not in cli
