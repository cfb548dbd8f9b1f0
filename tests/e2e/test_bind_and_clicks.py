"""POST/GET /bind (compare-and-set, late attribution) and POST /clicks."""

from __future__ import annotations

import sqlite3
import time
import uuid

import httpx

from tests.conftest import Server, SpaceKeys


def rows(server: Server, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def tg() -> int:
    return 10_000_000 + uuid.uuid4().int % 1_000_000_000


def new_click(http: httpx.Client, space: SpaceKeys, **body: str) -> str:
    r = http.post("/clicks", json=body, headers=space.auth)
    assert r.status_code == 200, r.text
    uid = r.json()["uid"]
    assert isinstance(uid, str)
    return uid


def test_click_mints_a_fresh_url_safe_uid_that_fits_a_start_payload(
    space: SpaceKeys, http: httpx.Client
) -> None:
    uids = {new_click(http, space) for _ in range(20)}
    assert len(uids) == 20
    for uid in uids:
        payload = f"fb_{uid}"
        assert len(payload) <= 64
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in payload)


def test_click_records_fbclid_fbc_and_campaign_fields_from_the_query(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    query = "fbclid=IwAR0xYz_Case&campaign_id=123&adset_name=Broad%20RU&utm_source=fb&x=1"
    before = int(time.time() * 1000)
    uid = new_click(http, space, raw_query=query, campaign_name="Spring")
    click = rows(server, "SELECT * FROM clicks WHERE uid = ?", uid)[0]
    assert click["space_id"] == space.id
    assert click["source"] == "api"
    assert click["fbclid"] == "IwAR0xYz_Case"  # never altered: it is case-sensitive
    assert click["fbc"] == f"fb.1.{click['created_ms']}.IwAR0xYz_Case"
    assert before <= click["created_ms"]
    assert (click["campaign_id"], click["campaign_name"]) == ("123", "Spring")
    assert (click["adset_name"], click["utm_source"]) == ("Broad RU", "fb")
    assert click["raw_query"] == query


def test_click_for_an_unknown_link_slug_is_422(space: SpaceKeys, http: httpx.Client) -> None:
    r = http.post("/clicks", json={"link_slug": "no-such-link"}, headers=space.auth)
    assert r.status_code == 422
    assert r.json()["field"] == "link_slug"
    assert r.json()["fields"] == [{"field": "link_slug", "problem": "no such link in this space"}]


def test_bind_is_matched_only_for_a_click_of_this_space(
    space: SpaceKeys, http: httpx.Client
) -> None:
    uid = new_click(http, space)
    r = http.post("/bind", json={"uid": uid, "tg_id": tg()}, headers=space.auth)
    assert r.json() == {**r.json(), "ok": True, "matched": True, "status": "bound"}
    r = http.post(
        "/bind",
        json={"uid": f"never-clicked-{uuid.uuid4().hex}", "tg_id": tg()},
        headers=space.auth,
    )
    assert r.json()["matched"] is False


def test_bind_is_compare_and_set(server: Server, space: SpaceKeys, http: httpx.Client) -> None:
    uid, first, second = new_click(http, space), tg(), tg()
    assert (
        http.post("/bind", json={"uid": uid, "tg_id": first}, headers=space.auth).json()["status"]
        == "bound"
    )
    same = http.post("/bind", json={"uid": uid, "tg_id": first}, headers=space.auth)
    assert same.status_code == 200 and same.json()["status"] == "unchanged"
    other = http.post("/bind", json={"uid": uid, "tg_id": second}, headers=space.auth)
    assert other.status_code == 409
    assert other.json()["error"] == "uid_already_bound"
    bound = rows(server, "SELECT tg_id FROM binds WHERE space_id = ? AND uid = ?", space.id, uid)
    assert [r["tg_id"] for r in bound] == [first]


def test_get_bind_with_ingest_token(space: SpaceKeys, http: httpx.Client) -> None:
    uid, user = new_click(http, space), tg()
    r = http.get("/bind", params={"token": space.ingest_token, "uid": uid, "tg_id": str(user)})
    assert r.status_code == 200 and r.json()["matched"] is True
    r = http.get("/bind", params={"token": space.ingest_token, "uid": uid, "tg_id": str(tg())})
    assert r.status_code == 409


def test_event_with_tg_id_only_goes_to_the_bound_uid(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid, user = new_click(http, space), tg()
    http.post("/bind", json={"uid": uid, "tg_id": user}, headers=space.auth)
    r = http.post(
        "/events", json={"event": "registration", "tg_id": user, "eid": "reg"}, headers=space.auth
    )
    assert r.json()["status"] == "queued" and r.json()["attributed"] is True
    row = rows(server, "SELECT uid FROM inbox WHERE id = ?", int(r.json()["inbox_id"]))[0]
    assert row["uid"] == uid


def test_event_before_bind_is_unattributed_then_attributed_by_the_bind(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    uid, user = new_click(http, space), tg()
    r = http.post(
        "/events", json={"event": "contact", "tg_id": user, "eid": "c"}, headers=space.auth
    )
    assert r.json()["attributed"] is False
    inbox_id = int(r.json()["inbox_id"])
    assert rows(server, "SELECT uid FROM inbox WHERE id = ?", inbox_id)[0]["uid"] is None

    b = http.post("/bind", json={"uid": uid, "tg_id": user}, headers=space.auth)
    assert b.json()["attributed_events"] == 1
    row = rows(server, "SELECT uid, attributed_by FROM inbox WHERE id = ?", inbox_id)[0]
    assert (row["uid"], row["attributed_by"]) == (uid, "bind")

    # A retry of the same tg_id-only event after the bind is still a duplicate.
    again = http.post(
        "/events", json={"event": "contact", "tg_id": user, "eid": "c"}, headers=space.auth
    )
    assert again.json()["status"] == "duplicate"
    assert again.json()["inbox_id"] == str(inbox_id)


def test_event_with_neither_uid_nor_tg_id_is_recorded_unattributed(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    r = http.post(
        "/events",
        json={"event": "deposit", "value": "3", "eid": uuid.uuid4().hex},
        headers=space.auth,
    )
    assert r.json()["status"] == "queued" and r.json()["attributed"] is False
    row = rows(server, "SELECT uid, value FROM inbox WHERE id = ?", int(r.json()["inbox_id"]))[0]
    assert (row["uid"], row["value"]) == (None, "3")


def test_a_bind_whose_uid_or_tg_id_is_an_unfilled_macro_is_refused(
    server: Server, space: SpaceKeys, http: httpx.Client
) -> None:
    user = tg()
    r = http.post("/bind", json={"uid": "{uid}", "tg_id": user}, headers=space.auth)
    assert r.status_code == 400, r.text
    assert (r.json()["error"], r.json()["field"], r.json()["macro"]) == (
        "unfilled_macro", "uid", "{uid}"
    )  # fmt: skip
    assert r.json()["detail"].startswith("uid holds an unfilled macro {uid}")
    r = http.get("/bind", params={"token": space.ingest_token, "uid": "%5Bsub1%5D",
                                  "tg_id": str(user)})  # fmt: skip
    assert r.status_code == 400 and r.json()["macro"] == "[sub1]"
    r = http.get("/bind", params={"token": space.ingest_token, "uid": new_click(http, space),
                                  "tg_id": "{{user_id}}"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "tg_id"
    assert rows(server, "SELECT uid FROM binds WHERE tg_id = ?", user) == []
