"""Pure delivery logic: retry schedule, answer classification, webhook signing, S2S macros,
event maps, stable event ids, address safety; and the sender's failure modes."""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fake_resolver import FakeResolver
from xtracker_server.delivery.sender import Sender
from xtracker_server.domain.destinations import (
    DEFAULT_EVENT_MAPS,
    DestinationInput,
    DestinationKind,
    delivery_event_id,
    forbidden_address,
    host_refusal,
    new_webhook_secret,
    parse_event_map,
    prepare_destination,
)
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext, OutboundRequest, Outcome
from xtracker_server.domain.retry import RetryPolicy, classify_http, parse_retry_after
from xtracker_server.domain.s2s import expand, unknown_macros
from xtracker_server.domain.webhook import webhook_request

CTX = DeliveryContext(
    event_id="xt_0123",
    event_name="deposit",
    canonical="deposit",
    occurred_at_ms=1_700_000_000_000,
    uid="abc123",
    tg_id=42,
    eid="tx-1",
    value="25.00",
    currency="USD",
    click=ClickInfo(uid="abc123", link="promo", campaign_name="Spring Sale", country="RU"),
)


def test_the_documented_s2s_example_byte_for_byte() -> None:
    template = (
        "https://aff.example.com/postback?clickid={uid}&goal={canonical}&sum={value}&cur={currency}"
    )
    assert expand(template, CTX) == (
        "https://aff.example.com/postback?clickid=abc123&goal=deposit&sum=25.00&cur=USD"
    )


def test_s2s_macros_are_url_encoded_and_missing_ones_empty() -> None:
    ctx = DeliveryContext(**{**CTX.__dict__, "uid": "a b&c=d/é", "value": None, "tg_id": None})
    url = expand("https://x.example/?u={uid}&v={value}&t={tg_id}&c={campaign_name}", ctx)
    assert url == "https://x.example/?u=a%20b%26c%3Dd%2F%C3%A9&v=&t=&c=Spring%20Sale"
    assert unknown_macros("https://x/?a={uid}&b={clickid}") == {"clickid"}


def test_every_documented_macro_is_known() -> None:
    documented = [
        "uid",
        "event",
        "canonical",
        "value",
        "currency",
        "occurred_at_ms",
        "tg_id",
        "fbclid",
        "campaign_id",
        "campaign_name",
        "adset_id",
        "adset_name",
        "ad_id",
        "ad_name",
        "placement",
        "eid",
        "event_id",
        "link",
        "country",
    ]
    assert unknown_macros("".join(f"{{{m}}}" for m in documented)) == set()


def test_webhook_signature_verifies_with_standardwebhooks() -> None:
    secret = new_webhook_secret()
    now = int(time.time())
    req = webhook_request(
        CTX,
        url="https://h.example/",
        method="POST",
        secret=secret,
        extra_headers={"X-Team": "growth"},
        now_s=now,
    )
    assert req.headers["webhook-id"] == "xt_0123"
    assert req.headers["X-Team"] == "growth"
    assert req.body is not None
    Webhook(secret).verify(req.body, req.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(req.body.replace(b"25.00", b"99.00"), req.headers)


def test_retry_delays_grow_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=30, cap_s=3600, max_age_s=86400)
    rng = random.Random(1)
    first = [policy.delay_s(1, rng=rng) for _ in range(200)]
    assert min(first) >= 24 and max(first) <= 36  # "about" the base: +-20 %
    assert 0.8 * 240 <= policy.delay_s(4, rng=rng) <= 1.2 * 240
    assert policy.delay_s(30, rng=rng) <= 3600
    assert policy.delay_s(10_000, rng=rng) <= 3600  # no overflow on absurd attempt counts


def test_retry_after_is_honoured_when_longer() -> None:
    policy = RetryPolicy(base_s=1, cap_s=10, max_age_s=86400)
    assert policy.delay_s(1, retry_after_s=120) == 120
    assert policy.delay_s(1, retry_after_s=10**9) == 86400
    assert parse_retry_after("7", 0) == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after("\u00b2", 0) is None  # "²".isdigit() is true; float("²") fails
    assert parse_retry_after("9" * 5000, 0) is None


def test_gives_up_past_the_max_age() -> None:
    policy = RetryPolicy(max_age_s=60)
    assert not policy.gives_up(0, 59_000)
    assert policy.gives_up(0, 61_000)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SENT),
        (204, Outcome.SENT),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
        (None, Outcome.RETRY),
        (301, Outcome.FAIL),
        (400, Outcome.FAIL),
        (401, Outcome.FAIL),
        (404, Outcome.FAIL),
        (410, Outcome.FAIL),
    ],
)
def test_http_answers_are_classified(status: int | None, outcome: Outcome) -> None:
    assert classify_http(status).outcome is outcome


def test_410_flags_the_endpoint_and_expected_status_is_exact() -> None:
    assert classify_http(410).unhealthy
    assert classify_http(200, expected=202).outcome is Outcome.FAIL
    assert classify_http(202, expected=202).outcome is Outcome.SENT


def test_event_id_is_stable_per_event_and_destination() -> None:
    key = b"k" * 32
    assert delivery_event_id(key, 1) == delivery_event_id(key, 1)
    assert delivery_event_id(key, 1) != delivery_event_id(key, 2)
    assert delivery_event_id(key, 1) != delivery_event_id(b"j" * 32, 1)


def test_event_maps_default_and_edit() -> None:
    assert DEFAULT_EVENT_MAPS[DestinationKind.FB_CAPI] == {
        "contact": "Contact",
        "subscribed": "Lead",
        "registration": "CompleteRegistration",
        "deposit": "Purchase",
        "deposit.reversed": "",  # Meta has no standard refund event (docs/destinations.md)
    }
    edited = parse_event_map(
        ["deposit=FTD", "subscribed="], DEFAULT_EVENT_MAPS[DestinationKind.WEBHOOK]
    )
    assert edited == {
        "contact": "contact",
        "subscribed": "",
        "registration": "registration",
        "deposit": "FTD",
        "deposit.reversed": "deposit.reversed",
    }
    for bad in (["purchase=X"], ["deposit"]):
        with pytest.raises(ValueError, match="EVENT=NAME"):
            parse_event_map(bad, {})


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "224.0.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "fc00::1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert forbidden_address(address)


#: Every range the guard refuses although Python 3.11's ``is_global`` (or the old check) let it
#: through, and its neighbours; each with the words the reason must hold.
NON_GLOBAL = [
    # shared address space (carrier-grade NAT), cloud metadata at 100.100.100.200
    ("100.64.0.1", "shared"),
    ("100.100.100.200", "shared"),
    ("100.127.255.254", "shared"),
    # 0.0.0.0/8 "this network", IETF protocol assignments, benchmarking, reserved, broadcast
    ("0.1.2.3", "0.1.2.3 is"),
    ("192.0.0.1", "192.0.0.1 is"),
    ("192.0.0.9", "192.0.0.9 is"),  # PCP anycast: called global by ipaddress, refused anyway
    ("198.18.0.1", "198.18.0.1 is"),
    ("198.19.255.254", "198.19.255.254 is"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # multicast, which ipaddress calls global
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff0e::1", "multicast"),
    ("ff02::1", "multicast"),
    # IPv6 unique-local, link-local (with a zone), deprecated site-local
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "outside IPv6 global unicast"),
    # IPv4 inside IPv6: 6to4, IPv4-compatible, IPv4-mapped, NAT64 (well-known and local-use)
    ("2002:7f00:1::", "127.0.0.1 (6to4)"),
    ("2002:a00:1::", "10.0.0.1 (6to4)"),
    ("2002:6464:64c8::", "100.100.100.200 (6to4)"),
    ("::127.0.0.1", "127.0.0.1 (IPv4-compatible)"),
    ("::10.0.0.1", "10.0.0.1 (IPv4-compatible)"),
    ("::8.8.8.8", "outside IPv6 global unicast"),
    ("::ffff:127.0.0.1", "127.0.0.1 (IPv4-mapped)"),
    ("::ffff:169.254.169.254", "169.254.169.254 (IPv4-mapped)"),
    ("::ffff:8.8.8.8", "::ffff:808:808 is"),
    ("64:ff9b::7f00:1", "127.0.0.1 (NAT64)"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 (NAT64)"),
    ("64:ff9b:1::7f00:1", "127.0.0.1 (local-use NAT64)"),
    ("64:ff9b:1::808:808", "outside IPv6 global unicast"),
    # Teredo: a private client, a loopback server, and Teredo space itself
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45 (Teredo client)"),
    ("2001:0:7f00:1::1", "127.0.0.1 (Teredo server)"),
    ("2001:0:808:808:0:f7f7:f7f7:f7f7", "2001:0:808:808:0:f7f7:f7f7:f7f7 is"),
    # unspecified, loopback, documentation and unassigned IPv6
    ("::", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("::1", "loopback"),
    ("2001:db8::1", "2001:db8::1 is"),
    ("3fff::1", "not a globally reachable"),
    ("5f00::1", "outside IPv6 global unicast"),
]


@pytest.mark.parametrize(("address", "reason"), NON_GLOBAL)
def test_every_non_global_range_is_refused_with_its_reason(address: str, reason: str) -> None:
    refused = forbidden_address(address)
    assert refused and reason in refused, refused


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",  # just below the shared space
        "100.128.0.1",  # just above it
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "2002:808:808::1",  # 6to4 of a global IPv4 address
        "64:ff9b::808:808",  # NAT64 of a global IPv4 address (DNS64 on an IPv6-only host)
    ],
)
def test_global_addresses_pass(address: str) -> None:
    # Strings only: nothing here is ever contacted.
    assert forbidden_address(address) is None


def test_ip_literal_and_localhost_hosts_are_judged_without_dns() -> None:
    assert host_refusal("localhost")
    assert host_refusal("api.LOCALHOST.")
    assert "loopback" in (host_refusal("::1") or "")
    assert "not an IP address" in (host_refusal("127.1") or "")  # a shorthand aiohttp refuses
    assert host_refusal("8.8.8.8") is None
    assert host_refusal("hooks.example.com") is None  # a name: judged when resolved


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1\r\nX-Injected: yes", "U+000D"),
        ("1\nX-Injected: yes", "U+000A"),
        ("1\r", "U+000D"),
        ("nul\x00", "U+0000"),
        ("tab\there", "U+0009"),
        ("bell\x07", "U+0007"),
        ("del\x7f", "U+007F"),
        ("next line\x85", "U+0085"),
        ("line\u2028sep", "U+2028"),
        ("rtl\u202eoverride", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
    ],
)
def test_webhook_header_values_with_control_characters_are_refused(value: str, code: str) -> None:
    def webhook(headers: dict[str, str]) -> DestinationInput:
        return DestinationInput(
            kind=DestinationKind.WEBHOOK, url="https://h.example/x", headers=headers
        )

    message = f"'X-Partner': its value holds the character {code}"
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare_destination(webhook({"X-Partner": value}))
    # Without such characters the value is kept as given (spaces and letters of any script too).
    kept = {"X-Partner": "".join(c for c in value if c.isprintable()), "X-Name": "Zoë & co"}
    assert prepare_destination(webhook(kept)).config["headers"] == kept


def test_destination_input_validation() -> None:
    webhook = prepare_destination(
        DestinationInput(kind=DestinationKind.WEBHOOK, url="https://h.example/x")
    )
    assert webhook.shown_secret and webhook.shown_secret == webhook.secret
    assert webhook.shown_secret.startswith("whsec_")
    capi = prepare_destination(
        DestinationInput(kind=DestinationKind.FB_CAPI, pixel_id="123456", access_token="EAAB")
    )
    assert capi.secret == "EAAB" and capi.shown_secret is None
    with pytest.raises(ValueError, match="access_token"):
        prepare_destination(DestinationInput(kind=DestinationKind.FB_CAPI, pixel_id="123456"))
    with pytest.raises(ValueError, match="proxy"):
        DestinationInput(
            kind=DestinationKind.WEBHOOK, url="https://h.example", proxy="socks5://p:1080"
        )


def test_an_unresolvable_host_is_retried_not_refused() -> None:
    async def send() -> object:
        sender = Sender(timeout_s=2, allow_private=False, resolver=FakeResolver({}))
        try:
            return await sender.send(
                OutboundRequest("POST", "http://no-such-host.invalid/", {}, b"{}")
            )
        finally:
            await sender.close()

    answer = asyncio.run(send())
    assert answer.status is None and not answer.refused  # type: ignore[attr-defined]
    assert classify_http(None).outcome is Outcome.RETRY


def test_a_loopback_destination_is_refused_by_the_sender() -> None:
    async def send() -> object:
        sender = Sender(timeout_s=2, allow_private=False)
        try:
            return await sender.send(OutboundRequest("GET", "http://127.0.0.1:9/", {}, None))
        finally:
            await sender.close()

    answer = asyncio.run(send())
    assert answer.refused and "loopback" in (answer.error or "")  # type: ignore[attr-defined]
