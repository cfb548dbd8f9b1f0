"""Report filters as a pure parser (domain/filters.py): several values, exclusions, escapes,
the dimensions that exist, and errors that say what to write instead; and the arithmetic that
answers a link filter from per-link counts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xtracker_server.domain.filters import (
    DIMENSIONS,
    MAX_VALUES,
    Filter,
    FilterError,
    Filters,
    add_counts,
    add_series,
    parse_filter,
    parse_filters,
    subtract_counts,
    subtract_series,
)
from xtracker_server.domain.reports import FunnelCounts


def test_several_values_are_alternatives() -> None:
    f = parse_filter("country=US,ca")
    assert f == Filter("country", ("US", "CA"), exclude=False)
    assert f.matches("CA") and not f.matches("DE") and not f.matches(None)


def test_a_leading_minus_excludes() -> None:
    f = parse_filter("campaign=-test,-old")
    assert f == Filter("campaign", ("test", "old"), exclude=True)
    assert not f.matches("test") and f.matches("spring") and f.matches(None)


def test_spaces_around_values_are_ignored() -> None:
    assert parse_filter(" country=US, CA ") == Filter("country", ("US", "CA"))
    assert parse_filter("country=-US, -CA") == Filter("country", ("US", "CA"), exclude=True)


def test_mixing_kept_and_dropped_values_is_refused() -> None:
    with pytest.raises(FilterError, match="either keep values or drop them"):
        parse_filter("country=US, -CA")


def test_a_backslash_keeps_a_comma_or_a_leading_minus() -> None:
    assert parse_filter(r"campaign_name=Sale\, spring,\-x").values == ("Sale, spring", "-x")
    assert parse_filter(r"ad_name=a\\b").values == ("a\\b",)


def test_a_filter_reads_back_as_written() -> None:
    for text in ("country=US,CA", "campaign=-test", r"ad_name=a\,b,\-c", "sub.creative=v2"):
        f = parse_filter(text, sub_ids=("creative",))
        assert parse_filter(f.text(), sub_ids=("creative",)) == f


def test_repeated_values_count_once() -> None:
    assert parse_filter("device=mobile,mobile,tablet").values == ("mobile", "tablet")


def test_every_click_dimension_can_be_filtered() -> None:
    for name in DIMENSIONS:
        value = {"country": "US", "device": "desktop"}.get(name, "x")
        assert parse_filter(f"{name}={value}").dimension == name


def test_a_declared_sub_id_is_a_dimension() -> None:
    assert parse_filter("sub.sub1=zone-7", sub_ids=("sub1",)) == Filter("sub.sub1", ("zone-7",))


def test_filters_of_different_dimensions_all_apply() -> None:
    found = parse_filters(["country=US", "link=-old", "os=iOS"])
    assert [f.dimension for f in found.items] == ["country", "link", "os"]
    assert found.of("link") == Filter("link", ("old",), exclude=True)
    assert found.of("browser") is None
    assert [f.dimension for f in found.beyond(("link",))] == ["country", "os"]
    assert not parse_filters([]) and parse_filters([]) == Filters()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("country", "write DIMENSION=VALUE"),
        ("=US", "write DIMENSION=VALUE"),
        ("contry=US", "'contry' is not a dimension: one of link, campaign"),
        ("country=", "an empty value"),
        ("country=US,,CA", "an empty value"),
        ("country=-", "an empty value"),
        ("country=USA", "not a two-letter country code"),
        ("device=phone", "not one of mobile, tablet, desktop, bot"),
        ("sub.creative=v1", "declares no sub-id 'creative' (declared: sub1"),
        ("ad_name=x\\", "lone backslash"),
        ("ad=" + "x" * 257, "longer than 256"),
        ("ad=" + ",".join(str(i) for i in range(MAX_VALUES + 1)), f"at most {MAX_VALUES} values"),
    ],
)
def test_a_filter_that_cannot_be_read_says_why(raw: str, problem: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filters([raw], sub_ids=("sub1",))
    assert problem in caught.value.problem


def test_a_dimension_filtered_twice_is_refused() -> None:
    with pytest.raises(FilterError, match="country: filtered twice"):
        parse_filters(["country=US", "country=-CA"])


def test_more_than_twenty_filters_are_refused() -> None:
    subs = tuple(f"s{i}" for i in range(21))
    with pytest.raises(FilterError, match="at most 20 filters"):
        parse_filters([f"sub.{s}=x" for s in subs], sub_ids=subs)


def _counts(clicks: int, contact: int, deposits: int, usd: str | None) -> FunnelCounts:
    return FunnelCounts(
        uids={"click": clicks, "contact": contact, "deposit": min(deposits, 1)},
        deposits=deposits,
        first_deposits=min(deposits, 1),
        revenue={"USD": Decimal(usd)} if usd else {},
        unattributed={"contact": 4},
    )


def test_several_links_add_up_and_the_space_keeps_its_unattributed() -> None:
    summed = add_counts([_counts(3, 2, 2, "10.50"), _counts(1, 1, 0, None)])
    assert summed.uids == {"click": 4, "contact": 3, "deposit": 1}
    assert (summed.deposits, summed.first_deposits) == (2, 1)
    assert summed.revenue == {"USD": Decimal("10.50")}
    assert summed.unattributed == {"contact": 4}  # the space's, not added up


def test_all_links_but_some_are_the_total_less_theirs() -> None:
    total = _counts(10, 5, 3, "20.00")
    left = subtract_counts(total, [_counts(3, 2, 2, "20.00")])
    assert left.uids == {"click": 7, "contact": 3, "deposit": 0}
    assert (left.deposits, left.first_deposits) == (1, 0)
    assert left.revenue == {}  # a currency only the dropped links took is not shown as 0
    assert subtract_counts(total, []) == total


def test_series_add_up_per_bucket() -> None:
    assert add_series([[1, 0, 2], [0, 3, 1]]) == [1, 3, 3]
    assert subtract_series([5, 5, 5], [[1, 0, 2], [0, 3, 1]]) == [4, 2, 2]
    assert subtract_series([Decimal("1.5")], [[Decimal("0.5")]]) == [Decimal("1.0")]
