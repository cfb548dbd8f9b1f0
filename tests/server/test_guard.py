"""The address guard where names are resolved (delivery/guard.py): the check at creation, the
sender's resolver at every send, proxies, and ``destination test``.

DNS answers come from ``FakeResolver``; the only server ever contacted is the local sink, which
is what a broken guard would let through (it listens on 127.0.0.1). Global addresses appear
only as answers that the guard is expected to pass, never as ones a request would go to.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.fake_resolver import FakeResolver
from tests.sink import Sink
from xtracker_server.config import Settings
from xtracker_server.delivery.adapters import Adapter
from xtracker_server.delivery.guard import AddressRefused, GuardedResolver, address_problem
from xtracker_server.delivery.probe import probe
from xtracker_server.delivery.sender import Answer, Sender
from xtracker_server.domain.destinations import DestinationKind
from xtracker_server.domain.outbound import OutboundRequest, Outcome
from xtracker_server.store.sqlite.destinations import Destination


def send_guarded(
    resolver: FakeResolver, url: str, *, proxy: str | None = None, allow_private: bool = False
) -> Answer:
    async def run() -> Answer:
        sender = Sender(timeout_s=5, allow_private=allow_private, resolver=resolver)
        try:
            return await sender.send(OutboundRequest("POST", url, {}, b"{}"), proxy=proxy)
        finally:
            await sender.close()

    return asyncio.run(run())


def webhook(url: str, proxy: str | None = None) -> Destination:
    return Destination(
        id=1, space_id=1, kind=DestinationKind.WEBHOOK, name="w", enabled=True,
        config={"url": url, "method": "POST", "headers": {}}, secret="whsec_dGVzdA==",
        event_map={"deposit": "deposit"}, proxy=proxy, health_reason=None, created_ms=0,
        updated_ms=0,
    )  # fmt: skip


def test_a_name_that_rebinds_to_loopback_after_creation_is_refused_at_send(sink: Sink) -> None:
    url = f"http://hooks.rebind.test:{sink.port}/hook"
    resolver = FakeResolver({"hooks.rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    assert asyncio.run(address_problem(url, resolver)) is None  # accepted at creation
    answer = send_guarded(resolver, url)
    assert answer.refused and answer.status is None
    assert "hooks.rebind.test resolves to" in (answer.error or "")
    assert "127.0.0.1 is a loopback address" in (answer.error or "")
    assert resolver.lookups == ["hooks.rebind.test", "hooks.rebind.test"]  # once per step
    assert sink.received == []


def test_a_host_with_any_address_not_allowed_is_refused_whole(sink: Sink) -> None:
    # Happy Eyeballs would try the next address: none may be a private one.
    resolver = FakeResolver({"mixed.test": [["2606:4700:4700::1111", "8.8.8.8", "127.0.0.1"]]})
    answer = send_guarded(resolver, f"http://mixed.test:{sink.port}/")
    assert answer.refused and "127.0.0.1" in (answer.error or "")
    assert sink.received == []


def test_every_send_resolves_again() -> None:
    resolver = FakeResolver({"hooks.rebind.test": [["10.0.0.7"]]})

    async def run() -> list[Answer]:
        sender = Sender(timeout_s=5, allow_private=False, resolver=resolver)
        try:
            request = OutboundRequest("GET", "http://hooks.rebind.test/", {}, None)
            return [await sender.send(request) for _ in range(3)]
        finally:
            await sender.close()

    answers = asyncio.run(run())
    assert all(a.refused and "10.0.0.7" in (a.error or "") for a in answers)
    assert resolver.lookups == ["hooks.rebind.test"] * 3


def test_the_guarded_resolver_returns_only_what_it_checked() -> None:
    inner = FakeResolver({"api.test": [["8.8.8.8", "2606:4700:4700::1111"], ["100.100.100.200"]]})

    async def run() -> tuple[list[str], str]:
        guarded = GuardedResolver(inner)
        first = [r["host"] for r in await guarded.resolve("api.test", 443, socket.AF_UNSPEC)]
        with pytest.raises(AddressRefused) as refused:
            await guarded.resolve("api.test", 443, socket.AF_UNSPEC)  # no approval is kept
        return first, str(refused.value)

    first, refusal = asyncio.run(run())
    assert first == ["8.8.8.8", "2606:4700:4700::1111"]
    assert "100.100.100.200 is a shared (carrier-grade NAT) address" in refusal


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[2002:7f00:1::]",
     "[64:ff9b::7f00:1]", "100.100.100.200", "0.0.0.0", "localhost"],
)  # fmt: skip
def test_ip_literal_hosts_are_refused_before_any_connection(host: str, sink: Sink) -> None:
    resolver = FakeResolver({})
    answer = send_guarded(resolver, f"http://{host}:{sink.port}/")
    assert answer.refused and "XTRACKER_ALLOW_PRIVATE_DESTINATIONS" in (answer.error or "")
    assert resolver.lookups == []
    assert sink.received == []


def test_a_proxy_on_a_loopback_address_is_refused_at_send(sink: Sink) -> None:
    resolver = FakeResolver({})
    answer = send_guarded(resolver, "http://partner.test/pb?clickid=u1", proxy=sink.url)
    assert answer.refused and (answer.error or "").startswith("proxy: 127.0.0.1 is a loopback")
    assert resolver.lookups == []  # the destination's name is the proxy's to resolve
    assert sink.received == []


def test_a_proxy_whose_name_resolves_to_loopback_is_refused_at_send(sink: Sink) -> None:
    resolver = FakeResolver({"proxy.test": [["127.0.0.1"]]})
    answer = send_guarded(
        resolver, "http://partner.test/pb", proxy=f"http://user:pw@proxy.test:{sink.port}"
    )
    assert answer.refused
    assert (answer.error or "").startswith("proxy: proxy.test resolves to"), answer.error
    assert resolver.lookups == ["proxy.test"]
    assert sink.received == []


def test_a_refused_address_fails_the_delivery_permanently() -> None:
    answer = send_guarded(FakeResolver({"h.test": [["192.168.0.10"]]}), "http://h.test/")
    verdict = Adapter(webhook("http://h.test/"), Settings()).classify(answer)
    assert verdict.outcome is Outcome.FAIL and "192.168.0.10" in verdict.reason


def test_allowing_private_destinations_turns_the_guard_off(sink: Sink) -> None:
    resolver = FakeResolver({"sink.test": [["127.0.0.1"]]})
    answer = send_guarded(resolver, f"http://sink.test:{sink.port}/ok", allow_private=True)
    assert answer.status == 200
    (got,) = sink.wait_for(1)
    assert got.path == "/ok"


@pytest.mark.parametrize(
    ("url", "answers", "refused"),
    [
        ("http://hooks.test/x", {"hooks.test": [["8.8.8.8"]]}, None),
        ("http://hooks.test/x", {"hooks.test": [["8.8.8.8", "10.1.2.3"]]}, "10.1.2.3"),
        ("http://meta.test/x", {"meta.test": [["100.100.100.200"]]}, "shared"),
        ("http://six.test/x", {"six.test": [["2002:7f00:1::"]]}, "127.0.0.1 (6to4)"),
        ("http://gone.test/x", {}, None),  # unresolvable now: its sends are retried
        ("http://127.0.0.1:3128", {}, "127.0.0.1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/", {}, "10.0.0.1 (IPv4-mapped)"),
    ],
)
def test_the_check_at_creation_uses_the_same_guard(
    url: str, answers: dict[str, list[list[str]]], refused: str | None
) -> None:
    problem = asyncio.run(address_problem(url, FakeResolver(answers)))
    if refused is None:
        assert problem is None
    else:
        assert problem and refused in problem, problem


def run_probe(destination: Destination, resolver: FakeResolver, **settings: Any) -> Any:
    return asyncio.run(probe(destination, Settings(**settings), resolver=resolver))


def test_destination_test_runs_the_guard_on_the_resolved_address(sink: Sink) -> None:
    resolver = FakeResolver({"hooks.rebind.test": [["127.0.0.1"]]})
    result = run_probe(webhook(f"http://hooks.rebind.test:{sink.port}/hook"), resolver)
    assert result.verdict.outcome is Outcome.FAIL
    assert "127.0.0.1 is a loopback address" in result.verdict.reason
    assert sink.received == []


def test_destination_test_runs_the_guard_on_the_proxy(sink: Sink) -> None:
    resolver = FakeResolver({})
    result = run_probe(webhook("http://partner.test/hook", proxy=sink.url), resolver)
    assert result.verdict.outcome is Outcome.FAIL
    assert result.verdict.reason.startswith("proxy: 127.0.0.1 is a loopback address")
    assert sink.received == []
