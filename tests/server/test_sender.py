"""The delivery sender against a real local HTTP sink: what goes on the wire, what comes back."""

from __future__ import annotations

import asyncio
import socket

from tests.sink import Reply, Sink
from xtracker_server.delivery.sender import Answer, Sender
from xtracker_server.domain.outbound import OutboundRequest


def send_all(
    *requests: OutboundRequest, proxy: str | None = None, timeout_s: float = 5
) -> list[Answer]:
    async def run() -> list[Answer]:
        sender = Sender(timeout_s=timeout_s, allow_private=True)
        try:
            return [await sender.send(r, proxy=proxy) for r in requests]
        finally:
            await sender.close()

    return asyncio.run(run())


def test_the_request_goes_out_as_built(sink: Sink) -> None:
    target = "/hook?clickid=a%20b%26c&slash=%2F&plus=+&tilde=%7E&empty="
    (answer,) = send_all(
        OutboundRequest(
            "POST", sink.url + target, {"content-type": "application/json", "x-k": "v"}, b'{"a":1}'
        )
    )
    assert answer.status == 200 and answer.error is None and not answer.refused
    (got,) = sink.wait_for(1)  # the sink records a request after answering it
    assert (got.method, got.target, got.body) == ("POST", target, b'{"a":1}')
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-k"] == "v"
    assert got.headers["user-agent"] == "xtracker-delivery/1"


def test_the_answer_is_read_up_to_16_kib_with_its_retry_after(sink: Sink) -> None:
    sink.default = Reply(status=429, body=b"x" * 100_000, headers={"retry-after": "7"})
    (answer,) = send_all(OutboundRequest("GET", sink.url + "/big", {}, None))
    assert answer.status == 429
    assert answer.body == b"x" * 16 * 1024
    assert answer.retry_after_s == 7
    assert answer.excerpt == "x" * 300


def test_redirects_are_not_followed_and_cookies_not_kept(sink: Sink) -> None:
    sink.default = Reply(status=302, headers={"location": "/elsewhere", "set-cookie": "s=1"})
    first, second = send_all(
        OutboundRequest("GET", sink.url + "/a", {}, None),
        OutboundRequest("GET", sink.url + "/a", {}, None),
    )
    assert first.status == second.status == 302
    got = sink.wait_for(2)
    assert [r.path for r in got] == ["/a", "/a"]
    assert "cookie" not in got[1].headers


def test_a_proxy_is_used_when_the_destination_has_one(sink: Sink) -> None:
    # The sink plays the proxy: a plain-HTTP request through a proxy carries the absolute URL.
    (answer,) = send_all(
        OutboundRequest("GET", "http://partner.example/pb?clickid=u1", {}, None), proxy=sink.url
    )
    assert answer.status == 200
    (got,) = sink.wait_for(1)
    assert got.target == "http://partner.example/pb?clickid=u1"
    assert got.headers["host"] == "partner.example"


def test_a_slow_destination_times_out_and_is_retried_not_refused(sink: Sink) -> None:
    sink.default = Reply(delay_s=2.0)
    (answer,) = send_all(OutboundRequest("GET", sink.url + "/slow", {}, None), timeout_s=0.3)
    assert answer.status is None and answer.error == "timed out" and not answer.refused
    assert answer.latency_ms < 1500


def test_a_closed_port_is_an_error_to_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    (answer,) = send_all(OutboundRequest("GET", f"http://127.0.0.1:{port}/", {}, None))
    assert answer.status is None and answer.error and not answer.refused


def test_urls_that_cannot_be_sent_are_refused_at_once() -> None:
    answers = send_all(
        OutboundRequest("GET", "ftp://files.example/x", {}, None),
        OutboundRequest("GET", "http://", {}, None),
        OutboundRequest("GET", "not a url", {}, None),
    )
    for answer in answers:
        assert answer.refused and answer.status is None
        assert (answer.error or "").startswith("bad URL"), answer.error
