"""The report cube's reads cut in time (store/sqlite/cube.py): a window as segments of one level
of buckets each (15-minute edges, whole UTC days; per local day when grouped by day), and the
local days and hours of bucket starts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, tzinfo

from xtracker_server.domain.groups import GroupQuery
from xtracker_server.domain.reports import DAY_MS, Bucket, bucket_starts, iso_local
from xtracker_server.store.sqlite.cube_schema import ALL, LEVEL_15M, LEVEL_DAY, LEVEL_HOUR, LEVEL_MS

__all__ = ["Labels", "Segment", "Weigh", "Weights", "cover", "segments", "split"]


@dataclass(frozen=True)
class Segment:
    """Buckets ``[lo, hi)`` of one level; ``day``: the local day they belong to (grouped by
    day), as its start in ISO local time; ``sign``: -1, rows taken off (the rest of a UTC day
    read whole)."""

    level: int
    lo: int
    hi: int
    day: str | None = None
    sign: int = 1


#: How many clicks 15-minute buckets ``[lo, hi)`` of one UTC day hold (``Weights``), to choose
#: how an edge is read; None: as if the traffic were even.
Weigh = Callable[[int, int], int]


def split(lo: int, hi: int, day: str | None = None, weigh: Weigh | None = None) -> list[Segment]:
    """``[lo, hi)`` as whole UTC days between edges read in the coarsest buckets that fit
    them (``cover``: hours, 15 minutes at their ends). An edge whose rest of its UTC day holds
    fewer clicks than it (``weigh``; without it: an edge of more than half a day) is read as
    that day's row less the rows of the rest: fewer rows, as 15-minute or hour rows of many
    keys are about a row per click. A week that ends now starts most of a day before a
    midnight, and ends in a day whose rest is still to come: empty. Not for a local day's
    segment (``day``): its UTC day may belong to two local days."""
    first, last = -(-lo // DAY_MS) * DAY_MS, hi // DAY_MS * DAY_MS
    if first >= last:
        return [Segment(level, a, b, day) for level, a, b in cover(lo, hi)]
    whole = day is None

    def whole_day(edge: tuple[int, int], rest: tuple[int, int]) -> bool:
        if not whole or edge[0] >= edge[1]:
            return False
        if weigh is None:
            return edge[1] - edge[0] > DAY_MS // 2
        return weigh(*rest) < weigh(*edge)

    def edge_parts(
        edge: tuple[int, int], rest: tuple[int, int], day_start: int
    ) -> list[tuple[int, int, int, int]]:
        if whole_day(edge, rest):
            return [(LEVEL_DAY, day_start, day_start + DAY_MS, 1),
                    *((level, a, b, -1) for level, a, b in cover(*rest))]  # fmt: skip
        return [(level, a, b, 1) for level, a, b in cover(*edge)]

    parts = [*edge_parts((lo, first), (first - DAY_MS, lo), first - DAY_MS),
             (LEVEL_DAY, first, last, 1),
             *edge_parts((last, hi), (hi, last + DAY_MS), last)]  # fmt: skip
    return [Segment(level, a, b, day, sign) for level, a, b, sign in parts if a < b]


#: The levels an edge of less than a day is read in, coarsest first (cube_schema.GRID_LEVELS).
_EDGE_LEVELS = ((LEVEL_HOUR, LEVEL_MS[LEVEL_HOUR]), (LEVEL_15M, LEVEL_MS[LEVEL_15M]))


def cover(lo: int, hi: int, levels: tuple[tuple[int, int], ...] = _EDGE_LEVELS) -> list[
        tuple[int, int, int]]:  # fmt: skip
    """``[lo, hi)`` (on the 15-minute grid) as (level, lo, hi) parts in the coarsest buckets
    that fit: whole hours, 15 minutes before and after them."""
    if lo >= hi:
        return []
    (level, step), finer = levels[0], levels[1:]
    if not finer:
        return [(level, lo, hi)]
    a, b = -(-lo // step) * step, hi // step * step
    if a >= b:
        return cover(lo, hi, finer)
    return [*cover(lo, a, finer), (level, a, b), *cover(b, hi, finer)]


class Weights:
    """``Weigh`` from the whole space's 15-minute rows of the cube (its clicks per bucket), read
    per UTC day when first asked (96 rows at most)."""

    def __init__(self, conn: sqlite3.Connection, space_id: int) -> None:
        self.conn, self.space_id = conn, space_id
        self.days: dict[int, list[tuple[int, int]]] = {}

    def __call__(self, lo: int, hi: int) -> int:
        start = lo - lo % DAY_MS
        found = self.days.get(start)
        if found is None:
            found = self.days[start] = [(int(b), int(n)) for b, n in self.conn.execute(
                "SELECT bucket, clicks FROM reports.cube WHERE space_id = ? AND dim = ?"
                " AND level = ? AND bucket >= ? AND bucket < ?",
                (self.space_id, ALL, LEVEL_15M, start, start + DAY_MS))]  # fmt: skip
        return sum(n for bucket, n in found if lo <= bucket < hi)


def segments(
    query: GroupQuery, tz: tzinfo, *, local_days: bool = False, weigh: Weigh | None = None
) -> list[Segment]:
    """The window's segments. ``local_days``: split on the local days too (the money: dated by
    the click's local day, which a UTC-day row does not tell where local days are not UTC's),
    unless they are UTC days."""
    f, t = query.window.from_ms, query.window.to_ms
    if "hour" in query.by:  # hour rows where each is one local hour (not in +5:30...)
        levels = _EDGE_LEVELS if _local_hours(f, t, tz) else _EDGE_LEVELS[1:]
        return [Segment(level, a, b) for level, a, b in cover(f, t, levels)]
    starts = bucket_starts(query.window, Bucket.DAY, tz)
    utc_days = all(start % DAY_MS == 0 for start in starts)
    if "day" not in query.by and (not local_days or utc_days):
        return split(f, t, weigh=weigh)
    ends = [*starts[1:], t]
    out: list[Segment] = []
    for start, end in zip(starts, ends, strict=True):
        out += split(max(start, f), min(end, t), iso_local(start, tz))
    return out


def _local_hours(lo: int, hi: int, tz: tzinfo) -> bool:
    """Whether every UTC hour in ``[lo, hi)`` starts a local hour (the zone's offset whole
    hours all along)."""
    step = LEVEL_MS[LEVEL_HOUR]
    return all(datetime.fromtimestamp(h / 1000, tz).minute == 0
               for h in range(-(-lo // step) * step, hi, step))  # fmt: skip


class Labels:
    """Local days and hours of bucket starts, worked out once each."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.cache: dict[tuple[str, int], str] = {}

    def __call__(self, what: str, ms: int) -> str:
        found = self.cache.get((what, ms))
        if found is None:
            local = datetime.fromtimestamp(ms / 1000, self.tz)
            if what == "date":
                found = local.date().isoformat()
            elif what == "hour":
                found = iso_local(ms - local.minute * 60_000, self.tz)
            else:  # the day's start
                start = datetime.combine(local.date(), time(0), tzinfo=self.tz)
                found = iso_local(int(start.timestamp() * 1000), self.tz)
            self.cache[(what, ms)] = found
        return found
