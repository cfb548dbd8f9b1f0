"""Deposit reversals end to end (issue 17 §4): a real in-process server, real local sinks.

A reversal (``deposit.reversed``) comes through ``POST /events`` or a postback status
(``rejected``, ``chargeback``); it has a dedup key of its own; a webhook gets it signed, an S2S
postback with ``{status}=rejected``, CAPI never; the reports show gross, reversed and net
revenue, every space on its own."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, Server, ServerFactory, SpaceKeys
from tests.sink import Received, Sink
from xtracker_client import InvalidEventError, XTracker

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _event(http: httpx.Client, space: SpaceKeys, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/events", json=body, headers=space.auth)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _click(http: httpx.Client, space: SpaceKeys) -> str:
    """A click's uid: its deposits are in the funnel (a uid without a click is on its own
    ``without_click`` line)."""
    r = http.post("/clicks", json={}, headers=space.auth)
    assert r.status_code == 200, r.text
    uid: str = r.json()["uid"]
    return uid


def _postback(http: httpx.Client, space: SpaceKeys, **params: str) -> httpx.Response:
    return http.get("/e", params={"token": space.ingest_token, **params})


def _funnel(http: httpx.Client, space: SpaceKeys) -> dict[str, Any]:
    r = http.get(f"/admin/spaces/{space.id}/reports/funnel?days=1", headers=ADMIN)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _deliveries(server: Server, destination_id: int) -> list[tuple[str, str]]:
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT d.event_name, i.event FROM deliveries d JOIN inbox i ON i.id = d.inbox_id"
            " WHERE d.destination_id = ? ORDER BY d.id",
            (destination_id,),
        )
        return [(r[0], r[1]) for r in rows]
    finally:
        conn.close()


def _add(server: Server, space: SpaceKeys, kind: str, *flags: str) -> dict[str, Any]:
    added: dict[str, Any] = server.cli_json(
        "destination", "add", "--space", str(space.id), "--kind", kind, *flags,
        "--allow-private-destinations",
    )  # fmt: skip
    return added


def _wait(sink: Sink, path: str, count: int) -> list[Received]:
    """The requests to ``path`` once ``count`` of them arrived (20 s at most: a hang)."""
    deadline = time.monotonic() + 20
    while True:
        got = [r for r in sink.wait_for(0) if r.path == path]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        sink.wait_for(len(got) + 1, 0.2)  # woken by any request


@pytest.fixture
def fast(start_app: ServerFactory, sink: Sink) -> Server:
    # CAPI's Graph API is the local sink too: nothing leaves the machine.
    return start_app(*FAST_RETRY, "--fb-graph-url", sink.url, "--fb-api-version", "v21.0")


def test_a_reversal_reaches_each_destination_that_takes_it_and_the_reports(
    fast: Server, sink: Sink
) -> None:
    space = fast.new_space()
    hook = _add(fast, space, "webhook", "--url", f"{sink.url}/hook")
    macros = "clickid={uid}&status={status}&tid={eid}&sum={value}"
    s2s = _add(fast, space, "s2s_postback", "--url-template", f"{sink.url}/pb?{macros}")
    blind = _add(fast, space, "s2s_postback", "--url-template",
                 f"{sink.url}/blind?clickid={{uid}}&sum={{value}}")  # fmt: skip
    capi = _add(fast, space, "fb_capi", "--pixel-id", "1234567890123", "--access-token", "EAAB-x")
    with fast.client() as http:
        u1 = _click(http, space)
        _event(http, space, {"uid": u1, "event": "deposit", "value": "25.00", "eid": "tx-1"})
        _event(http, space, {"uid": u1, "event": "deposit", "value": "4.50", "eid": "tx-2"})
        first = _event(http, space, {"uid": u1, "event": "deposit.reversed", "eid": "tx-1"})
        again = _event(http, space, {"uid": u1, "event": "deposit.reversed", "eid": "tx-1"})
        assert first["status"] == "queued" and again["status"] == "duplicate"
        assert again["inbox_id"] == first["inbox_id"]
        funnel = _funnel(http, space)

    hooks = _wait(sink, "/hook", 3)
    assert sorted(r.json()["event"] for r in hooks) == ["deposit", "deposit", "deposit.reversed"]
    (rev,) = [r for r in hooks if r.json()["canonical"] == "deposit.reversed"]
    Webhook(hook["secret"]).verify(rev.body, rev.headers)  # signed like the others
    assert rev.json()["eid"] == "tx-1" and rev.json()["click"]["uid"] == u1
    assert rev.json()["data"] == {}

    pbs = _wait(sink, "/pb", 3)
    assert sorted(r.target.split("?", 1)[1] for r in pbs) == [
        f"clickid={u1}&status=approved&tid=tx-1&sum=25.00",
        f"clickid={u1}&status=approved&tid=tx-2&sum=4.50",
        f"clickid={u1}&status=rejected&tid=tx-1&sum=",
    ]
    # a template that cannot tell a reversal from a conversion, and CAPI, do not get it
    assert [e for _, e in _deliveries(fast, int(blind["id"]))] == ["deposit", "deposit"]
    assert _deliveries(fast, int(capi["id"])) == [("Purchase", "deposit")] * 2
    assert _deliveries(fast, int(s2s["id"]))[-1] == ("deposit.reversed", "deposit.reversed")

    assert funnel["revenue"] == {"USD": "29.50"}  # gross
    assert funnel["reversed_revenue"] == {"USD": "25.00"}
    assert funnel["net_revenue"] == {"USD": "4.50"}
    assert (funnel["deposits"], funnel["reversed_deposits"]) == (2, 1)


def test_postback_statuses_reverse_a_deposit_through_the_spaces_aliases(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("pb")
    c1 = _click(http, space)
    r = _postback(http, space, click_id=c1, status="ftd", sumdep="40", tid="T1")
    assert r.json()["status"] == "queued"
    r = _postback(http, space, click_id=c1, status="dep", sumdep="2.5", tid="T2")
    assert r.json()["status"] == "queued"
    r = _postback(http, space, click_id=c1, status="chargeback", tid="T1", sumdep="40")
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    r = _postback(http, space, click_id=c1, status="CHARGEBACK", tid="T1")
    assert r.json()["status"] == "duplicate"  # a repeated reversal
    # a reversal without the deposit's eid is refused, naming the field as the network sent it
    r = _postback(http, space, click_id=c1, status="rejected")
    assert r.status_code == 422 and r.json()["field"] == "eid", r.text
    assert "eid of the deposit" in r.json()["detail"]
    # a space that wants Keitaro's "rejected" ignored, and a word of its own, says so
    statuses = {"rejected": "ignore", "storno": "deposit.reversed"}
    r = http.patch(
        f"/admin/spaces/{space.id}/postbacks/aliases", headers=ADMIN, json={"statuses": statuses}
    )
    assert r.status_code == 200, r.text
    r = _postback(http, space, click_id=c1, status="rejected", tid="T2")
    assert r.json()["status"] == "ignored"
    funnel = _funnel(http, space)
    assert funnel["revenue"] == {"USD": "42.5"}
    assert funnel["reversed_revenue"] == {"USD": "40"}
    assert funnel["net_revenue"] == {"USD": "2.5"}
    r = _postback(http, space, click_id=c1, status="storno", tid="T2")
    assert r.json()["status"] == "queued"
    funnel = _funnel(http, space)
    assert funnel["reversed_revenue"] == {"USD": "42.5"} and funnel["net_revenue"] == {"USD": "0.0"}


def test_a_reversal_before_its_deposit_is_kept_and_counts_once_the_deposit_arrives(
    server: Server, http: httpx.Client
) -> None:
    space = server.new_space("early")
    e1 = _click(http, space)
    early = _event(http, space, {"uid": e1, "event": "deposit.reversed", "eid": "late-tx"})
    assert early["status"] == "queued"
    funnel = _funnel(http, space)
    assert (funnel["deposits"], funnel["reversed_deposits"], funnel["revenue"]) == (0, 0, {})
    _event(http, space, {"uid": e1, "event": "deposit", "value": "9.99", "eid": "late-tx"})
    funnel = _funnel(http, space)
    assert funnel["reversed_revenue"] == {"USD": "9.99"} and funnel["net_revenue"] == {
        "USD": "0.00"
    }
    # the reversal is not a duplicate of the deposit, nor the deposit of the reversal
    again = _event(http, space, {"uid": e1, "event": "deposit", "value": "9.99", "eid": "late-tx"})
    assert again["status"] == "duplicate"


def test_a_reversal_only_reverses_its_own_spaces_deposit(
    server: Server, http: httpx.Client
) -> None:
    a, b = server.new_space("ra"), server.new_space("rb")
    same = _click(http, b)  # in a, the same uid has no click: its deposit is on "no link"
    for space in (a, b):
        _event(http, space, {"uid": same, "event": "deposit", "value": "10", "eid": "tx"})
    _event(http, b, {"uid": same, "event": "deposit.reversed", "eid": "tx"})
    theirs = http.get(f"/admin/spaces/{a.id}/reports/links?days=1", headers=ADMIN).json()
    (row,) = theirs["links"]
    assert (row["revenue"], row["reversed_revenue"]) == ({"USD": "10"}, {})
    assert _funnel(http, b)["reversed_revenue"] == {"USD": "10"}
    links = http.get(f"/admin/spaces/{b.id}/reports/links?days=1", headers=ADMIN).json()
    (row,) = links["links"]
    assert (row["revenue"], row["reversed_revenue"], row["net_revenue"]) == (
        {"USD": "10"}, {"USD": "10"}, {"USD": "0"}
    )  # fmt: skip
    series = http.get(
        f"/admin/spaces/{b.id}/reports/series?days=1&metric=net_revenue&currency=USD",
        headers=ADMIN,
    ).json()
    assert {p["value"] for p in series["points"]} == {"0"}
    series = http.get(
        f"/admin/spaces/{b.id}/reports/series?days=1&metric=reversed_revenue&currency=USD",
        headers=ADMIN,
    ).json()
    assert sorted(p["value"] for p in series["points"])[-1] == "10"
    # a space's bearer cannot read another's reports
    r = http.get(f"/admin/spaces/{a.id}/reports/funnel?days=1", headers=b.auth)
    assert r.status_code in (401, 403)


def test_the_client_sends_a_reversal_and_refuses_one_without_an_eid(
    server: Server, http: httpx.Client, tmp_path: Path
) -> None:
    space = server.new_space("client")
    c9 = _click(http, space)
    xt = XTracker(server.url, space.bearer, spool=tmp_path / "spool.db")
    try:
        xt.deposit(c9, "12.00", eid="tx-9")
        xt.track("deposit.reversed", c9, eid="tx-9")
        with pytest.raises(InvalidEventError, match="eid"):
            xt.track("deposit.reversed", c9)  # refused at the call, never spooled
        assert xt.flush(30), xt.stats()
    finally:
        xt.close()
    funnel = _funnel(http, space)
    assert funnel["reversed_revenue"] == {"USD": "12.00"} and funnel["net_revenue"] == {
        "USD": "0.00"
    }
