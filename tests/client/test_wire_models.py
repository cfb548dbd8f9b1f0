"""The wire models: the one definition of a valid event, shared by client and server."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from pydantic import ValidationError

import xtracker_client
from xtracker_client import BindIn, CanonicalEvent, ClickIn, EventIn, decimal_text, parse_value


def test_public_surface_is_pinned() -> None:
    assert sorted(xtracker_client.__all__) == sorted(
        [
            "CANONICAL_EVENTS",
            "APIError",
            "AsyncXTracker",
            "Backoff",
            "BindIn",
            "CanonicalEvent",
            "ClickIn",
            "ConfigurationError",
            "DeadLetter",
            "DeliveryError",
            "EventIn",
            "InvalidEventError",
            "Receipt",
            "SpoolFullError",
            "Stats",
            "TransportError",
            "XTracker",
            "XTrackerError",
            "__version__",
            "check_occurred_at_ms",
            "decimal_text",
            "deeplink",
            "parse_start_payload",
            "parse_value",
        ]
    )
    for name in xtracker_client.__all__:
        assert hasattr(xtracker_client, name)


def test_the_four_canonical_events_in_funnel_order() -> None:
    assert [e.value for e in CanonicalEvent] == ["contact", "subscribed", "registration", "deposit"]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("25.00", "25.00"),
        (25, "25"),
        (19.1, "19.1"),
        (Decimal("0.10"), "0.10"),
        (" 7.5 ", "7.5"),
        ("1E+3", "1000"),
        ("0.00000001", "0.00000001"),
    ],
)
def test_value_is_kept_as_an_exact_decimal(raw: object, kept: str) -> None:
    assert decimal_text(parse_value(raw)) == kept


def test_float_value_is_taken_as_written_and_binary_noise_is_refused() -> None:
    assert decimal_text(parse_value(0.3)) == "0.3"
    with pytest.raises(ValueError, match="decimal places"):
        parse_value(0.1 + 0.2)  # 0.30000000000000004: a float bug upstream, not an amount


def test_event_name_is_case_and_space_tolerant() -> None:
    assert EventIn.model_validate({"event": " Deposit "}).event is CanonicalEvent.DEPOSIT


def test_unknown_event_lists_the_four() -> None:
    with pytest.raises(ValidationError, match="contact, subscribed, registration, deposit"):
        EventIn.model_validate({"event": "ftd"})


def test_currency_is_upper_cased_and_defaults_to_usd() -> None:
    assert EventIn.model_validate({"event": "deposit", "currency": "eur"}).currency == "EUR"
    assert EventIn.model_validate({"event": "deposit", "currency": ""}).currency == "USD"


def test_timestamp_in_seconds_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="looks like seconds"):
        EventIn.model_validate({"event": "contact", "occurred_at_ms": int(time.time())})


def test_timestamp_a_little_ahead_is_accepted_far_ahead_is_not() -> None:
    now = int(time.time() * 1000)
    assert EventIn.model_validate({"event": "contact", "occurred_at_ms": now + 3600_000})
    with pytest.raises(ValidationError, match="future"):
        EventIn.model_validate({"event": "contact", "occurred_at_ms": now + 2 * 86400_000})


def test_empty_strings_are_absent() -> None:
    event = EventIn.model_validate({"event": "deposit", "uid": " ", "value": "", "eid": ""})
    assert (event.uid, event.value, event.eid) == (None, None, None)


def test_tg_id_accepts_numeric_strings_only() -> None:
    assert BindIn.model_validate({"uid": "a", "tg_id": "123"}).tg_id == 123
    for bad in ("12a", 0, -5, True, 1.5, 2**60):
        with pytest.raises(ValidationError):
            BindIn.model_validate({"uid": "a", "tg_id": bad})


def test_click_fields_are_optional_and_bounded() -> None:
    assert ClickIn.model_validate({}).link_slug is None
    with pytest.raises(ValidationError, match="longer than 4096"):
        ClickIn.model_validate({"raw_query": "a" * 5000})


def test_models_are_immutable() -> None:
    event = EventIn.model_validate({"event": "contact"})
    with pytest.raises(ValidationError):
        event.uid = "x"  # type: ignore[misc]
