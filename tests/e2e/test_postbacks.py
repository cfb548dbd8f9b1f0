"""Partner postbacks against a real server: real-world shapes of each network's calls, what
lands in the inbox, the postback log (token masked), aliases, POST /e and ready-made URLs."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, ServerFactory, SpaceKeys, module_server
from tests.e2e.test_cli_and_admin import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """tests/conftest.py's module server, trusting a looked-up credential or postback alias
    for 0.5 s instead of 2 (XTRACKER_CREDENTIAL_CACHE_S): what the CLI changes is seen within
    that."""
    yield from module_server(tmp_path_factory, "--credential-cache-s", "0.5")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_click(http: httpx.Client, space: SpaceKeys) -> str:
    uid: str = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    return uid


def inbox(server: Server, space_id: int) -> list[dict[str, Any]]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT event, uid, eid, value, currency, source FROM inbox WHERE space_id = ?"
            " ORDER BY id",
            (space_id,),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def postback_log(http: httpx.Client, space_id: int, **params: Any) -> list[dict[str, Any]]:
    r = http.get(f"/admin/spaces/{space_id}/postbacks", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["postbacks"]
    return rows


def fill(url: str, base: str, **macros: str) -> str:
    """What the network does: replace its macros in the URL we gave it."""
    path = url.removeprefix(base)
    for name, value in macros.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


def pocket_option_urls(server: Server, space: SpaceKeys) -> dict[str, str]:
    data = server.cli_json(
        "postback", "url", "--space", str(space.id), "--network", "pocketoption",
        "--token", space.ingest_token, "--public-url", server.url,
    )  # fmt: skip
    assert data["token"] == "given" and data["offer_param"] == "click_id={uid}"
    return {u["field"]: u["url"] for u in data["urls"]}


def test_pocket_option_registration_first_deposit_and_a_repeat_deposit_fired_twice(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("po")
    uid = new_click(http, space)
    urls = pocket_option_urls(server, space)
    trader = {"click_id": uid, "trader_id": "77001"}
    reg = fill(urls["Registration"], server.url, **trader)
    ftd = fill(urls["First deposit"], server.url, **trader, sumdep="50.00")
    dep = fill(urls["Repeat deposit"], server.url, **trader, sumdep="25.50", totaldep="75.50")

    answers = [http.get(path).json() for path in (reg, reg, ftd, dep, dep)]

    assert [a["status"] for a in answers] == [
        "queued", "duplicate", "queued", "queued", "duplicate"
    ]  # fmt: skip
    assert all(a["attributed"] for a in answers)
    assert inbox(server, space.id) == [
        {"event": "registration", "uid": uid, "eid": "reg-77001", "value": None,
         "currency": None, "source": "postback"},
        {"event": "deposit", "uid": uid, "eid": "ftd-77001", "value": "50.00",
         "currency": "USD", "source": "postback"},
        {"event": "deposit", "uid": uid, "eid": "dep-77001-75.50", "value": "25.50",
         "currency": "USD", "source": "postback"},
    ]  # fmt: skip
    logged = postback_log(http, space.id)
    assert [r["outcome"] for r in logged] == [
        "duplicate", "queued", "queued", "duplicate", "queued"
    ]  # fmt: skip
    assert all(r["click_known"] is True and r["uid"] == uid for r in logged)
    assert [r["value"] for r in logged if r["event"] == "deposit"] == ["25.50"] * 2 + ["50.00"]
    assert logged[0]["inbox_id"] == logged[1]["inbox_id"] == answers[3]["inbox_id"]
    assert logged[0]["ip"] == "127.0.0.1" and logged[0]["method"] == "GET"
    assert "token=xt_it_…" in logged[0]["query"]


def test_quotex_one_url_for_every_status(server: Server, http: httpx.Client) -> None:
    space = server.new_space("quotex")
    uid = new_click(http, space)
    url = server.cli_json(
        "postback", "url", "--space", str(space.id), "--network", "quotex",
        "--token", space.ingest_token, "--public-url", server.url,
    )["urls"][0]["url"]  # fmt: skip
    # The statuses Quotex sends, as its cabinet fills them (sumdep is 0 without money).
    calls = [
        ("reg", "q-1", "0"),
        ("conf", "q-2", "0"),
        ("ftd", "q-3", "100"),
        ("dep", "q-4", "40.25"),
        ("withdrawal", "q-5", "60"),
        ("dep", "q-4", "40.25"),  # fired again
    ]
    statuses = []
    for status, event_id, sumdep in calls:
        path = fill(url, server.url, status=status, click_id=uid, event_id=event_id,
                    sumdep=sumdep)  # fmt: skip
        r = http.get(path)
        assert r.status_code == 200, r.text
        statuses.append(r.json()["status"])
    assert statuses == ["queued", "ignored", "queued", "queued", "ignored", "duplicate"]
    assert [(r["event"], r["value"]) for r in inbox(server, space.id)] == [
        ("registration", None), ("deposit", "100"), ("deposit", "40.25")
    ]  # fmt: skip
    # Quotex's own template names work as they are (status, cid, sumdep are default aliases).
    r = http.get("/e", params={"token": space.ingest_token, "status": "FTD", "cid": uid,
                               "eid": "q-3", "sumdep": "100"})  # fmt: skip
    assert r.json()["status"] == "duplicate"
    ignored = postback_log(http, space.id, outcome="ignored")
    assert [(r["status"], r["event"], r["inbox_id"]) for r in ignored] == [
        ("withdrawal", None, None), ("conf", None, None)
    ]  # fmt: skip
    assert ignored[0]["click_known"] is True


def test_1xpartners_url_with_a_stray_second_question_mark(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("1x")
    uid = new_click(http, space)
    token = space.ingest_token
    # The network appends "?..." to a URL that already has a query string.
    reg = http.get(f"/e?token={token}&event=reg?sub1={uid}&transaction_id=1x-reg&player=9")
    dep = http.get(
        f"/e?token={token}&sub1={uid}&event=deposit?amount=12.34&currency=eur&transaction_id=1x-d"
    )
    assert reg.status_code == dep.status_code == 200, (reg.text, dep.text)
    assert (reg.json()["status"], dep.json()["status"]) == ("queued", "queued")
    assert [(r["event"], r["uid"], r["value"], r["currency"]) for r in inbox(server, space.id)] == [
        ("registration", uid, None, None), ("deposit", uid, "12.34", "EUR")
    ]  # fmt: skip


def test_keitaro_subid_tid_payout_and_statuses(server: Server, http: httpx.Client) -> None:
    space = server.new_space("keitaro")
    uid = new_click(http, space)

    def send(**params: str) -> str:
        r = http.get("/e", params={"token": space.ingest_token, "subid": uid, **params})
        assert r.status_code == 200, r.text
        status: str = r.json()["status"]
        return status

    assert send(status="lead", tid="k-0") == "queued"
    assert send(status="sale", tid="k-1", payout="9.99", currency="EUR") == "queued"
    assert send(status="sale", tid="k-1", payout="9.99", currency="EUR") == "duplicate"
    assert send(status="rebill", tid="k-2", payout="9.99", currency="EUR") == "queued"
    # Keitaro's "rejected" takes the conversion of that tid back (docs/postbacks.md)
    assert send(status="rejected", tid="k-1", payout="9.99") == "queued"
    assert send(status="rejected", tid="k-1", payout="9.99") == "duplicate"
    assert [(r["event"], r["eid"], r["value"]) for r in inbox(server, space.id)] == [
        ("registration", "k-0", None), ("deposit", "k-1", "9.99"), ("deposit", "k-2", "9.99"),
        ("deposit.reversed", "k-1", None),
    ]  # fmt: skip


def test_unknown_uid_is_recorded_and_the_log_says_no_click_has_it(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("stranger")
    r = http.get("/e", params={"token": space.ingest_token, "click_id": "nobody-we-know",
                               "status": "ftd", "sumdep": "5", "tid": "s-1"})  # fmt: skip
    # The event has a uid: attributed, in the answer's sense (as in reports). No click has it.
    assert r.json()["status"] == "queued" and r.json()["attributed"] is True
    assert inbox(server, space.id)[0]["uid"] == "nobody-we-know"
    (row,) = postback_log(http, space.id)
    assert row["click_known"] is False and row["outcome"] == "queued"
    assert row["attributed"] is False  # the log's old name for click_known, kept for scripts
    human = server.cli("postback", "log", "--space", str(space.id)).stdout
    assert "(no click)" in human and "unattributed" not in human
    assert server.cli_json("postback", "log", "--space", str(space.id))[0]["click_known"] is False


def test_the_token_is_never_shown_in_the_log_nor_stored(server: Server, http: httpx.Client) -> None:
    space = server.new_space("secret")
    token = space.ingest_token
    http.get(f"/e?token={token}&uid=u1&event=reg&eid=r1")
    http.get(f"/e?token={token}&uid=u1&event=bogus")  # rejected, still logged
    http.post(f"/e?token={token}", data={"uid": "u1", "event": "ftd", "value": "3", "eid": "f"})
    http.post("/e", data={"token": token, "uid": "u1", "event": "dep", "eid": "d", "value": "1"})
    http.post("/e", json={"token": token, "uid": "u1", "event": "ping"})
    http.post(f"/e?token={token}", content=b'{"uid": "u1", "event":', headers={
        "Content-Type": "application/json"})  # fmt: skip

    admin = http.get(f"/admin/spaces/{space.id}/postbacks", headers=ADMIN).text
    human = server.cli("postback", "log", "--space", str(space.id)).stdout
    as_json = server.cli("postback", "log", "--space", str(space.id), "--json").stdout
    rows = json.loads(as_json)
    assert len(rows) == 6
    assert {r["outcome"] for r in rows} == {"queued", "rejected", "ignored"}
    for text in (admin, human, as_json):
        assert token not in text
        assert token[6:] not in text and token[6:-4] not in text
    assert all("xt_it_…" in (r["query"] + (r["body"] or "")) for r in rows)
    raw = b"".join(p.read_bytes() for p in Path(server.db).parent.glob(Path(server.db).name + "*"))
    assert token.encode() not in raw and token[6:].encode() not in raw


def test_space_b_cannot_see_space_a_postbacks(server: Server, http: httpx.Client) -> None:
    a, b = server.new_space("tenant-pa"), server.new_space("tenant-pb")
    uid = new_click(http, a)
    http.get("/e", params={"token": a.ingest_token, "uid": uid, "event": "reg", "eid": "a-1"})
    # A's uid through B's token is B's own postback, and A's click is invisible to B.
    r = http.get("/e", params={"token": b.ingest_token, "uid": uid, "event": "reg", "eid": "a-1"})
    assert r.json()["status"] == "queued"
    a_rows, b_rows = postback_log(http, a.id), postback_log(http, b.id)
    assert len(a_rows) == len(b_rows) == 1
    assert a_rows[0]["click_known"] is True and b_rows[0]["click_known"] is False
    assert a_rows[0]["id"] != b_rows[0]["id"]
    for secret in (b.bearer, b.ingest_token, a.bearer):
        for path in (f"/admin/spaces/{a.id}/postbacks", f"/admin/spaces/{b.id}/postbacks"):
            r = http.get(path, headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 401
    b_cli = server.cli_json("postback", "log", "--space", str(b.id))
    assert [r["id"] for r in b_cli] == [b_rows[0]["id"]]


def test_post_e_with_a_form_or_json_body(server: Server, http: httpx.Client) -> None:
    space = server.new_space("post")
    uid = new_click(http, space)
    form = http.post("/e", data={"token": space.ingest_token, "clickid": uid, "goal": "reg",
                                 "txid": "p-1"})  # fmt: skip
    as_json = http.post(
        f"/e?token={space.ingest_token}&event=deposit",
        content=f'{{"uid": "{uid}", "value": 25.10, "currency": "eur", "eid": "p-2",'
        ' "event": "contact"}',
        headers={"Content-Type": "application/json"},
    )
    assert form.status_code == as_json.status_code == 200, (form.text, as_json.text)
    assert form.json()["status"] == as_json.json()["status"] == "queued"
    # The JSON number kept its exact decimals; the query's event won over the body's.
    assert [(r["event"], r["value"], r["currency"]) for r in inbox(server, space.id)] == [
        ("registration", None, None), ("deposit", "25.10", "EUR")
    ]  # fmt: skip
    logged = postback_log(http, space.id)
    assert [r["method"] for r in logged] == ["POST", "POST"]
    assert '"value": 25.10' in logged[0]["body"] and "clickid=" in logged[1]["body"]
    # No token anywhere: 401, and nothing is logged.
    r = http.post("/e", data={"uid": uid, "event": "reg"})
    assert r.status_code == 401 and "token to the body" in r.json()["detail"]
    assert len(postback_log(http, space.id)) == 2


def test_aliases_that_disagree_are_refused_and_logged_as_rejected(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("ambiguous")
    r = http.get("/e", params={"token": space.ingest_token, "click_id": "a", "subid": "b",
                               "event": "reg"})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_field" and r.json()["field"] == "uid"
    assert "click_id='a'" in r.json()["detail"] and "subid='b'" in r.json()["detail"]
    (row,) = postback_log(http, space.id)
    assert (row["outcome"], row["error"]) == ("rejected", "invalid_field")
    assert "ambiguous" in row["detail"] and row["inbox_id"] is None
    assert inbox(server, space.id) == []


def test_bad_postbacks_are_refused_and_those_with_a_token_are_logged(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("bad")
    token = space.ingest_token
    unknown = http.get("/e", params={"token": token, "uid": "u", "status": "cashback"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "status"
    assert "cashback" in unknown.json()["detail"] and "ftd" in unknown.json()["detail"]
    huge = http.post(f"/e?token={token}", content=b"uid=u&event=reg&x=" + b"a" * 70_000)
    assert huge.status_code == 413 and huge.json()["error"] == "too_large"
    malformed = http.post(f"/e?token={token}", content=b'{"uid": "u",',
                          headers={"Content-Type": "application/json"})  # fmt: skip
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed"
    bad_amount = http.get("/e", params={"token": token, "uid": "u", "status": "ftd",
                                        "sumdep": "0"})  # fmt: skip
    assert bad_amount.status_code == 422 and bad_amount.json()["field"] == "sumdep"
    assert http.get("/e", params={"token": "xt_it_wrong", "event": "reg"}).status_code == 401
    assert http.get("/e", params={"token": space.bearer, "event": "reg"}).status_code == 401
    rows = postback_log(http, space.id)
    assert [(r["outcome"], r["error"]) for r in rows] == [
        ("rejected", "invalid_field"), ("rejected", "malformed"), ("rejected", "too_large"),
        ("rejected", "invalid_field"),
    ]  # fmt: skip
    assert rows[2]["body"] is None  # a body over the limit is not kept
    assert len(postback_log(http, space.id, outcome="rejected", limit=2)) == 2
    assert inbox(server, space.id) == []


def test_an_alias_set_with_the_cli_takes_effect_on_the_running_server(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("custom")
    params = {"token": space.ingest_token, "player": "p1", "status": "qualified", "tid": "c-1"}
    assert http.get("/e", params=params).status_code == 422
    sid = str(space.id)
    entry = server.cli_json("postback", "alias", "set", "--space", sid, "Qualified", "deposit")
    assert entry == {"alias": "qualified", "maps_to": "deposit", "origin": "custom"}
    server.cli("postback", "param", "set", "--space", sid, "player", "uid")
    assert eventually(lambda: http.get("/e", params=params).status_code == 200)
    assert inbox(server, space.id)[0]["uid"] == "p1"
    # Removing a default makes that status unknown; `alias set` brings it back.
    server.cli("postback", "alias", "unset", "--space", sid, "reg")
    listed = server.cli_json("postback", "alias", "list", "--space", sid)
    assert {"alias": "reg", "maps_to": None, "origin": "removed"} in listed
    reg = {"token": space.ingest_token, "uid": "p1", "event": "reg", "eid": "r"}
    assert eventually(lambda: http.get("/e", params=reg).status_code == 422)
    server.cli("postback", "alias", "set", "--space", sid, "reg", "registration")
    assert eventually(lambda: http.get("/e", params=reg).status_code == 200)
    listed = server.cli_json("postback", "alias", "list", "--space", sid)
    assert {"alias": "reg", "maps_to": "registration", "origin": "default"} in listed
    refused = server.cli("postback", "alias", "set", "--space", sid, "deposit", "ignore",
                         check=False)  # fmt: skip
    assert refused.returncode != 0 and "canonical" in refused.stderr
    missing = server.cli("postback", "param", "unset", "--space", sid, "nope", check=False)
    assert missing.returncode == 1 and "not an alias" in missing.stderr


def test_aliases_through_the_admin_api_take_effect_at_once(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("admin-aliases")
    path = f"/admin/spaces/{space.id}/postbacks/aliases"
    r = http.patch(path, json={"statuses": {"won": "deposit", "conf": None},
                               "params": {"pid": "uid"}}, headers=ADMIN)  # fmt: skip
    assert r.status_code == 200, r.text
    statuses = {s["alias"]: s for s in r.json()["statuses"]}
    assert statuses["won"] == {"alias": "won", "maps_to": "deposit", "origin": "custom"}
    assert statuses["conf"]["origin"] == "removed"
    q = {"token": space.ingest_token, "pid": "x", "status": "won", "value": "2", "eid": "w"}
    assert http.get("/e", params=q).json()["status"] == "queued"
    assert http.get("/e", params={**q, "status": "conf"}).status_code == 422
    bad = http.patch(path, json={"statuses": {"deposit": "ignore"}}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["field"] == "statuses.deposit"
    assert http.get(path, headers={"Authorization": f"Bearer {space.bearer}"}).status_code == 401
    assert http.get(path, headers=ADMIN).json()["params"][0]["name"] == "amount"


def test_postback_urls_need_the_real_token_or_show_a_placeholder(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("urls")
    sid = str(space.id)
    human = server.cli(
        "postback", "url", "--space", sid, "--network", "pocketoption", "--event",
        "registration", "--public-url", "https://t.example",
    ).stdout  # fmt: skip
    assert "https://t.example/e?token=<INGEST_TOKEN>&event=registration" in human
    assert "click_id={uid}" in human and "Replace <INGEST_TOKEN>" in human
    wrong = server.cli("postback", "url", "--space", sid, "--network", "quotex", "--token",
                       "xt_it_not-the-token", check=False)  # fmt: skip
    assert wrong.returncode == 1 and "not a live ingest token" in wrong.stderr
    other = server.new_space("urls-other")
    wrong = server.cli("postback", "url", "--space", sid, "--network", "quotex", "--token",
                       other.ingest_token, check=False)  # fmt: skip
    assert wrong.returncode == 1

    api = f"/admin/spaces/{space.id}/postbacks/urls"
    given = http.post(api, json={"network": "keitaro", "token": space.ingest_token},
                      headers=ADMIN).json()  # fmt: skip
    assert given["token"] == "given" and space.ingest_token in given["urls"][0]["url"]
    assert http.post(api, json={"network": "keitaro", "token": other.ingest_token},
                     headers=ADMIN).status_code == 422  # fmt: skip
    placeholder = http.post(api, json={"network": "1win", "event": "deposit"}, headers=ADMIN)
    assert [u["field"] for u in placeholder.json()["urls"]] == ["Deposit"]
    assert "<INGEST_TOKEN>" in placeholder.json()["urls"][0]["url"]
    assert http.post(api, json={"network": "nope"}, headers=ADMIN).status_code == 422
    rotated = http.post(api, json={"network": "generic", "rotate": True}, headers=ADMIN).json()
    assert rotated["token"] == "rotated"
    new_token = rotated["urls"][0]["url"].split("token=")[1].split("&")[0]
    assert new_token.startswith("xt_it_") and new_token != space.ingest_token
    for token in (new_token, space.ingest_token):  # the old one keeps working 24 hours
        r = http.get("/e", params={"token": token, "uid": "z", "event": "reg", "eid": token})
        assert r.status_code == 200


def test_log_rows_older_than_the_retention_are_pruned(start_app: ServerFactory) -> None:
    server = start_app("--postback-log-days", "0.00003")  # about 2.6 seconds
    space = server.new_space("short-memory")
    with server.client() as http:
        http.get("/e", params={"token": space.ingest_token, "uid": "u", "event": "ping"})
        assert len(postback_log(http, space.id)) == 1
        assert eventually(lambda: postback_log(http, space.id) == [], timeout=15)


def test_the_log_records_the_caller_address_through_trusted_proxies_only(
    start_app: ServerFactory,
) -> None:
    server = start_app("--trusted-proxies", "127.0.0.1")
    space = server.new_space("proxied")
    q = {"token": space.ingest_token, "uid": "u", "event": "ping"}
    with server.client() as http:
        http.get("/e", params=q, headers={"X-Forwarded-For": "203.0.113.9"})
        http.get("/e", params=q, headers={"X-Forwarded-For": "not-an-address"})
        assert [r["ip"] for r in postback_log(http, space.id)] == ["127.0.0.1", "203.0.113.9"]


def test_an_unfilled_macro_is_refused_logged_and_a_later_real_eid_still_counts(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("macros")
    uid = new_click(http, space)
    token = space.ingest_token
    # The cabinet left its macro as typed, plain, URL-encoded or encoded twice.
    for eid in ("{transaction_id}", "%7Btransaction_id%7D", "%257Btransaction_id%257D"):
        r = http.get(f"/e?token={token}&event=deposit&uid={uid}&value=50&eid={eid}")
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "unfilled_macro"
        assert r.json()["detail"].startswith("eid holds an unfilled macro {transaction_id}")
        assert (r.json()["field"], r.json()["macro"]) == ("eid", "{transaction_id}")
    # Through the network's own names (default aliases), and in a POST body.
    r = http.get("/e", params={"token": token, "status": "ftd", "click_id": "[CLICK_ID]",
                               "sumdep": "50", "tid": "t-1"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "click_id"
    assert r.json()["detail"].startswith("click_id (uid) holds an unfilled macro [CLICK_ID]")
    r = http.get("/e", params={"token": token, "status": "{status}", "uid": uid, "eid": "x"})
    assert r.status_code == 400 and r.json()["macro"] == "{status}"
    r = http.post(f"/e?token={token}", json={"event": "ftd", "uid": uid, "value": "#sumdep#",
                                             "eid": "p-1"})  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "value"
    assert inbox(server, space.id) == []

    rejected = postback_log(http, space.id)
    assert [(row["outcome"], row["error"]) for row in rejected] == [
        ("rejected", "unfilled_macro")
    ] * 6
    assert rejected[-1]["detail"].startswith("eid holds an unfilled macro {transaction_id}")
    assert "eid=%7Btransaction_id%7D" in rejected[-2]["query"]
    assert '"#sumdep#"' in rejected[0]["body"]
    human = server.cli("postback", "log", "--space", str(space.id)).stdout
    assert "unfilled_macro: eid holds an unfilled macro {transaction_id}" in human

    # Once the template is fixed, each deposit counts on its own, also under ids that merely
    # look like macros.
    deposits = [("tx-1", "50"), ("tx-2", "25.50"), ("order#123", "5"), ("a%20b", "6"),
                ("50%off%", "7"), ("#12345#", "8"), ("tx[1]", "9"),
                ("%C3%A9t%C3%A9", "10")]  # fmt: skip
    for eid, value in deposits:
        r = http.get("/e", params={"token": token, "event": "deposit", "uid": uid,
                                   "value": value, "eid": eid})  # fmt: skip
        assert r.json()["status"] == "queued", r.text
    assert [(row["eid"], row["value"]) for row in inbox(server, space.id)] == deposits


def test_a_duplicate_with_another_amount_is_flagged_in_the_answer_and_the_log(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("conflicts")
    uid = new_click(http, space)

    def deposit(value: str, currency: str = "USD") -> dict[str, Any]:
        params = {"token": space.ingest_token, "event": "ftd", "uid": uid, "value": value,
                  "currency": currency, "eid": "ftd-1"}  # fmt: skip
        r = http.get("/e", params=params)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    first = deposit("50.00")
    same = deposit("50")  # the same amount, written another way
    more = deposit("75.00")
    other_currency = deposit("50.00", "EUR")
    assert first["status"] == "queued" and "conflict" not in first
    assert same["status"] == "duplicate" and "conflict" not in same
    for answer in (more, other_currency):
        assert answer["status"] == "duplicate"
        assert answer["inbox_id"] == first["inbox_id"]
        assert answer["conflict"] == {"value": "50.00", "currency": "USD"}
        assert "not counted" in answer["detail"] and "own eid" in answer["detail"]
    # The stored event is the first one, unchanged.
    assert [(r["value"], r["currency"]) for r in inbox(server, space.id)] == [("50.00", "USD")]

    logged = postback_log(http, space.id)
    assert [(r["outcome"], r["value"], r["currency"], r["conflict"]) for r in logged] == [
        ("duplicate", "50.00", "EUR", {"value": "50.00", "currency": "USD"}),
        ("duplicate", "75.00", "USD", {"value": "50.00", "currency": "USD"}),
        ("duplicate", "50", "USD", None),
        ("queued", "50.00", "USD", None),
    ]  # fmt: skip
    human = server.cli("postback", "log", "--space", str(space.id)).stdout
    assert human.count("CONFLICT: stored 50.00 USD, not counted") == 2
    as_json = server.cli_json("postback", "log", "--space", str(space.id))
    assert as_json[1]["conflict"] == {"value": "50.00", "currency": "USD"}

    # The bot's POST /events shares the inbox and the rule.
    body = {"event": "deposit", "uid": uid, "value": "60", "eid": "ftd-1"}
    r = http.post("/events", json=body, headers=space.auth)
    assert r.json()["status"] == "duplicate"
    assert r.json()["conflict"] == {"value": "50.00", "currency": "USD"}
