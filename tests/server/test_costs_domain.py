"""Costs, exchange rates and the money maths of cost and ROI (domain/costs.py), and the
Ads Manager import (domain/cost_import.py): pure, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from xtracker_server.domain.cost_import import CostImportError, parse_ads_manager
from xtracker_server.domain.costs import (
    CostLevel,
    MissingRate,
    Money,
    Rate,
    RateBook,
    cost_metrics,
    parse_amount,
    parse_rate,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
D = Decimal


def _day(n: int) -> date:
    return date(2026, 11, n)


BOOK = RateBook(
    [
        Rate("EUR", "USD", _day(1), D("1.08")),
        Rate("EUR", "USD", _day(4), D("1.10")),
        Rate("GBP", "USD", _day(2), D("1.25")),
        Rate("USDT", "USD", _day(1), D("0.9995")),
    ]
)


# ----------------------------------------------------------------------------- rates


def test_the_rate_of_a_day_is_that_days_else_the_latest_before_it() -> None:
    assert BOOK.rate("EUR", "USD", _day(1)) == D("1.08")
    assert BOOK.rate("EUR", "USD", _day(3)) == D("1.08")  # no rate on the 2nd or 3rd
    assert BOOK.rate("EUR", "USD", _day(4)) == D("1.10")
    assert BOOK.rate("EUR", "USD", date(2027, 1, 1)) == D("1.10")


def test_a_currency_converts_to_itself_at_one_without_a_rate() -> None:
    assert RateBook([]).convert(D("12.34"), "JPY", "JPY", _day(1)) == D("12.34")


def test_a_day_before_the_first_rate_has_no_rate_and_says_which() -> None:
    with pytest.raises(MissingRate) as caught:
        BOOK.rate("GBP", "USD", _day(1))
    assert (caught.value.currency, caught.value.to, caught.value.day) == ("GBP", "USD", _day(1))
    assert "GBP -> USD" in str(caught.value) and "xtracker rate set" in str(caught.value)


def test_a_pair_is_used_only_in_the_direction_it_was_entered() -> None:
    with pytest.raises(MissingRate):
        BOOK.rate("USD", "EUR", _day(5))


def test_conversion_is_exact() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; three currencies, exact products
    money = Money.convert(
        BOOK,
        "USD",
        [(_day(1), "EUR", D("0.10")), (_day(2), "GBP", D("0.20")), (_day(3), "USD", D("0.30")),
         (_day(5), "EUR", D("10.01")), (_day(1), "USDT", D("1000"))],
    )  # fmt: skip
    assert money.total == D("0.108") + D("0.25") + D("0.30") + D("11.011") + D("999.5")
    assert money.total == D("1011.169") and money.missing == ()


def test_a_missing_rate_gives_no_total_and_names_each_currency_once() -> None:
    money = Money.convert(
        BOOK,
        "USD",
        [(_day(3), "BRL", D("5")), (_day(1), "BRL", D("5")), (_day(1), "GBP", D("1")),
         (_day(2), "EUR", D("1"))],
    )  # fmt: skip
    assert money.total is None  # never a silent 0
    assert [(m.currency, m.day) for m in money.missing] == [("BRL", _day(1)), ("GBP", _day(1))]


# ----------------------------------------------------------------------------- metrics


def test_the_metrics_of_a_profitable_day() -> None:
    m = cost_metrics(
        D("250.00"), D("400.00"), 1000, {"contact": 300, "subscribed": 120, "deposit": 8}
    )
    assert m.profit == D("150.00")
    assert m.roi == D("0.6000") and m.roas == D("1.6000")
    assert m.cpc == D("0.2500")
    assert m.cost_per == {"contact": D("0.8333"), "subscribed": D("2.0833"),
                          "registration": None, "deposit": D("31.2500")}  # fmt: skip
    assert m.cpl == D("2.0833") and m.cpa == D("31.2500")


def test_a_loss_has_a_negative_roi_and_profit() -> None:
    m = cost_metrics(D("100"), D("25"), 10, {"deposit": 1})
    assert m.profit == D("-75") and m.roi == D("-0.7500") and m.roas == D("0.2500")


def test_no_cost_has_no_roi_and_no_clicks_no_cpc() -> None:
    m = cost_metrics(D("0"), D("10"), 0, {})
    assert m.roi is None and m.roas is None and m.cpc is None and m.cpa is None
    assert m.profit == D("10")


def test_amounts_and_rates_are_plain_decimals() -> None:
    assert parse_amount("0") == D("0") and parse_amount("12.50") == D("12.50")
    for bad in ("-1", "1e3", "1,234.56", "", "12.1234567", "nan", True, 1.5):
        with pytest.raises(ValueError):
            parse_amount(bad)
    assert parse_rate("0.000012") == D("0.000012")
    for bad in ("0", "-1", "abc"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# ----------------------------------------------------------------------------- the import


def test_a_daily_ad_export_imports_every_row_at_the_ad_level() -> None:
    plan = parse_ads_manager((FIXTURES / "ads_manager_daily.csv").read_text(encoding="utf-8"))
    assert plan.level is CostLevel.AD and plan.skipped == 0
    got = [(e.day, e.object_id, e.amount, e.currency, e.name) for e in plan.entries]
    assert got == [
        (_day(1), "120210000000001001", D("14.14"), "EUR", "Video A — 15s"),
        (_day(1), "120210000000001002", D("6.50"), "EUR", "Static B, carousel"),
        (_day(2), "120210000000001001", D("16.01"), "EUR", "Video A — 15s"),
        (_day(2), "120210000000001002", D("0"), "EUR", "Static B, carousel"),
        (_day(3), "120210000000001001", D("12.23"), "EUR", "Video A — 15s"),
        (_day(3), "120210000000001003", D("9.87"), "EUR", "Video A — 15s"),
    ]


def test_an_export_without_the_daily_breakdown_takes_single_day_rows_only() -> None:
    text = (FIXTURES / "ads_manager_campaigns_range.csv").read_text(encoding="utf-8")
    with pytest.raises(CostImportError) as caught:
        parse_ads_manager(text)
    assert caught.value.problems == [
        (4, "the row covers 2026-11-01 to 2026-11-07: export with Breakdown -> By time -> Day,"
            " so that each row is one day's spend")
    ]  # fmt: skip
    first_rows = "\n".join(text.splitlines()[:3])
    plan = parse_ads_manager(first_rows)
    assert plan.level is CostLevel.CAMPAIGN
    assert [(e.day, e.object_id, e.amount, e.currency) for e in plan.entries] == [
        (_day(5), "120210000000000002", D("36.15"), "USD"),
        (_day(5), "120210000000000003", D("0"), "USD"),
    ]


def test_bad_rows_are_all_named_by_line() -> None:
    text = (
        "Day,Campaign ID,Campaign name,Amount spent (USD)\n"
        "2026-11-01,1,A,10\n"
        "01/11/2026,2,B,10\n"
        "2026-11-01,3,C,-4\n"
        "2026-11-01,1,A again,12\n"
        ",,,\n"
    )
    with pytest.raises(CostImportError) as caught:
        parse_ads_manager(text)
    lines = [n for n, _ in caught.value.problems]
    assert lines == [3, 4, 5]
    assert "YYYY-MM-DD" in caught.value.problems[0][1]
    assert "Amount spent" in caught.value.problems[1][1]
    assert "on line 2 too" in caught.value.problems[2][1]


def test_a_totals_line_is_skipped_and_counted() -> None:
    text = "Day,Campaign ID,Amount spent (USD)\n,,46.15\n2026-11-01,1,10\n"
    plan = parse_ads_manager(text)
    assert plan.skipped == 1 and len(plan.entries) == 1


def test_a_currency_column_overrides_the_headers() -> None:
    text = "Day,Ad set ID,Currency,Amount spent (USD)\n2026-11-01,7,BRL,10\n2026-11-01,8,,3\n"
    plan = parse_ads_manager(text)
    assert plan.level is CostLevel.ADSET
    assert [e.currency for e in plan.entries] == ["BRL", "USD"]


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("Day,Campaign ID,Spend", "Amount spent"),
        ("Day,Campaign name,Amount spent (USD)", "Campaign ID"),
        ("Campaign ID,Amount spent (USD)", "Day"),
        ("", "empty"),
    ],
)
def test_a_header_without_what_is_needed_says_what_to_export(header: str, said: str) -> None:
    with pytest.raises(CostImportError) as caught:
        parse_ads_manager(header + ("\n2026-11-01,1,2\n" if header else ""))
    assert caught.value.problems[0][0] == 0 and said in caught.value.problems[0][1]
