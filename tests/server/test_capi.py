"""Facebook Conversions API: events built as the official SDK builds them, requests, answers.

The ``facebook-business`` SDK is the oracle: each event is also built with its ``Event``,
``UserData`` and ``CustomData`` and compared with the SDK's ``normalize()``. It is imported inside
the tests only (a dev dependency, never a runtime one); importing it emits no warning, so no
``warnings.catch_warnings`` is needed under ``filterwarnings = ["error"]``. It ships no type
information, hence the ``type: ignore`` on its imports.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.fb_oracle import sdk_event, sdk_hash
from xtracker_server.domain.capi import (
    MAX_BATCH,
    MAX_EVENT_AGE_S,
    capi_event,
    capi_request,
    classify_capi,
    json_number,
    missing_for_website,
    sha256_normalized,
    split_batch,
    too_old,
)
from xtracker_server.domain.clicks import fbc_from_fbclid
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext, Outcome

CLICK_MS = 1_718_000_000_123
OCCURRED_MS = CLICK_MS + 3_600_000 + 789
FBCLID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
FBC = fbc_from_fbclid(FBCLID, CLICK_MS)
FBP = "fb.1.1717999990000.1098115397"
IP = "2a02:6b8::2:242"
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/466.0.0.38.107]"
)
LANDING = "https://t.example.com/l/spring-promo"
TG_ID = 6_123_456_789
UID = "Xk3_pQ9aZr-T0bWm"


def click(**overrides: Any) -> ClickInfo:
    fields: dict[str, Any] = {
        "uid": UID,
        "link": "spring-promo",
        "landing_url": LANDING,
        "created_ms": CLICK_MS,
        "ip": IP,
        "user_agent": UA,
        "fbclid": FBCLID,
        "fbc": FBC,
        "fbp": FBP,
        "country": "RU",
        "campaign_id": "120210000000000001",
    }
    fields.update(overrides)
    return ClickInfo(**fields)


def deposit(**overrides: Any) -> DeliveryContext:
    fields: dict[str, Any] = {
        "event_id": "d1f0c2b4e6a8",
        "event_name": "Purchase",
        "canonical": "deposit",
        "occurred_at_ms": OCCURRED_MS,
        "uid": UID,
        "tg_id": TG_ID,
        "eid": "tx-9001",
        "value": "25.00",
        "currency": "USD",
        "click": click(),
    }
    fields.update(overrides)
    return DeliveryContext(**fields)


def lead(**overrides: Any) -> DeliveryContext:
    fields: dict[str, Any] = {
        "event_id": "0a1b2c3d4e5f",
        "event_name": "Lead",
        "canonical": "subscribed",
        "occurred_at_ms": OCCURRED_MS,
        "uid": UID,
        "tg_id": None,
        "eid": None,
        "value": None,
        "currency": None,
        "click": click(country="de", fbp=None),
    }
    fields.update(overrides)
    return DeliveryContext(**fields)


# --- the event -------------------------------------------------------------------------------


def test_deposit_event_matches_the_sdk() -> None:
    expected = sdk_event(
        event_name="Purchase",
        event_time=OCCURRED_MS // 1000,
        event_id="d1f0c2b4e6a8",
        event_source_url=LANDING,
        user_data={
            "fbc": FBC,
            "fbp": FBP,
            "client_ip_address": IP,
            "client_user_agent": UA,
            # The SDK passes external ids through untouched, so it gets the hash its own
            # normalizer makes of the Telegram id.
            "external_ids": [sdk_hash("external_id", str(TG_ID))],
            "country_codes": ["RU"],
        },
        custom_data={"value": 25.0, "currency": "USD", "order_id": "tx-9001"},
    )
    assert capi_event(deposit()) == expected


def test_non_deposit_event_matches_the_sdk_and_has_no_custom_data() -> None:
    expected = sdk_event(
        event_name="Lead",
        event_time=OCCURRED_MS // 1000,
        event_id="0a1b2c3d4e5f",
        event_source_url=LANDING,
        user_data={
            "fbc": FBC,
            "client_ip_address": IP,
            "client_user_agent": UA,
            "external_ids": [sdk_hash("external_id", UID)],
            "country_codes": ["de"],
        },
    )
    event = capi_event(lead())
    assert event == expected
    assert "custom_data" not in event
    assert "fbp" not in event["user_data"]


def test_unattributed_event_matches_the_sdk() -> None:
    ctx = deposit(uid=None, eid=None, click=ClickInfo())
    expected = sdk_event(
        event_name="Purchase",
        event_time=OCCURRED_MS // 1000,
        event_id="d1f0c2b4e6a8",
        event_source_url=None,
        user_data={"external_ids": [sdk_hash("external_id", str(TG_ID))]},
        custom_data={"value": 25.0, "currency": "USD"},
    )
    assert capi_event(ctx) == expected


def test_event_fields_on_the_wire() -> None:
    event = capi_event(deposit())
    assert event["event_time"] == 1_718_003_600
    assert event["user_data"]["fbc"] == f"fb.1.{CLICK_MS}.{FBCLID}"  # fbclid keeps its case
    assert event["user_data"]["external_id"] == [hashlib.sha256(str(TG_ID).encode()).hexdigest()]
    assert event["user_data"]["country"] == [hashlib.sha256(b"ru").hexdigest()]
    assert event["custom_data"] == {"value": 25.0, "currency": "usd", "order_id": "tx-9001"}
    assert '"value":25.0' in json.dumps(event, separators=(",", ":"))


def test_external_id_is_the_uid_when_no_telegram_id_is_bound() -> None:
    event = capi_event(deposit(tg_id=None))
    assert event["user_data"]["external_id"] == [sha256_normalized(UID)]
    assert capi_event(deposit(tg_id=None, uid=None))["user_data"].get("external_id") is None


def test_unknown_or_malformed_country_is_left_out() -> None:
    for country in ("XX", "T1", "RUS", ""):
        event = capi_event(deposit(click=click(country=country)))
        assert "country" not in event["user_data"], country


def test_deposit_without_value_has_no_custom_data() -> None:
    assert "custom_data" not in capi_event(deposit(value=None))


def test_deposit_without_currency_is_sent_in_usd() -> None:
    assert capi_event(deposit(currency=None))["custom_data"]["currency"] == "usd"


def test_bad_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        capi_event(deposit(currency="US"))


def test_action_source_must_be_one_meta_accepts() -> None:
    assert capi_event(lead(), action_source="chat")["action_source"] == "chat"
    with pytest.raises(ValueError, match="action_source"):
        capi_event(lead(), action_source="telegram")


def test_website_fields_missing_from_an_unattributed_event() -> None:
    assert missing_for_website(deposit()) == []
    assert missing_for_website(deposit(click=ClickInfo())) == [
        "event_source_url",
        "client_user_agent",
    ]


# --- hashing and numbers ---------------------------------------------------------------------


def test_hash_matches_the_reference_vector() -> None:
    expected = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    assert sha256_normalized("John_Smith@gmail.com") == expected
    assert sha256_normalized("  JOHN_SMITH@gmail.com ") == expected
    assert sdk_hash("em", "John_Smith@gmail.com") == expected


def test_value_is_a_float_when_it_reads_back_exactly() -> None:
    assert json_number("25.00") == 25.0
    assert isinstance(json_number("25.00"), float)
    assert json_number("0.1") == 0.1
    assert json_number("0.00000001") == 1e-08


def test_whole_value_too_long_for_a_float_stays_exact() -> None:
    assert json_number("12345678901234567") == 12345678901234567
    assert isinstance(json_number("12345678901234567"), int)


def test_fractional_value_too_long_for_a_float_is_the_nearest_float() -> None:
    assert json_number("123456789012.12345678") == float("123456789012.12345678")


def test_value_that_is_not_an_amount_is_refused() -> None:
    for bad in ("abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            json_number(bad)


# --- age -------------------------------------------------------------------------------------


def test_too_old_at_the_seven_day_edge() -> None:
    ctx = deposit()
    event_s = OCCURRED_MS // 1000
    limit_s = MAX_EVENT_AGE_S - 60  # the minute's margin for the trip to Meta
    assert not too_old(ctx, (event_s + limit_s) * 1000 + 999)
    assert too_old(ctx, (event_s + limit_s + 1) * 1000)
    assert not too_old(ctx, OCCURRED_MS)
    assert too_old(ctx, OCCURRED_MS + 8 * 86_400_000)


# --- the request -----------------------------------------------------------------------------


def test_request_posts_json_with_the_token_in_the_body() -> None:
    events = [capi_event(deposit()), capi_event(lead())]
    request = capi_request(
        events,
        graph_url="https://graph.facebook.com/",
        api_version="v21.0",
        pixel_id="1234567890",
        access_token="EAAB-secret-token",
        test_event_code="TEST4321",
    )
    assert request.method == "POST"
    assert request.url == "https://graph.facebook.com/v21.0/1234567890/events"
    assert "EAAB-secret-token" not in request.url
    assert request.headers == {"Content-Type": "application/json"}
    assert request.body is not None
    assert json.loads(request.body) == {
        "data": events,
        "access_token": "EAAB-secret-token",
        "test_event_code": "TEST4321",
    }


def test_request_without_test_event_code_leaves_it_out() -> None:
    request = capi_request(
        [capi_event(lead())],
        graph_url="http://127.0.0.1:8999",
        api_version="v21.0",
        pixel_id="42",
        access_token="t",
        test_event_code=None,
    )
    assert request.url == "http://127.0.0.1:8999/v21.0/42/events"
    assert request.body is not None
    assert "test_event_code" not in json.loads(request.body)


def test_request_takes_at_most_a_thousand_events() -> None:
    events = [capi_event(lead(event_id=str(i))) for i in range(MAX_BATCH + 1)]
    kwargs: dict[str, Any] = {
        "graph_url": "https://graph.facebook.com",
        "api_version": "v21.0",
        "pixel_id": "1",
        "access_token": "t",
        "test_event_code": None,
    }
    assert capi_request(events[:MAX_BATCH], **kwargs).body is not None
    with pytest.raises(ValueError, match="at most 1000"):
        capi_request(events, **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        capi_request([], **kwargs)


# --- the answer ------------------------------------------------------------------------------


def graph_error(code: int, subcode: int | None = None, **extra: Any) -> bytes:
    error: dict[str, Any] = {
        "message": "Invalid parameter",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf123",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return json.dumps({"error": error}).encode()


def test_success_is_sent() -> None:
    body = b'{"events_received": 2, "messages": [], "fbtrace_id": "AbC"}'
    verdict = classify_capi(200, body)
    assert verdict.outcome is Outcome.SENT
    assert "events_received 2" in verdict.reason


def test_a_graph_error_code_in_odd_digits_is_read_as_no_code() -> None:
    body = json.dumps({"error": {"code": "\u00b2", "error_subcode": "9" * 5000}}).encode()
    verdict = classify_capi(400, body)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason.startswith("HTTP 400")


def test_invalid_token_holds_and_flags_the_destination() -> None:
    body = graph_error(190, 463, message="Error validating access token: Session has expired")
    verdict = classify_capi(400, body)
    assert verdict.outcome is Outcome.HOLD
    assert verdict.unhealthy is not None
    assert "code 190" in verdict.unhealthy
    assert "update the destination's token" in verdict.unhealthy


def test_permission_error_holds_and_flags_the_destination() -> None:
    for code in (10, 200, 294):
        verdict = classify_capi(403, graph_error(code))
        assert verdict.outcome is Outcome.HOLD, code
        assert verdict.unhealthy is not None and f"code {code}" in verdict.unhealthy


def test_transient_codes_are_retried() -> None:
    for code in (1, 2, 4, 17, 341, 368):
        verdict = classify_capi(400, graph_error(code), retry_after_s=5.0)
        assert verdict.outcome is Outcome.RETRY, code
        assert verdict.retry_after_s == 5.0
        assert verdict.unhealthy is None


def test_is_transient_flag_is_retried() -> None:
    assert classify_capi(400, graph_error(100, is_transient=True)).outcome is Outcome.RETRY


def test_server_errors_are_retried() -> None:
    assert classify_capi(500, graph_error(2)).outcome is Outcome.RETRY
    assert classify_capi(503, b"<html>Service Unavailable</html>").outcome is Outcome.RETRY


def test_rate_limit_status_is_retried_after_what_it_asks() -> None:
    verdict = classify_capi(429, b"", retry_after_s=120.0)
    assert verdict.outcome is Outcome.RETRY
    assert verdict.retry_after_s == 120.0


def test_bad_parameter_fails_with_code_subcode_and_trace() -> None:
    body = graph_error(
        100,
        2804003,
        error_user_title="Event Timestamp Too Old",
        error_user_msg="The timestamp for this event is too far in the past.",
    )
    verdict = classify_capi(400, body)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.unhealthy is None
    assert verdict.reason == (
        "HTTP 400, code 100/2804003: Invalid parameter: "
        "The timestamp for this event is too far in the past. (fbtrace_id AbCdEf123)"
    )


def test_long_error_message_is_cut_short_but_keeps_the_trace() -> None:
    verdict = classify_capi(400, graph_error(100, message="x" * 5000))
    assert verdict.outcome is Outcome.FAIL
    assert len(verdict.reason) <= 300
    assert verdict.reason.endswith("(fbtrace_id AbCdEf123)")


def test_garbage_body_is_judged_by_status() -> None:
    for body in (b"\xff\xfe not json", b"[1, 2]", b'{"error": "nope"}', b"", b"[" * 100_000):
        assert classify_capi(400, body).outcome is Outcome.FAIL
        assert classify_capi(502, body).outcome is Outcome.RETRY
        assert classify_capi(200, body).outcome is Outcome.SENT


def test_no_answer_is_retried() -> None:
    verdict = classify_capi(None, b"", "timed out after 1.5 s")
    assert verdict.outcome is Outcome.RETRY
    assert verdict.reason == "timed out after 1.5 s"


# --- bisecting a rejected batch --------------------------------------------------------------


def test_split_batch_halves_a_rejected_batch() -> None:
    assert split_batch([1, 2, 3, 4]) == ([1, 2], [3, 4])
    assert split_batch(["a", "b", "c"]) == (["a"], ["b", "c"])
    with pytest.raises(ValueError):
        split_batch([1])


def test_bisecting_isolates_the_bad_event() -> None:
    events = [capi_event(lead(event_id=str(i))) for i in range(10)]
    bad = events[6]
    delivered: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    pending = [events]
    while pending:
        batch = pending.pop()
        if bad not in batch:
            delivered.extend(batch)
        elif len(batch) == 1:
            failed.extend(batch)
        else:
            pending.extend(split_batch(batch))
    assert failed == [bad]
    assert sorted(e["event_id"] for e in delivered) == [str(i) for i in range(10) if i != 6]
