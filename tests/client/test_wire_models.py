"""The wire models (``xtracker_wire``): the one definition of a valid event, shared by client and
server."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from pydantic import ValidationError

import xtracker_wire
from xtracker_wire import BindIn, CanonicalEvent, ClickIn, EventIn, decimal_text, parse_value


def test_the_wire_surface_is_pinned() -> None:
    assert sorted(xtracker_wire.__all__) == sorted(
        [
            "BOT_USERNAME",
            "CANONICAL_EVENTS",
            "EVENT_NAMES",
            "MAX_BATCH_BYTES",
            "MAX_BATCH_EVENTS",
            "MAX_EID_LEN",
            "MAX_FUTURE_SKEW_MS",
            "MAX_TG_ID",
            "MAX_UID_LEN",
            "MAX_VALUE",
            "MAX_VALUE_DECIMALS",
            "MIN_OCCURRED_AT_MS",
            "REVERSAL",
            "STARTAPP_PAYLOAD_MAX",
            "START_PAYLOAD_MAX",
            "BindIn",
            "CanonicalEvent",
            "ClickIn",
            "EventBatchIn",
            "EventBatchOut",
            "EventIn",
            "EventResult",
            "__version__",
            "check_currency",
            "check_occurred_at_ms",
            "check_plain_text",
            "check_tg_id",
            "decimal_text",
            "is_start_payload",
            "parse_value",
        ]
    )
    for name in xtracker_wire.__all__:
        assert hasattr(xtracker_wire, name)


def test_the_four_canonical_events_in_funnel_order() -> None:
    assert list(xtracker_wire.CANONICAL_EVENTS) == [
        "contact", "subscribed", "registration", "deposit"
    ]  # fmt: skip
    # the funnel steps, then the reversal of a deposit, which is not a step
    assert [e.value for e in CanonicalEvent] == [
        *xtracker_wire.CANONICAL_EVENTS,
        "deposit.reversed",
    ]
    assert (*xtracker_wire.CANONICAL_EVENTS, xtracker_wire.REVERSAL) == xtracker_wire.EVENT_NAMES


def test_a_reversal_names_the_eid_of_the_deposit_it_reverses() -> None:
    event = EventIn.model_validate({"event": "Deposit.Reversed", "uid": "u1", "eid": "tx-1"})
    assert event.event is CanonicalEvent.DEPOSIT_REVERSED and event.is_reversal
    assert not EventIn.model_validate({"event": "deposit", "uid": "u1"}).is_reversal
    for missing in ({}, {"eid": None}, {"eid": "  "}):
        with pytest.raises(ValidationError) as info:
            EventIn.model_validate({"event": "deposit.reversed", "uid": "u1", **missing})
        (error,) = info.value.errors()
        assert error["loc"] == ("eid",)
        assert "eid of the deposit it reverses" in error["msg"]
    # other events keep eid optional
    assert EventIn.model_validate({"event": "deposit", "uid": "u1", "eid": None}).eid is None


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


def test_a_number_too_large_for_any_field_is_refused_at_once() -> None:
    huge = Decimal("1e350000")  # int() of it takes seconds; of 1e1000000, minutes
    started = time.monotonic()
    for data in (
        {"event": "contact", "tg_id": huge},
        {"event": "contact", "occurred_at_ms": huge},
        {"event": "contact", "occurred_at_ms": -huge},
        {"event": "deposit", "value": huge},
        {"event": "deposit", "value": "1e999999999999999999999"},
        {"event": "contact", "tg_id": 10**5000},
    ):
        with pytest.raises(ValidationError, match=r"out of range|absurdly large"):
            EventIn.model_validate(data)
    with pytest.raises(ValidationError, match="out of range"):
        BindIn.model_validate({"uid": "a", "tg_id": huge})
    assert time.monotonic() - started < 1.0  # microseconds each; a conversion takes seconds


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0660\u0660", "\uff11\uff10", "1" * 65])
def test_an_amount_is_ascii_digits_and_one_point(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal amount"):
        parse_value(text)


def test_integers_take_ascii_digits_only() -> None:
    assert BindIn.model_validate({"uid": "a", "tg_id": " 123 "}).tg_id == 123
    for text in ("\u0663\u0663\u0663", "1_000", "\uff11"):
        with pytest.raises(ValidationError, match="Telegram user id"):
            BindIn.model_validate({"uid": "a", "tg_id": text})


@pytest.mark.parametrize(
    "char", ["\u202e", "\u2066", "\u200b", "\u200f", "\ufeff", "\u2028", "\u0085", "\ud800"]
)
def test_ids_refuse_invisible_bidi_and_control_characters(char: str) -> None:
    for field in ("uid", "eid"):
        data = {"event": "contact", field: f"a{char}b"}
        with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
            EventIn.model_validate(data)
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
        BindIn.model_validate({"uid": f"a{char}b", "tg_id": 5})


def test_free_text_keeps_emoji_joiners_but_not_controls() -> None:
    family = "spring \U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined by U+200D
    assert ClickIn.model_validate({"campaign_name": family}).campaign_name == family
    with pytest.raises(ValidationError, match="U\\+0085"):
        ClickIn.model_validate({"campaign_name": "a\u0085b"})


def test_currency_codes_are_checked_for_shape_here_and_listed_by_the_server() -> None:
    assert EventIn.model_validate({"event": "deposit", "currency": "usdt"}).currency == "USDT"
    assert EventIn.model_validate({"event": "deposit", "currency": "GEMS"}).currency == "GEMS"
    for bad in ("US", "\u00c9UR", "ABCDEFGHIJK", "US D", 840):
        with pytest.raises(ValidationError, match="currency code"):
            EventIn.model_validate({"event": "deposit", "currency": bad})


def test_a_batch_takes_one_to_500_events() -> None:
    from xtracker_wire import MAX_BATCH_EVENTS, EventBatchIn

    one = {"event": "contact", "uid": "u1"}
    assert len(EventBatchIn.model_validate({"events": [one] * MAX_BATCH_EVENTS}).events) == 500
    for wrong in ([], [one] * (MAX_BATCH_EVENTS + 1)):
        with pytest.raises(ValidationError):
            EventBatchIn.model_validate({"events": wrong})
