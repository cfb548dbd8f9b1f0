"""What the real client says about trouble, against the real server: ``ping()`` at start-up,
one log line per change of state (never one per event), ``flush()``'s result, and what the
server answered (``on_answer``)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from tests.conftest import Server, ServerFactory, SpaceKeys, free_port
from xtracker_client import (
    Answer,
    APIError,
    AsyncXTracker,
    Backoff,
    TransportError,
    XTracker,
)

FAST = Backoff(base_s=0.02, cap_s=0.1)


def client_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.name == "xtracker_client" and r.levelno >= level
    ]


def inbox_count(server: Server, space: SpaceKeys) -> int:
    conn = sqlite3.connect(server.db)
    try:
        (n,) = conn.execute("SELECT count(*) FROM inbox WHERE space_id = ?", (space.id,)).fetchone()
        return int(n)
    finally:
        conn.close()


# --- ping -------------------------------------------------------------------------------------


def test_ping_accepts_the_right_url_and_bearer_and_records_nothing(
    server: Server, space: SpaceKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "xtracker_client")
    # the module's server and space are shared, and xdist's worksteal may run another test of
    # this file first (one that records a deposit): compare with the count before
    before = inbox_count(server, space)
    with XTracker(server.url, space.bearer, in_memory=True) as xt:
        xt.ping()

    async def run() -> None:
        async with AsyncXTracker(server.url, space.bearer, in_memory=True) as axt:
            await axt.ping()

    asyncio.run(run())
    assert inbox_count(server, space) == before
    assert client_lines(caplog) == [f"INFO XTRACKER server {server.url} accepts the bearer"] * 2


def test_ping_says_the_bearer_is_refused(server: Server, space: SpaceKeys) -> None:
    with (
        XTracker(server.url, "xt_sk_wrong", in_memory=True) as xt,
        pytest.raises(APIError, match="refuses the bearer") as refused,
    ):
        xt.ping()
    assert refused.value.status == 401 and refused.value.code == "unauthorized"

    async def run() -> None:
        async with AsyncXTracker(server.url, "xt_sk_wrong", in_memory=True) as axt:
            await axt.ping()

    with pytest.raises(APIError, match="refuses the bearer"):
        asyncio.run(run())


def test_ping_says_the_url_leads_to_no_xtracker_server(server: Server, space: SpaceKeys) -> None:
    with (
        XTracker(f"{server.url}/tracker", space.bearer, in_memory=True) as xt,
        pytest.raises(APIError, match=r"answered HTTP 404.*check the URL") as wrong,
    ):
        xt.ping()
    assert wrong.value.status == 404


def test_ping_says_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with (
        XTracker(url, "xt_sk_test", in_memory=True) as xt,
        pytest.raises(TransportError, match=r"no answer from .*check the URL"),
    ):
        xt.ping(timeout=5)


# --- one log line per change of state ----------------------------------------------------------


def test_a_refused_bearer_is_logged_once_not_per_event(
    start_app: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # a server of its own: its failed logins from this address reach the limit (429), which
    # would answer the other tests' refused bearers for a minute on the module's server
    server = start_app("--no-worker")
    caplog.set_level(logging.INFO, "xtracker_client")
    xt = XTracker(server.url, "xt_sk_wrong", in_memory=True, backoff=FAST)
    try:
        for i in range(20):
            xt.contact(f"u{i}")
        result = xt.flush(1.0)
        attempts = xt.stats().retried
        said = client_lines(caplog)
    finally:
        xt.close(0)
    assert not result and result.pending == 20 and not result.complete
    refused = [line for line in said if "refuses the bearer" in line]
    assert attempts >= 3  # tried again and again, ...
    assert len(refused) == 1 and refused[0].startswith("ERROR")  # ... said once
    assert "XTRACKER_BEARER" in refused[0]
    assert len(said) == 1  # not even for the 429 of too many failed logins
    # closing an in-memory client loses the 20 events, and says so in one more line
    lost = client_lines(caplog)[1:]
    assert len(lost) == 1 and "20 events" in lost[0] and lost[0].startswith("WARNING")


def test_an_outage_is_logged_when_it_starts_and_when_it_ends(
    start_app: ServerFactory, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "xtracker_client")
    server = start_app("--rate-limit", "0")
    space = server.new_space()
    server.stop()
    with XTracker(server.url, space.bearer, in_memory=True, backoff=FAST) as xt:
        for i in range(30):
            xt.contact(f"u{i}", eid=f"c{i}")
        assert not xt.flush(0.5)
        down = client_lines(caplog)
        assert xt.stats().retried >= 2
        server.start()
        assert xt.flush(30), xt.stats()
    assert len(down) == 1 and down[0].startswith("WARNING")
    assert f"XTRACKER server {server.url} cannot be reached (ConnectError" in down[0]
    back = client_lines(caplog)[1:]
    assert len(back) == 1 and back[0].startswith("INFO")
    assert "takes events again (it was unreachable for" in back[0]
    assert inbox_count(server, space) == 30


def test_dead_letters_are_logged_once_per_reason_and_flush_says_so(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "xtracker_client")
    space = server.new_space("dead-letters")
    with XTracker(server.url, space.bearer, in_memory=True, backoff=FAST) as xt:
        xt.bind("u1", tg_id=42)
        first = xt.flush(10)
        for tg_id in range(43, 53):  # ten other users claim the same click: 409 each
            xt.bind("u1", tg_id=tg_id)
        for i in range(5):  # and five deposits in a currency the server does not know: 422
            xt.deposit(f"u{i}", "10.00", "ZZZQ", eid=f"tx-{i}")
        second = xt.flush(10)
        dead = xt.dead_letters()
    assert first and first.dead == 0
    assert not second and second.complete and second.dead == 15 and len(dead) == 15
    lines = client_lines(caplog, logging.WARNING)
    assert len(lines) == 2, lines
    bind_line, event_line = lines
    assert "refused a bind for good: HTTP 409 uid_already_bound" in bind_line
    assert "refused an event for good: HTTP 422 invalid_field: currency" in event_line
    assert all("dead_letters()" in line for line in lines)


# --- what the server answered -----------------------------------------------------------------


def test_on_answer_tells_a_matched_bind_and_a_duplicate_deposit_s_conflict(
    server: Server, space: SpaceKeys
) -> None:
    answers: list[Answer] = []

    async def run() -> None:
        async with AsyncXTracker(
            server.url, space.bearer, in_memory=True, backoff=FAST, on_answer=answers.append
        ) as xt:
            uid = await xt.new_click(campaign_name="signals")
            await xt.bind(uid, tg_id=777001)
            await xt.bind("no-such-click", tg_id=777002)
            await xt.deposit(uid, "25.00", eid="tx-answer")
            await xt.deposit(uid, "30.00", eid="tx-answer")  # the same transaction, another sum
            assert await xt.flush(10)

    asyncio.run(run())
    matched, unmatched, deposit, again = answers
    assert matched.kind == "bind" and matched.matched is True
    assert unmatched.matched is False
    assert deposit.status == "queued" and deposit.inbox_id is not None
    assert again.duplicate and again.inbox_id == deposit.inbox_id
    assert again.conflict == {"value": "25.00", "currency": "USD"}
