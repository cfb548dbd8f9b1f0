"""Landing pages and redirects against a real server: clicks minted, captured and committed;
crawlers, HEAD, repeat visits, unknown and disabled links mint nothing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, Server, ServerFactory, SpaceKeys

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DEEPLINK = re.compile(r'href="(https://t\.me/offer_bot\?start=fb_([A-Za-z0-9_-]+))"')


def browser(server: Server, **headers: str) -> httpx.Client:
    """A new browser: its own cookie jar, a phone's user agent."""
    return httpx.Client(
        base_url=server.url,
        headers={"User-Agent": PHONE, **headers},
        timeout=10,
        verify=TLS_VERIFY,
    )


def clicks(server: Server, where: str = "1", *args: object) -> list[dict[str, Any]]:
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM clicks WHERE {where}", args)]
    finally:
        conn.close()


def make_link(server: Server, space: SpaceKeys, slug: str, *args: str) -> None:
    server.cli("link", "create", "--space", str(space.id), "--slug", slug, *args)


@pytest.fixture(scope="module")
def bot_link(server: Server, space: SpaceKeys) -> str:
    make_link(
        server,
        space,
        "promo",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
        "--title",
        "Win <b>big</b>",
        "--text",
        "Line 1\nLine 2",
    )
    return "promo"


@pytest.fixture
def phone(server: Server) -> Iterator[httpx.Client]:
    with browser(server) as client:
        yield client


def test_landing_leads_to_the_bot_with_a_fresh_uid_that_binds_in_its_space_only(
    server: Server, space: SpaceKeys, bot_link: str
) -> None:
    uids = []
    for _ in range(2):
        with browser(server) as phone:
            page = phone.get(f"/l/{bot_link}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        match = DEEPLINK.search(page.text)
        assert match, page.text
        uids.append(match.group(2))
    assert uids[0] != uids[1]

    other = server.new_space("elsewhere")
    with server.client() as api:
        mine = api.post("/bind", json={"uid": uids[0], "tg_id": 5001}, headers=space.auth)
        theirs = api.post("/bind", json={"uid": uids[1], "tg_id": 5002}, headers=other.auth)
    assert mine.json()["matched"] is True
    assert theirs.json()["matched"] is False


def test_a_reload_with_the_cookie_keeps_the_uid_and_is_not_a_new_click(
    server: Server, bot_link: str, phone: httpx.Client
) -> None:
    first = DEEPLINK.search(phone.get(f"/l/{bot_link}").text)
    before = len(clicks(server))
    again = DEEPLINK.search(phone.get(f"/l/{bot_link}").text)
    redirect = phone.get(f"/r/{bot_link}")
    assert first and again
    assert again.group(2) == first.group(2)
    assert redirect.headers["location"].endswith(f"fb_{first.group(2)}")
    assert len(clicks(server)) == before


def test_a_forged_visit_cookie_gets_a_new_click(
    server: Server, bot_link: str, phone: httpx.Client
) -> None:
    page = phone.get(f"/l/{bot_link}")
    cookie = next(c for c in phone.cookies.jar if c.name.startswith("xt_v"))
    phone.cookies.set(cookie.name, "not-a-real-uid", domain=cookie.domain)
    match = DEEPLINK.search(phone.get(f"/l/{bot_link}").text)
    assert match and match.group(2) != "not-a-real-uid"
    assert page.status_code == 200


@pytest.mark.parametrize(
    "agent",
    [
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0",
        "",
    ],
)
def test_crawlers_mint_nothing(server: Server, bot_link: str, agent: str) -> None:
    before = len(clicks(server))
    with browser(server, **{"User-Agent": agent}) as bot:
        page = bot.get(f"/l/{bot_link}")
        redirect = bot.get(f"/r/{bot_link}")
    assert page.status_code == 200
    assert "start=" not in page.text  # the preview sees the page, with no uid in it
    assert "Win &lt;b&gt;big&lt;/b&gt;" in page.text
    # /r sends a bot where it sends people, with an empty uid: the bot reads an organic /start.
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://t.me/offer_bot?start=fb_"
    assert "set-cookie" not in page.headers and "set-cookie" not in redirect.headers
    assert len(clicks(server)) == before


def test_head_requests_mint_nothing(server: Server, bot_link: str, phone: httpx.Client) -> None:
    before = len(clicks(server))
    assert phone.head(f"/l/{bot_link}").status_code == 200
    assert phone.head(f"/r/{bot_link}").status_code == 302
    assert len(clicks(server)) == before


def test_the_title_is_shown_as_text_never_as_markup(server: Server, space: SpaceKeys) -> None:
    make_link(
        server,
        space,
        "xss",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
        "--title",
        "<script>alert(1)</script>",
        "--button",
        '"><img src=x onerror=alert(1)>',
        "--text",
        "<xt-url/> <xt-nonce/>",  # the page's own slots, as a user's text: shown, not filled
        "--image-url",
        'https://img.example/a.png"onload="alert(1)',
    )
    with browser(server) as phone:
        page = phone.get("/l/xss")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text and 'onload="alert' not in page.text
    assert "&lt;xt-url/&gt; &lt;xt-nonce/&gt;" in page.text
    assert "<xt-" not in page.text  # every slot of the page itself was filled
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_a_click_captures_the_ad_the_visitor_and_the_browser_ids(
    server: Server, bot_link: str
) -> None:
    query = (
        "fbclid=IwAR2_CaseKept&campaign_id=120&campaign_name=Spring%20Sale&adset_id=121"
        "&adset_name=RU%2025-34&ad_id=122&ad_name=Video%20A&placement=Instagram_Stories"
        "&utm_source=facebook&utm_medium=paid&utm_campaign=spring&utm_content=v1&utm_term=t"
    )
    with browser(server, Referer="https://l.facebook.com/") as phone:
        phone.cookies.set("_fbp", "fb.1.1700000000000.123456789")
        r = phone.get(f"/r/{bot_link}?{query}")
    uid = r.headers["location"].split("start=fb_", 1)[1]
    click = clicks(server, "uid = ?", uid)[0]
    assert click["source"] == "redirect" and click["link_id"] is not None
    assert click["fbclid"] == "IwAR2_CaseKept"
    assert click["fbc"] == f"fb.1.{click['created_ms']}.IwAR2_CaseKept"
    assert click["fbp"] == "fb.1.1700000000000.123456789"  # the browser's own, kept
    assert (click["campaign_id"], click["campaign_name"]) == ("120", "Spring Sale")
    assert (click["adset_id"], click["adset_name"]) == ("121", "RU 25-34")
    assert (click["ad_id"], click["ad_name"], click["placement"]) == (
        "122",
        "Video A",
        "Instagram_Stories",
    )
    assert (click["utm_source"], click["utm_medium"], click["utm_campaign"]) == (
        "facebook",
        "paid",
        "spring",
    )
    assert (click["utm_content"], click["utm_term"]) == ("v1", "t")
    assert click["ip"] == "127.0.0.1"
    assert click["user_agent"] == PHONE
    assert click["referrer"] == "https://l.facebook.com/"
    assert click["raw_query"] == query


def test_an_absurd_fbclid_is_capped(server: Server, bot_link: str) -> None:
    with browser(server) as phone:
        r = phone.get(f"/r/{bot_link}", params={"fbclid": "A" * 20_000})
    click = clicks(server, "uid = ?", r.headers["location"].split("start=fb_", 1)[1])[0]
    assert click["fbclid"] == "A" * 512
    assert click["fbc"] == f"fb.1.{click['created_ms']}.{'A' * 512}"


def test_a_browser_without_fbp_gets_one_set_and_recorded(server: Server, bot_link: str) -> None:
    with browser(server) as phone:
        r = phone.get(f"/r/{bot_link}")
        fbp = phone.cookies.get("_fbp")
    assert fbp and re.fullmatch(r"fb\.1\.\d{13}\.\d+", fbp)
    uid = r.headers["location"].split("start=fb_", 1)[1]
    assert clicks(server, "uid = ?", uid)[0]["fbp"] == fbp


def test_unknown_and_disabled_links_are_a_plain_404(
    server: Server, space: SpaceKeys, phone: httpx.Client
) -> None:
    make_link(server, space, "soon-off", "--kind", "bot", "--target", "offer_bot")
    assert phone.get("/l/soon-off").status_code == 200
    server.cli("link", "disable", "--space", str(space.id), "--slug", "soon-off")
    before = len(clicks(server))
    # The server sees the CLI's change within its cache time (2 s).
    r = _eventually_status(phone, "/l/soon-off", 404)
    assert "Link not found" in r.text and r.headers["content-type"].startswith("text/html")
    assert phone.get("/r/soon-off").status_code == 404
    assert phone.get("/l/no-such-link").status_code == 404
    assert len(clicks(server)) == before


def _eventually_status(client: httpx.Client, path: str, status: int) -> httpx.Response:
    import time

    deadline = time.monotonic() + 10
    while True:
        r = client.get(path)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_web_channel_and_miniapp_links_lead_to_their_targets(
    server: Server, space: SpaceKeys, phone: httpx.Client
) -> None:
    make_link(
        server,
        space,
        "offer",
        "--kind",
        "web",
        "--target",
        "https://offer.example/go?aff=7&click_id={uid}",
    )
    make_link(server, space, "chan", "--kind", "channel", "--target", "https://t.me/+AbCdEf12")
    make_link(
        server,
        space,
        "shop",
        "--kind",
        "miniapp",
        "--target",
        "shop_bot",
        "--app",
        "store",
        "--prefix",
        "ig",
    )
    web = phone.get("/r/offer").headers["location"]
    assert web.startswith("https://offer.example/go?aff=7&click_id=")
    uid = web.rsplit("=", 1)[1]
    assert clicks(server, "uid = ?", uid)[0]["space_id"] == space.id
    assert phone.get("/r/chan").headers["location"] == "https://t.me/+AbCdEf12"
    shop = phone.get("/r/shop").headers["location"]
    assert re.fullmatch(r"https://t\.me/shop_bot/store\?startapp=ig_[A-Za-z0-9_-]{16}", shop)


def test_auto_redirect_page_refreshes_to_the_target(server: Server, space: SpaceKeys) -> None:
    make_link(
        server,
        space,
        "auto",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
        "--auto-redirect",
        "--delay-ms",
        "1500",
    )
    with browser(server) as phone:
        page = phone.get("/l/auto").text
    match = DEEPLINK.search(page)
    assert match
    # The no-script fallback rounds up, so it never fires before the 1.5 s the user asked for.
    assert f'<meta http-equiv="refresh" content="2;url={match.group(1)}">' in page
    assert "setTimeout" in page and ",1500)" in page


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    start_app: ServerFactory,
) -> None:
    for trusted, expected in ((None, "127.0.0.1"), ("127.0.0.1", "198.51.100.7")):
        args = ("--trusted-proxies", trusted) if trusted else ()
        srv = start_app(*args, "--country-header", "CF-IPCountry")
        space = srv.new_space()
        slug = f"p{space.id}"
        make_link(srv, space, slug, "--kind", "bot", "--target", "offer_bot")
        with browser(srv, **{"X-Forwarded-For": "198.51.100.7", "CF-IPCountry": "de"}) as phone:
            uid = phone.get(f"/r/{slug}").headers["location"].split("fb_", 1)[1]
        click = clicks(srv, "uid = ?", uid)[0]
        assert (click["ip"], click["country"]) == (expected, "DE")
        srv.stop()


def test_link_admin_api(server: Server, space: SpaceKeys) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = f"/admin/spaces/{space.id}/links"
    with server.client() as api:
        r = api.post(
            base, json={"slug": "api-link", "kind": "bot", "target": "offer_bot"}, headers=admin
        )
        assert r.status_code == 201
        assert r.json() == {
            "ok": True,
            "slug": "api-link",
            "kind": "bot",
            "landing_url": f"{server.url}/l/api-link",
            "redirect_url": f"{server.url}/r/api-link",
        }
        taken = api.post(
            base, json={"slug": "api-link", "kind": "bot", "target": "offer_bot"}, headers=admin
        )
        assert taken.status_code == 409 and taken.json()["error"] == "slug_taken"
        bad = api.post(
            base, json={"slug": "x", "kind": "web", "target": "https://a.example/"}, headers=admin
        )
        assert bad.status_code == 422 and bad.json()["field"] == "target"
        bad = api.post(
            base, json={"slug": "x", "kind": "telegram", "target": "offer_bot"}, headers=admin
        )
        assert [f["field"] for f in bad.json()["fields"]] == ["kind"]
        bad = api.post(base, json={"slug": 5, "kind": "bot", "target": "offer_bot"}, headers=admin)
        assert bad.json()["detail"] == "slug: must be a string"
        r = api.post(
            base,
            json={"slug": "mini", "kind": "miniapp", "target": "shop_bot/store"},
            headers=admin,
        )
        assert r.status_code == 201
        r = api.patch(f"{base}/mini", json={"target": "other_bot/cart"}, headers=admin)
        assert (r.json()["link"]["target"], r.json()["link"]["app"]) == ("other_bot", "cart")
        listed = api.get(base, headers=admin).json()["links"]
        assert "api-link" in [link["slug"] for link in listed]
        r = api.patch(f"{base}/api-link", json={"enabled": False, "title": "Off"}, headers=admin)
        assert r.status_code == 200 and r.json()["link"]["enabled"] is False
        # The admin API drops the cached link at once.
        assert api.get("/r/api-link", headers={"User-Agent": PHONE}).status_code == 404
        assert api.patch(f"{base}/nope", json={}, headers=admin).status_code == 404
        r = api.patch(f"{base}/api-link", json={"colour": "red"}, headers=admin)
        assert r.status_code == 422 and r.json()["field"] == "colour"
        assert api.get(base, headers=space.auth).status_code == 401


def test_cli_link_create_json_uses_the_public_url(server: Server, space: SpaceKeys) -> None:
    out = server.cli_json(
        "link",
        "create",
        "--space",
        str(space.id),
        "--slug",
        "pub",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
        "--public-url",
        "https://go.example.com/",
    )
    assert out == {
        "slug": "pub",
        "kind": "bot",
        "landing_url": "https://go.example.com/l/pub",
        "redirect_url": "https://go.example.com/r/pub",
    }
    listed = server.cli_json("link", "list", "--space", str(space.id))
    assert "pub" in [link["slug"] for link in listed]
    failed = server.cli(
        "link",
        "create",
        "--space",
        str(space.id),
        "--slug",
        "pub",
        "--kind",
        "bot",
        "--target",
        "offer_bot",
        check=False,
    )
    assert failed.returncode == 1 and "taken" in failed.stderr
    missing = server.cli("link", "list", "--space", "9999", check=False)
    assert missing.returncode == 1 and "no space 9999" in missing.stderr
