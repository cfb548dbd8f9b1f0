"""Test events end to end (issue 17 §2, docs/api.md#test-events): ``test`` on POST /events, on
POST /events/batch and ``test=1`` on a postback are stored and shown (answer, postback log, live
tail), never counted in reports nor sent to destinations, and deduplicated apart from the real
events: a test ``tx-1`` never swallows the real ``tx-1``, and the other way round."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, Server, ServerFactory, SpaceKeys
from tests.e2e.test_reports import _tail_lines
from tests.sink import Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _event(http: httpx.Client, space: SpaceKeys, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/events", json=body, headers=space.auth)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _funnel(http: httpx.Client, space: SpaceKeys, **params: Any) -> dict[str, Any]:
    r = http.get(f"/admin/spaces/{space.id}/reports/funnel", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_a_test_event_has_its_own_dedup_namespace_and_never_counts(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("testev")
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    deposit = {"uid": uid, "event": "deposit", "value": "99.00", "eid": "tx-1"}
    test = _event(http, space, {**deposit, "test": True})
    assert (test["status"], test["test"]) == ("queued", True)
    real = _event(http, space, {**deposit, "value": "10.00"})
    assert real["status"] == "queued" and "test" not in real  # not swallowed by the test
    assert real["inbox_id"] != test["inbox_id"]
    again = _event(http, space, {**deposit, "test": True})
    assert (again["status"], again["inbox_id"]) == ("duplicate", test["inbox_id"])
    again = _event(http, space, {**deposit, "value": "10.00"})
    assert (again["status"], again["inbox_id"]) == ("duplicate", real["inbox_id"])
    # a batch too; and a test without a uid is not "unattributed" either
    r = http.post("/events", json={"tg_id": 77, "event": "registration", "test": 1},
                  headers=space.auth)  # fmt: skip
    assert r.status_code == 200 and r.json()["test"] is True, r.text
    r = http.post("/events/batch", headers=space.auth, json={"events": [
        {"uid": uid, "event": "contact", "test": True},
        {"uid": uid, "event": "deposit", "value": "7.00", "eid": "tx-2", "test": True},
    ]})  # fmt: skip
    assert r.status_code == 200 and r.json()["queued"] == 2, r.text
    assert all(res["test"] is True for res in r.json()["results"])
    got = _funnel(http, space, days=1)
    uids = {s["step"]: s["uids"] for s in got["steps"]}
    assert uids == {"click": 1, "contact": 0, "subscribed": 0, "registration": 0, "deposit": 1}
    assert (got["deposits"], got["revenue"]) == (1, {"USD": "10.00"})
    assert got["unattributed"]["registration"] == 0
    links = http.get(f"/admin/spaces/{space.id}/reports/links", headers=ADMIN).json()
    assert [(r["deposits"], r["revenue"]) for r in links["links"]] == [(1, {"USD": "10.00"})]


def test_a_test_postback_is_logged_as_a_test_and_not_counted(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("testpb")
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    base = {"token": space.ingest_token, "uid": uid, "event": "deposit", "value": "5",
            "eid": "tx-1"}  # fmt: skip
    r = http.get("/e", params={**base, "test": "1"})
    assert r.status_code == 200 and r.json()["test"] is True, r.text
    r = http.get("/e", params=base)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    r = http.get("/e", params={**base, "test": "maybe"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_field", r.text
    entries = server.cli_json("postback", "log", "--space", str(space.id))
    tests = [e["test"] for e in entries if e["outcome"] != "rejected"]
    assert sorted(tests) == [False, True], entries
    text = server.cli("postback", "log", "--space", str(space.id)).stdout
    assert "TEST (not counted)" in text
    got = _funnel(http, space, days=1)
    assert (got["deposits"], got["revenue"]) == (1, {"USD": "5"})


def test_a_test_event_is_shown_in_the_tail_marked_test(server: Server, http: httpx.Client) -> None:
    space = server.new_space("testtail")
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    _event(http, space, {"uid": uid, "event": "contact", "test": True})
    _event(http, space, {"uid": uid, "event": "subscribed"})
    lines = _tail_lines(server, space, "0-0-0", 3)  # the click, then both events
    marks = {e["event"]: e["test"] for e in lines if e["type"] == "event"}
    assert marks == {"contact": True, "subscribed": False}, lines


def test_a_test_event_is_not_sent_to_destinations(start_app: ServerFactory, sink: Sink) -> None:
    server = start_app(*FAST_RETRY)
    space = server.new_space("testdest")
    server.cli("destination", "add", "--space", str(space.id), "--kind", "webhook", "--name",
               "hook", "--url", f"{sink.url}/ok", "--allow-private-destinations")  # fmt: skip
    with server.client() as http:
        uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
        _event(http, space, {"uid": uid, "event": "deposit", "value": "1", "eid": "t",
                             "test": True})  # fmt: skip
        _event(http, space, {"uid": uid, "event": "deposit", "value": "2", "eid": "r"})
        deadline = time.monotonic() + 20
        while True:
            data = http.get(f"/admin/spaces/{space.id}/reports/deliveries", headers=ADMIN).json()
            hook = data["destinations"][0]
            if hook["sent"] >= 1:
                break
            assert time.monotonic() < deadline, data
            time.sleep(0.1)  # the worker settles in its own time
    assert (hook["sent"], hook["pending"], hook["retrying"]) == (1, 0, 0)
    received = sink.wait_for(1)
    assert [r.json()["eid"] for r in received] == ["r"], received
