"""The report cube's reads cut in time (store/sqlite/cube.py): a window as segments of one level
of buckets each (15-minute edges, whole UTC days; per local day when grouped by day), and the
local days and hours of bucket starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, tzinfo

from xtracker_server.domain.groups import GroupQuery
from xtracker_server.domain.reports import DAY_MS, Bucket, bucket_starts, iso_local
from xtracker_server.store.sqlite.cube_schema import LEVEL_15M, LEVEL_DAY

__all__ = ["Labels", "Segment", "segments"]


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


def split(lo: int, hi: int, day: str | None = None) -> list[Segment]:
    """``[lo, hi)`` as 15-minute edges and the whole UTC days between them. An edge of more than
    half a UTC day (a week that ends now starts most of a day before a midnight) is read as
    that day's row less the 15-minute rows of the rest of it: fewer rows, as 15-minute rows of
    many keys are nearly a row per click. Not for a local day's segment (``day``): its UTC day
    may belong to two local days."""
    first, last = -(-lo // DAY_MS) * DAY_MS, hi // DAY_MS * DAY_MS
    if first >= last:
        return [Segment(LEVEL_15M, lo, hi, day)] if lo < hi else []
    whole = day is None
    parts = []
    if whole and first - lo > DAY_MS // 2:
        parts += [(LEVEL_DAY, first - DAY_MS, first, 1), (LEVEL_15M, first - DAY_MS, lo, -1)]
    else:
        parts.append((LEVEL_15M, lo, first, 1))
    parts.append((LEVEL_DAY, first, last, 1))
    if whole and hi - last > DAY_MS // 2:
        parts += [(LEVEL_DAY, last, last + DAY_MS, 1), (LEVEL_15M, hi, last + DAY_MS, -1)]
    else:
        parts.append((LEVEL_15M, last, hi, 1))
    return [Segment(level, a, b, day, sign) for level, a, b, sign in parts if a < b]


def segments(query: GroupQuery, tz: tzinfo, *, local_days: bool = False) -> list[Segment]:
    """The window's segments. ``local_days``: split on the local days too (the money: dated by
    the click's local day, which a UTC-day row does not tell where local days are not UTC's),
    unless they are UTC days."""
    f, t = query.window.from_ms, query.window.to_ms
    if "hour" in query.by:
        return [Segment(LEVEL_15M, f, t)]
    starts = bucket_starts(query.window, Bucket.DAY, tz)
    utc_days = all(start % DAY_MS == 0 for start in starts)
    if "day" not in query.by and (not local_days or utc_days):
        return split(f, t)
    ends = [*starts[1:], t]
    out: list[Segment] = []
    for start, end in zip(starts, ends, strict=True):
        out += split(max(start, f), min(end, t), iso_local(start, tz))
    return out


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
