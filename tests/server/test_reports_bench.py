"""bench/reports.py, small: its seed has the shape it promises (campaigns, ad sets and ads that
live a span of days, clicks with every dimension, uids with 0 to 4 steps, deposits in two
currencies, reversals, events without a click), and a run measures reports that really answer
(through the store, on both sizes), with counts that match the seeded file."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from xtracker_server.store.api import Store

BENCH = Path(__file__).resolve().parents[2] / "bench"
SHAPE = {"links_n": 5, "campaigns": 12, "ads": 60, "days": 30}
EVENTS = 4_000


def _load(file: str, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{file}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


seeding = _load("_reports_seed", "_reports_seed")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("reports-bench") / "x.db"
    return path, seeding.seed(path, events=EVENTS, **SHAPE)


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_seed_writes_the_events_asked_for_and_says_what_they_are(
    seeded: tuple[Path, Any],
) -> None:
    path, done = seeded
    ((events, tests, reversals, deposits, unattributed, late),) = _rows(path, f"""
        SELECT count(*), sum(test), sum(event = 'deposit.reversed'),
               sum(event = 'deposit' AND test = 0), sum(uid IS NULL),
               sum(occurred_at_ms >= {seeding.END_MS})
        FROM inbox""")  # fmt: skip
    assert events == done.events == EVENTS
    assert (tests, reversals, deposits, unattributed) == (
        done.tests, done.reversals, done.deposits, done.unattributed)  # fmt: skip
    assert late == 0  # nothing after the month's end
    assert reversals > 0 and unattributed > 0 and tests > 0
    ((without_click,),) = _rows(
        path,
        """SELECT count(*) FROM inbox i WHERE uid IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM clicks c WHERE c.space_id = i.space_id AND c.uid = i.uid)""",
    )
    assert without_click == done.without_click
    assert 0.003 < without_click / EVENTS < 0.03  # about 1 %
    ((clicks,),) = _rows(path, "SELECT count(*) FROM clicks")
    assert clicks == done.clicks
    assert _rows(path, "SELECT sub_id_params FROM spaces") == [('["creative"]',)]


def test_clicks_carry_every_dimension_and_ads_live_a_span_of_days(
    seeded: tuple[Path, Any],
) -> None:
    path, _ = seeded
    dims = ("country", "device", "os", "browser", "placement", "utm_source", "utm_medium",
            "utm_campaign", "utm_content", "utm_term", "campaign_id", "campaign_name", "adset_id",
            "adset_name", "ad_id", "ad_name", "sub_ids", "user_agent", "link_id")  # fmt: skip
    unset = " OR ".join(f"{d} IS NULL" for d in dims)
    missing = _rows(path, f"SELECT count(*) FROM clicks WHERE {unset}")
    assert missing == [(0,)]
    plan = seeding.layout(campaigns=12, ads=60, links=5, days=30)
    ads = {ad.ad_id: ad for ad in plan.ads}
    start = seeding.END_MS - 30 * seeding.DAY_MS
    spans = _rows(path, "SELECT ad_id, min(created_ms), max(created_ms), count(DISTINCT adset_id),"
                        " count(DISTINCT campaign_id) FROM clicks GROUP BY ad_id")  # fmt: skip
    assert len(spans) > 40
    for ad_id, first, last, adsets, campaigns in spans:
        ad = ads[ad_id]
        assert (adsets, campaigns) == (1, 1)
        assert start + ad.first_day * seeding.DAY_MS <= first
        assert last < start + (ad.last_day + 1) * seeding.DAY_MS
        assert ad.last_day - ad.first_day < 14
    assert max(ad.last_day - ad.first_day for ad in plan.ads) < 29  # no ad lives all month
    ((campaigns, adsets, countries, currencies),) = _rows(
        path,
        """SELECT
        count(DISTINCT campaign_id), count(DISTINCT adset_id), count(DISTINCT country),
        (SELECT group_concat(DISTINCT currency) FROM inbox WHERE currency IS NOT NULL)
        FROM clicks""",
    )
    assert campaigns == 12 and 24 <= adsets <= 60 and countries >= 8
    assert sorted(currencies.split(",")) == ["EUR", "USD"]


def test_uids_reach_0_to_4_steps_in_order_and_reversals_name_their_deposit(
    seeded: tuple[Path, Any],
) -> None:
    path, _ = seeded
    reached = dict(
        _rows(
            path,
            """SELECT steps, count(*) FROM (
        SELECT c.uid, count(DISTINCT i.event) AS steps FROM clicks c LEFT JOIN inbox i
            ON i.space_id = c.space_id AND i.uid = c.uid
            AND i.event IN ('contact', 'subscribed', 'registration', 'deposit') AND i.test = 0
        GROUP BY c.uid) GROUP BY steps""",
        )
    )
    assert set(reached) == {0, 1, 2, 3, 4}
    out_of_order = _rows(
        path,
        """SELECT count(*) FROM inbox a JOIN inbox b
        ON b.uid = a.uid AND b.event = 'subscribed' WHERE a.event = 'contact'
        AND b.occurred_at_ms <= a.occurred_at_ms""",
    )
    assert out_of_order == [(0,)]
    orphans = _rows(
        path,
        """SELECT count(*) FROM inbox r WHERE r.event = 'deposit.reversed'
        AND NOT EXISTS (SELECT 1 FROM inbox d WHERE d.uid = r.uid AND d.event = 'deposit'
                        AND d.eid = r.eid AND d.occurred_at_ms < r.occurred_at_ms)""",
    )
    assert orphans == [(0,)]


def test_a_run_measures_answers_through_the_store_at_each_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load("reports", "bench_reports")
    argv = ["--sizes", "1500,3000", "--links", "5", "--campaigns", "12", "--ads", "60",
            "--repeat", "1", "--dir", str(tmp_path), "--json"]  # fmt: skip
    status = bench.main(argv)
    result = json.loads(capsys.readouterr().out)
    assert status == (0 if result["ok"] else 1)
    assert list(result["sizes"]) == ["1500", "3000"]
    has_groups = hasattr(Store, "group_counts")
    for events, size in result["sizes"].items():
        assert size["events"] == int(events) and size["seed_s"] is not None
        assert size["caught_up"] > 0.98 * int(events)  # the rollup built by the catch-up
        end, day = seeding.END_MS, seeding.DAY_MS
        now = bench.NOW_MS
        ((week, month, now_week),) = _rows(
            Path(size["path"]),
            f"""SELECT
            sum(created_ms >= {end - 7 * day}), sum(created_ms >= {end - 30 * day}),
            sum(created_ms >= {now - 7 * day} AND created_ms < {now}) FROM clicks""",
        )
        queries = size["queries"]
        for name in ("funnel", "funnel_link", "links", "series", "series_day", "revenue_day"):
            assert queries[name]["median_ms"] > 0, name  # awaited: a real answer took time
        assert queries["funnel"]["answer"] == {"clicks": week}
        assert queries["links"]["answer"]["clicks"] == week
        assert queries["series"]["answer"] == {"points": 168}
        answered = {n for n, q in queries.items() if n.startswith("g_") and q["answer"]}
        expected = {n for n in queries if n.startswith("g_")} if has_groups else {
            "g_funnel", "g_link"}  # fmt: skip
        assert answered == expected
        for name in answered - {"g_filtered", "g_filtered_now", "g_hour_us_now"}:
            clicks = week
            if name.startswith("g_day"):
                clicks = month
            elif name.endswith("_now"):
                clicks = now_week
            assert queries[name]["answer"]["clicks"] == clicks, name
        assert queries["funnel_now"]["answer"] == {"clicks": now_week}
        assert queries["links_now"]["answer"]["clicks"] == now_week
        assert queries["g_funnel"]["answer"]["groups"] == 1
    verdicts = result["verdicts"]
    assert set(verdicts) == set(result["sizes"]["3000"]["queries"])
    assert all(v["ratio"] is not None for n, v in verdicts.items() if n in expected)


def test_only_measures_the_reports_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load("reports", "bench_reports")
    argv = ["--events", "1000", "--links", "5", "--campaigns", "12", "--ads", "60",
            "--repeat", "1", "--dir", str(tmp_path), "--json",
            "--only", "g_link,series_day"]  # fmt: skip
    bench.main(argv)
    result = json.loads(capsys.readouterr().out)
    assert set(result["sizes"]["1000"]["queries"]) == {"g_link", "series_day"}
    assert set(result["verdicts"]) == {"g_link", "series_day"}
    with pytest.raises(SystemExit, match="no report nope"):
        bench.main([*argv[:-1], "g_link,nope"])


def test_with_the_cube_the_grouped_reports_answer_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-cube`` then ``--cube`` (XTRACKER_REPORT_CUBE off, then on, the default): the same
    seed file, its rollup given the report cube, and every grouped report the same answer as
    counted from the events."""
    bench = _load("reports", "bench_reports")
    argv = ["--events", "1500", "--links", "5", "--campaigns", "12", "--ads", "60",
            "--repeat", "1", "--dir", str(tmp_path), "--json"]  # fmt: skip
    answers = {}
    for cube in (False, True):
        bench.main([*argv, "--cube" if cube else "--no-cube"])
        result = json.loads(capsys.readouterr().out)
        assert result["report_cube"] is cube
        size = result["sizes"]["1500"]
        # first built from the inbox; turned on, the steps are kept and the cube built from the
        # clicks (no event fed again)
        assert size["caught_up"] > 0.98 * 1500 if not cube else size["caught_up"] == 0
        answers[cube] = {n: q["answer"] for n, q in size["queries"].items() if n.startswith("g_")}
    assert answers[True] == answers[False] and any(answers[True].values())
