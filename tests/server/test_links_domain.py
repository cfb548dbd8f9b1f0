"""Pure link logic: slugs, destinations per kind, Telegram's payload limits, uids, visitors."""

from __future__ import annotations

import random
import re
import string

import pytest
from pydantic import ValidationError

from xtracker_server.domain.clicks import new_uid
from xtracker_server.domain.links import (
    LinkKind,
    LinkSpec,
    PayloadTooLong,
    check_slug,
    destination,
)
from xtracker_server.domain.visitors import (
    client_ip,
    country_code,
    new_fbp,
    parse_networks,
    valid_fbp,
)
from xtracker_wire import START_PAYLOAD_MAX

TELEGRAM_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")


@pytest.mark.parametrize("slug", ["a", "promo-1", "x" * 64, "2024-fb-ru"])
def test_valid_slugs(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "Promo", "-a", "a-", "a_b", "a b", "x" * 65, "ü"])
def test_invalid_slugs(slug: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        check_slug(slug)


def test_bot_link_leads_to_the_start_deeplink() -> None:
    spec = LinkSpec(kind=LinkKind.BOT, target="@My_Offer_Bot")
    assert spec.target == "My_Offer_Bot"
    assert spec.destination("AbC-_9") == "https://t.me/My_Offer_Bot?start=fb_AbC-_9"
    assert (
        LinkSpec(kind=LinkKind.BOT, target="https://t.me/x_bot_1", prefix="tt").destination("u")
        == "https://t.me/x_bot_1?start=tt_u"
    )


def test_miniapp_link_uses_startapp() -> None:
    spec = LinkSpec(kind=LinkKind.MINIAPP, target="shop_bot", app="store")
    assert spec.destination("u1") == "https://t.me/shop_bot/store?startapp=fb_u1"
    assert LinkSpec(kind=LinkKind.MINIAPP, target="shop_bot/store").app == "store"
    with pytest.raises(ValidationError, match="short name"):
        LinkSpec(kind=LinkKind.MINIAPP, target="shop_bot")


def test_channel_link_leads_to_the_invite_link_unchanged() -> None:
    invite = "https://t.me/+AbCdEf123"
    assert LinkSpec(kind=LinkKind.CHANNEL, target=invite).destination("u") == invite
    with pytest.raises(ValidationError, match="invite link"):
        LinkSpec(kind=LinkKind.CHANNEL, target="https://example.com/+x")


def test_web_link_needs_a_uid_placeholder_and_fills_it() -> None:
    spec = LinkSpec(kind=LinkKind.WEB, target="https://offer.example/?a=1&click_id={uid}")
    assert spec.destination("u-1_x") == "https://offer.example/?a=1&click_id=u-1_x"
    with pytest.raises(ValidationError, match=r"\{uid\}"):
        LinkSpec(kind=LinkKind.WEB, target="https://offer.example/?click_id=")
    with pytest.raises(ValidationError, match="http"):
        LinkSpec(kind=LinkKind.WEB, target="javascript:alert({uid})")


@pytest.mark.parametrize("prefix", ["", "f_b", "f b", "x" * 21, "фб"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        LinkSpec(kind=LinkKind.BOT, target="offer_bot", prefix=prefix)


def test_a_payload_telegram_would_refuse_is_never_produced() -> None:
    with pytest.raises(PayloadTooLong):
        destination(LinkKind.BOT, "offer_bot", None, "fb", "x" * 62)
    with pytest.raises(PayloadTooLong):
        destination(LinkKind.BOT, "offer_bot", None, "fb", "bad uid")


def test_every_deeplink_produced_fits_telegrams_limits() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        prefix = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 20)))
        spec = LinkSpec(kind=LinkKind.BOT, target="offer_bot", prefix=prefix)
        url = spec.destination(new_uid())
        payload = url.split("?start=", 1)[1]
        assert len(payload) <= START_PAYLOAD_MAX
        assert TELEGRAM_PAYLOAD.fullmatch(payload)


def test_no_uid_collision_in_200_000_mints() -> None:
    uids = [new_uid() for _ in range(200_000)]
    assert len(set(uids)) == len(uids)
    assert all(len(u) == 16 for u in uids[:1000])


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    assert client_ip("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    assert client_ip("127.0.0.1", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_ip("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", trusted) == "1.2.3.4"
    assert client_ip("127.0.0.1", "garbage", trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"
    assert client_ip("127.0.0.1", "2001:db8::1", trusted) == "2001:db8::1"


def test_country_code_from_a_cdn_header() -> None:
    assert country_code("ru") == "RU"
    assert country_code("XX") is None
    assert country_code("Russia") is None
    assert country_code(None) is None


def test_fbp_is_minted_in_metas_format_and_checked() -> None:
    fbp = new_fbp(1_700_000_000_000)
    assert re.fullmatch(r"fb\.1\.1700000000000\.\d+", fbp)
    assert valid_fbp(fbp) == fbp
    assert valid_fbp("fb.1.x.y") is None
