"""What a click records for grouping, against a real server and a real SQLite file: the device
type, OS and browser of its user agent, its referrer's domain, and the values of the query
parameters its space declares as sub-ids (set through the admin API and the CLI), each
space's declaration its own (issue 17 §1)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, Server, SpaceKeys

IPHONE_FACEBOOK = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.38.109;FBBV/620000000;FBDV/iPhone14,5;"
    "FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.6478.122 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/16.6 Mobile/15E148 Safari/604.1"
)
WINDOWS_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)

#: agent, referrer -> device, os, browser, referrer_domain
VISITS: list[tuple[str, str | None, tuple[str, str, str, str | None]]] = [
    (IPHONE_FACEBOOK, "https://m.facebook.com/", ("mobile", "iOS", "Facebook", "m.facebook.com")),
    (ANDROID_CHROME, "https://l.instagram.com/?u=x", ("mobile", "Android", "Chrome Mobile",
                                                      "l.instagram.com")),
    (ANDROID_TABLET, None, ("tablet", "Android", "Chrome", None)),
    (IPAD_SAFARI, "http://WWW.Example.COM:8080/a/b", ("tablet", "iOS", "Mobile Safari",
                                                      "example.com")),
    (WINDOWS_FIREFOX, "android-app://org.telegram.messenger/", ("desktop", "Windows", "Firefox",
                                                                None)),
    (MAC_CHROME, "https://www.google.com/search?q=x", ("desktop", "Mac OS X", "Chrome",
                                                       "google.com")),
]  # fmt: skip


def _click(server: Server, uid: str) -> dict[str, Any]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM clicks WHERE uid = ?", (uid,)).fetchone()
    finally:
        conn.close()
    assert row is not None, f"no click {uid}"
    return dict(row)


def _visit(server: Server, slug: str, query: str = "", **headers: str) -> str:
    with httpx.Client(
        verify=TLS_VERIFY, base_url=server.url, headers=headers, timeout=10
    ) as browser:
        answer = browser.get(f"/r/{slug}{query}")
    assert answer.status_code == 302, answer.text
    return answer.headers["location"].split("start=fb_", 1)[1]


def _link(server: Server, space: SpaceKeys, slug: str) -> str:
    server.cli("link", "create", "--space", str(space.id), "--slug", slug, "--kind", "bot",
               "--target", "offer_bot")  # fmt: skip
    return slug


def _admin(server: Server) -> httpx.Client:
    return httpx.Client(
        verify=TLS_VERIFY,
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )


@pytest.mark.parametrize(("agent", "referrer", "expected"), VISITS)
def test_a_click_records_its_device_os_browser_and_referrer_domain(
    server: Server,
    space: SpaceKeys,
    agent: str,
    referrer: str | None,
    expected: tuple[str, str, str, str | None],
) -> None:
    slug = f"dims-{abs(hash((agent, referrer))) % 10**8}"
    _link(server, space, slug)
    headers = {"User-Agent": agent, **({"Referer": referrer} if referrer else {})}
    click = _click(server, _visit(server, slug, **headers))
    assert (click["device"], click["os"], click["browser"], click["referrer_domain"]) == expected
    assert click["user_agent"] == agent and click["referrer"] == referrer  # kept as they came


def test_declared_sub_ids_are_recorded_in_their_space_only(server: Server) -> None:
    a, b = server.new_space("subs-a"), server.new_space("subs-b")
    _link(server, a, "subs-a")
    _link(server, b, "subs-b")
    with _admin(server) as admin:
        put = admin.put(f"/admin/spaces/{a.id}/sub-ids", json={"params": ["sub1", "creative"]})
        assert put.json() == {"ok": True, "space_id": a.id, "params": ["sub1", "creative"]}
        assert admin.get(f"/admin/spaces/{b.id}/sub-ids").json()["params"] == []
    query = "?sub1=zone-7&creative=v%202&sub2=not-declared&utm_source=fb"
    in_a = _click(server, _visit(server, "subs-a", query, **{"User-Agent": MAC_CHROME}))
    in_b = _click(server, _visit(server, "subs-b", query, **{"User-Agent": MAC_CHROME}))
    assert json.loads(in_a["sub_ids"]) == {"creative": "v 2", "sub1": "zone-7"}
    assert in_a["utm_source"] == "fb"  # a field of its own, as before
    assert in_b["sub_ids"] is None  # B declared none: A's declaration is A's


def test_a_declaration_changed_by_the_cli_is_seen_by_the_landing(server: Server) -> None:
    space = server.new_space("subs-cli")
    _link(server, space, "subs-cli")
    shown = server.cli_json("space", "sub-ids", "--space", str(space.id), "sub3", "--json")
    assert shown == {"space_id": space.id, "params": ["sub3"]}
    # The server caches a space's declaration for credential_cache_s (2 s): a CLI process on
    # the same file is seen after that; wait for it (bounded) rather than sleep a fixed time.
    recorded: dict[str, str] = {}
    for _ in range(100):
        click = _click(server, _visit(server, "subs-cli", "?sub3=x", **{"User-Agent": MAC_CHROME}))
        recorded = json.loads(click["sub_ids"] or "{}")
        if recorded:
            break
        time.sleep(0.1)
    assert recorded == {"sub3": "x"}
    cleared = server.cli_json("space", "sub-ids", "--space", str(space.id), "--clear", "--json")
    assert cleared["params"] == []


def test_a_bad_sub_id_declaration_is_a_clear_422_and_exit_2(server: Server) -> None:
    space = server.new_space("subs-bad")
    with _admin(server) as admin:
        for params, said in (
            (["1abc"], "is not a parameter name"),
            (["utm_source"], "is recorded as a field of its own"),
            (["sub1", "sub1"], "is given twice"),
            ([f"s{i}" for i in range(21)], "at most 20"),
            ([7], "is not a parameter name"),
        ):
            answer = admin.put(f"/admin/spaces/{space.id}/sub-ids", json={"params": params})
            assert answer.status_code == 422, answer.text
            body = answer.json()
            assert (body["ok"], body["error"], body["field"]) == (False, "invalid_field", "params")
            assert said in body["detail"]
        not_a_list = admin.put(f"/admin/spaces/{space.id}/sub-ids", json={"params": "sub1"})
        assert not_a_list.status_code == 422
        assert admin.get(f"/admin/spaces/{space.id}/sub-ids").json()["params"] == []
    done = server.cli("space", "sub-ids", "--space", str(space.id), "fbclid", check=False)
    assert done.returncode == 2 and "recorded as a field of its own" in done.stderr + done.stdout
