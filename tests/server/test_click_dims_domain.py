"""What a click records for grouping, as pure rules (domain/devices.py, domain/clicks.py): the
device type, OS and browser of a user agent, the referrer's domain, the declared sub-ids."""

from __future__ import annotations

import pytest

from xtracker_server.domain.clicks import (
    SUB_IDS_MAX,
    check_sub_id_names,
    click_draft,
    referrer_domain,
    sub_id_values,
)
from xtracker_server.domain.devices import DeviceType, UserAgentDims, user_agent_dims

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.6478.122 Mobile Safari/537.36"
)
KINDLE = (
    "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Silk/126.4.1 like Chrome/126.0.6478.207 Safari/537.36"
)
TELEGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36"
    " Telegram-Android/11.0.0 (Samsung SM-A536B; Android 13; SDK 33; AVERAGE)"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("agent", "device", "os"),
    [
        (IPHONE, DeviceType.MOBILE, "iOS"),
        (ANDROID_PHONE, DeviceType.MOBILE, "Android"),
        (TELEGRAM_ANDROID, DeviceType.MOBILE, "Android"),
        (KINDLE, DeviceType.TABLET, "Android"),
        (LINUX_FIREFOX, DeviceType.DESKTOP, "Linux"),
        (GOOGLEBOT, DeviceType.BOT, None),
    ],
)
def test_the_device_type_and_os_come_from_the_parsed_agent(
    agent: str, device: DeviceType, os: str | None
) -> None:
    found = user_agent_dims(agent)
    assert (found.device, found.os) == (device, os)
    assert found.browser  # every one of these names its browser or bot


def test_no_user_agent_records_nothing() -> None:
    assert user_agent_dims(None) == UserAgentDims(None, None, None)
    assert user_agent_dims("  ") == UserAgentDims(None, None, None)


def test_an_unknown_agent_is_a_desktop_of_no_known_os_or_browser() -> None:
    assert user_agent_dims("Zzqx/0 (Qwv)") == UserAgentDims(DeviceType.DESKTOP, None, None)


def test_a_repeated_agent_is_parsed_once() -> None:
    user_agent_dims.cache_clear()
    user_agent_dims(IPHONE)
    user_agent_dims(IPHONE)
    info = user_agent_dims.cache_info()
    assert (info.hits, info.misses) == (1, 1) and info.maxsize is not None


@pytest.mark.parametrize(
    ("referrer", "domain"),
    [
        ("https://m.facebook.com/", "m.facebook.com"),
        ("https://www.Google.com/search?q=a", "google.com"),
        ("http://l.instagram.com:8080/x", "l.instagram.com"),
        ("https://example.com./", "example.com"),
        ("android-app://org.telegram.messenger/", None),
        ("not a url", None),
        ("https://[::1", None),  # urlsplit's ValueError
        ("", None),
        (None, None),
    ],
)
def test_the_referrer_domain_is_its_host(referrer: str | None, domain: str | None) -> None:
    assert referrer_domain(referrer) == domain


def test_only_declared_non_empty_sub_ids_are_taken() -> None:
    params = {"sub1": "a", "sub2": "b", "creative": "v1"}
    assert sub_id_values(params, ("sub1", "creative", "sub5")) == {"sub1": "a", "creative": "v1"}
    assert sub_id_values(params, ()) == {}


def test_a_click_draft_reads_every_dimension_once() -> None:
    draft = click_draft(
        space_id=1,
        source="redirect",
        now_ms=1,
        raw_query="sub1=zone%207&utm_source=fb&creative=",
        user_agent=IPHONE,
        referrer="https://m.facebook.com/story",
        sub_id_params=("sub1", "creative"),
    )
    assert (draft.device, draft.os, draft.browser) == ("mobile", "iOS", "Mobile Safari")
    assert draft.referrer_domain == "m.facebook.com"
    assert draft.sub_ids == {"sub1": "zone 7"}  # an empty value is no value
    assert draft.fields == {"utm_source": "fb"}


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["sub 1"], "is not a parameter name"),
        (["9lives"], "is not a parameter name"),
        ([""], "is not a parameter name"),
        (["x" * 33], "is not a parameter name"),
        ([None], "is not a parameter name"),
        (["campaign_id"], "is recorded as a field of its own"),
        (["fbclid"], "is recorded as a field of its own"),
        (["sub1", "sub1"], "is given twice"),
        ([f"s{i}" for i in range(SUB_IDS_MAX + 1)], f"at most {SUB_IDS_MAX}"),
    ],
)
def test_bad_sub_id_names_are_refused_with_the_reason(names: list[object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_sub_id_names(names)


def test_sub_id_names_keep_their_order() -> None:
    assert check_sub_id_names(["sub2", "creative", "sub-1"]) == ("sub2", "creative", "sub-1")
    assert check_sub_id_names([]) == ()
