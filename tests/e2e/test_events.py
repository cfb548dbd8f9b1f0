"""POST /events and GET /e against a real server: statuses, dedup, money, attribution."""

from __future__ import annotations

import sqlite3
import time
import uuid

import httpx

from tests.conftest import Server, SpaceKeys

DEPOSIT = {"uid": "abc", "event": "deposit", "value": "25.00", "currency": "USD", "eid": "tx-1"}


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def inbox_rows(server: Server, where: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM inbox WHERE {where}", args).fetchall()
    finally:
        conn.close()


def test_documented_example_is_queued_then_duplicate_also_through_get_e(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    first = http.post("/events", json=DEPOSIT, headers=space.auth)
    assert first.status_code == 200
    assert first.json()["ok"] is True
    assert first.json()["status"] == "queued"
    inbox_id = first.json()["inbox_id"]
    assert isinstance(inbox_id, str) and inbox_id

    again = http.post("/events", json=DEPOSIT, headers=space.auth)
    assert again.json() == {**again.json(), "status": "duplicate", "inbox_id": inbox_id}

    query = {**DEPOSIT, "token": space.ingest_token}
    by_get = http.get("/e", params=query)
    assert by_get.status_code == 200
    assert by_get.json()["status"] == "duplicate"
    assert by_get.json()["inbox_id"] == inbox_id

    rows = inbox_rows(server, "space_id = ? AND eid = 'tx-1'", space.id)
    assert len(rows) == 1
    assert (rows[0]["value"], rows[0]["currency"]) == ("25.00", "USD")


def test_without_eid_same_occurred_at_dedups_and_different_does_not(
    space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    at = int(time.time() * 1000) - 60_000
    body = {"uid": uid, "event": "contact", "occurred_at_ms": at}
    assert http.post("/events", json=body, headers=space.auth).json()["status"] == "queued"
    assert http.post("/events", json=body, headers=space.auth).json()["status"] == "duplicate"
    later = {**body, "occurred_at_ms": at + 1}
    assert http.post("/events", json=later, headers=space.auth).json()["status"] == "queued"


def test_without_eid_or_time_each_request_is_a_new_event(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    for _ in range(2):
        http.post("/events", json={"uid": uid, "event": "subscribed"}, headers=space.auth)
    assert len(inbox_rows(server, "uid = ?", uid)) == 2


def test_same_eid_on_another_event_or_uid_is_not_a_duplicate(
    space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    base = {"uid": uid, "event": "registration", "eid": "e-1"}
    assert http.post("/events", json=base, headers=space.auth).json()["status"] == "queued"
    other_event = {**base, "event": "contact"}
    assert http.post("/events", json=other_event, headers=space.auth).json()["status"] == "queued"
    other_uid = {**base, "uid": unique()}
    assert http.post("/events", json=other_uid, headers=space.auth).json()["status"] == "queued"


def test_value_sent_as_json_number_is_kept_exactly(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    body = '{"uid": "UID", "event": "deposit", "value": 19.10, "currency": "eur", "eid": "n"}'
    body = body.replace("UID", uid)
    r = http.post("/events", content=body, headers=space.auth)
    assert r.status_code == 200, r.text
    row = inbox_rows(server, "uid = ?", uid)[0]
    assert (row["value"], row["currency"]) == ("19.10", "EUR")


def test_value_on_other_events_is_not_stored_and_the_answer_says_so(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    r = http.post(
        "/events", json={"uid": uid, "event": "registration", "value": "10"}, headers=space.auth
    )
    assert r.json()["status"] == "queued"
    assert "only on deposit" in r.json()["warnings"][0]
    row = inbox_rows(server, "uid = ?", uid)[0]
    assert row["value"] is None and row["currency"] is None


def test_deposit_without_value_is_recorded_without_revenue(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    r = http.post("/events", json={"uid": uid, "event": "deposit", "eid": "nv"}, headers=space.auth)
    assert r.json()["status"] == "queued"
    assert "no revenue" in r.json()["warnings"][0]
    row = inbox_rows(server, "uid = ?", uid)[0]
    assert row["value"] is None


def test_currency_defaults_to_usd(server: Server, space: SpaceKeys, http: httpx.Client) -> None:
    uid = unique()
    http.post("/events", json={"uid": uid, "event": "deposit", "value": 5}, headers=space.auth)
    assert inbox_rows(server, "uid = ?", uid)[0]["currency"] == "USD"


def test_occurred_at_defaults_to_receive_time(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    before = int(time.time() * 1000)
    http.post("/events", json={"uid": uid, "event": "contact"}, headers=space.auth)
    after = int(time.time() * 1000)
    row = inbox_rows(server, "uid = ?", uid)[0]
    assert before <= row["occurred_at_ms"] <= after


def test_get_e_reads_t_as_occurred_at_and_tolerates_network_quirks(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    at = int(time.time() * 1000) - 5_000
    # Empty parameters are absent (value= and eid=), and a stray second "?" separates params.
    # (bonus= is no alias of value; sumdep= would be: see test_postbacks.py.)
    raw = (
        f"/e?token={space.ingest_token}&event=deposit&uid={uid}&value=&eid="
        f"&t={at}?bonus=7&currency=usd"
    )
    r = http.get(raw)
    assert r.status_code == 200, r.text
    row = inbox_rows(server, "uid = ?", uid)[0]
    assert row["occurred_at_ms"] == at
    assert row["value"] is None  # value= was empty: a deposit without revenue
    assert row["source"] == "postback"


def test_get_e_with_stray_question_mark_before_a_known_parameter(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    r = http.get(f"/e?token={space.ingest_token}&uid={uid}&event=deposit?value=12.5&eid=q1")
    assert r.json()["status"] == "queued", r.text
    assert inbox_rows(server, "uid = ?", uid)[0]["value"] == "12.5"


def test_unicode_uid_and_eid_round_trip(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = "клик-" + uuid.uuid4().hex[:6] + "-✓"
    r = http.post(
        "/events", json={"uid": uid, "event": "contact", "eid": "ид-1"}, headers=space.auth
    )
    assert r.json()["status"] == "queued"
    assert inbox_rows(server, "uid = ?", uid)[0]["eid"] == "ид-1"


def test_small_values_are_stored_in_plain_notation(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    body = {"uid": uid, "event": "deposit", "value": "1E-8", "currency": "BTC"}
    assert http.post("/events", json=body, headers=space.auth).json()["status"] == "queued"
    assert inbox_rows(server, "uid = ?", uid)[0]["value"] == "0.00000001"


def test_an_event_field_holding_an_unfilled_macro_is_refused_and_nothing_is_stored(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid = unique()
    cases = [
        ({"eid": "{transaction_id}"}, "eid", "{transaction_id}"),
        ({"uid": "{{ uid }}"}, "uid", "{{ uid }}"),
        ({"value": "%amount%"}, "value", "%amount%"),
        ({"currency": "${currency}"}, "currency", "${currency}"),
        ({"tg_id": "#tg_id#"}, "tg_id", "#tg_id#"),
        ({"event": "%7Bevent%7D"}, "event", "{event}"),
    ]
    for change, field, macro in cases:
        body = {**DEPOSIT, "uid": uid, **change}
        r = http.post("/events", json=body, headers=space.auth)
        assert r.status_code == 400, (change, r.text)
        assert (r.json()["error"], r.json()["field"], r.json()["macro"]) == (
            "unfilled_macro", field, macro
        )  # fmt: skip
        assert r.json()["detail"].startswith(f"{field} holds an unfilled macro {macro}")
    assert inbox_rows(server, "space_id = ? AND uid = ?", space.id, uid) == []
    # The same event with real values is stored.
    r = http.post("/events", json={**DEPOSIT, "uid": uid, "eid": "order#7"}, headers=space.auth)
    assert r.json()["status"] == "queued"
