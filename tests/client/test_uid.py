"""uid helpers: reading /start payloads, building deeplinks Telegram accepts."""

from __future__ import annotations

import pytest

from xtracker_client import deeplink, parse_start_payload


@pytest.mark.parametrize(
    ("text", "uid"),
    [
        ("/start fb_Ab3-x_9", "Ab3-x_9"),
        ("fb_Ab3", "Ab3"),
        ("/start@offer_bot fb_u1", "u1"),
        ("  /start   fb_u2 ", "u2"),
        ("fb_" + "x" * 61, "x" * 61),
    ],
)
def test_payloads_with_the_fb_prefix_give_the_uid(text: str, uid: str) -> None:
    assert parse_start_payload(text) == uid


@pytest.mark.parametrize("text", ["/start ref_42", "ig_u2", "/start@offer_bot tt_u1"])
def test_another_prefix_is_not_a_uid_by_default(text: str) -> None:
    assert parse_start_payload(text) is None


def test_other_prefixes_are_read_when_given() -> None:
    assert parse_start_payload("/start ig_u2", prefixes=("fb", "ig")) == "u2"
    assert parse_start_payload("ig_u2", prefixes="ig") == "u2"
    assert parse_start_payload("fb_u2", prefixes="ig") is None
    assert parse_start_payload("tt_" + "x" * 61, prefixes=None) == "x" * 61  # any prefix


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "/start",
        "/start hello",
        "fb_",
        "_u1",
        "fb u1",
        "/start fb_<script>",
        "fb_" + "x" * 62,
        "/start fb_клик",
        "hello world",
    ],
)
def test_garbage_is_none(text: str | None) -> None:
    assert parse_start_payload(text) is None


def test_prefixes_can_be_limited() -> None:
    assert parse_start_payload("ig_u1", prefixes=("fb",)) is None
    assert parse_start_payload("fb_u1", prefixes=("fb",)) == "u1"


def test_deeplink_round_trips_and_refuses_what_telegram_would() -> None:
    link = deeplink("@offer_bot", "Ab3-x_9")
    assert link == "https://t.me/offer_bot?start=fb_Ab3-x_9"
    assert parse_start_payload(link.split("start=", 1)[1]) == "Ab3-x_9"
    with pytest.raises(ValueError, match="64"):
        deeplink("offer_bot", "x" * 62)
    with pytest.raises(ValueError, match="64"):
        deeplink("offer_bot", "bad uid")
    with pytest.raises(ValueError, match="bot username"):
        deeplink("x", "u")
    with pytest.raises(ValueError, match="prefix"):
        deeplink("offer_bot", "u", prefix="f_b")
