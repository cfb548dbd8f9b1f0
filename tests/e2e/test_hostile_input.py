"""Hostile input gets a 4xx that names the field, never a 500 and never a silent acceptance:
lone surrogates, repeated JSON names, digits that are not ASCII, amounts with '_', currencies
nobody knows, invisible characters in ids, odd numbers in admin and report parameters, dates
at the end of the calendar, a forged Host on the trailing-slash redirect, and database files
that others could read."""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, Server, ServerFactory, SpaceKeys
from tests.inprocess import cli_in_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """One client for the module's requests (a client per test cost more than its requests)."""
    with server.client() as client:
        yield client


def unique(prefix: str = "h") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def refused(r: httpx.Response, status: int, field: str, *words: str) -> dict[str, Any]:
    """A JSON error of ``status`` naming ``field``, whose detail holds each of ``words``."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["ok"] is False
    assert body["error"] == {400: "malformed", 404: "not_found", 422: "invalid_field"}[status]
    if status != 404:
        assert body["field"] == field, body
    for word in words:
        assert word in body["detail"], body
    return body


def rejected_postbacks(http: httpx.Client, space_id: int) -> list[dict[str, Any]]:
    r = http.get(
        f"/admin/spaces/{space_id}/postbacks", params={"outcome": "rejected"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["postbacks"]
    return rows


# ----------------------------------------------------------------------------- lone surrogates

SURROGATE_UID = b'{"event": "contact", "uid": "a\\ud800b"}'


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/events", SURROGATE_UID, "uid"),
        ("/events", b'{"event": "contact", "uid": "a", "eid": "\\udfff"}', "eid"),
        ("/bind", b'{"uid": "\\ud800", "tg_id": 5}', "uid"),
        ("/clicks", b'{"campaign_name": "spring \\ud83d"}', "campaign_name"),
        ("/events", b'{"event": "contact", "\\ud800": 1}', "\\ud800"),
    ],
    ids=["events-uid", "events-eid", "bind-uid", "clicks-campaign", "events-key"],
)
def test_lone_surrogate_is_400_naming_the_field(
    space: SpaceKeys, http: httpx.Client, path: str, body: bytes, field: str
) -> None:
    r = http.post(path, content=body, headers={**space.auth, **JSON_TYPE})
    refused(r, 400, field, "lone surrogate")


def test_lone_surrogate_on_post_e_is_400_and_logged(space: SpaceKeys, http: httpx.Client) -> None:
    eid = unique("sur")
    body = b'{"event": "deposit", "uid": "\\ud800", "value": "5", "eid": "%s"}' % eid.encode()
    r = http.post(f"/e?token={space.ingest_token}", content=body, headers=JSON_TYPE)
    refused(r, 400, "uid", "lone surrogate")
    logged = [p for p in rejected_postbacks(http, space.id) if eid in (p["body"] or "")]
    assert len(logged) == 1, logged
    assert logged[0]["error"] == "malformed"
    assert "lone surrogate" in logged[0]["detail"]


# ----------------------------------------------------------------------------- JSON names twice


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/events", b'{"event": "deposit", "uid": "a", "value": "1", "value": "1000"}', "value"),
        ("/bind", b'{"uid": "a", "tg_id": 5, "uid": "b"}', "uid"),
        ("/clicks", b'{"fbclid": "x", "fbclid": "y"}', "fbclid"),
    ],
    ids=["events", "bind", "clicks"],
)
def test_a_name_given_twice_is_400_naming_it(
    space: SpaceKeys, http: httpx.Client, path: str, body: bytes, field: str
) -> None:
    r = http.post(path, content=body, headers={**space.auth, **JSON_TYPE})
    refused(r, 400, field, "given twice")


# ----------------------------------------------------------------------------- amounts and digits


@pytest.mark.parametrize(
    "value", ["1_000", "\u0661\u0660\u0660", "\uff11\uff10"],
    ids=["underscore", "arabic-indic", "fullwidth"],
)  # fmt: skip
def test_amount_with_underscore_or_foreign_digits_is_refused(
    space: SpaceKeys, http: httpx.Client, value: str
) -> None:
    event = {"event": "deposit", "uid": unique(), "value": value, "eid": unique()}
    refused(http.post("/events", json=event, headers=space.auth), 422, "value", "decimal amount")
    query = {**event, "token": space.ingest_token}
    refused(http.get("/e", params=query), 422, "value", "decimal amount")


@pytest.mark.parametrize("field", ["tg_id", "t"])
def test_foreign_digits_in_an_integer_are_refused(
    space: SpaceKeys, http: httpx.Client, field: str
) -> None:
    # a valid number (a Telegram id, the current time) written in Arabic-Indic digits
    ascii_digits = str(int(time.time() * 1000)) if field == "t" else "33333"
    arabic = ascii_digits.translate({ord("0") + d: 0x0660 + d for d in range(10)})
    query = {"token": space.ingest_token, "event": "contact", "uid": unique(), field: arabic}
    refused(http.get("/e", params=query), 422, field)


# ----------------------------------------------------------------------------- currencies


def test_unknown_currency_is_refused_and_crypto_tickers_are_taken(
    space: SpaceKeys, http: httpx.Client
) -> None:
    # a uid with a click: a series counts no uid without one (as the funnel)
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    deposit = {"event": "deposit", "uid": uid, "value": "10"}
    abc = {**deposit, "currency": "ABC", "eid": unique()}
    refused(http.post("/events", json=abc, headers=space.auth), 422, "currency", "ABC", "ISO 4217")
    for code in ("USDT", "usdc", "TON", "BTC", "VES"):
        r = http.post(
            "/events", json={**deposit, "currency": code, "eid": unique()}, headers=space.auth
        )
        assert r.status_code == 200, r.text
    # and the reports count them (a four-letter code was refused as a report currency)
    params = {"metric": "revenue", "currency": "usdt", "days": "1"}
    r = http.get(f"/admin/spaces/{space.id}/reports/series", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["currency"] == "USDT"
    assert sum(Decimal(p["value"]) for p in r.json()["points"]) >= 10


def test_unknown_currency_on_a_postback_is_refused_and_logged(
    space: SpaceKeys, http: httpx.Client
) -> None:
    eid = unique("cur")
    query = {"token": space.ingest_token, "event": "deposit", "uid": unique(), "value": "3",
             "currency": "XYZ", "eid": eid}  # fmt: skip
    refused(http.get("/e", params=query), 422, "currency", "XYZ")
    logged = [p for p in rejected_postbacks(http, space.id) if eid in p["query"]]
    assert len(logged) == 1 and logged[0]["error"] == "invalid_field", logged


def test_a_space_may_allow_its_own_codes_through_the_admin_api(
    server: Server, http: httpx.Client
) -> None:
    mine, other = server.new_space("gems-a"), server.new_space("gems-b")
    url = f"/admin/spaces/{mine.id}/currencies"
    r = http.put(url, json={"allowed": ["gems", "ABC1"]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] == ["ABC1", "GEMS"]
    assert "USDT" in r.json()["crypto"]
    assert http.get(url, headers=ADMIN).json()["allowed"] == ["ABC1", "GEMS"]
    deposit = {"event": "deposit", "uid": unique(), "value": "10", "currency": "GEMS"}
    assert http.post("/events", json=deposit, headers=mine.auth).status_code == 200
    # another space's list is not this one's
    refused(http.post("/events", json=deposit, headers=other.auth), 422, "currency", "GEMS")
    refused(http.put(url, json={"allowed": ["G"]}, headers=ADMIN), 422, "allowed", "'G'")
    refused(http.put(url, json={"allowed": "GEMS"}, headers=ADMIN), 422, "allowed")
    assert http.put(url, json={"allowed": []}, headers=ADMIN).json()["allowed"] == []
    refused(http.post("/events", json=deposit, headers=mine.auth), 422, "currency")


def test_a_space_may_allow_its_own_codes_through_the_cli(
    server: Server, http: httpx.Client
) -> None:
    mine = server.new_space("coins")
    shown = server.cli_json("space", "currencies", "--space", str(mine.id), "--allow", "pts,abc")
    assert shown["allowed"] == ["ABC", "PTS"]
    shown = server.cli_json("space", "currencies", "--space", str(mine.id), "--remove", "abc")
    assert shown["allowed"] == ["PTS"]
    deposit = {"event": "deposit", "uid": unique(), "value": "10", "currency": "PTS"}
    assert http.post("/events", json=deposit, headers=mine.auth).status_code == 200
    bad = server.cli("space", "currencies", "--space", str(mine.id), "--allow", "x!", check=False)
    assert bad.returncode == 2 and "'x!'" in bad.stderr


# ----------------------------------------------------------------------------- invisible chars


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("uid", "ab\u202ecd"),  # right-to-left override
        ("uid", "ab\u200bcd"),  # zero-width space
        ("uid", "ab\u2066cd"),  # left-to-right isolate
        ("eid", "tx\ufeff1"),  # byte order mark
        ("eid", "tx\u20281"),  # line separator
        ("eid", "tx\u00851"),  # next line (a C1 control)
    ],
)
def test_invisible_bidi_and_control_characters_in_ids_are_refused(
    space: SpaceKeys, http: httpx.Client, field: str, text: str
) -> None:
    event = {"event": "contact", "uid": "plain", field: text}
    code = f"U+{ord(text[2]):04X}"
    refused(http.post("/events", json=event, headers=space.auth), 422, field, code)
    query = {**event, "token": space.ingest_token}
    refused(http.get("/e", params=query), 422, field, code)


def test_invisible_character_in_a_postback_status_is_refused(
    space: SpaceKeys, http: httpx.Client
) -> None:
    query = {"token": space.ingest_token, "status": "ftd\u200b", "uid": unique()}
    refused(http.get("/e", params=query), 422, "status", "U+200B")


# ----------------------------------------------------------------------------- admin parameters


def test_superscript_digits_in_admin_and_report_parameters_are_4xx(
    space: SpaceKeys, http: httpx.Client
) -> None:
    base = f"/admin/spaces/{space.id}"
    assert http.get("/admin/spaces/%C2%B2/links", headers=ADMIN).status_code == 404
    assert http.get("/admin/spaces/%C2%B2/postbacks", headers=ADMIN).status_code == 404
    r = http.post("/admin/spaces/%C2%B2/rotate", headers=ADMIN)
    assert r.status_code == 404, r.text
    r = http.patch(f"{base}/destinations/%C2%B2", json={}, headers=ADMIN)
    assert r.status_code == 404, r.text
    refused(http.get(f"{base}/postbacks?limit=%C2%B2", headers=ADMIN), 422, "limit")
    refused(http.get(f"{base}/outbox?limit=%C2%B2", headers=ADMIN), 422, "limit")
    refused(http.get(f"{base}/outbox?destination=%C2%B2", headers=ADMIN), 422, "destination")
    refused(http.get(f"{base}/reports/funnel?days=%C2%B2", headers=ADMIN), 422, "days")
    refused(http.get(f"{base}/stream?since=%C2%B2-0-0", headers=ADMIN), 422, "since")
    twelve = "%C2%B2" * 12
    refused(http.get(f"{base}/reports/funnel?from={twelve}", headers=ADMIN), 422, "from")


@pytest.mark.parametrize(
    "args",
    [("report", "funnel"), ("tail",), ("outbox", "list"), ("space", "currencies")],
    ids=lambda a: " ".join(a),
)
def test_cli_ids_beyond_64_bits_are_usage_errors_not_tracebacks(
    server: Server, args: tuple[str, ...]
) -> None:
    proc = server.cli(*args, "--space", "9" * 20, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "--space" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("report", ["funnel", "links", "series"])
@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"from": "9999-12-30", "to": "9999-12-31"}, "from"),
        ({"from": "9999-12-31T00:00:00-14:00", "to": "9999-12-31T10:00:00-14:00"}, "from"),
        ({"from": "99999999999999990", "to": "99999999999999999"}, "from"),
    ],
    ids=["dates", "offsets", "epoch-ms"],
)
def test_dates_at_the_end_of_the_calendar_are_422(
    space: SpaceKeys, http: httpx.Client, report: str, window: dict[str, str], field: str
) -> None:
    params = {**window, **({"metric": "click"} if report == "series" else {})}
    r = http.get(f"/admin/spaces/{space.id}/reports/{report}", params=params, headers=ADMIN)
    refused(r, 422, field)


# ----------------------------------------------------------------------------- redirect, files


def test_trailing_slash_redirect_ignores_the_host_header(server: Server) -> None:
    with httpx.Client(verify=TLS_VERIFY, base_url=server.url, timeout=10) as http:
        r = http.get("/healthz/?x=1", headers={"Host": "evil.example"})
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{server.url}/healthz?x=1"
        r = http.get("/admin/spaces/", headers={"Host": "evil.example", **ADMIN})
        assert r.headers["location"] == f"{server.url}/admin/spaces"
        assert http.get("/no-such-thing/").status_code == 404


def test_trailing_slash_redirect_uses_the_public_url(start_app: ServerFactory) -> None:
    server = start_app("--public-url", "https://track.example.com/")
    r = httpx.get(
        f"{server.url}/healthz/", verify=TLS_VERIFY, headers={"Host": "evil.example"}, timeout=10
    )
    assert r.headers["location"] == "https://track.example.com/healthz"


def test_database_files_are_created_readable_by_their_owner_only(
    tmp_path: Path, start_app: ServerFactory
) -> None:
    previous = os.umask(0o022)  # the usual umask, which leaves new files world-readable
    try:
        server = start_app(db=tmp_path / "fresh.db")
        space = server.new_space("files")
        with server.client() as http:
            event = {"event": "contact", "uid": "u1"}
            assert http.post("/events", json=event, headers=space.auth).status_code == 200
            r = http.get(f"/admin/spaces/{space.id}/reports/funnel", headers=ADMIN)
            assert r.status_code == 200, r.text
    finally:
        os.umask(previous)
    names = ["fresh.db", "fresh.db-wal", "fresh.db-shm", "fresh.reports.db"]
    present = {p.name for p in tmp_path.iterdir()}
    assert set(names) <= present, present
    for path in tmp_path.iterdir():
        if path.name.startswith("fresh.") and not path.name.endswith(".log"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_the_cli_creates_a_database_readable_by_its_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        cli_in_process(tmp_path / "cli.db", "space", "create", "x")  # the command, in this process
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "cli.db").stat().st_mode) == 0o600
