"""POST /events/batch against a real server: one result per event in order, a bad event
refused alone, the whole request refused only for a bad envelope, one commit (a 503 stores
nothing of the batch), and the same credential, dedup and limits as POST /events."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence

import httpx

from tests.conftest import Server, ServerFactory, SpaceKeys
from xtracker_wire import MAX_BATCH_EVENTS, EventBatchOut


def unique(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stored(server: Server, space: SpaceKeys) -> list[tuple[str, str | None, str | None]]:
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT event, uid, eid FROM inbox WHERE space_id = ? ORDER BY id", (space.id,)
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


def post_batch(http: httpx.Client, space: SpaceKeys, events: Sequence[object]) -> httpx.Response:
    return http.post("/events/batch", json={"events": events}, headers=space.auth)


def until_stored(http: httpx.Client, space: SpaceKeys, event: Mapping[str, object]) -> None:
    deadline = time.monotonic() + 60
    while http.post("/events", json=event, headers=space.auth).status_code != 200:
        assert time.monotonic() < deadline


def test_each_event_gets_its_result_in_order_and_a_bad_one_is_refused_alone(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("batch-order")
    uid = unique()
    known = {"event": "registration", "uid": uid, "eid": "reg-1"}
    assert http.post("/events", json=known, headers=space.auth).json()["status"] == "queued"
    events: list[object] = [
        {"event": "contact", "uid": uid, "eid": "c-1"},
        {"event": "deposit", "uid": uid, "value": "25.00", "eid": "tx-1"},
        {"event": "purchase", "uid": uid},  # no such event
        known,  # stored before: a duplicate
        "not an object",
        {"event": "deposit", "uid": uid, "value": "30.00", "eid": "tx-1"},  # repeat, other amount
        {"event": "deposit", "uid": uid, "eid": "{transaction_id}"},  # an unfilled macro
        {"event": "deposit", "uid": uid, "value": "1", "currency": "ZZZ", "eid": "tx-2"},
    ]
    r = post_batch(http, space, events)
    assert r.status_code == 200, r.text
    answer = EventBatchOut.model_validate(r.json())
    assert [x.status for x in answer.results] == [
        "queued", "queued", "refused", "duplicate", "refused", "duplicate", "refused", "refused",
    ]  # fmt: skip
    assert (answer.queued, answer.duplicate, answer.refused) == (2, 2, 4)
    refusals = [(x.http_status, x.error, x.field) for x in answer.results if not x.ok]
    assert refusals == [
        (422, "invalid_field", "event"),
        (400, "malformed", None),
        (400, "unfilled_macro", "eid"),
        (422, "invalid_field", "currency"),
    ]
    results = answer.results
    assert results[5].inbox_id == results[1].inbox_id and results[5].conflict is not None
    assert stored(server, space) == [
        ("registration", uid, "reg-1"),
        ("contact", uid, "c-1"),
        ("deposit", uid, "tx-1"),
    ]
    # Each answer is what POST /events answers for the same event.
    single = http.post("/events", json=events[1], headers=space.auth).json()
    assert single == results[1].model_dump(exclude_none=True) | {"status": "duplicate"}


def test_an_event_that_breaks_the_json_rules_is_refused_alone(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("batch-json")
    body = (
        '{"events": [{"event": "contact", "uid": "j1"},'
        ' {"event": "contact", "uid": "j2", "uid": "j3"},'
        ' {"event": "contact", "uid": "j4", "tg_id": 1e999999}]}'
    )
    r = http.post("/events/batch", content=body, headers=space.auth)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["queued", "refused", "refused"]
    assert (results[1]["http_status"], results[1]["error"]) == (400, "malformed")
    assert (results[2]["http_status"], results[2]["field"]) == (422, "tg_id")
    assert [uid for _, uid, _ in stored(server, space)] == ["j1"]


def test_a_bad_envelope_refuses_the_whole_request(server: Server, http: httpx.Client) -> None:
    space = server.new_space("batch-envelope")
    one = {"event": "contact", "uid": "e1"}
    cases: list[tuple[object, int, str]] = [
        ([one], 400, "malformed"),  # a list, not {"events": [...]}
        ({"events": one}, 422, "invalid_field"),
        ({}, 422, "invalid_field"),
        ({"events": []}, 422, "invalid_field"),
        ({"events": [one], "space": 1}, 422, "invalid_field"),
        ({"events": [one] * (MAX_BATCH_EVENTS + 1)}, 413, "too_large"),
    ]
    for body, status, error in cases:
        r = http.post("/events/batch", json=body, headers=space.auth)
        assert (r.status_code, r.json()["error"], r.json()["ok"]) == (status, error, False), body
    big = {"event": "contact", "uid": "e1", "eid": "x" * 100}
    too_big = json.dumps({"events": [big] * 10_000})  # over 1 MiB
    r = http.post("/events/batch", content=too_big, headers=space.auth)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")
    assert stored(server, space) == []


def test_it_takes_the_bearer_only(server: Server, http: httpx.Client) -> None:
    space = server.new_space("batch-auth")
    body = {"events": [{"event": "contact", "uid": "a1"}]}
    assert http.post("/events/batch", json=body).status_code == 401
    ingest = {"Authorization": f"Bearer {space.ingest_token}"}
    assert http.post("/events/batch", json=body, headers=ingest).status_code == 401
    assert http.post("/events/batch", json=body, headers=space.auth).status_code == 200


def test_500_events_are_stored_in_one_request(server: Server, http: httpx.Client) -> None:
    space = server.new_space("batch-full")
    events = [{"event": "contact", "uid": f"f{i}"} for i in range(MAX_BATCH_EVENTS)]
    r = post_batch(http, space, events)
    assert r.status_code == 200 and r.json()["queued"] == MAX_BATCH_EVENTS
    ids = [int(x["inbox_id"]) for x in r.json()["results"]]
    assert ids == sorted(ids) and len(set(ids)) == MAX_BATCH_EVENTS
    assert [uid for _, uid, _ in stored(server, space)] == [f"f{i}" for i in range(500)]


def test_a_503_stores_nothing_of_the_batch_and_a_resend_stores_it_once(
    start_app: ServerFactory,
) -> None:
    server = start_app("--write-timeout-s", "1", "--rate-limit", "0", "--no-worker")
    space = server.new_space("batch-503")
    events = [{"event": "contact", "uid": f"d{i}", "eid": "c"} for i in range(100)]
    with server.client() as http:
        until_stored(http, space, events[0])  # a busy machine may miss a 1 s deadline
        blocker = sqlite3.connect(server.db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            r = post_batch(http, space, events)
        finally:
            time.sleep(1.5)  # past the deadline, with the lock still held
            blocker.execute("ROLLBACK")
            blocker.close()
        assert r.status_code == 503, r.text
        assert (r.json()["error"], r.json()["reason"]) == ("unavailable", "timeout")
        assert int(r.headers["Retry-After"]) > 0
        # Writes are done in order: once a later one is stored, the batch was done or dropped.
        until_stored(http, space, {"event": "subscribed", "uid": "d0"})
        assert stored(server, space) == [("contact", "d0", "c"), ("subscribed", "d0", None)]
        again = post_batch(http, space, events).json()
        assert (again["queued"], again["duplicate"]) == (99, 1)
    assert len(stored(server, space)) == 101
