"""Reading a JSON body (ingress/_http.py): strict I-JSON, and numbers sized before they are
converted."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from xtracker_server.errors import ApiError
from xtracker_server.ingress._http import parse_json_object


def refusal(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_json_object(body)
    return caught.value


@pytest.mark.parametrize(
    "literal",
    ["1e1000000", "-1e1000000", "1e-1000000", "1e41", "1E999999999999999999",
     "1e9999999999999999999999", "9" * 41, "9" * 60_000, "0." + "0" * 60_000 + "1"],
)  # fmt: skip
def test_a_number_no_field_can_hold_is_422_naming_its_field(literal: str) -> None:
    started = time.monotonic()
    exc = refusal(b'{"event": "contact", "tg_id": %s}' % literal.encode())
    assert time.monotonic() - started < 1.0  # microseconds; converting takes minutes
    assert (exc.status, exc.error, exc.extra["field"]) == (422, "invalid_field", "tg_id")
    assert "out of range" in exc.detail


def test_an_out_of_range_number_in_a_nested_object_or_a_list_names_its_key() -> None:
    assert refusal(b'{"config": {"expected_status": 1e400}}').extra["field"] == "expected_status"
    assert refusal(b'{"allowed": ["A", [1e400]]}').extra["field"] == "allowed"
    # numbers in range: ints, and exact decimals
    data = parse_json_object(b'{"a": 12, "b": 25.10, "c": 1e3, "d": -7, "e": [1, 2.5]}')
    assert data == {"a": 12, "b": Decimal("25.10"), "c": Decimal("1e3"), "d": -7,
                    "e": [1, Decimal("2.5")]}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"uid": "a", "uid": "b"}', "uid"),
        (b'{"x": {"k": 1, "k": 1}}', "k"),
        (b'{"uid": "a\\ud800"}', "uid"),
        (b'{"uid": "\\udfff"}', "uid"),
        (b'{"list": ["ok", "\\ud83d"]}', "list"),
        (b'{"\\ud800": 1}', "\\ud800"),
    ],
    ids=["twice", "nested-twice", "high", "low", "in-a-list", "in-a-name"],
)
def test_a_body_that_is_not_i_json_is_400_naming_the_field(body: bytes, field: str) -> None:
    exc = refusal(body)
    assert (exc.status, exc.error, exc.extra["field"]) == (400, "malformed", field)
    # a surrogate PAIR is ordinary text (one character), and a name may repeat across objects
    ok = b'{"name": "\\ud83d\\ude00", "x": {"name": 1}}'
    assert parse_json_object(ok) == {"name": "\U0001f600", "x": {"name": 1}}
