"""domain/groups.py: which dimensions a report groups by, and the time-to-convert median."""

from __future__ import annotations

import pytest

from xtracker_server.domain.groups import TTC_BOUNDS_S, check_group_by, ttc_median_s
from xtracker_server.domain.reports import ReportError


def test_group_by_takes_dimensions_sub_ids_and_time() -> None:
    assert check_group_by(["campaign", " ad "]) == ("campaign", "ad")
    assert check_group_by(["sub.creative"], sub_ids=["creative"]) == ("sub.creative",)
    assert check_group_by(["day"]) == ("day",)
    assert check_group_by([]) == ()


@pytest.mark.parametrize(
    ("by", "says"),
    [
        (["campaign", "ad", "country"], "at most 2"),
        (["ad", "ad"], "named twice"),
        (["colour"], "not a dimension"),
        (["sub.creative"], "declares no such sub-id"),
    ],
)
def test_group_by_refuses_what_it_cannot_group(by: list[str], says: str) -> None:
    with pytest.raises(ReportError, match=says) as err:
        check_group_by(by)
    assert err.value.field == "by"


def test_the_median_is_the_middle_of_the_bin_that_holds_it() -> None:
    bins = [0] * (len(TTC_BOUNDS_S) + 1)
    assert ttc_median_s(bins) is None
    bins[0] = 5  # under a second
    assert ttc_median_s(bins) == 0
    bins[10] = 6  # 60 s <= d < 90 s holds the 6th of 11
    assert ttc_median_s(bins) == round((60 * 90) ** 0.5)
    last = [0] * len(bins)
    last[-1] = 1
    assert ttc_median_s(last) == TTC_BOUNDS_S[-1]
