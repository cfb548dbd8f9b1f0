"""Funnel arithmetic without a database: windows, buckets in a time zone, ratios, the gauge."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xtracker_server.domain.reports import (
    Bucket,
    FunnelCounts,
    FunnelMode,
    LinkRow,
    ReportError,
    Window,
    bucket_starts,
    funnel_mode,
    gauge,
    money_text,
    resolve_window,
    sort_links,
    step_ratios,
    sum_from_parts,
)

NOW = 1_750_000_000_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_default_window_is_the_last_seven_days() -> None:
    assert resolve_window(now_ms=NOW) == Window(NOW - 7 * 86_400_000, NOW)


def test_dates_are_midnight_in_the_time_zone() -> None:
    w = resolve_window(now_ms=NOW, from_="2025-01-01", to="2025-01-02", tz=ZoneInfo("Asia/Tokyo"))
    assert w == Window(ms("2025-01-01T00:00:00+09:00"), ms("2025-01-02T00:00:00+09:00"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"from_": "2025-01-02", "to": "2025-01-01"}, "from"),
        ({"from_": "2025-01-01", "to": "2025-01-01"}, "from"),
        ({"from_": "yesterday"}, "from"),
        ({"days": 0}, "days"),
        ({"days": 5000}, "days"),
        ({"from_": "2020-01-01", "to": "2025-01-01"}, "to"),
        ({"days": 3, "from_": "2025-01-01"}, "days"),
        ({"to": "2025-01-01"}, "from"),
        ({"from_": "9999-12-30", "to": "9999-12-31"}, "from"),
        ({"from_": "9999-12-31T00:00-14:00", "to": "9999-12-31T01:00-14:00"}, "from"),
        ({"from_": "0001-01-01T00:00+14:00", "to": "0001-01-02"}, "from"),
        ({"from_": "99999999999999990", "to": "99999999999999999"}, "from"),
        ({"from_": "9" * 5000}, "from"),
        ({"from_": "\u00b2" * 12}, "from"),
    ],
)
def test_impossible_windows_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ReportError) as caught:
        resolve_window(now_ms=NOW, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_day_buckets_follow_the_local_midnight_across_dst() -> None:
    ny = ZoneInfo("America/New_York")
    w = Window(ms("2025-03-08T12:00:00-05:00"), ms("2025-03-10T12:00:00-04:00"))
    starts = bucket_starts(w, Bucket.DAY, ny)
    assert [datetime.fromtimestamp(s / 1000, ny).isoformat() for s in starts] == [
        "2025-03-08T00:00:00-05:00",
        "2025-03-09T00:00:00-05:00",  # a 23-hour day
        "2025-03-10T00:00:00-04:00",
    ]


def test_hour_buckets_align_to_a_half_hour_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    w = Window(ms("2025-01-01T10:10:00+05:30"), ms("2025-01-01T12:00:00+05:30"))
    starts = bucket_starts(w, Bucket.HOUR, kolkata)
    assert [datetime.fromtimestamp(s / 1000, kolkata).strftime("%H:%M") for s in starts] == [
        "10:00",
        "11:00",
    ]


def test_too_many_buckets_are_refused() -> None:
    with pytest.raises(ReportError):
        bucket_starts(Window(0, 200 * 86_400_000), Bucket.HOUR, timezone.utc)


def counts(**uids: int) -> FunnelCounts:
    return FunnelCounts(uids=uids, deposits=0, first_deposits=0, revenue={}, unattributed={})


def test_ratios_are_rounded_and_null_over_zero() -> None:
    rows = step_ratios(counts(click=3, contact=2, subscribed=0, registration=0))
    assert [(r.step, r.from_previous, r.from_click) for r in rows] == [
        ("click", None, 1.0),
        ("contact", 0.6667, 0.6667),
        ("subscribed", 0.0, 0.0),
        ("registration", None, 0.0),
        ("deposit", None, 0.0),
    ]
    assert step_ratios(counts())[1].from_click is None


def test_gauge_marks_the_weakest_step_and_the_change_in_points() -> None:
    now = counts(click=100, contact=80, subscribed=20, registration=15, deposit=10)
    before = counts(click=100, contact=80, subscribed=60, registration=30, deposit=10)
    g = gauge(now, before)
    assert g.weakest == "subscribed"
    sub = next(s for s in g.steps if s.step == "subscribed")
    assert (sub.ratio, sub.previous_ratio, sub.change_points, sub.weakest) == (
        0.25,
        0.75,
        -50.0,
        True,
    )


def test_the_gauge_ranks_no_ratio_over_one() -> None:
    """A step with more uids than the one before measures no leak (its uids skipped that step
    or reached it in an earlier window): it is never the weakest."""
    over = counts(click=100, contact=200, subscribed=300, registration=450, deposit=900)
    assert gauge(over, over).weakest is None
    mixed = counts(click=100, contact=90, subscribed=180, registration=170, deposit=160)
    assert gauge(mixed, mixed).weakest == "contact"  # 0.9; not subscribed's 2.0


def test_the_funnel_mode_is_named_or_activity() -> None:
    assert funnel_mode(None) is funnel_mode("") is FunnelMode.ACTIVITY
    assert funnel_mode(" Cohort ") is FunnelMode.COHORT
    with pytest.raises(ReportError) as caught:
        funnel_mode("both")
    assert caught.value.field == "mode"


def test_money_is_put_back_together_exactly() -> None:
    assert sum_from_parts(10, 150_000_000, 2, 8) == Decimal("11.50")
    assert money_text(sum_from_parts(0, 1, 8, 8)) == "0.00000001"
    assert money_text(sum_from_parts(50, 0, 0, 8)) == "50"
    # parts that do not fit the scale given, or a scale over the parts' digits: Decimal's way
    assert str(sum_from_parts(10, 123, 2, 8)) == "10.00"
    assert str(sum_from_parts(-3, 25_000_000, 1, 8)) == "-2.8"  # -2.75, half to even
    assert str(sum_from_parts(5, 5, 9, 8)) == "5.000000050"


@given(st.lists(st.decimals(min_value=0, max_value=10**12, places=8), min_size=1, max_size=20),
       st.data())  # fmt: skip
def test_money_put_back_together_is_the_exact_sum_with_the_most_decimals_given(
    amounts: list[Decimal], data: st.DataObject
) -> None:
    """Amounts as the rollup stores them (integer part, 8-digit fraction, decimals given):
    the sums of their parts make the exact sum, shown with the most decimals any was given."""
    given = [data.draw(st.integers(max(0, -a.as_tuple().exponent), 8)) for a in amounts]
    shown = [a.quantize(Decimal(1).scaleb(-d)) for a, d in zip(amounts, given, strict=True)]
    units = sum(int(a) for a in shown)
    fractions = sum(int((a - int(a)).scaleb(8)) for a in shown)
    scale = max(given)
    total = sum_from_parts(units, fractions, scale, 8)
    assert total == sum(shown) and str(total) == str(sum(shown).quantize(Decimal(1).scaleb(-scale)))


def test_links_sort_by_any_column_with_empty_rates_last() -> None:
    rows = [
        LinkRow("a", 10, {"deposit": 1}, 1, {"USD": Decimal("5")}),
        LinkRow("b", 0, {}, 0, {}),
        LinkRow("c", 4, {"deposit": 2}, 3, {"USD": Decimal("1")}),
    ]
    by_rate = sort_links(rows, "click_to_deposit", desc=True, currency="USD")
    assert [r.link for r in by_rate] == ["c", "a", "b"]
    by_revenue = sort_links(rows, "revenue", desc=False, currency="USD")
    assert [r.link for r in by_revenue] == ["b", "c", "a"]
    with pytest.raises(ReportError):
        sort_links(rows, "nonsense", desc=True, currency="USD")


def test_links_sort_by_the_visits_not_recorded() -> None:
    rows = [
        LinkRow("a", 1, {}, 0, {}, {"bot": 5}),
        LinkRow("b", 1, {}, 0, {}, {"limited": 9, "bot": 1}),
        LinkRow("c", 1, {}, 0, {}),
    ]
    by_bots = sort_links(rows, "unrecorded_bots", desc=True, currency="USD")
    assert [r.link for r in by_bots] == ["a", "b", "c"]
    by_limited = sort_links(rows, "unrecorded_limited", desc=True, currency="USD")
    assert [r.link for r in by_limited] == ["b", "a", "c"]
