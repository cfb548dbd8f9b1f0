"""``GET /metrics`` on a real server: who may read it, and that what the server did shows in it
exactly, read with Prometheus's own parser. Counters are compared before and after what a test
does, so the tests of this module can share one server."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    ADMIN_TOKEN,
    TLS_VERIFY,
    AppServer,
    Server,
    ServerFactory,
    SpaceKeys,
    free_port,
)
from tests.databases import migrated
from tests.server.test_writer_process import _children
from tests.sink import Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIMIT = 3  # clicks recorded per address per minute on this module's server
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
Samples = dict[tuple[str, str], float]


def scrape(server: Server, headers: dict[str, str] = ADMIN) -> Samples:
    """Every sample of ``/metrics``, by name and labels (``k=v,k=v``, sorted)."""
    r = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10, verify=TLS_VERIFY)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
    return out


def grew(before: Samples, after: Samples, name: str) -> dict[str, float]:
    """How much each labelled sample of ``name`` grew (only those that did)."""
    out = {}
    for (n, labels), value in after.items():
        if n == name and value != before.get((n, labels), 0.0):
            out[labels] = value - before.get((n, labels), 0.0)
    return out


def eventually(server: Server, check: Callable[[Samples], bool], timeout: float = 20) -> Samples:
    """Scrape until ``check`` holds (what the worker or the writer does happens in another task
    or process: nothing to await from here), or fail with the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(server)
        if check(got):
            return got
        assert time.monotonic() < deadline, {k: v for k, v in got.items() if "_bucket" not in k[0]}
        time.sleep(0.05)


#: This module's server: LIMIT clicks per address, X-Forwarded-For believed from loopback.
ARGS = ("--click-limit-per-ip", str(LIMIT), "--trusted-proxies", "127.0.0.1",
        "--allow-private-destinations")  # fmt: skip


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = migrated(tmp_path_factory.mktemp("metrics") / "xtracker.db")
    server = AppServer(db=db, extra_args=ARGS)
    server.start()
    yield server
    server.stop()


def new_space(server: Server, name: str) -> SpaceKeys:
    """A space made through the admin API (quicker than the CLI's process)."""
    r = httpx.post(
        f"{server.url}/admin/spaces",
        json={"name": name},
        headers=ADMIN,
        timeout=10,
        verify=TLS_VERIFY,
    )
    assert r.status_code == 201, r.text
    return SpaceKeys(**{k: v for k, v in r.json().items() if k != "ok"})


@pytest.fixture(scope="module")
def space(srv: Server) -> SpaceKeys:
    return new_space(srv, "metered")


def admin_post(server: Server, path: str, body: dict[str, str]) -> None:
    r = httpx.post(f"{server.url}{path}", json=body, headers=ADMIN, timeout=10, verify=TLS_VERIFY)
    assert r.status_code == 201, r.text


def make_link(server: Server, space: SpaceKeys, slug: str) -> None:
    body = {"slug": slug, "kind": "bot", "target": "offer_bot"}
    admin_post(server, f"/admin/spaces/{space.id}/links", body)


def add_webhook(server: Server, space: SpaceKeys, url: str) -> None:
    admin_post(server, f"/admin/spaces/{space.id}/destinations", {"kind": "webhook", "url": url})


def visit(server: Server, path: str, ip: str, agent: str = PHONE) -> httpx.Response:
    headers = {"User-Agent": agent, "X-Forwarded-For": ip}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=10, verify=TLS_VERIFY)


def test_metrics_without_a_credential_is_401_json(srv: Server, space: SpaceKeys) -> None:
    for headers in ({}, {"Authorization": "Bearer xt_admin_wrong"}, space.auth):
        r = httpx.get(f"{srv.url}/metrics", headers=headers, timeout=10, verify=TLS_VERIFY)
        assert r.status_code == 401, r.text
        body = r.json()
        assert (body["ok"], body["error"]) == (False, "unauthorized") and body["detail"]


def test_the_admin_token_reads_the_prometheus_text_format(srv: Server) -> None:
    names = {name for name, _ in scrape(srv)}
    assert {
        "xtracker_http_requests_total",
        "xtracker_write_batch_operations_count",
        "xtracker_write_commit_seconds_count",
        "xtracker_writer_restarts_total",
        "xtracker_writer_running",
        "xtracker_live_streams",
        "xtracker_outbox_deliveries",
        "xtracker_destinations_unhealthy",
        "xtracker_clicks_unrecorded_total",
    } <= names


def test_requests_are_counted_by_route_template_and_status_hot_paths_included(
    srv: Server, space: SpaceKeys
) -> None:
    make_link(srv, space, "counted")
    before = scrape(srv)
    with srv.client() as http:
        for n in range(7):  # N events
            r = http.post("/events", json={"uid": f"u{n}", "event": "contact"}, headers=space.auth)
            assert r.status_code == 200, r.text
        assert http.post("/events", json={"event": "contact"}).status_code == 401
        r = http.get("/e", params={"token": space.ingest_token, "event": "contact", "uid": "p1"})
        assert r.status_code == 200, r.text
        assert http.get("/no/such/thing").status_code == 404
        assert http.get(f"/admin/spaces/{space.id}/links", headers=ADMIN).status_code == 200
    for n in range(5):  # M clicks, each from its own address
        assert visit(srv, "/r/counted", ip=f"198.51.100.{n + 1}").status_code == 302
    assert visit(srv, "/l/counted", ip="198.51.100.50").status_code == 200
    assert visit(srv, "/r/nobody-has-this", ip="198.51.100.51").status_code == 404
    after = scrape(srv)

    assert grew(before, after, "xtracker_http_requests_total") == {
        "method=POST,route=/events,status=200": 7,
        "method=POST,route=/events,status=401": 1,
        "method=GET,route=/e,status=200": 1,
        "method=GET,route=unmatched,status=404": 1,
        "method=GET,route=/admin/spaces/{space_id}/links,status=200": 1,
        "method=GET,route=/r/{slug},status=302": 5,
        "method=GET,route=/l/{slug},status=200": 1,
        "method=GET,route=/r/{slug},status=404": 1,
        "method=GET,route=/metrics,status=200": 1,  # the scrape before
    }
    assert not any("counted" in labels for _, labels in after)  # templates, never paths


def test_write_batches_and_their_commit_time_are_observed(srv: Server, space: SpaceKeys) -> None:
    before = scrape(srv)
    with srv.client() as http:
        for n in range(4):
            r = http.post("/events", json={"uid": f"b{n}", "event": "contact"}, headers=space.auth)
            assert r.status_code == 200, r.text
    after = scrape(srv)
    batches = grew(before, after, "xtracker_write_batch_operations_count")[""]
    assert batches >= 1
    assert grew(before, after, "xtracker_write_batch_operations_sum")[""] >= 4
    assert grew(before, after, "xtracker_write_commit_seconds_count")[""] == batches
    assert after["xtracker_write_failed_batches_total", ""] == 0


def test_unrecorded_clicks_are_counted_by_reason(srv: Server, space: SpaceKeys) -> None:
    make_link(srv, space, "flooded")
    before = scrape(srv)
    answers = [visit(srv, "/r/flooded", ip="203.0.113.9") for _ in range(LIMIT + 2)]
    answers += [visit(srv, "/r/flooded", ip="203.0.113.10", agent="curl/8.5.0")]
    answers += [visit(srv, "/l/flooded", ip="203.0.113.11", agent="Googlebot/2.1")]
    assert [r.status_code for r in answers] == [302] * (LIMIT + 3) + [200]
    after = scrape(srv)
    assert grew(before, after, "xtracker_clicks_unrecorded_total") == {
        "reason=limited": 2,
        "reason=bot": 2,
    }


def test_a_delivery_is_counted_by_destination_kind_and_outcome(
    srv: Server, space: SpaceKeys, sink: Sink
) -> None:
    mine = new_space(srv, "delivered")
    add_webhook(srv, mine, f"{sink.url}/hook")
    before = scrape(srv)
    with srv.client() as http:
        r = http.post("/events", json={"uid": "d1", "event": "deposit", "value": "5"},
                      headers=mine.auth)  # fmt: skip
        assert r.status_code == 200, r.text
    assert len(sink.wait_for(1)) == 1
    after = eventually(
        srv, lambda s: bool(grew(before, s, "xtracker_deliveries_total")), timeout=20
    )
    assert grew(before, after, "xtracker_deliveries_total") == {"kind=webhook,outcome=sent": 1}
    latency = grew(before, after, "xtracker_delivery_request_seconds_count")
    assert latency == {"kind=webhook": 1}


def test_the_outbox_depth_shows_a_delivery_waiting_for_a_dead_destination(srv: Server) -> None:
    mine = new_space(srv, "dead-end")
    add_webhook(srv, mine, f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    before = scrape(srv)
    with srv.client() as http:
        r = http.post("/events", json={"uid": "x1", "event": "contact"}, headers=mine.auth)
        assert r.status_code == 200, r.text

    def waiting(s: Samples) -> bool:  # the gauge is read again every few seconds: it may lag
        tried = grew(before, s, "xtracker_deliveries_total") == {"kind=webhook,outcome=retry": 1}
        return tried and grew(before, s, "xtracker_outbox_deliveries") == {"state=retrying": 1}

    # tried once, refused, and back in the outbox to retry (in about 30 s: the default)
    after = eventually(srv, waiting)
    assert after["xtracker_outbox_deliveries", "state=retrying"] >= 1


def test_a_killed_writer_process_counts_a_restart(start_app: ServerFactory) -> None:
    # The app in this process with its writer in a process (as `serve` runs it): that writer is
    # the one writer child of this process (this module's other servers write on a thread).
    srv = start_app(*ARGS, XTRACKER_WRITER_PROCESS="on")
    space = new_space(srv, "writer")
    before = scrape(srv)
    (writer,) = _children(os.getpid())
    os.kill(writer, signal.SIGKILL)

    restarts = before["xtracker_writer_restarts_total", ""]
    after = eventually(srv, lambda s: s["xtracker_writer_restarts_total", ""] == restarts + 1)
    assert after["xtracker_writer_running", ""] == 1
    with srv.client() as http:  # and writes go on
        r = http.post("/events", json={"uid": "w1", "event": "contact"}, headers=space.auth)
        assert r.status_code == 200, r.text


def test_an_open_live_stream_shows_in_the_gauge(srv: Server, space: SpaceKeys) -> None:
    assert scrape(srv)["xtracker_live_streams", ""] == 0
    url = f"{srv.url}/admin/spaces/{space.id}/stream"
    with (
        httpx.Client(timeout=10, verify=TLS_VERIFY) as http,
        http.stream("GET", url, headers=space.auth) as stream,
    ):
        assert stream.status_code == 200
        chunks = stream.iter_raw()  # kept: a dropped iterator closes the response
        assert next(chunks).startswith(b"retry:")  # the stream's first bytes
        assert scrape(srv)["xtracker_live_streams", ""] == 1
    # the client hung up
    eventually(srv, lambda s: s["xtracker_live_streams", ""] == 0)


def test_a_metrics_token_reads_metrics_and_nothing_else(start_app: ServerFactory) -> None:
    token = "xt-metrics-0123456789abcdefghij"
    server = start_app(XTRACKER_METRICS_TOKEN=token)
    with_token = {"Authorization": f"Bearer {token}"}
    assert "xtracker_http_requests_total" in {name for name, _ in scrape(server, with_token)}
    assert "xtracker_http_requests_total" in {name for name, _ in scrape(server, ADMIN)}
    with server.client() as http:
        assert http.get("/admin/spaces", headers=with_token).status_code == 401
        assert http.get("/metrics").status_code == 401


def test_openmetrics_is_served_to_a_scraper_that_asks_and_a_bad_accept_gets_text(
    srv: Server,
) -> None:
    asks = {**ADMIN, "Accept": "application/openmetrics-text; version=1.0.0"}
    r = httpx.get(f"{srv.url}/metrics", headers=asks, timeout=10, verify=TLS_VERIFY)
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/openmetrics-text"
    )
    names = {f.name for f in openmetrics_families(r.text)}
    assert {"xtracker_http_requests", "xtracker_writer_restarts"} <= names
    odd = {**ADMIN, "Accept": "application/openmetrics-text; version=abc"}
    r = httpx.get(f"{srv.url}/metrics", headers=odd, timeout=10, verify=TLS_VERIFY)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_the_documented_alerts_parse_and_name_metrics_the_server_serves(srv: Server) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = docs[docs.index("### Alerts") :].split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = yaml.safe_load(block)["groups"][0]["rules"]
    assert {"XtrackerWritesFailing", "XtrackerOutboxGrowing", "XtrackerDestinationUnhealthy"} <= {
        rule["alert"] for rule in rules
    }
    r = httpx.get(f"{srv.url}/metrics", headers=ADMIN, timeout=10, verify=TLS_VERIFY)
    served = set()
    for family in text_string_to_metric_families(r.text):
        served |= {family.name, f"{family.name}_total"} | {s.name for s in family.samples}
    named = {name for rule in rules for name in re.findall(r"xtracker_[a-z_]+", rule["expr"])}
    assert named and named <= served, named - served
