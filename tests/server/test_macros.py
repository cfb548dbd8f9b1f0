"""Unfilled macros (domain/macros.py): the detector, and where the postback reader applies it."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from xtracker_server.domain.macros import (
    UnfilledMacroError,
    first_unfilled_macro,
    unfilled_macro,
)
from xtracker_server.domain.postbacks import effective_aliases, read_postback

DEFAULTS = effective_aliases([])

SYNTAXES = [
    "{transaction_id}",
    "{{transaction_id}}",
    "{{ click_id }}",
    "${subid}",
    "[CLICK_ID]",
    "%sumdep%",
    "#payout#",
    "{sub1}",
    "{event.id}",
]


@pytest.mark.parametrize("macro", SYNTAXES)
def test_every_syntax_is_an_unfilled_macro(macro: str) -> None:
    assert unfilled_macro(macro) == macro


@pytest.mark.parametrize("macro", SYNTAXES)
def test_url_encoded_once_and_twice_the_macro_is_found_and_shown_decoded(macro: str) -> None:
    once = quote(macro, safe="")
    twice = quote(once, safe="")
    assert once != macro and twice != once
    assert unfilled_macro(once) == macro
    assert unfilled_macro(twice) == macro


def test_the_issue_s_own_encoded_forms() -> None:
    assert unfilled_macro("%7Btransaction_id%7D") == "{transaction_id}"
    assert unfilled_macro("%257Btransaction_id%257D") == "{transaction_id}"
    assert unfilled_macro("%7b%7bclick_id%7d%7d") == "{{click_id}}"


@pytest.mark.parametrize(
    ("value", "macro"),
    [
        ("reg-{trader_id}", "{trader_id}"),  # the dedup recipes of docs/postbacks.md
        ("dep-77001-{totaldep}", "{totaldep}"),
        ("dep-[trader_id]-[totaldep]", "[trader_id]"),
        ("ftd_%trader_id%", "%trader_id%"),
        ("tx:#tid#", "#tid#"),
        ("tx{transaction_id}", "{transaction_id}"),  # braces never belong to an id
        ("ftd-%7Btrader_id%7D", "{trader_id}"),
    ],
)
def test_a_macro_inside_a_composed_value_is_found(value: str, macro: str) -> None:
    assert unfilled_macro(value) == macro


@pytest.mark.parametrize(
    "value",
    [
        "3_j09l7x3RgJxeg4",  # one of our uids
        "dep-77001-75.50",
        "order#123",  # a lone '#'
        "#12345#",  # digits are no macro name
        "order#A1#2",  # glued to letters and digits on both sides
        "a%20b",  # a percent-encoded space, as some networks send their ids
        "tx%2F9%2F3",
        "%C3%A9t%C3%A9",  # encoded UTF-8 text
        "50%off%",
        "100%",
        "tx[1]",
        "items[a]",
        "{}",
        "{ }",
        "{12}",
        '{"a":1}',
        "$5",
        "25.00",
        "USD",
        "ftd",
        "777",
        "%%",
        "##",
        "[]",
    ],
)
def test_legitimate_look_alikes_are_not_macros(value: str) -> None:
    assert unfilled_macro(value) is None


def test_first_unfilled_macro_names_the_field_as_the_sender_did() -> None:
    data = {"uid": "abc", "eid": "{tid}", "value": 25, "currency": "%currency%"}
    found = first_unfilled_macro(data, ("uid", "value", "currency", "eid"), {"eid": "tid"})
    assert found is not None
    assert (found.field, found.sent_as, found.macro) == ("currency", "currency", "%currency%")
    assert found.message.startswith("currency holds an unfilled macro %currency%")
    found = first_unfilled_macro(data, ("uid", "eid"), {"eid": "tid"})
    assert found is not None and found.message.startswith("tid (eid) holds an unfilled macro")
    assert first_unfilled_macro(data, ("uid", "value")) is None  # numbers are never macros


@pytest.mark.parametrize(
    ("params", "named", "macro"),
    [
        ({"event": "deposit", "uid": "u", "eid": "{transaction_id}"}, "eid", "{transaction_id}"),
        ({"status": "{status}", "uid": "u"}, "status (event)", "{status}"),
        ({"event": "ftd", "click_id": "[CLICK_ID]"}, "click_id (uid)", "[CLICK_ID]"),
        ({"event": "ftd", "uid": "u", "sumdep": "#sumdep#"}, "sumdep (value)", "#sumdep#"),
        ({"event": "ftd", "uid": "u", "value": "5", "currency": "{cur}"}, "currency", "{cur}"),
        ({"event": "reg", "tg_id": "${tg_id}"}, "tg_id", "${tg_id}"),
        ({"event": "reg", "uid": "u", "t": "%7Btimestamp%7D"}, "t", "{timestamp}"),
        # our own name for the amount is kept on a registration (a warning), so it is checked
        ({"event": "reg", "uid": "u", "value": "{payout}"}, "value", "{payout}"),
    ],
)
def test_a_postback_field_holding_a_macro_is_refused_naming_it(
    params: dict[str, str], named: str, macro: str
) -> None:
    with pytest.raises(UnfilledMacroError) as info:
        read_postback(params, DEFAULTS)
    assert info.value.found.macro == macro
    assert str(info.value).startswith(f"{named} holds an unfilled macro {macro}")


def test_a_postback_with_a_macro_only_where_it_is_not_used_is_read() -> None:
    # An amount alias on a registration is dropped (single-URL networks fill it on every
    # status), an ignored status stores nothing, and parameters we don't read are no concern.
    read = read_postback({"status": "reg", "uid": "u", "sumdep": "{sumdep}"}, DEFAULTS)
    assert read.data == {"event": "registration", "uid": "u"}
    assert read_postback({"status": "withdrawal", "uid": "u", "eid": "{tid}"}, DEFAULTS).ignored
    read = read_postback({"event": "reg", "uid": "u", "sub2": "{sub2}"}, DEFAULTS)
    assert read.data == {"event": "registration", "uid": "u"}
