"""The ingest token cannot take another link's revenue (docs/api.md#who-may-replace-whom).

The attack, end to end on a real server: a victim arrives through link A and the bot binds
them; whoever holds the ingest token (it sits in partner URLs) mints a uid on link B through the
public redirect and binds it to the victim's ``tg_id`` with ``GET /bind``. The bot's next
``tg_id``-only deposit must stay with link A in the reports, the webhook, the S2S postback and
the postback log."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, TLS_VERIFY, AppServer, Server, SpaceKeys
from tests.databases import migrated
from tests.sink import Received, Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BROWSER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose worker may deliver to the local sink, and that never rate-limits."""
    db = migrated(tmp_path_factory.mktemp("binds") / "xtracker.db")
    server = AppServer(db=db, extra_args=FAST_RETRY)
    server.start()
    yield server
    server.stop()


@dataclass
class Shop:
    """A space with two links, A (the victim's) and B (the attacker's), whose events go to a
    webhook and an S2S postback on the sink."""

    space: SpaceKeys
    link_a: str
    link_b: str


@pytest.fixture
def shop(server: Server, sink: Sink) -> Shop:
    with server.client() as http:
        r = http.post("/admin/spaces", json={"name": "shop"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        space = SpaceKeys(**{k: v for k, v in r.json().items() if k != "ok"})
        for slug in ("a", "b"):
            link = {"slug": f"{slug}-{space.id}", "kind": "bot", "target": "shop_bot"}
            r = http.post(f"/admin/spaces/{space.id}/links", json=link, headers=ADMIN)
            assert r.status_code == 201, r.text
        for body in (
            {"kind": "webhook", "url": f"{sink.url}/hook"},
            {"kind": "s2s_postback",
             "url_template": f"{sink.url}/s2s?link={{link}}&uid={{uid}}&cn={{campaign_name}}"
                             f"&sum={{value}}"},
        ):  # fmt: skip
            r = http.post(f"/admin/spaces/{space.id}/destinations", json=body, headers=ADMIN)
            assert r.status_code in (200, 201), r.text
    return Shop(space, f"a-{space.id}", f"b-{space.id}")


def click(server: Server, slug: str, campaign: str) -> str:
    """A visitor's click through a link's public redirect (a fresh browser: no cookies); the
    uid is the one in the bot's start payload."""
    r = httpx.get(
        f"{server.url}/r/{slug}",
        verify=TLS_VERIFY,
        params={"campaign_name": campaign},
        headers=BROWSER,
    )
    assert r.status_code in (302, 303, 307), r.text
    start = parse_qs(urlsplit(r.headers["location"]).query)["start"][0]
    assert start.startswith("fb_")
    return start.removeprefix("fb_")


def victim_tg() -> int:
    return 10_000_000 + uuid.uuid4().int % 1_000_000_000


def bot_bind(http: httpx.Client, shop: Shop, uid: str, tg: int) -> dict[str, Any]:
    r = http.post("/bind", json={"uid": uid, "tg_id": tg}, headers=shop.space.auth)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def token_bind(http: httpx.Client, shop: Shop, uid: str, tg: int) -> httpx.Response:
    return http.get("/bind", params={"token": shop.space.ingest_token, "uid": uid, "tg_id": tg})


def bot_deposit(http: httpx.Client, shop: Shop, tg: int, value: str) -> None:
    """The bot reports a deposit by the Telegram user alone, as bots do."""
    body = {"event": "deposit", "tg_id": tg, "value": value, "eid": uuid.uuid4().hex}
    r = http.post("/events", json=body, headers=shop.space.auth)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text


def deposits_per_link(http: httpx.Client, shop: Shop) -> dict[str | None, tuple[int, Any]]:
    now = int(time.time() * 1000)
    r = http.get(
        f"/admin/spaces/{shop.space.id}/reports/links",
        params={"from": now - 3_600_000, "to": now + 60_000},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    return {row["link"]: (row["deposits"], row["revenue"]) for row in r.json()["links"]}


def delivered(sink: Sink, value: str, count: int) -> list[Received]:
    """The webhook and the S2S postback of the deposit of ``value`` (among ``count`` requests
    the sink expects in all)."""
    got = sink.wait_for(count)
    assert len(got) >= count, [r.target for r in got]
    return [
        r for r in got
        if (r.path == "/hook" and r.json()["data"]["value"] == value)
        or (r.path == "/s2s" and r.query.get("sum") == value)
    ]  # fmt: skip


def assert_sent_for_link(requests: list[Received], slug: str, uid: str, campaign: str) -> None:
    assert sorted(r.path for r in requests) == ["/hook", "/s2s"]
    for r in requests:
        if r.path == "/hook":
            sent = r.json()["click"]
            assert (sent["link"], sent["uid"], sent["campaign_name"]) == (slug, uid, campaign)
        else:
            assert (r.query["link"], r.query["uid"], r.query["cn"]) == (slug, uid, campaign)


def test_a_token_bind_cannot_take_a_bound_users_deposit(
    server: Server, shop: Shop, sink: Sink
) -> None:
    tg = victim_tg()
    uid_a = click(server, shop.link_a, "Spring-A")
    uid_b = click(server, shop.link_b, "Attacker-B")
    with server.client() as http:
        assert bot_bind(http, shop, uid_a, tg)["status"] == "bound"

        stolen = token_bind(http, shop, uid_b, tg)
        assert stolen.status_code == 200, stolen.text

        bot_deposit(http, shop, tg, "50.00")
        # A partner's postback of the same user by tg_id alone: the log shows whose it is.
        r = http.get("/e", params={"token": shop.space.ingest_token, "event": "deposit",
                                   "tg_id": tg, "value": "7.00", "eid": "net-1"})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text

        per_link = deposits_per_link(http, shop)
        assert per_link[shop.link_a] == (2, {"USD": "57.00"})
        assert per_link[shop.link_b] == (0, {})
        log = http.get(f"/admin/spaces/{shop.space.id}/postbacks", headers=ADMIN).json()
        assert [(p["eid"], p["uid"], p["attributed"]) for p in log["postbacks"]] == [
            ("net-1", uid_a, True)
        ]
    assert_sent_for_link(delivered(sink, "50.00", 4), shop.link_a, uid_a, "Spring-A")
    assert_sent_for_link(delivered(sink, "7.00", 4), shop.link_a, uid_a, "Spring-A")
    # The token holder was told: ignored, nothing stored.
    assert stolen.json() == {
        **stolen.json(), "ok": True, "matched": True, "status": "ignored", "bound": False,
        "attributed_events": 0,
    }  # fmt: skip
    assert "already bound" in stolen.json()["detail"]


def test_the_bots_bind_replaces_a_token_bind_made_before_it(
    server: Server, shop: Shop, sink: Sink
) -> None:
    tg = victim_tg()
    with server.client() as http:
        # The user deposited before arriving through an ad: the deposit waits, unattributed.
        bot_deposit(http, shop, tg, "10.00")
        uid_a = click(server, shop.link_a, "Spring-A")
        uid_b = click(server, shop.link_b, "Attacker-B")

        # The token holder is first: an unbound user's token bind is taken, and takes the
        # waiting deposit (the report shows it under B)...
        first = token_bind(http, shop, uid_b, tg)
        assert first.status_code == 200, first.text
        assert (first.json()["status"], first.json()["attributed_events"]) == ("bound", 1)
        assert deposits_per_link(http, shop)[shop.link_b] == (1, {"USD": "10.00"})

        # ... until the bot binds the user it saw arrive through A: that bind replaces it.
        replaced = bot_bind(http, shop, uid_a, tg)
        bot_deposit(http, shop, tg, "50.00")

        per_link = deposits_per_link(http, shop)
        assert per_link[shop.link_a] == (2, {"USD": "60.00"})
        assert per_link.get(shop.link_b, (0, {})) == (0, {})
        # The bot's bind answer counts the deposit it took over.
        assert (replaced["status"], replaced["bound"], replaced["attributed_events"]) == (
            "bound", True, 1,
        )  # fmt: skip
        # And the token cannot come back once the bot has bound the user.
        again = token_bind(http, shop, click(server, shop.link_b, "Attacker-B"), tg)
        assert (again.status_code, again.json()["bound"]) == (200, False)
    assert_sent_for_link(delivered(sink, "50.00", 4), shop.link_a, uid_a, "Spring-A")
    rows = binds(server, shop.space.id)
    assert rows == [(uid_a, tg, "bearer")]


def test_the_bot_takes_back_its_click_from_a_token_bind_to_another_user(
    server: Server, shop: Shop
) -> None:
    victim, squatter = victim_tg(), victim_tg()
    uid_a = click(server, shop.link_a, "Spring-A")  # its start link was forwarded and copied
    with server.client() as http:
        assert token_bind(http, shop, uid_a, squatter).json()["status"] == "bound"
        assert bot_bind(http, shop, uid_a, victim)["status"] == "bound"  # was 409
        bot_deposit(http, shop, victim, "50.00")
        bot_deposit(http, shop, squatter, "1.00")
        per_link = deposits_per_link(http, shop)
    assert per_link[shop.link_a] == (1, {"USD": "50.00"})
    assert binds(server, shop.space.id) == [(uid_a, victim, "bearer")]


def test_a_space_with_token_binds_off_refuses_them(server: Server, shop: Shop) -> None:
    tg = victim_tg()
    url = f"/admin/spaces/{shop.space.id}/token-binds"
    with server.client() as http:
        assert http.get(url, headers=ADMIN).json() == {
            "ok": True, "space_id": shop.space.id, "token_binds": True,
        }  # fmt: skip
        r = http.patch(url, json={"token_binds": False}, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["token_binds"] is False
        assert http.get(url, headers=ADMIN).json()["token_binds"] is False

        refused = token_bind(http, shop, click(server, shop.link_b, "Attacker-B"), tg)
        assert refused.status_code == 403
        assert refused.json() == {
            "ok": False, "error": "token_binds_off", "detail": refused.json()["detail"],
        }  # fmt: skip
        assert "POST /bind" in refused.json()["detail"]
        assert binds(server, shop.space.id) == []
        # The bot's binds go on as before.
        uid_a = click(server, shop.link_a, "Spring-A")
        assert bot_bind(http, shop, uid_a, tg)["status"] == "bound"


def test_the_admin_api_checks_the_token_binds_switch(server: Server, shop: Shop) -> None:
    url = f"/admin/spaces/{shop.space.id}/token-binds"
    with server.client() as http:
        for body in ({"token_binds": "no"}, {}, {"token_binds": False, "x": 1}):
            r = http.patch(url, json=body, headers=ADMIN)
            assert (r.status_code, r.json()["error"]) == (422, "invalid_field"), body
        assert http.patch(url, json={"token_binds": False}).status_code == 401
        assert (
            http.patch(url, json={"token_binds": False}, headers=shop.space.auth).status_code == 401
        )
        r = http.get("/admin/spaces/999999/token-binds", headers=ADMIN)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        assert http.get(url, headers=ADMIN).json()["token_binds"] is True


def test_the_cli_turns_token_binds_off_and_on_for_a_running_server(
    server: Server, shop: Shop
) -> None:
    space = str(shop.space.id)
    assert server.cli_json("space", "token-binds", "--space", space) == {
        "space_id": shop.space.id, "token_binds": True,
    }  # fmt: skip
    off = server.cli_json("space", "token-binds", "--space", space, "off")
    assert off == {"space_id": shop.space.id, "token_binds": False}
    with server.client() as http:
        uid = click(server, shop.link_b, "B")
        assert token_bind(http, shop, uid, victim_tg()).status_code == 403
        server.cli_json("space", "token-binds", "--space", space, "on")
        assert token_bind(http, shop, uid, victim_tg()).json()["status"] == "bound"
    wrong = server.cli("space", "token-binds", "--space", space, "maybe", check=False)
    assert wrong.returncode == 2 and "on or off" in wrong.stderr
    missing = server.cli("space", "token-binds", "--space", "999999", check=False)
    assert missing.returncode == 1 and "no space 999999" in missing.stderr


def binds(server: Server, space_id: int) -> list[tuple[str, int, str]]:
    conn = sqlite3.connect(server.db)
    try:
        rows = conn.execute(
            "SELECT uid, tg_id, kind FROM binds WHERE space_id = ? ORDER BY uid", (space_id,)
        )
        return [(str(uid), int(tg), str(kind)) for uid, tg, kind in rows]
    finally:
        conn.close()
