"""Report filters end to end (issue 17 §1): a space seeded through the real API, its funnel,
per-link table and series read with link filters (several links, all but some) through the
admin API and the CLI, and compared with answers computed here from the seed; a filter the
rollup cannot answer yet, or cannot be read, is a clear 422 (CLI: exit 2)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, SpaceKeys

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STEPS = ("contact", "subscribed", "registration", "deposit")
#: uid name -> its link (None: a click made by the API without a link), then its events.
PLAN: dict[str, tuple[str | None, list[tuple[str, str | None, str]]]] = {
    "u1": ("a", [("contact", None, "USD"), ("deposit", "10.00", "USD")]),
    "u2": ("a", [("contact", None, "USD")]),
    "u3": ("a", []),
    "u4": ("b", [("contact", None, "USD"), ("subscribed", None, "USD")]),
    "u5": ("b", [("deposit", "7.50", "EUR")]),
    "u6": ("c", [("deposit", "3.00", "USD"), ("deposit", "1.25", "USD")]),
    "u7": (None, [("contact", None, "USD")]),
}


@dataclass
class Seed:
    space: SpaceKeys
    slug: dict[str, str]  # a, b, c -> the link's slug


@pytest.fixture(scope="module")
def seed(server: Server) -> Seed:
    space = server.new_space("filters")
    slug = {name: f"f{name}-{space.id}" for name in ("a", "b", "c")}
    at = int(time.time() * 1000) - 3_600_000
    with server.client() as http:
        for s in slug.values():
            made = http.post(
                f"/admin/spaces/{space.id}/links",
                headers=ADMIN,
                json={"slug": s, "kind": "bot", "target": "f_bot"},
            )
            assert made.status_code == 201, made.text
        for n, (link, events) in enumerate(PLAN.values()):
            body = {"link_slug": slug[link]} if link else {}
            uid = http.post("/clicks", json=body, headers=space.auth).json()["uid"]
            for i, (event, value, currency) in enumerate(events):
                sent = {"event": event, "uid": uid, "occurred_at_ms": at + n * 1000 + i,
                        "eid": f"{uid}-{i}", "currency": currency}  # fmt: skip
                if value:
                    sent["value"] = value
                r = http.post("/events", json=sent, headers=space.auth)
                assert r.status_code == 200, r.text
    return Seed(space, slug)


def expected(keep: set[str | None]) -> dict[str, Any]:
    """The funnel of the uids whose link is in ``keep``, counted from PLAN."""
    kept = {u: events for u, (link, events) in PLAN.items() if link in keep}
    revenue: dict[str, Decimal] = {}
    for events in kept.values():
        for event, value, currency in events:
            if event == "deposit" and value:
                revenue[currency] = revenue.get(currency, Decimal(0)) + Decimal(value)
    steps = {"click": len(kept)}
    for step in STEPS:
        steps[step] = sum(1 for events in kept.values() if any(e[0] == step for e in events))
    return {
        "steps": steps,
        "deposits": sum(1 for ev in kept.values() for e in ev if e[0] == "deposit"),
        "depositors": steps["deposit"],
        "first_deposits": steps["deposit"],
        "revenue": {c: f"{v:.2f}" for c, v in sorted(revenue.items())},
    }


def observed(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": {s["step"]: s["uids"] for s in report["steps"]},
        "deposits": report["deposits"],
        "depositors": report["depositors"],
        "first_deposits": report["first_deposits"],
        "revenue": report["revenue"],
    }


def funnel(http: httpx.Client, seed: Seed, *filters: str, **params: str) -> httpx.Response:
    query = [("filter", f.format(**seed.slug)) for f in filters]
    query += [(k, v.format(**seed.slug)) for k, v in params.items()]
    return http.get(
        f"/admin/spaces/{seed.space.id}/reports/funnel", params=query, headers=seed.space.auth
    )


ALL: set[str | None] = {"a", "b", "c", None}


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        (["link={a}"], {"a"}),
        (["link={a},{b}"], {"a", "b"}),
        (["link={a},{b},{c}"], {"a", "b", "c"}),
        (["link=-{a}"], ALL - {"a"}),  # clicks without a link are kept by an exclusion
        (["link=-{a},-{c}"], {"b", None}),
    ],
)
def test_a_link_filter_counts_the_links_it_keeps(
    http: httpx.Client, seed: Seed, filters: list[str], keep: set[str | None]
) -> None:
    answer = funnel(http, seed, *filters)
    assert answer.status_code == 200, answer.text
    assert observed(answer.json()) == expected(keep)


def test_one_link_as_a_filter_is_the_link_parameter(http: httpx.Client, seed: Seed) -> None:
    by_filter = funnel(http, seed, "link={a}").json()
    by_param = funnel(http, seed, link=seed.slug["a"]).json()
    for key in ("steps", "deposits", "revenue", "gauge", "unattributed"):
        assert by_filter[key] == by_param[key]
    for key in ("steps", "deposits", "revenue"):  # the windows end at each call's now
        assert by_filter["previous"][key] == by_param["previous"][key]


def test_the_per_link_table_shows_the_links_a_filter_keeps(http: httpx.Client, seed: Seed) -> None:
    url = f"/admin/spaces/{seed.space.id}/reports/links"
    rows = http.get(url, params={"filter": f"link=-{seed.slug['b']}"}, headers=seed.space.auth)
    assert rows.status_code == 200, rows.text
    assert {r["link"] for r in rows.json()["links"]} == {seed.slug["a"], seed.slug["c"], None}
    only = http.get(url, params={"filter": f"link={seed.slug['c']}"}, headers=seed.space.auth)
    assert [(r["link"], r["deposits"]) for r in only.json()["links"]] == [(seed.slug["c"], 2)]


def test_a_series_with_a_link_filter_adds_up_to_its_funnel(http: httpx.Client, seed: Seed) -> None:
    url = f"/admin/spaces/{seed.space.id}/reports/series"
    for metric, want in (("contact", expected(ALL - {"b"})["steps"]["contact"]),
                         ("revenue", Decimal("14.25"))):  # fmt: skip
        got = http.get(
            url,
            params={"metric": metric, "bucket": "hour", "filter": f"link=-{seed.slug['b']}"},
            headers=seed.space.auth,
        )
        assert got.status_code == 200, got.text
        assert sum(Decimal(str(p["value"])) for p in got.json()["points"]) == want


@pytest.mark.parametrize(
    ("filters", "params", "said"),
    [
        (["country=US"], {}, "country: the reports cannot filter by this yet"),
        (["device=mobile", "os=iOS"], {}, "device, os: the reports cannot filter by this yet"),
        (["contry=US"], {}, "'contry' is not a dimension"),
        (["link=nope"], {}, "link: no link 'nope' in space"),
        (["link={a},-{b}"], {}, "either keep values or drop them"),
        (["link={a}", "link={b}"], {}, "link: filtered twice"),
        (["link={a}"], {"link": "{b}"}, "link: give the link once"),
        (["sub.sub1=x"], {}, "declares no sub-id 'sub1'"),
    ],
)
def test_a_filter_that_cannot_be_answered_is_a_clear_422(
    http: httpx.Client, seed: Seed, filters: list[str], params: dict[str, str], said: str
) -> None:
    answer = funnel(http, seed, *filters, **params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["ok"], body["error"], body["field"]) == (False, "invalid_field", "filter")
    assert said in body["detail"]


def test_a_link_of_another_space_is_not_a_link_of_this_one(
    http: httpx.Client, seed: Seed, server: Server
) -> None:
    other = server.new_space("filters-other")
    link = {"slug": f"other-{other.id}", "kind": "bot", "target": "o_bot"}
    made = http.post(f"/admin/spaces/{other.id}/links", headers=ADMIN, json=link)
    assert made.status_code == 201, made.text
    answer = funnel(http, seed, f"link=-other-{other.id}")
    assert answer.status_code == 422, answer.text
    assert f"no link 'other-{other.id}' in space {seed.space.id}" in answer.json()["detail"]


def test_the_cli_filters_as_the_api_does_and_refuses_with_exit_2(
    http: httpx.Client, seed: Seed, server: Server
) -> None:
    space = str(seed.space.id)
    a, b = seed.slug["a"], seed.slug["b"]
    done = server.cli("report", "funnel", "--space", space, "--filter", f"link={a},{b}", "--json")
    assert observed(json.loads(done.stdout)) == expected({"a", "b"})
    table = server.cli("report", "funnel", "--space", space, "--filter", f"link=-{a}")
    assert f"link=-{a}" in table.stdout  # the title says what was counted
    refused = server.cli("report", "links", "--space", space, "--filter", "country=US",
                         check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "the reports cannot filter by this yet" in refused.stderr + refused.stdout
