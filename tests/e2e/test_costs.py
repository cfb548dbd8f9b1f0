"""Costs end to end: entered through the admin API and the CLI on a running server's file,
imported from an Ads Manager export (again without doubling; a bad file changes nothing),
converted with the operator's rates in the costs report, whose figures are computed here by
hand from the seed; and one space's costs invisible to another."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, Server, ServerFactory, SpaceKeys

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FIXTURE = Path(__file__).parent.parent / "fixtures" / "ads_manager_daily.csv"
D = Decimal
TODAY = datetime.now(timezone.utc).date()
YESTERDAY, TOMORROW = TODAY - timedelta(days=1), TODAY + timedelta(days=2)


def _space_with_a_funnel(server: Server, http: httpx.Client) -> SpaceKeys:
    """Link "promo": 4 clicks; 2 subscribed; deposits of 30.00 USD and 20.00 EUR."""
    space = server.new_space("costs")
    link = {"slug": f"promo{space.id}", "kind": "bot", "target": "promo_bot"}
    assert http.post(f"/admin/spaces/{space.id}/links", json=link, headers=ADMIN).is_success
    click = {"link_slug": f"promo{space.id}"}
    uids = [http.post("/clicks", json=click, headers=space.auth).json()["uid"] for _ in range(4)]
    events = [
        {"event": "subscribed", "uid": uids[0]},
        {"event": "subscribed", "uid": uids[1]},
        {"event": "deposit", "uid": uids[0], "value": "30.00", "currency": "USD", "eid": "d1"},
        {"event": "deposit", "uid": uids[1], "value": "20.00", "currency": "EUR", "eid": "d2"},
    ]
    for body in events:
        r = http.post("/events", json=body, headers=space.auth)
        assert r.status_code == 200, r.text
    return space


def _costs(http: httpx.Client, space: int, *items: dict[str, Any]) -> httpx.Response:
    return http.post(f"/admin/spaces/{space}/costs", json={"costs": list(items)}, headers=ADMIN)


def _cost(level: str, object_id: str, amount: str, currency: str) -> dict[str, str]:
    return {"day": TODAY.isoformat(), "level": level, "id": object_id, "amount": amount,
            "currency": currency}  # fmt: skip


def _rate(http: httpx.Client, space: int, base: str, rate: str, day: str) -> None:
    body = {"from": base, "to": "USD", "day": day, "rate": rate}
    r = http.put(f"/admin/spaces/{space}/rates", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text


def _report(http: httpx.Client, space: SpaceKeys, **params: str) -> dict[str, Any]:
    window = {"from": YESTERDAY.isoformat(), "to": TOMORROW.isoformat()}
    r = http.get(f"/admin/spaces/{space.id}/reports/costs", params={**window, **params},
                 headers=space.auth)  # fmt: skip
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_the_costs_report_converts_every_currency_at_its_days_rate(
    start_app: ServerFactory,
) -> None:
    server = start_app()
    with server.client() as http:
        space = _space_with_a_funnel(server, http)
        slug = f"promo{space.id}"
        stored = _costs(
            http,
            space.id,
            _cost("campaign", "c1", "25.00", "USD"),
            _cost("campaign", "c2", "5", "GBP"),
            _cost("link", slug, "10.00", "EUR"),
        )
        assert stored.json() == {"ok": True, "space_id": space.id, "new": 3, "replaced": 0}
        _rate(http, space.id, "EUR", "1.08", (TODAY - timedelta(days=30)).isoformat())
        _rate(http, space.id, "EUR", "1.10", YESTERDAY.isoformat())  # the one in effect
        _rate(http, space.id, "GBP", "1.25", TODAY.isoformat())
        data = _report(http, space)
    # by hand: cost 25.00 + 5 * 1.25; revenue 30.00 + 20.00 * 1.10; 4 clicks, 2 subscribed,
    # 2 depositors
    cost, revenue = D("25.00") + D("5") * D("1.25"), D("30.00") + D("20.00") * D("1.10")
    assert (cost, revenue) == (D("31.25"), D("52.0000"))
    assert data["level"] == "campaign" and data["missing_rates"] == []
    assert data["costs"] == {"campaign": {"GBP": "5", "USD": "25.00"}, "link": {"EUR": "10.00"}}
    total = data["total"]
    assert (total["clicks"], total["subscribed"], total["deposit"]) == (4, 2, 2)
    assert D(total["cost"]) == cost and D(total["revenue"]) == revenue
    assert D(total["profit"]) == revenue - cost
    assert total["roi"] == "0.6640" and total["roas"] == "1.6640"  # 20.75 / 31.25, 52 / 31.25
    assert total["cpc"] == "7.8125" and total["cpl"] == "15.6250" and total["cpa"] == "15.6250"
    assert total["cost_per"]["registration"] is None  # nobody registered: no division by 0
    (link,) = data["links"]
    assert link["link"] == slug and D(link["cost"]) == D("11.00")  # 10.00 EUR * 1.10
    assert D(link["revenue"]) == revenue and link["cpc"] == "2.7500"
    assert link["roi"] == str(((revenue - D("11.00")) / D("11.00")).quantize(D("0.0001")))


def test_a_missing_rate_is_named_and_never_read_as_zero(start_app: ServerFactory) -> None:
    server = start_app()
    with server.client() as http:
        space = _space_with_a_funnel(server, http)
        _costs(http, space.id, _cost("ad", "a1", "4.00", "BRL"), _cost("ad", "a2", "1", "USD"))
        _rate(http, space.id, "EUR", "1.10", TODAY.isoformat())
        data = _report(http, space)
    assert data["level"] == "ad"
    assert data["total"]["cost"] is None and data["total"]["roi"] is None
    assert data["total"]["revenue"] is not None  # EUR and USD revenue both convert
    (missing,) = data["missing_rates"]
    assert (missing["currency"], missing["to"]) == ("BRL", "USD")
    assert "BRL -> USD" in missing["detail"]


def test_an_import_twice_does_not_double_and_a_bad_file_changes_nothing(
    start_app: ServerFactory,
) -> None:
    server = start_app()
    space = server.new_space("import")
    url = f"/admin/spaces/{space.id}/costs"
    with server.client() as http:
        csv = FIXTURE.read_bytes()
        first = http.post(f"{url}/import", content=csv, headers=ADMIN)
        assert first.json() == {"ok": True, "space_id": space.id, "level": "ad", "new": 6,
                                "replaced": 0, "skipped": 0}  # fmt: skip
        again = http.post(f"{url}/import", content=csv, headers=ADMIN)
        assert (again.json()["new"], again.json()["replaced"]) == (0, 6)
        listed = http.get(url, headers=ADMIN).json()["costs"]
        assert sum(D(c["amount"]) for c in listed) == D("58.75")  # the export's total, once
        bad = (
            "Day,Ad ID,Ad name,Amount spent (EUR)\n"
            "2026-11-01,120210000000001001,Video A,99.00\n"  # valid, and would replace 14.14
            "2026-11-01,120210000000001002,Static B,6,50\n"  # a decimal comma: 4 cells
            "2026-11-31,120210000000001003,Video A,1.00\n"
        )
        refused = http.post(f"{url}/import", content=bad.encode(), headers=ADMIN)
        assert refused.status_code == 422, refused.text
        error = refused.json()
        assert error["ok"] is False and error["error"] == "invalid_field"
        assert "line 4" in error["detail"] and "2026-11-31" in error["detail"]
        assert http.get(url, headers=ADMIN).json()["costs"] == listed  # nothing half-imported


def test_a_spaces_costs_and_rates_are_invisible_to_another(start_app: ServerFactory) -> None:
    server = start_app()
    a, b = server.new_space("a"), server.new_space("b")
    with server.client() as http:
        assert _costs(http, a.id, _cost("campaign", "secret", "100", "USD")).is_success
        _rate(http, a.id, "EUR", "1.10", TODAY.isoformat())
        for path in ("costs", "rates", "reports/costs"):
            assert http.get(f"/admin/spaces/{a.id}/{path}", headers=b.auth).status_code == 403
            assert http.get(f"/admin/spaces/{a.id}/{path}", headers=a.auth).status_code == 200
        assert http.get(f"/admin/spaces/{b.id}/costs", headers=b.auth).json()["costs"] == []
        assert http.get(f"/admin/spaces/{b.id}/rates", headers=b.auth).json()["rates"] == []
        assert _report(http, b)["costs"] == {}
        # a space's secret never writes costs, its own included: the operator does
        own = http.post(f"/admin/spaces/{b.id}/costs", json={"costs": []}, headers=b.auth)
        assert own.status_code == 401
        assert http.get(f"/admin/spaces/{a.id}/costs", headers=ADMIN).json()["costs"][0]["id"] == (
            "secret"
        )


def test_the_cli_enters_costs_and_rates_a_running_server_reports(
    start_app: ServerFactory, tmp_path: Path
) -> None:
    server = start_app()
    with server.client() as http:
        space = _space_with_a_funnel(server, http)
        sid = str(space.id)
        day = TODAY.isoformat()
        added = server.cli_json(
            "cost",
            "add",
            "--space",
            sid,
            "--day",
            day,
            "--campaign",
            "c9",
            "--amount",
            "12.00",
            "--currency",
            "eur",
            "--name",
            "Spring",
        )
        assert (added["new"], added["replaced"], added["currency"]) == (1, 0, "EUR")
        again = server.cli_json(
            "cost",
            "add",
            "--space",
            sid,
            "--day",
            day,
            "--campaign",
            "c9",
            "--amount",
            "10.00",
            "--currency",
            "EUR",
        )
        assert (again["new"], again["replaced"]) == (0, 1)
        server.cli("rate", "set", "--space", sid, "--from", "EUR", "--to", "USD", "--day", day,
                   "--rate", "1.2")  # fmt: skip
        imported = server.cli_json("cost", "import", "--space", sid, str(FIXTURE))
        assert (imported["level"], imported["new"]) == ("ad", 6)
        assert server.cli_json("rate", "list", "--space", sid)["rates"] == [
            {"from": "EUR", "to": "USD", "day": day, "rate": "1.2"}
        ]
        listed = server.cli_json("cost", "list", "--space", sid, "--from", day)["costs"]
        assert listed == [{"day": day, "level": "campaign", "id": "c9", "name": "Spring",
                           "amount": "10.00", "currency": "EUR"}]  # fmt: skip
        cli = server.cli_json("report", "costs", "--space", sid, "--from", YESTERDAY.isoformat(),
                              "--to", TOMORROW.isoformat())  # fmt: skip
        api = _report(http, space)
        assert cli == {k: v for k, v in api.items() if k != "ok"}
        assert D(api["total"]["cost"]) == D("12.000")  # 10.00 EUR * 1.2
        bad = tmp_path / "bad.csv"
        bad.write_text("Day,Campaign ID,Amount spent (USD)\n2026-11-01,1,-1\n", encoding="utf-8")
        refused = server.cli("cost", "import", "--space", sid, str(bad), check=False)
        assert refused.returncode == 2 and "line 2" in refused.stderr
        human = server.cli("report", "costs", "--space", sid, "--currency", "GBP").stdout
        assert "missing rate" in human and "EUR -> GBP" in human
        nowhere = server.cli("cost", "list", "--space", "999", check=False)
        assert nowhere.returncode == 1 and "no space 999" in nowhere.stderr
