"""The sender's plan (xtracker_client/_sender.py): waves that keep a bind before the events
reported after it, batches under the server's limits, what each batch answer means for each
event; and the client against a mocked server that has the batch endpoint (respx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from xtracker_client import Backoff, XTracker
from xtracker_client._core import Verdict
from xtracker_client._sender import (
    SINGLES_PER_ROUND,
    Fallback,
    Request,
    cut_round,
    judge_batch,
    requests_for,
    waves,
)
from xtracker_client._spool import Spool, SpooledItem
from xtracker_wire import MAX_BATCH_BYTES

URL = "http://xt.test"
FAST = Backoff(base_s=0.01, cap_s=0.05)


def item(n: int, kind: str = "event", **body: Any) -> SpooledItem:
    full = {"event": "contact", **body} if kind == "event" else body
    return SpooledItem(n, kind, full, 1, 0)  # type: ignore[arg-type]


def ids(groups: list[list[SpooledItem]]) -> list[list[int]]:
    return [[i.id for i in group] for group in groups]


def test_events_of_other_users_share_a_wave_with_a_bind() -> None:
    items = [item(1, uid="a"), item(2, "bind", uid="b", tg_id=2), item(3, uid="c")]
    assert ids(waves(items)) == [[1, 2, 3]]


def test_a_bind_goes_before_the_events_reported_after_it_by_uid_or_telegram_user() -> None:
    items = [
        item(1, "bind", uid="a", tg_id=1),
        item(2, uid="a"),
        item(3, tg_id=1),
        item(4, uid="z"),
    ]
    assert ids(waves(items)) == [[1, 4], [2, 3]]


def test_a_bind_goes_after_the_events_reported_before_it() -> None:
    items = [item(1, tg_id=7), item(2, "bind", uid="u", tg_id=7), item(3, tg_id=7)]
    assert ids(waves(items)) == [[1], [2], [3]]


def test_binds_of_one_user_keep_their_order() -> None:
    items = [item(1, "bind", uid="a", tg_id=1), item(2, "bind", uid="b", tg_id=1)]
    assert ids(waves(items)) == [[1], [2]]


def test_events_go_in_batches_of_500_and_binds_alone() -> None:
    items = [item(n, uid=f"u{n}") for n in range(1, 1101)] + [item(2000, "bind", uid="x", tg_id=1)]
    requests = requests_for(items, batch=True)
    assert [(r.path, len(r.items)) for r in requests] == [
        ("/events/batch", 500), ("/events/batch", 500), ("/bind", 1), ("/events/batch", 100),
    ]  # fmt: skip
    assert requests[0].body == {"events": [i.body for i in items[:500]]}
    singles = requests_for(items[:3], batch=False)
    assert [(r.path, r.body) for r in singles] == [("/events", i.body) for i in items[:3]]


def test_a_batch_stays_under_the_servers_body_limit() -> None:
    items = [item(n, uid=f"u{n}", eid="e" * 3000) for n in range(500)]
    requests = requests_for(items, batch=True)
    assert len(requests) > 1 and sum(len(r.items) for r in requests) == 500
    for r in requests:
        assert len(json.dumps(r.body).encode()) < MAX_BATCH_BYTES


def test_a_round_sends_a_bounded_number_of_single_requests() -> None:
    items = [item(n, "bind", uid=f"u{n}", tg_id=n) for n in range(1, 41)]
    sent, later = cut_round(items, batch=True)
    assert len(sent) == SINGLES_PER_ROUND and later == items[SINGLES_PER_ROUND:]
    events = [item(n, uid="u") for n in range(1, 2001)]
    assert cut_round(events, batch=True) == (events, [])
    assert len(cut_round(events, batch=False)[0]) == SINGLES_PER_ROUND


BATCH = Request("/events/batch", {"events": []}, [item(1, uid="a"), item(2, uid="b")])


def answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_each_result_judges_its_event() -> None:
    refused = {"ok": False, "status": "refused", "http_status": 422, "error": "invalid_field",
               "detail": "currency: unknown"}  # fmt: skip
    body = {"ok": True, "queued": 1, "duplicate": 0, "refused": 1,
            "results": [{"ok": True, "status": "queued", "inbox_id": "1"}, refused]}  # fmt: skip
    judged = judge_batch(BATCH, answer(200, body), None)
    assert not isinstance(judged, Fallback)
    assert [j.verdict for j in judged] == [Verdict.ACK, Verdict.DEAD]
    assert (judged[1].status, judged[1].code, judged[1].detail) == (
        422, "invalid_field", "currency: unknown",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("response", "verdict"),
    [
        (answer(503, {"ok": False, "error": "unavailable", "detail": "x"}), Verdict.RETRY),
        (answer(401, {"ok": False, "error": "unauthorized", "detail": "x"}), Verdict.RETRY),
        (answer(200, {"ok": True, "queued": 1, "duplicate": 0, "refused": 0,
                      "results": [{"ok": True, "status": "queued"}]}), Verdict.RETRY),
        (httpx.Response(200, text="<html>a proxy's page</html>"), Verdict.RETRY),
    ],
)  # fmt: skip
def test_a_batch_that_was_not_stored_or_cannot_be_read_is_retried_whole(
    response: httpx.Response, verdict: Verdict
) -> None:
    judged = judge_batch(BATCH, response, None)
    assert not isinstance(judged, Fallback) and [j.verdict for j in judged] == [verdict] * 2


def test_a_server_without_the_endpoint_or_refusing_the_envelope_gets_single_requests() -> None:
    for status, missing in ((404, True), (405, True), (413, False), (400, False)):
        judged = judge_batch(BATCH, answer(status, {"ok": False, "error": "x"}), None)
        assert isinstance(judged, Fallback) and judged.missing is missing
    judged = judge_batch(BATCH, None, httpx.ConnectError("down"))
    assert not isinstance(judged, Fallback) and judged[0].verdict is Verdict.RETRY


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        yield router


def test_a_bind_is_answered_before_the_batch_of_its_events_is_sent(
    server: respx.MockRouter, tmp_path: Path
) -> None:
    sent: list[list[object]] = []  # each request, in the order the server got them

    def batch(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        sent.append([e.get("uid") or e.get("tg_id") for e in events])
        results = [{"ok": True, "status": "queued", "inbox_id": "1"}] * len(events)
        return answer(200, {"ok": True, "queued": len(events), "duplicate": 0, "refused": 0,
                            "results": results})  # fmt: skip

    def bind(request: httpx.Request) -> httpx.Response:
        sent.append(["bind"])
        return answer(200, {"ok": True, "matched": True})

    server.post("/events/batch").mock(side_effect=batch)
    server.post("/bind").mock(side_effect=bind)
    # What a bot left in its spool: the sender finds it all in its first round.
    spool = Spool(tmp_path / "spool.db")
    for kind, body in [
        ("event", {"event": "contact", "uid": "other", "occurred_at_ms": 1}),
        ("event", {"event": "contact", "tg_id": 5, "occurred_at_ms": 2}),  # before the bind
        ("bind", {"uid": "u1", "tg_id": 5}),
        ("event", {"event": "contact", "tg_id": 5, "occurred_at_ms": 3}),
        ("event", {"event": "subscribed", "uid": "u1", "occurred_at_ms": 4}),
    ]:
        spool.put(kind, body)  # type: ignore[arg-type]
    spool.close()
    with XTracker(URL, "xt_sk_test", backoff=FAST, spool=tmp_path / "spool.db") as xt:
        assert xt.flush(10)
    assert sent == [["other", 5], ["bind"], [5, "u1"]]
