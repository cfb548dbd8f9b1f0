"""The grouped report end to end (issue 17 §1): a space seeded through the real API (clicks with
campaign and ad ids in their query, events, a reversal, costs and a rate), read per campaign and
ad through the admin API (JSON and CSV), the CLI, with the space's own key and with another
space's; bad parameters are a clear 422. Each against a server with the report cube off and one
with it on (XTRACKER_REPORT_CUBE: the report with a currency covers whole days, which the cube
answers)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, SpaceKeys, module_server
from xtracker_server.store.sqlite.db import reports_path
from xtracker_server.store.sqlite.rollup_schema import CUBE_FORMAT, ROLLUP_FORMAT

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: uid name -> (campaign, ad, country-free query), then its events (event, value, currency).
PLAN: dict[str, tuple[str, str, list[tuple[str, str | None, str]]]] = {
    "u1": ("c1", "a1", [("contact", None, "USD"), ("deposit", "10.00", "USD")]),
    "u2": ("c1", "a1", [("contact", None, "USD")]),
    "u3": ("c1", "a2", [("deposit", "20.00", "EUR")]),
    "u4": ("c2", "a3", [("deposit", "5.50", "USD"), ("deposit", "1.00", "USD")]),
    "u5": ("c2", "a3", []),
}
DAY_MS = 86_400_000


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


@pytest.fixture(scope="module", params=["scan", "cube"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """conftest.py's, once with XTRACKER_REPORT_CUBE off and once with it on."""
    env = {"XTRACKER_REPORT_CUBE": "off" if request.param == "scan" else "on"}
    yield from module_server(tmp_path_factory, **env)


@pytest.fixture(scope="module")
def seeded(server: Server) -> tuple[SpaceKeys, int]:
    space = server.new_space("groups")
    now = int(time.time() * 1000)
    at = now - 3_600_000
    with server.client() as http:
        for n, (campaign, ad, events) in enumerate(PLAN.values()):
            query = f"campaign_id={campaign}&ad_id={ad}&campaign_name=Camp%20{campaign}"
            uid = http.post("/clicks", json={"raw_query": query}, headers=space.auth).json()["uid"]
            for i, (event, value, currency) in enumerate(events):
                sent: dict[str, Any] = {"event": event, "uid": uid, "eid": f"{uid}-{i}",
                                        "occurred_at_ms": at + n * 1000 + i,
                                        "currency": currency}  # fmt: skip
                if value:
                    sent["value"] = value
                assert http.post("/events", json=sent, headers=space.auth).status_code == 200
            if campaign == "c2":  # u4's first deposit is reversed
                taken = {"event": "deposit.reversed", "uid": uid, "eid": f"{uid}-0"}
                r = http.post("/events", json=taken, headers=space.auth)
                assert r.status_code == 200, r.text
        # costs on every day the last 2 days touch; EUR -> USD rate
        for d in (now - DAY_MS, now):
            r = http.post(f"/admin/spaces/{space.id}/costs", headers=ADMIN, json={"costs": [
                {"day": _day(d), "level": "campaign", "id": "c1", "amount": "4", "currency": "USD"},
                {"day": _day(d), "level": "ad", "id": "a3", "amount": "1", "currency": "USD"},
            ]})  # fmt: skip
            assert r.status_code in (200, 201), r.text
        rate = {"from": "EUR", "to": "USD", "day": "2020-01-01", "rate": "1.5"}
        r = http.put(f"/admin/spaces/{space.id}/rates", headers=ADMIN, json=rate)
        assert r.status_code in (200, 201), r.text
    return space, now


def _get(
    http: httpx.Client, space: SpaceKeys, auth: dict[str, str], **params: Any
) -> httpx.Response:
    return http.get(f"/admin/spaces/{space.id}/reports/groups", params=params, headers=auth)


def test_campaigns_and_their_ads_with_costs_and_profit(
    http: httpx.Client, seeded: tuple[SpaceKeys, int]
) -> None:
    space, _ = seeded
    answer = _get(http, space, space.auth, by="campaign,ad", days=2, currency="USD",
                  sort="profit")  # fmt: skip
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert (data["mode"], data["by"], data["ttc_estimate"]) == ("cohort", ["campaign", "ad"], True)
    rows = {r["key"]["campaign"]: r for r in data["rows"]}
    assert set(rows) == {"c1", "c2"}
    c1, c2 = rows["c1"], rows["c2"]
    assert c1["names"] == {"campaign": "Camp c1"}
    assert c1["clicks"] == 3 and {s["step"]: s["uids"] for s in c1["steps"]}["contact"] == 2
    assert c1["revenue"] == {"EUR": "20.00", "USD": "10.00"}
    # c1: cost 2 days x 4 USD; net revenue 10 USD + 20 EUR x 1.5
    assert c1["cost"]["cost"] == "8" and Decimal(c1["cost"]["net_revenue"]) == Decimal("40")
    assert Decimal(c1["cost"]["profit"]) == Decimal("32") and c1["cost"]["roi"] == "4.0000"
    assert (c2["reversed_deposits"], c2["net_revenue"]) == (1, {"USD": "1.00"})
    assert c2["cost"]["cost"] == "0" and c2["cost"]["days"] == 0
    ads = {a["key"]["ad"]: a for a in c2["children"]}
    assert ads["a3"]["cost"]["cost"] == "2" and Decimal(ads["a3"]["cost"]["profit"]) == -1
    assert [r["key"]["campaign"] for r in data["rows"]] == ["c1", "c2"]  # by profit
    assert all(s["ttc_median_s"] is not None for s in c1["steps"] if s["step"] == "contact")


def test_the_report_as_csv_has_a_line_per_row_and_child(
    http: httpx.Client, seeded: tuple[SpaceKeys, int]
) -> None:
    space, _ = seeded
    answer = http.get(f"/admin/spaces/{space.id}/reports/groups",
                      params={"by": "campaign,ad", "days": "2"},
                      headers={**ADMIN, "Accept": "text/csv"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(x["depth"], x["campaign"], x["ad"]) for x in lines] == [
        ("1", "c1", ""), ("2", "c1", "a1"), ("2", "c1", "a2"), ("1", "c2", ""), ("2", "c2", "a3"),
    ]  # fmt: skip
    assert lines[0]["clicks"] == "3" and lines[0]["revenue_USD"] == "10.00"
    assert lines[0]["campaign_name"] == "Camp c1"


def test_the_cli_prints_the_same_report(server: Server, seeded: tuple[SpaceKeys, int]) -> None:
    space, _ = seeded
    data = server.cli_json("report", "groups", "--space", str(space.id), "--by", "campaign",
                           "--days", "2")  # fmt: skip
    assert {r["key"]["campaign"]: r["clicks"] for r in data["rows"]} == {"c1": 3, "c2": 2}
    table = server.cli("report", "groups", "--space", str(space.id), "--by", "campaign,ad",
                       "--days", "2", "--currency", "USD").stdout  # fmt: skip
    assert "c1 Camp c1" in table and "└ a3" in table
    text = server.cli("report", "groups", "--space", str(space.id), "--by", "ad", "--days", "2",
                      "--format", "csv").stdout  # fmt: skip
    assert text.splitlines()[0].startswith("depth,ad,ad_name,clicks,")
    bad = server.cli("report", "groups", "--space", str(space.id), "--by", "planet",
                     check=False)  # fmt: skip
    assert bad.returncode == 2 and "--by" in bad.stderr


@pytest.mark.parametrize(
    ("params", "field"),
    [({"by": "planet"}, "by"), ({"by": "campaign,ad,country"}, "by"), ({"sort": "nope"}, "sort"),
     ({"sort": "roi"}, "sort"), ({"filter": "country=USA"}, "filter"),
     ({"filter": "planet=mars"}, "filter"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
     ({"mode": "both"}, "mode"), ({"by": "sub.nope"}, "by")],
)  # fmt: skip
def test_a_bad_parameter_is_a_422_naming_it(
    http: httpx.Client, seeded: tuple[SpaceKeys, int], params: dict[str, str], field: str
) -> None:
    space, _ = seeded
    answer = _get(http, space, ADMIN, **params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["ok"] is False and body["error"] == "invalid_field"
    assert field in json.dumps(body)


def test_another_spaces_key_gets_nothing(
    server: Server, http: httpx.Client, seeded: tuple[SpaceKeys, int]
) -> None:
    space, _ = seeded
    other = server.new_space("intruder")
    answer = _get(http, space, other.auth, by="campaign")
    assert answer.status_code == 403
    assert "c1" not in answer.text
    own = _get(http, other, other.auth, by="campaign", days=2).json()
    assert own["rows"] == [] and own["total"]["clicks"] == 0


def test_the_servers_rollup_has_the_cube_only_with_the_setting(
    server: Server, http: httpx.Client, seeded: tuple[SpaceKeys, int]
) -> None:
    space, _ = seeded
    assert _get(http, space, space.auth, by="campaign", days=2).status_code == 200  # caught up
    rollup = sqlite3.connect(f"file:{reports_path(str(server.db))}?mode=ro", uri=True)
    try:
        (version,) = rollup.execute("SELECT version FROM rollup_format").fetchone()
        tables = {r[0] for r in rollup.execute("SELECT name FROM sqlite_master")}
    finally:
        rollup.close()
    cube = server.env.get("XTRACKER_REPORT_CUBE") == "on"
    assert (version, "cube" in tables) == ((CUBE_FORMAT, True) if cube else (ROLLUP_FORMAT, False))
