"""What the client refuses before anything is stored or sent (a base URL that cannot work, a
Telegram id where the uid goes, ``tg_id`` by position), what ``flush()`` says, and what
``on_answer`` is given. Unit tests: respx stands in for the server (the real server's answers
are in tests/e2e/test_client_signals.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from xtracker_client import (
    Answer,
    AsyncXTracker,
    Backoff,
    ConfigurationError,
    FlushResult,
    XTracker,
)

URL = "http://xt.test"
FAST = Backoff(base_s=0.01, cap_s=0.05)
OK = httpx.Response(200, json={"ok": True, "status": "queued", "inbox_id": "1"})


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    """A server without ``POST /events/batch`` (404): these tests check single requests (the
    batches are tests/client/test_sender.py's and tests/e2e/test_client_batches.py's)."""
    with respx.mock(base_url=URL, assert_all_called=False) as router:
        no_batch = {"ok": False, "error": "not_found", "detail": "no endpoint /events/batch"}
        router.post("/events/batch").mock(return_value=httpx.Response(404, json=no_batch))
        yield router


def tracker(**kwargs: Any) -> XTracker:
    return XTracker(URL, "xt_sk_test", backoff=FAST, **{"in_memory": True, **kwargs})


# --- the base URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("track.example.com", "no scheme: write it as https://track.example.com "),
        ("track.example.com/events", "no scheme: write it as https://track.example.com "),
        ("localhost:8000", "no scheme"),
        ("ftp://track.example.com", "must start with https:// or http://"),
        ("https://", "no host"),
        ("https://track.example.com/events", r"ends in the endpoint /events"),
        ("https://track.example.com/events/", r"ends in the endpoint /events"),
        ("https://example.com/tracker/events/batch", r"\(https://example.com/tracker\)"),
        ("https://track.example.com/bind", "ends in the endpoint /bind"),
        ("https://track.example.com/?token=x", "no query or fragment"),
        ("https://user:secret@track.example.com", "carries credentials"),
    ],
)
def test_a_base_url_that_cannot_work_is_refused_at_construction(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        XTracker(url, "xt_sk_test", in_memory=True)
    with pytest.raises(ConfigurationError, match=message):
        AsyncXTracker(url, "xt_sk_test", in_memory=True)


def test_the_url_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRACKER_URL", "track.example.com/events")
    with pytest.raises(ConfigurationError, match="no scheme"):
        XTracker(bearer="xt_sk_test", in_memory=True)


def test_a_good_base_url_is_kept_trimmed_and_without_its_trailing_slash() -> None:
    for url, base in [
        (" http://127.0.0.1:8000 ", "http://127.0.0.1:8000"),
        ("https://track.example.com/", "https://track.example.com"),
        ("https://example.com/tracker/", "https://example.com/tracker"),  # behind a proxy
        ("https://example.com/eventsfeed", "https://example.com/eventsfeed"),
    ]:
        xt = XTracker(url, "xt_sk_test", in_memory=True)
        try:
            assert xt._core.url == base
        finally:
            xt.close(0)


# --- a Telegram id where the uid goes ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda xt: xt.contact(555000111),
        lambda xt: xt.subscribed(555000111),
        lambda xt: xt.registration(555000111, eid="r1"),
        lambda xt: xt.deposit(555000111, "25.00"),
        lambda xt: xt.track("contact", 555000111),
        lambda xt: xt.bind(555000111, tg_id=555000111),
    ],
)
def test_an_int_in_the_uid_position_is_a_type_error(server: respx.MockRouter, call: Any) -> None:
    with tracker() as xt:
        with pytest.raises(TypeError, match=r"uid must be a str .*tg_id="):
            call(xt)
        assert xt.stats().queued == 0  # nothing stored


def test_an_int_uid_is_a_type_error_in_the_async_client_too(server: respx.MockRouter) -> None:
    async def run() -> None:
        async with AsyncXTracker(URL, "xt_sk_test", in_memory=True) as xt:
            with pytest.raises(TypeError, match="uid must be a str"):
                await xt.contact(555000111)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="uid must be a str"):
                await xt.bind(555000111, tg_id=555000111)  # type: ignore[arg-type]
            assert (await xt.stats()).queued == 0

    asyncio.run(run())


def test_tg_id_of_bind_is_keyword_only(server: respx.MockRouter) -> None:
    # The bind made here is answered: unanswered, the close would retry it for the whole exit
    # deadline (3 s).
    server.post("/bind").mock(return_value=OK)
    with tracker() as xt:
        with pytest.raises(TypeError, match="positional"):
            xt.bind("u1", 555000111)  # type: ignore[call-arg]
        assert xt.bind("u1", tg_id=555000111).kind == "bind"


# --- flush() says whether anything was dead-lettered --------------------------------------


def test_flush_is_false_when_an_item_was_dead_lettered(server: respx.MockRouter) -> None:
    server.post("/events").mock(
        side_effect=[
            httpx.Response(404, json={"ok": False, "error": "not_found", "detail": "no route"}),
            OK,
        ]
    )
    with tracker() as xt:
        xt.contact("u1")
        refused = xt.flush(5)
        xt.contact("u2")
        accepted = xt.flush(5)
    assert isinstance(refused, FlushResult)
    assert not refused and refused.complete and refused.dead == 1 and refused.pending == 0
    assert "404 not_found" in (refused.last_error or "")
    assert accepted and accepted.ok and accepted.dead == 0  # reported once, by the first flush


def test_a_dead_letter_before_the_flush_is_still_reported_by_it(server: respx.MockRouter) -> None:
    server.post("/events").mock(
        return_value=httpx.Response(422, json={"ok": False, "error": "invalid_field"})
    )
    with tracker() as xt:
        xt.contact("u1")
        for _ in range(500):  # the sender dead-letters it before flush() is called
            if xt.stats().dead:
                break
            time.sleep(0.01)
        assert xt.stats().dead == 1
        result = xt.flush(5)
    assert result.complete and result.dead == 1 and not result


def test_the_async_flush_says_the_same(server: respx.MockRouter) -> None:
    server.post("/events").mock(
        return_value=httpx.Response(409, json={"ok": False, "error": "conflict", "detail": "x"})
    )

    async def run() -> tuple[FlushResult, FlushResult]:
        async with AsyncXTracker(URL, "xt_sk_test", in_memory=True, backoff=FAST) as xt:
            await xt.contact("u1")
            return await xt.flush(5), await xt.flush(5)

    first, second = asyncio.run(run())
    assert not first and first.dead == 1 and first.complete
    assert second and second.dead == 0


def test_close_without_a_flush_is_never_complete(server: respx.MockRouter) -> None:
    result = tracker().close(0)
    assert not result and not result.complete and result.pending == 0


# --- what the server answered -----------------------------------------------------------------


def test_on_answer_gets_the_status_the_bind_match_and_a_duplicate_conflict(
    server: respx.MockRouter,
) -> None:
    server.post("/bind").mock(return_value=httpx.Response(200, json={"ok": True, "matched": True}))
    conflict = {"value": "25.00", "currency": "USD"}
    server.post("/events").mock(
        side_effect=[
            OK,
            httpx.Response(
                200,
                json={"ok": True, "status": "duplicate", "inbox_id": "7", "conflict": conflict},
            ),
        ]
    )
    answers: list[Answer] = []
    with tracker(on_answer=answers.append) as xt:
        bound = xt.bind("u1", tg_id=42)
        once = xt.deposit("u1", "25.00", eid="tx-1")
        again = xt.deposit("u1", "30.00", eid="tx-1")
        assert xt.flush(5)
    # The bind and the events may go in requests of their own, sent at once: the answers come in
    # any order, and whichever deposit reaches the server second is the duplicate.
    assert len(answers) == 3
    (bind,) = [a for a in answers if a.kind == "bind"]
    assert bind.id == bound.id and bind.matched is True
    assert bind.status is None
    (fresh,) = [a for a in answers if a.kind != "bind" and not a.duplicate]
    (dup,) = [a for a in answers if a.kind != "bind" and a.duplicate]
    assert fresh.status == "queued" and fresh.conflict is None
    assert dup.inbox_id == "7" and dup.conflict == conflict
    assert {fresh.id, dup.id} == {once.id, again.id}
    values = {once.id: "25.00", again.id: "30.00"}  # each answer carries its own event
    assert fresh.body["value"] == values[fresh.id] and dup.body["value"] == values[dup.id]


def test_the_answer_is_read_only_when_on_answer_is_given(server: respx.MockRouter) -> None:
    server.post("/events").mock(return_value=OK)
    read: list[bool] = []
    real = httpx.Response.json

    def spy(self: httpx.Response, **kwargs: Any) -> Any:
        read.append(True)
        return real(self, **kwargs)

    answers: list[Answer] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.Response, "json", spy)
        with tracker() as xt:  # the default path: the answer is not even parsed
            xt.contact("u1")
            assert xt.flush(5)
        assert read == []
        with tracker(on_answer=answers.append) as xt:
            xt.contact("u1")
            assert xt.flush(5)
    assert read == [True] and answers[0].status == "queued"


def test_a_failing_answer_hook_is_logged_and_the_sender_goes_on(
    server: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    server.post("/events").mock(return_value=OK)

    def explode(answer: Answer) -> None:
        raise RuntimeError("hook bug")

    with tracker(on_answer=explode) as xt:
        xt.contact("u1")
        xt.contact("u2")
        assert xt.flush(5)
        assert xt.stats().sent == 2
    assert caplog.text.count("on_answer hook failed") == 2


# --- debug ------------------------------------------------------------------------------------


def test_debug_logs_each_answer(server: respx.MockRouter, caplog: pytest.LogCaptureFixture) -> None:
    server.post("/events").mock(return_value=OK)
    logger = logging.getLogger("xtracker_client")
    level, handlers = logger.level, list(logger.handlers)
    try:
        with tracker(debug=True) as xt:
            xt.contact("u1")
            assert xt.flush(5)
        assert logger.level == logging.DEBUG
        assert "event: ack, 200" in caplog.text
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
