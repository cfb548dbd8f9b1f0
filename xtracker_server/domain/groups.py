"""Grouped reports, the shapes a store answers (issue 17 §1, §6): the funnel of a space per
value of one dimension, or of two nested ones (campaign → ad), with filters. Pure types and
the arithmetic the answers need (the time-to-convert median from a histogram); no I/O.

A *group* is the clicks whose dimensions have the group's values, and in cohort mode the uids
of those clicks: every number of a group adds up exactly across groups (each uid belongs to
exactly one click, so to exactly one group). ``GroupCounts`` is what a store counted for one
group; the services turn it into ratios, money in a report currency and cost figures.

Time to convert: how long after its click a uid first reached a step. A store keeps it as a
histogram over ``TTC_BOUNDS_S`` (bin ``i`` holds the durations ``d`` with
``TTC_BOUNDS_S[i-1] <= d < TTC_BOUNDS_S[i]``; bin 0 under the first bound; the last bin at or
over the last bound), so the median is an estimate: the geometric middle of the bin that
holds it, labelled as such in every answer (``ttc_median_s``, ``ttc_estimate: true``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from xtracker_server.domain.filters import DIMENSIONS, SUB_ID_PREFIX, Filters
from xtracker_server.domain.reports import FunnelMode, ReportError, Window

__all__ = [
    "GROUP_DIMENSIONS",
    "MAX_GROUP_BY",
    "NAME_OF",
    "TIME_DIMENSIONS",
    "TTC_BOUNDS_S",
    "GroupCounts",
    "GroupQuery",
    "check_group_by",
    "ttc_median_s",
]

#: Grouping by time: the day or the hour of the click (cohort) or of the event (activity),
#: in the report's time zone.
TIME_DIMENSIONS: tuple[str, ...] = ("day", "hour")
#: What a report can group by: every filter dimension (``DIMENSIONS``), a declared sub-id
#: (``sub.NAME``), and the time dimensions.
GROUP_DIMENSIONS: tuple[str, ...] = (*DIMENSIONS, *TIME_DIMENSIONS)
#: At most this many nested dimensions (campaign → ad).
MAX_GROUP_BY = 2
#: The name a store reports beside an id (the name of the group's most recent click).
NAME_OF: dict[str, str] = {"campaign": "campaign_name", "adset": "adset_name", "ad": "ad_name"}

#: Time-to-convert histogram bounds in seconds, about x1.5 apart: 1 s to 90 days.
TTC_BOUNDS_S: tuple[int, ...] = (
    1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200, 300, 450, 675, 1_000, 1_500,
    2_250, 3_375, 5_000, 7_500, 11_250, 17_000, 25_500, 38_000, 57_000, 86_400,
    129_600, 194_400, 291_600, 437_400, 656_100, 984_150, 1_476_225, 2_214_337,
    3_321_506, 4_982_259, 7_776_000,
)  # fmt: skip


@dataclass(frozen=True)
class GroupQuery:
    """One grouped report: the window (already resolved in ``tz``), the dimensions to group by
    (none: the whole space as one group; two: nested, the first the outer), the filters, the
    time zone the time dimensions use, and the mode (docs/reports.md#cohort-and-activity-modes).
    """

    window: Window
    by: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)
    tz: str = "UTC"
    mode: FunnelMode = FunnelMode.COHORT


# Not frozen, with slots: a report builds one per group (thousands per ad report), and a frozen
# dataclass's __init__ (an object.__setattr__ call per field) cost four times as much; no
# __dict__: one object fewer per group for the garbage collector to walk.
@dataclass(slots=True)
class GroupCounts:
    """What a store counted for one group (a value: nothing changes it once built).

    ``key`` has one value per dimension of ``GroupQuery.by``: the click's value (a link's
    slug; a time dimension's bucket start as ISO local time), or None for clicks without one
    (no link, no campaign id...). ``names``: beside a campaign, ad set or ad id, its name.
    In cohort mode every number is about the group's clicks in the window and their uids'
    events at any time; in activity mode about the events in the window of uids whose click is
    in the group (any time), and the group's clicks in the window.
    """

    key: tuple[str | None, ...]
    clicks: int
    uids: dict[str, int]  # canonical event -> distinct uids
    deposits: int = 0  # deposit events
    first_deposits: int = 0  # uids whose first deposit ever is counted (cohort: depositors)
    # currency -> day (ISO, report tz: the click's day in cohort mode, the deposit's in
    # activity mode) -> gross amount; and the part of it reversed (deposit.reversed); a
    # store may add them up when first read (a report shows a hundred of thousands of groups)
    revenue: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    reversed_deposits: int = 0
    reversed_revenue: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    # canonical event -> histogram over TTC_BOUNDS_S (len(TTC_BOUNDS_S) + 1 bins); a store
    # may build it when first read (a report shows a hundred of thousands of groups)
    ttc: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def depositors(self) -> int:
        return self.uids.get("deposit", 0)

    def revenue_total(self) -> dict[str, Decimal]:
        return {c: sum(days.values(), Decimal(0)) for c, days in self.revenue.items()}

    def reversed_total(self) -> dict[str, Decimal]:
        return {c: sum(days.values(), Decimal(0)) for c, days in self.reversed_revenue.items()}


def check_group_by(by: Sequence[str], *, sub_ids: Sequence[str] = ()) -> tuple[str, ...]:
    """The dimensions of ``by`` if a report can group by them, else ReportError(``by``)."""
    out = tuple(d.strip() for d in by if d.strip())
    if len(out) > MAX_GROUP_BY:
        raise ReportError("by", f"at most {MAX_GROUP_BY} dimensions (campaign,ad)")
    if len(set(out)) != len(out):
        raise ReportError("by", "a dimension is named twice")
    for d in out:
        if d.startswith(SUB_ID_PREFIX):
            if d[len(SUB_ID_PREFIX) :] not in sub_ids:
                declared = ", ".join(sub_ids) or "none"
                raise ReportError("by", f"{d}: the space declares no such sub-id ({declared})")
        elif d not in GROUP_DIMENSIONS:
            raise ReportError(
                "by", f"{d!r} is not a dimension: one of {', '.join(GROUP_DIMENSIONS)}, or sub.NAME"
            )
    return out


def ttc_median_s(histogram: Sequence[int]) -> int | None:
    """The median time to convert (seconds) from a histogram over ``TTC_BOUNDS_S``, as the
    geometric middle of the bin holding the middle count (an estimate within the bin's x1.5);
    None for an empty histogram."""
    total = sum(histogram)
    if total <= 0:
        return None
    half = (total + 1) // 2
    seen = 0
    i = 0
    while seen + histogram[i] < half:
        seen += histogram[i]
        i += 1
    if i == 0:
        return 0
    low = TTC_BOUNDS_S[i - 1]
    if i >= len(TTC_BOUNDS_S):
        return low
    return round(math.sqrt(low * TTC_BOUNDS_S[i]))
