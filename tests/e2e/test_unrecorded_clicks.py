"""A click flood and bots against a real server: every visitor is sent on, but only people within
the per-address limit are recorded, and what was not recorded is counted per link in the links
report, across a restart."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, AppServer, Server, ServerFactory, SpaceKeys
from tests.databases import migrated

LIMIT = 3  # clicks per address per minute: one more every 20 s, never within a test
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
OFFER = "https://t.me/offer_bot?start=fb_"  # where the links lead; a bare one carries no uid


def visit(
    server: Server, path: str, *, agent: str = PHONE, ip: str | None = None
) -> httpx.Response:
    """One first visit (no cookies): from ``ip`` as a trusted proxy on 127.0.0.1 says, or from
    127.0.0.1 itself."""
    headers = {"User-Agent": agent} | ({"X-Forwarded-For": ip} if ip else {})
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=10, verify=TLS_VERIFY)


def clicks_from(server: Server, ip: str) -> list[str]:
    conn = sqlite3.connect(server.db)
    try:
        return [
            u for (u,) in conn.execute("SELECT uid FROM clicks WHERE ip = ? ORDER BY id", (ip,))
        ]
    finally:
        conn.close()


def links_report(server: Server, space: SpaceKeys) -> dict[str | None, dict[str, Any]]:
    r = httpx.get(
        f"{server.url}/admin/spaces/{space.id}/reports/links",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
        verify=TLS_VERIFY,
    )
    assert r.status_code == 200, r.text
    return {row["link"]: row for row in r.json()["links"]}


def unrecorded(
    server: Server, space: SpaceKeys, slug: str, *, want: tuple[int, int]
) -> tuple[int, int]:
    """(unrecorded_bots, unrecorded_limited) of a link once they reach ``want`` (the server
    stores its tally every second), or what they are after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        row = links_report(server, space)[slug]
        got = (row["unrecorded_bots"], row["unrecorded_limited"])
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)  # the tally is stored on a timer: nothing to wait on


def make_link(server: Server, space: SpaceKeys, slug: str) -> str:
    server.cli("link", "create", "--space", str(space.id), "--slug", slug, "--kind", "bot",
               "--target", "offer_bot")  # fmt: skip
    return slug


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that records 3 clicks per address per minute and believes X-Forwarded-For from
    127.0.0.1 (so each test can be its own address)."""
    server = AppServer(
        db=migrated(tmp_path_factory.mktemp("limited") / "xtracker.db"),
        extra_args=("--click-limit-per-ip", str(LIMIT), "--trusted-proxies", "127.0.0.1"),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def space(limited: Server) -> SpaceKeys:
    return limited.new_space("flood")


def test_a_flood_from_one_address_is_always_redirected_but_records_only_the_limit(
    limited: Server, space: SpaceKeys
) -> None:
    flooded, quiet = make_link(limited, space, "flooded"), make_link(limited, space, "quiet")
    answers = [visit(limited, f"/r/{flooded}", ip="203.0.113.7") for _ in range(30)]

    assert all(r.status_code == 302 for r in answers)
    assert all(r.headers["location"].startswith(OFFER) for r in answers)
    recorded = clicks_from(limited, "203.0.113.7")
    assert len(recorded) == LIMIT
    assert [r.headers["location"] for r in answers[:LIMIT]] == [OFFER + u for u in recorded]
    assert all(r.headers["location"] == OFFER for r in answers[LIMIT:])  # sent on, no uid
    assert all("set-cookie" not in r.headers for r in answers[LIMIT:])
    assert unrecorded(limited, space, flooded, want=(0, 30 - LIMIT)) == (0, 30 - LIMIT)
    assert unrecorded(limited, space, quiet, want=(0, 0)) == (0, 0)


def test_a_second_address_is_not_affected_by_the_first_ones_flood(
    limited: Server, space: SpaceKeys
) -> None:
    slug = make_link(limited, space, "shared")
    for _ in range(10):
        visit(limited, f"/r/{slug}", ip="198.51.100.20")
    second = [visit(limited, f"/r/{slug}", ip="198.51.100.21") for _ in range(LIMIT)]
    assert len(clicks_from(limited, "198.51.100.20")) == LIMIT
    assert sorted(r.headers["location"] for r in second) == sorted(
        OFFER + u for u in clicks_from(limited, "198.51.100.21")
    )
    assert len(clicks_from(limited, "198.51.100.21")) == LIMIT


def test_past_the_limit_the_landing_page_is_still_shown(limited: Server, space: SpaceKeys) -> None:
    slug = make_link(limited, space, "page")
    pages = [visit(limited, f"/l/{slug}", ip="198.51.100.30") for _ in range(LIMIT + 2)]
    assert all(p.status_code == 200 for p in pages)
    assert all(f'href="{OFFER}"' in p.text for p in pages[LIMIT:])  # leads on, with no uid
    assert len(clicks_from(limited, "198.51.100.30")) == LIMIT


TOOLS = [
    "curl/8.5.0",
    "python-requests/2.31.0",
    "python-httpx/0.27.0",
    "Python/3.11 aiohttp/3.9.1",
    "Go-http-client/1.1",
    "Wget/1.21.4",
    "okhttp/4.12.0",
    "Java/17.0.2",
    "libwww-perl/6.72",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.109 Safari/537.36",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/83.0.4103.61 Safari/537.36 StatusCake",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
]


def test_tools_and_bots_are_redirected_and_not_recorded(limited: Server, space: SpaceKeys) -> None:
    slug = make_link(limited, space, "tools")
    for n, agent in enumerate(TOOLS):
        ip = f"192.0.2.{n + 1}"
        r = visit(limited, f"/r/{slug}", agent=agent, ip=ip)
        assert (r.status_code, r.headers["location"]) == (302, OFFER), agent
        assert "set-cookie" not in r.headers, agent
        assert clicks_from(limited, ip) == [], agent
    want = (len(TOOLS), 0)
    assert unrecorded(limited, space, slug, want=want) == want


PEOPLE = {
    "desktop Chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36",
    "iPhone Safari": PHONE,
    "Telegram Android": "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile "
    "Safari/537.36 Telegram-Android/10.6.2 (Samsung SM-A536B; Android 13; SDK 33; AVERAGE)",
    "Telegram iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Telegram-iOS/10.5",
    "Facebook iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/444.0.0.34.118;"
    "FBBV/551736419;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBID/phone;"
    "FBLC/en_US;FBOP/5;FBRV/553345424]",
    "Facebook Android": "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/121.0.6167.178 Mobile "
    "Safari/537.36 [FB_IAB/FB4A;FBAV/452.0.0.40.109;]",
    "Instagram": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 318.0.7.22.109 (iPhone15,3; iOS 17_3; en_US; "
    "en; scale=3.00; 1290x2796; 551431853)",
}


@pytest.fixture(scope="module")
def people_link(limited: Server, space: SpaceKeys) -> str:
    return make_link(limited, space, "people")


@pytest.mark.parametrize("who", PEOPLE)
def test_browsers_and_in_app_browsers_are_recorded(
    limited: Server, people_link: str, who: str
) -> None:
    ip = f"198.18.0.{list(PEOPLE).index(who) + 1}"
    r = visit(limited, f"/r/{people_link}", agent=PEOPLE[who], ip=ip)
    assert r.status_code == 302
    (uid,) = clicks_from(limited, ip)
    assert r.headers["location"] == OFFER + uid


def test_a_limit_of_0_records_every_click(start_app: ServerFactory) -> None:
    server = start_app("--click-limit-per-ip", "0")
    space = server.new_space("unlimited")
    slug = make_link(server, space, "open")
    answers = [visit(server, f"/r/{slug}") for _ in range(30)]
    uids = clicks_from(server, "127.0.0.1")
    assert len(uids) == 30
    assert sorted(r.headers["location"] for r in answers) == sorted(OFFER + u for u in uids)
    assert unrecorded(server, space, slug, want=(0, 0)) == (0, 0)


def test_the_unrecorded_counts_survive_a_restart(start_app: ServerFactory) -> None:
    server = start_app("--click-limit-per-ip", "2")
    space = server.new_space("restart")
    slug = make_link(server, space, "kept")
    for _ in range(7):
        visit(server, f"/r/{slug}")
    visit(server, f"/r/{slug}", agent="curl/8.5.0")
    server.stop()  # as SIGTERM does: what the last second counted is stored on the way out
    server.start()
    assert unrecorded(server, space, slug, want=(1, 5)) == (1, 5)
    visit(server, f"/r/{slug}", agent="curl/8.5.0")  # added to, not replaced
    assert unrecorded(server, space, slug, want=(2, 5)) == (2, 5)
