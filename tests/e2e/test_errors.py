"""Every error of the ingress API, each with its status and a JSON body that says what is
wrong; and none of them stores anything."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, ServerFactory, SpaceKeys


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """One client for the module's requests (a client per test cost more than its requests)."""
    with server.client() as client:
        yield client


def inbox_count(server: Server) -> int:
    conn = sqlite3.connect(server.db)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
    finally:
        conn.close()


def assert_error(r: httpx.Response, status: int, code: str, *words: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False
    assert body["error"] == code
    for word in words:
        assert word in body["detail"], body
    return dict(body)


@pytest.mark.parametrize(
    "body",
    [b"{bad json", b"", b"   ", b"[1, 2]", b'"a string"', b"\xff\xfe", b'{"uid": NaN}'],
    ids=["broken", "empty", "blank", "array", "string", "not-utf8", "nan"],
)
def test_malformed_body_is_400(
    server: Server, space: SpaceKeys, http: httpx.Client, body: bytes
) -> None:
    before = inbox_count(server)
    r = http.post("/events", content=body, headers=space.auth)
    assert_error(r, 400, "malformed")
    assert inbox_count(server) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer xt_sk_not-a-real-secret"},
    ],
    ids=["none", "empty", "basic", "wrong"],
)
def test_missing_or_bad_bearer_is_401(http: httpx.Client, headers: dict[str, str]) -> None:
    r = http.post("/events", json={"uid": "a", "event": "contact"}, headers=headers)
    assert_error(r, 401, "unauthorized", "Bearer")


def test_ingest_token_is_not_a_bearer_and_bearer_is_not_a_token(
    space: SpaceKeys, http: httpx.Client
) -> None:
    r = http.post(
        "/events",
        json={"uid": "a", "event": "contact"},
        headers={"Authorization": f"Bearer {space.ingest_token}"},
    )
    assert_error(r, 401, "unauthorized")
    r = http.get("/e", params={"token": space.bearer, "uid": "a", "event": "contact"})
    assert_error(r, 401, "unauthorized", "token")


def test_get_without_token_is_401(http: httpx.Client) -> None:
    assert_error(http.get("/e", params={"uid": "a", "event": "contact"}), 401, "unauthorized")
    assert_error(http.get("/bind", params={"uid": "a", "tg_id": 1}), 401, "unauthorized")


def test_body_over_64_kib_is_413(server: Server, space: SpaceKeys, http: httpx.Client) -> None:
    big = b'{"uid": "' + b"a" * (64 * 1024) + b'", "event": "contact"}'
    before = inbox_count(server)
    assert_error(http.post("/events", content=big, headers=space.auth), 413, "too_large")

    def chunks():  # no Content-Length: the limit holds for a streamed body too
        yield b'{"uid": "'
        for _ in range(70):
            yield b"a" * 1024
        yield b'", "event": "contact"}'

    r = http.post("/events", content=chunks(), headers=space.auth)
    assert_error(r, 413, "too_large")
    assert inbox_count(server) == before


def test_unknown_event_is_422_and_lists_the_four(space: SpaceKeys, http: httpx.Client) -> None:
    r = http.post("/events", json={"uid": "a", "event": "purchase"}, headers=space.auth)
    body = assert_error(r, 422, "invalid_field", "contact", "subscribed", "registration", "deposit")
    assert body["field"] == "event"


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"event": None}, "event", "one of"),
        ({"value": "-5"}, "value", "greater than zero"),
        ({"value": "0"}, "value", "greater than zero"),
        ({"value": "abc"}, "value", "not a decimal"),
        ({"value": "1e30"}, "value", "absurdly large"),
        ({"value": "Infinity"}, "value", "finite"),
        ({"value": "1.123456789"}, "value", "decimal places"),
        ({"value": True}, "value", "boolean"),
        ({"value": [1]}, "value", "decimal amount"),
        ({"currency": "US"}, "currency", "ISO 4217"),
        ({"currency": "U$D"}, "currency", "ISO 4217"),
        ({"currency": 840}, "currency", "ISO 4217"),
        ({"occurred_at_ms": 1_700_000_000}, "occurred_at_ms", "seconds"),
        ({"occurred_at_ms": 5}, "occurred_at_ms", "before 2015"),
        ({"occurred_at_ms": 4_000_000_000_000}, "occurred_at_ms", "future"),
        ({"occurred_at_ms": "soon"}, "occurred_at_ms", "milliseconds"),
        ({"occurred_at_ms": 1.5e12 + 0.5}, "occurred_at_ms", "milliseconds"),
        ({"tg_id": -1}, "tg_id", "positive"),
        ({"tg_id": "x"}, "tg_id", "Telegram user id"),
        ({"tg_id": False}, "tg_id", "boolean"),
        ({"uid": "a" * 200}, "uid", "longer than 128"),
        ({"uid": "a\nb"}, "uid", "control"),
        ({"uid": {"x": 1}}, "uid", "string"),
        ({"eid": "e" * 300}, "eid", "longer than 256"),
        ({"valeu": "25.00"}, "valeu", "not a known field"),
    ],
)
def test_invalid_field_is_422_naming_the_field(
    server: Server,
    space: SpaceKeys,
    http: httpx.Client,
    patch: dict[str, object],
    field: str,
    words: str,
) -> None:
    body = {"uid": "u-invalid", "event": "deposit", "value": "1.00", **patch}
    before = inbox_count(server)
    r = http.post("/events", json=body, headers=space.auth)
    result = assert_error(r, 422, "invalid_field", words)
    assert result["field"] == field
    assert inbox_count(server) == before


def test_get_e_names_t_in_its_errors(space: SpaceKeys, http: httpx.Client) -> None:
    r = http.get(
        "/e", params={"token": space.ingest_token, "uid": "a", "event": "contact", "t": "12"}
    )
    assert assert_error(r, 422, "invalid_field")["field"] == "t"


def test_bind_requires_uid_and_integer_tg_id(space: SpaceKeys, http: httpx.Client) -> None:
    r = http.post("/bind", json={"tg_id": 5}, headers=space.auth)
    assert assert_error(r, 422, "invalid_field", "required")["field"] == "uid"
    r = http.post("/bind", json={"uid": "a", "tg_id": "five"}, headers=space.auth)
    assert assert_error(r, 422, "invalid_field")["field"] == "tg_id"


def test_unknown_path_is_json_404_and_wrong_method_is_json_405(http: httpx.Client) -> None:
    assert_error(http.get("/nope"), 404, "not_found")
    assert_error(http.put("/events", json={}), 405, "method_not_allowed")


def test_rate_limit_is_429_with_retry_after(start_app: ServerFactory) -> None:
    server = start_app("--rate-limit", "2")
    space = server.new_space()
    with server.client() as http:
        answers = [
            http.post(
                "/events", json={"uid": "r", "event": "contact", "eid": f"r{i}"}, headers=space.auth
            )
            for i in range(12)
        ]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert_error(limited[0], 429, "rate_limited")
    assert int(limited[0].headers["Retry-After"]) >= 1
    accepted = [r for r in answers if r.status_code == 200]
    # The limit is per credential, and what was refused was not stored.
    assert inbox_count(server) == len(accepted)
    with server.client() as http:
        other = server.new_space("other")
        r = http.post("/events", json={"uid": "r", "event": "contact"}, headers=other.auth)
    assert r.status_code == 200


def test_an_error_does_not_disturb_a_concurrent_valid_event(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    eid = f"ok-{time.time_ns()}"
    bad = http.post(
        "/events", json={"uid": "x", "event": "deposit", "value": "-1"}, headers=space.auth
    )
    good = http.post(
        "/events",
        json={"uid": "x", "event": "deposit", "value": "1", "eid": eid},
        headers=space.auth,
    )
    assert bad.status_code == 422
    assert good.json()["status"] == "queued"
